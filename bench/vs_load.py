"""What the session benchmarks send and what they record: the routers' UPDATEs
(``bench.bgpsend``'s tables), the probe that says a table is answering, the
sender running beside the polls, and one receiver's result."""

from __future__ import annotations

import hashlib
import pickle
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import bgpsend

REAL_PREFIXES = 577_703  # after the table's own withdrawals (bench.common)


def _ipv4_nlri(msg: bytes) -> list[str]:
    _at, end = bgpsend._attributes_span(msg)
    data = msg[end:]
    out = []
    i = 0
    while i < len(data):
        n = data[i]
        size = (n + 7) // 8
        raw = data[i + 1 : i + 1 + size] + bytes(4 - size)
        out.append(f"{socket.inet_ntoa(raw)}/{n}")
        i += 1 + size
    return out


def last_unique_prefix(updates: list[bytes]) -> str:
    """The last IPv4 prefix of the table announced only once (classic NLRI field)."""
    seen: dict[str, int] = {}
    for m in updates:
        for p in _ipv4_nlri(m):
            seen[p] = seen.get(p, 0) + 1
    for m in reversed(updates):
        for p in reversed(_ipv4_nlri(m)):
            if seen[p] == 1:
                return p
    raise ValueError("no IPv4 prefix is announced only once")


@dataclass
class Load:
    name: str
    tables: bgpsend.Tables
    probe: str  # the last prefix announced once
    expected: dict[str, int]  # family -> prefixes per router in the end


def _source_digest() -> str:
    """A digest of the code that derives the UPDATEs (a changed generator, a new
    cache file: never a stale table measured as the current one)."""
    h = hashlib.sha256()
    for name in ("bgpsend.py", "realistic.py", "realistic_packets.py", "vs_load.py"):
        path = Path(__file__).with_name(name)
        if path.exists():
            h.update(path.read_bytes())
    return h.hexdigest()[:12]


def cached_load(source: str, routers: int, quick: bool, cache: Path | None) -> Load:
    """``make_load``, pickled in ``cache`` when given: the 64 varied routers'
    7 M UPDATEs take ~8 min to derive and ~20 s to read back."""
    if cache is None:
        return make_load(source, routers, quick)
    path = cache / f"vsload-{source}-{routers}{'-quick' if quick else ''}-{_source_digest()}.pickle"
    if path.exists():
        name, per, families, four, asn, prefixes, probe, expected = pickle.loads(path.read_bytes())
        tables = bgpsend.Tables(per, tuple(families), four, asn, prefixes)
        return Load(name, tables, probe, expected)
    load = make_load(source, routers, quick)
    t = load.tables
    plain = (
        load.name, t.per_router, t.families, t.four_octet, t.asn, t.prefixes,
        load.probe, load.expected,
    )  # fmt: skip
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(plain, protocol=pickle.HIGHEST_PROTOCOL))
    tmp.rename(path)
    return load


def make_load(source: str, routers: int, quick: bool) -> Load:
    if source == "real":
        t = bgpsend.mrt_tables(routers, limit=20_000 if quick else None)
        expected = {"ipv4 unicast": 0 if quick else REAL_PREFIXES}
        return Load(
            "real 2015 table (577,703 IPv4)", t, last_unique_prefix(t.per_router[0]), expected
        )
    if source == "real-varied":
        from bench import realistic

        model = realistic.cached_model("real", Path(tempfile.gettempdir()))
        if quick:
            model = realistic.Model(f"{model.name}/20", model.groups[::20])
        t = bgpsend.realistic_tables(model, routers)
        return Load(
            "real 2015 table, routers varied as bench.realistic derives them "
            f"({t.prefixes.get('ipv4 unicast', 0):,} IPv4)",
            t,
            last_unique_prefix(t.per_router[0]),
            dict(t.prefixes),
        )
    v4, v6 = (100_000, 25_000) if quick else (None, None)
    t = bgpsend.synth_tables(routers, v4, v6)
    return Load(
        f"synthetic today-sized ({t.prefixes.get('ipv4 unicast', 0):,} IPv4 + "
        f"{t.prefixes.get('ipv6 unicast', 0):,} IPv6)",
        t,
        last_unique_prefix(t.per_router[0]),
        dict(t.prefixes),
    )


@dataclass
class Result:
    receiver: str
    routers: int
    workers: int = 1
    seconds: float | None = None
    cpu_workers: dict[str, float] = field(default_factory=dict)  # "exabgp 1": CPU-s
    cpu: dict[str, float] = field(default_factory=dict)  # at answering
    cpu_idle: dict[str, float] = field(default_factory=dict)  # once quiet
    rss: dict[str, int] = field(default_factory=dict)  # at answering
    rss_idle: dict[str, int] = field(default_factory=dict)
    cpu_first: dict[str, float] = field(default_factory=dict)  # --late: routers 1..n-1
    cpu_first_idle: dict[str, float] = field(default_factory=dict)
    rss_first_idle: dict[str, int] = field(default_factory=dict)  # --late: 1..n-1 idle
    threads_first: list[dict] = field(default_factory=list)  # --late: the service's, by thread
    threads: list[dict] = field(default_factory=list)  # --late: router n's, by thread, answering
    threads_idle: list[dict] = field(default_factory=list)  # --late: router n's, once idle
    flows: dict[str, dict] = field(default_factory=dict)  # --flows-during-load, by phase
    note: str = ""
    code: str = ""  # the checkout the service ran from (--code), by its directory name


def start_sending(
    sessions: list[bgpsend.Session], tables: list[list[bytes]]
) -> tuple[float, threading.Thread]:
    """Send in the background (a session's send blocks while its receiver is
    behind), so the receiver is polled meanwhile; the first UPDATE's time."""
    failed: list[BaseException] = []

    def send() -> None:
        try:
            bgpsend.send_parallel(sessions, tables)
        except BaseException as e:  # reported by the poll loops via the sessions
            failed.append(e)
            for s in sessions:
                s.error = s.error or f"send failed: {e}"

    thread = threading.Thread(target=send, name="vs-pmacct-send", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not all(s.first_update_at for s in sessions):
        if failed or time.monotonic() > deadline:
            raise RuntimeError(f"sending did not start: {failed}")
        time.sleep(0.001)
    return min(s.first_update_at for s in sessions), thread
