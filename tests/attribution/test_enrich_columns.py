"""`attribution enrich`'s columnar paths agree with the generic ones they shortcut.

The reader decodes the usual record with msgspec straight into a row; the
generic path (orjson + the format's mapping in attribution.flowformats) is
the reference. The answers are encoded from packed columns; the reference is
convert.columns_to_answers on the same reply from a real server.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import msgspec
import orjson
import pytest

from attribution.client import StreamRoutes, channel, columns_request
from attribution.convert import columns_to_answers, error_answer
from attribution.enrich_records import ANSWER_FIELDS, Counters, parse_record, read_batches
from attribution.enrich_sources import _Splitter
from attribution.enrich_wire import AnswerBatch, RouteDictionary, pack_request
from attribution.v1 import attribution_pb2_grpc as pb_grpc
from tests.attribution.served import Server

DATA = Path(__file__).parent / "data" / "enrich"

GOFLOW2 = {
    "type": "IPFIX",
    "sampler_address": "127.0.1.1",
    "time_flow_end_ns": 1700000000000000000,
    "bytes": 1500,
    "packets": 1,
    "sampling_rate": 1000,
    "src_addr": "172.16.5.5",
    "dst_addr": "10.1.2.3",
    "in_if": 20,
    "out_if": 11,
    "src_mac": "02:00:00:00:00:0a",
    "next_hop": "192.0.2.1",
    "bgp_next_hop": "127.0.0.99",
}
PMACCT = {
    "event_type": "purge",
    "peer_ip_src": "127.0.1.1",
    "iface_in": 30,
    "iface_out": 11,
    "mac_src": "02:00:00:00:00:0b",
    "ip_src": "10.1.0.9",
    "ip_dst": "172.16.1.1",
    "peer_ip_dst": "127.0.0.99",
    "timestamp_end": "2023-11-14 22:14:20.000000",
    "packets": 3,
    "bytes": 4500,
    "as_src": 65001,
}
NFDUMP = {
    "type": "FLOW",
    "export_sysid": 1,
    "last": "2023-11-14T22:14:20.456",
    "in_packets": 2,
    "in_bytes": 300,
    "src6_addr": "2001:db8:1::1",
    "dst6_addr": "2001:db8::2",
    "input_snmp": 30,
    "output_snmp": 11,
    "in_src_mac": "02:00:00:00:00:0a",
    "bgp6_next_hop": "::",
    "ip6_router": "::1",
}
NATIVE = {
    "exporter": "127.0.1.1",
    "src_addr": "10.1.0.1",
    "dst_addr": "10.1.2.3",
    "in_if": 3,
    "next_hop": "127.0.0.99",
    "time": 1700000000,
}

ODD_VALUES = ["", None, "12", "x", -1, 1 << 40, 0, True, 1.5, [], {"a": [1]}, "AS65001", "::"]
ODD_VALUES += [(1 << 64) - 1, 1 << 64, -(1 << 63), -(1 << 63) - 1]  # orjson: floats beyond


def variants() -> list[bytes]:
    """Each sample record, then with each field dropped and set to each odd value,
    plus answer-named fields, non-ASCII text and deep nesting."""
    out = []
    for rec in (GOFLOW2, PMACCT, NFDUMP, NATIVE):
        out.append(json.dumps(rec).encode())
        for key in rec:
            out.append(json.dumps({k: v for k, v in rec.items() if k != key}).encode())
            for odd in ODD_VALUES:
                out.append(json.dumps({**rec, key: odd}).encode())
        for name in ("router", "error", "dst_origin_as", "fallback"):
            out.append(json.dumps({**rec, name: "from the input"}).encode())
        out.append(json.dumps({**rec, "note": "café"}, ensure_ascii=False).encode())
        out.append(json.dumps({**rec, "deep": [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]}).encode())
        out.append(json.dumps({**rec, "deeper": json.loads("[" * 40 + "]" * 40)}).encode())
        out.append(json.dumps({**rec, "src_mac": 0x0C0000000001}).encode())
        out.append(json.dumps({**rec, "src_mac": 1 << 50}).encode())
        out.append(json.dumps(rec).encode()[:-1] + b",}")  # nfdump's trailing separator
    for path in sorted(DATA.glob("*.jsonl")):
        out.extend(path.read_bytes().splitlines())
    return out


def one(line: bytes, fmt: str | None = None):
    counters = Counters()
    split = _Splitter("t")
    batches = list(read_batches(iter([split.feed(line + b"\n")]), fmt, counters, 10))
    rows = [(b.formats[0], orjson.loads(b.raw[0]), b.rows[0]) for b in batches if len(b)]
    return rows, counters.bad, counters.read, counters.formats


def reference(line: bytes, fmt: str | None = None):
    counters = Counters()
    text = line.strip()
    if text.endswith(b",}"):
        text = text[:-2] + b"}"
    got = parse_record(text, fmt, "t:1", counters)
    rows = [] if got is None else [(got[0], orjson.loads(got[1]), got[2])]
    return rows, counters.bad, counters.read, counters.formats


@pytest.mark.parametrize("fmt", [None, "goflow2", "pmacct", "nfdump", "native"])
def test_the_fast_reader_gives_the_rows_and_errors_of_the_generic_path(fmt):
    lines = variants()
    assert len(lines) > 400
    for line in lines:
        assert one(line, fmt) == reference(line, fmt), line


def test_answer_named_input_fields_are_dropped_so_the_answer_replaces_them():
    rows, _, _, _ = one(json.dumps({**GOFLOW2, "router": "mine", "keep": 1}).encode())
    assert "router" not in rows[0][1] and rows[0][1]["keep"] == 1


def test_packing_gives_the_columns_and_errors_of_the_client_librarys_packing():
    lines = [x for x in variants() if one(x)[0]]
    split = _Splitter("t")
    batch = next(
        read_batches(iter([split.feed(b"\n".join(lines) + b"\n")]), None, Counters(), 10**6)
    )
    request, bad, good = pack_request(batch, 0)
    assert bad and good
    expected = columns_request([batch.flow(i) for i in range(len(batch))], 0, packed=True)
    assert bad == expected[1]
    assert good == expected[2]
    expected[0].columns.in_if[:] = request.columns.in_if  # the client library leaves zeros out
    assert request.columns == expected[0].columns


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.stop()


def test_columnar_answers_equal_the_per_record_answers_of_the_same_reply(server):
    lines = [x for x in variants() if one(x)[0]]
    split = _Splitter("t")
    batches = list(
        read_batches(iter([split.feed(b"\n".join(lines) + b"\n")]), None, Counters(), 64)
    )
    with channel(server.target) as ch:
        stub = pb_grpc.AttributionStub(ch)
        packed = [pack_request(b, i) for i, b in enumerate(batches)]
        replies = list(stub.ResolveStream(iter([p[0] for p in packed]), timeout=60))
    routes, reference_routes = RouteDictionary(), StreamRoutes()
    seen = set()
    for batch, (_, bad, good), reply in zip(batches, packed, replies, strict=True):
        route_json = reference_routes.update(reply.columns)
        expected: list = [None] * len(batch)
        for i, (code, message) in bad.items():
            expected[i] = error_answer(code, message)
        resolved = columns_to_answers(reply.columns, reply.errors, route_json)
        for i, answer in zip(good, resolved, strict=True):
            expected[i] = answer
        routes = routes.update(reply.columns)
        answers = AnswerBatch.from_reply(len(batch), bad, good, reply, routes)
        assert answers.dicts() == expected
        for i, part in enumerate(answers.json_parts()):
            merged = orjson.loads(batch.raw[i][:-1] + part)
            assert {k: merged[k] for k in ANSWER_FIELDS} == expected[i]
            assert merged == {**batch.original(i), **expected[i]}
            seen.add(expected[i]["error_code"] or expected[i]["dst_origin_provenance"])
    assert {"bgp", "local", "bad_address", "bad_record"} <= seen


def mutations(seed: int, n: int) -> list[bytes]:
    """Records with bytes flipped, cut, doubled or spliced: what a broken pipe or a
    half-written file gives."""
    rng = random.Random(seed)
    base = variants()
    out = []
    for _ in range(n):
        line = bytearray(rng.choice(base))
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(5)
            i = rng.randrange(len(line) + 1)
            if op == 0 and line:
                line[min(i, len(line) - 1)] = rng.randrange(256)
            elif op == 1:
                del line[i:]
            elif op == 2:
                line[i:i] = rng.choice([b"{", b"}", b"[", b",", b'"', b"\\", b"null", b"1e999"])
            elif op == 3:
                line[i:i] = rng.choice(base)[: rng.randrange(40)]
            else:
                line = line.replace(b":", b":[", 1)
        out.append(bytes(line).replace(b"\n", b" "))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_mangled_records_are_counted_never_raised_and_the_good_ones_between_them_read(seed):
    good = [x for x in variants() if one(x)[0]]
    rng = random.Random(seed)
    lines, intact = [], 0
    for bad in mutations(seed, 1500):  # each mangled record followed by a good one
        lines += [bad, rng.choice(good)]
        intact += 1
    counters = Counters()
    split = _Splitter("fuzz")
    chunk = split.feed(b"\n".join(lines) + b"\n")
    batches = list(read_batches(iter([chunk]), None, counters, 256))
    rows = sum(len(b) for b in batches)
    assert rows >= intact and counters.bad  # no good record lost to a bad neighbour
    assert counters.read == rows + sum(counters.bad.values())
    for b in batches:
        _, bad, good_rows = pack_request(b, 0)
        assert sorted([*bad, *good_rows]) == list(range(len(b)))
        for i in range(len(b)):  # values unparsed: orjson refuses 1e999, which JSON allows
            keys = msgspec.json.decode(b.raw[i], type=dict[str, msgspec.Raw]).keys()
            assert keys.isdisjoint(ANSWER_FIELDS)


@pytest.mark.parametrize("fmt", [None, "goflow2", "pmacct", "nfdump", "native"])
def test_a_mixed_input_read_in_chunks_gives_each_lines_own_rows_and_errors(fmt):
    """Good and bad records of every format interleaved in one input, read in
    chunks as a file gives them: the reader's per-chunk shortcuts (the ASCII
    check, the struct guessed from the last record's format) change nothing:
    every line gives the rows, errors and counts it gives alone, in order."""
    lines = variants()
    random.Random(5).shuffle(lines)
    expected_rows: list = []
    expected_bad: dict[str, int] = {}
    expected_read = 0
    expected_formats: dict[str, int] = {}
    for line in lines:
        rows, bad, read, formats = reference(line, fmt)
        expected_rows += rows
        for reason, n in bad.items():
            expected_bad[reason] = expected_bad.get(reason, 0) + n
        expected_read += read
        for kind, n in formats.items():
            expected_formats[kind] = expected_formats.get(kind, 0) + n
    data = b"\n".join(lines) + b"\n"
    split = _Splitter("t")
    chunks = [split.feed(data[i : i + 4096]) for i in range(0, len(data), 4096)]
    counters = Counters()
    got = [
        (b.formats[i], orjson.loads(b.raw[i]), b.rows[i])
        for b in read_batches(iter([c for c in chunks if c]), fmt, counters, 50)
        for i in range(len(b))
    ]
    assert got == expected_rows
    assert counters.bad == expected_bad
    assert counters.read == expected_read
    assert counters.formats == expected_formats


def test_a_route_index_past_the_dictionary_raises_before_any_table_grows():
    """A reply naming route 2**31 - 1 of a dictionary of three: IndexError, not
    route tables grown to two billion rows first (16 GiB; it was so)."""
    import numpy as np

    from attribution.answers import RECORD_DTYPE
    from attribution.v1 import attribution_pb2 as pb

    cols = pb.AttributionColumns(routes=[pb.Route(prefix=f"10.0.{k}.0/24") for k in range(3)])
    routes = RouteDictionary().update(cols)
    routes.piece_table("src", 3)  # every route: fine
    for upto in (4, 2**24, 2**31):
        with pytest.raises(IndexError):
            routes.piece_table("src", upto)
    assert len(routes._tables["src"]) < 1000
    rec = np.zeros(2, dtype=RECORD_DTYPE)
    rec["router"] = rec["override"] = -1
    rec["src_route"] = [0, 2**31 - 1]
    rec["dst_route"] = [1, 2]
    answers = AnswerBatch(rec, {}, [], [], routes)
    with pytest.raises(IndexError):
        answers.json_lines([b'{"a":1}', b'{"a":2}'])
    assert len(routes._tables["dst"]) < 1000
