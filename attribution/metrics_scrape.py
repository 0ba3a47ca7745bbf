"""Prometheus figures read when scraped: the RIB, the feed, ExaBGP, views, IX learners.

These already exist as plain counters and fields (``FeedServer.stats``,
``Rib.routers``, ``ExabgpSupervisor.state``, the IX learners' states), so
ingest pays nothing for being measured: a ``Collector`` reads them at scrape
time. Split out of ``attribution.metrics`` (which re-exports these names and
keeps the figures counted as they happen: RPCs, sessions).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from attribution.config import Config
from attribution.router_status import capture
from attribution.snapshots import LOAD_OUTCOMES, SnapshotStats
from ribd import gcpolicy, heap

BAD_LINE_CATEGORIES = (
    "json",
    "unknown_type",
    "prefix",
    "too_long",
    "malformed",
    "unknown_neighbor",
    "too_deep",
    "value",
    "internal",
    "other",
)
SESSION_STATES = ("idle", "connected", "up", "down")


@dataclass
class Sources:
    """Where ServiceCollector reads; every callable is called at scrape time."""

    rib: Any  # ribd.rib.Rib
    config: Callable[[], Config]
    feed_stats: Callable[[], dict]
    supervisor_state: Callable[[], Any] | None  # ExabgpSupervisor.state; None: external
    views: Any  # attribution.fastpath.CompiledViews
    view_build_seconds: Callable[[], float]
    serving: Callable[[], bool]
    # ExabgpWorkers.worker_rows: (worker, state, routers) per worker; None: external
    worker_states: Callable[[], list[tuple[int, Any, int]]] | None = None
    snapshots: SnapshotStats | None = None  # attribution.snapshots
    # server ("grpc", "metrics") -> its attribution.tls_files.FollowedCertificates (TLS only)
    certificates: Callable[[], dict[str, Any]] | None = None


class ServiceCollector(Collector):
    """RIB, feed, ExaBGP, view and health figures, read when scraped."""

    def __init__(self, sources: Sources) -> None:
        self.s = sources

    def collect(self) -> Iterator[Metric]:
        yield from self._rib()
        yield from self._feed()
        yield from self._exabgp()
        s = self.s
        yield CounterMetricFamily(
            "attribution_view_builds",
            "Compiled lookup views built (one per router and family per build).",
            value=s.views.builds,
        )
        yield CounterMetricFamily(
            "attribution_view_patches",
            "Of the view builds, those that patched a view's changes instead of building "
            "it whole; builds minus patches are full builds (1-2 CPU-s a full table).",
            value=s.views.patches,
        )
        yield CounterMetricFamily(
            "attribution_view_advances",
            "Views made current with no work: their router changed nothing since.",
            value=s.views.advanced,
        )
        yield CounterMetricFamily(
            "attribution_view_build_seconds",
            "Time spent building compiled lookup views.",
            value=s.view_build_seconds(),
        )
        yield GaugeMetricFamily(
            "attribution_views", "Compiled lookup views in use.", value=len(s.views.current())
        )
        yield from _route_caches()
        yield _refused_calls()
        yield CounterMetricFamily(
            "attribution_gc_freezes",
            "Settled loads frozen out of the cyclic collector (ribd.gcpolicy): a cycle "
            "frozen while alive is never collected, so watch the RSS beside it.",
            value=gcpolicy.freezes(),
        )
        yield CounterMetricFamily(
            "attribution_heap_releases",
            "Times the C heap's free pages were given back to the OS (ribd.heap: after "
            "merges, collections, view builds and snapshot writes that left much of it free).",
            value=heap.releases(),
        )
        yield CounterMetricFamily(
            "attribution_heap_released_bytes",
            "Bytes the resident memory fell by across those releases.",
            value=heap.released_bytes(),
        )
        if s.snapshots is not None:
            yield from _snapshots(s.snapshots, s.config())
        certificates = s.certificates() if s.certificates is not None else {}
        if certificates:
            yield from _tls(certificates)
        yield GaugeMetricFamily(
            "attribution_health_serving",
            "1 while gRPC health says SERVING (see README: Metrics and logs).",
            value=1 if s.serving() else 0,
        )

    def _rib(self) -> Iterator[Metric]:
        rib = self.s.rib
        configured = {r.neighbor: r.name for r in self.s.config().routers}
        state = GaugeMetricFamily(
            "attribution_bgp_session_state",
            "1 for the session state each router is in (idle, connected, up, down).",
            labels=["router", "neighbor", "state"],
        )
        up = GaugeMetricFamily(
            "attribution_bgp_session_up",
            "1 while the router's BGP session is up.",
            labels=["router", "neighbor"],
        )
        since = GaugeMetricFamily(
            "attribution_bgp_session_since_timestamp_seconds",
            "When the session last changed state (Unix time).",
            labels=["router", "neighbor"],
        )
        last_update = GaugeMetricFamily(
            "attribution_bgp_last_update_timestamp_seconds",
            "When the router last sent an UPDATE (Unix time; 0: never).",
            labels=["router", "neighbor"],
        )
        fam = ["router", "neighbor", "family"]
        prefixes = GaugeMetricFamily(
            "attribution_rib_prefixes", "Prefixes in the router's current RIB.", labels=fam
        )
        paths = GaugeMetricFamily(
            "attribution_rib_paths",
            "Paths in the router's current RIB (ADD-PATH: > prefixes).",
            labels=fam,
        )
        stale = GaugeMetricFamily(
            "attribution_rib_stale_prefixes",
            "Prefixes served stale (kept from a session that is gone or not yet refreshed).",
            labels=fam,
        )
        converged = GaugeMetricFamily(
            "attribution_rib_converged",
            "1 once the router's table of the family is complete (End-of-RIB or inferred).",
            labels=fam,
        )
        inferred = GaugeMetricFamily(
            "attribution_rib_converged_inferred",
            "1 when convergence was inferred from a quiet peer (no End-of-RIB).",
            labels=fam,
        )
        over_limit = CounterMetricFamily(
            "attribution_rib_paths_over_limit",
            "ADD-PATH paths not kept: the router's prefix already held "
            "[bgp] max_paths_per_prefix better ones.",
            labels=fam,
        )
        max_prefixes = GaugeMetricFamily(
            "attribution_rib_max_prefixes",
            "The most prefixes the router's family may hold ([bgp] / [[routers]] "
            "max_prefixes_ipv4 and _ipv6; 0: no limit). Alert on prefixes / this.",
            labels=fam,
        )
        refused = CounterMetricFamily(
            "attribution_rib_prefixes_refused",
            "New prefixes not installed: the router's family was at its max_prefixes limit.",
            labels=fam,
        )
        status = capture(rib, configured)  # one short hold of rib.lock; samples built after
        for r in status.routers:
            name = configured.get(r.neighbor) or r.rib_name or r.neighbor
            for s in SESSION_STATES:
                state.add_metric([name, r.neighbor, s], 1 if r.session == s else 0)
            up.add_metric([name, r.neighbor], 1 if r.session == "up" else 0)
            since.add_metric([name, r.neighbor], r.session_since)
            last_update.add_metric([name, r.neighbor], r.last_update)
            for f in r.families:
                labels = [name, r.neighbor, f.family]
                prefixes.add_metric(labels, f.prefixes)
                paths.add_metric(labels, f.paths)
                stale.add_metric(labels, f.stale_prefixes)
                converged.add_metric(labels, 1 if f.converged else 0)
                inferred.add_metric(labels, 1 if f.inferred else 0)
                over_limit.add_metric(labels, f.paths_over_limit)
                max_prefixes.add_metric(labels, f.max_prefixes)
                refused.add_metric(labels, f.prefixes_refused)
        yield from (state, up, since, last_update, prefixes, paths, stale, converged, inferred)
        yield from (over_limit, max_prefixes, refused)
        yield GaugeMetricFamily(
            "attribution_rib_attribute_sets",
            "Distinct (interned) path attribute sets held by the RIB.",
            value=status.attribute_sets,
        )
        e = GaugeMetricFamily(
            "attribution_rib_entries",
            "Distinct per-prefix entries (router slot tuples) in the shared store.",
            labels=["family"],
        )
        p = GaugeMetricFamily(
            "attribution_rib_stored_prefixes",
            "Prefixes in the shared store of the family (any router).",
            labels=["family"],
        )
        for f in status.entries:
            e.add_metric([f], status.entries[f])
            p.add_metric([f], status.stored[f])
        yield e
        yield p

    def _feed(self) -> Iterator[Metric]:
        st = self.s.feed_stats()

        def counter(name: str, doc: str, key: str) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, value=st.get(key, 0))

        yield counter("attribution_feed_lines", "ExaBGP lines read from relays.", "lines")
        yield counter(
            "attribution_feed_updates", "UPDATE messages applied (End-of-RIB included).", "updates"
        )
        yield counter(
            "attribution_feed_prefixes_announced", "Prefixes announced.", "prefixes_announced"
        )
        yield counter(
            "attribution_feed_prefixes_withdrawn", "Prefixes withdrawn.", "prefixes_withdrawn"
        )
        yield counter(
            "attribution_feed_treat_as_withdraw",
            "Prefixes withdrawn because their UPDATE had broken attributes (RFC 7606).",
            "treated_as_withdraw",
        )
        yield counter("attribution_feed_end_of_rib", "End-of-RIB markers received.", "end_of_rib")
        bad = CounterMetricFamily(
            "attribution_feed_bad_lines",
            "Feed lines refused, by category (the lines around them are applied).",
            labels=["category"],
        )
        by_category = dict.fromkeys(BAD_LINE_CATEGORIES, 0)
        by_category.update(st.get("bad_lines_by_category", {}))
        for category, n in sorted(by_category.items()):
            bad.add_metric([category], n)
        yield bad
        yield counter(
            "attribution_feed_relay_gaps",
            "Times lines went missing between ExaBGP and the service (then a resync).",
            "relay_gaps",
        )
        yield counter(
            "attribution_feed_relay_lost_lines",
            "Lines the relay dropped while the service was away.",
            "relay_lost_lines",
        )
        yield counter(
            "attribution_feed_resyncs",
            "Route refreshes requested from relays.",
            "resyncs_requested",
        )
        yield counter(
            "attribution_feed_relay_connections", "Relay connections accepted.", "relay_connections"
        )
        yield counter(
            "attribution_feed_refused_connections",
            "Feed socket connections refused: the process was not of our user or root.",
            "refused_connections",
        )
        yield GaugeMetricFamily(
            "attribution_feed_relays_connected",
            "Relays connected now.",
            value=st.get("relays_connected", 0),
        )
        yield GaugeMetricFamily(
            "attribution_feed_rereads_waiting",
            "Routers whose table awaits its turn to be re-read after a feed gap.",
            value=st.get("rereads_waiting", 0),
        )
        yield GaugeMetricFamily(
            "attribution_feed_rereads_running",
            "Routers re-sending their table after a feed gap now.",
            value=st.get("rereads_running", 0),
        )
        yield counter(
            "attribution_exabgp_gone",
            "Times ExaBGP stopped or died as seen by the feed (routes kept stale).",
            "exabgp_gone_events",
        )

    def _exabgp(self) -> Iterator[Metric]:
        if self.s.supervisor_state is None:
            up = 1 if self.s.feed_stats().get("relays_connected", 0) else 0
            yield GaugeMetricFamily(
                "attribution_exabgp_up",
                "1 while ExaBGP runs (external ExaBGP: while its relay is connected).",
                value=up,
            )
            yield CounterMetricFamily(
                "attribution_exabgp_restarts", "ExaBGP restarts by the supervisor.", value=0
            )
            return
        st = self.s.supervisor_state()
        yield GaugeMetricFamily(
            "attribution_exabgp_up",
            "1 while ExaBGP runs (external ExaBGP: while its relay is connected).",
            value=1 if st.running else 0,
        )
        yield CounterMetricFamily(
            "attribution_exabgp_restarts", "ExaBGP restarts by the supervisor.", value=st.restarts
        )
        if st.last_exit_code is not None:  # (no sample before a run has ended)
            yield GaugeMetricFamily(
                "attribution_exabgp_last_exit_code",
                "Exit code of ExaBGP's last run (negative: the signal that killed it).",
                value=st.last_exit_code,
            )
        if self.s.worker_states is not None:
            yield from self._workers(self.s.worker_states())

    def _workers(self, rows: list[tuple[int, Any, int]]) -> Iterator[Metric]:
        """Per ExaBGP worker ([bgp] workers; one worker is labelled "0")."""
        relays = self.s.feed_stats().get("relays_connected_by_worker", {})
        up = GaugeMetricFamily(
            "attribution_exabgp_worker_up", "1 while this ExaBGP worker runs.", labels=["worker"]
        )
        restarts = CounterMetricFamily(
            "attribution_exabgp_worker_restarts",
            "Restarts of this ExaBGP worker by its supervisor.",
            labels=["worker"],
        )
        routers = GaugeMetricFamily(
            "attribution_exabgp_worker_routers",
            "Routers whose sessions this ExaBGP worker holds.",
            labels=["worker"],
        )
        relay = GaugeMetricFamily(
            "attribution_exabgp_worker_relays_connected",
            "This worker's feed relays connected now.",
            labels=["worker"],
        )
        for worker, st, count in rows:
            label = [str(worker)]
            up.add_metric(label, 1 if st.running else 0)
            restarts.add_metric(label, st.restarts)
            routers.add_metric(label, count)
            relay.add_metric(label, relays.get(worker, 0))
        yield from (up, restarts, routers, relay)


def _route_caches() -> Iterator[Metric]:
    """The route objects views keep for batches with routes, under one
    budget for the process (``attribution.routecache``): how full it is, and
    what a full budget costs (routes made and not kept; idle caches emptied)."""
    from attribution import routecache

    budget = routecache.BUDGET
    yield GaugeMetricFamily(
        "attribution_route_cache_routes",
        "Route objects kept by compiled views for batches with routes.",
        value=budget.held(),
    )
    yield GaugeMetricFamily(
        "attribution_route_cache_budget_routes",
        "Most route objects all views keep together (about 276 bytes each).",
        value=routecache.ROUTE_CACHE_BUDGET,
    )
    yield CounterMetricFamily(
        "attribution_route_cache_refused_routes",
        "Routes made for a batch but not kept, the budget being full.",
        value=budget.refused,
    )
    yield CounterMetricFamily(
        "attribution_route_cache_emptied",
        "Views' route caches emptied to make room, unread for a few seconds.",
        value=budget.emptied,
    )


def _refused_calls() -> Metric:
    """The API guard's refusals (attribution.security.REFUSED, process-wide)."""
    from attribution.security import REFUSE_REASONS, REFUSED

    return refusals(
        "attribution_grpc_refused",
        "gRPC calls refused or cut by the API's guard, by reason (README: Securing the API).",
        REFUSE_REASONS,
        REFUSED.snapshot(),
    )


