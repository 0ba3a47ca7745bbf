"""Run ExaBGP for the service and supervise it.

ExaBGP is a child of the service (supervised mode): we write its config
(``ribd.exabgp_config`` renders it from ``BgpSettings``), start it, restart it
with exponential backoff when it dies, and tell the RIB when it does, so
routes stay readable (stale) until each session is back and has sent
End-of-RIB. ExaBGP starts ``ribd-feed`` (our relay, ``ribd.relay``) as its API
process; the relay hands ExaBGP's lines to the service's ``FeedServer`` over
a Unix socket. When ExaBGP exits, the end of its own log is logged and kept
in ``SupervisorState.last_error``: crash loops say why.
"""

from __future__ import annotations

import concurrent.futures.thread  # noqa: F401 (see _SPAWN_LOCK: fork hooks registered now)
import contextlib
import ctypes
import ctypes.util
import dataclasses
import logging
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence

from ribd.exabgp_config import (  # noqa: F401 (re-exported: the module's API before the split)
    MAX_MD5_KEY_BYTES,
    RELAY_PROCESS_NAME,
    RenderError,
    child_environment,
    config_problems,
    default_exabgp_command,
    feed_socket_path,
    md5_key_base64,
    relay_command,
    render_config,
    render_env,
    render_neighbor,
)
from ribd.rib import Rib
from ribd.settings import BgpSettings

log = logging.getLogger(__name__)

LOG_LINE_LIMIT = 500  # characters of one ExaBGP output line copied to our log
STABLE_RUN_SECONDS = 60.0  # a run this long resets the restart backoff
LOG_TAIL_LINES = 20  # lines of ExaBGP's own log quoted when it exits
LOG_TAIL_BYTES = 64 * 1024  # read at most this much of it for them


# -- child processes ----------------------------------------------------------

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def die_with_parent(parent_pid: int) -> Callable[[], None]:
    """preexec_fn: SIGKILL the child when the thread that forked it dies.

    Linux ties PDEATHSIG to the forking *thread*, so spawn from a thread that
    lives as long as the child should (the supervisor's monitor thread).
    The child's umask is 077: ExaBGP's logs (rotated ones too) are ours alone.
    """

    def preexec() -> None:
        os.umask(0o077)
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


# One fork with a preexec_fn at a time: ExaBGP workers start together, and two
# threads forking with preexec_fn at once made CPython report "release
# unlocked lock" (its fork hooks take the import lock once per fork).
# A fork with a preexec_fn runs the os.register_at_fork hooks; a module that
# registers a before/after pair while a fork is between the two (the thread
# forking waits for the import lock there) gets only the after half run:
# concurrent.futures.thread's lock released unheld, "Exception ignored ...
# release unlocked lock" on our stderr, which is the log. It is the one module
# that registers such a pair and is imported lazily (the gRPC server's thread
# pool), so it is imported with this module, before any worker starts
# (tests/ribd/test_spawn_child.py).
_SPAWN_LOCK = threading.Lock()


def spawn_child(
    command: Sequence[str], env: dict[str, str], cwd: str | None = None
) -> subprocess.Popen[bytes]:
    """Start a child in its own session that dies with us, stdout+stderr piped."""
    with _SPAWN_LOCK:
        return _spawn(command, env, cwd)


def _spawn(command: Sequence[str], env: dict[str, str], cwd: str | None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        list(command),
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=die_with_parent(os.getpid()),
        close_fds=True,
    )


def log_output(
    proc: subprocess.Popen[bytes], logger: logging.Logger, label: str
) -> threading.Thread:
    """Copy a child's output to our log, line by line and truncated."""

    def pump() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            text = raw.decode("utf-8", "replace").rstrip()
            if not text:
                continue
            if len(text) > LOG_LINE_LIMIT:
                text = text[:LOG_LINE_LIMIT] + f"... ({len(text)} chars)"
            level = logging.WARNING if ("Traceback" in text or "ERROR" in text) else logging.INFO
            logger.log(level, "%s[%d]: %s", label, proc.pid, text)
        proc.stdout.close()

    thread = threading.Thread(target=pump, name=f"{label}-output-{proc.pid}", daemon=True)
    thread.start()
    return thread


