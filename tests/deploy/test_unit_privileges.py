"""The unit's privilege model, reproduced without systemd: does ExaBGP get port 179?

The unit gives the service exactly one capability, CAP_NET_BIND_SERVICE, as an ambient
capability under NoNewPrivileges, and nothing else in the bounding set; ExaBGP, a child
the service starts, is what binds port 179. `setpriv` (util-linux) sets up the same:
no_new_privs, the bounding set, inheritable and ambient sets, and the `noroot` securebits
(SecureBits=noroot-locked), so that even uid 0 holds only what is listed. The unit's
MemoryDenyWriteExecute is reproduced with the kernel's PR_SET_MDWE where it exists, and
RestrictAddressFamilies with a seccomp filter like systemd's.

The process keeps this checkout's uid (this machine's Python may live where no other user
can read); with `noroot` locked, capability checks treat it like any other user.
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.deploy.common import wait_until

SETPRIV = shutil.which("setpriv")
pytestmark = [
    pytest.mark.bgp,
    pytest.mark.skipif(SETPRIV is None, reason="setpriv (util-linux) is not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="setting capabilities up needs root"),
]
BGP_ADDRESS = "127.0.179.1"  # an address of its own: nothing else binds port 179 on it
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1


def config(tmp_path: Path) -> Path:
    path = tmp_path / "attribution.toml"
    path.write_text(
        f"""
[service]
local_as = 64500
router_id = "{BGP_ADDRESS}"
grpc_listen = "127.0.0.1:0"
ready_timeout = 1

[bgp]
listen_address = "{BGP_ADDRESS}"
listen_port = 179
work_dir = "{tmp_path}/exabgp"
feed_socket = "{tmp_path}/feed.sock"
restart_hold_time = 5

[[routers]]
name = "edge"
neighbor = "127.0.179.2"
"""
    )
    return path


# RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX as systemd enforces it: a seccomp
# filter that makes socket() and socketpair() of any other family fail with EAFNOSUPPORT.
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
AUDIT_ARCH_X86_64 = 0xC000003E
SYS_SOCKET, SYS_SOCKETPAIR = 41, 53  # x86_64
AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10
EAFNOSUPPORT = 97
RET_ALLOW, RET_ERRNO = 0x7FFF0000, 0x00050000
LD_ABS_W, JEQ_K, RET_K = 0x20, 0x15, 0x06
ADDRESS_FAMILY_FILTER = [  # (code, jump if true, jump if false, k)
    (LD_ABS_W, 0, 0, 4),  # 0: seccomp_data.arch
    (JEQ_K, 0, 8, AUDIT_ARCH_X86_64),  # 1: another ABI: allow (the unit: native only)
    (LD_ABS_W, 0, 0, 0),  # 2: seccomp_data.nr
    (JEQ_K, 1, 0, SYS_SOCKET),  # 3
    (JEQ_K, 0, 5, SYS_SOCKETPAIR),  # 4: other calls: allow
    (LD_ABS_W, 0, 0, 16),  # 5: args[0], the family
    (JEQ_K, 3, 0, AF_UNIX),  # 6
    (JEQ_K, 2, 0, AF_INET),  # 7
    (JEQ_K, 1, 0, AF_INET6),  # 8
    (RET_K, 0, 0, RET_ERRNO | EAFNOSUPPORT),  # 9
    (RET_K, 0, 0, RET_ALLOW),  # 10
]
RESTRICT_FAMILIES = platform.machine() == "x86_64"


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


def sandbox() -> None:
    """Runs in the child before exec; inherited by everything it starts.

    MemoryDenyWriteExecute: PR_SET_MDWE (kernel 6.3+; older ones go without it).
    RestrictAddressFamilies: the filter above (x86_64).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    failed = libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0
    if failed and ctypes.get_errno() != 22:  # EINVAL: no MDWE in this kernel
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_MDWE)")
    if RESTRICT_FAMILIES:
        program = b"".join(struct.pack("=HBBI", *op) for op in ADDRESS_FAMILY_FILTER)
        buffer = ctypes.create_string_buffer(program, len(program))
        fprog = _SockFprog(len(ADDRESS_FAMILY_FILTER), ctypes.addressof(buffer))
        if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")


