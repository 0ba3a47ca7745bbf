"""`attribution check --config FILE`: is this file good to start or reload with? Changes nothing.

What ``serve`` and a reload would refuse, found before either: every problem
of the file (file:line: key: why), and every TLS and token file read and
checked as at start (``[api]`` and ``[metrics]``). Then what the file sets up,
in a few lines, and what deserves a look: the config's own warnings (a rule
that never matches), a certificate that expires within ``EXPIRY_WARNING_DAYS``,
a snapshot directory the service could not write. Like ``nginx -t`` or
``promtool check config``: for CI, a deploy hook, or systemd's ExecReload
before the signal (``deploy/systemd/attribution.service``), so that
``systemctl reload`` fails on a broken file instead of logging it.

Exit status: 0 good, 1 good but with warnings and ``--strict``, 2 problems.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator

from cryptography import x509

from attribution.config import Config, ConfigError, load_config
from attribution.config_reloads import answers_digest, short_digest
from attribution.security import check
from attribution.tls_files import EXPIRY_WARNING_DAYS
from ribd.snapshot import snapshot_holder
from ribd.snapshot_format import SnapshotError, inspect_file

GOOD, WARNED, BROKEN = 0, 1, 2


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    s = sub.add_parser(
        "check",
        help="check a config file and the TLS and token files it names (exit 0: good, "
        "1: warnings with --strict, 2: problems); starts and changes nothing",
        parents=parents,
        description="Every problem serve or a reload would refuse, before either: the file "
        "(all of its problems, with their lines), the TLS and token files of [api] and "
        "[metrics]. Then a summary and warnings: the config's own, certificates close to "
        "expiry, a snapshot directory that cannot be written.",
    )
    s.add_argument("--config", required=True, metavar="FILE", help="TOML config file")
    s.add_argument("--strict", action="store_true", help="warnings make the exit status 1")
    s.add_argument("--quiet", action="store_true", help="print problems and warnings only")


def cmd_check(args: argparse.Namespace) -> int:
    """The ConfigError of a broken file propagates (the CLI prints it, exit 2)."""
    config = load_config(args.config)
    lines, warnings = summary(config)
    if not args.quiet:
        print(f"{args.config}: OK")
        for line in lines:
            print(f"  {line}")
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    return WARNED if warnings and args.strict else GOOD


def summary(config: Config, now: Callable[[], float] = time.time) -> tuple[list[str], list[str]]:
    """(what the file sets up, warnings); raises SecurityError for an unusable TLS or
    token file. What the file checks log as warnings at start (a token file every
    user can read) is among the warnings, not a log line."""
    warnings = list(config.warnings)
    with _collected(logging.getLogger("attribution.security"), warnings):
        lines = _summary(config, now, warnings)
    return lines, warnings


@contextlib.contextmanager
def _collected(logger: logging.Logger, into: list[str]) -> Iterator[None]:
    """``logger``'s warnings appended to ``into`` (and not logged) meanwhile."""

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            into.append(record.getMessage())

    handler, propagate = Collect(logging.WARNING), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _summary(config: Config, now: Callable[[], float], warnings: list[str]) -> list[str]:
    lines = [
        f"routers: {len(config.routers)}"
        + (f" ({', '.join(r.name for r in config.routers)})" if config.routers else "")
        + f"; overrides: {len(config.overrides)}; [[ix]]: {len(config.ix)}"
    ]
    api, metrics = config.api, config.metrics
    leaves = check(api, metrics)  # every TLS and token file, read as serve reads them
    tls = _tls("api", leaves, api.tls_client_ca, now, warnings)
    tokens = [k.split("_")[0] for k in ("read_token_file", "admin_token_file") if getattr(api, k)]
    lines.append(
        f"gRPC: {config.grpc_listen}, {tls}, "
        + (f"tokens: {', '.join(tokens)}" if tokens else "no tokens")
    )
    if metrics.listen:
        scheme = _tls("metrics", leaves, metrics.tls_client_ca, now, warnings)
        lines.append(
            f"metrics: {metrics.listen}, {scheme}, "
            + ("tokens" if metrics.token_file else "no tokens")
        )
    else:
        lines.append("metrics: off")
    bgp = config.bgp
    lines.append(
        f"BGP: ExaBGP {bgp.exabgp_mode}{_exabgp(config)}, api_mode {bgp.api_mode}, "
        f"{bgp.workers} worker(s), listening on {bgp.listen_address}:{bgp.listen_port}"
    )
    lines.append(_snapshot(config, now, warnings))
    # The service's attribution_config_info{sha256} once it runs this file.
    lines.append(f"sha256: {short_digest(config.digest)}, answers_sha256: {answers_digest(config)}")
    return lines


