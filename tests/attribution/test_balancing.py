"""Client-side balancing over replicas (attribution.balancing, attribution.client).

Real gRPC servers on their own loopback addresses, each over the same hand-fed
world (every replica holds every RIB, so any of them answers any batch the same).
The replica that dies here is stopped in process; tests/attribution/test_replicas.py
kills real service processes (kill -9) fed by a route reflector.
"""

from __future__ import annotations

import re
import socket
import threading
from dataclasses import replace

import grpc
import pytest

from attribution.balancing import parse_targets
from attribution.client import Balancing, Connection, resolve_dicts
from attribution.config import ApiSettings
from attribution.failover import FailoverStats
from attribution.grpc_service import AttributionServicer, ReloadResult, start_server
from attribution.resolver import Resolver
from tests.attribution.helpers import build_world

FLOWS = [
    {"exporter": "127.0.1.1", "src_addr": "172.16.0.1", "dst_addr": "10.9.1.1", "in_if": 1},
    {"exporter": "127.0.1.1", "src_addr": "10.1.0.1", "dst_addr": "10.1.2.3"},
    {"exporter": "127.0.1.1", "src_addr": "2001:db8:1::1", "dst_addr": "2001:db8::5"},
    {"exporter": "127.0.1.1", "src_addr": "not an address", "dst_addr": "10.1.2.3"},
    {"exporter": "127.0.1.1", "src_addr": "172.16.0.1", "dst_addr": "192.0.2.77"},
]


class Replica(AttributionServicer):
    """One replica: its own RIB and server on 127.0.0.N; counts the batches it got and
    can hold one batch unanswered and stop its server (a replica dying mid-stream)."""

    def __init__(self, n: int, api: ApiSettings | None = None, credentials=None) -> None:
        rib, config = build_world()
        api = api or ApiSettings()
        config = replace(config, api=api)
        super().__init__(
            rib,
            Resolver(rib, config, max_batch_flows=100_000),
            lambda: config,
            lambda: ReloadResult(ok=True, overrides=0),
            lambda: {},
        )
        self.batches = 0
        self.lock = threading.Lock()
        self.die_at: int | None = None  # stop the server on receiving this batch number
        self.dead = threading.Event()
        self.on_death = lambda: None
        self.on_batch = lambda n: None  # called with each batch's number as it arrives
        self.server, self.port = start_server(self, f"127.0.0.{n}:0", 64 << 20, api)
        self.target = f"127.0.0.{n}:{self.port}"

    def ResolveStream(self, request_iterator, context):
        def counted():
            for request in request_iterator:
                with self.lock:
                    self.batches += 1
                    dying = self.die_at is not None and self.batches >= self.die_at
                self.on_batch(self.batches)
                if dying:  # received, never answered: the client must send it elsewhere
                    self.dead.set()
                    self.on_death()
                    self.server.stop(grace=None)
                    return
                yield request

        yield from super().ResolveStream(counted(), context)

    def stop(self) -> None:
        self.server.stop(grace=None)


@pytest.fixture
def replicas():
    made: list[Replica] = []

    def make(count: int = 3, **kwargs) -> list[Replica]:
        made.extend(Replica(n, **kwargs) for n in range(2, 2 + count))
        return made

    yield make
    for r in made:
        r.stop()


def expected(flows: list[dict]) -> list[dict]:
    """What one service answers for these flows."""
    single = Replica(1)
    try:
        return list(resolve_dicts(single.target, flows, batch_size=5))
    finally:
        single.stop()


def test_targets_name_replicas_as_a_list_or_a_dns_name():
    t = parse_targets("127.0.0.2:50051, 127.0.0.3:50051,127.0.0.2:50051")
    assert (t.grpc_target, t.count, t.balanced) == ("ipv4:127.0.0.2:50051,127.0.0.3:50051", 2, True)
    assert t.authority == "127.0.0.2"
    assert parse_targets("[::1]:1,[::1]:2").grpc_target == "ipv6:[::1]:1,[::1]:2"
    assert parse_targets("dns:///attribution-grpc.attribution.svc:50051").balanced
    one = parse_targets("localhost:50051")
    assert (one.grpc_target, one.balanced) == ("localhost:50051", False)
    with pytest.raises(ValueError, match=re.escape("'127.0.0.2': not HOST:PORT")):
        parse_targets("127.0.0.1:50051,127.0.0.2")
    with pytest.raises(ValueError, match="mixes IPv4 and IPv6"):
        parse_targets("127.0.0.1:1,[::1]:1")


