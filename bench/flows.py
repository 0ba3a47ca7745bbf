"""Synthetic flow addresses over the real table, identical in every process of a run.

* ``zipf``: realistic traffic. Prefixes of the table (all but the default
  route) are ranked in a random order; a flow's prefix is drawn with
  P(rank k) ~ 1/k^s (s = 1.1), and its address uniformly inside that prefix.
  src and dst are drawn independently.
* ``uniform``: addresses uniformly random over the whole IPv4 space (the
  worst case: no repetition, many addresses only the default route covers).

Everything is seeded, so the in-process baselines and the gRPC clients resolve
the very same addresses. Addresses go on the wire as 16 bytes (IPv4 as
::ffff:a.b.c.d), the FlowColumns layout.
"""

from __future__ import annotations

import re
from functools import cache

import numpy as np

from bench.common import FULL_TABLE, read_lines

ZIPF_S = 1.1
_NLRI = re.compile(rb'"nlri":"(\d+)\.(\d+)\.(\d+)\.(\d+)/(\d+)"')
KINDS = ("zipf", "uniform")


@cache
def table_prefixes() -> tuple[np.ndarray, np.ndarray]:
    """(network, length) of every distinct IPv4 prefix of the full table, but /0."""
    found = {m for line in read_lines(FULL_TABLE) for m in _NLRI.findall(line)}
    rows = np.array(sorted({tuple(int(x) for x in m) for m in found}), dtype=np.uint64)
    nets = (rows[:, 0] << np.uint64(24)) | (rows[:, 1] << np.uint64(16))
    nets |= (rows[:, 2] << np.uint64(8)) | rows[:, 3]
    lens = rows[:, 4]
    keep = lens > 0
    return nets[keep], lens[keep]


class ZipfSampler:
    """Prefixes ranked in a random (seeded) order; rank k drawn with P ~ 1/k^s."""

    def __init__(self, rng: np.random.Generator, s: float = ZIPF_S) -> None:
        self.nets, self.lens = table_prefixes()
        self.ranks = rng.permutation(len(self.nets))  # rank k -> prefix ranks[k]
        weights = 1.0 / np.arange(1, len(self.nets) + 1, dtype=np.float64) ** s
        self.cdf = np.cumsum(weights)
        self.cdf /= self.cdf[-1]

    def __call__(self, rng: np.random.Generator, n: int) -> np.ndarray:
        k = np.minimum(np.searchsorted(self.cdf, rng.random(n)), len(self.nets) - 1)
        pick = self.ranks[k]
        span = np.uint64(1) << (np.uint64(32) - self.lens[pick])
        offset = (rng.random(n) * span.astype(np.float64)).astype(np.uint64)
        offset = np.minimum(offset, span - np.uint64(1))
        return (self.nets[pick] + offset).astype(np.uint32)


def uniform_addresses(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 1 << 32, size=n, dtype=np.uint64).astype(np.uint32)


def mapped16(addrs: np.ndarray) -> bytes:
    """IPv4 addresses -> n x 16 bytes, ::ffff:a.b.c.d."""
    out = np.zeros((len(addrs), 16), dtype=np.uint8)
    out[:, 10:12] = 0xFF
    out[:, 12:] = addrs.astype(">u4").view(np.uint8).reshape(-1, 4)
    return out.tobytes()


def batches(kind: str, count: int, size: int, seed: int = 7) -> list[tuple[bytes, bytes]]:
    """``count`` batches of ``size`` flows: (src 16-byte column, dst 16-byte column)."""
    rng = np.random.default_rng(seed)
    draw = ZipfSampler(rng) if kind == "zipf" else uniform_addresses
    out = []
    for _ in range(count):
        out.append((mapped16(draw(rng, size)), mapped16(draw(rng, size))))
    return out


# Answer shapes a load can ask for (FlowBatch options):
ANSWERS = {
    "columns": {},  # one repeated field per column, routes once per batch (v1's first shape)
    "packed": {"packed_records": True},  # packed records, routes once per batch
    "stream": {"packed_records": True, "stream_routes": True},  # routes once per stream
    "omit": {"packed_records": True, "omit_routes": True},  # AS numbers, no routes
}


def batch_requests(
    kind: str,
    count: int,
    size: int,
    exporter: str | list[str],
    seed: int = 7,
    answer: str = "columns",
) -> list[bytes]:
    """Serialized FlowBatch messages (columns), built once, sent many times.

    ``exporter``: one, or several the flows are spread over round-robin.
    ``answer``: one of ANSWERS, the FlowBatch options that shape the answer.
    """
    from attribution.v1 import attribution_pb2 as pb

    exporters = [exporter] if isinstance(exporter, str) else list(exporter)
    index = (np.arange(size) % len(exporters)).tolist()
    out = []
    for i, (src, dst) in enumerate(batches(kind, count, size, seed)):
        msg = pb.FlowBatch(
            batch_id=i,
            columns=pb.FlowColumns(exporters=exporters, exporter=index, src_addr=src, dst_addr=dst),
        )
        for option, value in ANSWERS[answer].items():
            setattr(msg, option, value)
        out.append(msg.SerializeToString())
    return out