def _exabgp(config: Config) -> str:
    """The ExaBGP the service would start, found (" (PROGRAM)"), or a ConfigError: a
    supervised ExaBGP that cannot be started leaves every session down."""
    bgp = config.bgp
    if bgp.exabgp_mode != "supervised":
        return ""
    if not bgp.exabgp_command:
        if importlib.util.find_spec("exabgp") is None:
            raise ConfigError(
                f"{config.path}: bgp.exabgp_command: none given, and the ExaBGP package is "
                "not installed for this Python"
            )
        return f" ({sys.executable} -m ribd.exabgp_run)"
    program = bgp.exabgp_command[0]
    found = shutil.which(program)
    if found is None:
        raise ConfigError(
            f"{config.path}: bgp.exabgp_command: {program!r} is not an executable "
            "(absolute, or on PATH)"
        )
    return f" ({found})"


def _tls(
    section: str,
    leaves: dict[str, x509.Certificate],
    client_ca: str,
    now: Callable[[], float],
    warnings: list[str],
) -> str:
    """The TLS of ``[section]`` in words ("plaintext" without its leaf certificate)."""
    leaf = leaves.get(section)
    if leaf is None:
        return "plaintext"
    until = leaf.not_valid_after_utc.timestamp()
    left = (until - now()) / 86400
    when = time.strftime("%Y-%m-%d", time.gmtime(until))
    if left < 0:
        warnings.append(f"[{section}] tls_cert: the certificate expired on {when}")
    elif left < EXPIRY_WARNING_DAYS:
        warnings.append(f"[{section}] tls_cert: the certificate expires in {left:.1f} days")
    kind = "mutual TLS" if client_ca else "TLS"
    return f"{kind} ({leaf.subject.rfc4514_string()}, valid until {when})"


def _snapshot(config: Config, now: Callable[[], float], warnings: list[str]) -> str:
    path = config.snapshot_path
    if not path:
        return "snapshot: off (a restart reloads every table over BGP)"
    directory = os.path.dirname(os.path.abspath(path))
    parts = []
    try:
        st = os.stat(path)
        age = max(0.0, now() - st.st_mtime)
        parts.append(f"{_size(st.st_size)}, written {_ago(age)} ago")
        header = inspect_file(path)
    except FileNotFoundError:
        parts.append("none written yet")
    except (OSError, SnapshotError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        parts.append("unusable")
        warnings.append(
            f"service.snapshot_path: {path}: {why}; a start would load every table over BGP "
            "(cold) and the next write replaces it"
        )
    else:
        prefixes = header["prefixes"]
        total = sum(v for v in prefixes.values() if type(v) is int)
        parts.append(
            f"format {header['version']}, {header['routers']} routers, "
            f"{total:,} distinct prefixes, checksum good"
        )
    if os.path.isdir(directory):
        if not os.access(directory, os.W_OK | os.X_OK):
            warnings.append(
                f"service.snapshot_path: {directory} is not writable by this user "
                f"(uid {os.getuid()}); if the service runs as it, its writes will fail"
            )
    else:
        parent = _existing_parent(directory)
        if not os.access(parent, os.W_OK | os.X_OK):
            warnings.append(
                f"service.snapshot_path: {directory} does not exist and {parent} is not "
                f"writable by this user (uid {os.getuid()})"
            )
    held, pid = snapshot_holder(path)
    if held:
        parts.append(f"held by a running service (pid {pid or 'unknown'})")
    return f"snapshot: {path} ({'; '.join(parts)}), every {config.snapshot_interval:g} s"


def _existing_parent(directory: str) -> str:
    while not os.path.isdir(directory):
        directory = os.path.dirname(directory)
    return directory


def _size(n: int) -> str:
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n / 1024:.0f} KiB"


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


__all__ = ["add_parser", "cmd_check", "summary"]
