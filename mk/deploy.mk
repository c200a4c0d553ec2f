# The container image recipe and Kubernetes manifests (deploy/); see
# deploy/README.md. Hooked on test-clients, as each mk/*.mk is, so that
# `make test` runs it.
.PHONY: test-deploy deploy-image

test-clients: test-deploy

# Renders deploy/k8s with a pinned kustomize and validates every object
# against the Kubernetes schemas offline, then checks the Dockerfile
# statically (its runtime packages against the libraries the built dtmd loads).
test-deploy: build
	@deploy/test_manifests.sh $(BUILD_DIR)
	@deploy/check_dockerfile.sh $(BUILD_DIR)

# Builds the image where a container engine can (Docker or Buildah, with
# access to the debian:12 base images).
deploy-image:
	@if command -v docker >/dev/null && docker info >/dev/null 2>&1; then \
	  docker build -f deploy/Dockerfile -t dtmd:dev . ; \
	elif command -v buildah >/dev/null; then \
	  buildah bud -f deploy/Dockerfile -t dtmd:dev . ; \
	else echo "deploy-image: no container engine (docker daemon or buildah)" >&2; exit 1; fi
