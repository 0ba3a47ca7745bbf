# Arrow string columns in C for attribution/_enrich_columns.pyx (included there):
# offsets, bytes and a validity bitmap, grown as values are appended.

cdef struct Text:
    char* data
    Py_ssize_t size
    Py_ssize_t cap
    int32_t* offsets  # n + 1
    uint8_t* valid  # bitmap, (n + 7) // 8 bytes
    Py_ssize_t nulls
    Py_ssize_t count


cdef int _text_init(Text* t, Py_ssize_t n, Py_ssize_t guess) except -1:
    t.cap = max(guess, 64)
    t.size = 0
    t.nulls = 0
    t.count = 0
    t.data = <char*>malloc(t.cap)
    t.offsets = <int32_t*>malloc((n + 1) * sizeof(int32_t))
    t.valid = <uint8_t*>malloc((n + 7) // 8 + 1)
    if t.data == NULL or t.offsets == NULL or t.valid == NULL:
        raise MemoryError()
    memset(t.valid, 0, (n + 7) // 8 + 1)
    t.offsets[0] = 0
    return 0


cdef void _text_free(Text* t) noexcept:
    free(t.data)
    free(t.offsets)
    free(t.valid)
    t.data = NULL
    t.offsets = NULL
    t.valid = NULL


cdef int _text_add(Text* t, const char* s, Py_ssize_t m) except -1:
    """Append a value (s NULL: a null) as record ``t.count``."""
    cdef Py_ssize_t cap
    cdef char* got
    if s == NULL:
        t.nulls += 1
    else:
        if t.size + m > 0x7FFFFFFF:
            raise OverflowError("a text column over 2 GiB")
        if t.size + m > t.cap:
            cap = t.cap
            while cap < t.size + m:
                cap *= 2
            got = <char*>realloc(t.data, cap)
            if got == NULL:
                raise MemoryError()
            t.data = got
            t.cap = cap
        memcpy(t.data + t.size, s, m)
        t.size += m
        t.valid[t.count >> 3] |= <uint8_t>(1 << (t.count & 7))
    t.count += 1
    t.offsets[t.count] = <int32_t>t.size
    return 0


cdef tuple _text_out(Text* t):
    """(validity bitmap or None, offsets, data, null count) as bytes."""
    valid = None
    if t.nulls:
        valid = PyBytes_FromStringAndSize(<const char*>t.valid, (t.count + 7) // 8)
    return (
        valid,
        PyBytes_FromStringAndSize(<const char*>t.offsets, (t.count + 1) * sizeof(int32_t)),
        PyBytes_FromStringAndSize(t.data, t.size),
        t.nulls,
    )


def strings(list values):
    """A list of str or None as Arrow string buffers: (validity or None,
    offsets, data, null count). Anything else raises TypeError."""
    cdef Py_ssize_t i, n = len(values), m
    cdef Text t
    cdef const char* s
    _text_init(&t, n, 16 * n)
    try:
        for i in range(n):
            v = values[i]
            if v is None:
                _text_add(&t, NULL, 0)
            elif type(v) is str:
                s = PyUnicode_AsUTF8AndSize(v, &m)
                _text_add(&t, s, m)
            else:
                raise TypeError(f"not a string: {type(v).__name__}")
        return _text_out(&t)
    finally:
        _text_free(&t)


