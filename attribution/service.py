"""The daemon: RIB + feed + supervised ExaBGP + gRPC, wired from one config file.

Everything here is assembly and lifecycle; the logic lives in ribd (parser,
RIB) and attribution.resolver. Reload (SIGHUP or the RPC) validates the whole
file first and changes nothing when it is broken.
"""

from __future__ import annotations

import gc
import logging
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import replace

from attribution import logs, routecache
from attribution.config import Config, ConfigError, load_config
from attribution.config_reloads import ConfigCollector, ConfigReloads
from attribution.grpc_server import start_server
from attribution.grpc_service import AttributionServicer, ReloadResult
from attribution.health import Readiness
from attribution.ix import IxLearner
from attribution.metrics import (
    IxCollector,
    MetricsRefusedCollector,
    MetricsServer,
    RpcMetrics,
    ServiceCollector,
    SessionMetrics,
    Sources,
    new_registry,
)
from attribution.reload_changes import describe_changes, restart_needed
from attribution.resolver import Resolver
from attribution.snapshots import SnapshotPathInUse, Snapshots, SnapshotSchedule
from attribution.tls_files import FollowedCertificates
from ribd import gcpolicy, heap, observe
from ribd.exabgp import feed_socket_path
from ribd.feed import FeedServer
from ribd.prefix_limit import prefix_limits
from ribd.rib import Rib
from ribd.workers import ExabgpWorkers, reread_wave

log = logging.getLogger(__name__)

MAINTENANCE_INTERVAL = 0.1  # seconds between RIB maintenance rounds
SIGNAL_POLL = 0.2  # seconds between the main loop's looks at the signal flags
OBSERVE_INTERVAL = 0.2  # seconds between rounds of RIB event logging and health updates


