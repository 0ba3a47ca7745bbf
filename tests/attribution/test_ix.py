"""IX MAC learning on a hand-fed RIB: config, learned table, resolution on every path."""

from __future__ import annotations

import orjson
import pytest

from attribution.answers import IX_MAC, OVERRIDE, SRC_ASYMMETRIC, SRC_IX_MAC_UNKNOWN
from attribution.config import ConfigError, parse_config, parse_mac
from attribution.explain import explain
from attribution.ix import IxLearner
from attribution.ix_table import Networks, NextHops
from attribution.resolver import Resolver
from ribd.attributes import AS_SEQUENCE, make_attributes
from ribd.events import RoutesAnnounced, RoutesWithdrawn
from tests.attribution.helpers import EDGE1
from tests.attribution.ix_world import (
    EXPECTED,
    EXPORTER,
    MAC_A,
    MAC_B,
    MAC_CONFLICT,
    MAC_MANUAL,
    MAC_PDB,
    PORT,
    V4,
    build_ix_world,
    hand_written_text,
    ix_config_text,
    write_inputs,
)

FLOW_V4 = {"exporter": EXPORTER, "src_addr": "10.1.2.3", "dst_addr": "10.0.0.1", "in_if": PORT}
FLOW_V6 = {"exporter": EXPORTER, "src_addr": "2001:db8:1::5", "dst_addr": "2001:db8::1"}
MACS = [MAC_A, MAC_B, MAC_CONFLICT, MAC_PDB, MAC_MANUAL, "02:00:00:00:0f:ff", ""]


def flows() -> list[dict]:
    out = []
    for mac in MACS:
        for base in (FLOW_V4, {**FLOW_V6, "in_if": PORT}):
            out.append({**base, "src_mac": mac} if mac else dict(base))
    out.append({**FLOW_V4, "in_if": 41, "src_mac": MAC_A})  # not an IX port
    return out


@pytest.fixture
def learned(tmp_path):
    neighbors, pdb = write_inputs(tmp_path)
    rib, config = build_ix_world(ix_config_text(neighbors, pdb))
    resolver = Resolver(rib, config)
    learner = IxLearner(rib, resolver.ix, config)
    learner.refresh(force=True)
    return rib, config, resolver, learner


def test_learned_table_joins_next_hops_neighbors_and_peeringdb(learned):
    _, _, _, learner = learned
    (st,) = learner.status()
    table = {e.mac.hex(":"): e for e in st.table.values()}
    a = table[MAC_A]
    assert (a.peer_as, a.addresses) == (65101, ("10.99.0.11", "2001:db8:99::11"))
    assert {(f.address, f.source) for f in a.facts} == {
        ("10.99.0.11", "rib"),
        ("2001:db8:99::11", "rib"),
    }
    assert table[MAC_PDB].peer_as == 65105
    assert [f.source for f in table[MAC_PDB].facts] == ["peeringdb"]
    c = table[MAC_CONFLICT]
    assert c.conflict and not c.usable and "AS65103 and AS65104" in c.reason
    assert {f.source for f in table[MAC_MANUAL].facts} == {"rib", "manual"}
    assert "02:00:00:00:09:09" not in table  # outside the IX LAN prefixes
    usable = learner.lookup.port(EXPORTER, PORT).macs
    assert parse_mac(MAC_CONFLICT) not in usable
    assert usable[parse_mac(MAC_A)] == 65101


def test_answers_equal_a_hand_written_mac_override_list_on_every_path(learned, tmp_path):
    rib, config, resolver, _ = learned
    hand = Resolver(rib, parse_config(hand_written_text(), "hand.toml"))
    got_rows = resolver.resolve_dicts(flows())
    want_rows = hand.resolve_dicts(flows())
    for i, flow in enumerate(flows()):
        one = resolver.resolve_one(flow)
        ref = hand.resolve_one(flow)
        mac = flow.get("src_mac", "")
        on_port = flow.get("in_if") == PORT
        assert one.src_peer_as == ref.src_peer_as == got_rows.src_peer_as[i], flow
        assert want_rows.src_peer_as[i] == ref.src_peer_as
        if on_port and mac in EXPECTED and mac != MAC_MANUAL:
            assert one.provenance[1] == IX_MAC
            assert got_rows.provenance[4 * i + 1] == IX_MAC
            assert one.flags & SRC_ASYMMETRIC and not one.flags & SRC_IX_MAC_UNKNOWN
            assert one.override is None
        elif on_port and mac == MAC_MANUAL:
            assert one.provenance[1] == OVERRIDE and one.override == "manual-on-ix"
            assert not one.flags & SRC_IX_MAC_UNKNOWN
        elif on_port:  # unknown, in conflict, no MAC: the reverse lookup, flagged
            assert one.flags & SRC_IX_MAC_UNKNOWN and one.provenance[1] != IX_MAC
        else:
            assert not one.flags & SRC_IX_MAC_UNKNOWN
        assert int(got_rows.flags[i]) == one.flags, flow
        e = explain(resolver, config, flow)
        assert not e.mismatches, (flow, e.mismatches)


