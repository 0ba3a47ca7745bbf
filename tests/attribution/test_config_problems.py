"""One run of a broken config names every problem, in file order, not only the first.

Fixing a file with five mistakes took five runs (or five refused reloads), since
the check stopped at the first. Each key of [service] and [bgp], each router and
each override rule is now checked on its own; what a broken part would have set
keeps its default, so it causes no problem elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from attribution.config import ConfigError, parse_config
from attribution.config_file import MAX_PROBLEMS
from tests.attribution.helpers import external_service

PATH = "/etc/attribution.toml"
MINIMAL = '[service]\nlocal_as = 64500\nrouter_id = "192.0.2.1"\n'


def problems_of(text: str) -> list[str]:
    """The error's lines: a header, then one line per problem."""
    with pytest.raises(ConfigError) as err:
        parse_config(text, PATH)
    return str(err.value).splitlines()


def line_of(text: str, needle: str) -> int:
    return next(n for n, t in enumerate(text.splitlines(), 1) if t.startswith(needle))


BROKEN = """[service]
local_as = "x"
router_id = "192.0.2.1"
max_batch_flows = 0
colour = 1

[bgp]
listen_port = 70000
api_mode = "fast"

[[routers]]
name = "edge1"
neighbor = "nope"
exporters = ["127.0.1.1"]

[[routers]]
name = "edge2"
neighbor = "127.0.0.3"
exporters = ["127.0.1.1"]
fallback = ["edge1"]

[[overrides]]
exporter = "127.0.1.1"
in_if = "x"
peer_as = 65001

[[overrides]]
exporter = "127.0.1.1"
in_if = 3
peer_as = 650010000000
"""


def test_every_problem_of_every_section_is_named_in_file_order():
    got = problems_of(BROKEN)
    at = lambda needle: f"{PATH}:{line_of(BROKEN, needle)}"  # noqa: E731
    nope, x = 'neighbor = "nope"', 'in_if = "x"'
    assert got == [
        f"{PATH}: 8 problems:",
        f"{at('local_as')}: service.local_as: must be an integer, not str",
        f"{at('max_batch_flows')}: service.max_batch_flows: must be between 1 and 1000000",
        f"{at('colour')}: service.colour: unknown key",
        f"{at('listen_port')}: bgp.listen_port: 70000 is not a TCP port",
        f"{at('api_mode')}: bgp.api_mode: 'fast': expected raw or json",
        f"{at(nope)}: routers[0].neighbor: 'nope' is not an IP address",
        f"{at(x)}: overrides[0].in_if: must be an integer, not str",
        f"{at('peer_as = 650010000000')}: overrides[1].peer_as: 650010000000 is not a 32-bit "
        "AS number",
    ]


def test_a_broken_router_causes_no_problem_in_the_routers_that_refer_to_it():
    """edge1 is broken after its name: edge2 may still fall back to it by name, and
    edge1's exporter, never mapped, is free for edge2 (nothing said twice)."""
    got = problems_of(BROKEN)
    assert not [p for p in got if "routers[1]" in p]


def test_a_single_problem_is_said_as_before_without_a_header():
    text = MINIMAL + '[bgp]\napi_mode = "fast"\n'
    assert problems_of(text) == [f"{PATH}:5: bgp.api_mode: 'fast': expected raw or json"]


def test_a_missing_service_table_is_said_once_not_key_by_key():
    text = '[bgp]\nlisten_port = 0\n[[routers]]\nname = "a"\nneighbor = "127.0.0.1"\n'
    got = problems_of(text)
    assert got[0] == f"{PATH}: 2 problems:"
    assert got[1] == f"{PATH}: service: is required"
    assert got[2] == f"{PATH}:2: bgp.listen_port: 0 is not a TCP port"


