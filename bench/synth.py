"""A synthetic, today-sized full table as ExaBGP 5 JSON lines.

The real table in ../shared/data is from 2015 (578k IPv4 prefixes); today's
global table is about 1.04 M IPv4 + 0.23 M IPv6 prefixes. This generator
follows the published shape (../shared/data/README.md):

* prefix lengths: IPv4 as measured in the real table (/24 54%, /22 11%,
  /23 9.4%, /21 6.8%, /20 6.4%, /19 4.4%, /16 2.3%, /18 2.2%, ...); IPv6 /48
  44%, /32 26%, /40 4.4%, /44 4.1%, the rest spread over /28-/64;
* prefixes per origin AS: log-normal with median 2 and mean ~10;
* unique AS paths: ~0.15 per prefix (an origin has one path, sometimes more);
* AS path length: mean ~4 (1 + Poisson(3)), occasional prepending;
* attributes derived from the path (communities, MED, next hop per neighbor
  AS), so distinct attribute sets ~ distinct paths, as in a real table;
* UPDATEs group the prefixes of one path (at most ``MAX_PER_UPDATE``),
  which gives ~6 prefixes per UPDATE like real tables; lines are shuffled.

Deterministic for a seed. ``python -m bench.synth --out FILE.jsonl.gz``
writes it (with its statistics on stderr); ``generate()`` returns the lines.
"""

from __future__ import annotations

import argparse
import gzip
import socket
import sys
from collections import Counter
from dataclasses import dataclass

import numpy as np
import orjson

V4_COUNT = 1_040_000
V6_COUNT = 230_000
PEER = "127.0.0.200"
MAX_PER_UPDATE = 100

# Share (%) of each length, IPv4 as measured in the 2015 table, IPv6 per the
# README's figures with the remaining 21.5% spread over the common lengths.
V4_LENGTHS = {
    8: 0.005, 9: 0.005, 10: 0.01, 11: 0.02, 12: 0.05, 13: 0.09, 14: 0.18, 15: 0.31,
    16: 2.26, 17: 1.29, 18: 2.18, 19: 4.44, 20: 6.43, 21: 6.83, 22: 10.98, 23: 9.40,
    24: 54.0, 25: 0.12, 26: 0.06, 27: 0.07, 28: 0.08, 29: 0.27, 30: 0.29, 32: 0.63,
}  # fmt: skip
V6_LENGTHS = {
    48: 44.0, 32: 26.0, 40: 4.4, 44: 4.1, 29: 4.0, 36: 3.0, 46: 2.0, 47: 1.5, 33: 1.5,
    34: 1.5, 35: 1.0, 30: 0.7, 31: 0.3, 38: 1.0, 42: 1.0, 45: 1.0, 56: 1.5, 64: 0.5,
    28: 0.5, 39: 0.5,
}  # fmt: skip


@dataclass(slots=True)
class Stats:
    v4: int
    v6: int
    updates: int
    unique_paths: int
    origins: int
    mean_path_len: float
    median_prefixes_per_origin: float
    mean_prefixes_per_origin: float

    def describe(self) -> str:
        n = self.v4 + self.v6
        return (
            f"{self.v4} IPv4 + {self.v6} IPv6 prefixes in {self.updates} UPDATEs "
            f"({n / self.updates:.1f}/UPDATE), {self.unique_paths} unique paths "
            f"({self.unique_paths / n:.3f}/prefix), {self.origins} origin ASes "
            f"(prefixes per origin: median {self.median_prefixes_per_origin:.0f}, "
            f"mean {self.mean_prefixes_per_origin:.1f}), mean path length "
            f"{self.mean_path_len:.2f}"
        )


def _lengths(rng: np.random.Generator, shares: dict[int, float], n: int) -> np.ndarray:
    keys = np.array(list(shares), dtype=np.int64)
    p = np.array(list(shares.values()), dtype=np.float64)
    return rng.choice(keys, size=n, p=p / p.sum())


