#!/usr/bin/env bash
# DTM's own Python SDK (dtmcli 1.7.7.0 from PyPI, unmodified) against dtmd:
# starts a throwaway MariaDB (scripts/mariadb.sh), runs the pytest suite,
# stops the server.
#
#   tests/dtmcli/run_tests.sh DTMD_BIN PYTHON
set -euo pipefail
dtmd=${1:?usage: $0 DTMD_BIN PYTHON}
python=${2:?usage: $0 DTMD_BIN PYTHON}
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
cleanup() { "$root/scripts/mariadb.sh" stop "$work/mariadb"; rm -rf "$work"; }
trap cleanup EXIT
port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mariadb=$("$root/scripts/mariadb.sh" start "$work/mariadb" "$port")
cd "$root/tests/dtmcli"
DTMD_BIN=$dtmd MARIADB=$mariadb "$python" -m pytest -q -p no:cacheprovider .
