"""Starting ExaBGP workers leaves nothing on stderr: the daemon's stderr is its
log, and JSON logs must stay one object per line."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Thread B imports concurrent.futures.thread, which registers fork hooks
# (acquire a lock before a fork, release it after), while thread A is inside
# spawn_child between CPython running the before-fork hooks and forking (A
# waits there for the import lock, which B holds while importing). A's fork
# then runs an after-fork hook whose before half never ran. In the service the
# gRPC server's first ThreadPoolExecutor raced the ExaBGP workers' start this
# way (seen once in a full suite: "Exception ignored ... RuntimeError: release
# unlocked lock" in the JSON log).
RACE = textwrap.dedent(
    """
    import _imp, faulthandler, sys, threading, time
    faulthandler.dump_traceback_later(30, exit=True)
    import concurrent.futures  # the package, not its thread module
    from ribd.exabgp import spawn_child

    spawn_child(["true"], {}).wait()  # Popen's own first-call imports done

    def importer():
        _imp.acquire_lock()
        try:
            time.sleep(0.5)  # A has run the before-fork hooks and waits
            import concurrent.futures.thread  # noqa: F401
        finally:
            _imp.release_lock()

    t = threading.Thread(target=importer)
    t.start()
    time.sleep(0.1)
    spawn_child(["true"], {}).wait()
    t.join()
    print("spawned")
    """
)


def test_a_module_imported_while_a_worker_spawns_leaves_stderr_clean():
    out = subprocess.run(
        [sys.executable, "-c", RACE], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "spawned"
    assert out.stderr == "", out.stderr


CHILD_REPORT = textwrap.dedent(
    """
    import ctypes, os, signal
    sig = ctypes.c_int(-1)
    ctypes.CDLL(None).prctl(2, ctypes.byref(sig), 0, 0, 0)  # PR_GET_PDEATHSIG
    mask = os.umask(0)
    print(oct(mask), sig.value == signal.SIGKILL, os.getsid(0) == os.getpid())
    """
)


def test_a_child_gets_umask_077_its_own_session_and_sigkill_when_we_die() -> None:
    """What spawn_child promises ExaBGP and the relays. (Not through util-linux's
    setpriv, which avoids the preexec_fn: it always calls capset, which the
    systemd unit's filter refuses; tests/deploy/test_unit_syscalls.py.)"""
    from ribd.exabgp import spawn_child

    proc = spawn_child([sys.executable, "-c", CHILD_REPORT], dict(os.environ))
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert out.decode().split() == ["0o77", "True", "True"]
