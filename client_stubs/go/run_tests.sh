#!/usr/bin/env bash
# make test-go: everything the Go client promises, against a real dtmd.
#
#   client_stubs/go/run_tests.sh [--install-only] BUILD_DIR
#
# With --install-only it stops after step 1 (make go-generate uses that).
# 1. installs the pinned code generators and grpcurl into BUILD_DIR/go-tools
#    (through the Go module proxy; the module cache keeps the downloads);
# 2. regenerates the committed stubs into a temporary directory and fails if
#    they differ from the committed ones;
# 3. starts a throwaway PostgreSQL (scripts/postgres.sh) for the barrier;
# 4. go vet and go test of client_stubs/go (unit and integration tests) and
#    examples/go (each example run against its own dtmd);
# 5. runs the README's grpcurl commands against a dtmd.
set -euo pipefail

PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2
GRPCURL_VERSION=v1.9.4

install_only=0
if [ "${1:-}" = --install-only ]; then install_only=1; shift; fi
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:?usage: $0 [--install-only] BUILD_DIR}" && pwd)
tools=$build/go-tools

versions="protoc-gen-go $PROTOC_GEN_GO_VERSION protoc-gen-go-grpc $PROTOC_GEN_GO_GRPC_VERSION grpcurl $GRPCURL_VERSION"
if [ "$(cat "$tools/versions" 2>/dev/null)" != "$versions" ]; then
  echo "go: installing $versions into $tools"
  mkdir -p "$tools"
  (cd "$tools" &&
    GOBIN=$tools go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION" &&
    GOBIN=$tools go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION" &&
    GOBIN=$tools go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION")
  echo "$versions" >"$tools/versions"
fi
[ "$install_only" = 0 ] || exit 0
export DTMD_BIN=$build/server/dtmd
[ -x "$DTMD_BIN" ] || { echo "no dtmd at $DTMD_BIN: make build first" >&2; exit 1; }

work=$(mktemp -d)
# Its own directory: as root, scripts/postgres.sh hands it to the postgres
# user, who could not enter $work.
pg_dir=$(mktemp -d)
cleanup() {
  "$root/scripts/postgres.sh" stop "$pg_dir" || true
  rm -rf "$work" "$pg_dir"
}
trap cleanup EXIT

# 2. The committed generated code is what the pinned generators make.
"$root/client_stubs/go/generate.sh" "$tools" "$work/gen"
stale=0
while IFS= read -r file; do
  rel=${file#"$work/gen/"}
  if ! cmp -s "$file" "$root/$rel"; then
    echo "go: $rel is stale: run make go-generate" >&2
    stale=1
  fi
done < <(find "$work/gen" -name '*.go')
committed=$(cd "$root" && git ls-files 'client_stubs/go/*.pb.go' 'examples/go/*.pb.go' | wc -l)
generated=$(find "$work/gen" -name '*.go' | wc -l)
if [ "$committed" != "$generated" ]; then
  echo "go: $committed generated files committed, $generated generated" >&2
  stale=1
fi
[ "$stale" = 0 ] || exit 1
echo "go: generated code is fresh ($generated files)"

unformatted=$(cd "$root" && gofmt -l client_stubs/go examples/go)
[ -z "$unformatted" ] || { echo "go: not gofmt-formatted: $unformatted" >&2; exit 1; }

# 3. PostgreSQL on a free loopback port.
pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export DTMD_TEST_POSTGRES_DSN
DTMD_TEST_POSTGRES_DSN=$("$root/scripts/postgres.sh" start "$pg_dir" "$pg_port")

# 4. The client and the examples.
for module in client_stubs/go examples/go; do
  (cd "$root/$module" && go vet ./... && go test -count=1 ./...)
done

# 5. The README's grpcurl commands, as written, against a fresh dtmd.
"$root/client_stubs/go/grpcurl_readme_test.sh" "$DTMD_BIN" "$tools/grpcurl"
