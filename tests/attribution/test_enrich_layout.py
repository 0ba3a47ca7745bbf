"""The compiled assemblers' view of the packed answers is RECORD_DTYPE's.

Both the JSON lines and the CSV assembler (attribution/_enrich_json.pyx,
_enrich_csv.pyx) read each answer record's router, AS numbers,
provenances, flags, routes and override at byte offsets. They share one
definition of those offsets and one reader (attribution/_enrich_out.pxi,
``RECORD_LAYOUT`` and ``_head``), checked against
:data:`attribution.answers.RECORD_DTYPE` by one function
(``enrich_wire.compiled_layout_ok``). A field moved, added or retyped in the
dtype fails the first test here (and sends the run to the numpy / pyarrow
paths, not to wrong answers).
"""

from __future__ import annotations

import numpy as np
import pytest

from attribution import enrich_csv, enrich_wire
from attribution.answers import RECORD_DTYPE
from attribution.enrich_wire import compiled_layout_ok

try:
    from attribution import _enrich_csv, _enrich_json
except ImportError:  # built without a C compiler
    _enrich_csv = _enrich_json = None

needs_compiled = pytest.mark.skipif(_enrich_json is None, reason="built without a C compiler")


@needs_compiled
def test_the_compiled_layout_is_record_dtypes_and_in_use():
    assert compiled_layout_ok(_enrich_json), (_enrich_json.RECORD_LAYOUT, RECORD_DTYPE)
    assert compiled_layout_ok(_enrich_csv)
    # one definition (the .pxi), compiled into both
    assert _enrich_json.RECORD_LAYOUT == _enrich_csv.RECORD_LAYOUT
    assert {name: at for name, at, _ in _enrich_json.RECORD_LAYOUT} == {
        name: RECORD_DTYPE.fields[name][1] for name in RECORD_DTYPE.names
    }
    assert enrich_wire.JSON_COMPILED is _enrich_json
    assert enrich_csv.CSV_COMPILED is _enrich_csv


def _dtype(fields: list[tuple]) -> np.dtype:
    return np.dtype(fields)


BASE = [
    ("router", "<i4"),
    ("src_origin_as", "<u4"),
    ("src_peer_as", "<u4"),
    ("dst_origin_as", "<u4"),
    ("dst_peer_as", "<u4"),
    ("provenance", "u1", (4,)),
    ("flags", "<u4"),
    ("src_route", "<i4"),
    ("dst_route", "<i4"),
    ("override", "<i4"),
]


@needs_compiled
@pytest.mark.parametrize(
    "changed",
    [
        [BASE[0], *BASE[1:6], BASE[7], BASE[6], *BASE[8:]],  # flags and src_route swapped
        [("router", "<u4"), *BASE[1:]],  # retyped
        [*BASE, ("dst_local_pref", "<u4")],  # a field added at the end
        [("router", "<i4"), ("pad", "<u4"), *BASE[1:]],  # every field after it moved
        [*BASE[:5], ("provenance", "u1", (8,)), *BASE[6:]],  # widened
    ],
)
def test_a_moved_or_changed_field_turns_the_compiled_assemblers_off(monkeypatch, changed):
    assert compiled_layout_ok(_enrich_json)
    monkeypatch.setattr(enrich_wire, "RECORD_DTYPE", _dtype(changed))
    assert not compiled_layout_ok(_enrich_json)
    assert not compiled_layout_ok(_enrich_csv)


def test_a_module_without_a_layout_is_not_used():
    assert not compiled_layout_ok(object())
