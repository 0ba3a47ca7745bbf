"""deploy/kubernetes/monitoring/: the Prometheus Operator's objects for the service.

No operator runs here, so these check what would go wrong silently in a cluster: rules
that drifted from the rule file promtool tests, a ServiceMonitor that selects no Service
or scrapes each pod twice, and a job name other than the one AttributionDown reads.
"""

from __future__ import annotations

import re
import subprocess
import sys

import yaml

from tests.deploy.common import DEPLOY, KUBERNETES
from tests.deploy.test_alerts import needs_promtool, promtool_check_rules, rule_groups
from tests.deploy.test_kubernetes import documents

MONITORING = KUBERNETES / "monitoring"
GENERATOR = DEPLOY / "prometheus" / "prometheusrule.py"


def one(kind: str) -> dict:
    (found,) = [
        doc for _, doc in documents(sorted(MONITORING.glob("*.yaml"))) if doc["kind"] == kind
    ]
    assert found["apiVersion"] == "monitoring.coreos.com/v1"
    return found


def test_the_prometheusrule_is_the_rule_file_as_the_generator_writes_it():
    out = subprocess.run(
        [sys.executable, str(GENERATOR)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert out == (MONITORING / "prometheusrule.yaml").read_text(), (
        "stale: run python deploy/prometheus/prometheusrule.py "
        "> deploy/kubernetes/monitoring/prometheusrule.yaml"
    )
    rule = one("PrometheusRule")
    assert rule["spec"]["groups"] == rule_groups()
    assert rule["metadata"]["namespace"] == "attribution"


@needs_promtool
def test_the_prometheusrules_groups_pass_promtool_check(tmp_path):
    extracted = tmp_path / "rules.yml"
    extracted.write_text(yaml.safe_dump({"groups": one("PrometheusRule")["spec"]["groups"]}))
    out = promtool_check_rules(extracted)
    rules = sum(len(g["rules"]) for g in one("PrometheusRule")["spec"]["groups"])
    assert f"SUCCESS: {rules} rules found" in out, out


def test_the_servicemonitor_scrapes_every_pod_once_under_the_job_the_rules_read():
    monitor = one("ServiceMonitor")
    spec = monitor["spec"]
    wanted = spec["selector"]["matchLabels"]
    services = [
        s
        for _, s in documents()
        if s["kind"] == "Service"
        and s["metadata"]["namespace"] in spec["namespaceSelector"]["matchNames"]
        and wanted.items() <= s["metadata"].get("labels", {}).items()
    ]
    assert [s["metadata"]["name"] for s in services] == ["attribution-pods"], (
        "exactly one Service, or each pod is scraped once per Service selected"
    )
    (service,) = services
    assert service["spec"]["clusterIP"] == "None"  # one target per pod
    assert service["spec"]["publishNotReadyAddresses"] is True  # NOT_SERVING pods too
    (endpoint,) = spec["endpoints"]
    (port,) = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
    assert port["targetPort"] == "metrics"
    job = service["metadata"]["labels"][spec["jobLabel"]]
    down = next(
        r["expr"] for g in rule_groups() for r in g["rules"] if r.get("alert") == "AttributionDown"
    )
    assert re.search(r'job="([^"]+)"', down).group(1) == job
