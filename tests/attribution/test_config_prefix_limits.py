"""[bgp] and [[routers]] max_prefixes_ipv4 / _ipv6 (ribd.prefix_limit): validated
at load, a router's own over [bgp]'s, applied by a reload without a restart."""

from __future__ import annotations

import pytest

from attribution.config import ConfigError, parse_config
from attribution.reload_changes import describe_changes, restart_needed
from ribd.prefix_limit import prefix_limits

BASE = """
[service]
local_as = 64500
router_id = "127.0.0.1"

[bgp]
{bgp}

[[routers]]
name = "edge1"
neighbor = "127.0.1.1"
{edge1}
"""


def config(bgp: str = "", edge1: str = ""):
    return parse_config(BASE.format(bgp=bgp, edge1=edge1), "/etc/attribution.toml")


def test_the_defaults_are_four_million_ipv4_and_one_million_ipv6() -> None:
    c = config()
    assert (c.bgp.max_prefixes_ipv4, c.bgp.max_prefixes_ipv6) == (4_000_000, 1_000_000)
    limits = prefix_limits(c.bgp)
    assert limits.of("127.0.1.1", "ipv4 unicast") == 4_000_000
    assert limits.of("127.0.1.1", "ipv6 unicast") == 1_000_000


def test_a_router_s_own_limit_overrides_bgp_s_for_its_family_only() -> None:
    c = config("max_prefixes_ipv4 = 0", "max_prefixes_ipv6 = 5")
    limits = prefix_limits(c.bgp)
    assert limits.of("127.0.1.1", "ipv4 unicast") == 0  # [bgp]'s: no limit
    assert limits.of("127.0.1.1", "ipv6 unicast") == 5
    assert limits.of("127.0.9.9", "ipv6 unicast") == 1_000_000  # a router not configured


@pytest.mark.parametrize(
    ("bgp", "edge1", "message"),
    [
        (
            "max_prefixes_ipv4 = -1",
            "",
            "bgp.max_prefixes_ipv4: must be between 0 (no limit) and 100,000,000",
        ),
        ("max_prefixes_ipv6 = 100000001", "", "bgp.max_prefixes_ipv6: must be between 0"),
        ('max_prefixes_ipv4 = "1M"', "", "bgp.max_prefixes_ipv4: must be an integer, not str"),
        (
            "",
            "max_prefixes_ipv4 = 1.5",
            "routers[0].max_prefixes_ipv4: must be an integer, not float",
        ),
        ("", "max_prefixes_ipv6 = -3", "routers[0].max_prefixes_ipv6: must be between 0"),
        ("", "max_prefixes = 3", "routers[0].max_prefixes: unknown key (did you mean"),
    ],
)
def test_a_bad_limit_is_refused_naming_its_key(bgp: str, edge1: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        config(bgp, edge1)
    assert message in str(err.value)


def test_changed_limits_need_no_restart_and_are_described() -> None:
    old, new = config(), config("max_prefixes_ipv6 = 7", "max_prefixes_ipv4 = 9")
    assert restart_needed(old, new) == []
    assert describe_changes(old, new) == [
        "max_prefixes_ipv4 of edge1 None -> 9",
        "[bgp] max_prefixes_ipv6 1000000 -> 7",
    ]
