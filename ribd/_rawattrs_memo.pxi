# Included by ribd/_rawattrs.pyx (one module): the compiled decoder's memos.
#
# Why not the dicts of ribd.rawattrs (as until stop 36): each lookup made a
# bytes object of the attribute's value (an allocation and its free), hashed it
# with siphash and probed a dict, ~500 instructions, four times an UPDATE (next
# hop, AS path, communities, cluster list): ~5% of the feed loop by callgrind,
# synthetic table and real router 1 alike (stop 36, dictprobe). Here the value's
# octets are hashed where they lie (a multiply per 8 octets) and compared with
# the key kept in a direct-mapped slot; a bytes key is made on a miss only.
#
# What a memo gives is what the dicts gave: for the same octets, the very value
# decoded before (the interner's router-part memo keys on those objects), never
# a value for other octets (the key is compared in full); an AS path's slot
# may be given the equal path the interner's core holds (``_path_handback``).
# A slot keeps its key and value alive until another value takes it, so each
# memo holds at most its number of slots (ribd.decoder_memo.MEMO_BITS). A
# collision (even a made one: the hash is not seeded) costs a miss, never a
# longer probe. ribd.decoder_memo is the Python reference (same hash, same
# slots), compared with this in tests/ribd/test_decoder_memo.py.

from libc.string cimport memcmp, memcpy
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Calloc
from cpython.pycapsule cimport PyCapsule_New
from cpython.ref cimport PyObject, Py_INCREF, Py_XDECREF

from ribd.decoder_memo import MEMO_BITS, MEMO_KINDS


cdef struct MemoSlot:
    unsigned long long h
    PyObject *key  # bytes (NULL: empty)
    PyObject *value


cdef struct Memo:
    MemoSlot *slots
    size_t mask
    unsigned long long hits
    unsigned long long misses


cdef Memo _memos[M_N]


cdef int _memo_init() except -1:
    cdef int k
    assert len(MEMO_KINDS) == M_N and len(MEMO_BITS) == M_N
    for k in range(M_N):
        _memos[k].slots = <MemoSlot *>PyMem_Calloc(<size_t>1 << MEMO_BITS[k], sizeof(MemoSlot))
        if _memos[k].slots == NULL:
            raise MemoryError()
        _memos[k].mask = (<size_t>1 << MEMO_BITS[k]) - 1
    return 0


_memo_init()


# The path memo's slot the last AS path was looked up in (its kind, -1: none,
# and hash), for ``_path_handback`` (stop 39, late17). Why: the interner keeps
# one path object per core; a path decoded again (its slot was retaken by other
# octets) is a new, equal object, and every later UPDATE with those octets
# handed the interner that new object: its memo of cores by the path object
# (``ribd/_intern_corememo.pxi``) missed, and each core found was compared field
# by field through the path's tuples. Router 17 after sixteen: 77% of its paths
# decoded again, 97 k deep compares, 78 memo hits of 110 k UPDATEs.
cdef int _last_path_kind = -1
cdef unsigned long long _last_path_h = 0
cdef unsigned long long _handbacks = 0


cdef inline void _path_looked_up(int kind, unsigned long long h) noexcept nogil:
    global _last_path_kind, _last_path_h
    _last_path_kind = kind
    _last_path_h = h


cdef void _path_handback(PyObject *made, PyObject *held) noexcept:
    """The interner's path ``held`` (equal to ``made``: the caller's promise)
    kept from now on in the path memo's slot that holds ``made``, if the slot
    the last path was looked up in does. The slot's key is the octets ``made``
    was decoded from, so its value stays a value of those octets, the one
    object the interner's core holds. ``made`` is alive (the caller's row holds
    it): its address is no other object's, and the release below frees nothing."""
    global _last_path_kind, _handbacks
    cdef Memo *m
    cdef MemoSlot *s
    if _last_path_kind < 0 or made == held:
        return
    m = &_memos[_last_path_kind]
    s = &m.slots[_last_path_h & m.mask]
    _last_path_kind = -1
    if s.key == NULL or s.value != made:
        return
    Py_INCREF(<object>held)
    s.value = held
    Py_XDECREF(made)
    _handbacks += 1


def path_handbacks() -> int:
    """Paths handed back by the interner since the process started (tests, profiles)."""
    return _handbacks


def install_path_handback() -> bool:
    """Have the compiled interner (if built) call ``_path_handback`` after each
    row (done at import; tests turn it off and on)."""
    try:
        from ribd._intern import set_path_handback
    except ImportError:
        return False
    set_path_handback(PyCapsule_New(<void *>_path_handback, b"ribd._rawattrs.path_handback", NULL))
    return True


install_path_handback()


cdef inline unsigned long long memo_hash(const unsigned char *p, Py_ssize_t n) noexcept nogil:
    """``ribd.decoder_memo.memo_hash``: the octets as 8-octet words (little-endian,
    the last one zero-padded), each mixed in by a multiply."""
    cdef unsigned long long h = <unsigned long long>n * 0x9E3779B97F4A7C15ULL, w
    cdef Py_ssize_t at = 0
    while at + 8 <= n:
        memcpy(&w, p + at, 8)
        h = (h ^ w) * 0xBF58476D1CE4E5B9ULL
        h ^= h >> 29
        at += 8
    if at < n:
        w = 0
        memcpy(&w, p + at, n - at)
        h = (h ^ w) * 0xBF58476D1CE4E5B9ULL
        h ^= h >> 29
    h *= 0x94D049BB133111EBULL
    h ^= h >> 32
    return h


