"""Print deploy/prometheus/attribution-alerts.yml as a Prometheus Operator PrometheusRule.

    python deploy/prometheus/prometheusrule.py > deploy/kubernetes/monitoring/prometheusrule.yaml

The rule file stays the one source (promtool checks and unit-tests it); this wraps its
groups, unchanged, in the object the operator reads. tests/deploy/test_alerts.py fails
when the two differ.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

RULES = Path(__file__).with_name("attribution-alerts.yml")
HEADER = """\
# Generated from deploy/prometheus/attribution-alerts.yml by
#   python deploy/prometheus/prometheusrule.py > deploy/kubernetes/monitoring/prometheusrule.yaml
# Edit the rule file, not this one. See servicemonitor.yaml here for the labels
# kube-prometheus-stack selects rules by.
"""


def prometheus_rule(rules: Path = RULES) -> str:
    groups = yaml.safe_load(rules.read_text())["groups"]
    document = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "attribution",
            "namespace": "attribution",
            "labels": {"app.kubernetes.io/name": "attribution"},
        },
        "spec": {"groups": groups},
    }
    return HEADER + yaml.safe_dump(document, sort_keys=False, width=100, allow_unicode=True)


if __name__ == "__main__":
    sys.stdout.write(prometheus_rule())
