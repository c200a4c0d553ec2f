# DTM's own Python SDK, dtmcli 1.7.7.0 from PyPI, unmodified, against dtmd's
# HTTP API with Python HTTP branch services and a throwaway MariaDB for its
# barrier (tests/dtmcli). A venv under the build dir with pinned packages.
DTMCLI_VENV := $(BUILD_DIR)/dtmcli-venv
DTMCLI_PINS := dtmcli==1.7.7.0 requests==2.32.5 PyMySQL==1.1.2 pytest==9.2.0

.PHONY: test-dtmcli
test-clients: test-dtmcli

$(DTMCLI_VENV)/pins: mk/dtmcli.mk
	@python3 -m venv $(DTMCLI_VENV)
	@PIP_CACHE_DIR=$(abspath $(BUILD_DIR))/py-cache $(DTMCLI_VENV)/bin/pip install -q \
	  --disable-pip-version-check $(DTMCLI_PINS)
	@echo "$(DTMCLI_PINS)" > $@

test-dtmcli: build $(DTMCLI_VENV)/pins
	@tests/dtmcli/run_tests.sh $(abspath $(BUILD_DIR))/server/dtmd $(abspath $(DTMCLI_VENV))/bin/python
