"""deploy/kubernetes/monitoring/: the Prometheus Operator's objects for the service.

No operator runs here, so these check what would go wrong silently in a cluster: rules
that drifted from the rule file promtool tests, a ServiceMonitor that selects no Service
or scrapes each pod twice, and a job name other than the one AttributionDown reads.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.deploy.common import DEPLOY, KUBERNETES

MONITORING = KUBERNETES / "monitoring"
RULES = DEPLOY / "prometheus" / "attribution-alerts.yml"
GENERATOR = DEPLOY / "prometheus" / "prometheusrule.py"
PROMTOOL = shutil.which("promtool")


def manifests(directory=KUBERNETES) -> list[dict]:
    return [
        doc
        for path in sorted(directory.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def one(kind: str) -> dict:
    (found,) = [doc for doc in manifests(MONITORING) if doc["kind"] == kind]
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
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    assert rule["metadata"]["namespace"] == "attribution"


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (.ci/run installs it)")
def test_the_prometheusrules_groups_pass_promtool_check(tmp_path):
    extracted = tmp_path / "rules.yml"
    extracted.write_text(yaml.safe_dump({"groups": one("PrometheusRule")["spec"]["groups"]}))
    out = subprocess.run(
        [PROMTOOL, "check", "rules", str(extracted)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
    rules = sum(len(g["rules"]) for g in one("PrometheusRule")["spec"]["groups"])
    assert f"SUCCESS: {rules} rules found" in out.stdout, out.stdout


def test_the_servicemonitor_scrapes_every_pod_once_under_the_job_the_rules_read():
    monitor = one("ServiceMonitor")
    spec = monitor["spec"]
    wanted = spec["selector"]["matchLabels"]
    services = [
        s
        for s in manifests()
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
        r["expr"]
        for g in yaml.safe_load(RULES.read_text())["groups"]
        for r in g["rules"]
        if r.get("alert") == "AttributionDown"
    )
    assert re.search(r'job="([^"]+)"', down).group(1) == job