def test_every_unknown_key_is_named():
    text = MINIMAL + "colour = 1\nsize = 2\n[bgp]\nlisten_prot = 1790\n"
    got = problems_of(text)
    assert got[0] == f"{PATH}: 3 problems:"
    assert got[1].endswith("service.colour: unknown key")
    assert got[2].endswith("service.size: unknown key")
    assert got[3].endswith("bgp.listen_prot: unknown key (did you mean 'listen_port'?)")


def test_past_the_limit_the_rest_are_counted_not_listed():
    rules = "".join(
        f'[[overrides]]\nexporter = "127.0.1.1"\nin_if = {i}\npeer_as = -{i + 1}\n'
        for i in range(MAX_PROBLEMS + 7)
    )
    got = problems_of(MINIMAL + rules)
    assert got[0] == f"{PATH}: {MAX_PROBLEMS + 7} problems:"
    assert len(got) == 1 + MAX_PROBLEMS + 1
    assert got[1].endswith("overrides[0].peer_as: -1 is not a 32-bit AS number")
    assert got[-1] == "... and 7 more"


def test_a_reload_with_several_problems_names_them_all_and_keeps_the_running_config(
    tmp_path: Path,
):
    service = external_service(tmp_path)
    config = Path(service.config_path)
    good = config.read_text()
    before = service.config
    config.write_text(
        good.replace("[service]\n", '[service]\nmax_batch_flows = 0\nlog_format = "xml"\n', 1)
    )
    result = service.reload()
    assert not result.ok
    assert result.error.splitlines()[0] == f"{config}: 2 problems:"
    assert "service.max_batch_flows: must be between 1 and 1000000" in result.error
    assert "service.log_format: 'xml': expected one of text, json" in result.error
    assert service.config is before


def test_each_ix_entry_is_checked_on_its_own():
    text = (
        MINIMAL
        + '[[routers]]\nname = "edge1"\nneighbor = "127.0.0.2"\nexporters = ["127.0.1.1"]\n'
        + '[[ix]]\nname = "ix-a"\nrouter = "edge1"\nin_if = [7]\nprefixes = ["10.99.0.0/24"]\n'
        + 'neighbors_file = "/x"\nrefresh_interval = 0\n'
        + '[[ix]]\nname = "ix-b"\nrouter = "edge9"\nin_if = [8]\nprefixes = ["10.98.0.0/24"]\n'
        + 'neighbors_file = "/y"\n'
    )
    got = problems_of(text)
    assert got[0] == f"{PATH}: 2 problems:"
    assert got[1].endswith("ix[0].refresh_interval: must be between 1 and 86400 seconds")
    assert got[2].endswith("ix[1].router: no router named 'edge9'")


def test_a_key_two_validators_read_is_named_once():
    """[report] falls back to [service] local_as and checks it too: one problem, not two
    wordings of it."""
    text = MINIMAL.replace("local_as = 64500", 'local_as = "x"') + '[report]\ncurrency = "EUR"\n'
    assert problems_of(text) == [f"{PATH}:2: service.local_as: must be an integer, not str"]


def test_report_problems_are_each_named_with_their_lines_among_the_rest():
    text = (
        MINIMAL.replace("local_as = 64500", "local_as = 64500\nmax_batch_flows = 0")
        + '[report]\ncurrency = "EURO-DOLLAR"\nbucket_seconds = 7\n'
        + '[[report.links]]\nname = "a"\nexporter = "127.0.1.1"\nif_index = -1\nkind = "transit"\n'
        + '[[report.links]]\nname = "b"\nexporter = "127.0.1.1"\nif_index = 2\nkind = "peering"\n'
    )
    got = problems_of(text)
    assert got[0] == f"{PATH}: 5 problems:"
    assert [g.split(": ", 2)[1] for g in got[1:]] == [
        "service.max_batch_flows",
        "report.currency",
        "report.bucket_seconds",
        "report.links[0].if_index",
        "report.links[1].kind",
    ]
    assert got[4].startswith(f"{PATH}:{line_of(text, 'if_index = -1')}: ")
    peering = 'kind = "peering"'
    assert got[5].startswith(f"{PATH}:{line_of(text, peering)}: ")


