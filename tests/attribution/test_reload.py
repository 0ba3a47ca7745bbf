"""Reloading the config in a running daemon: good files apply, broken ones change nothing."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from attribution.client import channel
from attribution.config import MAX_CONFIG_BYTES, parse_config
from attribution.reload_changes import describe_changes, restart_needed
from attribution.service import Service
from attribution.v1 import attribution_pb2 as pb
from attribution.v1 import attribution_pb2_grpc as pb_grpc
from ribd.events import RoutesAnnounced, SessionState
from ribd.speaker import free_port
from tests.attribution.helpers import CONFIG, EDGE1, attrs


def write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def external(text: str, tmp_path: Path) -> str:
    return text.replace(
        "[[routers]]",
        f'[bgp]\nexabgp = "external"\nfeed_socket = "{tmp_path}/feed.sock"\n\n[[routers]]',
        1,
    )


@pytest.fixture
def running(tmp_path):
    path = tmp_path / "attribution.toml"
    write(path, external(CONFIG, tmp_path))
    service = Service(str(path))
    service.start()
    service.rib.apply(SessionState(EDGE1, "up"))
    service.rib.apply(
        RoutesAnnounced(EDGE1, "ipv4 unicast", ("10.0.0.0/8",), None, attrs((65001, 65002)))
    )
    with channel(f"127.0.0.1:{service.grpc_port}") as ch:
        yield path, service, pb_grpc.AttributionStub(ch)
    service.stop()


def src_peer(stub, in_if: int) -> tuple[int, str]:
    a = stub.Resolve(
        pb.Flow(exporter="127.0.1.1", src_addr="10.1.1.1", dst_addr="10.2.2.2", in_if=in_if)
    )
    return a.src_peer_as, a.override


def test_reload_applies_new_overrides_without_restart(running, tmp_path):
    path, _, stub = running
    assert src_peer(stub, 30) == (65020, "pni-b")
    write(path, external(CONFIG.replace("peer_as = 65020", "peer_as = 65021"), tmp_path))
    reply = stub.ReloadConfig(pb.ReloadConfigRequest())
    assert reply.ok and reply.overrides == 2
    assert src_peer(stub, 30) == (65021, "pni-b")


def test_broken_reload_keeps_the_running_config_and_says_why(running, tmp_path):
    path, service, stub = running
    write(path, external(CONFIG.replace("in_if = 30", 'in_if = "x"'), tmp_path))
    reply = stub.ReloadConfig(pb.ReloadConfigRequest())
    assert not reply.ok
    assert str(path) in reply.error and "overrides[1].in_if" in reply.error
    assert src_peer(stub, 30) == (65020, "pni-b")  # old rules still in force
    assert service.config.overrides[1].peer_as == 65020


def serve(path: Path, port: int, *options: str) -> subprocess.Popen[str]:
    """`attribution [OPTIONS] serve` on ``path`` with gRPC on 127.0.0.1:``port``; stderr piped."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "attribution.cli",
            *options,
            "serve",
            "--config",
            str(path),
            "--grpc-listen",
            f"127.0.0.1:{port}",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sighup_reloads_a_running_daemon(tmp_path):
    """The real command: `attribution serve`, SIGHUP, and `attribution reload`."""
    path = tmp_path / "attribution.toml"
    write(path, external(CONFIG.replace('"127.0.0.1:0"', '"127.0.0.1:0"'), tmp_path))
    port = free_port()
    proc = serve(path, port)
    try:
        target = f"127.0.0.1:{port}"
        with channel(target) as ch:
            stub = pb_grpc.AttributionStub(ch)
            deadline = time.time() + 30
            while True:
                try:
                    stub.ListRouters(pb.ListRoutersRequest(), timeout=1)
                    break
                except Exception:
                    if time.time() > deadline or proc.poll() is not None:
                        raise
                    time.sleep(0.1)
            assert src_peer(stub, 30) == (65020, "pni-b")
            write(path, external(CONFIG.replace("peer_as = 65020", "peer_as = 65030"), tmp_path))
            proc.send_signal(signal.SIGHUP)
            deadline = time.time() + 10
            while src_peer(stub, 30)[0] != 65030:
                assert time.time() < deadline, "SIGHUP did not reload"
                time.sleep(0.05)
            write(path, "this is = not [toml")
            out = subprocess.run(
                [sys.executable, "-m", "attribution.cli", "reload", "--target", target],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert out.returncode == 1
            assert "TOML syntax error" in out.stderr and "running config is kept" in out.stderr
            assert src_peer(stub, 30) == (65030, "pni-b")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]


