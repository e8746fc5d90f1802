#!/usr/bin/env python3
"""check_dashboard.py - docs/grafana-scomm.json against the telemetry
conventions (ctest telemetry.dashboard).

Every panel query and every template query that names a metric must select
on job=~"$job" and instance=~"$instance" (two scomm engines on one
Prometheus are told apart by the target labels it adds), the job and
instance variables must exist and come from scomm_build_info, and every
query must parse: with promtool on PATH each one, with the Grafana
variables filled in, goes through `promtool check rules` (skipped, with a
message, without promtool).

    check_dashboard.py docs/grafana-scomm.json
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

WANT = ('job=~"$job"', 'instance=~"$instance"')


def exprs(node, out):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "expr" and isinstance(v, str):
                out.append(v)
            else:
                exprs(v, out)
    elif isinstance(node, list):
        for v in node:
            exprs(v, out)
    return out


def selectors_ok(q):
    """Each {...} selector of q holds both job and instance matchers, and
    every metric name is followed by one."""
    sels = re.findall(r"\{[^}]*\}", q)
    named = re.findall(r"\bscomm_[a-z_]+\b(?!\s*\{)", q)
    return bool(sels) and not named and all(
        all(w in s for w in WANT) for s in sels)


def main():
    path = sys.argv[1]
    with open(path) as f:
        dash = json.load(f)
    fails = []
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    for name in ("job", "instance"):
        if name not in variables:
            fails.append("no template variable '%s'" % name)
        elif "scomm_build_info" not in variables[name]["query"]:
            fails.append("variable '%s' does not come from scomm_build_info"
                         % name)
    queries = exprs(dash["panels"], [])
    for v in dash["templating"]["list"]:
        if v["name"] not in ("job",) and "scomm_" in v["query"]:
            q = v["query"]
            inner = q[q.index("(") + 1:q.rindex(",")]
            if v["name"] == "instance":
                if 'job=~"$job"' not in inner:
                    fails.append("variable instance: not filtered by job")
            elif not selectors_ok(inner):
                fails.append("variable %s: %s" % (v["name"], q))
    for q in queries:
        if not selectors_ok(q):
            fails.append("query without job/instance: " + q)
    print("%d panel queries, variables %s" % (len(queries),
                                             ", ".join(variables)))

    promtool = shutil.which("promtool")
    if promtool is None:
        print("SKIP (promtool part only): promtool not found; install "
              "Debian's prometheus package")
    else:
        fill = {"$__rate_interval": "5m", "$__range": "1h"}
        lines = ["groups:", "- name: dashboard", "  rules:"]
        for i, q in enumerate(queries):
            for k, v in fill.items():
                q = q.replace(k, v)
            q = re.sub(r"\$[a-z]+", ".*", q)
            lines.append("  - record: dashboard:q%d" % i)
            lines.append("    expr: %s" % json.dumps(q))
        with tempfile.NamedTemporaryFile("w", suffix=".yml",
                                         delete=False) as f:
            f.write("\n".join(lines) + "\n")
        try:
            r = subprocess.run([promtool, "check", "rules", f.name],
                               capture_output=True, text=True)
        finally:
            os.unlink(f.name)
        print("promtool check rules: exit %d" % r.returncode)
        if r.returncode != 0:
            fails.append("promtool check rules:\n" + r.stdout + r.stderr)
    for f in fails:
        print("FAIL - " + f)
    if not fails:
        print("ok   - every query selects on job and instance")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