def keys_named(got: list[str]) -> list[str]:
    """The key path of each problem line (after the header)."""
    return [g.split(": ", 2)[1] for g in got[1:]]


def test_a_router_with_several_broken_keys_names_each_of_them():
    text = MINIMAL + (
        '[[routers]]\nname = "edge1"\nneighbor = "nope"\npeer_as = -1\n'
        'exporters = ["127.0.1.1", "x"]\nhold_time = 1\npassive = "yes"\n'
    )
    got = problems_of(text)
    assert got[0] == f"{PATH}: 5 problems:"
    assert keys_named(got) == [
        "routers[0].neighbor",
        "routers[0].peer_as",
        "routers[0].exporters",
        "routers[0].hold_time",
        "routers[0].passive",
    ]
    assert got[3].endswith("item 1: 'x' is not an IP address")


def test_an_override_rule_with_several_broken_keys_names_each_of_them():
    text = MINIMAL + (
        '[[overrides]]\nexporter = "127.0.1"\nin_if = 4294967296\nsrc_mac = "zz"\n'
        "peer_as = 65001\ndescription = 7\n"
    )
    got = problems_of(text)
    assert keys_named(got) == [
        "overrides[0].exporter",
        "overrides[0].in_if",
        "overrides[0].src_mac",
        "overrides[0].description",
    ]
    assert got[2].endswith("in_if: 4294967296 is not a 32-bit ifIndex")


def test_an_ix_entry_with_several_broken_keys_names_each_of_them():
    text = MINIMAL + (
        '[[routers]]\nname = "edge1"\nneighbor = "127.0.0.2"\nexporters = ["127.0.1.1"]\n'
        '[[ix]]\nname = "ix a"\nrouter = "edge9"\nin_if = []\nprefixes = ["10.0.0.0/4"]\n'
        'neighbors_format = "xml"\nneighbors_file = "/x"\n'
    )
    got = problems_of(text)
    assert keys_named(got) == [
        "ix[0].name",
        "ix[0].router",
        "ix[0].in_if",
        "ix[0].prefixes",
        "ix[0].neighbors_format",
    ]


def test_a_report_link_with_several_broken_keys_and_every_unknown_report_key_are_named():
    text = MINIMAL + (
        '[report]\ncolour = 1\nsize = 2\ncurrency = "EUR"\n'
        '[[report.links]]\nname = "a"\nexporter = "x"\nif_index = -1\nkind = "cable"\n'
        'billing = "min"\nprice_per_mbps = -3\n'
        "[report.peering]\npni_min_mbps = -1\nalready_peered = 7\n"
    )
    got = problems_of(text)
    assert keys_named(got) == [
        "report.colour",
        "report.size",
        "report.links[0].exporter",
        "report.links[0].if_index",
        "report.links[0].kind",
        "report.links[0].billing",
        "report.links[0].price_per_mbps",
        "report.peering.pni_min_mbps",
        "report.peering.already_peered",
    ]


def test_a_link_missing_required_keys_names_each_missing_key():
    text = MINIMAL + '[report]\n[[report.links]]\nname = "a"\n'
    assert keys_named(problems_of(text)) == [
        "report.links[0].exporter",
        "report.links[0].if_index",
        "report.links[0].kind",
    ]


def test_exporters_are_address_strings_listed_once_each():
    text = MINIMAL + '[[routers]]\nname = "edge1"\nneighbor = "127.0.0.2"\nexporters = [5]\n'
    assert problems_of(text) == [
        f"{PATH}:{line_of(text, 'exporters')}: routers[0].exporters: item 0: 5 is not an IP address"
    ]
    twice = text.replace("[5]", '["127.0.1.1", "127.0.1.1", "::ffff:7f00:1"]')
    (router,) = parse_config(twice, PATH).routers
    assert router.exporters == ("127.0.1.1", "::ffff:7f00:1")
