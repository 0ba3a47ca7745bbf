"""`attribution enrich`'s CSV assembled in C (attribution.enrich_csv) against
pyarrow.csv's, the reference: the same bytes for every batch, on every
fixture, the hostile lines of the reader's tests, and hostile values in every
text column (commas, quotes, newlines, unicode, empty) and numbers at their
limits; bad indexes in a reply raise, never read outside a table.
"""

from __future__ import annotations

import io
import json
import random
from array import array

import numpy as np
import pytest

import attribution.enrich_csv as ec
from attribution.answers import FLAG_NAMES, RECORD_DTYPE
from attribution.enrich import resolve_batches
from attribution.enrich_wire import AnswerBatch, RouteDictionary
from attribution.enrich_writers import CSV_ANSWER_COLUMNS, CsvWriter, _cell
from attribution.v1 import attribution_pb2 as pb
from tests.attribution.served import Server
from tests.attribution.test_enrich_columns import GOFLOW2, NFDUMP, PMACCT
from tests.attribution.test_enrich_store_columns import DATA, _batches, _clean, _inputs

pytest.importorskip("pyarrow")
needs_compiled = pytest.mark.skipif(ec.CSV_COMPILED is None, reason="compiled modules not built")

HOSTILE_TEXT = [
    "",
    ",",
    "a,b",
    '"',
    'x"y',
    '""',
    '"a,b"',
    "l\nm",
    "\r\n",
    "tab\there",
    "é",
    "日本語",
    "emoji \U0001f600",
    " ",
    "\\",
    "null",
    "true",
    "0",
    "x" * 3000,
    '"' * 50,
]


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.stop()


def _both(batch, answers) -> tuple[bytes, bytes, bool]:
    """(the writer's bytes, pyarrow.csv's bytes, whether the assembler took it)."""
    taken = ec.csv_lines(batch, answers, CSV_ANSWER_COLUMNS, _cell) is not None
    got, ref = io.BytesIO(), io.BytesIO()
    CsvWriter(got).write(batch, answers)
    CsvWriter(ref, compiled=False).write(batch, answers)
    return got.getvalue(), ref.getvalue(), taken


@needs_compiled
@pytest.mark.parametrize(("size", "whole"), [(1, True), (64, True), (4096, True), (64, False)])
@pytest.mark.parametrize("seed", [1, 2])
def test_assembled_csv_is_pyarrows_byte_for_byte(server, seed, size, whole):
    taken = checked = 0
    batches = _batches(_inputs(seed), size, whole=whole)
    for batch, answers in resolve_batches(server.target, iter(batches)):
        got, ref, took = _both(batch, answers)
        assert got == ref
        taken += len(batch) if took else 0
        checked += len(batch)
    assert checked > 1500
    # it ran (batches taken whole; at 4,096 each holds a hostile line: none is)
    assert taken > {1: 1000, 64: 200, 4096: -1}[size]


@needs_compiled
@pytest.mark.parametrize("path", sorted(DATA.glob("*")), ids=lambda p: p.name)
def test_every_fixture_gives_pyarrows_bytes(server, path):
    lines = path.read_bytes().splitlines()
    for size in (1, 3, 4096):
        for batch, answers in resolve_batches(server.target, iter(_batches(lines, size))):
            got, ref, _ = _both(batch, answers)
            assert got == ref


def _hostile_flows(seed: int, n: int) -> list[bytes]:
    """Records of the three formats with hostile values in every text field
    the CSV shows (exporters, addresses, MACs, next hops, times) and numbers
    at their limits; many are bad records, whose errors name them."""
    rng = random.Random(seed)
    numbers = [0, 1, -1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, -(2**63), 10**18]
    out = []
    for _ in range(n):
        kind = rng.choice((GOFLOW2, PMACCT, NFDUMP))
        rec = dict(kind)
        for key in list(rec):
            roll = rng.random()
            if roll < 0.12:
                rec[key] = rng.choice(HOSTILE_TEXT)
            elif roll < 0.2 and isinstance(rec[key], int):
                rec[key] = rng.choice(numbers)
        if rng.random() < 0.3:  # good addresses, so that most records are answered
            rec.update({"src_addr": "10.0.0.1", "ip_src": "10.0.0.1", "src4_addr": "10.0.0.1"})
        out.append(json.dumps(rec, ensure_ascii=rng.random() < 0.5).encode())
    # the text the compiled reader takes as it is: times of pmacct and nfdump
    for value in [*HOSTILE_TEXT, *numbers, 1.5e300, -0.0, None]:
        for kind, key in ((PMACCT, "timestamp_end"), (NFDUMP, "last"), (NFDUMP, "first")):
            out.append(json.dumps({**kind, key: value}).encode())
    return out