def test_batches_spread_over_every_ready_replica_with_the_answers_of_one_service(replicas):
    reps = replicas(3)
    want = expected(FLOWS)
    stats = FailoverStats()

    def source():
        # keep sending until every replica has answered a batch (streams are
        # reopened every 0.2 s, each on the next ready replica)
        while True:
            yield from FLOWS
            if all(r.batches for r in reps):
                return

    target = ",".join(r.target for r in reps)
    bal = Balancing(streams=3, rebalance=0.2, stats=stats)
    got = list(resolve_dicts(target, source(), batch_size=5, balancing=bal))
    assert got == want * (len(got) // len(want)) and len(got) % len(want) == 0
    assert all(r.batches for r in reps)
    assert stats.answered == stats.batches == len(got) // len(FLOWS)
    assert (stats.streams_failed, stats.batches_retried, stats.duplicates_dropped) == (0, 0, 0)


def test_a_replica_lost_mid_stream_costs_no_batch_and_answers_none_twice(replicas):
    reps = replicas(3)
    dying = reps[0]
    dying.die_at = 2  # its second batch: received, never answered
    # the others come into service (gRPC health SERVING) as it dies, so the first
    # batches go to it and it dies with batches in flight
    for r in reps[1:]:
        r.set_serving(False)
    dying.on_death = lambda: [r.set_serving(True) for r in reps[1:]]
    flows = [dict(f, in_if=i) for i in range(300) for f in FLOWS[:3]]  # distinct records
    want = expected(flows)
    stats = FailoverStats()
    target = ",".join(r.target for r in reps)
    bal = Balancing(streams=3, max_in_flight=6, rebalance=0.2, stats=stats)
    got = list(resolve_dicts(target, flows, batch_size=3, balancing=bal))
    assert dying.dead.is_set()
    assert got == want  # every record once, in order, answered as one service would
    assert stats.answered == stats.batches == len(flows) // 3
    assert stats.streams_failed >= 1 and stats.batches_retried >= 1
    assert stats.duplicates_dropped == 0
    assert stats.recovery_seconds  # answers came again after the loss
    assert reps[1].batches + reps[2].batches >= len(flows) // 3 - 1


def test_a_replica_not_serving_gets_no_batch(replicas):
    reps = replicas(3)
    reps[1].set_serving(False)  # converging: gRPC health NOT_SERVING
    target = ",".join(r.target for r in reps)
    flows = FLOWS * 40
    got = list(resolve_dicts(target, flows, batch_size=5, balancing=Balancing(rebalance=0.1)))
    assert got == expected(FLOWS) * 40
    assert reps[1].batches == 0 and reps[0].batches + reps[2].batches == 40


def test_tls_and_a_token_work_with_a_list_of_replicas(replicas, tmp_path):
    from tests.deploy.conftest import make_cert

    ca, _, ca_crt = make_cert(tmp_path, "ca", ca=True)
    _, key, crt = make_cert(tmp_path, "server", ca, dns=["attribution.attribution.svc"])
    tokens = tmp_path / "read.tokens"
    tokens.write_text("read-token\n")
    api = ApiSettings(tls_cert=str(crt), tls_key=str(key), read_token_file=str(tokens))
    reps = replicas(2, api=api)
    target = ",".join(r.target for r in reps)
    conn = Connection(target, token="read-token", ca=str(ca_crt))
    conn = replace(conn, server_name="attribution.attribution.svc")
    assert list(resolve_dicts(conn, FLOWS * 4, batch_size=5)) == expected(FLOWS) * 4
    # a wrong token fails at once on every replica: not retried
    stats = FailoverStats()
    with pytest.raises(grpc.RpcError) as err:
        list(resolve_dicts(replace(conn, token="wrong"), FLOWS, balancing=Balancing(stats=stats)))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert stats.batches_retried == 0


def test_the_cli_takes_a_list_of_replicas_and_reports_when_none_answers(replicas):
    from tests.attribution.test_cli import cli

    reps = replicas(2)
    env = {**__import__("os").environ, "ATTRIBUTION_TARGET": ",".join(r.target for r in reps)}
    r = cli(
        "resolve", stdin=b"".join(__import__("orjson").dumps(f) + b"\n" for f in FLOWS), env=env
    )
    assert r.returncode == 0, r.stderr
    assert [__import__("orjson").loads(line) for line in r.stdout.splitlines()] == expected(FLOWS)
    for rep in reps:
        rep.stop()
    # none answers: the client waits --ready-timeout for one, then names the error
    r = cli(
        "resolve",
        "--ready-timeout",
        "2",
        stdin=b'{"exporter":"127.0.1.1","src_addr":"10.1.0.1","dst_addr":"10.1.2.3"}\n',
        env=env,
    )
    assert r.returncode == 1 and b"UNAVAILABLE" in r.stderr, r.stderr


class FreezingProxy:
    """TCP forwarding to a replica that can freeze: connections stay open, nothing more
    passes either way, new ones are accepted and never answered. What a replica whose host
    hangs or vanishes looks like from the client (no RST, no FIN)."""

    def __init__(self, backend: str, address: str = "127.0.0.9") -> None:
        host, _, port = backend.rpartition(":")
        self.backend = (host, int(port))
        self.frozen = threading.Event()
        self.closed = threading.Event()
        self.listener = socket.create_server((address, 0))
        self.target = f"{address}:{self.listener.getsockname()[1]}"
        self.sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.sockets.append(client)
            if self.frozen.is_set():
                continue  # accepted, never answered
            upstream = socket.create_connection(self.backend)
            self.sockets.append(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while not self.closed.is_set():
                data = src.recv(65536)
                if not data:
                    break
                if self.frozen.is_set():
                    self.closed.wait()  # hold the connection open, pass nothing
                    return
                dst.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self.closed.set()
        for s in self.sockets:
            s.close()


def test_a_replica_frozen_mid_stream_is_found_by_keepalive_and_its_batches_go_elsewhere(
    replicas,
):
    """A replica that stops answering without closing its connection (a hung host, a
    partition) held its stream forever: nothing told the client it was gone (failed
    before the keepalive: the run never ended)."""
    frozen_rep, other = replicas(2)
    proxy = FreezingProxy(frozen_rep.target)
    other.set_serving(False)  # so the first batches go to the one that freezes

    def freeze(n: int) -> None:
        if n == 2:  # its second batch arrives: from now on nothing gets through
            proxy.frozen.set()
            other.set_serving(True)

    frozen_rep.on_batch = freeze
    flows = [dict(f, in_if=i) for i in range(100) for f in FLOWS[:3]]
    stats = FailoverStats()
    bal = Balancing(streams=2, max_in_flight=4, keepalive=6.0, stats=stats)
    try:
        got = list(resolve_dicts(f"{proxy.target},{other.target}", flows, 3, balancing=bal))
    finally:
        proxy.close()
    assert proxy.frozen.is_set()
    assert got == expected(flows)
    assert stats.streams_failed >= 1 and stats.batches_retried >= 1
    assert stats.duplicates_dropped == 0


def test_reload_with_a_list_reaches_every_replica_and_fails_if_one_refuses(replicas, capsys):
    from attribution.cli import main

    group = replicas(3)
    calls: list[int] = []

    def reloader(n: int, ok: bool = True):
        def reload() -> ReloadResult:
            calls.append(n)
            return ReloadResult(ok=ok, overrides=n, error="" if ok else "bad [[overrides]] 3")

        return reload

    for n, r in enumerate(group):
        r.reload = reloader(n)
    targets = ",".join(r.target for r in group)
    assert main(["reload", "--target", targets]) == 0
    assert sorted(calls) == [0, 1, 2]
    out = capsys.readouterr().out
    assert all(f"{r.target}: reloaded: {n} overrides in force" in out for n, r in enumerate(group))

    calls.clear()
    group[1].reload = reloader(1, ok=False)
    group[2].stop()  # one down: the others are still reloaded, and the status says so
    assert main(["reload", "--target", targets]) == 1
    assert sorted(calls) == [0, 1]
    err = capsys.readouterr().err
    assert f"{group[1].target}: reload refused, the running config is kept: bad" in err
    assert f"{group[2].target}: not reloaded: UNAVAILABLE" in err
    assert "2 of 3 replicas not reloaded" in err


def test_every_replica_of_a_dns_name_or_list_gets_its_own_connection_checked_against_one_name():
    from attribution.client import replica_connections

    by_dns = replica_connections(Connection("dns:///localhost:50051", token="t"))
    assert "127.0.0.1:50051" in [c.target for c in by_dns]
    assert all(c.token == "t" and not c.tls for c in by_dns)
    listed = replica_connections(Connection("localhost:1,127.0.0.3:2", ca="ca.pem"))
    assert [(c.target, c.server_name, c.tls) for c in listed][-1] == (
        "127.0.0.3:2",
        "localhost",
        True,
    )
    assert replica_connections(Connection("127.0.0.2:9")) == [Connection("127.0.0.2:9")]
    sockets = replica_connections(Connection("unix:/run/a.sock,/run/b.sock"))
    assert [c.target for c in sockets] == ["unix:/run/a.sock", "unix:/run/b.sock"]