def _unique_networks(
    rng: np.random.Generator, shares: dict[int, float], n: int, bits: int, low: int, high: int
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` distinct (network, length) pairs; networks are ``bits``-bit integers."""
    nets = np.empty(0, dtype=np.uint64)
    lens = np.empty(0, dtype=np.uint64)
    one = np.uint64(1)
    while len(nets) < n:
        want = int((n - len(nets)) * 1.1) + 1000
        length = _lengths(rng, shares, want).astype(np.uint64)
        raw = rng.integers(low, high, size=want, dtype=np.uint64)
        nets = np.concatenate([nets, raw & ~((one << (np.uint64(bits) - length)) - one)])
        lens = np.concatenate([lens, length])
        keep_nets, keep_lens = [], []
        for length_value in np.unique(lens):
            same = np.unique(nets[lens == length_value])
            keep_nets.append(same)
            keep_lens.append(np.full(len(same), length_value, dtype=np.uint64))
        nets, lens = np.concatenate(keep_nets), np.concatenate(keep_lens)
    order = rng.permutation(len(nets))[:n]
    return nets[order], lens[order].astype(np.int64)


def _v4_text(nets: np.ndarray, lens: np.ndarray) -> list[str]:
    ntop = socket.inet_ntop
    af = socket.AF_INET
    packed = nets.astype(">u4").tobytes()
    return [f"{ntop(af, packed[4 * i : 4 * i + 4])}/{n}" for i, n in enumerate(lens.tolist())]


def _v6_text(nets: np.ndarray, lens: np.ndarray) -> list[str]:
    """IPv6 networks are generated as their upper 64 bits (every length is <= 64)."""
    ntop = socket.inet_ntop
    af = socket.AF_INET6
    upper = nets.astype(">u8").tobytes()
    zero = bytes(8)
    return [f"{ntop(af, upper[8 * i : 8 * i + 8] + zero)}/{n}" for i, n in enumerate(lens.tolist())]


def _path(rng: np.random.Generator, origin: int, neighbors: np.ndarray, transit: np.ndarray):
    length = 1 + min(int(rng.poisson(3.0)), 11)
    if length == 1:
        return [origin]
    path = [int(neighbors[int(rng.zipf(1.6)) % len(neighbors)])]
    for _ in range(length - 2):
        path.append(int(transit[int(rng.zipf(1.3)) % len(transit)]))
    path.append(origin)
    if rng.random() < 0.05:  # prepending: the origin repeats itself
        path.extend([origin] * int(rng.integers(1, 4)))
    return path


def _attributes(path: list[int]) -> bytes:
    """The JSON attribute object of a path, derived from it (stable per path)."""
    first, last = path[0], path[-1]
    attrs = {
        "origin": "igp" if last % 10 else "incomplete",
        "as-path": {"0": {"element": "as-sequence", "value": path}},
        "med": 0,
        "local-preference": 100,
        "community": [[first & 0xFFFF, 100 + (last % 5)], [64500, first & 0xFFFF]],
    }
    return orjson.dumps(attrs)


def _next_hop(first_as: int, v6: bool) -> str:
    if v6:
        return f"2001:db8:{first_as & 0xFFFF:x}::1"
    return f"10.{(first_as >> 8) & 0xFF}.{first_as & 0xFF}.1"


def _update_line(peer: str, attrs: bytes, family: str, next_hop: str, prefixes: list[str]) -> bytes:
    nlri = b",".join(b'{"nlri":"' + p.encode() + b'"}' for p in prefixes)
    return (
        b'{"exabgp":"5.0.0","time":1764000000.0,"host":"synth","pid":1,"ppid":1,"counter":1,'
        b'"type":"update","neighbor":{"address":{"local":"127.0.0.1","peer":"'
        + peer.encode()
        + b'"},"asn":{"local":64500,"peer":64500},"router-id":"'
        + peer.encode()
        + b'","direction":"receive","message":{"update":{"attribute":'
        + attrs
        + b',"announce":{"'
        + family.encode()
        + b'":{"'
        + next_hop.encode()
        + b'":['
        + nlri
        + b"]}}}}}}"
    )


def _eor_line(peer: str, afi: str) -> bytes:
    return (
        b'{"exabgp":"5.0.0","time":1764000000.0,"type":"update","neighbor":{"address":'
        b'{"local":"127.0.0.1","peer":"' + peer.encode() + b'"},"asn":{"local":64500,'
        b'"peer":64500},"direction":"receive","message":{"eor":{"afi":"'
        + afi.encode()
        + b'","safi":"unicast"}}}}'
    )


def generate(
    v4: int = V4_COUNT, v6: int = V6_COUNT, seed: int = 2025, peer: str = PEER
) -> tuple[list[bytes], Stats]:
    """The table's lines (UPDATEs shuffled, End-of-RIB for both families last)."""
    rng = np.random.default_rng(seed)
    v4_nets, v4_lens = _unique_networks(rng, V4_LENGTHS, v4, 32, 1 << 24, 224 << 24)
    # IPv6 in 2000::/3, as upper 64 bits (no generated length exceeds /64).
    v6_nets, v6_lens = _unique_networks(rng, V6_LENGTHS, v6, 64, 1 << 61, 1 << 62)
    prefixes = [(p, False) for p in _v4_text(v4_nets, v4_lens)]
    prefixes += [(p, True) for p in _v6_text(v6_nets, v6_lens)]
    # Origins announce one family each (their v4 and v6 paths would differ
    # in next hop anyway), so prefixes are dealt out family by family.
    order = np.concatenate([rng.permutation(v4), v4 + rng.permutation(v6)])

    # Origins with log-normal prefix counts (median 2, mean ~10).
    sigma = float(np.sqrt(2 * np.log(5.0)))
    counts: list[int] = []
    total = 0
    while total < len(prefixes):
        c = max(1, round(float(rng.lognormal(np.log(2.0), sigma))))
        c = min(c, len(prefixes) - total)
        counts.append(c)
        total += c
    origin_asns = rng.choice(np.arange(1, 400_000), size=len(counts), replace=False)
    neighbors = rng.choice(np.arange(1000, 70_000), size=40, replace=False)
    transit = rng.choice(np.arange(1, 70_000), size=3000, replace=False)
    # Extra paths per origin so that unique paths ~ 0.15 per prefix.
    n, n_origins = len(prefixes), len(counts)
    extra_p = max(0.0, (0.15 * n - n_origins) / max(1, n - n_origins))

    groups: dict[tuple[int, bool], list[str]] = {}
    paths: list[list[int]] = []
    pos = 0
    for c, origin in zip(counts, origin_asns.tolist(), strict=True):
        k = 1 + (int(rng.binomial(c - 1, extra_p)) if c > 1 else 0)
        base = len(paths)
        paths.extend(_path(rng, origin, neighbors, transit) for _ in range(k))
        which = rng.integers(0, k, size=c) if k > 1 else np.zeros(c, dtype=np.int64)
        for j, idx in zip(which.tolist(), order[pos : pos + c].tolist(), strict=True):
            text, is_v6 = prefixes[idx]
            groups.setdefault((base + j, is_v6), []).append(text)
        pos += c

    lines: list[bytes] = []
    for (pi, is_v6), members in groups.items():
        path = paths[pi]
        attrs = _attributes(path)
        family = "ipv6 unicast" if is_v6 else "ipv4 unicast"
        hop = _next_hop(path[0], is_v6)
        for i in range(0, len(members), MAX_PER_UPDATE):
            lines.append(_update_line(peer, attrs, family, hop, members[i : i + MAX_PER_UPDATE]))
    lines = [lines[i] for i in rng.permutation(len(lines))]
    lines += [_eor_line(peer, "ipv4"), _eor_line(peer, "ipv6")]

    per_origin = np.array(counts)
    used = {pi for pi, _ in groups}
    lens = Counter(len(paths[pi]) for pi in used)
    stats = Stats(
        v4=v4,
        v6=v6,
        updates=len(lines) - 2,
        unique_paths=len(used),
        origins=n_origins,
        mean_path_len=sum(k * v for k, v in lens.items()) / len(used),
        median_prefixes_per_origin=float(np.median(per_origin)),
        mean_prefixes_per_origin=float(per_origin.mean()),
    )
    return lines, stats


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.synth", description=__doc__)
    p.add_argument("--out", required=True, help="output file (.jsonl or .jsonl.gz)")
    p.add_argument("--v4", type=int, default=V4_COUNT)
    p.add_argument("--v6", type=int, default=V6_COUNT)
    p.add_argument("--seed", type=int, default=2025)
    p.add_argument("--peer", default=PEER, help="the neighbor address in every line")
    args = p.parse_args()
    lines, stats = generate(args.v4, args.v6, args.seed, args.peer)
    data = b"\n".join(lines) + b"\n"
    if args.out.endswith(".gz"):
        with gzip.open(args.out, "wb", compresslevel=5) as f:
            f.write(data)
    else:
        with open(args.out, "wb") as f:
            f.write(data)
    print(stats.describe(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