def test_columns_path_with_compiled_views_matches_one_flow(learned):
    from attribution.resolver import pack_address

    _, _, resolver, _ = learned
    fs = flows()
    res = resolver.resolve_columns(
        [EXPORTER],
        [0] * len(fs),
        b"".join(pack_address(f["src_addr"]) for f in fs),
        b"".join(pack_address(f["dst_addr"]) for f in fs),
        [f.get("in_if", 0) for f in fs],
        b"".join(parse_mac(f["src_mac"]) if f.get("src_mac") else b"\x00" * 6 for f in fs),
    )
    assert resolver.views.current()  # the compiled path answered
    for i, f in enumerate(fs):
        one = resolver.resolve_one(f)
        assert (int(res.src_peer_as[i]), int(res.flags[i])) == (one.src_peer_as, one.flags)
        assert res.provenance[4 * i + 1] == one.provenance[1]


def test_explain_names_the_learned_mac_and_its_facts(learned):
    _, config, resolver, _ = learned
    e = explain(resolver, config, {**FLOW_V4, "src_mac": MAC_A})
    assert not e.mismatches
    causes = {c.flag: c.reason for c in e.flag_causes}
    assert "AS65101" in e.ix_reason and "10.99.0.11" in e.ix_reason
    assert "src_asymmetric" in causes
    e = explain(resolver, config, {**FLOW_V4, "src_mac": MAC_CONFLICT})
    assert "conflict" in {c.flag: c.reason for c in e.flag_causes}["src_ix_mac_unknown"]


def test_next_hops_follow_the_change_log_without_walking_the_table(learned):
    rib, _, _, _ = learned
    nets = Networks(["10.99.0.0/24"])
    tracker = NextHops(EDGE1, nets)
    assert tracker.update(rib) and tracker.walks == 2  # one walk per family, once
    assert tracker.next_hops()["10.99.0.12"] == {65102: 1}
    a = make_attributes(((AS_SEQUENCE, (65107,)),), next_hop="10.99.0.12")
    rib.apply(RoutesAnnounced(EDGE1, V4, ("203.0.113.0/24",), None, a))
    assert tracker.update(rib)
    assert tracker.next_hops()["10.99.0.12"] == {65107: 1}
    rib.apply(RoutesWithdrawn(EDGE1, V4, ("203.0.113.0/24",), None))
    assert tracker.update(rib) and "10.99.0.12" not in tracker.next_hops()
    assert not tracker.update(rib)  # nothing changed: nothing to do
    assert tracker.walks == 2 and tracker.patches >= 2


def test_a_broken_neighbor_file_keeps_the_last_good_table(learned, tmp_path):
    _, _, resolver, learner = learned
    (tmp_path / "neigh.json").write_bytes(b'[{"dst": "10.99.0.11", "lladdr": ')
    learner.refresh(force=True)
    (st,) = learner.status()
    assert st.neighbors.error.startswith("json")
    assert st.neighbors.failures == 1
    assert resolver.resolve_one({**FLOW_V4, "src_mac": MAC_A}).src_peer_as == 65101
    (tmp_path / "neigh.json").unlink()
    learner.refresh(force=True)
    assert "No such file" in st.neighbors.error
    assert resolver.resolve_one({**FLOW_V4, "src_mac": MAC_A}).src_peer_as == 65101


def test_a_peer_that_changes_its_mac_is_followed(learned, tmp_path):
    _, _, resolver, learner = learned
    doc = orjson.loads((tmp_path / "neigh.json").read_bytes())
    for e in doc:
        if e.get("lladdr") == MAC_B:
            e["lladdr"] = "02:00:00:00:01:22"
    (tmp_path / "neigh.json").write_bytes(orjson.dumps(doc))
    assert learner.refresh(force=True)
    new = resolver.resolve_one({**FLOW_V4, "src_mac": "02:00:00:00:01:22"})
    old = resolver.resolve_one({**FLOW_V4, "src_mac": MAC_B})
    assert (new.src_peer_as, new.provenance[1]) == (65102, IX_MAC)
    assert old.flags & SRC_IX_MAC_UNKNOWN


