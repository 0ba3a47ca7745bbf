"""Realistic many-router tables: N routers derived from one table, each as a real router sees it.

``bench.memory`` loads the *same* table as N routers (only the neighbor
rewritten). Real routers of one network differ, and what they differ in is
what a per-router RIB has to store:

* **next hops**: router k reaches each egress through its own next hop (the
  base route's next hop mapped to one of router k's own addresses, one per
  base next hop), so no base attribute set is shared between two routers;
* **RR client attributes**: a route keeps the originator id of its egress
  (the base table's, or one derived from the first AS), and its cluster list
  is the route reflector cluster router k is a client of (two clusters);
* **another best path for ~30% of prefixes**: router k prefers one of 8
  upstream ASes for some paths (``DIVERT_PATH``, decided per base attribute
  set, as a router's policy decides per path) and for a few single prefixes
  (``DIVERT_PREFIX``, traffic engineering of more-specifics): the path then
  goes through that upstream (it replaces the first AS of a path of 3+ ASes,
  is prepended to shorter ones; upstreams 6 and 7 prepend themselves twice),
  learned over iBGP from the border router of that upstream (next hop and
  originator id that router's loopback, shared by the routers of one region);
* **local preference** per (router, upstream) in 80..120 for diverted routes
  (100 otherwise), and **communities**: the base ones plus a region tag of
  router k (four regions) and, when diverted, the upstream's tag.

The result: about 30% of each router's prefixes have another AS path than
the base table; every attribute set of the base part is router-specific.

Two bases: the real 2015 table (``../shared/data``; absent: skip) and the
synthetic today-sized one (``bench.synth``: 1.04 M IPv4 + 0.23 M IPv6).

Output: ExaBGP 5.0 JSON lines as the feed takes them (a session ``up`` line,
UPDATEs of at most ``MAX_PER_UPDATE`` prefixes grouped by attribute set and
next hop, an End-of-RIB per family), so a table can be loaded in-process or
sent through ``ribd-feed`` / the feed socket. Router k's neighbor address is
``neighbor(k)`` (127.1.x.y). Deterministic for (base, seed, k): router k is
the same whichever N it is part of.

``python -m bench.realistic --base real --routers 4 --out FILE.jsonl.gz``
writes N routers' tables (with their statistics on stderr).
"""

from __future__ import annotations

import argparse
import gzip
import pickle
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from bench.common import FULL_TABLE, read_lines

V4, V6 = "ipv4 unicast", "ipv6 unicast"
UPSTREAMS = (174, 1299, 2914, 3257, 3356, 6453, 6762, 6939)
DIVERT_PATH = 0.26  # share of base attribute sets router k sends through an upstream
DIVERT_PREFIX = 0.05  # share of single prefixes diverted on their own
# Expected share of prefixes with another path: 0.26 + 0.74 * 0.05 = 0.30.
MAX_PER_UPDATE = 100
REGIONS = 4
SEED = 11


def neighbor(k: int) -> str:
    """Router k's neighbor address (k >= 1): loopback, like every address of the benchmarks."""
    return f"127.1.{k >> 8}.{k & 255}"


@dataclass(slots=True)
class Group:
    """The prefixes of one base attribute set (one family, one base next hop)."""

    family: str
    attrs: dict  # the base attribute object (ExaBGP JSON), without next hop
    hop_index: int  # number of the base next hop (router k maps it to its own address)
    first_as: int  # first AS of the path (0: empty path)
    nlri: list[bytes]  # b'{"nlri":"p"}' per prefix


@dataclass(slots=True)
class Model:
    """A base table: groups in first-seen order."""

    name: str
    groups: list[Group]

    @property
    def prefixes(self) -> int:
        return sum(len(g.nlri) for g in self.groups)

    def family_prefixes(self, family: str) -> int:
        return sum(len(g.nlri) for g in self.groups if g.family == family)

    def v4_prefixes(self) -> list[str]:
        return [
            n[9:-2].decode() for g in self.groups if g.family == V4 for n in g.nlri
        ]  # b'{"nlri":"' is 9 bytes, b'"}' 2


def _first_as(attrs: dict) -> int:
    segs = attrs.get("as-path") or {}
    for key in sorted(segs, key=int):
        value = segs[key].get("value") or []
        if value:
            return int(value[0])
    return 0


