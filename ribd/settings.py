"""Validated BGP-side settings, built by attribution.config from the TOML file.

Plain data: no parsing, no I/O. Everything here has already been checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_PATHS_PER_PREFIX = 64  # [bgp] max_paths_per_prefix's default (ribd.addpath)
# [bgp] max_prefixes_ipv4 / _ipv6's defaults (ribd.prefix_limit): about four times
# today's full table (~1.04 M IPv4, ~0.23 M IPv6 prefixes), so a real table and
# years of growth fit and a leak stops well before memory does.
MAX_PREFIXES_IPV4 = 4_000_000
MAX_PREFIXES_IPV6 = 1_000_000


@dataclass(frozen=True, slots=True)
class NeighborSettings:
    """One router we hold a BGP session with (usually iBGP, as an RR client)."""

    name: str
    address: str  # neighbor (peer) address, canonical text
    peer_as: int
    local_address: str = ""  # our side of the session; "" = the listen address
    router_id: str = ""  # the router's BGP identifier, if known
    add_path: bool = True  # ask for ADD-PATH receive
    passive: bool = True  # wait for the router to connect
    md5_password: str = ""
    stale_hold_time: float | None = None  # None: the global value
    hold_time: int = 180
    # The router's own prefix limits (ribd.prefix_limit); None: [bgp]'s.
    max_prefixes_ipv4: int | None = None
    max_prefixes_ipv6: int | None = None


@dataclass(frozen=True, slots=True)
class BgpSettings:
    local_as: int
    router_id: str
    listen_address: str = "127.0.0.1"
    listen_port: int = 179
    neighbors: tuple[NeighborSettings, ...] = ()
    # "supervised": we run ExaBGP; "external": the operator runs ExaBGP with
    # `ribd-feed --socket PATH` as its API process.
    exabgp_mode: str = "supervised"
    exabgp_command: tuple[str, ...] = ()  # default: the exabgp next to our Python
    feed_socket: str = ""  # Unix socket where relays deliver ExaBGP's lines
    stale_hold_time: float = 0.0  # session down: 0 = purge at once
    restart_hold_time: float = 300.0  # ExaBGP died: keep routes stale this long
    restart_backoff_initial: float = 1.0
    restart_backoff_max: float = 60.0
    work_dir: str = ""  # where the generated ExaBGP config and logs go
    # No End-of-RIB (peers without graceful restart): a family counts as
    # converged, marked inferred, after this long quiet (fewer than 500 prefix
    # changes a second: ribd.rib.QUIET_PREFIXES_PER_SECOND). 0: never.
    converge_quiet_time: float = 60.0
    relay_spool_bytes: int = 256 * 1024 * 1024  # the relay's in-memory spool cap
    # Routers of one worker re-read at once after a feed gap (ribd.reread_waves);
    # 0 ("auto"): as many full tables as the spool holds (ribd.workers.reread_wave).
    reread_wave: int = 0
    # ADD-PATH paths a router's prefix keeps, the best ones (ribd.addpath).
    max_paths_per_prefix: int = MAX_PATHS_PER_PREFIX
    # Prefixes a router's family may hold (ribd.prefix_limit); 0: no limit.
    max_prefixes_ipv4: int = MAX_PREFIXES_IPV4
    max_prefixes_ipv6: int = MAX_PREFIXES_IPV6
    # How the supervised ExaBGP reports UPDATEs: "raw" (packets API, decoded by
    # ribd.rawupdate; ExaBGP skips its own decode, ribd.exabgp_run) or "json"
    # (ExaBGP's parsed JSON). ribd.exabgp_config.API_MODES.
    api_mode: str = "raw"
    # ExaBGP processes the routers are sharded over ("auto" resolved at load);
    # ribd.workers plans them. 1: one ExaBGP, as before workers existed.
    workers: int = 1
    # In one worker's own settings (ribd.workers.worker_settings): its number
    # (1..N; 0: the only ExaBGP) and the addresses its ExaBGP listens on
    # (None: listen_address).
    worker: int = 0
    bind_addresses: tuple[str, ...] | None = None
    extra: dict[str, str] = field(default_factory=dict)
