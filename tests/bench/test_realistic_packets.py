"""bench.realistic_packets: routers' tables as interleaved ``packets`` lines, through the
feed's own loop, make the RIB the same routers' JSON lines make through the parser.

The in-process drivers (``bench.ingest_instr``, ``bench.refresh_feed``) read these files;
a file that lost a router's End-of-RIB, or packed another router's routes, would make
their figures those of another load.
"""

from __future__ import annotations

from bench import bgpsend, realistic, synth
from bench.ingest import new_rib
from bench.ingest_instr import feed_lines
from bench.realistic_packets import interleaved_lines
from ribd.parser import ExabgpParser
from ribd.rib import Rib
from tests.bench.test_bgpsend import V4, V6, view

ROUTERS = 3


def test_interleaved_packets_lines_load_the_routers_json_tables_exactly() -> None:
    lines, _ = synth.generate(v4=1500, v6=400, seed=11)
    model = realistic.model_from_lines("small", lines)
    tables = bgpsend.realistic_tables(model, ROUTERS)
    assert tables.families == (V4, V6)

    expected = Rib()
    parser = ExabgpParser()
    for k in range(1, ROUTERS + 1):
        for line in realistic.router_lines(model, k)[0]:
            expected.apply_many(parser.parse(line))

    packets = interleaved_lines(tables.per_router, tables.families)
    # Router 1's UPDATEs are not all before router 2's: the routers come up together.
    peers = [realistic.neighbor(k).encode() for k in range(1, ROUTERS + 1)]
    order = [next(i for i, p in enumerate(peers) if p in line) for line in packets]
    assert order[: 2 * ROUTERS] == sorted(order[: 2 * ROUTERS])  # the OPENs first
    assert order[2 * ROUTERS : 2 * ROUTERS + ROUTERS] == list(range(ROUTERS))

    rib, _ = new_rib()
    feed_lines(rib, packets, True)
    for k in range(1, ROUTERS + 1):
        neighbor = realistic.neighbor(k)
        r = rib.routers[neighbor]
        assert all(r.families[f].converged for f in (V4, V6)), f"router {k} End-of-RIB"
        got, want = view(rib, neighbor), view(expected, neighbor)
        assert len(want[V4]) > 1000 and len(want[V6]) > 300
        assert got == want, f"router {k}"
