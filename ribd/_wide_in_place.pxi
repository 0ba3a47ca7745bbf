# Included by ribd/_wide.pyx: the main row of an UPDATE set in place when
# nothing but the UPDATE's own prefixes holds it (``_set_in_place``),
# rather than copied into a moved row, and the switch and counters the tests
# read. Why: a moved row took a reference to each of its 16-64 items and
# freeing the old one dropped them, a cache miss on each item; with routers
# loading together most UPDATEs move a row only their own prefixes hold.


cdef Py_ssize_t _rows_reused = 0  # rows set in place, ever (tests)
cdef Py_ssize_t _rows_reused_overlaid = 0  # of them, rows Overlays of the UPDATE were on
ROWS_IN_PLACE = bool(WIDE_ROWS_IN_PLACE)
cdef bint _rows_in_place = ROWS_IN_PLACE


def reused_rows():
    """Rows the compiled code set in place (``_alone``), ever, and how many of
    them Overlays were on (tests)."""
    return _rows_reused, _rows_reused_overlaid


def rows_in_place(bint on):
    """Whether a row only one UPDATE's prefixes hold is set in place (tests turn
    it off to compare; off where the tuple caches its hash); the old setting."""
    global _rows_in_place
    old = _rows_in_place
    _rows_in_place = on and ROWS_IN_PLACE
    return old


cdef bint _set_in_place(PyObject **rows, Py_ssize_t r, PyObject **ents, Py_ssize_t *ent_i,
                        Py_ssize_t *ent_r, Py_ssize_t nents, Py_ssize_t count, Py_ssize_t slot,
                        object attrs, Py_ssize_t *ats, uint64_t *dkeys, bint int_delta, seq,
                        PyObject **mv_plain, PyObject **old) except -1:
    """``attrs`` set in ``slot`` of the UPDATE's main row ``rows[r]`` (``count`` of
    its prefixes on it) where nothing but those prefixes holds it (``_alone``,
    ``_distinct``) and its value there is none or a plain set other than
    ``attrs``: then ``mv_plain[r]`` is the row itself (a reference), ``*old`` the
    slot's value before (a reference the caller drops), and True."""
    global _rows_reused, _rows_reused_overlaid
    cdef PyObject *row = rows[r]
    cdef PyObject *v
    cdef Py_ssize_t overlays
    if slot >= PyTuple_GET_SIZE(<object>row):
        return False  # a wider row is needed: a new one
    overlays = _alone(row, r, ents, ent_r, nents, count, slot, <PyObject *>attrs)
    if overlays < 0 or not _distinct(r, ent_i, ent_r, nents, count, ats, dkeys, int_delta, seq):
        return False
    v = PyTuple_GET_ITEM(<object>row, slot)
    if v == <PyObject *>attrs or (v != <PyObject *>None and Py_TYPE(v) != <PyTypeObject *>_path_attributes):
        return False  # unchanged, or an ADD-PATH set (the general steps)
    if wide_tracks(<PyObject *>attrs) and not wide_is_tracked(row):
        return False  # the row would hold a tracked item untracked
    old[0] = wide_swap_item(row, slot, <PyObject *>attrs)
    Py_INCREF(<object>row)
    mv_plain[r] = row
    _rows_reused += 1
    if overlays:
        _rows_reused_overlaid += 1
    return True


cdef Py_ssize_t _alone(PyObject *row, Py_ssize_t r, PyObject **ents, Py_ssize_t *ent_r,
                       Py_ssize_t nents, Py_ssize_t count, Py_ssize_t slot, PyObject *attrs) except -2:
    """How many of the ``count`` prefixes of the UPDATE on ``row`` (its row ``r``)
    are Overlays, where nothing holds the row but those prefixes and setting
    ``attrs`` in its ``slot`` leaves each of them as moving it would; else -1. References then: ``rows``' one; a
    plain prefix's place in the store and its ``ents`` slot; an Overlay's
    ``row``, the Overlay itself held by the store and ``ents`` alone (no reader
    sees it). Nothing else can see the row (no other prefix, not the intern
    dict, no reader: the view builds, the snapshot's capture and the
    collection's passes hold every row they read), so it is set in place
    rather than copied. An Overlay with its own value in ``slot`` must move
    off it as the row's prefixes do: not where that value is ``attrs`` (the
    prefix stays on the old row) or an ADD-PATH set (its own steps)."""
    cdef Py_ssize_t e, j, overlays = 0
    cdef PyObject *e_p
    cdef PyObject *v
    for e in range(nents):
        e_p = ents[e]
        if ent_r[e] != r or e_p == row:
            continue
        if wide_refcnt(e_p) != 2:
            return -1  # an Overlay a reader holds
        over = get_at(<object>e_p, _over_at_, "over")
        j = _over_at(<tuple>over, slot)
        if j >= 0:
            v = PyTuple_GET_ITEM(over, j + 1)
            if v == attrs or (v != <PyObject *>None and Py_TYPE(v) != <PyTypeObject *>_path_attributes):
                return -1
        overlays += 1
    return overlays if wide_refcnt(row) == 1 + 2 * (count - overlays) + overlays else -1


cdef bint _distinct(Py_ssize_t r, Py_ssize_t *ent_i, Py_ssize_t *ent_r, Py_ssize_t nents,
                    Py_ssize_t count, Py_ssize_t *ats, uint64_t *dkeys, bint int_delta, seq) except -1:
    """Whether the ``count`` prefixes of the UPDATE on row ``r`` are distinct
    (at most ``STACK`` of them looked at; more: False). A prefix sent twice in
    one UPDATE holds the row once but is counted twice, and the reference count
    ``_alone`` expects would then match with a holder outside the UPDATE."""
    cdef Py_ssize_t at_of[STACK]
    cdef Py_ssize_t i_of[STACK]
    cdef Py_ssize_t e, j, k, m = 0
    if count > STACK:
        return False
    for e in range(nents):
        if ent_r[e] == r:
            i_of[m] = ent_i[e]
            at_of[m] = ats[ent_i[e]]
            m += 1
    for j in range(1, m):
        for k in range(j):
            if at_of[j] >= 0 or at_of[k] >= 0:
                if at_of[j] == at_of[k]:
                    return False
            elif int_delta:
                if dkeys[i_of[j]] == dkeys[i_of[k]]:
                    return False
            elif <object>PySequence_Fast_GET_ITEM(seq, i_of[j]) == <object>PySequence_Fast_GET_ITEM(seq, i_of[k]):
                return False
    return True
