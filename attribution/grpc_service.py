"""gRPC adapter: the Attribution service over the resolver and the RIB.

The RPCs' meaning lives here; how they are served (handlers that send the bulk
path's ready-made bytes, TLS, tokens, limits, reflection) in attribution.grpc_server.

Thin on purpose: validation of records lives in the resolver, wire shapes in
attribution.convert. Health checking and server reflection are on, so
``grpcurl -plaintext HOST:PORT list`` works out of the box.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2

from attribution.config import Config, ConfigError
from attribution.convert import (
    RouteMessages,
    columns_to_rows,
    resolution_to_columns,
    route_message,
)
from attribution.dryrun import (
    candidate_config,
    diff_overrides,
    sample_from_ring,
    sample_from_rows,
)
from attribution.explain_render import explanation
from attribution.ix_show import ix_message
from attribution.metrics import RpcMetrics, Timer, batch_shape, new_registry
from attribution.resolver import BatchTooLarge, Resolution, Resolver, Routing
from attribution.router_status import capture
from attribution.v1 import attribution_pb2 as pb
from attribution.v1 import attribution_pb2_grpc as pb_grpc
from attribution.wire import (
    MAX_STREAM_ROUTES,
    RouteEncoder,
    WireRoutes,
    encode_answer,
    encode_flow_answer,
)
from ribd.events import IPV4_UNICAST, IPV6_UNICAST
from ribd.prefixes import BadPrefix, parse_prefix_or_address
from ribd.rib import Rib

log = logging.getLogger(__name__)
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Attribution"].full_name


@dataclass(frozen=True, slots=True)
class ReloadResult:
    ok: bool
    error: str = ""
    overrides: int = 0
    warnings: tuple[str, ...] = ()
    restart: tuple[str, ...] = ()  # settings read but applied only at a restart
    stopping: bool = False  # not applied, the service is stopping: the file was not refused


class AttributionServicer(pb_grpc.AttributionServicer):
    def __init__(
        self,
        rib: Rib,
        resolver: Resolver,
        config: Callable[[], Config],
        reload: Callable[[], ReloadResult],
        feed_stats: Callable[[], dict] = dict,
        metrics: RpcMetrics | None = None,
    ) -> None:
        self.rib = rib
        self.resolver = resolver
        self.config = config
        self.reload = reload
        self.feed_stats = feed_stats
        self.metrics = metrics if metrics is not None else RpcMetrics(new_registry())
        # The gRPC health service's state; the daemon moves it with its
        # readiness rule (attribution.health), embedders get SERVING.
        self.health = health.HealthServicer()
        self.set_serving(True)
        self.route_messages = RouteMessages()  # rows answers (Resolve, `flows` batches)
        self.route_encoder = RouteEncoder()  # columns answers
        # Neighbor -> the ExaBGP worker holding its session (ListRouters);
        # set by the daemon (ribd.workers), empty for embedders.
        self.router_workers: dict[str, int] = {}
        self.ix_states: Callable[[], list] = list  # the daemon sets IxLearner.status

    def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", SERVICE_NAME):
            self.health.set(name, status)

    def forget_old_views(self) -> None:
        """Drop cached route entries of views no longer served (maintenance)."""
        self.route_encoder.forget_views(self.resolver.views.current())

    # -- resolving -----------------------------------------------------------

    def _columns(self, res: Resolution) -> tuple[pb.AttributionColumns, list[pb.FlowError]]:
        routing = self.resolver.routing
        return resolution_to_columns(
            res, routing.local_as, routing.highest_as_set, self.route_messages
        )

    def _resolve_batch(
        self, request: pb.FlowBatch, rpc: str, stream: _StreamState | None = None
    ) -> pb.AttributionBatch | bytes:
        """The answer, as a message or ready wire bytes (``columns`` requests).

        ``stream`` is the calling ResolveStream's state (its route dictionary).
        Raises ValueError for a batch that cannot be read at all.
        """
        if request.stream_routes and stream is None:
            raise ValueError("stream_routes works on ResolveStream only")
        kind = request.WhichOneof("records")
        if kind == "columns":
            return self._columns_answer(request, rpc, stream)
        flows = request.flows.flows if kind == "flows" else ()
        if len(flows) > self.resolver.max_batch_flows:
            raise BatchTooLarge(
                f"batch of {len(flows)} flows exceeds the limit of {self.resolver.max_batch_flows}"
            )
        res = self.resolver.resolve_dicts([_flow_dict(f) for f in flows]) if flows else Resolution()
        self._count(rpc, "rows", res)
        cols, errors = self._columns(res)
        return pb.AttributionBatch(
            batch_id=request.batch_id, attributions=columns_to_rows(cols, errors), errors=errors
        )

    def _count(self, rpc: str, shape: str, res: Resolution) -> None:
        """Flows and per-flow errors of one answered batch, for the metrics."""
        self.metrics.flows_answered(rpc, shape, len(res), [e[1] for e in res.errors])

    def _columns_answer(
        self, request: pb.FlowBatch, rpc: str, stream: _StreamState | None
    ) -> bytes:
        routing = self.resolver.routing
        base, reset = 0, False
        routes: WireRoutes | None = None
        streamed = stream is not None and request.stream_routes and not request.omit_routes
        if request.omit_routes:
            pass
        elif streamed:
            reset = stream.prepare(routing, self.route_encoder)  # type: ignore[union-attr]
            routes = stream.routes
        else:
            routes = WireRoutes(self.route_encoder, routing.local_as, routing.highest_as_set)
        c = request.columns
        try:
            res = (
                self.resolver.resolve_columns(
                    list(c.exporters),
                    c.exporter,
                    c.src_addr,
                    c.dst_addr,
                    c.in_if,
                    c.src_mac,
                    with_routes=routes is not None,
                    routes=routes,
                    next_hop=c.next_hop,
                )
                if len(c.exporter)
                else Resolution()
            )
        except BaseException:
            if streamed:
                stream.lost()  # type: ignore[union-attr]  # numbered routes never sent
            raise
        self._count(
            rpc,
            batch_shape("columns", request.packed_records, streamed, request.omit_routes),
            res,
        )
        entries: list[bytes] = []
        if routes is not None:
            base, entries = routes.take_new()
        return encode_answer(
            request.batch_id,
            res,
            request.packed_records,
            entries,
            base if streamed else 0,
            reset,
        )

    def Resolve(self, request: pb.Flow, context: grpc.ServicerContext) -> bytes:
        with Timer(self.metrics, "Resolve"):
            routing = self.resolver.routing
            answer = self.resolver.resolve_one(_flow_dict(request))
            self.metrics.flows_answered(
                "Resolve", "one", 1, (answer.error[0],) if answer.error else ()
            )
            return encode_flow_answer(
                answer, self.route_encoder, routing.local_as, routing.highest_as_set
            )

    def ResolveBatch(
        self, request: pb.FlowBatch, context: grpc.ServicerContext
    ) -> pb.AttributionBatch:
        with Timer(self.metrics, "ResolveBatch", context) as t:
            try:
                return self._resolve_batch(request, "ResolveBatch")
            except ValueError as exc:
                t.code = "INVALID_ARGUMENT"
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
                raise  # unreachable: abort raises

    def ResolveStream(
        self, request_iterator: Iterator[pb.FlowBatch], context: grpc.ServicerContext
    ) -> Iterator[pb.AttributionBatch | bytes]:
        stream = _StreamState()
        for request in request_iterator:
            # Timed per batch, without the time the client takes to read it.
            with Timer(self.metrics, "ResolveStream") as t:
                try:
                    answer = self._resolve_batch(request, "ResolveStream", stream)
                except ValueError as exc:
                    t.code = "INVALID_ARGUMENT"
                    answer = pb.AttributionBatch(batch_id=request.batch_id, batch_error=str(exc))
            yield answer

    def Explain(self, request: pb.Flow, context: grpc.ServicerContext) -> pb.Explanation:
        """How one flow's answer was derived (attribution.explain), with the answer."""
        with Timer(self.metrics, "Explain"):
            return explanation(
                self.resolver, self.config(), _flow_dict(request), self.route_encoder
            )

    def DiffOverrides(
        self, request: pb.DiffOverridesRequest, context: grpc.ServicerContext
    ) -> pb.DiffOverridesResponse:
        """What the candidate config would change on a flow sample (attribution.dryrun).

        The candidate's text is never logged: only the error naming its line."""
        with Timer(self.metrics, "DiffOverrides", context) as t:
            try:
                candidate = candidate_config(request.config_text, request.config_name)
            except ConfigError as exc:
                t.code = "INVALID_ARGUMENT"
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            if len(request.flows):
                sample = sample_from_rows([_flow_dict(f) for f in request.flows])
            else:
                sample = sample_from_ring(self.resolver.recent.snapshot())
            d = diff_overrides(
                self.resolver,
                self.resolver.routing,
                Routing.from_config(candidate, self.resolver.ix),
                sample,
                candidate.warnings,
            )
            return pb.DiffOverridesResponse(
                changed=d.changed,
                flows=d.flows,
                bad_flows=d.bad_flows,
                recent=d.recent,
                changes=[
                    pb.OverrideChange(
                        old_rule=c.old_rule,
                        new_rule=c.new_rule,
                        old_src_peer_as=c.old_peer_as,
                        new_src_peer_as=c.new_peer_as,
                        flows=c.flows,
                        bytes=c.bytes,
                        packets=c.packets,
                    )
                    for c in d.changes
                ],
                unmatched_rules=d.unmatched_rules,
                shadowed_rules=[
                    pb.ShadowedRule(rule=s.rule, shadowed_by=s.shadowed_by, new=s.new)
                    for s in d.shadowed
                ],
                other_changed_flows=d.other_changed_flows,
                warnings=d.warnings,
            )

    # -- routes and routers --------------------------------------------------

    def _neighbor_for(self, router: str) -> str | None:
        routing = self.resolver.routing
        if router in routing.by_name:
            return routing.by_name[router]
        if router in self.rib.routers:
            return router
        try:
            chain, _ = self.resolver.chain_for(parse_prefix_or_address(router)[1])
        except (ValueError, BadPrefix):
            return None
        return chain[0] if chain else None

    def LookupRoute(
        self, request: pb.LookupRouteRequest, context: grpc.ServicerContext
    ) -> pb.LookupRouteResponse:
        with Timer(self.metrics, "LookupRoute", context):
            return self._lookup_route(request, context)

    def _lookup_route(
        self, request: pb.LookupRouteRequest, context: grpc.ServicerContext
    ) -> pb.LookupRouteResponse:
        if bool(request.address) == bool(request.prefix):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "give exactly one of address, prefix")
        neighbor = self._neighbor_for(request.router)
        if neighbor is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no router {request.router!r}")
        try:
            version, text = parse_prefix_or_address(request.address or request.prefix)
        except (ValueError, BadPrefix) as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        family = IPV4_UNICAST if version == 4 else IPV6_UNICAST
        routing = self.resolver.routing
        name = routing.names.get(neighbor, neighbor)  # type: ignore[arg-type]
        with self.rib.lock:
            if request.prefix:
                matches = self.rib.exact(neighbor, family, text)  # type: ignore[arg-type]
            else:
                best = self.rib.lookup(neighbor, family, text)  # type: ignore[arg-type]
                matches = [best] if best else []
                if best and request.all_paths:
                    matches = self.rib.exact(neighbor, family, best.prefix)  # type: ignore[arg-type]
            if not request.all_paths:
                matches = matches[:1]
            routes = [
                route_message(name, m, routing.local_as, routing.highest_as_set) for m in matches
            ]
        return pb.LookupRouteResponse(found=bool(routes), routes=routes)

    def ListRouters(
        self, request: pb.ListRoutersRequest, context: grpc.ServicerContext
    ) -> pb.ListRoutersResponse:
        with Timer(self.metrics, "ListRouters"):
            return self._list_routers()

    def _list_routers(self) -> pb.ListRoutersResponse:
        """Built from a copy taken under the RIB's lock (``router_status``), not under it."""
        config = self.config()
        configured = {r.neighbor: r for r in config.routers}
        status = capture(self.rib, configured)
        out = []
        for r in status.routers:
            rc = configured.get(r.neighbor)
            state = pb.RouterState(
                worker=self.router_workers.get(r.neighbor, 0),
                name=rc.name if rc else r.neighbor,
                neighbor=r.neighbor,
                peer_as=rc.peer_as if rc else r.peer_as,
                exporters=rc.exporters if rc else (),
                fallback=rc.fallback if rc else (),
                session=r.session,
            )
            if r.in_rib:
                state.last_reason = r.last_reason
                state.session_since = r.session_since
                state.last_update = r.last_update
                state.stale = r.stale
                state.stale_until = r.stale_until
                state.families.extend(
                    pb.FamilyState(
                        family=f.family,
                        prefixes=f.prefixes,
                        paths=f.paths,
                        converged=f.converged,
                        stale_prefixes=f.stale_prefixes,
                        inferred=f.inferred,
                        paths_over_limit=f.paths_over_limit,
                        max_prefixes=f.max_prefixes,
                        prefixes_refused=f.prefixes_refused,
                    )
                    for f in r.families
                )
            out.append(state)
        return pb.ListRoutersResponse(
            routers=out,
            unique_attribute_sets=status.attribute_sets,
            bad_feed_lines=int(self.feed_stats().get("bad_lines", 0)),
        )

    def ReloadConfig(
        self, request: pb.ReloadConfigRequest, context: grpc.ServicerContext
    ) -> pb.ReloadConfigResponse:
        with Timer(self.metrics, "ReloadConfig"):
            result = self.reload()
        return pb.ReloadConfigResponse(
            ok=result.ok, error=result.error, overrides=result.overrides, warnings=result.warnings
        )

    def ListIx(self, request: pb.ListIxRequest, context: grpc.ServicerContext) -> pb.ListIxResponse:
        """The learned IX tables (attribution.ix_show)."""
        with Timer(self.metrics, "ListIx"):
            return ix_message(self.ix_states(), request.name)


