"""Whose table to re-read next after feed gaps: a few routers at a time. No I/O.

Why waves: lines lost in a gap (the relay's spool overflowed, ``ribd.relay``)
may belong to any router of that ExaBGP worker, so each of them must send its
whole table again. Asked all at once (``resync *``), they do so at the same
moment: a burst as big as the one that overflowed the spool, which overflows
it again (16 real tables on one worker did, 65 s in), and every table is read
again, and again. So re-reads are asked per router, at most ``wave`` routers
of one worker at a time (sized so that their tables fit the spool,
``ribd.workers.reread_wave``); the next router's turn comes when one of them
is done (EoRR, or End-of-RIB after a session reset) or has made no progress
for ``stall_timeout`` seconds. Routers waiting for their turn keep their
routes, stale-flagged, as after any gap.

A router whose re-read is cut by a new gap goes to the back of the queue:
the routers that have not had their turn yet go first, so one router whose
table keeps overflowing the spool is not re-read in a tight loop (the feed
also spaces the first wave after each gap out, doubling while gaps keep
coming: ``ribd.feed_control``).

``RereadWaves`` is the bookkeeping only; ``ribd.feed_control`` asks the
relays and reads the routers' state from the RIB (``Rib.reread_status``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

# What the RIB says of a router (Rib.reread_status): needs a re-read, settled
# (nothing more to re-send), session up, progress marker. None: unknown router.
Status = tuple[bool, bool, bool, tuple] | None


@dataclass(slots=True)
class Running:
    """A router whose re-read was asked and is not done yet."""

    worker: int
    asked: float
    marker: tuple  # the router's progress marker when last seen to change
    moved: float  # when it last changed


class RereadWaves:
    """The queue of routers whose tables await a re-read, and those running."""

    def __init__(self, wave: int = 4, stall_timeout: float = 120.0) -> None:
        self.wave = max(1, wave)
        self.stall_timeout = stall_timeout
        self.waiting: dict[str, int] = {}  # neighbor -> its worker, in turn order
        self.running: dict[str, Running] = {}
        self.peak = 0  # the most re-reads of one worker ever running at once
        self.stalled = 0  # re-reads given up on for want of progress

    def gap(self, neighbors: Iterable[str], worker: int) -> None:
        """``neighbors`` (of ``worker``) lost lines: each needs a re-read.

        Waiting routers keep their place; a running one's re-read is cut
        short (its lines may be among those lost): it goes to the back.
        """
        for n in neighbors:
            if n in self.running:
                del self.running[n]
                self.waiting[n] = worker
            elif n not in self.waiting:
                self.waiting[n] = worker

    def retire(self, now: float, status: Callable[[str], Status]) -> list[str]:
        """Free the slots of running routers that are done or made no progress
        for ``stall_timeout``; returns the latter (their routes stay stale)."""
        stalled = []
        for n, run in list(self.running.items()):
            st = status(n)
            if st is None or st[1]:
                del self.running[n]  # gone, or its table re-read
            elif st[3] != run.marker:
                run.marker, run.moved = st[3], now
            elif now - run.moved >= self.stall_timeout:
                del self.running[n]
                stalled.append(n)
        self.stalled += len(stalled)
        return stalled

    def turns(self, status: Callable[[str], Status]) -> tuple[list[tuple[str, int]], list[str]]:
        """Waiting routers to ask now, in turn order, and those to drop.

        Up to ``wave`` running per worker. A router with nothing left to
        re-read (its session restarted since: its End-of-RIB is exact), or
        unknown, is dropped. One whose session we think down is asked without
        taking a slot: its next session re-sends its table anyway, but its
        "up" line may have been the lost one.
        """
        busy: dict[int, int] = {}
        for run in self.running.values():
            busy[run.worker] = busy.get(run.worker, 0) + 1
        ask: list[tuple[str, int]] = []
        drop: list[str] = []
        for n, worker in self.waiting.items():
            st = status(n)
            if st is None or not st[0]:
                drop.append(n)
            elif not st[2]:
                ask.append((n, worker))
            elif busy.get(worker, 0) < self.wave:
                busy[worker] = busy.get(worker, 0) + 1
                ask.append((n, worker))
        return ask, drop

    def started(self, neighbor: str, now: float, status: Status) -> None:
        """``neighbor``'s re-read was asked; it runs if its session is up."""
        worker = self.waiting.pop(neighbor, 0)
        if status is None or not status[2]:
            return
        self.running[neighbor] = Running(worker, now, status[3], now)
        per_worker = sum(1 for r in self.running.values() if r.worker == worker)
        self.peak = max(self.peak, per_worker)

    def drop(self, neighbors: Iterable[str]) -> None:
        for n in neighbors:
            self.waiting.pop(n, None)
