"""Checks on the rendered deploy/k8s objects that the JSON schemas cannot make.

Two variants are checked: the embedded store (deploy/k8s: a StatefulSet of
one pod with its volume) and the shared PostgreSQL store (deploy/k8s/postgres:
a Deployment of several replicas, the connection string from a Secret).

Usage: check_objects.py RENDERED_YAML DTMD_BINARY
Exits non-zero naming every problem found.
"""
import os
import re
import subprocess
import sys
import tempfile

import yaml

GRPC_PORT = 36790
METRICS_PORT = 8889
HTTP_PORT = 36789
# Variables the manifests set for their own use, not dtmd settings.
POD_VARIABLES = ("POD_NAME", "POD_NAMESPACE")
# What each variant renders to: kind -> count.
EXPECTED = {
    "StatefulSet": {"ConfigMap": 1, "Secret": 1, "Service": 2,
                    "StatefulSet": 1, "PodDisruptionBudget": 1},
    "Deployment": {"ConfigMap": 1, "Secret": 2, "Service": 1,
                   "Deployment": 1, "PodDisruptionBudget": 1},
}
# A syntactically valid connection string for --check_config (dtmd does not
# connect when it only checks).
PLACEHOLDER_DSN = "host=postgres.invalid dbname=dtmd user=dtmd"


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


