/*
 * The submission and completion queues of one mapped io_uring, compiled.
 *
 * The twin of uringloop/_ring/queues.py, which is the readable reference: the same class
 * (Queues), the same arguments, methods and behaviour. What differs is the memory
 * ordering and the cost:
 *
 *  - The shared ring indexes are read and written with C11 atomics, as liburing's
 *    io_uring_smp_load_acquire / io_uring_smp_store_release do: the CQ tail and the SQ
 *    head (written by the kernel) are loaded with acquire, the SQ tail and the CQ head
 *    (written by us) are stored with release, and the flag words with relaxed accesses
 *    (READ_ONCE / WRITE_ONCE). So this class is correct on any CPU, with or without
 *    IORING_SETUP_DEFER_TASKRUN: ordered() is True.
 *  - io_uring_enter(2) is called directly. One that waits for completions releases the
 *    GIL; one that does not (the loop's submit and reap) keeps it, as syscalls.py does.
 *
 * Invariant: an SQE is published (the SQ tail store) only after it was fully written, and
 * the CQ head moves past a CQE only after the CQE was copied out.
 * Invariant: the object holds buffer exports of the mapped regions from construction to
 * close(), so they cannot be unmapped under it; after close() no method touches them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include "../_twin_helpers.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef __NR_io_uring_enter
#define __NR_io_uring_enter 426
#endif

#define SQE_SIZE 64
#define IORING_ENTER_GETEVENTS 1u
#define IORING_SQ_CQ_OVERFLOW (1u << 1)
#define IORING_SQ_TASKRUN (1u << 2)
#define IORING_CQ_EVENTFD_DISABLED (1u << 0)

struct cqe {
    uint64_t user_data;
    int32_t res;
    uint32_t flags;
};

typedef struct {
    PyObject_HEAD
    int fd;
    unsigned int sq_entries;
    unsigned int cq_entries;
    char closed;
    uint32_t *sq_head, *sq_tail, *sq_flags;
    uint32_t *cq_head, *cq_tail, *cq_flags;
    uint32_t sq_mask, cq_mask;
    struct cqe *cqes;
    uint32_t tail; /* local SQ tail: [published tail, tail) are reserved, not published */
    Py_buffer sq_view, cq_view, sqe_view;
    char have_sq_view, have_cq_view, have_sqe_view;
    char *sqes; /* the SQE array (sqes=), or NULL: slots are cleared as they are reserved */
    PyObject *faults; /* syscalls' module dict: an armed fault sends enter() to Python */
    PyObject *python_enter; /* syscalls.enter */
} Queues;

static PyObject *faults_key; /* "_faults", interned */

