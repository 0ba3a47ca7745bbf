"""ExaBGP's config and environment, rendered from ``BgpSettings``. No I/O.

Choices made from ExaBGP 5.0.15's source (exabgp/configuration, environment):

* ``adj-rib-in false``: ExaBGP would otherwise keep ~3.4 KB per UPDATE that
  we never read back.
* ``capability { route-refresh; }`` so the service can ask a router to resend
  its table after the relay lost lines (ExaBGP only sends ROUTE-REFRESH when
  the capability is configured; it then offers enhanced route refresh too,
  and ``receive { refresh; }`` passes the router's BoRR/EoRR markers on).
  ExaBGP forces ``adj-rib-out`` on, which costs nothing here: we announce no
  routes.
* ``exabgp.api.ack false``: the relay never sends commands that need answers,
  and acks would only add lines to filter.
* ``api_mode`` (``API_MODES``): ``raw`` (the default) has ExaBGP write each
  received message as its bytes (``packets``) and our OPENs too (``send {
  packets; open; }``, for what the session negotiated), decoded by
  ``ribd.rawlines``; ExaBGP runs through ``ribd.exabgp_run``, which then
  skips ExaBGP's own decoding of received UPDATEs (ExaBGP 5.0.15 has no
  setting for that: ``Protocol.read_message`` decodes whenever an update API
  is on). ``json`` has ExaBGP write parsed JSON. The other entries exist for
  the benchmark (BENCHMARKS.md, "ExaBGP's API modes and the raw decoder").
* ``exabgp.daemon.user`` is the service's own user: when run as root ExaBGP
  otherwise drops to ``nobody`` before starting the relay, which then cannot
  reach the feed socket or the work directory.
"""

from __future__ import annotations

import base64
import os
import pwd
import sys
from collections.abc import Sequence
from pathlib import Path

from ribd.exabgp_run import IDLE_TURNS_ENV, RAW_ENV
from ribd.settings import BgpSettings, NeighborSettings

RELAY_PROCESS_NAME = "ribd"
# api_mode -> (receive block, send block) of each neighbor's api section.
API_MODES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "raw": (("packets", "update", "open", "notification", "refresh"), ("packets", "open")),
    "json": (("parsed", "update", "notification", "refresh"), ()),
    # benchmark-only variants (bench.exabgp_api); the config accepts raw and json
    "raw+parsed": (
        ("packets", "parsed", "update", "open", "notification", "refresh"),
        ("packets", "open"),
    ),
    "consolidate": (("consolidate", "update", "notification", "refresh"), ()),
    # ExaBGP's floor: no update API, no format (it decodes nothing, sends us nothing)
    "no-update": (("notification", "refresh"), ()),
}
CONFIG_API_MODES = ("raw", "json")
_UNSAFE_TOKEN_CHARS = set("\"'\\;{}[]()#,\n\r\t")
_PKG_ROOT = str(Path(__file__).resolve().parent.parent)
MAX_MD5_KEY_BYTES = 80  # Linux TCP_MD5SIG_MAXKEYLEN; ExaBGP refuses longer keys
MAX_UNIX_PATH_BYTES = 107  # sun_path is 108 bytes with the terminating NUL


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
    """The ExaBGP installed for our interpreter (the pip one), through ``ribd.exabgp_run``
    (same arguments; lighter for api_mode raw, see there)."""
    return [sys.executable, "-m", "ribd.exabgp_run"]


def relay_command(
    socket_path: str, python: str | None = None, spool_bytes: int | None = None, worker: int = 0
) -> list[str]:
    """The API process line: our relay, run by the same interpreter as the service.

    ``worker``: the ExaBGP worker it relays for (ribd.workers), named in its
    hello so the service scopes that relay's eof, gaps and re-reads to the
    worker's routers; 0 (the only ExaBGP) leaves the line as it always was.
    """
    words = [python or sys.executable, "-m", "ribd.relay", "--socket", os.path.abspath(socket_path)]
    if spool_bytes:
        words += ["--spool-bytes", str(int(spool_bytes))]
    if worker:
        words += ["--worker", str(int(worker))]
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
    ]
    # refresh: BoRR/EoRR, for an exact re-read (RFC 7313)
    receive, send = API_MODES[settings.api_mode]
    lines += ["        receive {", *(f"            {w};" for w in receive), "        }"]
    if send:
        lines += ["        send {", *(f"            {w};" for w in send), "        }"]
    lines += [
        "    }",
        "}",
    ]
    return "\n".join(lines)


def render_config(settings: BgpSettings, *, relay: Sequence[str] | None = None) -> str:
    """ExaBGP 5 config: the relay as API process and one passive neighbor per router."""
    run = (
        relay
        if relay is not None
        else relay_command(
            feed_socket_path(settings),
            spool_bytes=settings.relay_spool_bytes,
            worker=settings.worker,
        )
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


def current_user() -> str:
    """Our user's name for ExaBGP's ``daemon.user``, or the numeric uid.

    Containers often run with a uid that has no passwd entry (OpenShift picks
    one at random); ``pwd.getpwuid`` then raises KeyError, and the service
    could not start. ExaBGP reads the name only to drop root privileges, so
    any value does for the unprivileged uids that have no entry.
    """
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def render_env(settings: BgpSettings) -> dict[str, str]:
    """ExaBGP's settings (environment variables) for the supervised process.

    ``settings.extra`` entries named ``exabgp.<section>.<option>`` override
    these, for knobs we do not model.
    """
    work_dir = settings.work_dir or "."
    env = {
        # A worker listens on its own routers' addresses (ribd.workers).
        "exabgp.tcp.bind": (
            settings.listen_address
            if settings.bind_addresses is None
            else " ".join(settings.bind_addresses)
        ),
        "exabgp.tcp.port": str(settings.listen_port),
        "exabgp.api.ack": "false",
        "exabgp.api.cli": "false",  # no named pipes in the work dir
        "exabgp.api.encoder": "json",
        "exabgp.api.respawn": "true",  # ExaBGP restarts a dead relay (5 a minute at most)
        "exabgp.api.terminate": "false",
        "exabgp.daemon.daemonize": "false",
        "exabgp.daemon.pid": "",
        "exabgp.daemon.user": current_user(),
        "exabgp.log.enable": "true",
        "exabgp.log.destination": os.path.join(work_dir, "exabgp.log"),
        # INFO keeps the session events (connected, closing, connection
        # closed); "statistics" lines, one per received UPDATE, cost ~17% of
        # ExaBGP's CPU for a table (BENCHMARKS.md) and filled the log tail
        # quoted when ExaBGP exits.
        "exabgp.log.level": "INFO",
        "exabgp.log.statistics": "false",
        "exabgp.log.short": "false",
        "exabgp.log.packets": "false",
        "exabgp.log.routes": "false",
        "exabgp.log.rib": "false",
        "exabgp.log.parser": "false",
    }
    # ribd.exabgp_run: ExaBGP skips decoding received UPDATEs that we decode.
    env[RAW_ENV] = "1" if settings.api_mode == "raw" else "0"
    # ... and gives idle sessions no turn on passes that have nothing for them.
    env[IDLE_TURNS_ENV] = "1"
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