def model_from_lines(name: str, lines: list[bytes]) -> Model:
    """The converged table of ExaBGP 5 lines (one neighbor), grouped by attribute set."""
    final: dict[str, tuple[str, bytes, str]] = {}  # prefix -> (family, attrs key, next hop)
    attrs_of: dict[bytes, dict] = {}
    for line in lines:
        msg = orjson.loads(line)
        if msg.get("type") != "update":
            continue
        update = msg["neighbor"]["message"].get("update")
        if not update:
            continue
        for items in (update.get("withdraw") or {}).values():
            for item in items:
                final.pop(item["nlri"], None)
        announce = update.get("announce")
        if not announce:
            continue
        attrs = update.get("attribute") or {}
        key = orjson.dumps(attrs, option=orjson.OPT_SORT_KEYS)
        attrs_of.setdefault(key, attrs)
        for family, hops in announce.items():
            if family not in (V4, V6):
                continue
            for hop, items in hops.items():
                for item in items:
                    final[item["nlri"]] = (family, key, hop)
    hops: dict[str, int] = {}
    groups: dict[tuple[str, bytes, str], Group] = {}
    for prefix, (family, key, hop) in final.items():
        g = groups.get((family, key, hop))
        if g is None:
            attrs = attrs_of[key]
            g = groups[(family, key, hop)] = Group(
                family, attrs, hops.setdefault(hop, len(hops)), _first_as(attrs), []
            )
        g.nlri.append(b'{"nlri":"' + prefix.encode() + b'"}')
    return Model(name, list(groups.values()))


def real_model() -> Model:
    return model_from_lines("real", read_lines(FULL_TABLE))


def synth_model() -> Model:
    from bench.synth import generate

    lines, _ = generate()
    return model_from_lines("synth", lines)


def cached_model(base: str, workdir: Path, step: int = 1) -> Model:
    """The base model, built once per work directory (pickled: loads in a second).

    ``step`` > 1: every step-th base group only (the same shape at 1/step of the
    size), pickled apart so that a process measuring memory never holds, and
    frees, the whole model (freed heap it then reuses would hide RIB bytes)."""
    path = workdir / (
        f"realistic-{base}.pickle" if step == 1 else f"realistic-{base}-{step}.pickle"
    )
    if path.exists():  # plain tuples: independent of the module's name (__main__ or not)
        name, groups = pickle.loads(path.read_bytes())
        return Model(name, [Group(*g) for g in groups])
    if step > 1:
        whole = cached_model(base, workdir)
        model = Model(f"{whole.name}/{step}", whole.groups[::step])
    else:
        model = real_model() if base == "real" else synth_model()
    plain = (
        model.name,
        [(g.family, g.attrs, g.hop_index, g.first_as, g.nlri) for g in model.groups],
    )
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(plain, protocol=pickle.HIGHEST_PROTOCOL))
    tmp.rename(path)
    return model


# -- one router -----------------------------------------------------------------


def _path_through(attrs: dict, u: int) -> dict:
    """The base AS path as it looks through upstream ``u``."""
    up = UPSTREAMS[u]
    segs = attrs.get("as-path") or {}
    keys = sorted(segs, key=int)
    first = segs[keys[0]] if keys else None
    lead = [up, up] if u >= 6 else [up]
    if first is not None and first.get("element") == "as-sequence":
        value = list(first.get("value") or [])
        if value and value[0] == up:
            new_first = value
        elif len(value) >= 3:
            new_first = lead + value[1:]
        else:
            new_first = lead + value
        out = {"0": {"element": "as-sequence", "value": new_first}}
        rest = keys[1:]
    else:
        out = {"0": {"element": "as-sequence", "value": lead}}
        rest = keys
    for i, key in enumerate(rest, start=1):
        out[str(i)] = segs[key]
    return out


def _hop(k: int, family: str, index: int) -> str:
    """Router k's own next hop for base next hop ``index``."""
    if family == V4:
        return f"10.{k & 255}.{(index >> 8) & 255}.{index & 255}"
    return f"2001:db8:{k:x}:{index:x}::1"


def _border(k: int, family: str, u: int) -> str:
    """Loopback of the border router holding upstream ``u`` for router k's region."""
    b = (u * REGIONS + k % REGIONS) + 1
    return f"10.255.0.{b}" if family == V4 else f"2001:db8:ffff::{b:x}"


def _attributes(g: Group, k: int, fate: int) -> bytes:
    """Router k's attribute object for group ``g``; fate 0: base path, 1 + u: via upstream u."""
    a = dict(g.attrs)
    cluster = [f"10.254.0.{k % 2 + 1}"]
    region = [64500, 2000 + k % REGIONS]
    communities = list(a.get("community") or [])
    if fate:
        u = fate - 1
        a["as-path"] = _path_through(g.attrs, u)
        a["local-preference"] = 80 + 10 * ((k * 7 + u * 3) % 5)
        a["originator-id"] = _border(k, V4, u)
        a["community"] = [*communities, region, [64500, 3000 + u]]
    else:
        a["local-preference"] = 100
        if "originator-id" not in a:
            f = g.first_as
            a["originator-id"] = f"10.253.{(f >> 8) & 255}.{f & 255}"
        a["community"] = [*communities, region]
    a["cluster-list"] = cluster
    return orjson.dumps(a)


def _line(peer: bytes, attrs: bytes, family: str, hop: str, nlri: list[bytes]) -> bytes:
    return (
        b'{"exabgp":"5.0.0","time":1764000000.0,"host":"realistic","pid":1,"ppid":1,'
        b'"counter":1,"type":"update","neighbor":{"address":{"local":"127.0.0.1","peer":"'
        + peer
        + b'"},"asn":{"local":64500,"peer":64500},"router-id":"'
        + peer
        + b'","direction":"receive","message":{"update":{"attribute":'
        + attrs
        + b',"announce":{"'
        + family.encode()
        + b'":{"'
        + hop.encode()
        + b'":['
        + b",".join(nlri)
        + b"]}}}}}}"
    )


