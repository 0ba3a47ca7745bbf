# ``threading.Lock`` taken and released in C, for the feed's per-line lock
# (ribd._loadline). Why: ``lock.acquire()`` is a METH_VARARGS|METH_KEYWORDS
# method, so each call parsed its (empty) arguments with
# ``PyArg_ParseTupleAndKeywords`` before its one non-blocking try: ~470
# instructions a line, ~550 with the release (2.1-2.2% of the feed loop by
# callgrind, synthetic two routers and real router 1; stop 37, decode7).
#
# What CPython 3.11/3.12 do for an uncontended ``acquire()`` is exactly this
# (Modules/_threadmodule.c: ``acquire_timed`` tries ``PyThread_acquire_lock_timed``
# with no wait and the GIL held, then ``self->locked = 1``); ``release()`` checks
# ``locked``, clears it and calls ``PyThread_release_lock``. Those two fields of
# the lock object are private, so ``fastlock_layout_ok`` checks the layout on a
# live lock before any use: the type's sizes and weak-reference offset, and that
# the fields move as ``acquire`` / ``release`` / ``locked()`` say. Anything else
# (another interpreter, a contended lock, a release of a lock not held) goes
# through the lock's own methods, which block with the GIL released, run
# signal handlers and raise as before.

cdef extern from *:
    """
    #include "pythread.h"
    #if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030D0000
    #define RIBD_FASTLOCK 1
    typedef struct {
        PyObject_HEAD
        PyThread_type_lock lock_lock;
        PyObject *in_weakreflist;
        char locked;
    } ribd_lockobject;
    /* The layout of ``_thread.lock`` as declared above: its sizes, then its
       fields against the lock's own methods (the caller passes a new lock). */
    static int ribd_fastlock_layout(PyObject *lock) {
        PyTypeObject *t = Py_TYPE(lock);
        ribd_lockobject *l = (ribd_lockobject *)lock;
        PyObject *r;
        int held;
        if (t->tp_basicsize != (Py_ssize_t)sizeof(ribd_lockobject)
            || t->tp_weaklistoffset != (Py_ssize_t)offsetof(ribd_lockobject, in_weakreflist)
            || l->lock_lock == NULL || l->locked != 0 || l->in_weakreflist != NULL)
            return 0;
        r = PyObject_CallMethod(lock, "acquire", NULL);
        if (r == NULL) { PyErr_Clear(); return 0; }
        Py_DECREF(r);
        held = l->locked == 1
            && PyThread_acquire_lock_timed(l->lock_lock, 0, 0) == PY_LOCK_FAILURE;
        r = PyObject_CallMethod(lock, "release", NULL);
        if (r == NULL) { PyErr_Clear(); return 0; }
        Py_DECREF(r);
        if (!held || l->locked != 0)
            return 0;
        /* Taken here: ``locked()`` must say so, and ``release()`` free it. */
        if (PyThread_acquire_lock_timed(l->lock_lock, 0, 0) != PY_LOCK_ACQUIRED)
            return 0;
        l->locked = 1;
        r = PyObject_CallMethod(lock, "locked", NULL);
        held = r == Py_True;
        Py_XDECREF(r);
        if (r == NULL) PyErr_Clear();
        r = PyObject_CallMethod(lock, "release", NULL);
        if (r == NULL) { PyErr_Clear(); return 0; }
        Py_DECREF(r);
        return held && l->locked == 0
            && PyThread_acquire_lock_timed(l->lock_lock, 0, 0) == PY_LOCK_ACQUIRED
            && (PyThread_release_lock(l->lock_lock), 1);
    }
    /* 1: taken (as an uncontended ``acquire()``); 0: not (held elsewhere). */
    static inline int ribd_fastlock_try(PyObject *lock) {
        ribd_lockobject *l = (ribd_lockobject *)lock;
        if (PyThread_acquire_lock_timed(l->lock_lock, 0, 0) != PY_LOCK_ACQUIRED)
            return 0;
        l->locked = 1;
        return 1;
    }
    /* 1: released (as ``release()``); 0: not held, nothing done. */
    static inline int ribd_fastlock_release(PyObject *lock) {
        ribd_lockobject *l = (ribd_lockobject *)lock;
        if (!l->locked)
            return 0;
        l->locked = 0;
        PyThread_release_lock(l->lock_lock);
        return 1;
    }
    #else
    #define RIBD_FASTLOCK 0
    static int ribd_fastlock_layout(PyObject *lock) { return 0; }
    static inline int ribd_fastlock_try(PyObject *lock) { return 0; }
    static inline int ribd_fastlock_release(PyObject *lock) { return 0; }
    #endif
    """
    bint fastlock_layout_ok "ribd_fastlock_layout"(object lock) noexcept
    bint fastlock_try "ribd_fastlock_try"(object lock) noexcept
    bint fastlock_release "ribd_fastlock_release"(object lock) noexcept
