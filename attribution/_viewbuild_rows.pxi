# Included by attribution/_viewbuild.pyx: the family's answer tables merged
# (``attribution.viewanswers.merge``) by the rows' bytes in a hash table.


# The row hash's keys, random per process: a row's first 8 bytes are its origin AS
# and its AS_SET's highest, which a peer's AS path chooses, so with the constants
# used until stop 60 it could pick rows whose slots all collide (20,000 such
# rows: a view build's match ~830 ms against ~23, with the GIL held).
cdef unsigned long long _row_seed = hash_key()
cdef unsigned long long _row_word = hash_key() | 1
cdef unsigned long long _row_tail = hash_key() | 1


cdef inline unsigned long long _row_hash(const unsigned char *row, Py_ssize_t width) noexcept:
    """A 64-bit hash of ``width`` bytes (8 at a time, then the tail), keyed."""
    cdef unsigned long long h = _row_seed, word
    cdef Py_ssize_t k = 0
    while k + 8 <= width:
        memcpy(&word, row + k, 8)
        h = (h ^ word) * _row_word
        h ^= h >> 31
        k += 8
    if k < width:
        word = 0
        memcpy(&word, row + k, width - k)
        h = (h ^ word) * _row_tail
        h ^= h >> 29
    return h


def match_rows(const unsigned char[::1] base, const unsigned char[::1] rest, Py_ssize_t width):
    """``viewanswers.py_match_rows``: the rows of ``rest`` (``width`` bytes each)
    found in ``base`` (distinct rows, the same way) or appended after it, in
    first-seen order.

    Returns ``(appended, ids)``: the appended rows' bytes, and each row of
    ``rest``'s id as int64 bytes (a row of ``base`` by its index, an appended
    one ``len(base)`` on). The hash table holds ``rest``'s distinct rows (a
    new view's table: ~90 k rows, in cache) and ``base`` (the family's table:
    ~400 k rows at 17 routers) is read once in order: merging the two by one
    sort of both was ~40 ms of a late router's build (stop 41, lone41); a
    table of ``base`` probed at random missed the cache at every row.
    """
    cdef Py_ssize_t n_base = base.shape[0] // width if width > 0 else 0
    cdef Py_ssize_t n = rest.shape[0] // width if width > 0 else 0
    cdef Py_ssize_t cap = 1024, mask, i, j, g, count = 0
    cdef unsigned long long h, tag
    cdef const unsigned char *row
    if width <= 0 or base.shape[0] != n_base * width or rest.shape[0] != n * width:
        raise ValueError("match_rows: not whole rows")
    while cap < 2 * n:
        cap *= 2
    mask = cap - 1
    # A slot: the hash's high 32 bits, then the row's index in ``rest`` + 1 (0: empty).
    cdef bytearray slots_buf = bytearray(cap * 8)
    cdef unsigned long long *slots = <unsigned long long *>(<char *>slots_buf)
    cdef bytearray first_buf = bytearray(max(n, 1) * 8)  # each row's first equal row
    cdef long long *first = <long long *>(<char *>first_buf)
    cdef bytearray ids_buf = bytearray(n * 8)
    cdef long long *ids = <long long *>(<char *>ids_buf) if n else NULL
    cdef bytearray added_buf = bytearray(n * width)
    cdef unsigned char *added = <unsigned char *>(<char *>added_buf) if n else NULL
    for g in range(n):  # rest's distinct rows into the table
        row = &rest[g * width]
        h = _row_hash(row, width)
        tag = h & 0xFFFFFFFF00000000ULL
        j = <Py_ssize_t>(h & <unsigned long long>mask)
        first[g] = g
        while slots[j]:
            i = <Py_ssize_t>(slots[j] & 0xFFFFFFFFULL) - 1
            if (slots[j] & 0xFFFFFFFF00000000ULL) == tag and memcmp(&rest[i * width], row, width) == 0:
                first[g] = i
                break
            j = (j + 1) & mask
        if not slots[j]:
            slots[j] = tag | <unsigned long long>(g + 1)
        ids[g] = -1
    for i in range(n_base):  # base read in order, each row looked up
        row = &base[i * width]
        h = _row_hash(row, width)
        tag = h & 0xFFFFFFFF00000000ULL
        j = <Py_ssize_t>(h & <unsigned long long>mask)
        while slots[j]:
            g = <Py_ssize_t>(slots[j] & 0xFFFFFFFFULL) - 1
            if (slots[j] & 0xFFFFFFFF00000000ULL) == tag and memcmp(&rest[g * width], row, width) == 0:
                ids[g] = i
                break
            j = (j + 1) & mask
    for g in range(n):  # the rest: appended at their first occurrence
        if ids[first[g]] < 0:
            memcpy(added + count * width, &rest[g * width], width)
            ids[g] = n_base + count
            count += 1
        else:
            ids[g] = ids[first[g]]
    del added_buf[count * width :]
    return added_buf, ids_buf