def terminate_child(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> int | None:
    """SIGTERM the child's process group, SIGKILL it after ``timeout``."""
    if proc.poll() is None:
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
    return proc.poll()


# -- supervision ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class SupervisorState:
    """What the supervisor is doing, for health checks and ``routers``.

    ``running``: ExaBGP is up now. Otherwise ``restarting`` says a restart is
    due at ``next_start`` (or ``stopped`` that none will come), and
    ``last_error`` why the last run ended: exit code and the last line of
    ExaBGP's own log ("" while the current run has not failed).
    """

    running: bool
    pid: int | None
    restarts: int
    last_exit_code: int | None
    last_start: float  # wall clock, 0 before the first start
    last_exit: float
    next_start: float  # when a restart is due (0: none pending)
    config_path: str
    last_error: str = ""
    restarting: bool = False
    stopped: bool = False


class ExabgpSupervisor:
    """Runs ExaBGP as our child and restarts it with backoff when it dies.

    ``on_event(kind, details)`` is called (from the monitor thread) with
    ``"started"``, ``"exited"`` and ``"stopped"``. When ExaBGP exits without
    being asked to, every router's routes become stale for
    ``settings.restart_hold_time`` (the restarted ExaBGP's sessions refresh
    them, End-of-RIB retires the stale copies).

    One supervisor runs one ExaBGP: with several workers (``ribd.workers``)
    each has its own, given the worker's own settings (``settings.worker``
    names it in logs) and ``neighbors``, the routers whose routes its exits
    make stale (None: every router).
    """

    def __init__(
        self,
        settings: BgpSettings,
        rib: Rib,
        *,
        on_event: Callable[[str, dict], None] | None = None,
        command: Sequence[str] | None = None,
        neighbors: frozenset[str] | None = None,
    ) -> None:
        self.settings = settings
        self.rib = rib
        self.neighbors = neighbors
        self.worker = settings.worker
        # How logs name it: "ExaBGP", or "ExaBGP worker 2" among several.
        self.label = f"ExaBGP worker {settings.worker}" if settings.worker else "ExaBGP"
        self.on_event = on_event
        self.command = list(command or settings.exabgp_command or default_exabgp_command())
        self.work_dir = settings.work_dir or tempfile.mkdtemp(prefix="ribd-exabgp-")
        self.config_path = os.path.join(self.work_dir, "exabgp.conf")
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._restarts = 0
        self._last_exit_code: int | None = None
        self._last_start = 0.0
        self._last_exit = 0.0
        self._next_start = 0.0
        self._last_error = ""
        self.log_path = os.path.join(self.work_dir, "exabgp.log")

    # -- control --

    def start(self) -> None:
        """Write the config and start ExaBGP; returns at once (runs in a thread)."""
        if self._thread is not None:
            raise RuntimeError("supervisor already started")
        # The config holds MD5 keys and the log the sessions: ours alone.
        os.makedirs(self.work_dir, mode=0o700, exist_ok=True)
        os.chmod(self.work_dir, 0o700)
        settings = self.settings
        if not settings.work_dir:
            # render_env/feed_socket_path need the directory we just made.
            settings = dataclasses.replace(settings, work_dir=self.work_dir)
            self.settings = settings
        text = render_config(settings)
        tmp = self.config_path + ".tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(text)
        os.replace(tmp, self.config_path)
        # ExaBGP appends to an existing log and keeps its mode.
        os.close(os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        os.chmod(self.log_path, 0o600)
        self._env = child_environment(render_env(settings))
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run,
            name=f"exabgp-supervisor-{self.worker}" if self.worker else "exabgp-supervisor",
            daemon=True,
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop ExaBGP (SIGTERM, then SIGKILL) and the supervision thread."""
        self.request_stop()
        with self._lock:
            proc = self._proc
        if proc is not None:
            terminate_child(proc, timeout)
        if self._thread is not None:
            self._thread.join(timeout + 5.0)
            self._thread = None

    def request_stop(self) -> None:
        """No restart from now on (``stop`` finishes the job): stops of several
        workers begin together, so none restarts while another is stopping."""
        self._stop.set()

    def state(self) -> SupervisorState:
        with self._lock:
            proc = self._proc
            return SupervisorState(
                running=proc is not None and proc.poll() is None,
                pid=proc.pid if proc is not None and proc.poll() is None else None,
                restarts=self._restarts,
                last_exit_code=self._last_exit_code,
                last_start=self._last_start,
                last_exit=self._last_exit,
                next_start=self._next_start,
                config_path=self.config_path,
                last_error=self._last_error,
                restarting=self._next_start > 0,
                stopped=self._stop.is_set(),
            )

    @property
    def pid(self) -> int | None:
        return self.state().pid

    # -- monitor thread --

    def _emit(self, kind: str, details: dict) -> None:
        if self.on_event is not None:
            try:
                self.on_event(kind, details)
            except Exception:
                log.exception("on_event(%s) failed", kind)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            started = time.time()
            log_offset = _file_size(self.log_path)
            try:
                proc = spawn_child([*self.command, self.config_path], self._env, self.work_dir)
            except OSError as exc:
                log.error("cannot start %s (%s): %s", self.label, " ".join(self.command), exc)
                code: int | None = None
                proc = None
                with self._lock:
                    self._last_error = f"cannot start ExaBGP: {exc}"
            if proc is not None:
                with self._lock:
                    self._proc = proc
                    self._last_start = started
                    self._next_start = 0.0
                    self._last_error = ""
                log.info(
                    "%s started, pid %d, config %s",
                    self.label,
                    proc.pid,
                    self.config_path,
                    extra={"event": "exabgp_started", "worker": self.worker, "pid": proc.pid},
                )
                self._emit("started", {"pid": proc.pid})
                pump = log_output(proc, log, f"exabgp-{self.worker}" if self.worker else "exabgp")
                while proc.poll() is None and not self._stop.wait(0.2):
                    pass
                if self._stop.is_set():
                    terminate_child(proc)
                code = proc.wait()
                pump.join(2.0)
            stopping = self._stop.is_set()
            with self._lock:
                self._last_exit_code = code
                self._last_exit = time.time()
            if stopping:
                log.info("%s stopped (exit code %s)", self.label, code)
                self._emit("stopped", {"code": code})
                self._rib_gone(f"{self.label} stopped (exit code {code})")
                break
            ran = time.time() - started
            failures = 1 if ran >= STABLE_RUN_SECONDS else failures + 1
            delay = min(
                self.settings.restart_backoff_initial * 2 ** (failures - 1),
                self.settings.restart_backoff_max,
            )
            tail = log_tail(self.log_path, log_offset) if proc is not None else []
            log.warning(
                "%s exited with code %s after %.1fs; restart in %.1fs%s",
                self.label,
                code,
                ran,
                delay,
                f"; the end of its log ({self.log_path}):\n  " + "\n  ".join(tail)
                if tail
                else f"; its log ({self.log_path}) has nothing new",
                extra={"event": "exabgp_exited", "worker": self.worker, "code": code},
            )
            if proc is not None:
                with self._lock:
                    self._last_error = f"{self.label} exited with code {code}" + (
                        f": {exit_reason(tail)}" if tail else ""
                    )
            self._rib_gone(f"{self.label} exited with code {code}")
            with self._lock:
                self._next_start = time.time() + delay
            self._emit("exited", {"code": code, "ran": ran, "restart_in": delay})
            if self._stop.wait(delay):
                break
            with self._lock:
                self._restarts += 1
        with self._lock:
            self._next_start = 0.0

    def _rib_gone(self, reason: str) -> None:
        self.rib.with_lock_exabgp_gone(reason, self.settings.restart_hold_time, self.neighbors)


def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def log_tail(path: str, offset: int = 0, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last ``lines`` lines written to ``path`` after ``offset`` (bounded
    to LOG_TAIL_BYTES, each line to LOG_LINE_LIMIT characters)."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            if size < offset:  # rotated meanwhile: take the new file's end
                offset = 0
            start = max(offset, size - LOG_TAIL_BYTES)
            f.seek(start)
            data = f.read(size - start)
    except OSError:
        return []
    text = data.decode("utf-8", "replace").splitlines()
    if start > offset and text:
        text = text[1:]  # the first line was cut
    out = []
    for line in text[-lines:]:
        line = line.rstrip()
        if len(line) > LOG_LINE_LIMIT:
            line = line[:LOG_LINE_LIMIT] + f"... ({len(line)} chars)"
        if line:
            out.append(line)
    return out


_REASON_WORDS = ("can not", "cannot", "error", "fail", "refus", "invalid", "denied", "traceback")


def exit_reason(tail: list[str]) -> str:
    """What a log tail says about why ExaBGP exited: from the last line that
    names a problem to the end (ExaBGP explains over several lines), bounded."""
    start = max(len(tail) - 1, 0)
    for i in range(len(tail) - 1, -1, -1):
        low = tail[i].lower()
        if any(w in low for w in _REASON_WORDS):
            start = i
            break
    text = " / ".join(_strip_prefix(line) for line in tail[start:] if _strip_prefix(line))
    return text[:LOG_LINE_LIMIT]


def _strip_prefix(line: str) -> str:
    """ExaBGP's log line without its "HH:MM:SS pid category" columns."""
    words = line.split()
    if len(words) >= 3 and words[0].count(":") == 2 and words[1].isdigit():
        words = words[3:]
    return " ".join(words)
