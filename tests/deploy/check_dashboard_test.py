#!/usr/bin/env python3
"""Proves that check_dashboard.py catches what it promises to catch, so that a
green deploy_grafana_dashboard means something. Standard library only."""

import json
import os
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_dashboard  # noqa: E402

EXPOSITION = """\
# HELP fer_requests_total Requests.
# TYPE fer_requests_total counter
fer_requests_total{code="OK",rpc="Classify"} 1
# HELP fer_batch_size Batch sizes.
# TYPE fer_batch_size histogram
fer_batch_size_bucket{le="+Inf"} 1
fer_batch_size_sum 1
fer_batch_size_count 1
# HELP fer_queue_faces Queue.
# TYPE fer_queue_faces gauge
fer_queue_faces 0
"""


def dashboard(*expressions, variables=("job",)):
    return {
        "uid": "u", "title": "t",
        "templating": {"list": [{"name": v, "type": "custom"} for v in variables]},
        "panels": [{"id": i + 1, "type": "timeseries", "title": "p%d" % i,
                    "targets": [{"refId": "A", "expr": e}]} for i, e in enumerate(expressions)],
    }


class CheckDashboardTest(unittest.TestCase):
    def run_check(self, dash, *extra, rules_text=None):
        with tempfile.TemporaryDirectory() as tmp:
            dash_path = os.path.join(tmp, "d.json")
            expo_path = os.path.join(tmp, "m.prom")
            with open(dash_path, "w") as f:
                f.write(dash if isinstance(dash, str) else json.dumps(dash))
            with open(expo_path, "w") as f:
                f.write(EXPOSITION)
            args = [dash_path, expo_path, *extra]
            if rules_text is not None:
                rules_path = os.path.join(tmp, "r.yml")
                with open(rules_path, "w") as f:
                    f.write(rules_text)
                args += ["--rules", rules_path]
            return check_dashboard.main(args)

    def test_accepts_exported_counters_gauges_and_histogram_series(self):
        self.assertEqual(0, self.run_check(dashboard(
            'sum by (code) (rate(fer_requests_total{job="$job"}[$__rate_interval]))',
            'histogram_quantile(0.99, sum by (le) (rate(fer_batch_size_bucket[5m])))',
            'sum(rate(fer_batch_size_sum[5m])) / sum(rate(fer_batch_size_count[5m]))',
            'max(fer_queue_faces)')))

    def test_rejects_a_name_the_server_does_not_export(self):
        self.assertEqual(1, self.run_check(dashboard('rate(fer_request_total[5m])')))

    def test_rejects_a_histogram_queried_without_suffix(self):
        self.assertEqual(1, self.run_check(dashboard('fer_batch_size')))

    def test_rejects_bucket_of_a_non_histogram(self):
        self.assertEqual(1, self.run_check(dashboard('fer_queue_faces_bucket')))

    def test_rejects_an_undefined_variable(self):
        self.assertEqual(1, self.run_check(dashboard('fer_queue_faces{pod="$pod"}')))

    def test_rejects_invalid_json(self):
        self.assertEqual(1, self.run_check('{"panels": ['))

    def test_rejects_repeated_panel_ids(self):
        dash = dashboard('fer_queue_faces', 'fer_queue_faces')
        dash["panels"][1]["id"] = dash["panels"][0]["id"]
        self.assertEqual(1, self.run_check(dash))

    def test_allow_missing_tolerates_only_the_named_metric(self):
        dash = dashboard('fer_gpu_memory_bytes')
        self.assertEqual(1, self.run_check(dash))
        self.assertEqual(0, self.run_check(dash, "--allow-missing", "fer_gpu_memory_bytes"))

    def test_scans_rules_but_not_recording_rule_names_or_comments(self):
        ok_rules = ("# fer_not_a_metric in a comment\n"
                    "- record: job:fer_queue_faces:max\n"
                    "  expr: max by (job) (fer_queue_faces)\n")
        self.assertEqual(0, self.run_check(dashboard('fer_queue_faces'), rules_text=ok_rules))
        bad_rules = "- alert: X\n  expr: fer_queue_depth > 1\n"
        self.assertEqual(1, self.run_check(dashboard('fer_queue_faces'), rules_text=bad_rules))

    def test_ignores_metric_like_label_values(self):
        self.assertEqual(0, self.run_check(dashboard('fer_queue_faces{job="fer_unknown_thing"}')))


if __name__ == "__main__":
    unittest.main()
