"""Run ExaBGP for the service: render its config and environment, supervise it.

ExaBGP is a child of the service (supervised mode): we write its config from
``BgpSettings``, start it, restart it with exponential backoff when it dies,
and tell the RIB when it does, so routes stay readable (stale) until each
session is back and has sent End-of-RIB. ExaBGP starts ``ribd-feed`` (our
relay, ``ribd.relay``) as its API process; the relay hands ExaBGP's lines to
the service's ``FeedServer`` over a Unix socket.

Choices made from ExaBGP 5.0.15's source (exabgp/configuration, environment):

* ``adj-rib-in false``: ExaBGP would otherwise keep ~3.4 KB per UPDATE that
  we never read back.
* ``capability { route-refresh; }`` so the service can ask a router to resend
  its table after the relay lost lines (ExaBGP only sends ROUTE-REFRESH when
  the capability is configured). ExaBGP then forces ``adj-rib-out`` on, which
  costs nothing here: we announce no routes.
* ``exabgp.api.ack false``: the relay never sends commands that need answers,
  and acks would only add lines to filter.
* ``exabgp.daemon.user`` is the service's own user: when run as root ExaBGP
  otherwise drops to ``nobody`` before starting the relay, which then cannot
  reach the feed socket or the work directory.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import ctypes.util
import dataclasses
import logging
import os
import pwd
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ribd.rib import Rib
from ribd.settings import BgpSettings, NeighborSettings

log = logging.getLogger(__name__)

RELAY_PROCESS_NAME = "ribd"
LOG_LINE_LIMIT = 500  # characters of one ExaBGP output line copied to our log
STABLE_RUN_SECONDS = 60.0  # a run this long resets the restart backoff
_UNSAFE_TOKEN_CHARS = set("\"'\\;{}[]()#,\n\r\t")
_PKG_ROOT = str(Path(__file__).resolve().parent.parent)
MAX_MD5_KEY_BYTES = 80  # Linux TCP_MD5SIG_MAXKEYLEN; ExaBGP refuses longer keys
MAX_UNIX_PATH_BYTES = 107  # sun_path is 108 bytes with the terminating NUL
LOG_TAIL_LINES = 20  # lines of ExaBGP's own log quoted when it exits
LOG_TAIL_BYTES = 64 * 1024  # read at most this much of it for them


# -- rendering --------------------------------------------------------------
#
# ExaBGP 5.0.15's tokeniser (exabgp/configuration/core/format.py) first
# unescapes the whole line (``\\x`` -> ``x``, ``\\n`` -> newline, ...), then
# splits it: outside quotes on spaces, ``[ ] ,``, ``; { }`` and ``#``
# (comment); ``"`` and ``'`` both open a quoted word, and inside one *either*
# quote character switches the quoting rather than being kept. So a quoted
# value is safe when it holds no quote of either kind, no control character
# (a newline ends the line) and every backslash is doubled. Passwords are
# never written as text at all: they go in base64 (``md5-base64 true``),
# whose alphabet is plain token characters, so every password renders.


class RenderError(ValueError):
    """A setting that cannot be written into ExaBGP's config."""


def _token(value: str, what: str) -> str:
    """One bare config token; refuse what ExaBGP's tokeniser would split or unescape."""
    if not value or any(c in _UNSAFE_TOKEN_CHARS or c.isspace() or c == "\\" for c in value):
        raise RenderError(f"{what} {value!r} cannot be written into an ExaBGP config")
    return value


def _unquotable(value: str) -> str:
    """Why ``value`` cannot be a quoted ExaBGP word ("" when it can)."""
    for c in value:
        if c in "\"'":
            return f"it contains a quote ({c}), which ExaBGP's config syntax cannot escape"
        if ord(c) < 0x20 or ord(c) == 0x7F:
            return f"it contains the control character {c!r}"
    return ""


def _quoted(value: str, what: str) -> str:
    why = _unquotable(value)
    if why:
        raise RenderError(f"{what} {value!r} cannot be written into an ExaBGP config: {why}")
    return '"' + value.replace("\\", "\\\\") + '"'


def _word(value: str, what: str) -> str:
    """A bare token when it is one, else a quoted word."""
    if value and not any(c in _UNSAFE_TOKEN_CHARS or c.isspace() or c == "\\" for c in value):
        return value
    return _quoted(value, what)


def _description(name: str) -> str:
    """The neighbor's description: only for ExaBGP's logs, so made safe, not refused."""
    safe = "".join(c if c.isprintable() and c not in "\"'\\" else "_" for c in name)
    return f'"{safe}"'


def md5_key_base64(password: str) -> str:
    """The MD5 key as ExaBGP reads it with ``md5-base64 true``: the password's UTF-8 bytes."""
    return base64.b64encode(password.encode("utf-8")).decode("ascii")