static inline uint32_t load_acquire(uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void store_release(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline uint32_t load_relaxed(uint32_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }

static int
check_open(Queues *self)
{
    if (self->closed) {
        PyErr_SetString(PyExc_ValueError, "the ring's queues are closed");
        return -1;
    }
    return 0;
}

static int
region(Py_buffer *view, Py_ssize_t offset, Py_ssize_t size, const char *what)
{
    if (offset < 0 || size < 0 || offset > view->len - size) {
        PyErr_Format(PyExc_ValueError, "%s lies outside the mapped ring", what);
        return -1;
    }
    return 0;
}

static void release_views(Queues *self);

static int
attach(Queues *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"fd", "sq_entries", "cq_entries", "sq_map", "cq_map", "sq_off",
                             "cq_off", "sqes", NULL};
    int fd;
    unsigned long sq_entries, cq_entries;
    PyObject *sq_map, *cq_map, *sqes = Py_None;
    Py_ssize_t sh, st, sm, sf, sa, ch, ct, cm, cc, cf;
    if (self->have_sq_view || self->have_cq_view || self->python_enter != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Queues is already initialised");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "ikkOO(nnnnn)(nnnnn)|O", kwlist, &fd,
                                     &sq_entries, &cq_entries, &sq_map, &cq_map, &sh, &st, &sm,
                                     &sf, &sa, &ch, &ct, &cm, &cc, &cf, &sqes))
        return -1;
    if (sq_entries == 0 || cq_entries == 0) {
        PyErr_SetString(PyExc_ValueError, "ring sizes must be positive");
        return -1;
    }
    if (sq_entries > UINT32_MAX || cq_entries > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "ring sizes must fit a u32");
        return -1;
    }
    if (PyObject_GetBuffer(sq_map, &self->sq_view, PyBUF_WRITABLE) < 0)
        return -1;
    self->have_sq_view = 1;
    if (PyObject_GetBuffer(cq_map, &self->cq_view, PyBUF_WRITABLE) < 0)
        return -1;
    self->have_cq_view = 1;
    if (sqes != Py_None) {
        if (PyObject_GetBuffer(sqes, &self->sqe_view, PyBUF_WRITABLE) < 0)
            return -1;
        self->have_sqe_view = 1;
        if (self->sqe_view.len < (Py_ssize_t)sq_entries * SQE_SIZE) {
            PyErr_SetString(PyExc_ValueError, "the SQE array is shorter than the SQ");
            return -1;
        }
        self->sqes = self->sqe_view.buf;
    }
    Py_buffer *sq = &self->sq_view, *cq = &self->cq_view;
    if (region(sq, sh, 4, "the SQ head") || region(sq, st, 4, "the SQ tail") ||
        region(sq, sm, 4, "the SQ mask") || region(sq, sf, 4, "the SQ flags") ||
        region(sq, sa, (Py_ssize_t)sq_entries * 4, "the SQ array") ||
        region(cq, ch, 4, "the CQ head") || region(cq, ct, 4, "the CQ tail") ||
        region(cq, cm, 4, "the CQ mask") || region(cq, cf, 4, "the CQ flags") ||
        region(cq, cc, (Py_ssize_t)cq_entries * (Py_ssize_t)sizeof(struct cqe), "the CQEs"))
        return -1;
    char *sqb = sq->buf, *cqb = cq->buf;
    if ((sh | st | sm | sf | sa | ch | ct | cm | cf) & 3 || cc & 7) {
        PyErr_SetString(PyExc_ValueError, "misaligned ring offsets");
        return -1;
    }
    self->fd = fd;
    self->sq_entries = (unsigned int)sq_entries;
    self->cq_entries = (unsigned int)cq_entries;
    self->sq_head = (uint32_t *)(sqb + sh);
    self->sq_tail = (uint32_t *)(sqb + st);
    self->sq_flags = (uint32_t *)(sqb + sf);
    self->sq_mask = *(uint32_t *)(sqb + sm);
    self->cq_head = (uint32_t *)(cqb + ch);
    self->cq_tail = (uint32_t *)(cqb + ct);
    self->cq_flags = (uint32_t *)(cqb + cf);
    self->cq_mask = *(uint32_t *)(cqb + cm);
    self->cqes = (struct cqe *)(cqb + cc);
    if (self->sq_mask >= sq_entries || self->cq_mask >= cq_entries) {
        PyErr_SetString(PyExc_ValueError, "ring masks larger than the ring sizes");
        return -1;
    }
    /* Identity SQ index array: slot i always names SQE i, so an SQE's slot is tail & mask. */
    uint32_t *array = (uint32_t *)(sqb + sa);
    for (uint32_t i = 0; i < (uint32_t)sq_entries; i++)
        array[i] = i;
    self->tail = *self->sq_tail;
    PyObject *syscalls = PyImport_ImportModule("uringloop._ring.syscalls");
    if (syscalls == NULL)
        return -1;
    self->python_enter = PyObject_GetAttrString(syscalls, "enter");
    self->faults = PyModule_GetDict(syscalls);
    Py_XINCREF(self->faults);
    Py_DECREF(syscalls);
    if (self->python_enter == NULL || self->faults == NULL)
        return -1;
    self->closed = 0; /* only now may the methods touch the rings */
    return 0;
}