def refusals(name: str, doc: str, reasons: Iterable[str], counts: dict[str, int]) -> Metric:
    """A counter family of refusals by reason: every known reason (0 until it happens)
    and any other counted."""
    family = CounterMetricFamily(name, doc, labels=["reason"])
    for reason in sorted({*reasons, *counts}):
        family.add_metric([reason], counts.get(reason, 0))
    return family


class IxCollector(Collector):
    """The IX learners' tables and sources (``attribution.ix``), read when scraped."""

    def __init__(self, states: Callable[[], list]) -> None:
        self.states = states

    def collect(self) -> Iterator[Metric]:
        labels = ["ix", "source"]
        macs = GaugeMetricFamily(
            "attribution_ix_macs",
            "MACs in an IX's learned table: learned (usable), conflict, no_as",
            labels=["ix", "state"],
        )
        hops = GaugeMetricFamily(
            "attribution_ix_next_hops", "IX LAN next hops in the RIB", labels=["ix"]
        )
        reads = CounterMetricFamily(
            "attribution_ix_source_reads", "Reads of an IX's sources", labels=[*labels, "result"]
        )
        bad = CounterMetricFamily(
            "attribution_ix_source_bad_entries",
            "Entries an IX source sent that were refused, by reason",
            labels=[*labels, "reason"],
        )
        ok = GaugeMetricFamily(
            "attribution_ix_source_ok", "1 when the source's last read worked", labels=labels
        )
        for st in self.states():
            name = st.config.name
            learned = sum(e.usable for e in st.table.values())
            conflict = sum(e.conflict for e in st.table.values())
            macs.add_metric([name, "learned"], learned)
            macs.add_metric([name, "conflict"], conflict)
            macs.add_metric([name, "no_as"], len(st.table) - learned - conflict)
            hops.add_metric([name], len({nh for t in st.next_hops.values() for nh, _ in t.counts}))
            for src in (st.neighbors, st.peeringdb):
                if src is None:
                    continue
                reads.add_metric([name, src.kind, "ok"], src.reads)
                reads.add_metric([name, src.kind, "failed"], src.failures)
                ok.add_metric([name, src.kind], 0 if src.error or src.last is None else 1)
                for reason, n in sorted(src.bad.items()):
                    bad.add_metric([name, src.kind, reason], n)
        yield from (macs, hops, reads, bad, ok)