def test_reverting_a_bgp_change_clears_the_restart_warning(running, tmp_path):
    """Compared with what the sessions were started with, not with the last reload."""
    path, _, stub = running
    changed = external(CONFIG, tmp_path).replace(
        "[[routers]]", "restart_hold_time = 100\n\n[[routers]]", 1
    )
    write(path, changed)
    reply = stub.ReloadConfig(pb.ReloadConfigRequest())
    assert reply.ok
    assert [w for w in reply.warnings if "restart" in w] == [
        "needs a restart to take effect (the running sessions and listeners are kept): "
        "[bgp] restart_hold_time 300.0 -> 100.0"
    ]
    write(path, external(CONFIG, tmp_path))  # back to what is running
    reply = stub.ReloadConfig(pb.ReloadConfigRequest())
    assert reply.ok and list(reply.warnings) == []


def test_a_router_session_change_names_the_router_and_fields(running, tmp_path):
    path, _, stub = running
    text = CONFIG.replace('name = "edge2"', 'name = "edge2"\nhold_time = 90\nstale_hold_time = 5')
    write(path, external(text, tmp_path))
    reply = stub.ReloadConfig(pb.ReloadConfigRequest())
    assert reply.ok
    # stale_hold_time of a router applies at once; hold_time needs the session restarted
    assert list(reply.warnings) == [
        "needs a restart to take effect (the running sessions and listeners are kept): "
        "session of edge2 (hold_time)"
    ]


def test_prefix_limits_apply_at_once_and_refuse_past_the_new_limit(running, tmp_path, caplog):
    """[bgp] max_prefixes_* and a router's own keys are live: no restart warning,
    the running routers' families take them, and edge1 (holding 10.0.0.0/8) may
    add no prefix past a limit of 1 while a re-announce of what it holds still applies."""
    path, service, stub = running
    text = external(CONFIG, tmp_path).replace(
        "[[routers]]", "max_prefixes_ipv4 = 1\nmax_prefixes_ipv6 = 0\n\n[[routers]]", 1
    )
    text = text.replace('name = "edge2"', 'name = "edge2"\nmax_prefixes_ipv4 = 500')
    write(path, text)
    with caplog.at_level(logging.INFO, logger="attribution.service"):
        reply = stub.ReloadConfig(pb.ReloadConfigRequest())
    assert reply.ok and list(reply.warnings) == []
    assert (
        "config reloaded: max_prefixes_ipv4 of edge2 None -> 500, "
        "[bgp] max_prefixes_ipv4 4000000 -> 1, [bgp] max_prefixes_ipv6 1000000 -> 0"
    ) in caplog.messages
    service.rib.apply(
        RoutesAnnounced(
            EDGE1, "ipv4 unicast", ("10.0.0.0/8", "10.9.0.0/16"), None, attrs((65001, 65009))
        )
    )
    routers = {r.name: r for r in stub.ListRouters(pb.ListRoutersRequest()).routers}
    v4 = {f.family: f for f in routers["edge1"].families}["ipv4 unicast"]
    assert (v4.prefixes, v4.max_prefixes, v4.prefixes_refused) == (1, 1, 1)
    assert a_route(stub, "10.0.0.1") == [65001, 65009]  # the held prefix was updated


def a_route(stub, address: str) -> list[int]:
    reply = stub.LookupRoute(pb.LookupRouteRequest(router="edge1", address=address))
    return [a for seg in reply.routes[0].as_path for a in seg.asns]


def test_reload_logs_what_it_changed(running, tmp_path, caplog):
    path, _, stub = running
    text = CONFIG.replace(
        'fallback = ["edge2"]', 'fallback = ["edge2"]\nas_set_policy = "highest"'
    ).replace('exporters = ["127.0.1.1"]', 'exporters = ["127.0.1.1", "127.0.1.9"]')
    text += '\n[[overrides]]\nname = "pni-c"\nexporter = "127.0.1.1"\nin_if = 40\npeer_as = 65040\n'
    write(path, external(text, tmp_path))
    with caplog.at_level(logging.INFO, logger="attribution.service"):
        assert stub.ReloadConfig(pb.ReloadConfigRequest()).ok
    assert (
        "config reloaded: overrides 2 -> 3, exporters of edge1 changed, "
        "as_set_policy aggregator -> highest"
    ) in caplog.messages
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="attribution.service"):
        assert stub.ReloadConfig(pb.ReloadConfigRequest()).ok
    assert "config reloaded: no changes" in caplog.messages