/* A failed __init__ keeps no export of the mapped regions (they stay closable). */
static int
Queues_init(Queues *self, PyObject *args, PyObject *kwds)
{
    if (attach(self, args, kwds) == 0)
        return 0;
    if (self->python_enter == NULL)
        release_views(self);
    return -1;
}

static void
release_views(Queues *self)
{
    if (self->have_sq_view) {
        PyBuffer_Release(&self->sq_view);
        self->have_sq_view = 0;
    }
    if (self->have_cq_view) {
        PyBuffer_Release(&self->cq_view);
        self->have_cq_view = 0;
    }
    if (self->have_sqe_view) {
        PyBuffer_Release(&self->sqe_view);
        self->have_sqe_view = 0;
    }
    self->sqes = NULL;
}

static void
Queues_dealloc(Queues *self)
{
    release_views(self);
    Py_CLEAR(self->faults);
    Py_CLEAR(self->python_enter);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Queues_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    Queues *self = (Queues *)type->tp_alloc(type, 0);
    if (self != NULL) {
        self->fd = -1;
        self->closed = 1; /* until __init__ succeeds: no method touches unset pointers */
    }
    return (PyObject *)self;
}

/* A count argument as a C long; values beyond a long saturate, as the twin's ints do. */
static int
as_count(PyObject *arg, long *out)
{
    int overflow;
    long v = PyLong_AsLongAndOverflow(arg, &overflow);
    if (v == -1 && PyErr_Occurred())
        return -1;
    *out = overflow > 0 ? LONG_MAX : overflow < 0 ? LONG_MIN : v;
    return 0;
}

/* -- submission ------------------------------------------------------------------------ */

/* Invariant: a slot handed out (next_sqe, reserve) holds a NOP with user_data 0 (all
 * zeroes) until its caller writes it, so that a slot its caller could not write (an
 * exception from a signal handler before the driver gave it back) makes the kernel
 * complete a NOP nobody waits for, never run the stale entry it held (whose memory may
 * be gone). The reaper skips a user_data it does not know. */
static void
clear_slots(Queues *self, uint32_t tail, long count)
{
    if (self->sqes == NULL)
        return;
    for (long i = 0; i < count; i++)
        memset(self->sqes + (size_t)((tail + (uint32_t)i) & self->sq_mask) * SQE_SIZE, 0, SQE_SIZE);
}

static PyObject *
Queues_next_sqe(Queues *self, PyObject *unused)
{
    if (check_open(self))
        return NULL;
    uint32_t tail = self->tail;
    if (tail - load_acquire(self->sq_head) >= self->sq_entries)
        return PyLong_FromLong(-1);
    clear_slots(self, tail, 1);
    self->tail = tail + 1;
    return PyLong_FromUnsignedLong((unsigned long)(tail & self->sq_mask) * SQE_SIZE);
}

static PyObject *
Queues_reserve(Queues *self, PyObject *arg)
{
    long count;
    /* The count first: its __index__ may close the queues (and unmap the rings). */
    if (as_count(arg, &count))
        return NULL;
    if (check_open(self))
        return NULL;
    uint32_t tail = self->tail;
    long free_slots = (long)self->sq_entries - (long)(tail - load_acquire(self->sq_head));
    if (count > free_slots)
        count = free_slots;
    if (count <= 0)
        return PyList_New(0);
    PyObject *list = PyList_New(count);
    if (list == NULL)
        return NULL;
    for (long i = 0; i < count; i++) {
        PyObject *off = PyLong_FromUnsignedLong(
            (unsigned long)((tail + (uint32_t)i) & self->sq_mask) * SQE_SIZE);
        if (off == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, off);
    }
    clear_slots(self, tail, count);
    self->tail = tail + (uint32_t)count;
    return list;
}

static uint32_t
pending(Queues *self)
{
    return self->closed ? 0 : self->tail - load_acquire(self->sq_head);
}

static PyObject *
Queues_pending(Queues *self, PyObject *unused)
{
    return PyLong_FromUnsignedLong(pending(self));
}

