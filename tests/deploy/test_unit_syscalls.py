"""Every system call of a service run passes the unit's SystemCallFilter, and it writes
only where ProtectSystem=strict lets it.

systemd refuses a system call outside the filter with EPERM (SystemCallErrorNumber), which
the service may not survive, or may survive wrongly. So a real run is traced (strace -f:
the service, its ExaBGP and the relay), doing what production does: BGP sessions and a
table, flows resolved, routes looked up, metrics scraped, a SIGHUP reload, a SIGTERM with
its snapshot. The names it used must all be in the filter as systemd expands it
(`systemd-analyze syscall-filter`), read from the unit itself.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from attribution.client import channel, resolve_dicts
from attribution.v1 import attribution_pb2 as pb
from attribution.v1 import attribution_pb2_grpc as pb_grpc
from ribd.speaker import Route, Speaker, free_port
from tests.deploy.common import unit_settings, wait_until

STRACE = shutil.which("strace")
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
pytestmark = [
    pytest.mark.bgp,
    pytest.mark.skipif(STRACE is None, reason="strace is not installed (.ci/run installs it)"),
    pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed"),
]
ROUTER = "127.0.0.2"
TABLE = [Route(f"10.{i}.0.0/16", ROUTER, as_path=[65001, 65100 + i]) for i in range(30)] + [
    Route(f"2001:db8:{i:x}::/48", "2001:db8::1", as_path=[65001, 65200 + i]) for i in range(5)
]
# ExaBGP drops privileges when it runs as root (setuid/setgid to its own user): a test
# run as root sees these; under the unit (User=attribution) ExaBGP skips that step.
ONLY_AS_ROOT = {"setuid", "setgid", "setgroups", "setresuid", "setresgid"}
# Writes a library tries where it can and does without where it cannot: read-only under
# the unit, they fail and the run goes on as traced. ExaBGP names its API processes and
# peers with uuid.uuid1(), whose libuuid keeps its clock in this file when Debian's
# uuid-runtime made the directory, and in memory otherwise
# (test_libuuid_does_without_its_clock_file_on_a_read_only_var).
OPTIONAL_WRITES = {"/var/lib/libuuid/clock.txt"}


def syscall_groups() -> dict[str, list[str]]:
    """systemd's system call groups, ``@name`` -> members (names or other groups)."""
    out = subprocess.run(
        [SYSTEMD_ANALYZE, "syscall-filter", "--no-pager"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    groups: dict[str, list[str]] = {}
    current = None
    for line in out.splitlines():
        if line.startswith("@"):
            current = line.split()[0]
            groups[current] = []
        elif current and line.startswith(" ") and line.strip() and not line.strip().startswith("#"):
            groups[current].append(line.strip())
    return groups


def expand(entries: list[str], groups: dict[str, list[str]]) -> set[str]:
    names: set[str] = set()
    for entry in entries:
        names |= expand(groups[entry], groups) if entry.startswith("@") else {entry}
    return names


def allowed_by_unit() -> set[str]:
    """The unit's SystemCallFilter lines: an allow list, then ``~`` lines taking away."""
    groups = syscall_groups()
    allowed: set[str] = set()
    for value in unit_settings()["Service", "SystemCallFilter"]:
        if value.startswith("~"):
            allowed -= expand(value[1:].split(), groups)
        else:
            allowed |= expand(value.split(), groups)
    assert len(allowed) > 200, "the filter expanded to almost nothing"
    return allowed


def traced_children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.fixture
def work() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="attr-sys-", dir="/tmp") as d:
        yield Path(d)


def test_every_system_call_of_a_service_run_passes_the_units_filter(work):
    allowed = allowed_by_unit()
    bgp_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    config = work / "attribution.toml"
    config.write_text(
        f"""
[service]
local_as = 65000
router_id = "127.0.0.1"
grpc_listen = "127.0.0.1:{grpc_port}"
snapshot_path = "{work}/rib.snapshot"
log_format = "json"

[bgp]
listen_address = "127.0.0.1"
listen_port = {bgp_port}
work_dir = "{work}/exabgp"
feed_socket = "{work}/feed.sock"

[metrics]
listen = "127.0.0.1:{metrics_port}"

[[routers]]
name = "r1"
neighbor = "{ROUTER}"
exporters = ["127.0.1.1"]
"""
    )
    trace = work / "strace.out"
    log = (work / "serve.log").open("wb")
    daemon = subprocess.Popen(
        [
            *(STRACE, "-f", "-qq", "-o", str(trace)),
            *(str(Path(sys.executable).with_name("attribution")), "serve", "--config", str(config)),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        # no bytecode caches: under the unit /opt is read-only and Python skips them
        env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
    )
    speaker = Speaker(peer_port=bgp_port, peer_as=65000, local_as=65000, routes=TABLE)
    target = f"127.0.0.1:{grpc_port}"

    def routers() -> list:
        try:
            with channel(target) as ch:
                stub = pb_grpc.AttributionStub(ch)
                return list(stub.ListRouters(pb.ListRoutersRequest(), timeout=10).routers)
        except Exception:
            return []

    try:
        wait_until(routers, 120, what="the gRPC API (traced: slower)")
        speaker.start()
        speaker.wait_established(120)
        wait_until(
            lambda: any(sum(f.prefixes for f in r.families) == len(TABLE) for r in routers()),
            120,
            what="the table",
        )
        flows = [
            {"exporter": "127.0.1.1", "src_addr": f"10.{i}.1.1", "dst_addr": "10.3.2.1"}
            for i in range(50)
        ]
        answers = list(resolve_dicts(target, iter(flows)))
        assert {a["dst_origin_as"] for a in answers} == {65103}
        with channel(target) as ch:
            pb_grpc.AttributionStub(ch).LookupRoute(
                pb.LookupRouteRequest(router="r1", address="10.7.0.1"), timeout=10
            )
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30) as r:
            assert b"attribution_" in r.read()
        # strace blocks fatal signals (-o FILE PROG): signal the traced service itself
        (service_pid,) = traced_children(daemon.pid)
        os.kill(service_pid, signal.SIGHUP)
        wait_until(lambda: b"config reloaded" in (work / "serve.log").read_bytes(), 60)
        os.kill(service_pid, signal.SIGTERM)
        assert daemon.wait(120) == 0, (work / "serve.log").read_text()[-3000:]
    finally:
        speaker.close()
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(10)
        log.close()
    assert (work / "rib.snapshot").exists()
    used = set(re.findall(r"^\d+\s+(?:<\.\.\. )?([a-z0-9_]+)[( ]", trace.read_text(), re.M))
    assert {"execve", "socket", "bind", "accept4", "openat"} <= used, "the trace is empty?"
    refused = used - allowed - ONLY_AS_ROOT
    assert refused == set(), f"system calls the unit's filter refuses: {sorted(refused)}"
    # ProtectSystem=strict: besides /dev, only the state and runtime directories (here
    # both in `work`) and the private /tmp may be written (the pod: its volumes)
    outside = {
        path
        for path in written_paths(trace.read_text())
        if not Path(path).is_relative_to(work) and not path.startswith(("/tmp/", "/dev/"))
    } - OPTIONAL_WRITES
    assert outside == set(), f"written outside the unit's writable directories: {outside}"


@pytest.mark.skipif(
    not Path("/var/lib/libuuid").is_dir() or shutil.which("unshare") is None,
    reason="no libuuid state directory (Debian: uuid-runtime) or no unshare",
)
def test_libuuid_does_without_its_clock_file_on_a_read_only_var():
    """What OPTIONAL_WRITES assumes: with /var read-only, as ProtectSystem=strict mounts
    it, uuid.uuid1() still answers and nothing is written there."""
    clock = Path("/var/lib/libuuid/clock.txt")
    before = clock.read_bytes() if clock.exists() else None
    script = (
        "mount --bind /var /var && mount -o remount,ro,bind /var && "
        f"{shlex.quote(sys.executable)} -c 'import uuid; print(uuid.uuid1().version)'"
    )
    run = subprocess.run(
        ["unshare", "--mount", "sh", "-c", script], capture_output=True, text=True, timeout=60
    )
    if run.returncode != 0 and ("unshare" in run.stderr or "mount" in run.stderr):
        pytest.skip(f"cannot make a mount namespace here: {run.stderr.strip()}")
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["1"]
    assert (clock.read_bytes() if clock.exists() else None) == before


WRITE_FLAGS = re.compile(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND")
CREATES = {"mkdir", "mkdirat", "unlink", "unlinkat", "rename", "renameat", "renameat2"}
CREATES |= {"rmdir", "symlink", "symlinkat", "link", "linkat", "mknod", "mknodat", "creat"}
CREATES |= {"chmod", "fchmodat", "chown", "fchownat", "truncate", "utimensat"}


def written_paths(trace: str) -> set[str]:
    """Paths that calls in an strace -f log created, changed or opened for writing, and
    that succeeded (a refused attempt fails the same way under the unit)."""
    pending: dict[str, str] = {}
    paths: set[str] = set()
    for line in trace.splitlines():
        pid, _, rest = line.partition(" ")
        rest = rest.strip()
        if rest.endswith("<unfinished ...>"):
            pending[pid] = rest.removesuffix("<unfinished ...>")
            continue
        resumed = re.match(r"<\.\.\. \w+ resumed>(.*)", rest)
        if resumed:
            rest = pending.pop(pid, "") + resumed.group(1)
        call = re.match(r"(\w+)\((.*)\)\s+= (-?\d+)", rest)
        if not call or call.group(3) == "-1":
            continue
        name, args = call.group(1), call.group(2)
        quoted = re.findall(r'"((?:[^"\\]|\\.)*)"', args)
        if name in ("open", "openat") and WRITE_FLAGS.search(args) and quoted:
            paths.add(quoted[0])
        elif name in CREATES:
            paths.update(quoted)
        elif name == "bind" and "sun_path=" in args and quoted and quoted[0]:
            paths.add(quoted[0])  # a Unix socket's file (abstract ones start with @)
    return {p for p in paths if p.startswith("/")}
