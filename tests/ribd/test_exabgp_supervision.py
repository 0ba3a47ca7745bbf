"""The supervised ExaBGP: config values rendered safely, private files, visible failures.

Real ExaBGP processes on loopback; nothing mocked.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from attribution.config import ConfigError, parse_config
from ribd.exabgp import child_environment, default_exabgp_command, render_config, render_env
from ribd.settings import BgpSettings, NeighborSettings
from ribd.speaker import BgpTestbed, wait_until
from tests.attribution.helpers import CONFIG


def evil_password(target: Path) -> str:
    return (
        f"x''; }} process evil {{ run /usr/bin/touch {target}; encoder json; }} "
        "neighbor 127.0.0.66 { #"
    )


def exabgp_validate(settings: BgpSettings, path: Path) -> subprocess.CompletedProcess[str]:
    path.write_text(render_config(settings))
    return subprocess.run(
        [*default_exabgp_command(), "validate", "-n", str(path)],
        env=child_environment(render_env(settings)),
        capture_output=True,
        text=True,
        timeout=60,
    )


def ready(bed: BgpTestbed) -> bool:
    """ExaBGP parsed its config and started its API processes (our relay connected)."""
    return bed.feed.stats()["relays_connected"] >= 1


@pytest.mark.bgp
def test_a_password_that_closes_the_quote_never_runs_a_command(testbed, short_tmp: Path) -> None:
    target = short_tmp / "p"
    password = f"x''; }} process e {{ run /usr/bin/touch {target}; encoder json; }} #"
    assert len(password) <= 80  # a valid TCP MD5 key length: ExaBGP takes it
    bed: BgpTestbed = testbed(
        neighbors=[NeighborSettings("r1", "127.0.0.2", 65000, md5_password=password)]
    )
    wait_until(lambda: ready(bed), 30, what="the relay to connect")
    # ExaBGP starts all its processes together: with the relay up, "e" would be too.
    state = bed.supervisor.state()
    assert state.running and state.restarts == 0
    assert not target.exists()
    text = Path(bed.supervisor.config_path).read_text()
    assert "process e " not in text and "touch" not in text


@pytest.mark.bgp
def test_the_reported_attack_password_runs_nothing_and_is_refused_at_load(
    testbed, short_tmp: Path
) -> None:
    target = short_tmp / "pwned"
    password = evil_password(target)
    with pytest.raises(ConfigError, match=r"md5_password: is \d+ bytes"):
        parse_config(config_with("", f"md5_password = {password!r}"), "test.toml")
    # Given to the supervisor anyway, ExaBGP refuses the key and runs nothing.
    bed: BgpTestbed = testbed(
        neighbors=[NeighborSettings("r1", "127.0.0.2", 65000, md5_password=password)]
    )
    wait_until(lambda: "MD5 password" in bed.supervisor.state().last_error, 30)
    assert not target.exists()


@pytest.mark.bgp
def test_a_password_with_a_quote_keeps_exabgp_running(testbed, short_tmp: Path) -> None:
    neighbors = [NeighborSettings("r1", "127.0.0.2", 65000, md5_password="it's-secret")]
    bed: BgpTestbed = testbed(neighbors=neighbors)
    result = exabgp_validate(bed.settings, short_tmp / "exabgp.conf")
    assert result.returncode == 0, result.stdout + result.stderr
    wait_until(lambda: ready(bed), 30, what="the relay to connect")
    state = bed.supervisor.state()
    assert state.running and state.restarts == 0 and state.last_error == ""


def test_passwords_render_as_base64_whatever_they_hold(short_tmp: Path) -> None:
    passwords = ['a"b', "back\\slash", "line\nbreak", "# not a comment", "deadbeef", "é-ü"]
    settings = BgpSettings(
        local_as=65000,
        router_id="127.0.0.1",
        listen_port=1179,
        neighbors=tuple(
            NeighborSettings(f"r{i}", f"127.0.0.{10 + i}", 65000, md5_password=p)
            for i, p in enumerate(passwords)
        ),
        feed_socket=str(short_tmp / "feed.sock"),
        work_dir=str(short_tmp),
    )
    result = exabgp_validate(settings, short_tmp / "exabgp.conf")
    assert result.returncode == 0, result.stdout + result.stderr
    text = (short_tmp / "exabgp.conf").read_text()
    assert text.count("md5-base64 true;") == len(passwords)


def config_with(bgp: str, router: str = "") -> str:
    text = CONFIG.replace("[[routers]]", f"[bgp]\n{bgp}\n\n[[routers]]", 1)
    return text.replace('name = "edge1"', f'name = "edge1"\n{router}', 1)


@pytest.mark.parametrize(
    ("bgp", "key"),
    [
        ("feed_socket = '/tmp/a\"b/feed.sock'", "bgp.feed_socket"),
        ('work_dir = "/tmp/it\'s"', "bgp.work_dir"),
        (f'feed_socket = "/tmp/{"x" * 120}.sock"', "bgp.feed_socket"),
    ],
)
def test_socket_paths_exabgp_cannot_take_are_refused_at_load(bgp: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key + ": the feed socket path"):
        parse_config(config_with(bgp), "test.toml")


def test_a_password_longer_than_a_tcp_md5_key_is_refused_at_load() -> None:
    with pytest.raises(ConfigError, match=r"routers\[0\].md5_password: is 81 bytes"):
        parse_config(config_with("", f'md5_password = "{"p" * 81}"'), "test.toml")


@pytest.mark.bgp
def test_a_socket_path_with_a_space_works(testbed, short_tmp: Path) -> None:
    work_dir = short_tmp / "ribd a b"  # per test: suites running at once shared /tmp/ribd a b
    work_dir.mkdir()
    bed: BgpTestbed = testbed(work_dir=str(work_dir))
    assert " " in bed.feed.socket_path
    wait_until(lambda: ready(bed), 30, what="the relay to connect through a spaced path")


@pytest.mark.bgp
def test_work_dir_config_and_log_are_private(testbed, short_tmp: Path) -> None:
    work_dir = short_tmp / "work"
    work_dir.mkdir(mode=0o755)
    os.chmod(work_dir, 0o755)
    bed: BgpTestbed = testbed(
        work_dir=str(work_dir),
        neighbors=[NeighborSettings("r1", "127.0.0.2", 65000, md5_password="s3cret")],
    )
    wait_until(lambda: ready(bed), 30, what="the relay to connect")
    wait_until(lambda: (work_dir / "exabgp.log").stat().st_size > 0, 10)
    assert stat.S_IMODE(work_dir.stat().st_mode) == 0o700
    for name in ("exabgp.conf", "exabgp.log"):
        assert stat.S_IMODE((work_dir / name).stat().st_mode) == 0o600, name


@pytest.mark.bgp
def test_a_crash_loop_logs_exabgps_reason_and_the_state_says_restarting(
    testbed, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ribd.exabgp")
    bed = BgpTestbed()
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", bed.port))
    squatter.listen(1)
    try:
        bed.start()
        wait_until(lambda: bed.supervisor.state().restarts >= 1, 30, what="a restart")
        state = bed.supervisor.state()
        assert not state.running or state.restarts >= 1
        wait_until(lambda: bed.supervisor.state().last_error, 10)
        state = bed.supervisor.state()
        assert "exited with code 1" in state.last_error
        assert "can not bind" in state.last_error
        wait_until(lambda: "can not bind" in caplog.text, 10)
        assert "the end of its log" in caplog.text
        wait_until(lambda: bed.supervisor.state().restarting, 10)
    finally:
        bed.close()
        squatter.close()
    assert bed.supervisor.state().stopped


@pytest.mark.skipif(
    os.getuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv"
)
def test_exabgp_env_renders_for_a_uid_without_a_passwd_entry():
    """Containers run with uids that have no passwd entry (OpenShift): the
    rendered env must not need one (pwd.getpwuid raised KeyError at start)."""
    uid = 54321
    with pytest.raises(KeyError):
        pwd.getpwuid(uid)
    code = (
        "from ribd.exabgp_config import render_env; from ribd.settings import BgpSettings; "
        "print(render_env(BgpSettings(local_as=64500, router_id='127.0.0.1'))"
        "['exabgp.daemon.user'])"
    )
    out = subprocess.run(
        [
            "setpriv",
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            sys.executable,
            "-c",
            code,
        ],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(uid)
