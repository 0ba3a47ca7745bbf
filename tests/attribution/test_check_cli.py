"""`attribution check --config FILE`: what serve or a reload would refuse, found first;
and the systemd unit's reload, which runs it before the signal."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attribution.cli import main
from ribd.snapshot import SnapshotLock
from tests.attribution.observed import ServedProcess, router_block
from tests.attribution.pki import make_pki, renew_server
from tests.deploy.common import unit_settings

MINIMAL = '[service]\nlocal_as = 64500\nrouter_id = "192.0.2.1"\n'
ROUTER = '[[routers]]\nname = "edge1"\nneighbor = "127.0.0.2"\nexporters = ["127.0.1.1"]\n'


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["check", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_good_file_is_summarised_with_its_tls_and_tokens(tmp_path, capsys):
    pki = make_pki(tmp_path)
    renew_server(pki, pki.server_cert, pki.server_key, subject="localhost", valid_days=90)
    tokens = tmp_path / "read.tokens"
    tokens.write_text("r-1\n")
    tokens.chmod(0o600)
    snapshot = tmp_path / "state" / "rib.snapshot"
    path = tmp_path / "a.toml"
    path.write_text(
        MINIMAL.replace("[service]\n", f'[service]\nsnapshot_path = "{snapshot}"\n')
        + ROUTER
        + f'[api]\ntls_cert = "{pki.server_cert}"\ntls_key = "{pki.server_key}"\n'
        + f'tls_client_ca = "{pki.ca}"\nread_token_file = "{tokens}"\n'
        + '[metrics]\nlisten = "127.0.0.1:9179"\n'
    )
    code, out, err = run(capsys, "--config", str(path))
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == f"{path}: OK"
    assert "routers: 1 (edge1); overrides: 0; [[ix]]: 0" in out
    assert "gRPC: 127.0.0.1:50051, mutual TLS (CN=localhost, valid until " in out
    assert "tokens: read" in out
    assert "metrics: 127.0.0.1:9179, plaintext, no tokens" in out
    assert f"snapshot: {snapshot} (none written yet), every 300 s" in out
    # It changed nothing: no directory, no lock file made.
    assert not snapshot.parent.exists()


def test_a_broken_file_names_every_problem_and_exits_2(tmp_path, capsys):
    path = tmp_path / "a.toml"
    path.write_text(
        MINIMAL + "max_batch_flows = 0\n" + ROUTER.replace('"127.0.0.2"', '"nope"') + "x = 1\n"
    )
    code, out, err = run(capsys, "--config", str(path))
    assert code == 2 and out == ""
    assert f"{path}: 3 problems:" in err
    for key in ("service.max_batch_flows", "routers[0].neighbor", "routers[0].x"):
        assert key in err


@pytest.mark.parametrize(
    ("section", "key", "needle"),
    [
        ("api", "read_token_file", "holds no token"),
        ("metrics", "token_file", "holds no token"),
        ("api", "tls_key", "does not match the certificate"),
        ("metrics", "tls_key", "does not match the certificate"),
    ],
)
def test_an_unusable_tls_or_token_file_exits_2_naming_it(tmp_path, capsys, section, key, needle):
    pki = make_pki(tmp_path)
    empty = tmp_path / "empty.tokens"
    empty.write_text("# none\n")
    if key.endswith("token_file"):
        files = f'{key} = "{empty}"\n'
    else:  # a key of another certificate
        files = f'tls_cert = "{pki.server_cert}"\ntls_key = "{pki.client_key}"\n'
    listen = 'listen = "127.0.0.1:9179"\n' if section == "metrics" else ""
    path = tmp_path / "a.toml"
    path.write_text(MINIMAL + f"[{section}]\n{listen}{files}")
    code, out, err = run(capsys, "--config", str(path))
    assert code == 2 and out == ""
    assert f"[{section}] {key}: " in err and needle in err


def test_a_certificate_close_to_expiry_is_a_warning_and_strict_makes_it_exit_1(tmp_path, capsys):
    pki = make_pki(tmp_path)
    renew_server(pki, pki.server_cert, pki.server_key, subject="localhost", valid_days=3)
    path = tmp_path / "a.toml"
    path.write_text(
        MINIMAL + f'[api]\ntls_cert = "{pki.server_cert}"\ntls_key = "{pki.server_key}"\n'
    )
    code, out, err = run(capsys, "--config", str(path))
    assert code == 0 and "OK" in out
    assert err == "warning: [api] tls_cert: the certificate expires in 3.0 days\n"
    code, out, err = run(capsys, "--config", str(path), "--strict", "--quiet")
    assert (code, out) == (1, "")
    assert "expires in" in err


def test_the_configs_own_warnings_and_the_files_warnings_are_printed(tmp_path, capsys):
    rule = '[[overrides]]\nname = "{}"\nexporter = "127.0.1.1"\nin_if = 3\npeer_as = 65001\n'
    tokens = tmp_path / "read.tokens"
    tokens.write_text("r-1\n")
    tokens.chmod(0o644)
    path = tmp_path / "a.toml"
    path.write_text(
        MINIMAL
        + ROUTER
        + rule.format("first")
        + rule.format("second")
        + f'[api]\nread_token_file = "{tokens}"\n'
    )
    code, _, err = run(capsys, "--config", str(path))
    assert code == 0
    warnings = err.splitlines()
    assert "overrides[1] ('second') never matches: 'first' comes first" in warnings[0]
    assert warnings[1] == (
        f"warning: [api] read_token_file: {tokens} is readable by every user (mode 0644): "
        "chmod o-rwx"
    )


def test_a_snapshot_held_by_a_running_service_is_said_so(tmp_path, capsys):
    snapshot = tmp_path / "rib.snapshot"
    snapshot.write_bytes(b"x" * (3 << 20))
    path = tmp_path / "a.toml"
    path.write_text(MINIMAL.replace("[service]\n", f'[service]\nsnapshot_path = "{snapshot}"\n'))
    lock = SnapshotLock(str(snapshot))
    try:
        code, out, _ = run(capsys, "--config", str(path))
    finally:
        lock.release()
    assert code == 0
    assert f"snapshot: {snapshot} (3 MiB, written " in out
    assert f"held by a running service (pid {os.getpid()})" in out
    _, out, _ = run(capsys, "--config", str(path))
    assert "held by" not in out  # released


def reload_as_systemd_does(config: str, main_pid: int) -> int:
    """The unit's ExecReload lines, run in order as systemd runs them: the first that
    fails ends the reload (the unit's install prefix replaced by this checkout's)."""
    here = str(Path(sys.executable).parent) + "/"
    for line in unit_settings()["Service", "ExecReload"]:
        line = line.replace("/opt/attribution/bin/", here)
        line = line.replace("/etc/attribution/attribution.toml", config)
        line = line.replace("$MAINPID", str(main_pid))
        if subprocess.run(shlex.split(line), capture_output=True, timeout=120).returncode:
            return 1
    return 0


def wait_for_log(svc: ServedProcess, text: str) -> None:
    deadline = time.monotonic() + 60
    while text not in svc.log_text():
        assert time.monotonic() < deadline, svc.log_text()
        time.sleep(0.1)


def test_systemd_reload_fails_on_a_broken_file_and_never_signals_the_service():
    svc = ServedProcess(router_block("edge1", "127.0.0.2", "127.0.1.1"))
    try:
        wait_for_log(svc, "serving:")
        good = Path(svc.config_path).read_text()
        Path(svc.config_path).write_text(good + "\n[service2]\n")
        assert reload_as_systemd_does(svc.config_path, svc.proc.pid) == 1
        time.sleep(0.5)
        assert "config reload" not in svc.log_text()  # no SIGHUP was sent
        Path(svc.config_path).write_text(good)
        assert reload_as_systemd_does(svc.config_path, svc.proc.pid) == 0
        wait_for_log(svc, "config reloaded")
    finally:
        svc.stop()


def test_a_supervised_exabgp_that_cannot_be_started_is_a_problem(tmp_path, capsys):
    path = tmp_path / "a.toml"
    path.write_text(MINIMAL + '[bgp]\nexabgp_command = ["/nonexistent/exabgp"]\n')
    code, out, err = run(capsys, "--config", str(path))
    assert (code, out) == (2, "")
    assert "bgp.exabgp_command: '/nonexistent/exabgp' is not an executable" in err
    path.write_text(MINIMAL + f'[bgp]\nexabgp_command = ["{sys.executable}", "-m", "x"]\n')
    code, out, _ = run(capsys, "--config", str(path))
    assert code == 0 and f"ExaBGP supervised ({sys.executable})" in out
    path.write_text(MINIMAL + '[bgp]\nexabgp = "external"\nexabgp_command = ["/nonexistent"]\n')
    code, out, _ = run(capsys, "--config", str(path))
    assert code == 0 and "ExaBGP external," in out  # not started by us: not looked for


def test_a_snapshot_is_inspected_and_a_corrupt_one_is_a_warning(tmp_path, capsys):
    from ribd.snapshot import write_snapshot
    from tests.attribution.helpers import build_world

    snapshot = tmp_path / "rib.snapshot"
    rib, _ = build_world()
    write_snapshot(rib, snapshot)
    path = tmp_path / "a.toml"
    path.write_text(MINIMAL.replace("[service]\n", f'[service]\nsnapshot_path = "{snapshot}"\n'))
    code, out, err = run(capsys, "--config", str(path))
    assert (code, err) == (0, "")
    assert "format 2, 3 routers, 10 distinct prefixes, checksum good" in out
    data = bytearray(snapshot.read_bytes())
    data[-10] ^= 0xFF  # one flipped byte in the body
    snapshot.write_bytes(bytes(data))
    code, out, err = run(capsys, "--config", str(path), "--strict")
    assert code == 1 and "unusable" in out
    assert err == (
        f"warning: service.snapshot_path: {snapshot}: checksum mismatch: the body is corrupt; "
        "a start would load every table over BGP (cold) and the next write replaces it\n"
    )
    snapshot.write_bytes(bytes(data[:-100]))
    _, _, err = run(capsys, "--config", str(path))
    assert "truncated: body has" in err
