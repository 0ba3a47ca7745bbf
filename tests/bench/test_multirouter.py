"""bench.multirouter measures the RIB as a running service holds it, not mid-merge.

Before ``settle``, the benchmark ran ``maintenance()`` until it returned False
and measured: the stores' merge waits for a second of quiet wall time, so
router 1's whole table was still in the pytricia delta, and the views' build
(which merges first) then freed more than the views took (negative view bytes).
"""

from __future__ import annotations

from bench.multirouter_child import settle
from bench.realistic import V4, V6, model_from_lines, router_lines
from bench.synth import generate
from ribd.parser import ExabgpParser
from ribd.rib import Rib


def test_settle_leaves_every_prefix_merged_and_no_change_log() -> None:
    lines, _ = generate(v4=3000, v6=700, seed=3)
    model = model_from_lines("tiny", lines)
    rib = Rib()
    parse = ExabgpParser(rib.interner).parse
    for k in (1, 2):
        for line in router_lines(model, k)[0]:
            rib.apply_many(parse(line))
    assert any(t.store.has_delta() for t in rib.tables.values())  # a fresh load is unmerged
    settle(rib)
    for family, want in ((V4, 3000), (V6, 700)):
        table = rib.tables[family]
        assert not table.store.has_delta()
        assert table.changes == []
        assert len(table.store) == want
    assert sum(fs.prefixes for r in rib.routers.values() for fs in r.families.values()) == 7400
