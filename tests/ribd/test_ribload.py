"""``ribd._ribload`` against its Python reference ``ribd.ribload``: the same
results and the same writes into the delta and the change log."""

from __future__ import annotations

import random
import shutil
import sysconfig

import pytest

from ribd import ribload
from ribd.textdelta import Delta

pytestmark = pytest.mark.skipif(not ribload.COMPILED, reason="ribd._ribload is not built here")


def test_built_where_a_c_compiler_is() -> None:
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    assert shutil.which(cc) is None or ribload.COMPILED


def random_case(rng: random.Random) -> tuple[Delta, tuple[str, ...]]:
    names = [f"10.{rng.randrange(4)}.{rng.randrange(6)}.0/24" for _ in range(12)]
    delta = Delta()
    for name in rng.sample(names, rng.randrange(len(names))):
        delta[name] = rng.choice([("a",), ("b",), None, 0])
    # new str objects, as the decoder makes them (equal texts, other objects)
    prefixes = tuple("".join(rng.choice(names)) for _ in range(rng.randrange(9)))
    return delta, prefixes


def copy(delta: Delta) -> Delta:
    out = Delta()
    out.update(delta)
    return out


def test_the_compiled_loops_do_what_the_python_ones_do() -> None:
    rng = random.Random(5)
    for _ in range(3000):
        delta, prefixes = random_case(rng)
        for form in (tuple, list):
            p = form(prefixes)
            assert ribload.probe(delta, p) == ribload.PY_PROBE(delta, p)
            entry = ("new",)
            d1, d2, c1, c2 = copy(delta), copy(delta), ["x"], ["x"]
            assert ribload.insert_new(d1, p, entry, c1) == ribload.PY_INSERT_NEW(d2, p, entry, c2)
            assert list(d1.items()) == list(d2.items()) and c1 == c2
            held = [delta.get(x) for x in p]
            assert ribload.one_entry(held, p) == ribload.PY_ONE_ENTRY(held, p)
            same = [("e",)] * len(p)
            assert ribload.one_entry(same, p) == ribload.PY_ONE_ENTRY(same, p)
    # one object throughout, not merely equal ones
    a, b = tuple(["e"]), tuple(["e"])
    assert ribload.one_entry([a, a], ("x", "y")) and not ribload.one_entry([a, b], ("x", "y"))
    assert not ribload.one_entry([a, a], ("x", "".join(["x"])))  # a prefix twice
    assert not ribload.one_entry([], ())


def test_a_delta_counts_the_prefix_lengths_it_gained() -> None:
    """Writes through the compiled loop keep Delta's lazy length count right."""
    delta = Delta()
    ribload.insert_new(delta, ("10.0.0.0/8", "10.1.0.0/16"), 1, [])
    assert delta.lengths() == [16, 8]
    ribload.insert_new(delta, ("10.1.2.0/24",), 1, [])
    assert delta.lengths() == [24, 16, 8]


def test_entry_of_builds_the_same_entry_untracked_only_for_path_attributes() -> None:
    """The compiled ``entry_of`` gives the reference's tuple; it is left out of the
    cyclic GC only when it holds a PathAttributes (gc=False: no cycle through it)."""
    import gc

    from ribd.attributes import AS_SEQUENCE, make_attributes

    attrs = make_attributes(((AS_SEQUENCE, (3356, 64500)),), next_hop="192.0.2.1")
    assert not gc.is_tracked(attrs)
    for slot in range(6):
        for value in (attrs, ["a list"], ("t",), None, 7):
            got, want = ribload.entry_of(slot, value), ribload.PY_ENTRY_OF(slot, value)
            assert got == want and type(got) is tuple and got[slot] is value
            assert gc.is_tracked(got) == (value is not attrs)
