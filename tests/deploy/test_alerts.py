"""deploy/prometheus/attribution-alerts.yml: checked and unit-tested by promtool, then
evaluated by a real Prometheus scraping a real service.

The unit tests (attribution-alerts.test.yml) pin each rule's timing on made-up series;
only a real scrape shows that the names and labels the rules read are the ones the
service exports, that the documented scrape settings (https, a CA, a bearer token file)
work, and that no rule fails to evaluate on real series (a vector match Prometheus
refuses shows as the rule's health "err", not as a failed check).
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest
import yaml

from ribd.speaker import free_port, wait_until
from tests.attribution.observed import ServedProcess, router_block, stop_process
from tests.attribution.pki import make_pki

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "attribution-alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "attribution-alerts.test.yml"
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
# Read by rules but exported only where their subject exists: an [[ix]] section, a
# router's table (a BGP session that delivered one).
CONDITIONAL = {"attribution_ix_source_ok", "attribution_rib_converged"}

needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (Debian: prometheus; .ci/run installs it)"
)


def promtool_check_rules(path: Path) -> str:
    """``promtool check rules PATH``'s output; fails the test when promtool refuses."""
    out = subprocess.run(
        [PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


@needs_promtool
def test_the_rules_pass_promtool_check():
    promtool_check_rules(RULES)


@needs_promtool
def test_the_rules_unit_tests_pass():
    out = subprocess.run(
        [PROMTOOL, "test", "rules", str(RULE_TESTS)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=RULE_TESTS.parent,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def rule_groups() -> list[dict]:
    """The rule file's groups, as Prometheus (and a PrometheusRule's spec) read them."""
    return yaml.safe_load(RULES.read_text())["groups"]


def names_in_rules() -> set[str]:
    """The attribution_* metrics the rules' expressions read."""
    exprs = " ".join(r["expr"] for g in rule_groups() for r in g["rules"])
    return set(re.findall(r"\b(attribution_[a-z0-9_]+)", exprs))


def api(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/{path}", timeout=10) as r:
        answer = json.loads(r.read())
    assert answer["status"] == "success", answer
    return answer["data"]


def wait_for(what: str, check, timeout: float = 90.0):
    """``check()`` once truthy; OSError counts as not yet (Prometheus not listening)."""

    def attempt():
        try:
            return check()
        except OSError:
            return None

    return wait_until(attempt, timeout, 0.25, what)


def alerts(port: int) -> set[tuple[str, str, str]]:
    """(alert name, state, the label telling instances of it apart) of active alerts."""
    return {
        (
            a["labels"]["alertname"],
            a["state"],
            a["labels"].get("router") or a["labels"].get("server") or "",
        )
        for a in api(port, "alerts")["alerts"]
    }


@pytest.mark.skipif(
    PROMETHEUS is None, reason="prometheus is not installed (Debian: prometheus; .ci/run)"
)
def test_a_real_prometheus_scrapes_the_secured_service_and_every_rule_evaluates(tmp_path):
    pki = make_pki(tmp_path)  # the server certificate lasts 2 days: the 7-day warning fires
    token = tmp_path / "metrics.token"
    token.write_text("scrape-secret\n")
    token.chmod(0o600)
    served = ServedProcess(
        router_block("edge1", "127.0.0.2", "127.0.1.1"),  # nothing answers there: down
        service=f'snapshot_path = "{tmp_path}/rib.snapshot"\n',
        metrics=f'tls_cert = "{pki.server_cert}"\ntls_key = "{pki.server_key}"\n'
        f'token_file = "{token}"\n',
    )
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{RULES}]\n"
        "scrape_configs:\n"
        "  - job_name: attribution\n"
        "    scheme: https\n"
        f"    tls_config: {{ca_file: {pki.ca}}}\n"
        f"    authorization: {{credentials_file: {token}}}\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{served.metrics_port}']}}]\n"
    )
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 - closed below
    prometheus = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        target = wait_for(
            "the scrape target up",
            lambda: [t for t in api(port, "targets")["activeTargets"] if t["health"] == "up"],
        )
        assert target[0]["labels"]["job"] == "attribution"

        def evaluated() -> list[dict]:
            rules = [r for g in api(port, "rules")["groups"] for r in g["rules"]]
            done = [r for r in rules if r.get("lastEvaluation", "").startswith("20")]
            return rules if rules and len(done) == len(rules) else []

        rules = wait_for("every rule evaluated", evaluated)
        assert len(rules) == 25
        broken = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
        assert not broken

        # What this service's state must raise, with the labels the annotations name.
        expected = {
            ("AttributionBgpSessionDown", "pending", "edge1"),
            ("AttributionNotServing", "pending", ""),
            ("AttributionTlsCertificateExpiresSoon", "firing", "metrics"),
        }
        wait_for("the expected alerts", lambda: expected <= alerts(port))
        assert {a[0] for a in alerts(port)} == {a[0] for a in expected}

        # A broken file on a SIGHUP: the reload is refused, the alert goes pending.
        path = Path(served.config_path)
        path.write_text(path.read_text() + "\n[[routers]]\nname = 5\n")
        served.proc.send_signal(signal.SIGHUP)
        wait_for(
            "the refused reload's alert",
            lambda: ("AttributionConfigReloadFailed", "pending", "") in alerts(port),
        )

        # Every metric a rule reads is one this service exports (or is conditional).
        exported = set(api(port, "label/__name__/values"))
        missing = names_in_rules() - exported - CONDITIONAL
        assert not missing, sorted(missing)
        assert not CONDITIONAL & exported  # else the exception is stale: drop it
    finally:
        stop_process(prometheus)
        log.close()
        served.stop()
