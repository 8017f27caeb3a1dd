"""Structural checks of rendered Kubernetes objects (parsed YAML), used by
check_kustomize.py and proven to fail on broken inputs by
check_kustomize_test.py.

Each check_* function takes the parsed objects (and what else it needs) and
returns a list of failure messages; an empty list means the guarantee holds.
"""

import math
import re

# fer-server's defaults for the flags these checks reason about.
DEFAULT_DRAIN_S = 10.0
DEFAULT_MAX_QUEUE_TIME_S = 10.0
GRPC_SHUTDOWN_S = 2.0  # fixed gRPC shutdown grace after the drain
SCRAPE_ANNOTATIONS = ("prometheus.io/scrape", "prometheus.io/port", "prometheus.io/path")


def duration_seconds(text):
    """Seconds in an Abseil duration such as 10s, 1m30s, 500ms or 1.5h."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
    parts = re.findall(r"([0-9.]+)(h|ms|us|ns|m|s)", text)
    if text == "0":
        return 0.0
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError("not a duration: %r" % text)
    return sum(float(n) * units[u] for n, u in parts)


def cpu_cores(quantity):
    quantity = str(quantity).strip('"')
    if quantity.endswith("m"):
        return float(quantity[:-1]) / 1000
    return float(quantity)


def of_kind(objects, kind):
    return [o for o in objects if isinstance(o, dict) and o.get("kind") == kind]


def pod_template(deployment):
    return deployment.get("spec", {}).get("template", {})


def server_container(deployment):
    containers = pod_template(deployment).get("spec", {}).get("containers", [])
    named = [c for c in containers if c.get("name") == "fer-server"]
    return named[0] if named else (containers[0] if containers else {})


def parse_flags(container):
    flags = {}
    for arg in container.get("args", []) or []:
        match = re.match(r"--([a-z_]+)=(.*)$", str(arg))
        if match:
            flags[match.group(1)] = match.group(2)
    return flags


def selects(match_labels, labels):
    """A matchLabels selector (non-empty) picks an object with these labels."""
    return bool(match_labels) and all(labels.get(k) == v for k, v in match_labels.items())


def container_port_names(container):
    ports = container.get("ports", []) or []
    return {p.get("name"): p.get("containerPort") for p in ports if p.get("name")}


def rule_admits_port(rule, name, number):
    """True when an ingress rule covers the port (no `ports` means all)."""
    ports = rule.get("ports")
    if not ports:
        return True
    return any(p.get("port") in (name, number) for p in ports)


def check_network_policy(objects, deployment):
    failures = []
    policies = of_kind(objects, "NetworkPolicy")
    labels = pod_template(deployment).get("metadata", {}).get("labels", {})
    ports = container_port_names(server_container(deployment))
    mine = [p for p in policies
            if selects(p.get("spec", {}).get("podSelector", {}).get("matchLabels"), labels)]
    if not mine:
        return ["no NetworkPolicy selects the fer-server pods (labels %s)" % labels]
    if "metrics" not in ports:
        failures.append("the fer-server container has no port named metrics")
    for policy in mine:
        spec = policy["spec"]
        if "Ingress" not in spec.get("policyTypes", ["Ingress"]):
            failures.append("NetworkPolicy %s does not restrict ingress" % policy["metadata"]["name"])
        rules = spec.get("ingress", []) or []
        metrics_rules = [r for r in rules if rule_admits_port(r, "metrics", ports.get("metrics"))]
        if not metrics_rules:
            failures.append("NetworkPolicy admits nothing to the metrics port: Prometheus cannot scrape")
        for rule in metrics_rules:
            if not rule.get("from"):
                failures.append("NetworkPolicy admits the metrics port from everyone")
        if not any(rule_admits_port(r, "grpc", ports.get("grpc")) and not r.get("from") for r in rules):
            failures.append("NetworkPolicy must admit the gRPC port from every client")
    return failures


def check_scraped_once(objects, deployment, podmonitor_objects):
    """The shipped scrape is the PodMonitor (or the doc's scrape job), never both
    it and annotations, and the overlay itself carries no monitor."""
    failures = []
    annotations = pod_template(deployment).get("metadata", {}).get("annotations", {}) or {}
    for key in SCRAPE_ANNOTATIONS:
        if key in annotations:
            failures.append("pod annotation %s: an annotation-driven job would scrape the pods a "
                            "second time, beside the PodMonitor" % key)
    for kind in ("PodMonitor", "ServiceMonitor"):
        if of_kind(objects, kind):
            failures.append("the overlay renders a %s: it needs the operator's CRDs; keep it in "
                            "deploy/kubernetes/prometheus-operator" % kind)
    if podmonitor_objects is None:
        return failures
    labels = pod_template(deployment).get("metadata", {}).get("labels", {})
    monitors = [m for m in of_kind(podmonitor_objects, "PodMonitor")
                if selects(m.get("spec", {}).get("selector", {}).get("matchLabels"), labels)]
    others = of_kind(podmonitor_objects, "ServiceMonitor")
    if len(monitors) != 1 or others:
        failures.append("expected exactly one PodMonitor selecting the pods and no ServiceMonitor, "
                        "got %d and %d" % (len(monitors), len(others)))
        return failures
    endpoints = monitors[0]["spec"].get("podMetricsEndpoints", [])
    ports = container_port_names(server_container(deployment))
    if [(e.get("port"), e.get("path")) for e in endpoints] != [("metrics", "/metrics")] \
            or "metrics" not in ports:
        failures.append("the PodMonitor must scrape once, port metrics, path /metrics; got %s" % endpoints)
    if monitors[0]["spec"].get("jobLabel") != "app.kubernetes.io/name" \
            or labels.get("app.kubernetes.io/name") != "fer-server":
        failures.append("the PodMonitor must produce job=\"fer-server\" (jobLabel app.kubernetes.io/name)")
    return failures


def needs_gpu(container):
    resources = container.get("resources", {}) or {}
    return any("nvidia.com/gpu" in (resources.get(k) or {}) for k in ("limits", "requests"))


def check_rollout(deployment):
    strategy = deployment.get("spec", {}).get("strategy", {}) or {}
    rolling = strategy.get("rollingUpdate", {}) or {}
    if not needs_gpu(server_container(deployment)):
        return []
    surge, unavailable = rolling.get("maxSurge", "25%"), rolling.get("maxUnavailable", "25%")
    if strategy.get("type", "RollingUpdate") == "RollingUpdate" and (surge not in (0, "0", "0%")
                                                                     or unavailable in (0, "0", "0%")):
        return ["a pod that needs a GPU must roll with maxSurge 0 and maxUnavailable >= 1 (got %s / "
                "%s): a surge pod needs a spare GPU and stays Pending on a full pool" % (surge, unavailable)]
    return []


def check_threads(container, flags):
    limit = (container.get("resources", {}) or {}).get("limits", {}).get("cpu")
    if limit is None:
        return ["no CPU limit: --threads and --preprocess_threads would follow the node's cores"]
    failures = []
    for name in ("threads", "preprocess_threads"):
        if name in flags and int(flags[name]) != math.ceil(cpu_cores(limit)):
            failures.append("--%s=%s is neither left at its default nor the CPU limit %s"
                            % (name, flags[name], limit))
    return failures


def flag_seconds(flags, name, default, failures):
    try:
        return duration_seconds(flags[name]) if name in flags else default
    except ValueError as e:
        failures.append("--%s: %s" % (name, e))
        return default


def check_drain_and_probes(deployment, flags):
    failures = []
    drain = flag_seconds(flags, "drain_timeout", DEFAULT_DRAIN_S, failures)
    queue_time = flag_seconds(flags, "max_queue_time", DEFAULT_MAX_QUEUE_TIME_S, failures)
    liveness_timeout = flag_seconds(flags, "liveness_timeout", 60.0, failures)
    grace = pod_template(deployment).get("spec", {}).get("terminationGracePeriodSeconds", 30)
    if grace <= drain + GRPC_SHUTDOWN_S:
        failures.append("terminationGracePeriodSeconds %s must exceed --drain_timeout (%gs) + %gs of "
                        "gRPC shutdown" % (grace, drain, GRPC_SHUTDOWN_S))
    if drain < queue_time:
        failures.append("--drain_timeout (%gs) below --max_queue_time (%gs): a full queue fails with "
                        "UNAVAILABLE at SIGTERM instead of finishing" % (drain, queue_time))
    if liveness_timeout == 0:
        failures.append("--liveness_timeout=0 turns off the wedge detection the liveness probe relies on")
    liveness = server_container(deployment).get("livenessProbe", {}) or {}
    if (liveness.get("grpc", {}) or {}).get("service", ""):
        failures.append("the liveness probe must ask for service \"\" (which reports a wedged model)")
    window = liveness.get("periodSeconds", 10) * (liveness.get("failureThreshold", 3) - 1)
    if window <= drain + GRPC_SHUTDOWN_S:
        failures.append("liveness fails after %ss, within a drain (%gs + %gs): health \"\" is "
                        "NOT_SERVING while draining" % (window, drain, GRPC_SHUTDOWN_S))
    return failures


def structural_failures(objects, podmonitor_objects=None):
    deployments = of_kind(objects, "Deployment")
    if len(deployments) != 1:
        return ["expected one Deployment, got %d" % len(deployments)]
    deployment = deployments[0]
    container = server_container(deployment)
    flags = parse_flags(container)
    return (check_network_policy(objects, deployment)
            + check_scraped_once(objects, deployment, podmonitor_objects)
            + check_rollout(deployment)
            + check_threads(container, flags)
            + check_drain_and_probes(deployment, flags))


def overlay_table(doc_text):
    """The docs' `| | cpu | gpu |` table as {row name: {"cpu": cell, "gpu": cell}}."""
    rows, inside = {}, False
    for line in doc_text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[1:] == ["cpu", "gpu"] and cells[0] == "":
            inside = True
        elif inside and line.startswith("|"):
            if len(cells) == 3 and not set(cells[1]) <= set("- "):
                rows[cells[0]] = {"cpu": cells[1], "gpu": cells[2]}
        elif inside:
            break
    return rows


def check_doc_table(doc_text, flavour, deployment):
    """What the doc's overlay table says this flavour sets is what renders."""
    rows = overlay_table(doc_text)
    if not rows:
        return ["the deploy doc has no `| | cpu | gpu |` overlay table"]
    container = server_container(deployment)
    flags = parse_flags(container)
    limits = (container.get("resources", {}) or {}).get("limits", {}) or {}
    rolling = deployment.get("spec", {}).get("strategy", {}).get("rollingUpdate", {}) or {}
    failures = []
    for row, cells in rows.items():
        cell = cells[flavour]
        for name, value in re.findall(r"--([a-z_]+)=([^\s`]+)", cell):
            if flags.get(name) != value:
                failures.append("doc row %r says --%s=%s, the manifest has %s"
                                % (row, name, value, flags.get(name)))
        cpu = re.search(r"(\d+) CPU", cell)
        if cpu and cpu_cores(limits.get("cpu", "0")) != float(cpu.group(1)):
            failures.append("doc row %r says %s CPU, the limit is %s" % (row, cpu.group(1), limits.get("cpu")))
        memory = re.search(r"\b(\d+[GM]i)\b", cell)
        if memory and str(limits.get("memory")) != memory.group(1):
            failures.append("doc row %r says %s, the memory limit is %s" % (row, memory.group(1), limits.get("memory")))
        if "nvidia.com/gpu" in cell and "nvidia.com/gpu" not in limits:
            failures.append("doc row %r names nvidia.com/gpu, the manifest does not limit it" % row)
        for key in ("maxSurge", "maxUnavailable"):
            stated = re.search(key + r":? (\d+)", cell)
            if stated and str(rolling.get(key)) != stated.group(1):
                failures.append("doc row %r says %s %s, the manifest has %s"
                                % (row, key, stated.group(1), rolling.get(key)))
    return failures