def state_up(peer: str) -> bytes:
    return orjson.dumps(
        {
            "exabgp": "5.0.0",
            "time": 1764000000.0,
            "type": "state",
            "neighbor": {
                "address": {"local": "127.0.0.1", "peer": peer},
                "asn": {"local": 64500, "peer": 64500},
                "router-id": peer,
                "state": "up",
            },
        }
    )


def end_of_rib(peer: str, afi: str) -> bytes:
    return orjson.dumps(
        {
            "exabgp": "5.0.0",
            "time": 1764000000.0,
            "type": "update",
            "neighbor": {
                "address": {"local": "127.0.0.1", "peer": peer},
                "asn": {"local": 64500, "peer": 64500},
                "direction": "receive",
                "message": {"eor": {"afi": afi, "safi": "unicast"}},
            },
        }
    )


@dataclass(slots=True)
class RouterStats:
    prefixes: int
    diverted: int  # prefixes whose AS path is not the base one
    attribute_sets: int  # distinct (attributes, next hop) of this router
    updates: int


def fates(model: Model, k: int, seed: int = SEED) -> np.ndarray:
    """Per prefix (groups' order): 0 = base path, 1 + u = through upstream u."""
    rng = np.random.default_rng([seed, k])
    sizes = np.fromiter((len(g.nlri) for g in model.groups), dtype=np.int64)
    path_div = rng.random(len(sizes)) < DIVERT_PATH
    path_up = rng.integers(0, len(UPSTREAMS), len(sizes))
    out = np.repeat(np.where(path_div, 1 + path_up, 0), sizes)
    single = rng.random(len(out)) < DIVERT_PREFIX
    out[single] = 1 + rng.integers(0, len(UPSTREAMS), int(single.sum()))
    return out


def router_lines(model: Model, k: int, seed: int = SEED) -> tuple[list[bytes], RouterStats]:
    """Router k's whole table as ExaBGP lines: state up, UPDATEs, End-of-RIB per family."""
    peer = neighbor(k)
    pb = peer.encode()
    fate = fates(model, k, seed)
    # Group by (family, attribute object, next hop): prefixes of base groups
    # that end up with the same attributes (one upstream) share UPDATEs.
    out: dict[tuple[str, bytes, str], list[bytes]] = {}
    pos = 0
    for g in model.groups:
        n = len(g.nlri)
        f = fate[pos : pos + n]
        pos += n
        kinds = np.unique(f).tolist()
        for kind in kinds:
            members = g.nlri if len(kinds) == 1 else [g.nlri[i] for i in np.flatnonzero(f == kind)]
            hop = _hop(k, g.family, g.hop_index) if kind == 0 else _border(k, g.family, kind - 1)
            key = (g.family, _attributes(g, k, kind), hop)
            bucket = out.get(key)
            if bucket is None:
                out[key] = list(members)
            else:
                bucket.extend(members)
    lines = [state_up(peer)]
    for (family, attrs, hop), nlri in out.items():
        for i in range(0, len(nlri), MAX_PER_UPDATE):
            lines.append(_line(pb, attrs, family, hop, nlri[i : i + MAX_PER_UPDATE]))
    families = {g.family for g in model.groups}
    lines += [end_of_rib(peer, f.split()[0]) for f in sorted(families)]
    stats = RouterStats(len(fate), int((fate != 0).sum()), len(out), len(lines) - 1 - len(families))
    return lines, stats


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.realistic", description=__doc__)
    p.add_argument("--base", choices=("real", "synth"), default="real")
    p.add_argument("--routers", type=int, default=1, help="routers 1..N")
    p.add_argument("--first", type=int, default=1, help="first router number")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--out", required=True, help="output file (.jsonl or .jsonl.gz)")
    p.add_argument("--workdir", help="cache the base model here")
    args = p.parse_args()
    if args.base == "real" and not FULL_TABLE.exists():
        print(f"data absent: {FULL_TABLE}", file=sys.stderr)
        return 2
    t0 = time.process_time()
    if args.workdir:
        model = cached_model(args.base, Path(args.workdir))
    else:
        model = real_model() if args.base == "real" else synth_model()
    opener = gzip.open if args.out.endswith(".gz") else open
    with opener(args.out, "wb") as f:
        for k in range(args.first, args.first + args.routers):
            lines, s = router_lines(model, k, args.seed)
            f.write(b"\n".join(lines) + b"\n")
            print(
                f"router {k} ({neighbor(k)}): {s.prefixes} prefixes, {s.diverted / s.prefixes:.1%} "
                f"through another path, {s.attribute_sets} attribute sets, {s.updates} UPDATEs",
                file=sys.stderr,
            )
    print(f"{time.process_time() - t0:.1f} CPU-s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
