# Included by ribd/_apply.pyx and ribd/_wide.pyx (each imports FamilyState and
# PrefixStore and cimports slots_writable_offset): the offsets both read a
# router's family state and a family's store at, taken once in one place.
#
# A router's FamilyState and the family's PrefixStore (slotted classes) read
# and written at their slots' offsets, for objects of exactly these types
# (ribd._slots; -1: through getattr / setattr).
cdef object _family_state = FamilyState
cdef object _prefix_store = PrefixStore
cdef Py_ssize_t _fs_slot = slots_writable_offset(FamilyState.__dict__["slot"])
cdef Py_ssize_t _fs_stale_slot = slots_writable_offset(FamilyState.__dict__["stale_slot"])
cdef Py_ssize_t _fs_prefixes = slots_writable_offset(FamilyState.__dict__["prefixes"])
cdef Py_ssize_t _fs_paths = slots_writable_offset(FamilyState.__dict__["paths"])
cdef Py_ssize_t _fs_stale_prefixes = slots_writable_offset(FamilyState.__dict__["stale_prefixes"])
cdef Py_ssize_t _fs_writes = slots_writable_offset(FamilyState.__dict__["writes"])
cdef Py_ssize_t _st_keys = slots_writable_offset(PrefixStore.__dict__["keys"])
cdef Py_ssize_t _st_int_keys = slots_writable_offset(PrefixStore.__dict__["int_keys"])
cdef Py_ssize_t _st_values = slots_writable_offset(PrefixStore.__dict__["values"])
cdef Py_ssize_t _st_delta = slots_writable_offset(PrefixStore.__dict__["delta"])
