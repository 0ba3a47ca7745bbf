# The keys attribution/_enrich_scan.pyx knows (included there): their ids, and
# which flow-field slot (_enrich_defs.pxi) each format's mapping reads from which key.

# key ids: 0 unknown (skipped), 1 an answer name (the line goes to Python)
KEYS = (
    "exporter", "src_addr", "dst_addr", "in_if", "out_if", "src_mac", "next_hop",
    "bytes", "packets", "sampling_rate",
    "sampler_address", "bgp_next_hop", "time_flow_end_ns", "time_received_ns",
    "peer_ip_src", "ip_src", "ip_dst", "iface_in", "iface_out", "mac_src", "peer_ip_dst",
    "event_type", "as_src", "as_dst", "peer_as_src", "peer_as_dst",
    "type", "export_sysid", "ip4_router", "ip6_router", "src4_addr", "src6_addr",
    "dst4_addr", "dst6_addr", "input_snmp", "output_snmp", "in_src_mac",
    "bgp4_next_hop", "bgp6_next_hop", "in_bytes", "in_packets",
    "timestamp_end", "timestamp_start", "stamp_inserted", "stamp_updated", "last", "first",
)
DEF K_ANSWER = 1
DEF K_EXPORTER = 2
DEF K_SRC_ADDR = 3
DEF K_DST_ADDR = 4
DEF K_IN_IF = 5
DEF K_OUT_IF = 6
DEF K_SRC_MAC = 7
DEF K_NEXT_HOP = 8
DEF K_BYTES = 9
DEF K_PACKETS = 10
DEF K_SAMPLING_RATE = 11
DEF K_SAMPLER_ADDRESS = 12
DEF K_BGP_NEXT_HOP = 13
DEF K_TIME_FLOW_END_NS = 14
DEF K_TIME_RECEIVED_NS = 15
DEF K_PEER_IP_SRC = 16
DEF K_IP_SRC = 17
DEF K_IP_DST = 18
DEF K_IFACE_IN = 19
DEF K_IFACE_OUT = 20
DEF K_MAC_SRC = 21
DEF K_PEER_IP_DST = 22
DEF K_EVENT_TYPE = 23
DEF K_AS_SRC = 24
DEF K_AS_DST = 25
DEF K_PEER_AS_SRC = 26
DEF K_PEER_AS_DST = 27
DEF K_TYPE = 28
DEF K_EXPORT_SYSID = 29
DEF K_IP4_ROUTER = 30
DEF K_IP6_ROUTER = 31
DEF K_SRC4_ADDR = 32
DEF K_SRC6_ADDR = 33
DEF K_DST4_ADDR = 34
DEF K_DST6_ADDR = 35
DEF K_INPUT_SNMP = 36
DEF K_OUTPUT_SNMP = 37
DEF K_IN_SRC_MAC = 38
DEF K_BGP4_NEXT_HOP = 39
DEF K_BGP6_NEXT_HOP = 40
DEF K_IN_BYTES = 41
DEF K_IN_PACKETS = 42
DEF K_TIMESTAMP_END = 43
DEF K_TIMESTAMP_START = 44
DEF K_STAMP_INSERTED = 45
DEF K_STAMP_UPDATED = 46
DEF K_LAST = 47
DEF K_FIRST = 48
DEF NKEYS = 49


# per format (F_*), per slot: the key id it is read from (0: the format has none)
cdef int _slot_key[3][NSLOTS]
# per format, the slots it has a key for (_slot_used[kind][:_slot_count[kind]])
cdef int _slot_used[3][NSLOTS]
cdef int _slot_count[3]


cdef void _setup_slots() noexcept:
    memset(_slot_key, 0, sizeof(_slot_key))
    _slot_key[F_GOFLOW2][S_EXP] = K_SAMPLER_ADDRESS
    _slot_key[F_GOFLOW2][S_SRC] = K_SRC_ADDR
    _slot_key[F_GOFLOW2][S_DST] = K_DST_ADDR
    _slot_key[F_GOFLOW2][S_IN] = K_IN_IF
    _slot_key[F_GOFLOW2][S_OUT] = K_OUT_IF
    _slot_key[F_GOFLOW2][S_MAC] = K_SRC_MAC
    _slot_key[F_GOFLOW2][S_HOP] = K_BGP_NEXT_HOP
    _slot_key[F_GOFLOW2][S_BYTES] = K_BYTES
    _slot_key[F_GOFLOW2][S_PKTS] = K_PACKETS
    _slot_key[F_GOFLOW2][S_RATE] = K_SAMPLING_RATE
    _slot_key[F_GOFLOW2][S_T0] = K_TIME_FLOW_END_NS
    _slot_key[F_GOFLOW2][S_T1] = K_TIME_RECEIVED_NS
    _slot_key[F_PMACCT][S_EXP] = K_PEER_IP_SRC
    _slot_key[F_PMACCT][S_SRC] = K_IP_SRC
    _slot_key[F_PMACCT][S_DST] = K_IP_DST
    _slot_key[F_PMACCT][S_IN] = K_IFACE_IN
    _slot_key[F_PMACCT][S_OUT] = K_IFACE_OUT
    _slot_key[F_PMACCT][S_MAC] = K_MAC_SRC
    _slot_key[F_PMACCT][S_HOP] = K_PEER_IP_DST
    _slot_key[F_PMACCT][S_BYTES] = K_BYTES
    _slot_key[F_PMACCT][S_PKTS] = K_PACKETS
    _slot_key[F_PMACCT][S_RATE] = K_SAMPLING_RATE
    _slot_key[F_PMACCT][S_T0] = K_TIMESTAMP_END
    _slot_key[F_PMACCT][S_T1] = K_TIMESTAMP_START
    _slot_key[F_PMACCT][S_T2] = K_STAMP_INSERTED
    _slot_key[F_PMACCT][S_T3] = K_STAMP_UPDATED
    _slot_key[F_NFDUMP][S_EXP] = K_IP4_ROUTER
    _slot_key[F_NFDUMP][S_EXP6] = K_IP6_ROUTER
    _slot_key[F_NFDUMP][S_SRC] = K_SRC4_ADDR
    _slot_key[F_NFDUMP][S_SRC6] = K_SRC6_ADDR
    _slot_key[F_NFDUMP][S_DST] = K_DST4_ADDR
    _slot_key[F_NFDUMP][S_DST6] = K_DST6_ADDR
    _slot_key[F_NFDUMP][S_IN] = K_INPUT_SNMP
    _slot_key[F_NFDUMP][S_OUT] = K_OUTPUT_SNMP
    _slot_key[F_NFDUMP][S_MAC] = K_IN_SRC_MAC
    _slot_key[F_NFDUMP][S_HOP] = K_BGP4_NEXT_HOP
    _slot_key[F_NFDUMP][S_HOP6] = K_BGP6_NEXT_HOP
    _slot_key[F_NFDUMP][S_BYTES] = K_IN_BYTES
    _slot_key[F_NFDUMP][S_PKTS] = K_IN_PACKETS
    _slot_key[F_NFDUMP][S_T0] = K_LAST
    _slot_key[F_NFDUMP][S_T1] = K_FIRST
    cdef int kind, slot
    for kind in range(3):
        _slot_count[kind] = 0
        for slot in range(NSLOTS):
            if _slot_key[kind][slot]:
                _slot_used[kind][_slot_count[kind]] = slot
                _slot_count[kind] += 1


_setup_slots()

