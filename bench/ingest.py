"""Ingest: ExaBGP JSON lines -> parser -> Rib, in one process, on the real full table.

``--raw`` does the same with the lines of ExaBGP's ``packets`` API (``api_mode =
"raw"``): the table's UPDATEs byte for byte from the MRT file, each as the
hex line ExaBGP writes, after the two OPENs of the session; ``--routers N``
interleaves N routers' tables (router k with its own NEXT_HOP values, as
``bench.vs_pmacct`` sends them), one line of each in turn as concurrent
sessions deliver them.

Lines are read into memory first; only parsing and applying are timed. The
garbage collector is set up as the service sets it up (``tune_gc``: freeze,
then thresholds 100k/50/1000) unless ``--default-gc`` asks for CPython's
defaults, to show what that tuning is worth.

Times are the process's CPU time (``time.process_time``): the figure is "on
one core", and it does not move when something else runs on the box.

The floor, measured in the same process: ``orjson.loads`` of every line plus
one bare ``pytricia.insert`` per announced prefix, i.e. what any Python design
that parses with orjson and stores in pytricia must pay at least.
"""

from __future__ import annotations

import argparse
import gc
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson
import pytricia

from bench.common import (
    CHURN,
    FULL_TABLE,
    FULL_TABLE_PEER,
    FULL_TABLE_PREFIXES,
    V4,
    Row,
    at_least,
    bench_main,
    data_available,
    log,
    read_lines,
)

if TYPE_CHECKING:
    from ribd.rib import Rib

TARGET = 300_000  # prefixes/s (the issue: >= 3x ExaBGP's best emit rate)
EXABGP_BEST = 117_000  # prefixes/s, ExaBGP 5.0.15 with 100 prefixes per UPDATE
_NLRI = re.compile(rb'"nlri":"([^"]+)"')
_PEER = re.compile(rb'"peer":"[^"]*"')


def raw_lines(routers: int = 1) -> tuple[list[bytes], list[str]]:
    """The real table as ``packets`` API lines, ``routers`` sessions interleaved;
    and the neighbor of each session (router 1 is FULL_TABLE_PEER)."""
    from bench.bgpsend import mrt_updates, with_next_hops
    from bench.fuzz_raw import packets_line, session_lines

    table = mrt_updates().updates
    peers = [FULL_TABLE_PEER] + [f"127.0.0.{k + 1}" for k in range(1, routers)]
    per = [table] + [with_next_hops(table, k) for k in range(2, routers + 1)]
    lines = [line for peer in peers for line in session_lines(peer)]
    for group in zip(*per, strict=True):
        for peer, msg in zip(peers, group, strict=True):
            lines.append(packets_line(msg[19:], peer=peer, time_=1.0))
    lines.extend(packets_line(b"\0\0\0\0", peer=peer) for peer in peers)  # End-of-RIB
    return lines, peers


def prefix_ops(lines: list[bytes]) -> list[str]:
    """Every NLRI of the stream (announced and withdrawn), in order."""
    return [m.decode() for line in lines for m in _NLRI.findall(line)]


def time_floor(lines: list[bytes], prefixes: list[str]) -> tuple[float, float]:
    loads = orjson.loads
    t0 = time.process_time()
    for line in lines:
        loads(line)
    t_json = time.process_time() - t0
    trie = pytricia.PyTricia(32)
    value = ("shared",)
    insert = trie.insert
    t0 = time.process_time()
    for p in prefixes:
        insert(p, value)
    t_insert = time.process_time() - t0
    return t_json, t_insert


def new_rib() -> tuple[Rib, Callable[[bytes], list]]:
    """An empty Rib and a parser sharing its attribute interner, as the feed has."""
    from ribd.parser import ExabgpParser
    from ribd.rib import Rib

    rib = Rib()
    return rib, ExabgpParser(rib.interner).parse


def time_ingest(lines: list[bytes]) -> tuple[float, Rib]:
    rib, parse = new_rib()
    apply_many = rib.apply_many
    t0 = time.process_time()
    for line in lines:
        apply_many(parse(line))
    return time.process_time() - t0, rib


def time_gc(lines: list[bytes]) -> tuple[float, float, int]:
    """(load CPU-s, seconds inside the cyclic GC, its passes) of one load:
    what GC settings could still save while a table streams (issue 11)."""
    spent = [0.0, 0.0, 0]

    def watch(phase: str, info: dict) -> None:
        if phase == "start":
            spent[1] = time.process_time()
        else:
            spent[0] += time.process_time() - spent[1]
            spent[2] += 1

    gc.callbacks.append(watch)
    try:
        t, _ = time_ingest(lines)
    finally:
        gc.callbacks.remove(watch)
    return t, spent[0], int(spent[2])


def time_split(lines: list[bytes]) -> tuple[float, float, float]:
    """Parse everything, apply everything, then merge the stores as the
    maintenance does after a load (``Rib._merge``): where the time goes."""
    rib, parse = new_rib()
    t0 = time.process_time()
    events = [parse(line) for line in lines]
    t_parse = time.process_time() - t0
    apply_many = rib.apply_many
    t0 = time.process_time()
    for ev in events:
        apply_many(ev)
    t_apply = time.process_time() - t0
    t0 = time.process_time()
    for table in rib.tables.values():
        rib._merge(table)
    return t_parse, t_apply, time.process_time() - t0


def time_churn(table: list[bytes], churn: list[bytes], remap: bool) -> tuple[float, int]:
    """Load the table, then time parse+apply of the RIS churn; (seconds, routers)."""
    _, rib = time_ingest(table)
    if remap:
        field = b'"peer":"' + FULL_TABLE_PEER.encode() + b'"'
        churn = [_PEER.sub(field, line) for line in churn]
    from ribd.parser import ExabgpParser

    parse = ExabgpParser(rib.interner).parse
    apply_many = rib.apply_many
    t0 = time.process_time()
    for line in churn:
        apply_many(parse(line))
    return time.process_time() - t0, len(rib.routers)


