#!/usr/bin/env python3
"""Renders a Kubernetes overlay with `kubectl kustomize` and checks what the
deployment relies on.

Usage: check_kustomize.py OVERLAY_DIR cpu|gpu FLAGS_FILE [PODMONITOR_DIR DEPLOY_DOC]

Exits 0 when the overlay renders and, in the output:
  - there is one Deployment, HorizontalPodAutoscaler, PodDisruptionBudget,
    NetworkPolicy and ServiceAccount, two Services (ClusterIP and headless),
    and no PodMonitor or ServiceMonitor;
  - fer-server's args use only flags listed in FLAGS_FILE, set --model,
    --address=0.0.0.0:50051 and --metrics_address=0.0.0.0:9464; --threads and
    --preprocess_threads are left at their default (the CPU limit, through the
    cgroup quota) or equal the CPU limit rounded up;
  - startup, readiness and liveness probes are gRPC probes on port 50051, the
    readiness one on service fer.v1.ExpressionClassifier;
  - terminationGracePeriodSeconds exceeds --drain_timeout;
  - requests and limits are set; the pod runs as non-root;
  - the image is the overlay's, not the base's placeholder;
  - the HPA keeps at least 2 replicas (so the PDB never blocks a drain);
  - cpu: --device=cpu and no GPU; gpu: --device=cuda[:N], bf16 or fp16, an
    nvidia.com/gpu limit, a CUDA image tag and a GPU toleration;
and, through structural checks on the parsed objects (structural_failures):
  - the NetworkPolicy selects the pods, admits the metrics port only from
    named peers and the gRPC port from everyone;
  - the pods are scraped once: no prometheus.io/* annotations; with
    PODMONITOR_DIR, it renders exactly one PodMonitor, selecting these pods'
    labels on their "metrics" port;
  - a pod that needs a GPU rolls with maxSurge 0 (no spare GPU needed);
  - grace period > --drain_timeout + 2 s; --drain_timeout >= --max_queue_time
    (a full queue can empty in the drain); the liveness probe asks for service
    "" and its failure window outlasts a drain; --liveness_timeout is not 0;
  - with DEPLOY_DOC: every --flag=value, resource figure and rollout setting
    that the doc's overlay table gives for this flavour is what renders.
Exits 1 listing each failed check, 77 (ctest: skipped) if kubectl is absent.
KUBECTL in the environment names another kubectl binary.

kubectl prints normalised YAML (sorted keys, two-space indents), so the first
checks read it as text. The structural ones parse it with PyYAML
(python3-yaml, which yamllint depends on).
"""

import os
import re
import shutil
import subprocess
import sys

# kustomize_structure sits beside this file; no __pycache__ in the source tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

SKIPPED = 77


def documents(text):
    docs = []
    for chunk in re.split(r"^---\s*$", text, flags=re.M):
        if chunk.strip():
            docs.append(chunk)
    return docs


def kind_of(doc):
    match = re.search(r"^kind: (\S+)", doc, flags=re.M)
    return match.group(1) if match else None


def block(doc, key):
    """Text of the first `key:` block (the key's line excluded), by indentation."""
    lines = doc.splitlines()
    for i, line in enumerate(lines):
        stripped = line.lstrip(" -")
        if stripped.startswith(key + ":"):
            indent = len(line) - len(line.lstrip(" "))
            if line.lstrip().startswith("- "):
                indent += 2
            out = []
            for following in lines[i + 1:]:
                f_indent = len(following) - len(following.lstrip(" "))
                if following.strip() == "":
                    continue
                if f_indent > indent or (f_indent == indent and following.lstrip().startswith("- ")
                                         and not stripped.startswith(key + ": ")):
                    out.append(following)
                else:
                    break
            return "\n".join(out)
    return None


def duration_seconds(text):
    """Seconds in an Abseil duration such as 10s, 1m30s, 500ms or 1.5h."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
    parts = re.findall(r"([0-9.]+)(h|ms|us|ns|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError("not a duration: %r" % text)
    return sum(float(n) * units[u] for n, u in parts)


def render(kubectl, directory):
    """kubectl kustomize's output, or None after printing why it failed."""
    result = subprocess.run([kubectl, "kustomize", directory], capture_output=True, text=True)
    if result.returncode != 0:
        print("FAIL: %s kustomize %s exited %d:\n%s" % (kubectl, directory, result.returncode, result.stderr))
        return None
    if result.stderr.strip():
        print("kubectl says (not a failure):\n" + result.stderr.strip())
    return result.stdout


def structural(rendered, podmonitor_dir, doc_file, flavour, kubectl):
    """Failures of the parsed-object checks (kustomize_structure)."""
    import yaml  # python3-yaml; yamllint, a test dependency, needs it too
    import kustomize_structure as ks
    objects = [o for o in yaml.safe_load_all(rendered) if o]
    podmonitor_objects = None
    if podmonitor_dir:
        text = render(kubectl, podmonitor_dir)
        if text is None:
            return ["%s does not render" % podmonitor_dir]
        podmonitor_objects = [o for o in yaml.safe_load_all(text) if o]
    failures = ks.structural_failures(objects, podmonitor_objects)
    if doc_file:
        with open(doc_file, encoding="utf-8") as f:
            failures += ks.check_doc_table(f.read(), flavour, ks.of_kind(objects, "Deployment")[0])
    return failures


