"""A route a test speaker announces, and its ExaBGP ``route ...`` text. No I/O.

Split out of ``ribd.speaker`` (which re-exports ``Route``): the value type and
its rendering are what tests and demos build tables from, apart from the
process that announces them.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Sequence

CommunityLike = str | Sequence[int]


def _community_text(value: CommunityLike, parts: int) -> str:
    items = value.split(":") if isinstance(value, str) else [str(v) for v in value]
    if len(items) != parts or not all(i.isdigit() for i in items):
        raise ValueError(f"bad {'large ' if parts == 3 else ''}community {value!r}")
    return ":".join(str(int(i)) for i in items)


@dataclasses.dataclass(frozen=True, slots=True)
class Route:
    """One route to announce.

    ``as_path``: AS numbers in order; a nested list is an AS_SET (usually the
    last element, e.g. ``[65001, 65002, [64512, 64513]]``). Communities are
    ``"65000:1"`` / ``(65000, 1)``, large communities ``"65000:1:2"`` /
    ``(65000, 1, 2)``. ``path_id`` needs ADD-PATH on both sides.
    """

    prefix: str
    next_hop: str
    as_path: tuple[int | tuple[int, ...], ...] = ()
    communities: tuple[str, ...] = ()
    large_communities: tuple[str, ...] = ()
    local_pref: int | None = None
    med: int | None = None
    origin: str = "igp"
    path_id: int | None = None

    def __post_init__(self) -> None:
        net = ipaddress.ip_network(self.prefix, strict=True)
        ipaddress.ip_address(self.next_hop)
        path = tuple(
            tuple(int(a) for a in seg) if isinstance(seg, list | tuple) else int(seg)
            for seg in self.as_path
        )
        object.__setattr__(self, "prefix", str(net))
        object.__setattr__(self, "as_path", path)
        object.__setattr__(
            self, "communities", tuple(_community_text(c, 2) for c in self.communities)
        )
        object.__setattr__(
            self, "large_communities", tuple(_community_text(c, 3) for c in self.large_communities)
        )
        if self.origin not in ("igp", "egp", "incomplete"):
            raise ValueError(f"bad origin {self.origin!r}")

    @property
    def family(self) -> str:
        return "ipv6 unicast" if ":" in self.prefix else "ipv4 unicast"

    def flat_path(self) -> list[int | list[int]]:
        """The path as ``PathAttributes.flat_path()`` shows it (for assertions)."""
        return [list(s) if isinstance(s, tuple) else s for s in self.as_path]

    def exabgp(self) -> str:
        """The route in ExaBGP's ``route ...`` syntax (config and API)."""
        words = [f"route {self.prefix} next-hop {self.next_hop} origin {self.origin}"]
        if self.as_path:
            segments: list[str] = []
            sequence: list[str] = []
            for item in self.as_path:
                if isinstance(item, tuple):
                    if sequence:
                        segments.append("[ " + " ".join(sequence) + " ]")
                        sequence = []
                    segments.append("( " + " ".join(str(a) for a in item) + " )")
                else:
                    sequence.append(str(item))
            if sequence:
                segments.append("[ " + " ".join(sequence) + " ]")
            words.append("as-path " + " ".join(segments))
        if self.local_pref is not None:
            words.append(f"local-preference {int(self.local_pref)}")
        if self.med is not None:
            words.append(f"med {int(self.med)}")
        if self.communities:
            words.append("community [ " + " ".join(self.communities) + " ]")
        if self.large_communities:
            words.append("large-community [ " + " ".join(self.large_communities) + " ]")
        if self.path_id is not None:
            words.append(f"path-information {int(self.path_id)}")
        return " ".join(words)


def _breaks_exabgp_config(route: Route) -> bool:
    """ExaBGP 5.0.15 caches NetMask objects by value and overwrites their
    ``maximum``: an IPv6 /32 in the config turns the IPv4 peer's /32 into a
    2**96-address range and the config is refused ("can only use ip ranges
    ... with passive neighbors"). Such routes are announced through the API
    once the control process is up instead."""
    return route.prefix.endswith("/32") and ":" in route.prefix
