#!/usr/bin/env bash
# make test-deploy, part 1: renders both variants, deploy/k8s (the embedded
# store) and deploy/k8s/postgres (replicas on a shared PostgreSQL), with
# kustomize and validates every object against the Kubernetes JSON schemas,
# offline (the PyPI package kubernetes-validate carries them). Then checks
# what the schemas cannot (check_objects.py): the objects we expect are all
# there, the probes ask the gRPC port, and every dtmd flag and environment
# variable named is one of dtmd's settings (dtmd --print_config_reference).
#
# Usage: deploy/test_manifests.sh BUILD_DIR
set -euo pipefail

KUSTOMIZE_VERSION=v5.8.2          # v5.8.3 needs Go 1.27
KUBERNETES_VALIDATE_VERSION=1.37.0
# The oldest and newest Kubernetes the manifests are checked against.
KUBERNETES_VERSIONS=(1.30.0 1.37.0)

repo=$(cd "$(dirname "$0")/.." && pwd)
build=$(mkdir -p "${1:?usage: $0 BUILD_DIR}" && cd "$1" && pwd)
out="$build/deploy"
mkdir -p "$out"

# --- kustomize: pinned, from the Go module proxy -----------------------------
kustomize="$build/go-tools/kustomize"
if ! [ -x "$kustomize" ] || [ "$("$kustomize" version 2>/dev/null)" != "$KUSTOMIZE_VERSION" ]; then
  if command -v go >/dev/null; then
    GOBIN="$build/go-tools" GOTOOLCHAIN=local \
      go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
  fi
fi
if [ -x "$kustomize" ]; then
  render=("$kustomize" build)
elif command -v kubectl >/dev/null; then
  echo "deploy: kustomize $KUSTOMIZE_VERSION could not be installed; using kubectl kustomize"
  render=(kubectl kustomize)
else
  echo "deploy: FAIL: neither kustomize (go install sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION) nor kubectl is available" >&2
  exit 1
fi

# --- kubernetes-validate in a venv (pip's cache kept beside it) --------------
venv="$build/deploy-venv"
if [ "$(cat "$venv/pins" 2>/dev/null)" != "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" ]; then
  python3 -m venv "$venv"
  PIP_CACHE_DIR="$build/py-cache" "$venv/bin/pip" install -q --disable-pip-version-check \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  echo "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" > "$venv/pins"
fi

# Each variant: the kustomization's directory and its rendered file.
declare -A variants=([k8s]="$out/rendered.yaml" [k8s/postgres]="$out/rendered-postgres.yaml")
for dir in "${!variants[@]}"; do
  "${render[@]}" "$repo/deploy/$dir" > "${variants[$dir]}"
done
rendered=${variants[k8s]}

passed=0
failed=0
check() {  # check NAME COMMAND...: runs COMMAND, counts and reports it.
  local name=$1
  shift
  if "$@" > "$out/check.log" 2>&1; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "deploy: FAIL: $name"
    sed 's/^/  /' "$out/check.log"
  fi
}

for dir in k8s k8s/postgres; do
  for k in "${KUBERNETES_VERSIONS[@]}"; do
    check "deploy/$dir: schemas of Kubernetes $k (strict)" \
      "$venv/bin/kubernetes-validate" --strict --quiet -k "$k" "${variants[$dir]}"
  done
done

# The validator must see a broken object: the same manifests with an unknown
# field in the StatefulSet's container are rejected.
sed 's/^        imagePullPolicy: IfNotPresent$/&\n        imagePulPolicy: Always/' "$rendered" > "$out/broken.yaml"
check "a misspelt field is rejected" \
  bash -c '! "$1" --strict --quiet -k "$2" "$3"' _ "$venv/bin/kubernetes-validate" \
  "${KUBERNETES_VERSIONS[-1]}" "$out/broken.yaml"
check "the broken copy differs" bash -c '! cmp -s "$1" "$2"' _ "$rendered" "$out/broken.yaml"

for dir in k8s k8s/postgres; do
  check "deploy/$dir: objects, probes, flags and variables" \
    "$venv/bin/python" "$repo/deploy/check_objects.py" "${variants[$dir]}" "$build/server/dtmd"
done

echo "deploy-manifests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
