"""The last N flows the service answered, as keys only: the default sample of
``overrides diff`` (attribution.dryrun). No I/O.

Only what an answer depends on is kept (exporter, addresses, in_if, src MAC)
plus bytes and packets when the request carried them (rows; columns carry
none, and their flows count 0 bytes). The ring is filled from the bulk path
with whole-batch numpy copies, never per-flow Python work; a batch larger
than the ring keeps its last N flows. N is ``[service] recent_flows``
(0 turns the ring off). Keys are addresses of real traffic: the ring is
never written to disk and only the read-token ``DiffOverrides`` RPC uses it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

KEY_DTYPE = np.dtype(
    [
        ("exporter", "V16"),  # packed like src (IPv4 as ::ffff:a.b.c.d)
        ("src", "V16"),
        ("dst", "V16"),
        ("in_if", "<u4"),
        ("src_mac", "V6"),  # all zero: none
        ("bytes", "<u8"),
        ("packets", "<u8"),
    ]
)


@dataclass(slots=True)
class BatchKeys:
    """One batch's flows as the resolver sees them (columns)."""

    exporters: np.ndarray  # V16 per exporter of the batch's dictionary
    exporter: np.ndarray  # per flow: index into exporters
    src: bytes
    dst: bytes
    in_if: np.ndarray | None
    src_mac: bytes | None
    keep: np.ndarray  # per flow: bool, False for flows that could not be read
    bytes_: np.ndarray | None = None
    packets: np.ndarray | None = None


class FlowRing:
    """A fixed-size ring of flow keys; thread-safe, oldest overwritten first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(0, int(capacity))
        self._buf = np.zeros(self.capacity, dtype=KEY_DTYPE)
        self._next = 0  # where the next flow goes
        self._size = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._size

    def add(self, b: BatchKeys) -> None:
        """Append a batch's readable flows (the last ``capacity`` of them)."""
        if not self.capacity:
            return
        sel = np.nonzero(b.keep)[0][-self.capacity :]
        k = len(sel)
        if not k:
            return
        rec = np.zeros(k, dtype=KEY_DTYPE)
        rec["exporter"] = b.exporters[b.exporter[sel]]
        rec["src"] = np.frombuffer(b.src, dtype="V16")[sel]
        rec["dst"] = np.frombuffer(b.dst, dtype="V16")[sel]
        if b.in_if is not None and len(b.in_if):
            rec["in_if"] = b.in_if[sel]
        if b.src_mac:
            rec["src_mac"] = np.frombuffer(b.src_mac, dtype="V6")[sel]
        if b.bytes_ is not None:
            rec["bytes"] = b.bytes_[sel]
        if b.packets is not None:
            rec["packets"] = b.packets[sel]
        with self._lock:
            start = self._next
            first = min(k, self.capacity - start)
            self._buf[start : start + first] = rec[:first]
            if first < k:
                self._buf[: k - first] = rec[first:]
            self._next = (start + k) % self.capacity
            self._size = min(self.capacity, self._size + k)

    def snapshot(self) -> np.ndarray:
        """A copy of the kept flows, oldest first."""
        with self._lock:
            if self._size < self.capacity:
                return self._buf[: self._size].copy()
            return np.concatenate((self._buf[self._next :], self._buf[: self._next]))
