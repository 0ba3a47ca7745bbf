# Constants and the field record shared by the compiled enrich modules
# (attribution/_enrich_scan.pyx, _enrich_columns.pyx, _enrich_json.pyx include
# this file: one definition, each module compiled with the same values).

DEF SPAN = 16  # a record's text in a chunk's data: Span (int64 start, int32 length, int32 chunk)
DEF MAX_INT_DIGITS = 19  # 10**19 - 1 fits uint64; int64 checked
DEF CACHE = 16  # exporters remembered by their bytes before the dict

# value types of a member
DEF T_ABSENT = 0
DEF T_STR = 1
DEF T_INT = 2
DEF T_NUM = 3
DEF T_NULL = 4
DEF T_BOOL = 5
DEF T_NEST = 6

# formats (indexes into _enrich_scan.KINDS; the columns' FORMATS are the first three)
DEF F_GOFLOW2 = 0
DEF F_PMACCT = 1
DEF F_NFDUMP = 2
DEF F_NATIVE = 3
DEF F_AUTO = -1

# The flow fields a format's mapping reads, by slot: the scanner records where
# each was in the record's text (a Field a slot, NSLOTS a record) and the
# column builder makes the columns from them without parsing the text again.
DEF S_EXP = 0
DEF S_SRC = 1
DEF S_DST = 2
DEF S_IN = 3
DEF S_OUT = 4
DEF S_MAC = 5
DEF S_HOP = 6
DEF S_BYTES = 7
DEF S_PKTS = 8
DEF S_RATE = 9
DEF S_T0 = 10
DEF S_T1 = 11
DEF S_T2 = 12
DEF S_T3 = 13
DEF S_EXP6 = 14
DEF S_SRC6 = 15
DEF S_DST6 = 16
DEF S_HOP6 = 17
DEF NSLOTS = 18
DEF FIELD = 24  # sizeof(Field)


cdef struct Field:
    int64_t ival  # an integer's value (T_INT)
    int32_t start  # offset in the record's text: a string's contents (no quotes), else the value's text
    int32_t length
    int32_t vtype  # T_ABSENT: not in the record
    int32_t unused
