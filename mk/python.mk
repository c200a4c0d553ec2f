# The Python client (client_stubs/python) and its example (examples/python):
# a venv under the build dir with pinned packages from PyPI (pip's download
# cache kept beside it), the package built and installed from source (stubs
# generated from proto/), then pytest against a real dtmd and PostgreSQL.
PY_VENV := $(BUILD_DIR)/py-venv
PY_CACHE := $(BUILD_DIR)/py-cache
PY_PINS := grpcio==1.85.1 grpcio-tools==1.85.1 protobuf==7.36.2 setuptools==84.2.1 \
  pytest==9.2.0 psycopg[binary]==3.3.9

.PHONY: test-python
test-clients: test-python

$(PY_VENV)/pins: mk/python.mk
	@python3 -m venv $(PY_VENV)
	@PIP_CACHE_DIR=$(abspath $(PY_CACHE)) $(PY_VENV)/bin/pip install -q --disable-pip-version-check $(PY_PINS)
	@echo "$(PY_PINS)" > $@

test-python: build $(PY_VENV)/pins
	@PIP_CACHE_DIR=$(abspath $(PY_CACHE)) $(PY_VENV)/bin/pip install -q --disable-pip-version-check \
	  --no-build-isolation --no-deps --force-reinstall ./client_stubs/python
	@cd client_stubs/python && DTMD_BIN=$(abspath $(BUILD_DIR))/server/dtmd \
	  $(abspath $(PY_VENV))/bin/python -m pytest -q -p no:cacheprovider tests
	@DTMD_BIN=$(abspath $(BUILD_DIR))/server/dtmd \
	  $(PY_VENV)/bin/python -m pytest -q -p no:cacheprovider examples/python