def test_the_sandbox_refuses_other_address_families():
    """The control for the filter: without it the service tests below would prove nothing."""
    if not RESTRICT_FAMILIES:
        pytest.skip("the address family filter is written for x86_64")
    code = (
        "import errno, socket\n"
        "for family in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX):\n"
        "    socket.socket(family, socket.SOCK_STREAM).close()\n"
        "for family, kind in ((socket.AF_NETLINK, socket.SOCK_RAW), (socket.AF_PACKET, 3)):\n"
        "    try:\n"
        "        socket.socket(family, kind)\n"
        "    except OSError as exc:\n"
        "        assert exc.errno == errno.EAFNOSUPPORT, exc\n"
        "    else:\n"
        "        raise SystemExit(f'family {family} allowed')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, preexec_fn=sandbox
    )
    assert result.returncode == 0, result.stderr


def start(tmp_path: Path, *, bind_capability: bool) -> subprocess.Popen:
    caps = "-all,+net_bind_service" if bind_capability else "-all"
    command = [
        SETPRIV,
        "--no-new-privs",
        f"--bounding-set={'-all,+net_bind_service' if bind_capability else '-all'}",
        f"--inh-caps={caps}",
        *([f"--ambient-caps={caps}"] if bind_capability else []),
        "--securebits=+noroot,+noroot_locked,+no_setuid_fixup,+no_setuid_fixup_locked",
        str(Path(sys.executable).with_name("attribution")),
        "serve",
        "--config",
        str(config(tmp_path)),
    ]
    log = (tmp_path / "serve.log").open("wb")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, preexec_fn=sandbox)


def log_text(tmp_path: Path) -> str:
    return (tmp_path / "serve.log").read_text(errors="replace")


def grpc_port(tmp_path: Path, proc: subprocess.Popen) -> int:
    def listening():
        assert proc.poll() is None, f"exited {proc.returncode}: {log_text(tmp_path)[-3000:]}"
        return re.search(r"gRPC listening on \S+ \(port (\d+)", log_text(tmp_path))

    return int(wait_until(listening, what="the gRPC server").group(1))


def accepts(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=2).close()
        return True
    except OSError:
        return False


def health_status(port: int) -> int:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as chan:
        stub = health_pb2_grpc.HealthStub(chan)
        return stub.Check(health_pb2.HealthCheckRequest(), timeout=10).status


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def capabilities(pid: int) -> dict[str, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    return {k: int(v, 16) for k, v in re.findall(r"^(Cap\w+):\s+([0-9a-f]+)$", status, re.M)}


def test_exabgp_binds_port_179_with_the_units_single_ambient_capability(tmp_path):
    proc = start(tmp_path, bind_capability=True)
    try:
        port = grpc_port(tmp_path, proc)
        wait_until(lambda: accepts(BGP_ADDRESS, 179), what="ExaBGP on port 179")
        assert health_status(port) in (
            health_pb2.HealthCheckResponse.SERVING,
            health_pb2.HealthCheckResponse.NOT_SERVING,
        )
        net_bind_service = 1 << 10
        caps = capabilities(proc.pid)
        assert caps["CapEff"] == caps["CapPrm"] == caps["CapBnd"] == net_bind_service
        exabgp = int(re.search(r"ExaBGP started, pid (\d+)", log_text(tmp_path)).group(1))
        assert capabilities(exabgp)["CapEff"] == net_bind_service  # inherited, ambient
        assert "ExaBGP exited" not in log_text(tmp_path)
    finally:
        code = stop(proc)
    assert code == 0, log_text(tmp_path)[-3000:]


def test_without_the_capability_exabgp_cannot_bind_port_179(tmp_path):
    """The control: the capability is what makes the port work (uid 0 alone does not)."""
    proc = start(tmp_path, bind_capability=False)
    try:
        grpc_port(tmp_path, proc)
        wait_until(lambda: "ExaBGP exited" in log_text(tmp_path), what="ExaBGP to fail")
        assert not accepts(BGP_ADDRESS, 179)
        assert capabilities(proc.pid)["CapEff"] == 0
    finally:
        stop(proc)
