#!/usr/bin/env bash
# Generates the Go code of dtmd's protos (the client module's stubs) and of the
# Go examples' shop.proto, under OUT_ROOT with the repository's layout:
#
#   client_stubs/go/generate.sh TOOLS_DIR OUT_ROOT
#
# TOOLS_DIR holds the pinned protoc-gen-go and protoc-gen-go-grpc (mk/go.mk
# installs them); protoc is Debian's protobuf-compiler. With OUT_ROOT = the
# repository root this rewrites the committed files; make test-go generates
# into a temporary directory and compares.
set -euo pipefail
tools=$(cd "${1:?usage: $0 TOOLS_DIR OUT_ROOT}" && pwd)
out=${2:?usage: $0 TOOLS_DIR OUT_ROOT}
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out/client_stubs/go" "$out/examples/go"
out=$(cd "$out" && pwd)

run_protoc() {  # run_protoc INCLUDE_DIR MODULE OUT_DIR PROTO...
  local include=$1 module=$2 dir=$3
  shift 3
  PATH="$tools:$PATH" protoc -I "$include" \
    --go_out="$dir" --go_opt=module="$module" \
    --go-grpc_out="$dir" --go-grpc_opt=module="$module" "$@"
}

cd "$root"
run_protoc proto github.com/dtmd/dtmd/client_stubs/go "$out/client_stubs/go" \
  dtmgimp.proto workflow.proto dtmd/admin/v1/admin.proto
run_protoc examples/go/shop github.com/dtmd/dtmd/examples/go \
  "$out/examples/go" shop.proto