def _snapshots(stats: SnapshotStats, config: Config) -> Iterator[Metric]:
    """The RIB snapshot's writes and its load at start (``attribution.snapshots``)."""
    if config.snapshot_path:
        yield GaugeMetricFamily(
            "attribution_snapshot_interval_seconds",
            "Seconds between periodic snapshot writes (service.snapshot_path set): alert when "
            "the last write is several of these old.",
            value=config.snapshot_interval,
        )
    writes = CounterMetricFamily(
        "attribution_snapshot_writes",
        "RIB snapshot writes by outcome (failed: logged, the previous file kept).",
        labels=["outcome"],
    )
    writes.add_metric(["written"], stats.written)
    writes.add_metric(["failed"], stats.failed)
    yield writes
    yield CounterMetricFamily(
        "attribution_snapshot_writes_postponed",
        "Periodic snapshot writes that waited for a table load or re-read to end (their "
        "memory peaks would stack), at most one snapshot_interval.",
        value=stats.postponed,
    )
    yield GaugeMetricFamily(
        "attribution_snapshot_last_written_timestamp_seconds",
        "When the last snapshot write succeeded (Unix time; 0: none since start).",
        value=stats.last_written,
    )
    yield GaugeMetricFamily(
        "attribution_snapshot_last_write_seconds",
        "How long the last successful snapshot write took.",
        value=stats.last_seconds,
    )
    yield GaugeMetricFamily(
        "attribution_snapshot_bytes", "Size of the last snapshot written.", value=stats.last_bytes
    )
    yield CounterMetricFamily(
        "attribution_snapshot_leftovers_removed",
        "Temporary files of snapshot writes that never finished, removed at start or "
        "before a write.",
        value=stats.leftovers_removed,
    )
    load = GaugeMetricFamily(
        "attribution_snapshot_load",
        "At start: 1 for what became of the snapshot (loaded, none: no file, refused).",
        labels=["outcome"],
    )
    for outcome in LOAD_OUTCOMES:
        load.add_metric([outcome], 1 if stats.load == outcome else 0)
    yield load
    yield GaugeMetricFamily(
        "attribution_snapshot_load_seconds",
        "How long loading the snapshot at start took (0: none loaded).",
        value=stats.load_seconds,
    )


def _tls(certificates: dict[str, Any]) -> Iterator[Metric]:
    """Each TLS server's certificate: its end of validity and the re-reads of its files."""
    expiry = GaugeMetricFamily(
        "attribution_tls_certificate_expiry_timestamp_seconds",
        "When the certificate a server (grpc, metrics) serves now expires (Unix time). Alert "
        "well before: the files are followed, so a renewal on disk is served at once.",
        labels=["server"],
    )
    reloads = CounterMetricFamily(
        "attribution_tls_reloads",
        "Changed TLS files: taken (served from the next connection on) or refused "
        "(unreadable, not PEM, key and certificate not matching, already expired: logged, "
        "the served certificate kept).",
        labels=["server", "outcome"],
    )
    for server, followed in sorted(certificates.items()):
        expiry.add_metric([server], followed.served.not_after)
        for outcome, n in followed.outcomes.items():
            reloads.add_metric([server, outcome], n)
    yield expiry
    yield reloads
