"""Routers sharded over several ExaBGP processes ("workers"), each supervised.

Why: ExaBGP holds all its sessions in one Python thread and spends 4.5-7
CPU-seconds on one real full table in raw mode, 24-31 with its JSON API
(BENCHMARKS.md), so one process loads K tables in K times that whatever
the cores. ``[bgp] workers = N``
runs N ExaBGP processes, each holding its share of the routers with its own
rendered config, environment, work directory (``<work_dir>/worker-<n>``)
and relay; every relay feeds the one service socket, and names its worker
in its hello so the feed scopes that worker's eof, gaps and re-reads to its
routers (``ribd.feed_control``). A worker that dies is restarted on its own:
only its routers go stale and resync.

**Which router runs where** (``plan_workers``, pure, deterministic):

1. A passive router waits for its router on an address: its
   ``local_address``, else ``[bgp] listen_address``. Several processes
   cannot listen on one address and port, so passive routers waiting on the
   same address form one group, which one worker holds; a wildcard address
   (``0.0.0.0``, ``::``) joins every passive router of its family. A router
   with ``passive = false`` (ExaBGP connects out, from any process) is a
   group of its own.
2. Groups are taken in file order (of their first router), each given to
   the worker holding the fewest routers so far (the lowest number on a
   tie). Routers with addresses of their own thus go round robin in file
   order, and appending such a router to the file never moves another.
3. Only workers that get a group run (``min(workers, groups)``); when that
   is one, it is the single ExaBGP of ``workers = 1``, as before workers
   existed, except that it also listens on passive routers' own addresses
   (``_single_bind``: before, only on ``listen_address``, so a router
   waiting on its ``local_address`` was refused).

Each worker listens (``exabgp.tcp.bind``) on the addresses of its passive
routers only, so the operator gives routers that should load in parallel
addresses of their own on this host (one per worker suffices), or lets
ExaBGP connect out. ``plan_warnings`` says when addresses kept the workers
from being used.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ribd.exabgp import ExabgpSupervisor, SupervisorState
from ribd.exabgp_config import feed_socket_path
from ribd.rib import Rib
from ribd.settings import BgpSettings, NeighborSettings

log = logging.getLogger("ribd.exabgp")

MAX_WORKERS = 1024


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    """One ExaBGP process: its number (1..N; 0: the only one), its routers
    (in file order) and the addresses it listens on (None: listen_address)."""

    number: int
    neighbors: tuple[NeighborSettings, ...]
    bind: tuple[str, ...] | None


def waits_on(settings: BgpSettings, n: NeighborSettings) -> str:
    """The address a passive router connects to: its local_address, else ours."""
    return n.local_address or settings.listen_address


def _groups(settings: BgpSettings) -> list[list[int]]:
    """Indices of ``settings.neighbors`` that must share a worker, groups in
    file order of their first member (see the module's rule 1)."""
    neighbors = settings.neighbors
    parent = list(range(len(neighbors)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    passive = [i for i, n in enumerate(neighbors) if n.passive]
    addresses = {i: ipaddress.ip_address(waits_on(settings, neighbors[i])) for i in passive}
    wildcard = {ip.version for ip in addresses.values() if ip.is_unspecified}
    first_at: dict[object, int] = {}
    for i in passive:
        ip = addresses[i]
        # On a family with a wildcard listener, every address is that one.
        key: object = ip.version if ip.version in wildcard else ip
        if key in first_at:
            union(first_at[key], i)
        else:
            first_at[key] = i
    groups: dict[int, list[int]] = {}
    for i in range(len(neighbors)):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])


def _single_bind(settings: BgpSettings) -> tuple[str, ...] | None:
    """What the one ExaBGP listens on: ``listen_address`` and every passive
    router's own ``local_address`` (a router waits there, README). None, the
    listen address alone as before workers existed, when no router waits
    elsewhere or a wildcard is among them (it takes its family's addresses,
    and binding it beside one of them would fail)."""
    waits = dict.fromkeys(
        [settings.listen_address, *(waits_on(settings, n) for n in settings.neighbors if n.passive)]
    )
    if len(waits) == 1 or any(ipaddress.ip_address(a).is_unspecified for a in waits):
        return None
    return tuple(waits)


def plan_workers(settings: BgpSettings) -> tuple[WorkerPlan, ...]:
    """The workers to run and their routers (the module's rules)."""
    neighbors = settings.neighbors
    groups = _groups(settings)
    count = max(1, min(settings.workers, len(groups)))
    if count == 1:
        return (WorkerPlan(0, tuple(neighbors), _single_bind(settings)),)
    members: list[list[int]] = [[] for _ in range(count)]
    for group in groups:
        worker = min(range(count), key=lambda w: (len(members[w]), w))
        members[worker].extend(group)
    plans = []
    for w, indices in enumerate(members):
        chosen = [neighbors[i] for i in sorted(indices)]
        bind: list[str] = []
        for n in chosen:
            if n.passive and waits_on(settings, n) not in bind:
                bind.append(waits_on(settings, n))
        plans.append(WorkerPlan(w + 1, tuple(chosen), tuple(bind)))
    return tuple(plans)


def worker_of(settings: BgpSettings) -> dict[str, int]:
    """Neighbor address -> the number of the worker holding its session (0: the only one)."""
    return {n.address: p.number for p in plan_workers(settings) for n in p.neighbors}


def plan_warnings(settings: BgpSettings) -> list[str]:
    """What keeps configured workers idle, for the config's warnings."""
    if settings.workers <= 1 or settings.exabgp_mode != "supervised":
        return []
    groups = _groups(settings)
    running = max(1, min(settings.workers, len(groups)))
    crowded = [g for g in groups if len(g) > 1]
    if running >= settings.workers or not crowded:
        return []
    names = settings.neighbors
    shown = []
    for g in crowded[:3]:
        address = waits_on(settings, names[g[0]])
        routers = ", ".join(names[i].name for i in g[:5]) + (", ..." if len(g) > 5 else "")
        shown.append(f"{routers} wait on {address}")
    return [
        f"[bgp] workers = {settings.workers}, but only {running} ExaBGP worker(s) can run: "
        f"routers waiting for connections on one address share a worker (several processes "
        f"cannot listen on one address and port): {'; '.join(shown)}. Give routers their own "
        "local_address (addresses of this host, one per worker suffices) or passive = false "
        "to spread them"
    ]


# Lines a full table leaves in a relay's spool while the service takes it in:
# ~50 MB for the real 2015 table in raw mode (577 k prefixes, measured through
# bench.restart --refresh bgp), twice that today-sized or in JSON mode.
SPOOL_BYTES_PER_TABLE = 64 << 20


def spool_warnings(settings: BgpSettings) -> list[str]:
    """Workers whose routers, sending their whole tables at once (our restart,
    theirs), can overflow the relay's spool while the service catches up.

    The spool then drops lines and every table of the worker is re-read (in
    waves that fit the spool, ``reread_wave``): 16 real tables at once on one
    worker overflowed the default 256 MiB within a minute.
    """
    if settings.exabgp_mode != "supervised":
        return []
    wave: list[str] = []
    if settings.reread_wave * SPOOL_BYTES_PER_TABLE > settings.relay_spool_bytes:
        wave.append(
            f"[bgp] reread_wave = {settings.reread_wave}: that many full tables re-read at once "
            f"need about {settings.reread_wave * SPOOL_BYTES_PER_TABLE >> 20} MiB of relay "
            f"spool, relay_spool_bytes is {settings.relay_spool_bytes >> 20} MiB: a re-read "
            'after a feed gap can overflow it again (use "auto")'
        )
    crowded = [
        p
        for p in plan_workers(settings)
        if len(p.neighbors) * SPOOL_BYTES_PER_TABLE > (settings.relay_spool_bytes)
    ]
    if not crowded:
        return wave
    most = max(len(p.neighbors) for p in crowded)
    needed = most * SPOOL_BYTES_PER_TABLE
    return [
        f"[bgp] relay_spool_bytes = {settings.relay_spool_bytes >> 20} MiB holds the lines of "
        f"about {max(1, settings.relay_spool_bytes // SPOOL_BYTES_PER_TABLE)} full table(s) "
        f"the service has not taken in yet, but {most} routers share one ExaBGP worker: when "
        "they all send their tables at once (a restart), lines beyond it are dropped and "
        "every table is read again ([bgp] reread_wave at a time). Set relay_spool_bytes "
        "to at least "
        f"{needed >> 20} MiB (memory used only while the service is behind), or spread the "
        "routers over more workers",
        *wave,
    ]


def reread_wave(settings: BgpSettings) -> int:
    """Routers of one worker whose tables are re-read at once after a feed gap
    (``ribd.reread_waves``): ``[bgp] reread_wave``, or (0, "auto") as many full
    tables as the relay's spool holds, at least one."""
    if settings.reread_wave:
        return settings.reread_wave
    return max(1, settings.relay_spool_bytes // SPOOL_BYTES_PER_TABLE)


def worker_settings(settings: BgpSettings, plan: WorkerPlan) -> BgpSettings:
    """The settings one worker's ExaBGP is rendered from: its routers, its
    listen addresses, its own work directory, the shared feed socket."""
    if plan.number == 0:
        return dataclasses.replace(settings, neighbors=plan.neighbors, bind_addresses=plan.bind)
    return dataclasses.replace(
        settings,
        neighbors=plan.neighbors,
        worker=plan.number,
        bind_addresses=plan.bind,
        feed_socket=feed_socket_path(settings),
        work_dir=os.path.join(settings.work_dir, f"worker-{plan.number}"),
    )


class ExabgpWorkers:
    """Every ExaBGP worker, each run by its own ``ExabgpSupervisor``.

    With one worker this is that supervisor (same config path, log, state);
    ``state()`` sums up all of them for health and metrics, ``states()``
    gives each worker's.
    """

    def __init__(
        self,
        settings: BgpSettings,
        rib: Rib,
        *,
        on_event: Callable[[str, dict], None] | None = None,
        command: Sequence[str] | None = None,
    ) -> None:
        if not settings.work_dir:
            settings = dataclasses.replace(
                settings, work_dir=tempfile.mkdtemp(prefix="ribd-exabgp-")
            )
        self.settings = settings
        self.work_dir = settings.work_dir
        self.plans = plan_workers(settings)
        self.supervisors = [
            ExabgpSupervisor(
                worker_settings(settings, p),
                rib,
                on_event=on_event,
                command=command,
                neighbors=frozenset(n.address for n in p.neighbors) if p.number else None,
            )
            for p in self.plans
        ]

    # -- what runs where --

    def scopes(self) -> dict[int, frozenset[str]]:
        """Worker number -> its routers' neighbor addresses (for FeedServer.worker_scopes)."""
        return {p.number: frozenset(n.address for n in p.neighbors) for p in self.plans if p.number}

    def worker_of(self) -> dict[str, int]:
        return {n.address: p.number for p in self.plans for n in p.neighbors}

    @property
    def numbers(self) -> list[int]:
        return [p.number for p in self.plans]

    # -- control --

    def start(self) -> None:
        if self.plans[0].number:
            log.info(
                "%d ExaBGP workers: %s",
                len(self.plans),
                "; ".join(
                    f"worker {p.number}: {', '.join(n.name for n in p.neighbors)}"
                    + (f" (listening on {', '.join(p.bind)})" if p.bind else "")
                    for p in self.plans
                ),
            )
        for s in self.supervisors:
            s.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every worker at once (none is restarted meanwhile)."""
        for s in self.supervisors:
            s.request_stop()
        threads = [
            threading.Thread(target=s.stop, args=(timeout,), name=f"stop-exabgp-{s.worker}")
            for s in self.supervisors
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout + 10.0)

    # -- state --

    def states(self) -> list[tuple[int, SupervisorState]]:
        return [(s.worker, s.state()) for s in self.supervisors]

    def worker_rows(self) -> list[tuple[int, SupervisorState, int]]:
        """(worker, its state, its routers) for metrics."""
        return [
            (s.worker, s.state(), len(p.neighbors))
            for s, p in zip(self.supervisors, self.plans, strict=True)
        ]

    def state(self) -> SupervisorState:
        """All workers as one: running while every one runs; restarts summed;
        the exit code and error of the worker that exited last."""
        states = [s.state() for s in self.supervisors]
        if len(states) == 1:
            return states[0]
        last = max(states, key=lambda st: st.last_exit)
        errors = [
            st.last_error for st in states if st.last_error
        ]  # (each already names its worker)
        pending = [st.next_start for st in states if st.next_start]
        return SupervisorState(
            running=all(st.running for st in states),
            pid=states[0].pid,
            restarts=sum(st.restarts for st in states),
            last_exit_code=last.last_exit_code,
            last_start=max(st.last_start for st in states),
            last_exit=last.last_exit,
            next_start=min(pending) if pending else 0.0,
            config_path=states[0].config_path,
            last_error="; ".join(errors),
            restarting=any(st.restarting for st in states),
            stopped=all(st.stopped for st in states),
        )

    @property
    def pid(self) -> int | None:
        return self.supervisors[0].pid

    @property
    def config_path(self) -> str:
        return self.supervisors[0].config_path

    def not_running(self) -> str:
        """Why some worker is not running, for health ("" when all run)."""
        for s in self.supervisors:
            st = s.state()
            if not st.running:
                last = f" (last run: {st.last_error[:300]})" if st.last_error else ""
                return f"{s.label} is not running{last}"
        return ""


def resolve_workers(value: object, exabgp_mode: str = "supervised") -> int:
    """``[bgp] workers`` as a number: an integer 1..MAX_WORKERS, or "auto"
    (the CPUs this process may run on). ValueError says what is wrong."""
    if value == "auto":
        count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
        value = max(1, min(count or os.cpu_count() or 1, MAX_WORKERS))
    elif type(value) is not int:
        raise ValueError(f'must be an integer or "auto", not {_shown(value)}')
    elif not 1 <= value <= MAX_WORKERS:
        raise ValueError(f'{value}: must be between 1 and {MAX_WORKERS}, or "auto"')
    if value > 1 and exabgp_mode != "supervised":
        raise ValueError(
            f'{value} workers need a supervised ExaBGP ([bgp] exabgp = "supervised"); with '
            'exabgp = "external" you run ExaBGP yourself (one ribd-feed per process)'
        )
    return value


def _shown(value: object) -> str:
    return repr(value) if isinstance(value, str) else type(value).__name__
