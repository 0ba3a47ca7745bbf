# cython: language_level=3
"""Whether and where an UPDATE's prefix keys repeat (``ribd._repeats``), for
the compiled load paths (``ribd._apply``, ``ribd._ribload``, ``ribd._wide``)."""


cdef Py_ssize_t first_repeat(object seq, Py_ssize_t start, Py_ssize_t n) except -2