def check_config(dtmd, text, env):
    """Runs dtmd --check_config on a configuration file's text; returns the
    completed process."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        f.write(text)
        f.flush()
        return subprocess.run([dtmd, f"--config={f.name}", "--check_config"],
                              capture_output=True, text=True, env=env)


def mounted(pod, container, kind, name):
    """The container's mount of the volume holding the named ConfigMap or
    Secret (kind "configMap" or "secret"), or None."""
    key = "name" if kind == "configMap" else "secretName"
    volume = next((v["name"] for v in pod.get("volumes", [])
                   if v.get(kind, {}).get(key) == name), None)
    return next((m for m in container["volumeMounts"] if m["name"] == volume),
                None)


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
    workload_kind = "Deployment" if "Deployment" in by_kind else "StatefulSet"
    for kind, count in EXPECTED[workload_kind].items():
        if len(by_kind.get(kind, [])) != count:
            problems.append(f"expected {count} {kind}, got {kinds}")
    if problems:
        return problems
    shared_store = workload_kind == "Deployment"

    workload = by_kind[workload_kind][0]
    spec = workload["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    if spec["selector"]["matchLabels"] != labels:
        problems.append(f"the {workload_kind}'s selector is not its pods' labels")
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
    env = {e["name"]: e for e in container.get("env", [])}

    if shared_store:
        # Several replicas, spread over nodes, nothing on the pod's disk.
        if spec.get("replicas", 1) < 2:
            problems.append("the shared-store Deployment needs 2 replicas or more")
        if any("persistentVolumeClaim" in v for v in pod.get("volumes", [])):
            problems.append("the shared-store pods must not claim volumes")
        terms = pod.get("affinity", {}).get("podAntiAffinity", {}).get(
            "preferredDuringSchedulingIgnoredDuringExecution", [])
        if not any(t["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
                   and t["podAffinityTerm"]["labelSelector"]["matchLabels"] == labels
                   for t in terms):
            problems.append("no anti-affinity across nodes for the replicas")
        # Each replica's lease owner name is its pod's name.
        if env.get("REPLICA_ID", {}).get("valueFrom", {}).get("fieldRef", {}).get(
                "fieldPath") != "metadata.name":
            problems.append("REPLICA_ID must be the pod's name (downward API)")
        # The connection string comes from the Secret, which ships without
        # one: the pods cannot start on a default.
        ref = env.get("POSTGRES_DSN", {}).get("valueFrom", {}).get("secretKeyRef", {})
        dsn_secret = next((s for s in by_kind["Secret"]
                           if s["metadata"]["name"] == ref.get("name")), None)
        if dsn_secret is None or ref.get("key") != "dsn":
            problems.append("POSTGRES_DSN must come from key dsn of a rendered Secret")
        elif ref.get("optional"):
            problems.append("the POSTGRES_DSN Secret key must not be optional")
        elif "dsn" in dsn_secret.get("data", {}):
            problems.append("the Secret template carries a DSN: it must ship "
                            "without one (fail closed)")
    else:
        if spec["replicas"] != 1:
            problems.append("StatefulSet replicas must be 1 (one store, one writer)")
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        claims = [c["metadata"]["name"] for c in spec["volumeClaimTemplates"]]
        if mounts.get("data") != "/data" or "data" not in claims:
            problems.append("the data dir /data must be the volumeClaimTemplate 'data'")

    # The configuration file: the ConfigMap's dtmd.yaml, mounted where
    # --config points, and accepted by dtmd itself.
    (config_map,) = by_kind["ConfigMap"]
    config_mount = mounted(pod, container, "configMap",
                           config_map["metadata"]["name"])
    config_args = [a.split("=", 1)[1] for a in container["args"]
                   if a.startswith("--config=")]
    if "dtmd.yaml" not in config_map.get("data", {}):
        problems.append("the ConfigMap has no dtmd.yaml")
    elif config_mount is None or config_args != [config_mount["mountPath"]]:
        problems.append("--config does not name the mounted ConfigMap's dtmd.yaml")
    else:
        text = config_map["data"]["dtmd.yaml"]
        config = yaml.safe_load(text)
        check_env = {k: v for k, v in os.environ.items() if k != "POSTGRES_DSN"}
        if shared_store:
            driver = (config.get("Store") or {}).get("Driver")
            if driver != "postgres":
                problems.append(f"the shared-store dtmd.yaml has Store.Driver {driver}")
            # As in the pod: the DSN from the environment. Without one dtmd
            # must refuse the file.
            if check_config(dtmd, text, check_env).returncode == 0:
                problems.append("dtmd accepts the postgres dtmd.yaml with no DSN")
            check_env["POSTGRES_DSN"] = PLACEHOLDER_DSN
        checked = check_config(dtmd, text, check_env)
        if checked.returncode != 0:
            problems.append("dtmd refuses the ConfigMap's dtmd.yaml: " +
                            checked.stderr.strip())
        else:
            token_file = config.get("AuthTokenFile", "")
            # The token Secret is mounted where AuthTokenFile points.
            token_secrets = [s for s in by_kind["Secret"]
                             if s["metadata"]["name"].startswith("dtmd-tokens")]
            secret = token_secrets[0] if len(token_secrets) == 1 else {
                "metadata": {"name": ""}}
            secret_mount = mounted(pod, container, "secret",
                                   secret["metadata"]["name"])
            if secret_mount is None or not token_file.startswith(
                    secret_mount["mountPath"] + "/") or \
                    token_file.rsplit("/", 1)[1] not in secret.get("data", {}):
                problems.append("AuthTokenFile is not a key of the mounted token Secret")
    if container.get("envFrom"):
        problems.append("settings belong in dtmd.yaml, not in envFrom")
    for name in env:
        if name not in env_vars and name not in POD_VARIABLES:
            problems.append(f"env {name} is not a dtmd environment variable")
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
    if shared_store:
        # Branches call back whichever replica the Service picks.
        (svc,) = by_kind["Service"]
        advertised = env.get("ADVERTISE_ADDRESS", {}).get("value", "")
        if not advertised.startswith(svc["metadata"]["name"] + ".") or \
                not advertised.endswith(f":{GRPC_PORT}"):
            problems.append(f"ADVERTISE_ADDRESS {advertised!r} is not the Service")
    elif spec["serviceName"] not in [s["metadata"]["name"] for s in by_kind["Service"]]:
        problems.append("StatefulSet serviceName names no Service")
    (pdb,) = by_kind["PodDisruptionBudget"]
    if pdb["spec"]["selector"]["matchLabels"] != labels:
        problems.append(f"PodDisruptionBudget does not select exactly the {workload_kind}'s pods")
    if shared_store:
        # One replica at a time may go; the others keep serving.
        replicas = spec.get("replicas", 1)
        budget = pdb["spec"]
        if budget.get("maxUnavailable") != 1 and not (
                2 <= budget.get("minAvailable", 0) <= replicas - 1):
            problems.append("the PodDisruptionBudget must let one replica go "
                            "at a time and keep the others")
    return problems


if __name__ == "__main__":
    found = main(sys.argv[1], sys.argv[2])
    for p in found:
        print(p)
    sys.exit(1 if found else 0)
