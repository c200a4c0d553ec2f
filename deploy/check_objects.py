"""Checks on the rendered deploy/k8s objects that the JSON schemas cannot make.

Usage: check_objects.py RENDERED_YAML DTMD_BINARY
Exits non-zero naming every problem found.
"""
import re
import subprocess
import sys
import tempfile

import yaml

GRPC_PORT = 36790
METRICS_PORT = 8889
HTTP_PORT = 36789


def dtmd_settings(dtmd):
    """Flags and environment variables, from dtmd's own reference table."""
    table = subprocess.run([dtmd, "--print_config_reference"], check=True,
                           capture_output=True, text=True).stdout
    flags, env_vars = set(), set()
    for row in table.splitlines()[2:]:
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        env_vars.update(re.findall(r"`([A-Z0-9_]+)`", cells[1]))
        flags.update(re.findall(r"`--(\w+)`", cells[2]))
    return flags, env_vars


def main(rendered_path, dtmd):
    with open(rendered_path) as f:
        objects = [o for o in yaml.safe_load_all(f) if o]
    flags, env_vars = dtmd_settings(dtmd)
    if "grpc_port" not in flags or "GRPC_PORT" not in env_vars:
        return ["dtmd --print_config_reference gave no usable table"]
    problems = []

    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in objects)
    by_kind = {}
    for o in objects:
        by_kind.setdefault(o["kind"], []).append(o)
    for kind, count in [("ConfigMap", 1), ("Secret", 1), ("Service", 2),
                        ("StatefulSet", 1), ("PodDisruptionBudget", 1)]:
        if len(by_kind.get(kind, [])) != count:
            problems.append(f"expected {count} {kind}, got {kinds}")
    if problems:
        return problems

    sts = by_kind["StatefulSet"][0]
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    if spec["replicas"] != 1:
        problems.append("StatefulSet replicas must be 1 (one store, one writer)")
    if pod["securityContext"].get("runAsNonRoot") is not True:
        problems.append("pod must run as non-root")
    if not pod.get("terminationGracePeriodSeconds"):
        problems.append("terminationGracePeriodSeconds missing")
    (container,) = pod["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        if container.get(probe, {}).get("grpc", {}).get("port") != GRPC_PORT:
            problems.append(f"{probe} must be a gRPC probe on {GRPC_PORT}")
    if not container["resources"].get("requests") or not container["resources"].get("limits"):
        problems.append("resources need requests and limits")
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    claims = [c["metadata"]["name"] for c in spec["volumeClaimTemplates"]]
    if mounts.get("data") != "/data" or "data" not in claims:
        problems.append("the data dir /data must be the volumeClaimTemplate 'data'")

    # The configuration file: the ConfigMap's dtmd.yaml, mounted where
    # --config points, and accepted by dtmd itself.
    (config_map,) = by_kind["ConfigMap"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_volume = next((n for n, v in volumes.items()
                          if v.get("configMap", {}).get("name") ==
                          config_map["metadata"]["name"]), None)
    config_mount = next((m for m in container["volumeMounts"]
                         if m["name"] == config_volume), None)
    config_args = [a.split("=", 1)[1] for a in container["args"]
                   if a.startswith("--config=")]
    if "dtmd.yaml" not in config_map.get("data", {}):
        problems.append("the ConfigMap has no dtmd.yaml")
    elif config_mount is None or config_args != [config_mount["mountPath"]]:
        problems.append("--config does not name the mounted ConfigMap's dtmd.yaml")
    else:
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            f.write(config_map["data"]["dtmd.yaml"])
            f.flush()
            checked = subprocess.run([dtmd, f"--config={f.name}", "--check_config"],
                                     capture_output=True, text=True)
        if checked.returncode != 0:
            problems.append("dtmd refuses the ConfigMap's dtmd.yaml: " +
                            checked.stderr.strip())
        else:
            config = yaml.safe_load(config_map["data"]["dtmd.yaml"])
            token_file = config.get("AuthTokenFile", "")
            # The token Secret is mounted where AuthTokenFile points.
            (secret,) = by_kind["Secret"]
            secret_volume = next((n for n, v in volumes.items()
                                  if v.get("secret", {}).get("secretName") ==
                                  secret["metadata"]["name"]), None)
            secret_mount = next((m for m in container["volumeMounts"]
                                 if m["name"] == secret_volume), None)
            if secret_mount is None or not token_file.startswith(
                    secret_mount["mountPath"] + "/") or \
                    token_file.rsplit("/", 1)[1] not in secret.get("data", {}):
                problems.append("AuthTokenFile is not a key of the mounted token Secret")
    if container.get("envFrom"):
        problems.append("settings belong in dtmd.yaml, not in envFrom")
    for env in container.get("env", []):
        if env["name"] not in env_vars and env["name"] not in ("POD_NAME", "POD_NAMESPACE"):
            problems.append(f"env {env['name']} is not a dtmd environment variable")
    for arg in container["args"]:
        m = re.match(r"--(\w+)=", arg)
        if not m or (m.group(1) not in flags and m.group(1) != "config"):
            problems.append(f"arg {arg} is not a dtmd setting flag")

    container_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    if container_ports != {"grpc": GRPC_PORT, "http": HTTP_PORT,
                           "metrics": METRICS_PORT}:
        problems.append(f"container ports {container_ports}")
    annotations = spec["template"]["metadata"].get("annotations", {})
    if (annotations.get("prometheus.io/scrape") != "true"
            or annotations.get("prometheus.io/port") != str(METRICS_PORT)):
        problems.append(f"pod needs a Prometheus scrape annotation on {METRICS_PORT}")
    for svc in by_kind["Service"]:
        ports = [p["port"] for p in svc["spec"]["ports"]]
        # The headless Service names the pod; only the client one has the
        # HTTP API and metrics.
        want = [GRPC_PORT] if svc["spec"].get("clusterIP") == "None" else [
            GRPC_PORT, HTTP_PORT, METRICS_PORT]
        if ports != want:
            problems.append(f"Service {svc['metadata']['name']} ports {ports}")
        if svc["spec"]["selector"] != labels:
            problems.append(f"Service {svc['metadata']['name']} does not select the pod")
    if spec["serviceName"] not in [s["metadata"]["name"] for s in by_kind["Service"]]:
        problems.append("StatefulSet serviceName names no Service")
    (pdb,) = by_kind["PodDisruptionBudget"]
    if pdb["spec"]["selector"]["matchLabels"] != labels:
        problems.append("PodDisruptionBudget does not select exactly the dtmd pod")
    return problems


if __name__ == "__main__":
    found = main(sys.argv[1], sys.argv[2])
    for p in found:
        print(p)
    sys.exit(1 if found else 0)
