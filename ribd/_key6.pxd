# cython: language_level=3
"""The IPv6 store's integer prefix keys (``1 << length | network``, 129 bits at
most, ``ribd.prefix_keys``) to and from their C form: the address's 128 bits
left-aligned in two words and the length. Shared by ``ribd._intdelta6`` (the
delta's table), ``ribd._rawnlri`` (the load's NLRI decoder) and
``ribd._rawkeys`` (texts and packed keys), so that the three agree bit for bit."""

from libc.stdint cimport uint64_t


cdef extern from *:
    """
    typedef unsigned __int128 key6_u128;
    /* CPython 3.11's ints: ``ob_digit`` of 30-bit digits, ``Py_SIZE`` their
       count (negative: a negative int). Read and written directly there (a
       key's conversion ~30 instructions, against ~300 through
       _PyLong_AsByteArray / _PyLong_FromByteArray, callgrind); any other
       layout takes those generic calls. */
    #if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000 && PyLong_SHIFT == 30
    #define KEY6_DIGITS 1
    #else
    #define KEY6_DIGITS 0
    #endif

    static int key6_clz128(key6_u128 v) {
        uint64_t h = (uint64_t)(v >> 64);
        return h ? __builtin_clzll(h) : 64 + __builtin_clzll((uint64_t)v);
    }

    /* The length of the int ``o`` (an int, checked by the caller) as an IPv6
       key (1 <= o < 2**129) and its address, left-aligned, in *hi / *lo;
       -1 (no error set) when out of range, -2 with an error set. */
    static int key6_split(PyObject *o, uint64_t *hi, uint64_t *lo) {
        key6_u128 low = 0, addr;
        uint64_t top = 0;
        int length;
    #if KEY6_DIGITS
        Py_ssize_t n = Py_SIZE(o), i;
        const digit *d = ((PyLongObject *)o)->ob_digit;
        if (n <= 0 || n > 5)
            return -1;
        if (n <= 2) {
            /* A key of 60 bits at most (a prefix up to /59: a table's /48s and
               shorter): one word's arithmetic, no 128-bit shifts. */
            uint64_t v = (uint64_t)d[0] | (n == 2 ? (uint64_t)d[1] << PyLong_SHIFT : 0);
            length = 63 - __builtin_clzll(v);
            *hi = length ? (v ^ ((uint64_t)1 << length)) << (64 - length) : 0;
            *lo = 0;
            return length;
        }
        for (i = 0; i < n; i++) {
            int shift = 30 * (int)i;
            low |= (key6_u128)d[i] << shift;
            if (shift + 30 > 128)
                top = (uint64_t)d[i] >> (128 - shift);
        }
    #else
        unsigned char b[17];
        int k;
        if (_PyLong_Sign(o) <= 0 || _PyLong_NumBits(o) > 129)
            return PyErr_Occurred() ? -2 : -1;
        if (_PyLong_AsByteArray((PyLongObject *)o, b, 17, 0, 0) < 0)
            return -2;
        top = b[0];
        for (k = 1; k < 17; k++)
            low = (low << 8) | b[k];
    #endif
        if (top > 1)
            return -1;
        if (top) {
            length = 128;
            addr = low;
        } else {
            length = 127 - key6_clz128(low);
            addr = length ? (low ^ ((key6_u128)1 << length)) << (128 - length) : 0;
        }
        *hi = (uint64_t)(addr >> 64);
        *lo = (uint64_t)addr;
        return length;
    }

    /* The int key of the prefix of length ``length`` (0-128) whose address,
       left-aligned, is hi / lo (bits past the length ignored). */
    static PyObject *key6_make(uint64_t hi, uint64_t lo, int length) {
        key6_u128 addr, low;
        uint64_t top;
    #if KEY6_DIGITS
        if (length < 60) {
            /* A key of two digits at most (a prefix up to /59): one word's
               arithmetic, no 128-bit shifts nor digit loop. */
            uint64_t v = (length ? hi >> (64 - length) : 0) | ((uint64_t)1 << length);
            PyLongObject *r = _PyLong_New(length < 30 ? 1 : 2);
            if (r == NULL)
                return NULL;
            r->ob_digit[0] = (digit)(v & PyLong_MASK);
            if (length >= 30)
                r->ob_digit[1] = (digit)(v >> PyLong_SHIFT);
            return (PyObject *)r;
        }
    #endif
        addr = ((key6_u128)hi << 64) | lo;
        if (length == 128) {
            top = 1;
            low = addr;
        } else {
            top = 0;
            low = (length ? addr >> (128 - length) : 0) | ((key6_u128)1 << length);
        }
    #if KEY6_DIGITS
        {
            Py_ssize_t n = (length + 1 + 29) / 30, i;  /* the top digit holds bit ``length``: normalised */
            PyLongObject *v = _PyLong_New(n);
            if (v == NULL)
                return NULL;
            for (i = 0; i < n; i++) {
                int shift = 30 * (int)i;
                digit x = (digit)(low >> shift) & PyLong_MASK;
                if (shift + 30 > 128)
                    x = (digit)(((uint64_t)(low >> shift) | (top << (128 - shift))) & PyLong_MASK);
                v->ob_digit[i] = x;
            }
            return (PyObject *)v;
        }
    #else
        {
            unsigned char b[17];
            int k;
            b[0] = (unsigned char)top;
            for (k = 16; k >= 1; k--) {
                b[k] = (unsigned char)(low & 0xFF);
                low >>= 8;
            }
            return _PyLong_FromByteArray(b, 17, 0, 0);
        }
    #endif
    }
    """
    ctypedef unsigned long long key6_u128  # (unsigned __int128 in C)
    int key6_split(object o, uint64_t *hi, uint64_t *lo) except -2
    object key6_make(uint64_t hi, uint64_t lo, int length)


cdef inline uint64_t be64(const unsigned char *b) noexcept nogil:
    return ((<uint64_t>b[0] << 56) | (<uint64_t>b[1] << 48) | (<uint64_t>b[2] << 40)
            | (<uint64_t>b[3] << 32) | (<uint64_t>b[4] << 24) | (<uint64_t>b[5] << 16)
            | (<uint64_t>b[6] << 8) | <uint64_t>b[7])


cdef inline void put64(unsigned char *b, uint64_t v) noexcept nogil:
    cdef int i
    for i in range(8):
        b[i] = (v >> (56 - 8 * i)) & 0xFF


cdef inline int key6_parts(object key, uint64_t *hi, uint64_t *lo) except -2:
    """The length of an IPv6 int key and its address's words into ``hi``/``lo``;
    -1 when ``key`` is not an int of 1 .. 2**129 - 1 (no error set)."""
    if not isinstance(key, int):
        return -1
    return key6_split(key, hi, lo)


cdef inline object key6_obj(uint64_t hi, uint64_t lo, int length):
    """The int key of the prefix whose address words are ``hi``/``lo`` (bits past
    ``length`` ignored) and length ``length`` (0-128)."""
    return key6_make(hi, lo, length)


cdef inline int key6_check(object key, uint64_t *hi, uint64_t *lo) except -1:
    """``key6_parts``, raising as the IPv4 table's ``key_of`` does: TypeError for
    another type, ValueError for an int out of range."""
    cdef int length = key6_parts(key, hi, lo)
    if length < 0:
        if not isinstance(key, int):
            raise TypeError(f"an IPv6 delta's key is an int, not a {type(key).__name__}")
        raise ValueError(f"not an IPv6 prefix key: {key!r}")
    return length
