# The packed request records of attribution/_enrich_scan.pyx (included there):
# their layout, and a batch of them as the FlowBatch message's protobuf bytes.

RECORD_SIZE = 64  # bytes a packed record takes in the buffer (see PACKED_FIELDS)
# (name, numpy type, offset): a numpy dtype over the buffer (attribution.enrich_pack)
PACKED_FIELDS = (
    ("ok", "u1", 0),  # 1: packed by the scanner
    ("mac", "S6", 1),
    ("exporter", "<u4", 8),
    ("in_if", "<u4", 12),
    ("src", "S16", 16),
    ("dst", "S16", 32),
    ("hop", "S16", 48),
)
DEF REC = 64


cdef inline uint32_t _le32(const uint8_t* p) noexcept nogil:
    cdef uint32_t v
    memcpy(&v, p, 4)
    return v


cdef inline bint _nonzero(const uint8_t* p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        if p[j]:
            return True
    return False


cdef inline Py_ssize_t _varint_size(uint64_t v) noexcept nogil:
    cdef Py_ssize_t n = 1
    while v >= 0x80:
        v >>= 7
        n += 1
    return n


cdef inline uint8_t* _varint(uint8_t* w, uint64_t v) noexcept nogil:
    while v >= 0x80:
        w[0] = <uint8_t>(v & 0x7F) | 0x80
        v >>= 7
        w += 1
    w[0] = <uint8_t>v
    return w + 1


cdef uint8_t* _field_of(uint8_t* w, uint8_t tag, const uint8_t* src, Py_ssize_t width, Py_ssize_t n) noexcept nogil:
    """A bytes field: ``width`` bytes at ``src`` of each of n records, in order."""
    cdef Py_ssize_t i
    w[0] = tag
    w = _varint(w + 1, width * n)
    for i in range(n):
        memcpy(w, src + i * REC, width)
        w += width
    return w



cdef bytes _request(const uint8_t* buf, Py_ssize_t n, list exporters, uint64_t batch_id):
    """The FlowBatch of the n packed records at buf (all the scanner's, else None)."""
    cdef Py_ssize_t i, size, body, cols, mac_zero = 1, hop_zero = 1
    cdef const uint8_t* rec
    cdef uint8_t* w
    cdef uint32_t v
    cdef Py_ssize_t exporter_bytes = 0, exporter_len = 0, in_if_len = 0
    cdef list names
    cdef bytes name
    for i in range(n):
        rec = buf + i * REC
        if rec[0] != 1:
            return None
        if mac_zero and _nonzero(rec + 1, 6):
            mac_zero = 0
        if hop_zero and _nonzero(rec + 48, 16):
            hop_zero = 0
        exporter_len += _varint_size(_le32(rec + 8))
        in_if_len += _varint_size(_le32(rec + 12))
    names = [e.encode() for e in (exporters or ["0.0.0.0"])]
    for name in names:
        exporter_bytes += 1 + _varint_size(<uint64_t>len(name)) + len(name)
    cols = exporter_bytes
    if n:
        cols += 1 + _varint_size(exporter_len) + exporter_len
        cols += 2 * (1 + _varint_size(16 * n) + 16 * n)
        cols += 1 + _varint_size(in_if_len) + in_if_len
        if not mac_zero:
            cols += 1 + _varint_size(6 * n) + 6 * n
        if not hop_zero:
            cols += 1 + _varint_size(16 * n) + 16 * n
    body = 1 + _varint_size(cols) + cols + 4
    if batch_id:
        body += 1 + _varint_size(batch_id)
    out = PyBytes_FromStringAndSize(NULL, body)
    w = <uint8_t*>PyBytes_AS_STRING(out)
    if batch_id:
        w[0] = 0x08  # 1: batch_id
        w = _varint(w + 1, batch_id)
    w[0] = 0x1A  # 3: columns
    w = _varint(w + 1, cols)
    for name in names:  # FlowColumns 1: exporters
        w[0] = 0x0A
        w = _varint(w + 1, len(name))
        memcpy(w, PyBytes_AS_STRING(name), len(name))
        w += len(name)
    if n:
        w[0] = 0x12  # 2: exporter, packed
        w = _varint(w + 1, exporter_len)
        for i in range(n):
            w = _varint(w, _le32(buf + i * REC + 8))
        w = _field_of(w, 0x1A, buf + 16, 16, n)  # 3: src_addr
        w = _field_of(w, 0x22, buf + 32, 16, n)  # 4: dst_addr
        w[0] = 0x2A  # 5: in_if, packed (all of them, zeros too)
        w = _varint(w + 1, in_if_len)
        for i in range(n):
            w = _varint(w, _le32(buf + i * REC + 12))
        if not mac_zero:
            w = _field_of(w, 0x3A, buf + 1, 6, n)  # 7: src_mac
        if not hop_zero:
            w = _field_of(w, 0x42, buf + 48, 16, n)  # 8: next_hop
    w[0] = 0x28  # 5: packed_records
    w[1] = 1
    w[2] = 0x30  # 6: stream_routes
    w[3] = 1
    w += 4
    if w - <uint8_t*>PyBytes_AS_STRING(out) != body:
        raise AssertionError("request size miscounted")
    return out
