"""The Python reader's per-record paths of `attribution enrich` (no I/O).

:func:`parse_record` is the generic path, which alone decides what is wrong
with a record (orjson, the format's mapping, errors counted by reason with
``FILE:LINE``); :func:`row_of` makes the row of a record the compiled reader
took, as the msgspec path does; :func:`own_struct` picks a record's own
format's struct when the last record's could not decode it. Split from
attribution.enrich_records (the batching reader) so each module has one job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from attribution.enrich_decode import (
    ANSWER_SET,
    DECODERS,
    FAST,
    FAST_ERRORS,
    FLOW_FIELDS,
    fast_format,
)
from attribution.flowformats import MAPPINGS, detect, is_marker
from attribution.reports.records import RecordError
from ribd.checks import MAX_DEPTH, too_deep

if TYPE_CHECKING:
    from attribution.enrich_records import Counters


def row_of(kind: str, text: bytes) -> tuple:
    """The row of a record the compiled reader took: what the msgspec path
    gives, else the generic mapping (the compiled reader takes only records
    both map without error)."""
    try:
        row = FAST[kind](DECODERS[kind](text))
    except FAST_ERRORS:
        row = None
    if row is None:
        flow = MAPPINGS[kind](orjson.loads(text))
        row = tuple(flow.get(k) for k in FLOW_FIELDS)
    return row


def parse_record(
    text: bytes, fmt: str | None, where: str, counters: Counters
) -> tuple[str, bytes, tuple] | None:
    """One object's text -> (format, text without answer-named fields, row); None
    for a marker or a bad record (counted, with ``where`` and the reason)."""
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        counters.read += 1
        counters.add_bad("bad_json", where, f"not JSON ({exc})")
        return None
    if type(obj) is not dict:
        counters.read += 1
        counters.add_bad("bad_record", where, f"expected a JSON object, got {type(obj).__name__}")
        return None
    kind = fmt or detect(obj)
    if kind is not None and is_marker(kind, obj):
        return None
    if kind is None:
        counters.read += 1
        keys = ", ".join(list(obj)[:6])
        counters.add_bad("unknown_format", where, f"no known format has these fields: {keys}")
        return None
    counters.add_formats({kind: 1})
    if too_deep(obj):
        counters.add_bad("bad_record", where, f"nested deeper than {MAX_DEPTH}")
        return None
    try:
        flow = MAPPINGS[kind](obj)
    except RecordError as exc:
        counters.add_bad("bad_record", where, f"{kind}: {exc}")
        return None
    if not ANSWER_SET.isdisjoint(obj):
        text = orjson.dumps({k: v for k, v in obj.items() if k not in ANSWER_SET})
    row = tuple(flow.get(k) for k in FLOW_FIELDS)
    return kind, text, row


def own_struct(text: bytes, tried: str) -> tuple[Any, str | None]:
    """A record the last record's struct could not decode, with its own
    format's struct (found by decoding with the others): (struct, format),
    (None, None) if that fails too. So whether a record takes the fast path
    depends on it alone, not on the records before it (msgspec and orjson
    differ on a few numbers, such as 1e999)."""
    for kind, decode in DECODERS.items():
        if kind == tried:
            continue
        try:
            r = decode(text)
        except FAST_ERRORS:
            continue
        own = fast_format(r)
        if own is None or own == tried:
            return None, None
        if own == kind:
            return r, own
        try:
            return DECODERS[own](text), own
        except FAST_ERRORS:
            return None, None
    return None, None


def count_openers(text: bytes | None) -> int:
    return 0 if text is None else text.count(b"{") + text.count(b"[")


def where(source: str, number: int) -> str:
    return f"{'stdin' if source == '-' else source}:{number}"


__all__ = ["count_openers", "own_struct", "parse_record", "row_of", "where"]
