#!/usr/bin/env python3
"""Checks that a Grafana dashboard (and optionally Prometheus rule files) only
query metrics that fer-server exports.

Usage:
  check_dashboard.py DASHBOARD.json EXPOSITION.txt [--rules FILE ...]
                     [--allow-missing NAME ...]

EXPOSITION.txt is Prometheus text exposition: a scrape of /metrics, or the
reference tests/deploy/fer_metrics.prom. Guarantees, when it exits 0:
  - the dashboard is valid JSON with a uid, a title and panels with unique ids;
  - every target has an expression and a refId unique within its panel;
  - every $variable used in the dashboard is defined in its templating list;
  - every fer_* metric named in a dashboard expression or a rule expression is
    in the exposition: a histogram only through its _bucket, _sum or _count
    series, _bucket only on a histogram, and any other name exactly as exposed.
Names given with --allow-missing may be absent (e.g. GPU-only metrics when the
exposition comes from a CPU server); they are reported, not failed.
Exits 1 with one line per problem otherwise, 2 on bad usage. Standard library
only: YAML rule files are scanned as text, which is enough to find names.
"""

import argparse
import json
import re
import sys

# A metric name that starts with fer_, not part of a recording-rule name
# (level:metric:operation) or of a longer identifier.
METRIC_RE = re.compile(r"(?<![\w:])fer_[A-Za-z0-9_]*(?![\w:])")
QUOTED_RE = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
VARIABLE_RE = re.compile(r"\$\{(\w+)(?::[\w]+)?\}|\$(\w+)|\[\[(\w+)\]\]")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
SUMMARY_SUFFIXES = ("_sum", "_count")


def parse_exposition(text):
    """Returns ({family name: type}, {sample name}) from text exposition."""
    types = {}
    samples = set()
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split()
            if len(parts) >= 4 and parts[1] == "TYPE":
                types[parts[2]] = parts[3]
            continue
        match = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line)
        if match:
            samples.add(match.group(0))
    return types, samples


def metric_names(expression):
    """fer_* names in a PromQL expression, ignoring quoted label values."""
    return set(METRIC_RE.findall(QUOTED_RE.sub('""', expression)))


def check_name(name, types, samples):
    """Returns None if `name` can be queried against the exposition, else why not."""
    if types.get(name) in ("histogram", "summary"):
        return "%s is a %s: query %s_bucket/_sum/_count" % (name, types[name], name)
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            base = name[: -len(suffix)]
            kind = types.get(base)
            if kind == "histogram" or (kind == "summary" and suffix in SUMMARY_SUFFIXES):
                return None
            if kind == "summary":
                return "%s: %s is a summary, which has no buckets" % (name, base)
    if name in samples or (name in types and types[name] not in ("histogram", "summary")):
        return None
    return "%s is not exported" % name


def walk_panels(panels):
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))


def dashboard_expressions(dashboard, problems):
    """Yields (where, expression) for every query in the dashboard."""
    ids = set()
    for panel in walk_panels(dashboard.get("panels", [])):
        title = panel.get("title", "<untitled>")
        if "id" not in panel:
            problems.append("panel %r has no id" % title)
        elif panel["id"] in ids:
            problems.append("panel id %s used twice (panel %r)" % (panel["id"], title))
        else:
            ids.add(panel["id"])
        if panel.get("type") == "row":
            continue
        targets = panel.get("targets", [])
        if not targets:
            problems.append("panel %r has no queries" % title)
        ref_ids = set()
        for target in targets:
            ref_id = target.get("refId")
            if not ref_id or ref_id in ref_ids:
                problems.append("panel %r: missing or repeated refId %r" % (title, ref_id))
            ref_ids.add(ref_id)
            expression = target.get("expr", "")
            if not expression.strip():
                problems.append("panel %r query %s has no expression" % (title, ref_id))
            yield "panel %r" % title, expression
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable.get("query")
            if isinstance(query, dict):
                query = query.get("query", "")
            yield "variable $%s" % variable.get("name"), query or variable.get("definition", "")


def check_variables(dashboard, problems):
    defined = {v.get("name") for v in dashboard.get("templating", {}).get("list", [])}
    used = set()
    for match in VARIABLE_RE.finditer(json.dumps(dashboard)):
        name = next(group for group in match.groups() if group)
        if not name.startswith("__"):  # Grafana's built-ins: $__rate_interval, ...
            used.add(name)
    for name in sorted(used - defined):
        problems.append("variable $%s is used but not defined in templating" % name)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dashboard")
    parser.add_argument("exposition")
    parser.add_argument("--rules", nargs="*", default=[], help="Prometheus rule files to scan too")
    parser.add_argument("--allow-missing", nargs="*", default=[], metavar="NAME")
    args = parser.parse_args(argv)

    problems = []
    try:
        with open(args.dashboard, encoding="utf-8") as f:
            dashboard = json.load(f)
    except (OSError, ValueError) as e:
        print("%s: not a readable JSON file: %s" % (args.dashboard, e))
        return 1
    with open(args.exposition, encoding="utf-8") as f:
        types, samples = parse_exposition(f.read())
    if not any(name.startswith("fer_") for name in samples):
        print("%s: no fer_* samples in the exposition" % args.exposition)
        return 1

    for key in ("uid", "title", "panels"):
        if not dashboard.get(key):
            problems.append("dashboard has no %s" % key)
    check_variables(dashboard, problems)

    uses = {}  # metric name -> where it is used
    for where, expression in dashboard_expressions(dashboard, problems):
        for name in metric_names(expression):
            uses.setdefault(name, []).append(where)
    for path in args.rules:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                code = line.split("#", 1)[0] if not line.lstrip().startswith("#") else ""
                for name in metric_names(code):
                    uses.setdefault(name, []).append("%s:%d" % (path, number))
    if not uses:
        problems.append("no fer_* metric is queried at all")

    allowed = set(args.allow_missing)
    for name in sorted(uses):
        why = check_name(name, types, samples)
        if why is None:
            continue
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if name in allowed or base in allowed:
            print("note: %s (allowed missing)" % why)
            continue
        problems.append("%s (used in %s)" % (why, ", ".join(sorted(set(uses[name]))[:3])))

    for problem in problems:
        print(problem)
    print("%s: %d fer_* names checked against %s, %d problem(s)"
          % (args.dashboard, len(uses), args.exposition, len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