cdef inline object memo_find(int kind, const unsigned char *p, Py_ssize_t n, unsigned long long *h):
    """The value memo ``kind`` keeps for the ``n`` octets at ``p``, or None
    (``h`` gets their hash, for ``memo_keep``)."""
    h[0] = memo_hash(p, n)
    return memo_find_hashed(kind, p, n, h[0])


cdef inline object memo_find_hashed(int kind, const unsigned char *p, Py_ssize_t n, unsigned long long k):
    """``memo_find`` of octets whose ``memo_hash`` is ``k``."""
    cdef Memo *m = &_memos[kind]
    cdef MemoSlot *s = &m.slots[k & m.mask]
    if (
        s.key != NULL
        and s.h == k
        and PyBytes_GET_SIZE(<object>s.key) == n
        and memcmp(PyBytes_AS_STRING(<object>s.key), p, n) == 0
    ):
        m.hits += 1
        return <object>s.value
    m.misses += 1
    return None


cdef extern from *:
    """
    #define ribd_prefetch(a) __builtin_prefetch((a), 0, 3)
    """
    void ribd_prefetch(const void *a) noexcept nogil


cdef inline unsigned long long memo_prefetch(int kind, const unsigned char *p, Py_ssize_t n) noexcept nogil:
    """Memo ``kind``'s slot for the ``n`` octets at ``p`` asked of the cache ahead
    of ``memo_find``: the tables (6 MB for paths, 1.5 MB for communities) are read
    at random, a miss per lookup on a table load's new paths. Their hash, for
    ``memo_find_hashed``."""
    cdef Memo *m = &_memos[kind]
    cdef unsigned long long h = memo_hash(p, n)
    ribd_prefetch(&m.slots[h & m.mask])
    return h


cdef inline int memo_keep(int kind, unsigned long long h, bytes key, object value) except -1:
    """Memo ``kind``'s slot for ``key`` (of hash ``h``) keeps ``value`` from now on."""
    cdef MemoSlot *s = &_memos[kind].slots[h & _memos[kind].mask]
    cdef PyObject *old_key = s.key
    cdef PyObject *old_value = s.value
    Py_INCREF(key)
    Py_INCREF(value)
    s.key = <PyObject *>key
    s.value = <PyObject *>value
    s.h = h
    # (dropped last: the slot is whole before a free could run anything)
    Py_XDECREF(old_key)
    Py_XDECREF(old_value)
    return 0


cdef str address_text(const unsigned char *a, int n):
    """An address's text (``n``: 4 octets IPv4, 16 IPv6) through the next
    hops' memos: a next hop, an ORIGINATOR_ID (the same text for the same
    4 octets; a route reflector's clients carry one in every UPDATE)."""
    cdef unsigned long long h = memo_hash(a, n)
    return address_text_hashed(a, n, h)


cdef str address_text_hashed(const unsigned char *a, int n, unsigned long long h):
    """``address_text`` of octets whose ``memo_hash`` is ``h``."""
    cdef int kind = M_HOPS if n == 4 else M_HOPS6
    text = memo_find_hashed(kind, a, n, h)
    if text is None:
        text = _quad(a) if n == 4 else ipv6_text(a)
        memo_keep(kind, h, PyBytes_FromStringAndSize(<const char *>a, n), text)
    return text


cdef int _kind_of(str name) except -1:
    if name not in MEMO_KINDS:
        raise KeyError(name)
    return MEMO_KINDS.index(name)


def memo_hash_of(bytes key) -> int:
    """``memo_hash`` of ``key`` (tests compare it with the reference's)."""
    return memo_hash(<const unsigned char *>PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key))


def memo_probe(str name, bytes key, value=None):
    """Memo ``name``'s value for ``key``, or None; on a miss, ``value`` (unless
    None) kept for it (tests: the reference's ``DirectMemo.probe``)."""
    cdef unsigned long long h
    cdef int kind = _kind_of(name)
    got = memo_find(kind, <const unsigned char *>PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key), &h)
    if got is None and value is not None:
        memo_keep(kind, h, key, value)
    return got


def memo_items(str name) -> list:
    """Memo ``name``'s (slot, key, value) in slot order (tests)."""
    cdef int kind = _kind_of(name)
    cdef size_t i
    cdef MemoSlot *s
    out = []
    for i in range(_memos[kind].mask + 1):
        s = &_memos[kind].slots[i]
        if s.key != NULL:
            out.append((i, <object>s.key, <object>s.value))
    return out


def memo_counts(clear=False) -> dict:
    """{memo: (hits, misses)} since the last clear; ``clear``: every slot emptied
    and the counts zeroed (tests, benchmarks)."""
    cdef int k
    cdef size_t i
    cdef MemoSlot *s
    cdef PyObject *key
    cdef PyObject *value
    out = {MEMO_KINDS[k]: (_memos[k].hits, _memos[k].misses) for k in range(M_N)}
    if clear:
        for k in range(M_N):
            for i in range(_memos[k].mask + 1):
                s = &_memos[k].slots[i]
                key, value = s.key, s.value
                s.key = s.value = NULL
                s.h = 0
                Py_XDECREF(key)
                Py_XDECREF(value)
            _memos[k].hits = _memos[k].misses = 0
    return out