class _StreamState:
    """What one ResolveStream remembers between batches: its route dictionary."""

    def __init__(self) -> None:
        self.routes: WireRoutes | None = None
        self._routing: Routing | None = None
        self._must_reset = False

    def prepare(self, routing: Routing, encoder: RouteEncoder) -> bool:
        """Ready the dictionary for the next batch; True when it was emptied.

        Emptied when full, after a lost batch, and after a config reload
        (entries show the router name and the local AS, which may change).
        """
        if (
            self.routes is not None
            and not self._must_reset
            and routing is self._routing
            and self.routes.size < MAX_STREAM_ROUTES
        ):
            return False
        emptied = self.routes is not None
        self.routes = WireRoutes(encoder, routing.local_as, routing.highest_as_set)
        self._routing = routing
        self._must_reset = False
        return emptied

    def lost(self) -> None:
        self._must_reset = True


def _flow_dict(f: pb.Flow) -> dict:
    return {
        "exporter": f.exporter,
        "src_addr": f.src_addr,
        "dst_addr": f.dst_addr,
        "in_if": f.in_if,
        "out_if": f.out_if,
        "src_mac": f.src_mac,
        "next_hop": f.next_hop,
        "bytes": f.bytes,
        "packets": f.packets,
    }


# The server lives in its own module; callers import it from here too.
from attribution.grpc_server import add_servicer, start_server  # noqa: E402

__all__ = ["AttributionServicer", "ReloadResult", "add_servicer", "start_server"]