static PyObject *
Queues_unreserve(Queues *self, PyObject *arg)
{
    long count;
    /* The count first: its __index__ may close the queues (and unmap the rings). */
    if (as_count(arg, &count))
        return NULL;
    if (check_open(self))
        return NULL;
    uint32_t have = pending(self);
    if (count > (long)have)
        count = (long)have;
    if (count < 0)
        count = 0;
    self->tail -= (uint32_t)count;
    store_release(self->sq_tail, self->tail);
    Py_RETURN_NONE;
}

static PyObject *
Queues_enter(Queues *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_open(self))
        return NULL;
    if (nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "enter(min_complete=0, flags=0, /)");
        return NULL;
    }
    unsigned long min_complete = 0, flags = 0;
    if (nargs > 0 && (min_complete = PyLong_AsUnsignedLong(args[0])) == (unsigned long)-1 &&
        PyErr_Occurred())
        return NULL;
    if (nargs > 1 && (flags = PyLong_AsUnsignedLong(args[1])) == (unsigned long)-1 &&
        PyErr_Occurred())
        return NULL;
    if (min_complete > UINT32_MAX || flags > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "enter() arguments must fit a u32");
        return NULL;
    }
    if (min_complete)
        flags |= IORING_ENTER_GETEVENTS;
    uint32_t to_submit = self->tail - load_acquire(self->sq_head);
    store_release(self->sq_tail, self->tail); /* the SQEs were written: publish them */
    /* A test armed a fault (syscalls.inject): the Python enter takes it. */
    PyObject *armed = PyDict_GetItemWithError(self->faults, faults_key);
    if (armed == NULL && PyErr_Occurred())
        return NULL;
    if (armed != NULL && armed != Py_None)
        return PyObject_CallFunction(self->python_enter, "iIkk", self->fd, to_submit,
                                     min_complete, flags);
    long res;
    if (min_complete) {
        Py_BEGIN_ALLOW_THREADS
        res = syscall(__NR_io_uring_enter, self->fd, to_submit, (unsigned)min_complete,
                      (unsigned)flags, NULL, 0);
        Py_END_ALLOW_THREADS
    } else {
        res = syscall(__NR_io_uring_enter, self->fd, to_submit, 0u, (unsigned)flags, NULL, 0);
    }
    if (res < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromLong(res);
}

static PyObject *
Queues_needs_enter(Queues *self, PyObject *unused)
{
    if (check_open(self))
        return NULL;
    return PyBool_FromLong(load_relaxed(self->sq_flags) & (IORING_SQ_CQ_OVERFLOW | IORING_SQ_TASKRUN));
}

static PyObject *
Queues_cq_overflowed(Queues *self, PyObject *unused)
{
    if (check_open(self))
        return NULL;
    return PyBool_FromLong(load_relaxed(self->sq_flags) & IORING_SQ_CQ_OVERFLOW);
}

/* -- completion ------------------------------------------------------------------------ */

static PyObject *
Queues_cq_ready(Queues *self, PyObject *unused)
{
    if (check_open(self))
        return NULL;
    return PyLong_FromUnsignedLong(load_acquire(self->cq_tail) - *self->cq_head);
}

/* reap_columns() (consume: the head moves past the CQEs copied out) and peek_columns()
 * (it does not: the CQ head past them is returned as a fourth item, for consume_to()). */
