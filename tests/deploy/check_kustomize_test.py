#!/usr/bin/env python3
"""Proves that kustomize_structure's checks pass on the shipped objects and fail
on each broken variant. Reads deploy/kubernetes/ directly (no kubectl).

Usage: check_kustomize_test.py DEPLOY_KUBERNETES_DIR
"""

import copy
import os
import sys
import unittest

import yaml

# kustomize_structure sits beside this file; no __pycache__ in the source tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kustomize_structure as ks  # noqa: E402

KUBE_DIR = None

DOC = """
| | cpu | gpu |
| --- | --- | --- |
| device flags | `--device=cpu --precision=fp32` | `--device=cuda --precision=bf16` |
| resources (requests = limits) | 2 CPU, 2Gi | 4 CPU, 8Gi, `nvidia.com/gpu: 1` |
| rolling update | `maxSurge: 1`, `maxUnavailable: 0` | `maxSurge: 0`, `maxUnavailable: 1` |
"""


def load(*parts):
    with open(os.path.join(KUBE_DIR, *parts), encoding="utf-8") as f:
        return [o for o in yaml.safe_load_all(f) if o]


class StructureTest(unittest.TestCase):
    def setUp(self):
        self.objects = load("base", "deployment.yaml") + load("base", "networkpolicy.yaml")
        self.monitors = load("prometheus-operator", "podmonitor.yaml")
        self.deployment = self.objects[0]
        self.container = ks.server_container(self.deployment)

    def failures(self, monitors="default"):
        return ks.structural_failures(self.objects, self.monitors if monitors == "default" else monitors)

    def assertFailsWith(self, text, monitors="default"):
        failures = self.failures(monitors)
        self.assertTrue(any(text in f for f in failures), "no failure with %r in %s" % (text, failures))

    def set_flag(self, name, value):
        args = [a for a in self.container["args"] if not a.startswith("--%s=" % name)]
        self.container["args"] = args + ["--%s=%s" % (name, value)]

    def test_shipped_objects_pass(self):
        self.assertEqual(self.failures(), [])

    def test_scrape_annotation_is_a_second_scrape(self):
        self.deployment["spec"]["template"]["metadata"]["annotations"] = {"prometheus.io/scrape": "true"}
        self.assertFailsWith("second time")

    def test_monitor_inside_the_overlay_is_refused(self):
        self.objects += copy.deepcopy(self.monitors)
        self.assertFailsWith("renders a PodMonitor")

    def test_two_podmonitors_or_none_matching_are_refused(self):
        self.assertFailsWith("exactly one PodMonitor", self.monitors + copy.deepcopy(self.monitors))
        other = copy.deepcopy(self.monitors)
        other[0]["spec"]["selector"]["matchLabels"] = {"app": "something-else"}
        self.assertFailsWith("exactly one PodMonitor", other)

    def test_podmonitor_on_another_port_is_refused(self):
        self.monitors[0]["spec"]["podMetricsEndpoints"][0]["port"] = "grpc"
        self.assertFailsWith("port metrics")

    def test_missing_network_policy_is_refused(self):
        self.objects = [self.deployment]
        self.assertFailsWith("no NetworkPolicy selects")

    def test_policy_selecting_other_pods_is_refused(self):
        self.objects[1]["spec"]["podSelector"]["matchLabels"] = {"app": "other"}
        self.assertFailsWith("no NetworkPolicy selects")

    def test_metrics_open_to_everyone_is_refused(self):
        del self.objects[1]["spec"]["ingress"][1]["from"]
        self.assertFailsWith("metrics port from everyone")

    def test_rule_for_all_ports_opens_metrics(self):
        self.objects[1]["spec"]["ingress"].append({})
        self.assertFailsWith("metrics port from everyone")

    def test_closed_grpc_port_is_refused(self):
        del self.objects[1]["spec"]["ingress"][0]
        self.assertFailsWith("gRPC port from every client")

    def test_gpu_pod_with_surge_is_refused_and_without_passes(self):
        for kind in ("limits", "requests"):
            self.container["resources"][kind]["nvidia.com/gpu"] = 1
        self.assertFailsWith("maxSurge 0")
        self.deployment["spec"]["strategy"]["rollingUpdate"] = {"maxSurge": 0, "maxUnavailable": 1}
        self.assertEqual(self.failures(), [])

    def test_threads_off_the_cpu_limit_are_refused(self):
        self.set_flag("preprocess_threads", 3)
        self.assertFailsWith("--preprocess_threads=3")
        self.set_flag("preprocess_threads", 2)
        self.set_flag("threads", 2)
        self.assertEqual(self.failures(), [])
        del self.container["resources"]["limits"]["cpu"]
        self.assertFailsWith("no CPU limit")

    def test_grace_below_drain_plus_shutdown_is_refused(self):
        self.set_flag("drain_timeout", "28s")
        self.assertFailsWith("terminationGracePeriodSeconds 30 must exceed")

    def test_drain_shorter_than_queue_time_is_refused(self):
        self.set_flag("max_queue_time", "15s")
        self.assertFailsWith("below --max_queue_time")

    def test_liveness_settings(self):
        self.set_flag("liveness_timeout", "0")
        self.assertFailsWith("--liveness_timeout=0")

    def test_liveness_on_a_named_service_is_refused(self):
        self.container["livenessProbe"]["grpc"]["service"] = "fer.v1.ExpressionClassifier"
        self.assertFailsWith("service \"\"")

    def test_liveness_window_inside_a_drain_is_refused(self):
        self.container["livenessProbe"].update(periodSeconds=5, failureThreshold=3)
        self.assertFailsWith("within a drain")

    def test_doc_table_matches_and_mismatches(self):
        self.assertEqual(ks.check_doc_table(DOC, "cpu", self.deployment), [])
        self.assertTrue(ks.check_doc_table(DOC.replace("fp32", "fp16"), "cpu", self.deployment))
        self.assertTrue(ks.check_doc_table(DOC.replace("2 CPU", "3 CPU"), "cpu", self.deployment))
        self.assertTrue(ks.check_doc_table(DOC.replace("2Gi", "4Gi"), "cpu", self.deployment))
        self.assertTrue(ks.check_doc_table(DOC.replace("`maxSurge: 1`", "`maxSurge: 2`"), "cpu",
                                           self.deployment))
        self.assertTrue(ks.check_doc_table("no table here", "cpu", self.deployment))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    KUBE_DIR = sys.argv.pop(1)
    unittest.main(verbosity=1)
