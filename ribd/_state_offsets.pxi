# Included by ribd/_apply.pyx, ribd/_announce.pyx and ribd/_wide.pyx (each
# imports FamilyState, FamilyTable and PrefixStore and cimports
# slots_writable_offset, get_at, set_at, add_at, plus and more_than): the
# offsets they read a router's family state, a family's table and its store at,
# taken once in one place, and the tally that ends an UPDATE, written there.
#
# A router's FamilyState, the family's FamilyTable and PrefixStore (slotted
# classes) read and written at their slots' offsets, for objects of exactly
# these types (ribd._slots; -1: through getattr / setattr). ``offset | ft``,
# with ``ft`` 0 for exactly that type and -1 otherwise, picks one or the other.
cdef object _family_state = FamilyState
cdef object _family_table = FamilyTable
cdef object _prefix_store = PrefixStore
cdef Py_ssize_t _fs_slot = slots_writable_offset(FamilyState.__dict__["slot"])
cdef Py_ssize_t _fs_stale_slot = slots_writable_offset(FamilyState.__dict__["stale_slot"])
cdef Py_ssize_t _fs_prefixes = slots_writable_offset(FamilyState.__dict__["prefixes"])
cdef Py_ssize_t _fs_paths = slots_writable_offset(FamilyState.__dict__["paths"])
cdef Py_ssize_t _fs_stale_prefixes = slots_writable_offset(FamilyState.__dict__["stale_prefixes"])
cdef Py_ssize_t _fs_writes = slots_writable_offset(FamilyState.__dict__["writes"])
cdef Py_ssize_t _fs_max_prefixes = slots_writable_offset(FamilyState.__dict__["max_prefixes"])
cdef Py_ssize_t _st_keys = slots_writable_offset(PrefixStore.__dict__["keys"])
cdef Py_ssize_t _st_int_keys = slots_writable_offset(PrefixStore.__dict__["int_keys"])
cdef Py_ssize_t _st_values = slots_writable_offset(PrefixStore.__dict__["values"])
cdef Py_ssize_t _st_delta = slots_writable_offset(PrefixStore.__dict__["delta"])
cdef Py_ssize_t _ft_store = slots_writable_offset(FamilyTable.__dict__["store"])
cdef Py_ssize_t _ft_entries = slots_writable_offset(FamilyTable.__dict__["_entries"])
cdef Py_ssize_t _ft_next_slot = slots_writable_offset(FamilyTable.__dict__["_next_slot"])
cdef Py_ssize_t _ft_changes = slots_writable_offset(FamilyTable.__dict__["changes"])
cdef Py_ssize_t _ft_changes_start = slots_writable_offset(FamilyTable.__dict__["changes_start"])
cdef Py_ssize_t _ft_slot_seq = slots_writable_offset(FamilyTable.__dict__["slot_seq"])
cdef Py_ssize_t _ft_writes = slots_writable_offset(FamilyTable.__dict__["writes"])
TABLE_AT_OFFSETS = min(_ft_store, _ft_entries, _ft_next_slot, _ft_changes, _ft_changes_start,
                       _ft_slot_seq, _ft_writes) >= 0


cdef inline Py_ssize_t table_exact(table):
    """0 when ``table`` is exactly a FamilyTable (its fields at the offsets above), else -1."""
    return 0 if type(table) is _family_table else -1


cdef inline Py_ssize_t state_exact(fs):
    """0 when ``fs`` is exactly a FamilyState (its fields at the ``_fs_*`` offsets), else -1."""
    return 0 if type(fs) is _family_state else -1


cdef inline Py_ssize_t store_exact(store):
    """0 when ``store`` is exactly a PrefixStore (its fields at the ``_st_*`` offsets), else -1."""
    return 0 if type(store) is _prefix_store else -1


cdef inline bint may_cross_limit(fs, Py_ssize_t o_fs, Py_ssize_t n) except -1:
    """Whether ``n`` more prefixes could take ``fs``'s family past its prefix
    limit (``Rib._announce``'s test of the same): such an UPDATE goes there,
    and the prefixes past the limit are refused (``ribd.prefix_limit``). No
    limit (0): False."""
    cdef Py_ssize_t held
    limit = get_at(fs, _fs_max_prefixes | o_fs, "max_prefixes")
    if not limit:
        return False
    held = get_at(fs, _fs_prefixes | o_fs, "prefixes")
    return more_than(held + n, limit)


cdef inline int tally_update(table, Py_ssize_t ft, fs, Py_ssize_t o_fs, Py_ssize_t slot,
                             Py_ssize_t table_writes, Py_ssize_t fs_writes, changes,
                             object max_log) except -1:
    """How ``Rib._announce`` ends an UPDATE, for the compiled loaders (one
    copy, where ``_apply``, ``_announce`` and ``_wide_parts`` each spelled it):
    the writes counted on the table and on the router's family state, the
    slot's place in the change log noted (``table.note_slots(slot)``) and the
    log forgotten once longer than ``max_log`` (``forget_changes_if_behind``).
    ``ft`` / ``o_fs``: ``table_exact(table)`` / ``state_exact(fs)``."""
    cdef Py_ssize_t logged = len(changes)
    add_at(table, _ft_writes | ft, "writes", table_writes)
    add_at(fs, _fs_writes | o_fs, "writes", fs_writes)
    seq_now = plus(get_at(table, _ft_changes_start | ft, "changes_start"), logged)
    get_at(table, _ft_slot_seq | ft, "slot_seq")[slot] = seq_now
    if more_than(logged, max_log):
        set_at(table, _ft_changes_start | ft, "changes_start", seq_now)
        changes.clear()
    return 0
