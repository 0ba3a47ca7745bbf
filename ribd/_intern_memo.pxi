# Included by ribd/_intern.pyx (one module): the memo of router parts met
# before, by the decoder's objects; its names are the module's.

# The router parts met before, by the decoder's objects (stop 35, intern5).
# Nearly every UPDATE of a table load carries a router part held already (a
# router has ~3,800 for ~109,000 sets), yet each was built afresh, hashed by
# value (msgspec hashes the community tuple item by item: ~800 instructions)
# and compared with the cache's slot, to be dropped. The decoders hand the
# very next hop, community and cluster tuples for the same bytes (their
# memos), so a memo slot picked from those objects' addresses (and the
# local-pref's value) names the part found last time. It is a hint only:
# a part is taken from it when it is the one ``_owns`` holds at its hash's
# slot, so exactly what ``_share_own`` would return for an equal fresh part,
# and when its fields equal the row's (identity first); else the reference's
# way. The memo holds no reference (a pointer and the part's hash): the
# collection's count of references (``collect_shared_values``) is unchanged,
# and a slot whose part was freed is never read (its pointer is not the
# one ``_owns`` holds). One memo for the process: a part of another
# interner is not in this one's ``_owns``. 16,384 slots, 256 KB.
cdef enum:
    _MEMO_BITS = 14
    _MEMO_SLOTS = 1 << 14
cdef PyObject *_memo_part[_MEMO_SLOTS]
cdef Py_hash_t _memo_hash[_MEMO_SLOTS]
cdef unsigned long long _memo_hits = 0, _memo_misses = 0


cdef inline size_t _memo_slot(object hop, object comms, object pref, object clusters):
    """The memo's slot for a row's router part: its objects' addresses mixed
    (the originator id left out: a decoder makes a new text each time)."""
    cdef size_t u = <size_t><PyObject *>hop
    u ^= (<size_t><PyObject *>comms) * <size_t>0x9E3779B97F4A7C15ULL
    u ^= (<size_t><PyObject *>clusters) * <size_t>0xC2B2AE3D27D4EB4FULL
    if type(pref) is int:  # (its hash cannot fail)
        u ^= <size_t>PyObject_Hash(pref) * <size_t>0x165667B19E3779F9ULL
    else:
        u ^= (<size_t><PyObject *>pref) * <size_t>0x165667B19E3779F9ULL
    u ^= u >> 29
    u *= <size_t>0xBF58476D1CE4E5B9ULL
    u ^= u >> 32
    return u & (_MEMO_SLOTS - 1)


cdef object _memo_get(list owns, size_t s, hop, comms, pref, orig_id, clusters):
    """The part ``_share_own`` would return for ``RouterPart(hop, comms,
    (pref, orig_id, clusters))``, when memo slot ``s`` names it; else None."""
    global _memo_hits, _memo_misses
    cdef PyObject *p = _memo_part[s]
    cdef Py_ssize_t at = _memo_hash[s] & _large_mask
    if p == NULL or at >= PyList_GET_SIZE(owns) or PyList_GET_ITEM(owns, at) != p:
        _memo_misses += 1
        return None
    part = <object>p  # alive: ``_owns`` holds it (and now this reference)
    if type(part) is _part_type and _part_at:
        policy = _slot(part, _p_policy, "policy")
        if (
            type(policy) is tuple
            and PyTuple_GET_SIZE(policy) == 3
            and _same(_slot(part, _p_hop, "next_hop"), hop)
            and _same(_slot(part, _p_comms, "communities"), comms)
            and _same((<tuple>policy)[0], pref)
            and _same((<tuple>policy)[1], orig_id)
            and _same((<tuple>policy)[2], clusters)
        ):
            _memo_hits += 1
            return part
    _memo_misses += 1
    return None


cdef inline int _memo_put(size_t s, object part) except -1:
    """Slot ``s`` names ``part`` (a RouterPart; any other object: nothing)."""
    cdef Py_hash_t h
    if type(part) is not _part_type:
        return 0
    try:
        h = PyObject_Hash(part)  # (cached on the part)
    except TypeError:
        return 0
    _memo_part[s] = <PyObject *>part
    _memo_hash[s] = h
    return 0


cdef object _shared_part(self, own, size_t s):
    """``_share_own(self, own)``, named in memo slot ``s``.

    With the hash of ``own`` (a fresh RouterPart: ``_share_own`` hashed it for
    its ``_owns`` slot, so its hash is cached), not of the part returned: that
    part is held at the slot of this hash (equal fields), and a new one would
    hash its communities a third time (~500 instructions, 9.5 k new parts in
    the synthetic tables' first 80 k lines; stop 37, internb)."""
    got = _share_own(self, own)
    if type(own) is _part_type and type(got) is _part_type:
        _memo_part[s] = <PyObject *>got
        _memo_hash[s] = PyObject_Hash(own)
    else:
        _memo_put(s, got)
    return got


def part_memo(clear=False):
    """(hits, misses) of the router-part memo since the last clear (tests,
    benchmarks); ``clear``: forget every slot and the counts."""
    global _memo_hits, _memo_misses
    cdef Py_ssize_t k
    out = (_memo_hits, _memo_misses)
    if clear:
        for k in range(_MEMO_SLOTS):
            _memo_part[k] = NULL
            _memo_hash[k] = 0
        _memo_hits = _memo_misses = 0
    return out