def config_problems(settings: BgpSettings) -> list[tuple[tuple[str, int | None, str], str]]:
    """What in ``settings`` cannot be given to ExaBGP or the relay, as
    ((table, index, key), why) pairs, for the config loader to report at load
    rather than ExaBGP exiting at every start."""
    problems: list[tuple[tuple[str, int | None, str], str]] = []
    for i, n in enumerate(settings.neighbors):
        key = n.md5_password.encode("utf-8")
        if len(key) > MAX_MD5_KEY_BYTES:
            problems.append(
                (
                    ("routers", i, "md5_password"),
                    f"is {len(key)} bytes; TCP MD5 keys are at most {MAX_MD5_KEY_BYTES}",
                )
            )
    if settings.exabgp_mode == "supervised" or settings.feed_socket:
        key = "feed_socket" if settings.feed_socket else "work_dir"
        path = feed_socket_path(settings) if (settings.feed_socket or settings.work_dir) else ""
        if path:
            why = _unquotable(path)
            if why:
                problems.append((("bgp", None, key), f"the feed socket path {path!r}: {why}"))
            elif len(os.fsencode(os.path.abspath(path))) > MAX_UNIX_PATH_BYTES:
                problems.append(
                    (
                        ("bgp", None, key),
                        f"the feed socket path {path!r} is longer than {MAX_UNIX_PATH_BYTES} "
                        "bytes, the limit of a Unix socket address",
                    )
                )
    return problems


def default_exabgp_command() -> list[str]:
    """The ``exabgp`` installed next to our interpreter (the pip one)."""
    script = Path(sys.executable).with_name("exabgp")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "exabgp"]


def relay_command(
    socket_path: str, python: str | None = None, spool_bytes: int | None = None
) -> list[str]:
    """The API process line: our relay, run by the same interpreter as the service."""
    words = [python or sys.executable, "-m", "ribd.relay", "--socket", os.path.abspath(socket_path)]
    if spool_bytes:
        words += ["--spool-bytes", str(int(spool_bytes))]
    return words


def feed_socket_path(settings: BgpSettings) -> str:
    return settings.feed_socket or os.path.join(settings.work_dir or ".", "feed.sock")


def _local_address(settings: BgpSettings, n: NeighborSettings) -> str:
    local = n.local_address or settings.listen_address
    if local in ("", "0.0.0.0", "::") or (":" in local) != (":" in n.address):
        return "auto"  # let ExaBGP take it from the accepted connection
    return local


def render_neighbor(settings: BgpSettings, n: NeighborSettings, process: str) -> str:
    lines = [
        f"neighbor {_token(n.address, 'neighbor address')} {{",
        f"    description {_description(n.name)};",
        f"    router-id {_token(settings.router_id, 'router id')};",
        f"    local-address {_token(_local_address(settings, n), 'local address')};",
        f"    local-as {int(settings.local_as)};",
        f"    peer-as {int(n.peer_as)};",
        f"    hold-time {int(n.hold_time)};",
        f"    passive {'true' if n.passive else 'false'};",
        "    adj-rib-in false;",
        # Forced on by ExaBGP with route-refresh; empty since we announce nothing.
        "    adj-rib-out true;",
        "    group-updates true;",
    ]
    if n.md5_password:
        # base64: every password renders, and ExaBGP's "auto" mode cannot
        # mistake a hex-looking password for base64.
        lines.append(f"    md5-password {md5_key_base64(n.md5_password)};")
        lines.append("    md5-base64 true;")
    lines += [
        "    family {",
        "        ipv4 unicast;",
        "        ipv6 unicast;",
        "    }",
        "    capability {",
        "        route-refresh;",
        f"        add-path {'receive' if n.add_path else 'disable'};",
        "    }",
        "    api {",
        f"        processes [ {process} ];",
        "        neighbor-changes;",
        "        receive {",
        "            parsed;",
        "            update;",
        "            notification;",
        "            refresh;",  # BoRR/EoRR: an exact re-read (RFC 7313)
        "        }",
        "    }",
        "}",
    ]
    return "\n".join(lines)


def render_config(settings: BgpSettings, *, relay: Sequence[str] | None = None) -> str:
    """ExaBGP 5 config: the relay as API process and one passive neighbor per router."""
    run = (
        relay
        if relay is not None
        else relay_command(feed_socket_path(settings), spool_bytes=settings.relay_spool_bytes)
    )
    run_line = " ".join(_word(part, "relay command word") for part in run)
    blocks = [
        "# Generated by ribd from the service settings; edits are overwritten.",
        f"process {RELAY_PROCESS_NAME} {{",
        f"    run {run_line};",
        "    encoder json;",
        "}",
    ]
    blocks += [render_neighbor(settings, n, RELAY_PROCESS_NAME) for n in settings.neighbors]
    return "\n".join(blocks) + "\n"


