# Shared with ribd._loadline (cimport): a table load's short paths of
# ``Rib._announce`` on an UPDATE's parts, the caller holding ``rib.lock``.

cdef bint announce_parts(rib, r, family, prefixes, attrs) except -1