def main(argv):
    if len(argv) not in (3, 5) or argv[1] not in ("cpu", "gpu"):
        print(__doc__)
        return 2
    overlay, flavour, flags_file = argv[:3]
    podmonitor_dir, doc_file = argv[3:5] if len(argv) == 5 else (None, None)
    kubectl = os.environ.get("KUBECTL", "kubectl")
    if not shutil.which(kubectl):
        print("SKIP: %s not found; CI installs it (scripts/install-deps.sh)" % kubectl)
        return SKIPPED
    rendered = render(kubectl, overlay)
    if rendered is None:
        return 1
    with open(flags_file, encoding="utf-8") as f:
        known_flags = {line.strip() for line in f if line.strip() and not line.startswith("#")}

    failures = []

    def check(condition, message):
        if not condition:
            failures.append(message)

    docs = documents(rendered)
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(kind_of(doc), []).append(doc)
    expected = {"Deployment": 1, "Service": 2, "HorizontalPodAutoscaler": 1,
                "PodDisruptionBudget": 1, "NetworkPolicy": 1, "ServiceAccount": 1,
                "PodMonitor": 0, "ServiceMonitor": 0}
    for kind, count in expected.items():
        check(len(by_kind.get(kind, [])) == count,
              "expected %d %s, rendered %d" % (count, kind, len(by_kind.get(kind, []))))
    if len(by_kind.get("Deployment", [])) != 1:
        print("\n".join("FAIL: " + f for f in failures))
        return 1
    deployment = by_kind["Deployment"][0]

    # Flags.
    args_block = block(deployment, "args") or ""
    args = re.findall(r"^\s*- (--\S+)$", args_block, flags=re.M)
    flags = {}
    for arg in args:
        match = re.match(r"--([a-z_]+)=(.*)$", arg)
        check(match is not None, "argument %r is not --flag=value" % arg)
        if match:
            name, value = match.groups()
            check(name in known_flags, "unknown fer-server flag --%s" % name)
            check(name not in flags, "flag --%s given twice" % name)
            flags[name] = value.strip("'\"")
    check(flags.get("model", "").startswith("/opt/fer/models/"), "--model must point into /opt/fer/models/")
    check(flags.get("address") == "0.0.0.0:50051", "--address must be 0.0.0.0:50051")
    check(flags.get("metrics_address") == "0.0.0.0:9464", "--metrics_address must be 0.0.0.0:9464")
    check(flags.get("http_address") == "0.0.0.0:8080", "--http_address must be 0.0.0.0:8080")

    # Probes.
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        text = block(deployment, probe)
        check(text is not None and re.search(r"grpc:\n\s+port: 50051", text) is not None,
              "%s must be a grpc probe on port 50051" % probe)
    readiness = block(deployment, "readinessProbe") or ""
    check("service: fer.v1.ExpressionClassifier" in readiness,
          "readinessProbe must ask for service fer.v1.ExpressionClassifier")

    # Draining.
    grace = re.search(r"terminationGracePeriodSeconds: (\d+)", deployment)
    try:
        drain = duration_seconds(flags.get("drain_timeout", "10s"))  # fer-server's default
    except ValueError as e:
        drain = None
        failures.append(str(e))
    check(grace is not None, "terminationGracePeriodSeconds is not set")
    if grace and drain is not None:
        check(int(grace.group(1)) > drain,
              "terminationGracePeriodSeconds %s must exceed --drain_timeout (%gs)" % (grace.group(1), drain))

    # Resources and threads.
    resources = block(deployment, "resources") or ""
    limits = block(resources, "limits") or ""
    requests = block(resources, "requests") or ""
    for name, text in (("limits", limits), ("requests", requests)):
        check(re.search(r"^\s*cpu: ", text, flags=re.M) and re.search(r"^\s*memory: ", text, flags=re.M),
              "resources.%s must set cpu and memory" % name)
    # --threads / --preprocess_threads against the CPU limit: structural checks.
    check("runAsNonRoot: true" in deployment, "pod must set runAsNonRoot: true")

    # Image.
    image = re.search(r"^\s*image: (\S+)", deployment, flags=re.M)
    check(image is not None and image.group(1) != "fer-server" and ":" in image.group(1),
          "the overlay must set the image (registry/name:tag), got %s" % (image.group(1) if image else None))

    # Autoscaling.
    hpa = "".join(by_kind.get("HorizontalPodAutoscaler", []))
    min_replicas = re.search(r"minReplicas: (\d+)", hpa)
    check(min_replicas is not None and int(min_replicas.group(1)) >= 2,
          "HPA minReplicas must be >= 2 with a PodDisruptionBudget of maxUnavailable 1")
    check(re.search(r"scaleTargetRef:\n(?:\s+.*\n)*?\s+name: fer-server", hpa) is not None,
          "HPA must target the fer-server Deployment")

    # Flavour.
    gpu_limit = re.search(r"nvidia\.com/gpu: \"?(\d+)", limits)
    if flavour == "cpu":
        check(flags.get("device") == "cpu", "cpu overlay must pass --device=cpu")
        check(gpu_limit is None, "cpu overlay must not request GPUs")
        check(image is not None and "cuda" not in image.group(1), "cpu overlay must not use a CUDA image")
    else:
        check(re.fullmatch(r"cuda(:\d+)?", flags.get("device", "")) is not None,
              "gpu overlay must pass --device=cuda[:N]")
        check(flags.get("precision") in ("bf16", "fp16"), "gpu overlay should run bf16 or fp16")
        check(gpu_limit is not None and int(gpu_limit.group(1)) >= 1, "gpu overlay must limit nvidia.com/gpu")
        check(image is not None and "cuda" in image.group(1), "gpu overlay must use a CUDA image tag")
        check("key: nvidia.com/gpu" in (block(deployment, "tolerations") or ""),
              "gpu overlay must tolerate the nvidia.com/gpu taint")

    failures += structural(rendered, podmonitor_dir, doc_file, flavour, kubectl)
    for failure in failures:
        print("FAIL: " + failure)
    print("%s (%s): %d objects rendered, %d failed check(s)" % (overlay, flavour, len(docs), len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