def tune_gc() -> None:
    """A full table is millions of long-lived objects without cycles.

    CPython's cyclic collector would rescan them over and over while a table
    loads (measured: ingest 40% slower). Collect rarely; the RIB frees its own
    garbage by reference counting. What a load leaves is frozen once it
    settles (``ribd.gcpolicy``).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)
    gcpolicy.enable()  # and what each load leaves, frozen once it settles


def catch_signals() -> dict[str, bool]:
    """Turn SIGHUP, SIGTERM and SIGINT into flags, from now on.

    Called first thing by ``attribution serve``: until then SIGHUP's default
    action ends the process, and building the service (a large config, a
    snapshot) can take seconds. The handlers only set flags: one that took a
    lock (Event.set) could deadlock against the main thread it interrupts.
    """
    flags = {"stop": False, "reload": False}

    def on_stop(*_: object) -> None:
        flags["stop"] = True

    def on_hup(*_: object) -> None:
        flags["reload"] = True

    signal.signal(signal.SIGHUP, on_hup)
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    return flags


class Service:
    def __init__(self, config_path: str, *, grpc_listen: str | None = None) -> None:
        self.config_path = config_path
        self.config: Config = load_config(config_path)
        logs.use_config_format(self.config.log_format)
        if grpc_listen:
            self.config = replace(self.config, grpc_listen=grpc_listen)
        self.started_config = self.config  # what sessions and listeners run with
        for warning in self.config.warnings:
            log.warning("%s", warning)
        settings = self.config.bgp
        # A work directory made here (none configured) is this process's and
        # goes at stop; each start without one left an empty one in /tmp.
        self._own_work_dir = ""
        if not settings.work_dir:
            self._own_work_dir = tempfile.mkdtemp(prefix="attribution-")
            settings = replace(settings, work_dir=self._own_work_dir)
        self.settings = settings
        self.rib = Rib(
            stale_hold_time=settings.stale_hold_time,
            restart_hold_time=settings.restart_hold_time,
        )
        self.rib.converge_quiet_time = settings.converge_quiet_time
        self.rib.max_paths = settings.max_paths_per_prefix
        self.snapshots = Snapshots(
            self.rib, lambda: self.config.snapshot_path, lambda: self.settings.restart_hold_time
        )
        self._apply_router_settings(self.config)
        routecache.set_budget(self.config.route_cache_routes)
        self.resolver = Resolver(self.rib, self.config, build_views_inline=False)
        self.ix_learner = IxLearner(self.rib, self.resolver.ix, self.config)
        self.feed = FeedServer(
            feed_socket_path(settings),
            self.rib,
            exabgp_gone_hold_time=settings.restart_hold_time,
            reread_wave=reread_wave(settings),
        )
        # One ExaBGP per worker ([bgp] workers, ribd.workers); the feed scopes
        # each worker's relay to its routers.
        self.supervisor = (
            ExabgpWorkers(settings, self.rib) if settings.exabgp_mode == "supervised" else None
        )
        if self.supervisor is not None:
            self.feed.worker_scopes = self.supervisor.scopes()
        self.registry = new_registry()
        self.servicer = AttributionServicer(
            self.rib,
            self.resolver,
            lambda: self.config,
            self.reload,
            self.feed.stats,
            metrics=RpcMetrics(self.registry),
        )
        # Which worker holds each session (fixed at start), for ListRouters.
        self.servicer.router_workers = self.supervisor.worker_of() if self.supervisor else {}
        self.grpc_server = None
        self.grpc_port = 0
        self.certificates: FollowedCertificates | None = None  # [api] TLS files, from start()
        self.metrics_server: MetricsServer | None = None
        self.metrics_port = 0
        self.readiness = Readiness(self.config.ready_timeout)
        self.serving = False  # gRPC health; set by _update_health from start() on
        self._health_known = False
        self.servicer.set_serving(False)
        self.servicer.ix_states = self.ix_learner.status
        self.view_build_seconds = 0.0
        self.registry.register(
            ServiceCollector(
                Sources(
                    rib=self.rib,
                    config=lambda: self.config,
                    feed_stats=self.feed.stats,
                    supervisor_state=self.supervisor.state if self.supervisor else None,
                    worker_states=self.supervisor.worker_rows if self.supervisor else None,
                    views=self.resolver.views,
                    view_build_seconds=lambda: self.view_build_seconds,
                    serving=lambda: self.serving,
                    snapshots=self.snapshots.stats,
                    certificates=self._followed_certificates,
                )
            )
        )
        self.registry.register(IxCollector(self.ix_learner.status))
        self.config_reloads = ConfigReloads(self.config)
        self.registry.register(ConfigCollector(self.config_reloads))
        self.session_metrics = SessionMetrics(self.registry)
        self.session_metrics.configured((r.name, r.neighbor) for r in self.config.routers)
        self._stop = threading.Event()
        self._reload_lock = threading.Lock()
        self._maintenance = threading.Thread(
            target=self._maintain, name="rib-maintenance", daemon=True
        )
        self._observer = threading.Thread(target=self._observe, name="observe", daemon=True)
        self.snapshot_schedule = SnapshotSchedule(self.snapshots, lambda: self.config, self._stop)
        self._snapshots = threading.Thread(
            target=self.snapshot_schedule.run, name="rib-snapshots", daemon=True
        )

    def _apply_router_settings(self, config: Config) -> None:
        self.rib.router_names = {r.neighbor: r.name for r in config.routers}
        self.rib.neighbors = frozenset(self.rib.router_names)  # routes only from these
        for r in self.rib.routers.values():
            r.name = self.rib.router_names.get(r.neighbor, r.neighbor)
        self.rib.stale_hold_by_neighbor = {
            n.address: n.stale_hold_time
            for n in config.bgp.neighbors
            if n.stale_hold_time is not None
        }
        self.rib.set_prefix_limits(prefix_limits(config.bgp))

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        # First: a second service given this path must fail before it binds or spawns.
        try:
            self.snapshots.claim(self.config.snapshot_path)
        except SnapshotPathInUse as exc:
            if self._own_work_dir:  # nothing else was started: no stop() (it would write)
                shutil.rmtree(self._own_work_dir, ignore_errors=True)
            raise ConfigError(f"{self.config.path}: service.snapshot_path: {exc}") from None
        metrics = self.config.metrics
        if metrics.listen:
            try:
                self.metrics_server = MetricsServer(self.registry, metrics)
            except OSError as exc:  # in use, not ours: say so, not a traceback
                raise ConfigError(
                    f"{self.config.path}: metrics.listen: cannot listen on "
                    f"{metrics.listen}: {exc.strerror or exc}"
                ) from None
            self.metrics_port = self.metrics_server.port
            self.registry.register(MetricsRefusedCollector(self.metrics_server.refused))
            log.info(
                "metrics on %s://%s/metrics (port %d%s%s)",
                self.metrics_server.scheme,
                metrics.listen,
                self.metrics_port,
                ", mutual TLS" if metrics.tls_client_ca else "",
                ", tokens required" if metrics.token_file else "",
            )
        # GC tuned before the snapshot, not after: a full collection over a
        # loaded many-router RIB walked every object (~18 s between "snapshot
        # loaded" and gRPC answering with 16 routers). The loaded objects are
        # frozen instead (O(1)), with the collector off while they load.
        tune_gc()
        gc.disable()
        try:
            if self.snapshots.load():
                self._apply_router_settings(self.config)
        finally:
            gc.enable()
        gc.freeze()
        self.feed.start()
        if self.supervisor is not None:
            self.supervisor.start()
        else:
            log.info(
                "external ExaBGP: run `ribd-feed --socket %s` as its API process",
                self.feed.socket_path,
            )
        self._update_health()
        api = self.config.api
        self.certificates = FollowedCertificates(api) if api.tls else None
        self.grpc_server, self.grpc_port = start_server(
            self.servicer,
            self.config.grpc_listen,
            self.config.max_message_bytes,
            api,
            self.certificates,
        )
        self._maintenance.start()
        self._observer.start()
        self.ix_learner.start()
        self._snapshots.start()  # also without a path: a reload may set one

    def _followed_certificates(self) -> dict[str, FollowedCertificates]:
        """Each TLS server's followed files, by server (for metrics and reloads)."""
        out = {}
        if self.certificates is not None:
            out["grpc"] = self.certificates
        if self.metrics_server is not None and self.metrics_server.certificates is not None:
            out["metrics"] = self.metrics_server.certificates
        return out

    def write_snapshot(self) -> None:
        """Write the RIB snapshot now (``attribution.snapshots``): logged and counted."""
        self.snapshots.write()

    def stop(self) -> None:
        self._stop.set()
        self.snapshot_schedule.wake()
        if self.grpc_server is not None:
            self.grpc_server.stop(grace=2).wait(5)
        if self.supervisor is not None:
            # ExaBGP reports every session down as it exits: a planned stop
            # keeps the routes (stale) for the snapshot and the next start.
            with self.rib.lock:
                self.rib.stopping = True
            self.feed.expecting_exabgp_stop = True
            self.supervisor.stop()
        self.feed.stop()
        self.ix_learner.stop()
        if self._maintenance.is_alive():
            self._maintenance.join(5)
        if self._snapshots.is_alive():
            self._snapshots.join(5)
        self.write_snapshot()
        self.snapshots.close()
        if self._observer.is_alive():
            self._observer.join(5)
        if self.metrics_server is not None:
            self.metrics_server.stop()
        if self._own_work_dir:
            shutil.rmtree(self._own_work_dir, ignore_errors=True)

    def _maintain(self) -> None:
        while not self._stop.wait(MAINTENANCE_INTERVAL):
            try:
                while self.rib.maintenance() and not self._stop.is_set():
                    time.sleep(0.001)  # let readers in between chunks
                # Compile the lookup views batches asked for (they use the
                # exact path meanwhile) and those of configured routers whose
                # tables are complete.
                with self.rib.lock:
                    self.resolver.views.want_missing(r.neighbor for r in self.config.routers)
                    if self.rib.views_may_wait():  # a table streams in: build after it
                        continue
                started = time.perf_counter()
                # A batch of builds frees most of what it allocated, in this
                # thread's arena, which glibc keeps resident (ribd.heap).
                with heap.released_after_growth():
                    built = self.resolver.views.refresh()
                if built:
                    self.view_build_seconds += time.perf_counter() - started
                    self.servicer.forget_old_views()  # their cached route entries
            except Exception:  # never let maintenance kill the daemon
                log.exception("RIB maintenance failed")

    def _observe(self) -> None:
        """Log the RIB's session and table events; keep gRPC health up to date."""
        while not self._stop.wait(OBSERVE_INTERVAL):
            try:
                observe.drain(self.rib.notes, count=self.session_metrics.count)
                self._update_health()
                self._follow_certificates()
            except Exception:  # never let logging kill the daemon
                log.exception("observer round failed")
        observe.drain(self.rib.notes, count=self.session_metrics.count)

    def _follow_certificates(self) -> None:
        """Renewed TLS files taken while no client connects; a served certificate
        close to its end warned about, once a day (README: Securing the API)."""
        now = time.time()
        for followed in self._followed_certificates().values():
            followed.poll()
            warning = followed.expiry_warning(now)
            if warning:
                log.warning("%s", warning)

    def _exabgp_down(self) -> str:
        """Why ExaBGP is not up, for health ("" when it is): see attribution.health."""
        if self.supervisor is not None:
            down = self.supervisor.not_running()
            if down:
                return down
        stats = self.feed.stats()
        if not stats.get("relays_connected", 0):
            return "ExaBGP's feed relay is not connected"
        if self.supervisor is not None:
            by_worker = stats.get("relays_connected_by_worker", {})
            for worker in self.supervisor.numbers:
                if worker and not by_worker.get(worker):
                    return f"the feed relay of ExaBGP worker {worker} is not connected"
        return ""

    def _update_health(self) -> None:
        """Apply the readiness rule (attribution.health) to gRPC health."""
        serving, why = self.readiness.check(
            self.rib, ((r.name, r.neighbor) for r in self.config.routers), self._exabgp_down()
        )
        if serving != self.serving or not self._health_known:
            self.servicer.set_serving(serving)
            log.log(
                logging.WARNING if self.serving and not serving else logging.INFO,
                "health: %s (%s)",
                "SERVING" if serving else "NOT_SERVING",
                why,
                extra={"event": "health", "serving": serving, "reason": why},
            )
        self.serving = serving
        self._health_known = True

    def run_forever(self, signals: dict[str, bool] | None = None) -> None:
        """Serve until SIGTERM/SIGINT; SIGHUP reloads the config.

        The handlers only set flags: one that took a lock (Event.set) could
        deadlock against the main thread it interrupts. Reloads run in one
        daemon thread, so a long one never delays the exit (SIGTERM stops the
        daemon, the reload is abandoned and nothing of it applied), and
        SIGHUPs that arrive during a reload make one more reload, not one each.
        ``signals`` are flags from an earlier ``catch_signals()``, so that the
        signals that came while the service was being built are served.
        """
        flags = signals if signals is not None else catch_signals()
        wanted = threading.Event()
        threading.Thread(
            target=self._reload_loop, args=(wanted,), name="config-reload", daemon=True
        ).start()
        self.start()
        log.info(
            "serving: gRPC on %s:%d, feed on %s, ExaBGP %s",
            self.config.grpc_listen.rsplit(":", 1)[0],
            self.grpc_port,  # the port bound: port 0 in the config asks for any free one
            self.feed.socket_path,
            "supervised" if self.supervisor else "external",
        )
        try:
            while not flags["stop"] and not self._stop.wait(SIGNAL_POLL):
                if flags["reload"]:
                    flags["reload"] = False
                    wanted.set()
        finally:
            self._stop.set()
            wanted.set()  # the reloader wakes, sees the stop and ends
            self.stop()

    def _reload_loop(self, wanted: threading.Event) -> None:
        while True:
            wanted.wait()
            wanted.clear()  # SIGHUPs from now on: one more reload after this one
            if self._stop.is_set():
                return
            try:
                self.reload()
            except Exception:  # a reload bug must not end reloading for good
                log.exception("config reload failed")

    # -- reload ----------------------------------------------------------------

    def reload(self) -> ReloadResult:
        """Re-read the file. Broken: keep everything as it is and say why (and count it)."""
        with self._reload_lock:
            result = self._reread()
            if result.ok:
                self.config_reloads.record_taken(self.config, result.restart)
            elif not result.stopping:  # (a file read fine at shutdown is no failure)
                self.config_reloads.record_refused()
            return result

    def _reread(self) -> ReloadResult:
        """The reload itself, under ``_reload_lock``."""
        for followed in self._followed_certificates().values():
            followed.refresh()  # renewed TLS files, whatever the config file says
        log.info("config reload: reading %s", self.config_path)
        try:
            new = load_config(self.config_path)
        except ConfigError as exc:
            log.error("config reload refused, keeping the running config: %s", exc)
            return ReloadResult(ok=False, error=str(exc), overrides=len(self.config.overrides))
        if self._stop.is_set():
            return ReloadResult(
                ok=False,
                error="the service is stopping",
                overrides=len(self.config.overrides),
                stopping=True,
            )
        warnings = list(new.warnings)
        new = replace(new, grpc_listen=self.config.grpc_listen)
        restart = restart_needed(self.started_config, new)
        if restart:
            warnings.append(
                "needs a restart to take effect (the running sessions and listeners are "
                "kept): " + "; ".join(restart)
            )
        try:  # before anything is applied: refused, the running config stays whole
            self.snapshots.claim(new.snapshot_path)
        except SnapshotPathInUse as exc:
            error = f"{self.config_path}: service.snapshot_path: {exc}"
            log.error("config reload refused, keeping the running config: %s", error)
            return ReloadResult(ok=False, error=error, overrides=len(self.config.overrides))
        changes = describe_changes(self.config, new)
        self.resolver.reconfigure(new)
        routecache.set_budget(new.route_cache_routes)
        self.ix_learner.reconfigure(new)
        if not self._stop.is_set() and self.grpc_server is not None:
            self.ix_learner.start()  # a first [[ix]] added by this reload
        self._apply_router_settings(new)
        if self.metrics_server is not None:
            self.metrics_server.reload_tokens(new.metrics)
        self.config = new
        self.snapshot_schedule.wake()  # the interval or the path may have changed
        for w in warnings:
            log.warning("%s", w)
        log.info("config reloaded: %s", ", ".join(changes) or "no changes")
        return ReloadResult(
            ok=True, overrides=len(new.overrides), warnings=tuple(warnings), restart=tuple(restart)
        )
