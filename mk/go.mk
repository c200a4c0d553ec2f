# The Go client (client_stubs/go) and the Go examples (examples/go); see
# README "Clients in Go, Python and Java" / "Go".
.PHONY: test-go go-generate

test-clients: test-go

# Unit and integration tests of the Go client against a real dtmd and a
# throwaway PostgreSQL, the generated-code freshness check, the examples and
# the README's grpcurl commands.
test-go: build
	@client_stubs/go/run_tests.sh $(BUILD_DIR)

# Rewrites the committed generated Go code after a proto change (the pinned
# generators are the ones run_tests.sh installs).
go-generate:
	@mkdir -p $(BUILD_DIR)
	@client_stubs/go/run_tests.sh --install-only $(BUILD_DIR)
	@client_stubs/go/generate.sh $(BUILD_DIR)/go-tools .
