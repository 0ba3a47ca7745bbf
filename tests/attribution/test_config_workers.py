"""[bgp] workers, reread_wave and max_paths_per_prefix: validated at load, restart-only;
the prefix limits ([bgp] and [[routers]] max_prefixes_ipv4 / _ipv6): validated at load,
a router's own over [bgp]'s, applied by a reload."""

from __future__ import annotations

import os

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
local_address = "127.0.2.1"

[[routers]]
name = "edge2"
neighbor = "127.0.1.2"
{edge2}
"""


def config(bgp: str = "", edge2: str = 'local_address = "127.0.2.2"'):
    return parse_config(BASE.format(bgp=bgp, edge2=edge2), "/etc/attribution.toml")


def error_of(bgp: str) -> str:
    with pytest.raises(ConfigError) as err:
        config(bgp)
    return str(err.value)


def test_workers_default_to_one_and_take_a_number_or_auto() -> None:
    assert config().bgp.workers == 1
    assert config("workers = 3").bgp.workers == 3
    assert config('workers = "auto"').bgp.workers == len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "bgp.workers: 0: must be between 1 and 1024"),
        ("-2", "bgp.workers: -2: must be between 1 and 1024"),
        ("5000", "bgp.workers: 5000: must be between 1 and 1024"),
        ('"many"', "bgp.workers: must be an integer or \"auto\", not 'many'"),
        ("true", 'bgp.workers: must be an integer or "auto", not bool'),
        ("1.5", 'bgp.workers: must be an integer or "auto", not float'),
        ("[2]", 'bgp.workers: must be an integer or "auto", not list'),
    ],
)
def test_bad_workers_values_are_refused_with_the_line_and_why(value, message) -> None:
    error = error_of(f"workers = {value}")
    assert error.startswith("/etc/attribution.toml:7: ")
    assert message in error


def test_workers_with_an_external_exabgp_are_refused() -> None:
    error = error_of('exabgp = "external"\nworkers = 2')
    assert "bgp.workers: 2 workers need a supervised ExaBGP" in error
    assert config('exabgp = "external"\nworkers = 1').bgp.workers == 1


def test_routers_sharing_a_listen_address_are_warned_about_by_name() -> None:
    shared = config("workers = 2", edge2='local_address = "127.0.2.1"')
    [warning] = shared.warnings
    assert "only 1 ExaBGP worker(s) can run" in warning
    assert "edge1, edge2 wait on 127.0.2.1" in warning
    assert config("workers = 2").warnings == ()
    assert config("workers = 2", edge2="passive = false").warnings == ()


def test_a_change_of_workers_needs_a_restart_and_a_new_router_names_its_worker() -> None:
    running = config("workers = 2")
    assert restart_needed(running, config("workers = 3")) == ["[bgp] workers 2 -> 3"]
    assert restart_needed(running, config("workers = 2")) == []
    added = parse_config(
        BASE.format(bgp="workers = 2", edge2='local_address = "127.0.2.2"')
        + '\n[[routers]]\nname = "edge3"\nneighbor = "127.0.1.3"\nlocal_address = "127.0.2.3"\n'
    )
    assert restart_needed(running, added) == [
        "new router edge3 (no session yet; ExaBGP worker 1 will hold it)"
    ]


# -- [bgp] reread_wave ------------------------------------------------------------------


def test_reread_wave_defaults_to_the_tables_the_spool_holds_and_takes_a_number() -> None:
    from ribd.workers import reread_wave

    assert config().bgp.reread_wave == 0 and reread_wave(config().bgp) == 4  # 256 MiB
    assert reread_wave(config("relay_spool_bytes = 1048576").bgp) == 1
    assert reread_wave(config('reread_wave = "auto"\nrelay_spool_bytes = 1073741824').bgp) == 16
    assert reread_wave(config("reread_wave = 2").bgp) == 2
    assert config("reread_wave = 2").warnings == ()


@pytest.mark.parametrize(
    ("bgp", "message"),
    [
        ("reread_wave = 0", 'bgp.reread_wave: must be "auto" or between 1 and 10000'),
        ('reread_wave = "all"', "bgp.reread_wave: must be an integer, not str"),
        ("reread_wave = true", "bgp.reread_wave: must be an integer, not bool"),
    ],
)
def test_a_bad_reread_wave_is_refused_with_its_key(bgp: str, message: str) -> None:
    assert message in error_of(bgp)


def test_a_reread_wave_the_spool_cannot_hold_is_warned_about_and_needs_a_restart() -> None:
    (warning,) = config("reread_wave = 8").warnings
    assert "reread_wave = 8" in warning and "512 MiB" in warning and "256 MiB" in warning
    running = config()
    assert restart_needed(running, config("reread_wave = 2")) == ["[bgp] reread_wave 0 -> 2"]


# -- [bgp] max_paths_per_prefix (ADD-PATH paths a router's prefix keeps: ribd.addpath) ---


def test_max_paths_per_prefix_defaults_to_64_and_needs_a_restart_to_change() -> None:
    assert config().bgp.max_paths_per_prefix == 64
    assert config("max_paths_per_prefix = 1").bgp.max_paths_per_prefix == 1
    assert config("max_paths_per_prefix = 1024").bgp.max_paths_per_prefix == 1024
    assert restart_needed(config(), config("max_paths_per_prefix = 8")) == [
        "[bgp] max_paths_per_prefix 64 -> 8"
    ]


@pytest.mark.parametrize(
    ("bgp", "message"),
    [
        ("max_paths_per_prefix = 0", "bgp.max_paths_per_prefix: must be between 1 and 1024"),
        ("max_paths_per_prefix = 1025", "bgp.max_paths_per_prefix: must be between 1 and 1024"),
        ('max_paths_per_prefix = "64"', "bgp.max_paths_per_prefix: must be an integer, not str"),
        ("max_paths_per_prefix = 2.5", "bgp.max_paths_per_prefix: must be an integer, not float"),
    ],
)
def test_a_bad_max_paths_per_prefix_is_refused_with_its_key(bgp: str, message: str) -> None:
    assert message in error_of(bgp)


# -- [bgp] / [[routers]] max_prefixes_ipv4, _ipv6 (ribd.prefix_limit) ------------------


def test_the_prefix_limits_default_to_four_million_ipv4_and_one_million_ipv6() -> None:
    c = config()
    assert (c.bgp.max_prefixes_ipv4, c.bgp.max_prefixes_ipv6) == (4_000_000, 1_000_000)
    limits = prefix_limits(c.bgp)
    assert limits.of("127.0.1.2", "ipv4 unicast") == 4_000_000
    assert limits.of("127.0.1.2", "ipv6 unicast") == 1_000_000


def test_a_router_s_own_prefix_limit_overrides_bgp_s_for_its_family_only() -> None:
    limits = prefix_limits(config("max_prefixes_ipv4 = 0", "max_prefixes_ipv6 = 5").bgp)
    assert limits.of("127.0.1.2", "ipv4 unicast") == 0  # [bgp]'s: no limit
    assert limits.of("127.0.1.2", "ipv6 unicast") == 5
    assert limits.of("127.0.1.1", "ipv6 unicast") == 1_000_000  # edge1: [bgp]'s


@pytest.mark.parametrize(
    ("bgp", "edge2", "message"),
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
            "routers[1].max_prefixes_ipv4: must be an integer, not float",
        ),
        ("", "max_prefixes_ipv6 = -3", "routers[1].max_prefixes_ipv6: must be between 0"),
        ("", "max_prefixes = 3", "routers[1].max_prefixes: unknown key (did you mean"),
    ],
)
def test_a_bad_prefix_limit_is_refused_naming_its_key(bgp: str, edge2: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        config(bgp, edge2)
    assert message in str(err.value)


def test_changed_prefix_limits_need_no_restart_and_are_described() -> None:
    edge2 = 'local_address = "127.0.2.2"\nmax_prefixes_ipv4 = 9'
    old, new = config(), config("max_prefixes_ipv6 = 7", edge2)
    assert restart_needed(old, new) == []
    assert describe_changes(old, new) == [
        "max_prefixes_ipv4 of edge2 None -> 9",
        "[bgp] max_prefixes_ipv6 1000000 -> 7",
    ]