static PyObject *
columns(Queues *self, PyObject *const *args, Py_ssize_t nargs, int consume)
{
    long limit = 0;
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError,
                        consume ? "reap_columns(limit=0, /)" : "peek_columns(limit=0, /)");
        return NULL;
    }
    if (nargs == 1 && as_count(args[0], &limit))
        return NULL;
    for (;;) {
        if (check_open(self))
            return NULL;
        uint32_t head = *self->cq_head; /* only we write it */
        uint32_t count = load_acquire(self->cq_tail) - head;
        if (limit > 0 && (unsigned long)count > (unsigned long)limit)
            count = (uint32_t)limit;
        PyObject *uds = PyList_New(count), *res = PyList_New(count), *flags = PyList_New(count);
        PyObject *out = PyTuple_New(consume ? 3 : 4);
        if (uds == NULL || res == NULL || flags == NULL || out == NULL) {
            Py_XDECREF(uds);
            Py_XDECREF(res);
            Py_XDECREF(flags);
            Py_XDECREF(out);
            return NULL; /* nothing consumed: the head did not move */
        }
        PyTuple_SET_ITEM(out, 0, uds);
        PyTuple_SET_ITEM(out, 1, res);
        PyTuple_SET_ITEM(out, 2, flags);
        /* Those allocations may have run Python code (a GC callback, a __del__) that
         * closed the ring or reaped: look again before touching the CQEs. From here on
         * only ints are allocated, which never runs a collection. */
        if (self->closed || *self->cq_head != head) {
            Py_DECREF(out);
            continue;
        }
        for (uint32_t i = 0; i < count; i++) {
            const struct cqe *e = &self->cqes[(head + i) & self->cq_mask];
            PyObject *u = PyLong_FromUnsignedLongLong(e->user_data);
            PyObject *r = PyLong_FromLong(e->res);
            PyObject *f = PyLong_FromUnsignedLong(e->flags);
            if (u == NULL || r == NULL || f == NULL) {
                Py_XDECREF(u);
                Py_XDECREF(r);
                Py_XDECREF(f);
                Py_DECREF(out);
                return NULL; /* nothing consumed: the head did not move */
            }
            PyList_SET_ITEM(uds, i, u);
            PyList_SET_ITEM(res, i, r);
            PyList_SET_ITEM(flags, i, f);
        }
        if (!consume) {
            PyObject *end = PyLong_FromUnsignedLong((uint32_t)(head + count));
            if (end == NULL) {
                Py_DECREF(out);
                return NULL;
            }
            PyTuple_SET_ITEM(out, 3, end);
            return out;
        }
        /* Every CQE was copied out: the kernel may reuse their slots. */
        if (count)
            store_release(self->cq_head, head + count);
        return out;
    }
}

static PyObject *
Queues_reap_columns(Queues *self, PyObject *const *args, Py_ssize_t nargs)
{
    return columns(self, args, nargs, 1);
}

static PyObject *
Queues_peek_columns(Queues *self, PyObject *const *args, Py_ssize_t nargs)
{
    return columns(self, args, nargs, 0);
}

static PyObject *
Queues_consume_to(Queues *self, PyObject *arg)
{
    if (check_open(self))
        return NULL;
    unsigned long end = PyLong_AsUnsignedLong(arg);
    if (end == (unsigned long)-1 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_ValueError)) { /* negative: as the twin */
            PyErr_Clear();
            PyErr_SetString(PyExc_OverflowError, "consume_to() takes a u32");
        }
        return NULL;
    }
    if (end > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "consume_to() takes a u32");
        return NULL;
    }
    uint32_t head = *self->cq_head; /* only we write it */
    uint32_t ahead = (uint32_t)end - head;
    if (ahead == 0 || ahead > load_acquire(self->cq_tail) - head)
        return PyLong_FromLong(0);
    store_release(self->cq_head, (uint32_t)end);
    return PyLong_FromUnsignedLong(ahead);
}

static PyObject *
Queues_set_eventfd_enabled(Queues *self, PyObject *arg)
{
    if (check_open(self))
        return NULL;
    int enabled = PyObject_IsTrue(arg);
    if (enabled < 0)
        return NULL;
    uint32_t flags = load_relaxed(self->cq_flags);
    if (enabled)
        flags &= ~IORING_CQ_EVENTFD_DISABLED;
    else
        flags |= IORING_CQ_EVENTFD_DISABLED;
    __atomic_store_n(self->cq_flags, flags, __ATOMIC_RELAXED);
    Py_RETURN_NONE;
}

static PyObject *
Queues_close(Queues *self, PyObject *unused)
{
    self->closed = 1;
    release_views(self);
    Py_RETURN_NONE;
}