def big_config(tmp_path: Path) -> str:
    """A valid file just under the size limit: 10 MiB of override rules, slow to parse."""
    rule = '[[overrides]]\nexporter = "127.0.1.1"\nin_if = {}\npeer_as = 65000\n'
    size = (MAX_CONFIG_BYTES * 5 // 8) // len(rule.format(1000000))
    text = external(CONFIG, tmp_path) + "".join(rule.format(1000 + i) for i in range(size))
    assert len(text) < MAX_CONFIG_BYTES
    return text


def test_sigterm_stops_the_daemon_during_a_long_reload_and_sighups_coalesce(tmp_path):
    """A SIGHUP reload of a large file must not keep SIGTERM from stopping the daemon
    (the reload ran in a non-daemon thread: kill -9 was needed), and SIGHUPs that
    arrive during a reload make one more reload, not one each."""
    path = tmp_path / "attribution.toml"
    write(path, external(CONFIG, tmp_path))
    port = free_port()
    proc = serve(path, port)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:

        def wait_for(text: str, timeout: float = 60) -> None:
            deadline = time.monotonic() + timeout
            while not any(text in line for line in list(lines)):
                assert proc.poll() is None, "".join(lines)[-3000:]
                assert time.monotonic() < deadline, f"no {text!r} in:\n" + "".join(lines)[-3000:]
                time.sleep(0.05)

        wait_for("serving: gRPC")
        write(path, big_config(tmp_path))
        proc.send_signal(signal.SIGHUP)
        wait_for("config reload: reading")
        for _ in range(3):
            proc.send_signal(signal.SIGHUP)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)  # generous: stopping takes a second or two
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(10)
    assert proc.returncode == 0, "".join(lines)[-3000:]
    # It stopped without waiting for the reload (~10 s of parsing) to finish ...
    assert not any("config reloaded" in line for line in lines), "".join(lines)[-3000:]
    # ... and three more SIGHUPs during it asked for one more reload at most.
    assert sum("config reload: reading" in line for line in lines) <= 2


def test_a_report_error_refuses_the_reload(running, tmp_path):
    """[report] is part of the file: an error in it refuses the reload whole."""
    path, service, stub = running
    report = '\n[report]\ncurrency = "EUR"\ntop_n = 0\n'
    text = external(CONFIG.replace("peer_as = 65020", "peer_as = 65021"), tmp_path) + report
    write(path, text)
    reply = stub.ReloadConfig(pb.ReloadConfigRequest())
    assert not reply.ok
    line = text.splitlines().index("top_n = 0") + 1
    assert reply.error == (f"{path}:{line}: report.top_n: must be between 1 and 10000, got 0")
    assert src_peer(stub, 30) == (65020, "pni-b")  # nothing of the file applied
    write(path, text.replace("top_n = 0", "top_n = 5"))
    assert stub.ReloadConfig(pb.ReloadConfigRequest()).ok
    assert service.config.report["top_n"] == 5 and src_peer(stub, 30) == (65021, "pni-b")


def test_api_tls_and_limits_need_a_restart_token_files_do_not():
    """Token files are re-read at every reload; TLS files and limits only at start."""
    base = '[service]\nlocal_as = 64500\nrouter_id = "127.0.0.1"\n[api]\n'
    running = parse_config(base + "workers = 16\n")
    new = parse_config(
        base + 'workers = 8\ntls_cert = "s.crt"\ntls_key = "s.key"\nread_token_file = "r"\n'
    )
    assert restart_needed(running, new) == ["[api] tls_cert, tls_key, workers, max_streams"]
    assert describe_changes(running, new) == ["[api] read_token_file changed"]
    assert restart_needed(running, parse_config(base + 'read_token_file = "r"\n')) == []


def test_a_sighup_while_the_daemon_starts_is_a_reload_not_a_death(tmp_path):
    """Before run_forever set its handlers, SIGHUP's default action killed the
    daemon: with a large file that window lasts the whole first parse. Now a
    SIGHUP during start-up is remembered and served as one reload once serving."""
    path = tmp_path / "attribution.toml"
    write(path, big_config(tmp_path))
    port = free_port()
    proc = serve(path, port, "--log-level", "debug")
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while not any("starting: reading" in line for line in list(lines)):
            assert proc.poll() is None, "".join(lines)[-3000:]
            assert time.monotonic() < deadline, "".join(lines)[-3000:]
            time.sleep(0.01)
        proc.send_signal(signal.SIGHUP)  # inside the first parse of a 10 MiB file (seconds)
        deadline = time.monotonic() + 120
        while not any("config reloaded" in line for line in list(lines)):
            assert proc.poll() is None, f"died of the SIGHUP: {proc.returncode}"
            assert time.monotonic() < deadline, "".join(lines)[-3000:]
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(10)
    assert proc.returncode == 0, "".join(lines)[-3000:]


def test_the_serving_line_names_the_port_bound_when_the_config_asks_for_any(tmp_path):
    """`grpc_listen = "127.0.0.1:0"` binds a free port; the log said ":0", so an
    operator (or a script reading the log) could not tell where to connect."""
    path = tmp_path / "attribution.toml"
    write(path, external(CONFIG, tmp_path))
    proc = serve(path, 0)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "serving: gRPC on" in line:
                break
        port = int(line.split("serving: gRPC on 127.0.0.1:")[1].split(",")[0])
        assert port > 0
        with channel(f"127.0.0.1:{port}") as ch:
            replies = pb_grpc.AttributionStub(ch).ListRouters(pb.ListRoutersRequest(), timeout=10)
        assert [r.name for r in replies.routers]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