@needs_compiled
@pytest.mark.parametrize("seed", [3, 4])
def test_hostile_flow_values_give_pyarrows_bytes(server, seed):
    lines = _hostile_flows(seed, 1500) + _clean(300, seed)
    random.Random(seed).shuffle(lines)
    taken = 0
    for size in (1, 50, 4096):
        for batch, answers in resolve_batches(server.target, iter(_batches(lines, size))):
            got, ref, took = _both(batch, answers)
            assert got == ref
            taken += took
    assert taken > 10


def _route(rng: random.Random) -> pb.Route:
    r = pb.Route(prefix=rng.choice([*HOSTILE_TEXT, "10.0.0.0/24", "2001:db8::/32"]))
    for _ in range(rng.randrange(4)):
        seg = r.as_path.add()
        seg.type = rng.choice(
            [pb.AsPathSegment.AS_SEQUENCE, pb.AsPathSegment.AS_SET, pb.AsPathSegment.AS_CONFED_SET]
        )
        seg.asns.extend(rng.choice([0, 1, 65001, 2**32 - 1]) for _ in range(rng.randrange(1, 4)))
    return r


def _hostile_answers(rng: random.Random, n: int, routes: RouteDictionary) -> AnswerBatch:
    """Answers as no test server gives: hostile router and override names,
    error messages and route prefixes, AS numbers at their limits, every
    flag combination."""
    routers = rng.sample(HOSTILE_TEXT, 6)
    overrides = rng.sample(HOSTILE_TEXT, 4)
    rec = np.zeros(n, dtype=RECORD_DTYPE)
    for name in ("src_origin_as", "src_peer_as", "dst_origin_as", "dst_peer_as"):
        rec[name] = [rng.choice([0, 1, 65000, 2**31, 2**32 - 1]) for _ in range(n)]
    rec["router"] = [rng.randrange(-1, len(routers)) for _ in range(n)]
    rec["override"] = [rng.randrange(-1, len(overrides)) for _ in range(n)]
    rec["flags"] = [rng.randrange(2 ** len(FLAG_NAMES)) for _ in range(n)]
    rec["provenance"] = [[rng.randrange(256) for _ in range(4)] for _ in range(n)]
    rec["src_route"] = [rng.randrange(-1, len(routes)) for _ in range(n)]
    rec["dst_route"] = [rng.randrange(-1, len(routes)) for _ in range(n)]
    errors = {
        i: (rng.choice(HOSTILE_TEXT), rng.choice(HOSTILE_TEXT))
        for i in rng.sample(range(n), n // 5)
    }
    for i in errors:
        rec[i] = np.zeros(1, dtype=RECORD_DTYPE)[0]
        rec[i]["router"] = rec[i]["override"] = rec[i]["src_route"] = rec[i]["dst_route"] = -1
    return AnswerBatch(rec, errors, routers, overrides, routes)


@needs_compiled
@pytest.mark.parametrize("seed", [5, 6, 7])
def test_hostile_answer_values_give_pyarrows_bytes(server, seed):
    rng = random.Random(seed)
    lines = _clean(600, seed)
    routes = RouteDictionary()
    routes.routes.extend(_route(rng) for _ in range(40))
    taken = 0
    for batch, _ in resolve_batches(server.target, iter(_batches(lines, 97))):
        answers = _hostile_answers(rng, len(batch), routes)
        got, ref, took = _both(batch, answers)
        assert got == ref
        taken += took
    assert taken > 3


@needs_compiled
def test_bad_indexes_in_a_reply_raise(server):
    lines = _clean(200, 8)
    batch, answers = next(
        (b, a)
        for b, a in resolve_batches(server.target, iter(_batches(lines, 64)))
        if ec.csv_lines(b, a, CSV_ANSWER_COLUMNS, _cell) is not None
    )
    for field, value in (
        ("router", len(answers.routers)),
        ("src_route", len(answers.routes) + 5),
        ("dst_route", 2**31 - 1),
        ("override", len(answers.overrides) + 1),
    ):
        rec = answers.records.copy()
        rec[field][3] = value
        bad = AnswerBatch(rec, {}, answers.routers, answers.overrides, answers.routes)
        with pytest.raises(IndexError):
            ec.csv_lines(batch, bad, CSV_ANSWER_COLUMNS, _cell)


@needs_compiled
def test_bad_column_buffers_raise():
    """The assembler's own checks: buffers too short, offsets outside their
    data, pieces not bytes."""
    n = 2
    text = (None, np.array([0, 1, 2], np.int32).tobytes(), b"ab", 0)
    flows = {
        "n": n,
        "format": bytes(n),
        "exporter_index": bytes(4 * n),
        "src_addr": text,
        "dst_addr": text,
        "src_mac": text,
        "next_hop": text,
        "in_if": bytes(4 * n),
        "out_if": bytes(4 * n),
        "bytes": bytes(8 * n),
        "packets": bytes(8 * n),
        "sampling_rate": bytes(8 * n),
    }
    rec = np.zeros(n, dtype=RECORD_DTYPE)
    for k in ("router", "src_route", "dst_route", "override"):
        rec[k] = -1
    route_text = bytearray(b'""' + b'"p""1"')  # row 0: no prefix, path ""; row 1: "p", "1"
    route_offsets = array("q", [0, 0, 2, 5, 8])
    prov = [b'"none"'] * 256

    def call(
        flows=flows,
        time=text,
        formats=(b'"goflow2"',),
        exporters=(b'"e"',),
        heads=(b"",),
        offsets=route_offsets,
    ):
        return ec.CSV_COMPILED.csv_lines(
            flows,
            time,
            list(formats),
            list(exporters),
            rec.view(np.uint8),
            list(heads),
            route_text,
            offsets,
            prov,
            lambda o, f: b"x\n",
            {},
        )

    answer = b",,0,0,0,0," + b'"none",' * 4 + b',,"","",x' + b"\n"
    assert bytes(call()) == (
        b'"goflow2","a","e","a","a",0,0,"a","a",0,0,0' + answer
        + b'"goflow2","b","e","b","b",0,0,"b","b",0,0,0' + answer
    )  # fmt: skip
    # a null, then text with quotes and a newline; numbers at their limits
    hostile = (b"\x02", np.array([0, 0, 6], np.int32).tobytes(), b'a"b' + b'\n""', 1)
    numbers = np.array([-(2**63), 2**63 - 1], np.int64).tobytes()
    interfaces = np.array([0, 2**32 - 1], np.uint32).tobytes()
    got = call({**flows, "bytes": numbers, "in_if": interfaces}, hostile)
    assert bytes(got) == (
        b'"goflow2",,"e","a","a",0,0,"a","a",-9223372036854775808,0,0' + answer
        + b'"goflow2","a""b' + b'\n' + b'""""","e","b","b",4294967295,0,"b","b",'
        + b"9223372036854775807,0,0" + answer
    )  # fmt: skip
    outside = (None, np.array([0, 1, 9], np.int32).tobytes(), b"ab", 0)
    backwards = (None, np.array([0, 2, 1], np.int32).tobytes(), b"ab", 0)
    for col in (outside, backwards):
        with pytest.raises(ValueError, match="outside its column"):
            call(time=col)
    with pytest.raises(ValueError):
        call(time=(None, bytes(8), b"ab", 0))  # offsets for one value, not two
    with pytest.raises(ValueError):
        call(flows={**flows, "bytes": bytes(8)})
    with pytest.raises(TypeError):
        call(formats=("goflow2",))
    with pytest.raises(IndexError):
        call(exporters=())
    with pytest.raises(IndexError):
        call(formats=())
    # the route table: row 1's pieces for route 0, checked offsets
    rec["src_route"][1] = 0
    routed = b",,0,0,0,0," + b'"none",' * 4 + b'"p",,"1","",x' + b"\n"
    assert bytes(call()) == (
        b'"goflow2","a","e","a","a",0,0,"a","a",0,0,0' + answer
        + b'"goflow2","b","e","b","b",0,0,"b","b",0,0,0' + routed
    )  # fmt: skip
    for offsets in (array("q", [0, 0, 2, 5, 9]), array("q", [0, 0, 2, 1, 8])):
        with pytest.raises(ValueError, match="outside the route text"):
            call(offsets=offsets)
    with pytest.raises(ValueError, match="two a row"):
        call(offsets=array("q", [0, 0, 2, 5]))
    with pytest.raises(IndexError):
        call(offsets=array("q", [0, 0, 2]))  # route 0 not in a one-row table
    rec["src_route"][1] = -1


def test_seconds_repr_is_reprs_or_leaves_it_to_dtoa():
    """goflow2's times in CSV (its row's ``str(end / 1e9)``): the compiled
    repr, where it gives one, is Python's, over times of every kind."""
    seconds_repr = pytest.importorskip("attribution._enrich_columns").seconds_repr
    rng = random.Random(11)
    ends = [2**30 * 10**9, 2**33 * 10**9 - 1, 2**31 * 10**9, 1700000000 * 10**9]
    ends += [rng.randrange(2**30 * 10**9, 2**33 * 10**9) for _ in range(300_000)]
    ends += [rng.randrange(1, 10**19) for _ in range(20_000)]
    ends += [
        (1_700_000_000 + rng.randrange(10**6)) * 10**9
        + rng.choice([0, 1, 100, 123_000, 500_000_000, 999_999_999])
        for _ in range(50_000)
    ]
    done = left = 0
    for end in ends:
        x = end / 1e9
        got = seconds_repr(x)
        if got is not None:
            assert got == repr(x), end
            done += 1
        elif 2**30 <= x < 2**33:
            left += 1  # ties and powers of two: dtoa's
    assert seconds_repr(2.0**30) is None  # a power of two: dtoa's
    assert seconds_repr(1e9) is None and seconds_repr(-1700000000.5) is None
    assert done > 340_000 and left < 100