def run_churn(args: argparse.Namespace) -> list[Row]:
    """RIS churn applied to the loaded full table, in-process, nothing else running."""
    skip = data_available(FULL_TABLE, CHURN)
    if skip:
        return [Row("churn", "churn applied, idle", None, "UPDATEs/s", note=skip)]
    from attribution.service import tune_gc

    table, churn = read_lines(FULL_TABLE), read_lines(CHURN)
    tune_gc()
    rows = []
    for remap, label in ((False, "as 63 routers"), (True, "remapped onto the loaded router")):
        t, routers = time_churn(table, churn, remap)
        rows.append(
            Row(
                "churn",
                f"RIS churn {label}: parse+apply, in-process, idle",
                len(churn) / t,
                "UPDATEs/s",
                note=f"{t:.2f} CPU-s for {len(churn)} UPDATEs "
                f"({sum(len(_NLRI.findall(x)) for x in churn) / t:,.0f} prefixes/s) onto the "
                f"loaded full table; {routers} routers after",
            )
        )
    return rows


def run(args: argparse.Namespace) -> list[Row]:
    if args.churn:
        return run_churn(args)
    skip = data_available(FULL_TABLE)
    if skip:
        return [Row("ingest", "parser+Rib, in-process", None, "prefixes/s", note=skip)]
    lines = read_lines(FULL_TABLE)
    ops = prefix_ops(lines)
    n = len(ops)
    routers = [FULL_TABLE_PEER]
    if args.raw:
        lines, routers = raw_lines(args.routers)
        n *= len(routers)
    if args.default_gc:
        gc_label = "CPython default GC"
    else:
        from attribution.service import tune_gc

        tune_gc()
        gc_label = "service GC tuning"
    log(f"ingest: {len(lines)} lines, {n} prefix operations, {gc_label}")
    repeats = 1 if args.quick else 2
    t_json, t_insert = min((time_floor(lines, ops) for _ in range(repeats)), key=sum)
    floor = n / (t_json + t_insert)
    times = []
    for _ in range(repeats + 1):  # best of several: the box is shared
        t, rib = time_ingest(lines)
        times.append(t)
        got = [rib.routers[r].families[V4].prefixes for r in routers]
        del rib
    best = min(times)
    want = [FULL_TABLE_PREFIXES] * len(routers)
    check = "" if got == want else f"RIB has {got} prefixes, not {want}"
    rate = n / best
    rows: list[Row] = []
    suffix = "" if not args.default_gc else " (CPython default GC)"
    if args.raw:
        suffix += f", packets lines, {len(routers)} router(s)"
    rows.append(
        Row(
            "ingest",
            f"parser+Rib, in-process{suffix}",
            rate,
            "prefixes/s",
            floor,
            "floor: orjson.loads + pytricia.insert",
            ">= 300k/s" if not args.default_gc else "",
            at_least(rate, TARGET) if not args.default_gc else None,
            f"{best:.2f} CPU-s for {n} prefixes in {len(lines)} lines; {gc_label}; "
            f"{rate / EXABGP_BEST:.1f}x ExaBGP's best emit rate (117k/s); "
            f"{rate / floor:.0%} of the floor" + (f"; {check}" if check else ""),
        )
    )
    if args.default_gc:
        return rows
    t_parse, t_apply, t_merge = min((time_split(lines) for _ in range(repeats)), key=sum)
    rows.append(
        Row(
            "ingest",
            "  of which parse (ExabgpParser)" + (_raw_label() if args.raw else ""),
            n / t_parse,
            "prefixes/s",
            n / t_json,
            "orjson.loads alone",
            note=f"{t_parse:.2f} CPU-s, {t_parse / (t_parse + t_apply):.0%} of parse+apply",
        )
    )
    rows.append(
        Row(
            "ingest",
            "  of which apply (Rib.apply_many)",
            n / t_apply,
            "prefixes/s",
            n / t_insert,
            "pytricia.insert alone",
            note=f"{t_apply:.2f} CPU-s, {t_apply / (t_parse + t_apply):.0%} of parse+apply",
        )
    )
    rows.append(
        Row(
            "ingest",
            "  then the store merge after the load (Rib._merge)",
            n / t_merge if t_merge else None,
            "prefixes/s",
            note=f"{t_merge:.2f} CPU-s (not in parse+apply)",
        )
    )
    t_load, t_gc, passes = time_gc(lines)
    rows.append(
        Row(
            "ingest",
            "  of which the cyclic GC during the load",
            t_gc,
            "CPU-s",
            note=f"{passes} passes, {t_gc / t_load:.1%} of the load's {t_load:.2f} CPU-s; "
            f"{gc_label}",
        )
    )
    gc.collect()
    return rows


def _raw_label() -> str:
    """Which raw decoder ran: the compiled one (ribd._rawdecode) or the Python reference."""
    from ribd.parser import ExabgpParser
    from ribd.rawupdate import COMPILED

    label = " raw, compiled decoder" if COMPILED else " raw, Python decoder"
    return label + (", lines scanned in C" if ExabgpParser().fast is not None else "")


def extra_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--default-gc", action="store_true", help="keep CPython's GC settings")
    p.add_argument("--churn", action="store_true", help="RIS churn onto the loaded table instead")
    p.add_argument("--raw", action="store_true", help="ExaBGP packets lines (api_mode raw)")
    p.add_argument("--routers", type=int, default=1, help="with --raw: routers interleaved")


if __name__ == "__main__":
    raise SystemExit(bench_main("ingest", run, extra_args))