def render_env(settings: BgpSettings) -> dict[str, str]:
    """ExaBGP's settings (environment variables) for the supervised process.

    ``settings.extra`` entries named ``exabgp.<section>.<option>`` override
    these, for knobs we do not model.
    """
    work_dir = settings.work_dir or "."
    env = {
        "exabgp.tcp.bind": settings.listen_address,
        "exabgp.tcp.port": str(settings.listen_port),
        "exabgp.api.ack": "false",
        "exabgp.api.cli": "false",  # no named pipes in the work dir
        "exabgp.api.encoder": "json",
        "exabgp.api.respawn": "true",  # ExaBGP restarts a dead relay (5 a minute at most)
        "exabgp.api.terminate": "false",
        "exabgp.daemon.daemonize": "false",
        "exabgp.daemon.pid": "",
        "exabgp.daemon.user": pwd.getpwuid(os.getuid()).pw_name,
        "exabgp.log.enable": "true",
        "exabgp.log.destination": os.path.join(work_dir, "exabgp.log"),
        "exabgp.log.level": "INFO",
        "exabgp.log.short": "false",
        "exabgp.log.packets": "false",
        "exabgp.log.routes": "false",
        "exabgp.log.rib": "false",
        "exabgp.log.parser": "false",
    }
    for key, value in settings.extra.items():
        if key.startswith("exabgp."):
            env[key] = str(value)
    return env


def child_environment(exabgp_env: dict[str, str]) -> dict[str, str]:
    """Our environment minus any ExaBGP settings of our own, plus ``exabgp_env``.

    ``exabgp_cli_pipe`` would turn ``exabgp`` into its CLI pipe helper, and a
    stray ``exabgp.*`` variable would silently change the daemon. PYTHONPATH
    lets the relay import ribd when the package is not installed.
    """
    env = {k: v for k, v in os.environ.items() if not k.lower().startswith("exabgp")}
    env["EXABGP_ENVFILE"] = os.devnull  # ignore an exabgp.env next to the install
    path = env.get("PYTHONPATH", "")
    if _PKG_ROOT not in path.split(os.pathsep):
        env["PYTHONPATH"] = _PKG_ROOT + (os.pathsep + path if path else "")
    env.update(exabgp_env)
    return env


# -- child processes ----------------------------------------------------------

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
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


def spawn_child(
    command: Sequence[str], env: dict[str, str], cwd: str | None = None
) -> subprocess.Popen[bytes]:
    """Start a child in its own session that dies with us, stdout+stderr piped."""
    return subprocess.Popen(
        list(command),
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_die_with_parent(os.getpid()),
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
    """

    def __init__(
        self,
        settings: BgpSettings,
        rib: Rib,
        *,
        on_event: Callable[[str, dict], None] | None = None,
        command: Sequence[str] | None = None,
    ) -> None:
        self.settings = settings
        self.rib = rib
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
        self._thread = threading.Thread(target=self._run, name="exabgp-supervisor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop ExaBGP (SIGTERM, then SIGKILL) and the supervision thread."""
        self._stop.set()
        with self._lock:
            proc = self._proc
        if proc is not None:
            terminate_child(proc, timeout)
        if self._thread is not None:
            self._thread.join(timeout + 5.0)
            self._thread = None

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
                log.error("cannot start ExaBGP (%s): %s", " ".join(self.command), exc)
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
                log.info("ExaBGP started, pid %d, config %s", proc.pid, self.config_path)
                self._emit("started", {"pid": proc.pid})
                pump = log_output(proc, log, "exabgp")
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
                log.info("ExaBGP stopped (exit code %s)", code)
                self._emit("stopped", {"code": code})
                self._rib_gone(f"ExaBGP stopped (exit code {code})")
                break
            ran = time.time() - started
            failures = 1 if ran >= STABLE_RUN_SECONDS else failures + 1
            delay = min(
                self.settings.restart_backoff_initial * 2 ** (failures - 1),
                self.settings.restart_backoff_max,
            )
            tail = log_tail(self.log_path, log_offset) if proc is not None else []
            log.warning(
                "ExaBGP exited with code %s after %.1fs; restart in %.1fs%s",
                code,
                ran,
                delay,
                f"; the end of its log ({self.log_path}):\n  " + "\n  ".join(tail)
                if tail
                else f"; its log ({self.log_path}) has nothing new",
            )
            if proc is not None:
                with self._lock:
                    self._last_error = f"ExaBGP exited with code {code}" + (
                        f": {exit_reason(tail)}" if tail else ""
                    )
            self._rib_gone(f"ExaBGP exited with code {code}")
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
        self.rib.with_lock_exabgp_gone(reason, self.settings.restart_hold_time)


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