CONFIG_ERRORS = [
    ("in_if = []", "ix[0].in_if: must list at least one ifIndex"),
    ('prefixes = ["10.99.0.0/33"]', "is not a prefix"),
    ('prefixes = ["0.0.0.0/0"]', "too wide"),
    ('neighbors_format = "xml"', "expected one of ip-json, csv"),
    ('snmp_target = "127.0.0.1"', "SNMP v2c needs the community in a file"),
    ('snmp_community = "public"', "unknown key"),
    ("refresh_interval = 0", "between 1 and 86400"),
    ('router = "nowhere"', "no router named 'nowhere'"),
]


@pytest.mark.parametrize(("line", "error"), CONFIG_ERRORS)
def test_bad_ix_config_is_refused_with_the_key_and_why(tmp_path, line, error):
    neighbors, _ = write_inputs(tmp_path)
    text = ix_config_text(neighbors).replace("refresh_interval = 1\n", "")
    key = line.split(" =")[0]
    head, ix = text.split("[[ix]]")
    drop = (f"{key} =", "neighbors_file =") if key == "snmp_target" else (f"{key} =",)
    lines = [x for x in ix.splitlines() if not x.startswith(drop)]
    with pytest.raises(ConfigError, match="ix"):
        try:
            parse_config(head + "[[ix]]" + "\n".join([*lines, line]), "ix.toml")
        except ConfigError as exc:
            assert error in str(exc), str(exc)
            assert "ix.toml:" in str(exc)
            raise


def test_snmp_v3_config_reads_keys_from_files_only(tmp_path):
    neighbors, _ = write_inputs(tmp_path)
    text = ix_config_text(neighbors).replace(f'neighbors_file = "{neighbors}"\n', "")
    v3 = (
        'snmp_target = "[2001:db8::1]:1161"\nsnmp_version = "3"\nsnmp_user = "ix"\n'
        'snmp_auth_protocol = "sha256"\nsnmp_auth_key_file = "/etc/a"\n'
        'snmp_priv_protocol = "aes"\nsnmp_priv_key_file = "/etc/p"\n'
    )
    (ix,) = parse_config(text + v3, "ix.toml").ix
    assert (ix.snmp.host, ix.snmp.port, ix.snmp.auth_protocol) == ("2001:db8::1", 1161, "sha256")
    assert ix.exporters == ("127.0.0.11", "127.0.1.1")
    with pytest.raises(ConfigError, match="snmp_priv_protocol and snmp_priv_key_file go together"):
        parse_config(text + v3.replace('snmp_priv_key_file = "/etc/p"\n', ""), "ix.toml")


def test_two_ixes_cannot_share_a_port(tmp_path):
    neighbors, _ = write_inputs(tmp_path)
    text = ix_config_text(neighbors)
    second = text[text.index("[[ix]]") :].replace('name = "ix-test"', 'name = "ix-two"')
    with pytest.raises(ConfigError, match="already a port of IX 'ix-test'"):
        parse_config(text + "\n" + second, "ix.toml")


def test_an_ix_of_exporters_learns_from_the_router_they_map_to(tmp_path):
    neighbors, pdb = write_inputs(tmp_path)
    text = ix_config_text(neighbors, pdb).replace(
        'router = "edge1"\n', f'exporters = ["{EXPORTER}"]\n'
    )
    rib, config = build_ix_world(text)
    (ix,) = config.ix
    assert (ix.router, ix.exporters) == ("", (EXPORTER,))
    resolver = Resolver(rib, config)
    learner = IxLearner(rib, resolver.ix, config)
    learner.refresh(force=True)
    (st,) = learner.status()
    assert list(st.next_hops) == [EDGE1]
    assert resolver.resolve_one({**FLOW_V4, "src_mac": MAC_A}).src_peer_as == 65101
    other = resolver.resolve_one({**FLOW_V4, "exporter": EDGE1, "src_mac": MAC_A})
    assert other.provenance[1] != IX_MAC and not other.flags & SRC_IX_MAC_UNKNOWN


def test_explain_text_and_json_carry_the_ix_line(learned):
    from attribution.explain_render import explanation, to_json, to_text
    from attribution.wire import RouteEncoder

    _, config, resolver, _ = learned
    msg = explanation(resolver, config, {**FLOW_V4, "src_mac": MAC_PDB}, RouteEncoder())
    doc = to_json(msg)
    assert "AS65105" in doc["ix"] and "peeringdb" in doc["ix"]
    text = to_text(doc)
    assert "IX: exporter 127.0.1.1 in_if 40 is a port of IX ix-test" in text
    assert doc["answer"]["src_peer_provenance"] == "ix_mac"