static PyObject *
Queues_ordered(PyObject *unused_cls, PyObject *unused)
{
    Py_RETURN_TRUE;
}

static PyMethodDef Queues_methods[] = {
    {"ordered", (PyCFunction)Queues_ordered, METH_NOARGS | METH_STATIC,
     "Whether this implementation's accesses order as acquire/release: always (C atomics)."},
    {"next_sqe", (PyCFunction)Queues_next_sqe, METH_NOARGS,
     "Reserve the next SQE; its byte offset in the SQE array, or -1 if the SQ is full."},
    {"reserve", (PyCFunction)Queues_reserve, METH_O,
     "Reserve up to `count` SQEs; return their byte offsets (maybe fewer, maybe none)."},
    {"pending", (PyCFunction)Queues_pending, METH_NOARGS,
     "SQEs reserved but not yet consumed by the kernel (0 once closed)."},
    {"unreserve", (PyCFunction)Queues_unreserve, METH_O,
     "Take back the last `count` SQEs the kernel has not consumed."},
    {"enter", (PyCFunction)(void (*)(void))Queues_enter, METH_FASTCALL,
     "Publish the reserved SQEs and call io_uring_enter(2) once; the SQEs consumed."},
    {"needs_enter", (PyCFunction)Queues_needs_enter, METH_NOARGS,
     "True when the kernel wants an enter: overflowed CQEs or task work."},
    {"cq_overflowed", (PyCFunction)Queues_cq_overflowed, METH_NOARGS, NULL},
    {"cq_ready", (PyCFunction)Queues_cq_ready, METH_NOARGS, "CQEs posted and not yet reaped."},
    {"peek_columns", (PyCFunction)(void (*)(void))Queues_peek_columns, METH_FASTCALL,
     "reap_columns() without consuming, and the CQ head past those CQEs."},
    {"consume_to", (PyCFunction)Queues_consume_to, METH_O,
     "Advance the CQ head to a peek_columns() end, unless it is there or past it, never\n"
     "past the CQEs posted; how many that consumed."},
    {"reap_columns", (PyCFunction)(void (*)(void))Queues_reap_columns, METH_FASTCALL,
     "Consume posted CQEs (all, or at most `limit`): (user_data values, results, flags)."},
    {"set_eventfd_enabled", (PyCFunction)Queues_set_eventfd_enabled, METH_O,
     "Toggle IORING_CQ_EVENTFD_DISABLED (the eventfd stays registered)."},
    {"close", (PyCFunction)Queues_close, METH_NOARGS,
     "Let go of the mapped memory. Idempotent."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Queues_members[] = {
    {"fd", T_INT, offsetof(Queues, fd), READONLY, NULL},
    {"sq_entries", T_UINT, offsetof(Queues, sq_entries), READONLY, NULL},
    {"cq_entries", T_UINT, offsetof(Queues, cq_entries), READONLY, NULL},
    {"closed", T_BOOL, offsetof(Queues, closed), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject QueuesType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "uringloop._ring._queues.Queues",
    .tp_doc = "The SQ and CQ of one mapped io_uring (see uringloop/_ring/queues.py).",
    .tp_basicsize = sizeof(Queues),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = Queues_new,
    .tp_init = (initproc)Queues_init,
    .tp_dealloc = (destructor)Queues_dealloc,
    .tp_methods = Queues_methods,
    .tp_members = Queues_members,
};

static struct PyModuleDef queues_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "uringloop._ring._queues",
    .m_doc = "The submission and completion queues of one mapped io_uring, compiled.",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__queues(void)
{
    if (PyType_Ready(&QueuesType) < 0)
        return NULL;
    faults_key = PyUnicode_InternFromString("_faults");
    if (faults_key == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&queues_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&QueuesType);
    if (PyModule_AddObject(m, "Queues", (PyObject *)&QueuesType) < 0) {
        Py_DECREF(&QueuesType);
        Py_DECREF(m);
        return NULL;
    }
    return with_source_digest(m);
}
