"""A refused reload, the file in effect and a pending restart, seen in a real scrape.

A real `attribution serve` (supervised ExaBGP), reloaded with real SIGHUPs; its
/metrics read over HTTP. Before these metrics a refused reload was only a log
line: nothing to alert on while the file on disk and the running config differed.
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
from pathlib import Path

from ribd.speaker import wait_until
from tests.attribution.helpers import external_service
from tests.attribution.observed import ServedProcess, metric, router_block

RELOADS = "attribution_config_reloads_total"


def digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def digest_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def info_labels(values: dict) -> list[str]:
    """The sha256 labels of attribution_config_info in a scrape."""
    return [dict(labels)["sha256"] for name, labels in values if name == "attribution_config_info"]


def reloaded(p: ServedProcess, text: str, outcome: str, before: float) -> dict:
    """Write ``text`` as the config, SIGHUP, and wait for the reload's count."""
    Path(p.config_path).write_text(text)
    p.proc.send_signal(signal.SIGHUP)

    def counted() -> dict | None:
        values = p.metrics()
        return values if metric(values, RELOADS, outcome=outcome) > before else None

    return wait_until(counted, 60, 0.1, f"a {outcome} reload counted")


def wait_scrape(p: ServedProcess) -> dict:
    return wait_until(p.scraped, 60, 0.1, "the metrics endpoint")


def test_a_refused_reload_shows_until_a_good_file_is_taken_and_the_digest_follows_the_file():
    p = ServedProcess(router_block("edge1", "127.0.0.2", "127.0.1.1"))
    try:
        started = time.time()
        values = wait_scrape(p)
        original = Path(p.config_path).read_text()
        assert info_labels(values) == [digest(p.config_path)]
        assert metric(values, "attribution_config_last_reload_successful") == 1
        assert metric(values, RELOADS, outcome="taken") == 0
        assert metric(values, RELOADS, outcome="refused") == 0
        first_read = metric(values, "attribution_config_last_reload_success_timestamp_seconds")
        assert started - 60 < first_read <= time.time()

        broken = original + '\n[[overrides]]\nname = "x"\nexporter = "not an address"\n'
        values = reloaded(p, broken, "refused", 0)
        assert metric(values, "attribution_config_last_reload_successful") == 0
        assert info_labels(values) == [digest_of(original)]
        assert (
            metric(values, "attribution_config_last_reload_success_timestamp_seconds") == first_read
        )
        assert metric(values, "attribution_config_restart_pending") == 0

        fixed = (
            original
            + '\n[[overrides]]\nname = "x"\nexporter = "127.0.1.1"\nin_if = 20\npeer_as = 65010\n'
        )
        values = reloaded(p, fixed, "taken", 0)
        assert metric(values, "attribution_config_last_reload_successful") == 1
        assert info_labels(values) == [digest_of(fixed)] != [digest_of(original)]
        assert metric(values, "attribution_config_last_reload_success_timestamp_seconds") > (
            first_read
        )
        assert metric(values, RELOADS, outcome="refused") == 1
    finally:
        p.stop()


def test_a_setting_only_a_restart_applies_is_pending_until_reverted():
    p = ServedProcess(router_block("edge1", "127.0.0.2", "127.0.1.1"))
    try:
        values = wait_scrape(p)
        original = Path(p.config_path).read_text()
        assert metric(values, "attribution_config_restart_pending") == 0
        bigger = original.replace("[service]\n", "[service]\nmax_message_bytes = 8388608\n", 1)
        values = reloaded(p, bigger, "taken", 0)
        assert metric(values, "attribution_config_restart_pending") == 1
        assert "needs a restart to take effect" in p.log_text()
        values = reloaded(p, original, "taken", 1)
        assert metric(values, "attribution_config_restart_pending") == 0
        assert info_labels(values) == [digest_of(original)]
    finally:
        p.stop()


def test_the_snapshot_interval_is_exported_only_with_a_snapshot_path(tmp_path):
    plain = ServedProcess(router_block("edge1", "127.0.0.2", "127.0.1.1"))
    try:
        assert not [k for k in wait_scrape(plain) if k[0].startswith("attribution_snapshot_int")]
    finally:
        plain.stop()
    snap = tmp_path / "rib.snapshot"
    kept = ServedProcess(
        router_block("edge1", "127.0.0.2", "127.0.1.1"),
        service=f'snapshot_path = "{snap}"\nsnapshot_interval = 120\n',
    )
    try:
        assert metric(wait_scrape(kept), "attribution_snapshot_interval_seconds") == 120
    finally:
        kept.stop()


def test_check_prints_the_digest_the_metric_shows(tmp_path):
    p = ServedProcess(router_block("edge1", "127.0.0.2", "127.0.1.1"))
    try:
        values = wait_scrape(p)
        out = subprocess.run(
            [sys.executable, "-m", "attribution.cli", "check", "--config", p.config_path],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert f"sha256: {info_labels(values)[0]}" in out.stdout
    finally:
        p.stop()


def test_replica_files_that_differ_in_router_id_share_the_answers_digest_and_not_the_file_digest():
    from attribution.config import parse_config
    from attribution.config_reloads import answers_digest
    from tests.deploy.test_kubernetes import one

    files = one("ConfigMap")["data"]
    configs = [parse_config(text, name) for name, text in sorted(files.items())]
    assert len(configs) >= 2
    assert len({c.digest for c in configs}) == len(configs)
    assert len({answers_digest(c) for c in configs}) == 1
    text = next(iter(files.values()))
    base = answers_digest(parse_config(text, "a.toml"))
    # comments and layout: the same answers
    assert answers_digest(parse_config("# a comment\n" + text.replace(" = ", "=", 3), "b")) == base
    # an override more: other answers
    rule = '\n[[overrides]]\nname = "pni"\nexporter = "127.0.1.1"\nin_if = 7\npeer_as = 65010\n'
    assert answers_digest(parse_config(text + rule, "c.toml")) != base


def test_the_answers_digest_is_the_same_in_another_process():
    """No set order or object address in it: replicas are separate processes."""
    from tests.deploy.test_kubernetes import one

    text = next(iter(one("ConfigMap")["data"].values()))
    code = (
        "import sys; from attribution.config import parse_config; "
        "from attribution.config_reloads import answers_digest; "
        "print(answers_digest(parse_config(sys.stdin.read(), 'a.toml')))"
    )
    seen = {
        subprocess.run(
            [sys.executable, "-c", code],
            input=text,
            capture_output=True,
            text=True,
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
            timeout=60,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(seen) == 1


def test_a_reload_asked_while_the_service_stops_is_not_counted_as_a_refused_file(tmp_path):
    """A SIGHUP or Reload RPC that lands during shutdown is answered "stopping"; the
    file was fine, so the last scrapes before exit must not say the reload failed."""
    service = external_service(tmp_path)
    service.start()
    try:
        assert service.reload().ok
        service.stop()
        result = service.reload()
    finally:
        service.stop()
    assert not result.ok and "stopping" in result.error
    _, _, taken, refused, last_ok, _ = service.config_reloads.copy()
    assert (taken, refused, last_ok) == (1, 0, True)
