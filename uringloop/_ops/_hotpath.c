/*
 * The hot path of operations, compiled: a read's core, the two loops that move operations
 * in and out of the ring, and the kernel's first attempts at an open and at a read, made by
 * the caller.
 *
 * The twin of uringloop/_ops/hotpath.py, which is the readable reference: the same classes
 * (ReadCore, PositionedCore, CopyRing), functions (write_entries, deliver, open_cached,
 * read_cached, read_many_cached), arguments, attributes and behaviour, down to the order of
 * the calls made on the pool, the waiter and each operation. What differs is the cost: the SQE is
 * written with one copy, the result bytes are copied straight from the slot's address,
 * and the loops reach the fields of a plain read (ReadCore's) or a plain positioned
 * operation (PositionedCore's) without attribute lookups. One difference is not in the
 * outcome but in the memory: a read into its result (into_result, for a descriptor known
 * not to be O_DIRECT) has the kernel write into the bytes object it returns, instead of a
 * slot the result is copied from; it takes no slot. Another is in the system calls:
 * read_many_cached, given a CopyRing that has a ring, makes a batch's copies through that
 * small io_uring, one io_uring_enter for up to 64 reads of regular files or block
 * devices, where the reference makes one preadv2 each (the same answers). It is also the
 * twin of table.py's _open_inline, open_fd's inline attempt with its checks (open_inline,
 * which install_open_inline() returns): made here for a str path, the reference's
 * otherwise.
 *
 * Invariant: the slot (or the ScratchBuffer, in `refs`, or the result bytes a read into
 * its result reads into, in `into`) is held from construction until complete() or
 * release(): the memory the SQE points at outlives the kernel's use of it. An operation
 * freed or cleared while submitted (its loop collected with it in flight) leaks `into`
 * rather than free it under the kernel.
 * Invariant: complete() gives the slot back exactly once, whatever the delivery raises.
 * Invariant: an operation is in the in-flight table from the moment its SQE is written
 * (write_entries) until its CQE is reaped (deliver), and in the backlog before that.
 */
#include "../_twin_helpers.h"
#include <structmember.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the SQE is written in native byte order, which must be little-endian (as hotpath.py's)"
#endif

#define IORING_OP_READ 22
#define IORING_OP_WRITE 23
/* The pool's smallest slot size (_buffers.SLOT_SIZES[0]): its free list is used directly. */
#define SMALL 4096
#define MAX_RW_COUNT 0x7FFFF000LL /* the most one read(2) returns (INT_MAX & PAGE_MASK) */

enum { QUEUED = 0, SUBMITTED = 1, DONE = 2 };

struct sqe { /* struct io_uring_sqe as a READ fills it */
    uint8_t opcode;
    uint8_t flags;
    uint16_t ioprio;
    int32_t fd;
    uint64_t off;
    uint64_t addr;
    uint32_t len;
    uint32_t rw_flags;
    uint64_t user_data;
    uint16_t buf_index;
    uint16_t personality;
    int32_t splice_fd_in;
    uint64_t addr3;
    uint64_t pad;
};
_Static_assert(sizeof(struct sqe) == 64, "an SQE is 64 bytes");

typedef struct {
    PyObject_HEAD
    int fd;
    unsigned long long offset; /* as the u64 the SQE holds */
    unsigned long long address;
    Py_ssize_t size;
    Py_ssize_t slot; /* the pool slot held, or -1 */
    int state;
    unsigned long long user_data;
    PyObject *pool;
    PyObject *waiter;
    PyObject *spec;
    PyObject *args;
    PyObject *kwargs;
    PyObject *refs;
    PyObject *data;
    PyObject *filename;
    PyObject *filename2;
    PyObject *into; /* the bytes the kernel reads into (into_result), or NULL: not shared */
} ReadCore;

static PyTypeObject ReadCoreType;

/* tp_traverse's and tp_clear's part for the fields every operation has (Operation's). */
#define VISIT_OPERATION_FIELDS(self)                                                           \
    do {                                                                                       \
        Py_VISIT((self)->waiter);                                                              \
        Py_VISIT((self)->spec);                                                                \
        Py_VISIT((self)->args);                                                                \
        Py_VISIT((self)->kwargs);                                                              \
        Py_VISIT((self)->refs);                                                                \
        Py_VISIT((self)->data);                                                                \
        Py_VISIT((self)->filename);                                                            \
        Py_VISIT((self)->filename2);                                                           \
    } while (0)
#define CLEAR_OPERATION_FIELDS(self)                                                           \
    do {                                                                                       \
        Py_CLEAR((self)->waiter);                                                              \
        Py_CLEAR((self)->spec);                                                                \
        Py_CLEAR((self)->args);                                                                \
        Py_CLEAR((self)->kwargs);                                                              \
        Py_CLEAR((self)->refs);                                                                \
        Py_CLEAR((self)->data);                                                                \
        Py_CLEAR((self)->filename);                                                            \
        Py_CLEAR((self)->filename2);                                                           \
    } while (0)

/* Set at import: the collaborators hotpath.py imports. */
static PyObject *scratch_type;  /* _buffers.ScratchBuffer */
static PyObject *os_error;      /* _errors.os_error */
static PyObject *no_kwargs;     /* state.NO_KWARGS */
static PyObject *struct_error;  /* struct.error, as pack_into raises it */
static PyObject *empty_tuple;

static PyObject *s_free_small, *s_alloc, *s_address_of, *s_free_list_of, *s_free, *s_done,
    *s_set_result, *s_set_exception, *s_take, *s_release, *s_address, *s_multi, *s_prep,
    *s_complete, *s_complete_part, *s_complete_parts, *s_popleft, *s_state, *s_waiter, *s_user_data,
    *s_nbytes;
static PyObject *queued_obj, *submitted_obj, *done_obj; /* the states as ints, for other operations */
static PyObject *canceled_obj;                        /* -ECANCELED, a cancelled request's result */

/* Replace a field's reference; the field owns `value` (a new reference) afterwards. */
static inline void
set_field(PyObject **field, PyObject *value)
{
    PyObject *old = *field;
    *field = value;
    Py_XDECREF(old);
}

/* Drop the bytes read into, unless the kernel may still write there: a submitted read's
 * are leaked instead (nothing else refers to them). */
static void
let_go_of_into(ReadCore *self)
{
    PyObject *into = self->into;
    self->into = NULL;
    if (into != NULL && self->state != SUBMITTED)
        Py_DECREF(into);
}

static int
ReadCore_traverse(ReadCore *self, visitproc visit, void *arg)
{
    Py_VISIT(self->pool);
    VISIT_OPERATION_FIELDS(self);
    return 0;
}

static int
ReadCore_clear(ReadCore *self)
{
    Py_CLEAR(self->pool);
    CLEAR_OPERATION_FIELDS(self);
    let_go_of_into(self);
    return 0;
}

static void
ReadCore_dealloc(ReadCore *self)
{
    PyObject_GC_UnTrack(self);
    Py_TRASHCAN_BEGIN(self, ReadCore_dealloc)
    ReadCore_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
    Py_TRASHCAN_END
}

static PyObject *
ReadCore_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    ReadCore *self = (ReadCore *)type->tp_alloc(type, 0);
    if (self != NULL)
        self->slot = -1;
    return (PyObject *)self;
}

/* pool.free_small.pop() if it has an entry and size <= SMALL, else pool.alloc(size):
 * the slot id, -1 for none, -2 with an exception set. */
static Py_ssize_t
take_slot(PyObject *pool, Py_ssize_t size)
{
    Py_ssize_t slot;
    if (size <= SMALL) {
        PyObject *free_small = PyObject_GetAttr(pool, s_free_small);
        if (free_small == NULL)
            return -2;
        if (!PyList_Check(free_small)) {
            Py_DECREF(free_small);
            PyErr_SetString(PyExc_TypeError, "the pool's free_small must be a list");
            return -2;
        }
        Py_ssize_t n = PyList_GET_SIZE(free_small);
        if (n > 0) {
            slot = PyLong_AsSsize_t(PyList_GET_ITEM(free_small, n - 1));
            if (slot < 0) {
                if (!PyErr_Occurred())
                    PyErr_Format(PyExc_ValueError, "the pool's free list holds slot %zd", slot);
                Py_DECREF(free_small);
                return -2;
            }
            int failed = PyList_SetSlice(free_small, n - 1, n, NULL);
            Py_DECREF(free_small);
            return failed ? -2 : slot;
        }
        Py_DECREF(free_small);
    }
    PyObject *size_obj = PyLong_FromSsize_t(size);
    if (size_obj == NULL)
        return -2;
    PyObject *got = PyObject_CallMethodOneArg(pool, s_alloc, size_obj);
    Py_DECREF(size_obj);
    if (got == NULL)
        return -2;
    slot = PyLong_AsSsize_t(got);
    Py_DECREF(got);
    if (slot == -1 && PyErr_Occurred())
        return -2;
    return slot < 0 ? -1 : slot;
}

static int
ReadCore_init(ReadCore *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"fd", "size", "offset", "pool", "into_result", NULL};
    int fd;
    Py_ssize_t size;
    long long offset;
    PyObject *pool;
    int into_result = 0;
    Py_ssize_t nargs = PyTuple_GET_SIZE(args);
    if (kwds == NULL && (nargs == 4 || (nargs == 5 && PyBool_Check(PyTuple_GET_ITEM(args, 4))))
        && PyLong_CheckExact(PyTuple_GET_ITEM(args, 0))
        && PyLong_CheckExact(PyTuple_GET_ITEM(args, 1))
        && PyLong_CheckExact(PyTuple_GET_ITEM(args, 2))) {
        /* The hot path (Loop.pread): positional arguments, three exact ints, a bool. */
        long fd_long = PyLong_AsLong(PyTuple_GET_ITEM(args, 0));
        if (fd_long == -1 && PyErr_Occurred())
            return -1;
        if (fd_long < INT_MIN || fd_long > INT_MAX) {
            PyErr_SetString(PyExc_OverflowError, "signed integer is greater than maximum");
            return -1;
        }
        fd = (int)fd_long;
        size = PyLong_AsSsize_t(PyTuple_GET_ITEM(args, 1));
        if (size == -1 && PyErr_Occurred())
            return -1;
        offset = PyLong_AsLongLong(PyTuple_GET_ITEM(args, 2));
        if (offset == -1 && PyErr_Occurred())
            return -1;
        pool = PyTuple_GET_ITEM(args, 3);
        into_result = nargs == 5 && PyTuple_GET_ITEM(args, 4) == Py_True;
    }
    else if (!PyArg_ParseTupleAndKeywords(args, kwds, "inLO|p", kwlist, &fd, &size, &offset,
                                          &pool, &into_result)) {
        return -1;
    }
    if (size < 0 || size > MAX_RW_COUNT) {
        PyErr_Format(PyExc_ValueError, "read size %zd out of range [0, %lld]", size, MAX_RW_COUNT);
        return -1;
    }
    let_go_of_into(self); /* (__init__ called again: as the state it was in says) */
    self->state = QUEUED;
    self->user_data = 0;
    set_field(&self->waiter, Py_NewRef(Py_None));
    set_field(&self->filename, Py_NewRef(Py_None));
    set_field(&self->filename2, Py_NewRef(Py_None));
    set_field(&self->data, Py_NewRef(Py_None));
    set_field(&self->spec, Py_NewRef(Py_None));
    set_field(&self->pool, Py_NewRef(pool));
    self->slot = -1;
    unsigned long long address = 0;
    if (into_result && size > 0) {
        /* Private until complete() hands it out (or resizes it): nothing else sees it. */
        self->into = PyBytes_FromStringAndSize(NULL, size);
        if (self->into == NULL)
            return -1;
        address = (unsigned long long)(uintptr_t)PyBytes_AS_STRING(self->into);
    }
    else if (pool != Py_None) {
        Py_ssize_t slot = take_slot(pool, size);
        if (slot == -2)
            return -1;
        self->slot = slot;
        if (slot >= 0) {
            PyObject *address_of = PyObject_GetAttr(pool, s_address_of);
            if (address_of == NULL)
                return -1;
            PyObject *item = PySequence_GetItem(address_of, slot);
            Py_DECREF(address_of);
            if (item == NULL)
                return -1;
            address = PyLong_AsUnsignedLongLong(item);
            Py_DECREF(item);
            if (address == (unsigned long long)-1 && PyErr_Occurred())
                return -1;
        }
    }
    if (self->slot >= 0 || self->into != NULL) {
        set_field(&self->refs, Py_NewRef(empty_tuple));
    }
    else {
        PyObject *size_obj = PyLong_FromSsize_t(size);
        if (size_obj == NULL)
            return -1;
        PyObject *buffer = PyObject_CallOneArg(scratch_type, size_obj);
        Py_DECREF(size_obj);
        if (buffer == NULL)
            return -1;
        PyObject *addr = PyObject_GetAttr(buffer, s_address);
        if (addr == NULL) {
            Py_DECREF(buffer);
            return -1;
        }
        address = PyLong_AsUnsignedLongLong(addr);
        Py_DECREF(addr);
        if (address == (unsigned long long)-1 && PyErr_Occurred()) {
            Py_DECREF(buffer);
            return -1;
        }
        PyObject *refs = PyTuple_Pack(1, buffer);
        Py_DECREF(buffer);
        if (refs == NULL)
            return -1;
        set_field(&self->refs, refs);
    }
    self->fd = fd;
    self->offset = (unsigned long long)offset;
    self->address = address;
    self->size = size;
    return 0;
}

/* Write the whole entry of these fields at byte `off` of the `len`-byte SQ array `buf`; -1
 * with struct.error set (as pack_into raises it) when the 64 bytes do not fit there. */
static int
put_sqe(char *buf, Py_ssize_t len, Py_ssize_t off, uint8_t opcode, int fd, unsigned long long offset,
        unsigned long long address, uint32_t length, unsigned long long user_data)
{
    if (off < 0 || len < 64 || off > len - 64) {
        PyErr_Format(struct_error, "no room for a 64-byte SQE at offset %zd of a %zd-byte buffer",
                     off, len);
        return -1;
    }
    struct sqe e;
    memset(&e, 0, sizeof e);
    e.opcode = opcode;
    e.fd = fd;
    e.off = offset;
    e.addr = address;
    e.len = length;
    e.user_data = user_data;
    memcpy(buf + off, &e, sizeof e);
    return 0;
}

/* A read's READ entry (put_sqe()). */
static int
write_sqe(ReadCore *self, char *buf, Py_ssize_t len, Py_ssize_t off, unsigned long long user_data)
{
    return put_sqe(buf, len, off, IORING_OP_READ, self->fd, self->offset, self->address,
                   (uint32_t)self->size, user_data);
}

/* The SQ array's memory, writable (TypeError as struct's pack_into raises it). */
static int
writable_view(PyObject *sqes, Py_buffer *view)
{
    if (PyObject_GetBuffer(sqes, view, PyBUF_WRITABLE) < 0) {
        if (PyErr_ExceptionMatches(PyExc_BufferError) || PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "argument must be read-write bytes-like object, not %.100s",
                         Py_TYPE(sqes)->tp_name);
        }
        return -1;
    }
    return 0;
}

/* prep(sqes, words, off, user_data) of an entry of these fields: None, or NULL with an
 * error set. */
static PyObject *
prep_entry(PyObject *const *args, Py_ssize_t nargs, uint8_t opcode, int fd, unsigned long long offset,
           unsigned long long address, uint32_t length)
{
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "prep() takes 4 arguments (%zd given)", nargs);
        return NULL;
    }
    Py_ssize_t off = PyLong_AsSsize_t(args[2]);
    if (off == -1 && PyErr_Occurred())
        return NULL;
    unsigned long long user_data = PyLong_AsUnsignedLongLong(args[3]);
    if (user_data == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    Py_buffer view;
    if (writable_view(args[0], &view) < 0)
        return NULL;
    int failed = put_sqe((char *)view.buf, view.len, off, opcode, fd, offset, address, length, user_data);
    PyBuffer_Release(&view);
    if (failed)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
ReadCore_prep(ReadCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    return prep_entry(args, nargs, IORING_OP_READ, self->fd, self->offset, self->address, (uint32_t)self->size);
}

/* pool.free_list_of[slot].append(slot) */
static int
give_back(PyObject *pool, Py_ssize_t slot)
{
    PyObject *lists = PyObject_GetAttr(pool, s_free_list_of);
    if (lists == NULL)
        return -1;
    PyObject *free_list = PySequence_GetItem(lists, slot);
    Py_DECREF(lists);
    if (free_list == NULL)
        return -1;
    PyObject *slot_obj = PyLong_FromSsize_t(slot);
    int failed = slot_obj == NULL || PyList_Append(free_list, slot_obj) < 0;
    Py_XDECREF(slot_obj);
    Py_DECREF(free_list);
    return failed ? -1 : 0;
}

/* 1: the waiter is there and not done; 0: not; -1: done() raised. */
static int
waiting(PyObject *waiter)
{
    if (waiter == NULL || waiter == Py_None)
        return 0;
    PyObject *done = PyObject_CallMethodNoArgs(waiter, s_done);
    if (done == NULL)
        return -1;
    int is_done = PyObject_IsTrue(done);
    Py_DECREF(done);
    return is_done < 0 ? -1 : !is_done;
}

static PyObject *
error_for(PyObject *res_obj)
{
    return PyObject_CallOneArg(os_error, res_obj);
}

/* waiter.set_result(value) or waiter.set_exception(failure); steals both. */
static PyObject *
deliver(PyObject *waiter, PyObject *value, PyObject *failure)
{
    PyObject *r = value != NULL ? PyObject_CallMethodOneArg(waiter, s_set_result, value)
                                : PyObject_CallMethodOneArg(waiter, s_set_exception, failure);
    Py_XDECREF(value);
    Py_XDECREF(failure);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_NONE;
}

/* `res` as the twin reads it: -1 for a failure (res_obj < 0), else the byte count,
 * never more than the read asked (a CQE reports at most that; this holds it). */
static int
byte_count(ReadCore *self, PyObject *res_obj, Py_ssize_t *count)
{
    int overflow;
    long long res = PyLong_AsLongLongAndOverflow(res_obj, &overflow);
    if (res == -1 && PyErr_Occurred())
        return -1;
    if (overflow < 0 || (!overflow && res < 0)) {
        *count = -1;
        return 0;
    }
    *count = (overflow > 0 || res > self->size) ? self->size : (Py_ssize_t)res;
    return 0;
}

static PyObject *
complete_pooled(ReadCore *self, PyObject *waiter, PyObject *res_obj)
{
    Py_ssize_t slot = self->slot;
    /* Read before any callback runs: done() may rebuild this object. */
    const char *address = (const char *)(uintptr_t)self->address;
    PyObject *pool = Py_XNewRef(self->pool);
    PyObject *value = NULL, *failure = NULL;
    self->slot = -1;
    if (pool == NULL) {
        PyErr_SetString(PyExc_AttributeError, "the read's pool was cleared");
        return NULL;
    }
    Py_ssize_t count = 0;
    int wants = byte_count(self, res_obj, &count) < 0 ? -1 : waiting(waiter);
    if (wants == 1) {
        if (count >= 0)
            value = PyBytes_FromStringAndSize(address, count);
        else
            failure = error_for(res_obj);
        if (value == NULL && failure == NULL)
            wants = -1;
    }
    if (wants < 0) { /* the slot goes back whatever failed; the first error propagates */
        PyObject *type, *exc, *tb;
        PyErr_Fetch(&type, &exc, &tb);
        if (give_back(pool, slot) < 0)
            PyErr_Clear();
        PyErr_Restore(type, exc, tb);
        Py_DECREF(pool);
        return NULL;
    }
    int failed = give_back(pool, slot);
    Py_DECREF(pool);
    if (failed) {
        Py_XDECREF(value);
        Py_XDECREF(failure);
        return NULL;
    }
    if (wants == 0)
        Py_RETURN_NONE;
    return deliver(waiter, value, failure);
}

/* A read into its result that the kernel refused with EINVAL, its descriptor O_DIRECT now:
 * made again, blocking, into page-aligned memory. The descriptor was known not to be
 * O_DIRECT when the read was built; should it have become so since (fcntl F_SETFL, or its
 * number reused by code we do not see), the kernel refuses the unaligned buffer. Made
 * again as the twin's aligned slot would have it read. Returns the bytes read; or NULL
 * with `*failure` the read's OSError, or with `*failure` NULL and an exception set. */
static PyObject *
read_again_aligned(ReadCore *self, PyObject **failure)
{
    void *buf = NULL;
    size_t size = (size_t)self->size;
    if (posix_memalign(&buf, 4096, size ? size : 1) != 0)
        return PyErr_NoMemory();
    long long offset = (long long)self->offset;
    int fd = self->fd;
    ssize_t n;
    int err = 0;
    Py_BEGIN_ALLOW_THREADS
    do {
        n = offset < 0 ? read(fd, buf, size) : pread(fd, buf, size, (off_t)offset);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        err = errno;
    Py_END_ALLOW_THREADS
    PyObject *value = NULL;
    if (n >= 0) {
        value = PyBytes_FromStringAndSize(buf, n);
    }
    else {
        PyObject *res = PyLong_FromLong(-err);
        if (res != NULL) {
            *failure = error_for(res);
            Py_DECREF(res);
        }
    }
    free(buf);
    return value;
}

/* complete() of a read into its result: the bytes read are the result, cut to the count
 * (the kernel wrote them in place); the failure, or nothing for a waiter gone. */
static PyObject *
complete_into(ReadCore *self, PyObject *waiter, PyObject *res_obj)
{
    PyObject *data = self->into; /* held by this read alone until it is handed out */
    self->into = NULL;
    Py_ssize_t count = 0;
    int wants = byte_count(self, res_obj, &count) < 0 ? -1 : waiting(waiter);
    if (wants != 1) {
        Py_DECREF(data);
        if (wants < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    PyObject *failure = NULL;
    if (count >= 0) {
        if (count < self->size && _PyBytes_Resize(&data, count) < 0)
            return NULL; /* (data freed) */
        return deliver(waiter, data, NULL);
    }
    Py_DECREF(data);
    int overflow;
    long long res = PyLong_AsLongLongAndOverflow(res_obj, &overflow);
    int flags = !overflow && res == -EINVAL ? fcntl(self->fd, F_GETFL) : -1;
    if (flags != -1 && (flags & O_DIRECT)) { /* (any other EINVAL is the ring's answer) */
        PyObject *value = read_again_aligned(self, &failure);
        if (value != NULL)
            return deliver(waiter, value, NULL);
    }
    else {
        failure = error_for(res_obj);
    }
    if (failure == NULL)
        return NULL;
    return deliver(waiter, NULL, failure);
}

static PyObject *
complete_scratch(ReadCore *self, PyObject *waiter, PyObject *res_obj)
{
    int wants = waiting(waiter);
    if (wants < 0)
        return NULL;
    if (wants == 0)
        return PyObject_CallMethodNoArgs((PyObject *)self, s_release);
    PyObject *value = NULL, *failure = NULL;
    Py_ssize_t count = 0;
    if (byte_count(self, res_obj, &count) < 0) {
        /* the error is set: release() below, then it propagates */
    }
    else if (count >= 0) {
        PyObject *refs = Py_XNewRef(self->refs);
        PyObject *buffer = NULL;
        if (refs == NULL)
            PyErr_Format(PyExc_AttributeError, "'%.100s' object has no attribute 'refs'",
                         Py_TYPE(self)->tp_name);
        else
            buffer = PySequence_GetItem(refs, 0);
        Py_XDECREF(refs);
        PyObject *n = buffer != NULL ? PyLong_FromSsize_t(count) : NULL;
        if (n != NULL)
            value = PyObject_CallMethodOneArg(buffer, s_take, n);
        Py_XDECREF(n);
        Py_XDECREF(buffer);
    }
    else {
        failure = error_for(res_obj);
    }
    /* release() runs whether or not the result was made (a finally in the twin). */
    PyObject *type = NULL, *exc = NULL, *tb = NULL;
    int had_error = value == NULL && failure == NULL;
    if (had_error)
        PyErr_Fetch(&type, &exc, &tb);
    PyObject *r = PyObject_CallMethodNoArgs((PyObject *)self, s_release);
    if (r == NULL) {
        if (had_error) { /* the release's error replaces the first, as a finally does */
            Py_XDECREF(type);
            Py_XDECREF(exc);
            Py_XDECREF(tb);
        }
        Py_XDECREF(value);
        Py_XDECREF(failure);
        return NULL;
    }
    Py_DECREF(r);
    if (had_error) {
        PyErr_Restore(type, exc, tb);
        return NULL;
    }
    return deliver(waiter, value, failure);
}

static PyObject *
ReadCore_complete(ReadCore *self, PyObject *res_obj)
{
    self->state = DONE;
    if (!PyLong_Check(res_obj)) { /* the slot still goes back, then the TypeError */
        PyObject *r = PyObject_CallMethodNoArgs((PyObject *)self, s_release);
        if (r == NULL)
            return NULL;
        Py_DECREF(r);
        PyErr_Format(PyExc_TypeError, "a completion's result must be an int, not %.100s",
                     Py_TYPE(res_obj)->tp_name);
        return NULL;
    }
    PyObject *waiter = Py_XNewRef(self->waiter);
    PyObject *r = self->into != NULL ? complete_into(self, waiter, res_obj)
                  : self->slot >= 0  ? complete_pooled(self, waiter, res_obj)
                                     : complete_scratch(self, waiter, res_obj);
    Py_XDECREF(waiter);
    return r;
}

static PyObject *
ReadCore_release(ReadCore *self, PyObject *unused)
{
    let_go_of_into(self);
    Py_ssize_t slot = self->slot;
    if (slot >= 0) {
        self->slot = -1;
        if (self->pool == NULL) {
            PyErr_SetString(PyExc_AttributeError, "the read's pool was cleared");
            return NULL;
        }
        PyObject *slot_obj = PyLong_FromSsize_t(slot);
        if (slot_obj == NULL)
            return NULL;
        PyObject *r = PyObject_CallMethodOneArg(self->pool, s_free, slot_obj);
        Py_DECREF(slot_obj);
        if (r == NULL)
            return NULL;
        Py_DECREF(r);
    }
    PyObject *refs = Py_XNewRef(self->refs);
    if (refs == NULL) {
        PyErr_Format(PyExc_AttributeError, "'%.100s' object has no attribute 'refs'",
                     Py_TYPE(self)->tp_name);
        return NULL;
    }
    PyObject *iter = PyObject_GetIter(refs);
    Py_DECREF(refs);
    if (iter == NULL)
        return NULL;
    PyObject *ref;
    while ((ref = PyIter_Next(iter)) != NULL) {
        PyObject *release = PyObject_GetAttr(ref, s_release); /* getattr(ref, "release", None) */
        Py_DECREF(ref);
        if (release == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
                Py_DECREF(iter);
                return NULL;
            }
            PyErr_Clear();
        }
        if (release != NULL && release != Py_None) {
            PyObject *r = PyObject_CallNoArgs(release);
            Py_DECREF(release);
            if (r == NULL) {
                Py_DECREF(iter);
                return NULL;
            }
            Py_DECREF(r);
        }
        else {
            Py_XDECREF(release);
        }
    }
    Py_DECREF(iter);
    if (PyErr_Occurred())
        return NULL;
    set_field(&self->refs, Py_NewRef(empty_tuple));
    set_field(&self->data, Py_NewRef(Py_None));
    set_field(&self->args, Py_NewRef(empty_tuple));
    set_field(&self->kwargs, Py_NewRef(no_kwargs));
    Py_RETURN_NONE;
}

static PyMethodDef ReadCore_methods[] = {
    {"prep", (PyCFunction)(void (*)(void))ReadCore_prep, METH_FASTCALL,
     "prep(sqes, words, off, user_data): write the whole READ entry at byte `off`."},
    {"complete", (PyCFunction)ReadCore_complete, METH_O,
     "complete(res): the bytes read (or the error) go to the waiter, once."},
    {"release", (PyCFunction)ReadCore_release, METH_NOARGS,
     "release(): give back the slot, release the ScratchBuffer, drop the arguments."},
    {NULL}};

/* The fields every operation has (operation.Operation's), as members of the core type T. */
#define OPERATION_MEMBERS(T)                                                                   \
    {"state", T_INT, offsetof(T, state), 0, NULL},                                             \
        {"user_data", T_ULONGLONG, offsetof(T, user_data), 0, NULL},                           \
        {"waiter", T_OBJECT_EX, offsetof(T, waiter), 0, NULL},                                 \
        {"spec", T_OBJECT_EX, offsetof(T, spec), 0, NULL},                                     \
        {"args", T_OBJECT_EX, offsetof(T, args), 0, NULL},                                     \
        {"kwargs", T_OBJECT_EX, offsetof(T, kwargs), 0, NULL},                                 \
        {"refs", T_OBJECT_EX, offsetof(T, refs), 0, NULL},                                     \
        {"data", T_OBJECT_EX, offsetof(T, data), 0, NULL},                                     \
        {"filename", T_OBJECT_EX, offsetof(T, filename), 0, NULL},                             \
        {"filename2", T_OBJECT_EX, offsetof(T, filename2), 0, NULL}

static PyMemberDef ReadCore_members[] = {
    {"_fd", T_INT, offsetof(ReadCore, fd), READONLY, NULL},
    {"_offset", T_ULONGLONG, offsetof(ReadCore, offset), READONLY, NULL},
    {"_address", T_ULONGLONG, offsetof(ReadCore, address), READONLY, NULL},
    {"_size", T_PYSSIZET, offsetof(ReadCore, size), READONLY, NULL},
    {"_slot", T_PYSSIZET, offsetof(ReadCore, slot), READONLY, NULL},
    {"_pool", T_OBJECT_EX, offsetof(ReadCore, pool), READONLY, NULL},
    OPERATION_MEMBERS(ReadCore),
    {NULL}};

static PyTypeObject ReadCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "uringloop._ops._hotpath.ReadCore",
    .tp_doc = "pread into a new buffer (see uringloop/_ops/hotpath.py).",
    .tp_basicsize = sizeof(ReadCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = ReadCore_new,
    .tp_init = (initproc)ReadCore_init,
    .tp_dealloc = (destructor)ReadCore_dealloc,
    .tp_traverse = (traverseproc)ReadCore_traverse,
    .tp_clear = (inquiry)ReadCore_clear,
    .tp_methods = ReadCore_methods,
    .tp_members = ReadCore_members,
};

/* -- a read or write of the caller's memory ------------------------------------------- */

typedef struct {
    PyObject_HEAD
    int opcode;
    int fd;
    unsigned long long offset; /* as the u64 the SQE holds */
    unsigned long long address;
    unsigned int length;
    int state;
    unsigned long long user_data;
    PyObject *waiter;
    PyObject *spec;
    PyObject *args;
    PyObject *kwargs;
    PyObject *refs; /* the pins (and whatever else the SQE points into) */
    PyObject *data;
    PyObject *filename;
    PyObject *filename2;
} PositionedCore;

static PyObject *pin_type; /* _buffers.PIN: the pins complete() releases */

static int
PositionedCore_traverse(PositionedCore *self, visitproc visit, void *arg)
{
    VISIT_OPERATION_FIELDS(self);
    return 0;
}

static int
PositionedCore_clear(PositionedCore *self)
{
    CLEAR_OPERATION_FIELDS(self);
    return 0;
}

static void
PositionedCore_dealloc(PositionedCore *self)
{
    PyObject_GC_UnTrack(self);
    Py_TRASHCAN_BEGIN(self, PositionedCore_dealloc)
    PositionedCore_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
    Py_TRASHCAN_END
}

/* An unsigned field's value from an int: 0, or -1 with OverflowError (or TypeError) set. */
static int
unsigned_field(PyObject *value, unsigned long long most, const char *name, unsigned long long *into)
{
    unsigned long long v = PyLong_AsUnsignedLongLong(value);
    if (v == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    if (v > most) {
        PyErr_Format(PyExc_OverflowError, "%s %llu does not fit its SQE field", name, v);
        return -1;
    }
    *into = v;
    return 0;
}

/* The fields as PositionedCore.__init__ sets them, from values already checked. */
static void
positioned_fill(PositionedCore *self, int opcode, int fd, unsigned long long offset,
                unsigned long long address, unsigned int length, PyObject *refs)
{
    set_field(&self->refs, Py_NewRef(refs));
    set_field(&self->data, Py_NewRef(Py_None));
    set_field(&self->filename, Py_NewRef(Py_None));
    set_field(&self->filename2, Py_NewRef(Py_None));
    set_field(&self->waiter, Py_NewRef(Py_None));
    self->user_data = 0;
    self->state = QUEUED;
    set_field(&self->spec, Py_NewRef(Py_None));
    self->opcode = opcode;
    self->fd = fd;
    self->offset = offset;
    self->address = address;
    self->length = length;
}

static int
PositionedCore_init(PositionedCore *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"opcode", "fd", "offset", "address", "length", "refs", NULL};
    int opcode, fd;
    PyObject *offset, *address, *length, *refs;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "iiOOOO", kwlist, &opcode, &fd, &offset, &address,
                                     &length, &refs))
        return -1;
    unsigned long long off, addr, len;
    if (opcode < 0 || opcode > 255) {
        PyErr_Format(PyExc_OverflowError, "opcode %d does not fit its SQE field", opcode);
        return -1;
    }
    if (unsigned_field(offset, ULLONG_MAX, "offset", &off) < 0 ||
        unsigned_field(address, ULLONG_MAX, "address", &addr) < 0 ||
        unsigned_field(length, UINT_MAX, "length", &len) < 0)
        return -1;
    positioned_fill(self, opcode, fd, off, addr, (unsigned int)len, refs);
    return 0;
}

static PyObject *
PositionedCore_prep(PositionedCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    return prep_entry(args, nargs, (uint8_t)self->opcode, self->fd, self->offset, self->address, self->length);
}

/* Its entry (put_sqe()), as prep() writes it. */
static int
write_positioned_sqe(PositionedCore *self, char *buf, Py_ssize_t len, Py_ssize_t off,
                     unsigned long long user_data)
{
    return put_sqe(buf, len, off, (uint8_t)self->opcode, self->fd, self->offset, self->address,
                   self->length, user_data);
}

/* The pins among `refs` (those whose type is PIN exactly) released, in order: 0, or -1 with
 * the error a release raised. */
static int
release_pins(PyObject *refs)
{
    PyObject *iter = PyObject_GetIter(refs);
    if (iter == NULL)
        return -1;
    PyObject *ref;
    while ((ref = PyIter_Next(iter)) != NULL) {
        PyObject *r = (PyObject *)Py_TYPE(ref) == pin_type ? PyObject_CallMethodNoArgs(ref, s_release)
                                                          : Py_NewRef(Py_None);
        Py_DECREF(ref);
        if (r == NULL) {
            Py_DECREF(iter);
            return -1;
        }
        Py_DECREF(r);
    }
    Py_DECREF(iter);
    return PyErr_Occurred() ? -1 : 0;
}

static PyObject *
PositionedCore_complete(PositionedCore *self, PyObject *res_obj)
{
    self->state = DONE;
    PyObject *refs = Py_XNewRef(self->refs);
    if (refs == NULL) {
        PyErr_Format(PyExc_AttributeError, "'%.100s' object has no attribute 'refs'", Py_TYPE(self)->tp_name);
        return NULL;
    }
    int failed = release_pins(refs);
    Py_DECREF(refs);
    if (failed)
        return NULL;
    set_field(&self->refs, Py_NewRef(empty_tuple));
    set_field(&self->args, Py_NewRef(empty_tuple));
    set_field(&self->kwargs, Py_NewRef(no_kwargs));
    PyObject *waiter = Py_XNewRef(self->waiter);
    int wants = waiting(waiter);
    if (wants <= 0) {
        Py_XDECREF(waiter);
        if (wants < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    PyObject *zero = PyLong_FromLong(0);
    int counted = zero == NULL ? -1 : PyObject_RichCompareBool(res_obj, zero, Py_GE);
    Py_XDECREF(zero);
    PyObject *r = NULL;
    if (counted > 0)
        r = deliver(waiter, Py_NewRef(res_obj), NULL);
    else if (counted == 0) {
        PyObject *failure = error_for(res_obj);
        r = failure == NULL ? NULL : deliver(waiter, NULL, failure);
    }
    Py_DECREF(waiter);
    return r;
}

static PyMethodDef PositionedCore_methods[] = {
    {"prep", (PyCFunction)(void (*)(void))PositionedCore_prep, METH_FASTCALL,
     "prep(sqes, words, off, user_data): write the whole entry at byte `off`."},
    {"complete", (PyCFunction)PositionedCore_complete, METH_O,
     "complete(res): release the pins; the byte count (or the error) goes to the waiter."},
    {NULL}};

/* The bytes it moves: its length (READ, WRITE), or the sum of its pins' (READV, WRITEV). */
static PyObject *
PositionedCore_nbytes(PositionedCore *self, void *Py_UNUSED(closure))
{
    if (self->opcode == IORING_OP_READ || self->opcode == IORING_OP_WRITE)
        return PyLong_FromUnsignedLong(self->length);
    PyObject *refs = Py_XNewRef(self->refs);
    if (refs == NULL) {
        PyErr_Format(PyExc_AttributeError, "'%.100s' object has no attribute 'refs'", Py_TYPE(self)->tp_name);
        return NULL;
    }
    PyObject *iter = PyObject_GetIter(refs);
    Py_DECREF(refs);
    if (iter == NULL)
        return NULL;
    PyObject *total = PyLong_FromLong(0), *ref;
    while (total != NULL && (ref = PyIter_Next(iter)) != NULL) {
        if ((PyObject *)Py_TYPE(ref) == pin_type) {
            PyObject *size = PyObject_GetAttr(ref, s_nbytes);
            Py_SETREF(total, size == NULL ? NULL : PyNumber_Add(total, size));
            Py_XDECREF(size);
        }
        Py_DECREF(ref);
    }
    Py_DECREF(iter);
    if (PyErr_Occurred())
        Py_CLEAR(total);
    return total;
}

static PyGetSetDef PositionedCore_getset[] = {
    {"nbytes", (getter)PositionedCore_nbytes, NULL,
     "The bytes it moves: its length (READ, WRITE), or its pins' (READV, WRITEV).", NULL},
    {NULL}};

static PyMemberDef PositionedCore_members[] = {
    {"_opcode", T_INT, offsetof(PositionedCore, opcode), READONLY, NULL},
    {"_fd", T_INT, offsetof(PositionedCore, fd), READONLY, NULL},
    {"_offset", T_ULONGLONG, offsetof(PositionedCore, offset), READONLY, NULL},
    {"_address", T_ULONGLONG, offsetof(PositionedCore, address), READONLY, NULL},
    {"_length", T_UINT, offsetof(PositionedCore, length), READONLY, NULL},
    OPERATION_MEMBERS(PositionedCore),
    {NULL}};

static PyTypeObject PositionedCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "uringloop._ops._hotpath.PositionedCore",
    .tp_doc = "A read or write of the caller's memory at an offset (see uringloop/_ops/hotpath.py).",
    .tp_basicsize = sizeof(PositionedCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)PositionedCore_init,
    .tp_dealloc = (destructor)PositionedCore_dealloc,
    .tp_traverse = (traverseproc)PositionedCore_traverse,
    .tp_clear = (inquiry)PositionedCore_clear,
    .tp_methods = PositionedCore_methods,
    .tp_members = PositionedCore_members,
    .tp_getset = PositionedCore_getset,
};

/* -- a read or write of the caller's memory, built -------------------------------------- */

/* An exact int's value where it lies in [0, most], else -1 (no error set). */
static long long
in_range(PyObject *value, long long most)
{
    if (!PyLong_CheckExact(value))
        return -1;
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    return overflow || v < 0 || v > most ? -1 : v; /* (an exact int sets no error) */
}

/* pin.release(), as an `except` clause runs it with the error set now still to raise:
 * that error again, or the release's own in its place, the first as its context. */
static void
release_raising(PyObject *pin)
{
    PyObject *raised = take_raised();
    PyObject *r = PyObject_CallMethodNoArgs(pin, s_release);
    if (r != NULL) {
        Py_DECREF(r);
        restore_raised(raised);
        return;
    }
    PyObject *replacement = take_raised();
    if (raised != NULL && replacement != NULL)
        PyException_SetContext(replacement, raised); /* (steals raised) */
    else
        Py_XDECREF(raised);
    restore_raised(replacement);
}

/* The twin of hotpath.pinned_at(cls, check, opcode, fd, offset, buffer, writable). A class
 * whose construction is PositionedCore's own (Positioned) is filled in here, as its
 * __init__ would fill it; any other is called. */
static PyObject *
pinned_at(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7) {
        PyErr_Format(PyExc_TypeError, "pinned_at() takes 7 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *cls = args[0], *check = args[1], *opcode = args[2];
    long long fd = in_range(args[3], INT_MAX);
    long long offset = fd < 0 ? -1 : in_range(args[4], LLONG_MAX);
    if (offset < 0)
        Py_RETURN_NONE;
    PyObject *pin_args[2] = {args[5], args[6]};
    PyObject *pin = PyObject_Vectorcall(pin_type, pin_args, 2, NULL);
    if (pin == NULL)
        return NULL;
    PyObject *checked = PyObject_Vectorcall(check, args + 3, 2, NULL);
    if (checked == NULL) {
        release_raising(pin);
        Py_DECREF(pin);
        return NULL;
    }
    Py_DECREF(checked);
    PyObject *refs = NULL, *address = NULL, *op = NULL;
    if ((refs = PyTuple_Pack(1, pin)) == NULL || (address = PyObject_GetAttr(pin, s_address)) == NULL)
        goto done;
    PyObject *nbytes = PyObject_GetAttr(pin, s_nbytes);
    Py_ssize_t size = nbytes == NULL ? -1 : PyLong_AsSsize_t(nbytes);
    Py_XDECREF(nbytes);
    if (size < 0 && PyErr_Occurred())
        goto done;
    unsigned int length = (unsigned int)(size > MAX_RW_COUNT ? MAX_RW_COUNT : size);
    PyTypeObject *type = (PyTypeObject *)cls;
    if (PyType_Check(cls) && type->tp_init == (initproc)PositionedCore_init &&
        type->tp_new == PyType_GenericNew && PyType_IsSubtype(type, &PositionedCoreType)) {
        long code = PyLong_AsLong(opcode);
        unsigned long long addr = PyLong_AsUnsignedLongLong(address);
        if (PyErr_Occurred() || code < 0 || code > 255) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_OverflowError, "opcode %ld does not fit its SQE field", code);
        }
        else if ((op = type->tp_alloc(type, 0)) != NULL)
            positioned_fill((PositionedCore *)op, (int)code, (int)fd, (unsigned long long)offset, addr, length, refs);
    }
    else {
        PyObject *length_obj = PyLong_FromUnsignedLong(length);
        PyObject *cls_args[6] = {opcode, args[3], args[4], address, length_obj, refs};
        op = length_obj == NULL ? NULL : PyObject_Vectorcall(cls, cls_args, 6, NULL);
        Py_XDECREF(length_obj);
    }
done:
    Py_XDECREF(refs);
    Py_XDECREF(address);
    Py_DECREF(pin);
    return op;
}

/* -- Spec.build ----------------------------------------------------------------------- */

static PyObject *run_now_type;  /* operation.RunNow, looked up at first use (operation.py */
static PyObject *finished_type; /* imports this module), and operation.Finished */
static PyObject *s_stub, *s_blocking, *s_call, *s_spec, *s_args, *s_kwargs;

/* Finished(now.call or spec.blocking, args, kwargs) for the RunNow being raised, taken
 * first, as Spec.build calls it after its except block (the RunNow is the context of no
 * error Finished raises): a new reference, or NULL with an error set. */
static PyObject *
answered(PyObject *spec, PyObject *args, PyObject *kwargs)
{
    PyObject *now = take_raised();
    PyObject *op = NULL, *call = now == NULL ? NULL : PyObject_GetAttr(now, s_call);
    Py_XDECREF(now);
    int given = call == NULL ? -1 : PyObject_IsTrue(call);
    if (given == 0)
        Py_SETREF(call, PyObject_GetAttr(spec, s_blocking));
    if (given >= 0 && call != NULL) {
        PyObject *finished_args[3] = {call, args, kwargs};
        op = PyObject_Vectorcall(finished_type, finished_args, 3, NULL);
    }
    Py_XDECREF(call);
    return op;
}

/* The twin of Spec.build (uringloop/_ops/spec.py): build(spec, *args, **kwargs) is
 * spec.build(*args, **kwargs), without its frame. */
static PyObject *
build_operation(PyObject *Py_UNUSED(module), PyObject *const *argv, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "build() takes the declaration first");
        return NULL;
    }
    if (finished_type == NULL) { /* both, or neither (finished_type set last) */
        PyObject *run_now = NULL, *finished = NULL;
        if (import_from("uringloop._ops.operation", "RunNow", &run_now) < 0 ||
            import_from("uringloop._ops.operation", "Finished", &finished) < 0) {
            Py_XDECREF(run_now);
            return NULL;
        }
        Py_XSETREF(run_now_type, run_now);
        Py_XSETREF(finished_type, finished);
    }
    PyObject *spec = argv[0];
    Py_ssize_t keywords = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    PyObject *args = PyTuple_New(nargs - 1), *kwargs = PyDict_New();
    if (args == NULL || kwargs == NULL)
        goto failed;
    for (Py_ssize_t i = 1; i < nargs; i++)
        PyTuple_SET_ITEM(args, i - 1, Py_NewRef(argv[i]));
    for (Py_ssize_t i = 0; i < keywords; i++)
        if (PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, i), argv[nargs + i]) < 0)
            goto failed;
    PyObject *stub = PyObject_GetAttr(spec, s_stub);
    if (stub == NULL)
        goto failed;
    PyObject *op = PyObject_Vectorcall(stub, argv + 1, nargs - 1, kwnames);
    Py_DECREF(stub);
    if (op == NULL && PyErr_ExceptionMatches(run_now_type))
        op = answered(spec, args, kwargs);
    if (op == NULL || PyObject_SetAttr(op, s_spec, spec) < 0 || PyObject_SetAttr(op, s_args, args) < 0 ||
        PyObject_SetAttr(op, s_kwargs, kwargs) < 0) {
        Py_XDECREF(op);
        goto failed;
    }
    Py_DECREF(args);
    Py_DECREF(kwargs);
    return op;
failed:
    Py_XDECREF(args);
    Py_XDECREF(kwargs);
    return NULL;
}

/* -- the loops ---------------------------------------------------------------------- */

/* The cores' own methods and fields that the loops call or touch, as each core's dict holds
 * them: a plain operation's class must still resolve each name to the same object (and
 * `multi` to Operation's False) for the loops to use the C functions and fields directly. */
#define N_CORE_NAMES 5
static PyObject **core_names[N_CORE_NAMES] = {&s_prep, &s_complete, &s_waiter, &s_state, &s_user_data};
static PyObject *core_attrs[N_CORE_NAMES];            /* ReadCore's */
static PyObject *positioned_core_attrs[N_CORE_NAMES]; /* PositionedCore's */
/* The last classes found plain, while unchanged (borrowed: compared, never dereferenced
 * while stale). */
static PyTypeObject *plain_type, *plain_positioned_type;
static unsigned int plain_tag, plain_positioned_tag;

/* What the loops may do with an operation: go through its class (NOT_PLAIN), or use the
 * fields and C functions of its core directly, ReadCore's (PLAIN_READ) or PositionedCore's
 * (PLAIN_POSITIONED), which is what going through the class would do. */
enum { NOT_PLAIN = 0, PLAIN_READ = 1, PLAIN_POSITIONED = 2 };

/* 1 when class `tp` is `core`'s subclass with the core's prep, complete, waiter, state and
 * user_data (`attrs`), `multi` False, the generic attribute access and no instance dict
 * (then cached in *cached and *tag); 0: go through the class. -1: an error other than a
 * missing attribute. */
static int
plain_for_core(PyTypeObject *tp, PyTypeObject *core, PyObject **attrs, PyTypeObject **cached,
               unsigned int *tag)
{
    if (!PyType_IsSubtype(tp, core) || tp->tp_dictoffset != 0 ||
        tp->tp_getattro != PyObject_GenericGetAttr || tp->tp_setattro != PyObject_GenericSetAttr)
        return 0;
    int plain = 1;
    for (int i = 0; plain && i < N_CORE_NAMES; i++) {
        PyObject *found = PyObject_GetAttr((PyObject *)tp, *core_names[i]);
        if (found == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_AttributeError))
                return -1;
            PyErr_Clear(); /* not plain: the slow path raises it */
            return 0;
        }
        plain = found == attrs[i];
        Py_DECREF(found);
    }
    if (plain) {
        PyObject *multi = PyObject_GetAttr((PyObject *)tp, s_multi);
        if (multi == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_AttributeError))
                return -1;
            PyErr_Clear();
            return 0;
        }
        plain = multi == Py_False;
        Py_DECREF(multi);
    }
    if (plain && version_valid(tp)) {
        *cached = tp;
        *tag = tp->tp_version_tag;
    }
    return plain;
}

/* NOT_PLAIN, PLAIN_READ or PLAIN_POSITIONED for `op` (see plain_for_core); -1: an error. */
static int
plain_kind(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    if (tp == plain_type && version_valid(tp) && tp->tp_version_tag == plain_tag)
        return PLAIN_READ;
    if (tp == plain_positioned_type && version_valid(tp) && tp->tp_version_tag == plain_positioned_tag)
        return PLAIN_POSITIONED;
    int r = plain_for_core(tp, &ReadCoreType, core_attrs, &plain_type, &plain_tag);
    if (r != 0)
        return r < 0 ? -1 : PLAIN_READ;
    r = plain_for_core(tp, &PositionedCoreType, positioned_core_attrs, &plain_positioned_type,
                       &plain_positioned_tag);
    if (r != 0)
        return r < 0 ? -1 : PLAIN_POSITIONED;
    return NOT_PLAIN;
}

/* A plain operation's fields the loops touch (`kind`: PLAIN_READ or PLAIN_POSITIONED). */
static inline int *
state_field(PyObject *op, int kind)
{
    return kind == PLAIN_READ ? &((ReadCore *)op)->state : &((PositionedCore *)op)->state;
}

static inline PyObject *
waiter_field(PyObject *op, int kind)
{
    return kind == PLAIN_READ ? ((ReadCore *)op)->waiter : ((PositionedCore *)op)->waiter;
}

static inline unsigned long long *
user_data_field(PyObject *op, int kind)
{
    return kind == PLAIN_READ ? &((ReadCore *)op)->user_data : &((PositionedCore *)op)->user_data;
}

/* op.multi, as a truth value (-1: an error). */
static int
is_multi(PyObject *op)
{
    PyObject *multi = PyObject_GetAttr(op, s_multi);
    if (multi == NULL)
        return -1;
    int r = PyObject_IsTrue(multi);
    Py_DECREF(multi);
    return r;
}

/* `op.state != QUEUED or (waiter is not None and waiter.done() and abandoned(op))`:
 * 1 to skip it, 0 to write it, -1 on an error. */
static int
skip_it(PyObject *op, int kind, PyObject *abandoned)
{
    PyObject *waiter;
    int not_queued;
    if (kind != NOT_PLAIN) {
        waiter = Py_XNewRef(waiter_field(op, kind));
        if (waiter == NULL) {
            PyErr_Format(PyExc_AttributeError, "'%.100s' object has no attribute 'waiter'",
                         Py_TYPE(op)->tp_name);
            return -1;
        }
        not_queued = *state_field(op, kind) != QUEUED;
    }
    else {
        waiter = PyObject_GetAttr(op, s_waiter);
        if (waiter == NULL)
            return -1;
        PyObject *state = PyObject_GetAttr(op, s_state);
        not_queued = state == NULL ? -1 : PyObject_RichCompareBool(state, queued_obj, Py_NE);
        Py_XDECREF(state);
    }
    int skip = not_queued;
    if (not_queued == 0 && waiter != Py_None) {
        PyObject *done = PyObject_CallMethodNoArgs(waiter, s_done);
        int is_done = done == NULL ? -1 : PyObject_IsTrue(done);
        Py_XDECREF(done);
        skip = is_done;
        if (is_done == 1) {
            PyObject *gone = PyObject_CallOneArg(abandoned, op);
            skip = gone == NULL ? -1 : PyObject_IsTrue(gone);
            Py_XDECREF(gone);
        }
    }
    Py_DECREF(waiter);
    return skip;
}

/* Write one operation's SQE at `off_obj` with `user_data`, enter it in `inflight` and mark
 * it SUBMITTED: the body of write_entries() once the operation is known to go. */
static int
write_one(PyObject *op, int kind, PyObject *inflight, PyObject *sqes, PyObject *words,
          Py_buffer *view, PyObject *off_obj, unsigned long long user_data)
{
    PyObject *ud = PyLong_FromUnsignedLongLong(user_data);
    if (ud == NULL)
        return -1;
    int failed;
    if (kind != NOT_PLAIN) {
        Py_ssize_t off = PyLong_AsSsize_t(off_obj);
        failed = (off == -1 && PyErr_Occurred()) ||
                 (kind == PLAIN_READ
                      ? write_sqe((ReadCore *)op, (char *)view->buf, view->len, off, user_data)
                      : write_positioned_sqe((PositionedCore *)op, (char *)view->buf, view->len,
                                             off, user_data)) < 0 ||
                 PyObject_SetItem(inflight, ud, op) < 0;
        if (!failed) {
            *user_data_field(op, kind) = user_data;
            *state_field(op, kind) = SUBMITTED;
        }
    }
    else {
        PyObject *args[] = {op, sqes, words, off_obj, ud};
        PyObject *r = PyObject_VectorcallMethod(s_prep, args, 5 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        Py_XDECREF(r);
        failed = r == NULL || PyObject_SetItem(inflight, ud, op) < 0 ||
                 PyObject_SetAttr(op, s_user_data, ud) < 0 ||
                 PyObject_SetAttr(op, s_state, submitted_obj) < 0;
    }
    Py_DECREF(ud);
    return failed ? -1 : 0;
}

static PyObject *
write_entries_into(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 8) {
        PyErr_Format(PyExc_TypeError, "write_entries() takes 8 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *backlog = args[0], *inflight = args[1], *sqes = args[2], *words = args[3],
             *offsets = args[4], *abandoned = args[7];
    Py_ssize_t used = PyLong_AsSsize_t(args[5]);
    if (used == -1 && PyErr_Occurred())
        return NULL;
    unsigned long long user_data = PyLong_AsUnsignedLongLong(args[6]);
    if (user_data == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t n_offsets = PyObject_Length(offsets);
    if (n_offsets < 0)
        return NULL;
    Py_buffer view = {0};
    int have_view = 0, failed = 0;
    while (used < n_offsets) {
        int more = PyObject_IsTrue(backlog);
        if (more <= 0) {
            failed = more < 0;
            break;
        }
        PyObject *op = PySequence_GetItem(backlog, 0);
        if (op == NULL) {
            failed = 1;
            break;
        }
        int kind = plain_kind(op);
        if (kind < 0) {
            Py_DECREF(op);
            failed = 1;
            break;
        }
        int multi = kind != NOT_PLAIN ? 0 : is_multi(op);
        int skip = multi == 0 ? skip_it(op, kind, abandoned) : -1;
        if (multi != 0 || skip != 0) {
            if (multi == 1) {
                Py_DECREF(op);
                break; /* left at the head for the caller */
            }
            PyObject *popped = skip == 1 ? PyObject_CallMethodNoArgs(backlog, s_popleft) : NULL;
            Py_XDECREF(popped);
            Py_DECREF(op);
            if (popped == NULL) {
                failed = 1;
                break;
            }
            continue; /* cancelled while queued */
        }
        if (kind != NOT_PLAIN) {
            /* skip_it may have run Python (waiter.done()) that changed the class: asked
             * again, as the reference's op.prep() would find it. */
            kind = plain_kind(op);
            if (kind < 0) {
                Py_DECREF(op);
                failed = 1;
                break;
            }
        }
        if (kind != NOT_PLAIN && !have_view) {
            if (writable_view(sqes, &view) < 0) {
                Py_DECREF(op);
                failed = 1;
                break;
            }
            have_view = 1;
        }
        /* Invariant: an operation leaves the backlog only once written and in `inflight`. */
        PyObject *off_obj = PySequence_GetItem(offsets, used);
        failed = off_obj == NULL ||
                 write_one(op, kind, inflight, sqes, words, &view, off_obj, user_data) < 0;
        Py_XDECREF(off_obj);
        Py_DECREF(op);
        PyObject *popped = failed ? NULL : PyObject_CallMethodNoArgs(backlog, s_popleft);
        Py_XDECREF(popped);
        if (popped == NULL) {
            failed = 1;
            break;
        }
        user_data++;
        used++;
    }
    if (have_view)
        PyBuffer_Release(&view);
    if (failed)
        return NULL;
    return Py_BuildValue("(nK)", used, user_data);
}

/* `op.state != DONE` for an operation that is not a plain core: 1, 0, or -1 with an
 * error set. */
static int
not_done(PyObject *op)
{
    PyObject *state = PyObject_GetAttr(op, s_state);
    if (state == NULL)
        return -1;
    int pending = PyObject_RichCompareBool(state, done_obj, Py_NE);
    Py_DECREF(state);
    return pending;
}

/* `if op.multi: op.complete_part(user_data, res) elif op.state != DONE: op.complete(res)`:
 * NULL when it raised. */
static PyObject *
complete_one(PyObject *op, PyObject *user_data, PyObject *res)
{
    int kind = plain_kind(op);
    if (kind < 0)
        return NULL;
    if (kind != NOT_PLAIN) {
        if (*state_field(op, kind) == DONE)
            Py_RETURN_NONE;
        return kind == PLAIN_READ ? ReadCore_complete((ReadCore *)op, res)
                                  : PositionedCore_complete((PositionedCore *)op, res);
    }
    int multi = is_multi(op);
    if (multi < 0)
        return NULL;
    if (multi) {
        PyObject *args[] = {op, user_data, res};
        return PyObject_VectorcallMethod(s_complete_part, args, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    }
    int pending = not_done(op);
    if (pending < 0)
        return NULL;
    if (!pending)
        Py_RETURN_NONE;
    return PyObject_CallMethodOneArg(op, s_complete, res);
}

/* `except BaseException as exc: return isolate(op, exc, fatal)` for the exception being
 * raised: isolate runs with exc as the exception being handled (sys.exc_info(), and the
 * __context__ of anything it raises), as in the twin's except block. Returns a new
 * reference (NULL: isolate raised). */
static PyObject *
isolated(PyObject *isolate, PyObject *op, PyObject *fatal)
{
    OuterHandled outer;
    PyObject *exc = begin_handling(&outer);
    PyObject *call[] = {op, exc, fatal};
    PyObject *kept = PyObject_Vectorcall(isolate, call, 3, NULL);
    end_handling(&outer);
    Py_DECREF(exc);
    return kept;
}

/* inflight.pop(user_data, None), its value dropped: 0, or -1 on an error. */
static int
forget(PyObject *inflight, PyObject *user_data)
{
    if (PyDict_GetItemWithError(inflight, user_data) == NULL)
        return PyErr_Occurred() ? -1 : 0;
    return PyDict_DelItem(inflight, user_data);
}

/* The twin's batch case: every CQE is a part of `first`, a batch (1), or not (0), or an
 * error (-1). */
static int
one_batch(PyObject *inflight, PyObject *first, PyObject *const *uds, Py_ssize_t n)
{
    if (n < 2)
        return 0;
    int multi = is_multi(first);
    if (multi <= 0)
        return multi;
    Py_ssize_t same = 0; /* list(map(inflight.get, user_datas)).count(first) */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *op = PyDict_GetItemWithError(inflight, uds[i]);
        if (op == NULL && PyErr_Occurred())
            return -1;
        same += op == first;
    }
    return same == n;
}

/* The twin's _interrupted() test, after `again` ran the interrupted completion of `op`
 * without raising: 1 where the exception set aside (`type`) is a KeyboardInterrupt or
 * SystemExit and `op` a batch with parts still in flight (its waiter kept for them), else
 * 0 (-1 with an error set). */
static int
keeps_waiting(PyObject *op, PyObject *type)
{
    if (!PyErr_GivenExceptionMatches(type, PyExc_KeyboardInterrupt) &&
        !PyErr_GivenExceptionMatches(type, PyExc_SystemExit))
        return 0;
    int multi = is_multi(op);
    if (multi <= 0)
        return multi;
    return not_done(op);
}

/* The twin's `except BaseException as exc:` after a completion raised (or was interrupted
 * before it began): run it again (`again`: a no-op unless it had not begun), isolating
 * what that raises, then isolate `exc`; or, where it ran again whole, _interrupted()'s
 * (keeps_waiting). Returns the new fatal (a new reference; NULL when isolate raised),
 * having taken the reference to `fatal`. */
static PyObject *
after_failure(PyObject *isolate, PyObject *op, PyObject *fatal, PyObject *(*again)(PyObject *, void *),
              void *arg)
{
    PyObject *type, *exc, *tb;
    PyErr_Fetch(&type, &exc, &tb); /* exc, set aside while the completion runs again */
    PyObject *r = again(op, arg);
    int waiting = 0;
    if (r == NULL) {
        PyObject *kept = isolated(isolate, op, fatal);
        Py_DECREF(fatal);
        if (kept == NULL) {
            Py_XDECREF(type);
            Py_XDECREF(exc);
            Py_XDECREF(tb);
            return NULL;
        }
        fatal = kept;
    }
    else {
        Py_DECREF(r);
        waiting = keeps_waiting(op, type);
        if (waiting < 0) { /* (an attribute that cannot be read: isolate's way, as before) */
            PyErr_Clear();
            waiting = 0;
        }
    }
    PyErr_Restore(type, exc, tb);
    if (waiting) { /* `return fatal or exc` */
        PyObject *raised = take_raised();
        if (fatal != Py_None) {
            Py_XDECREF(raised);
            return fatal;
        }
        Py_DECREF(fatal);
        return raised;
    }
    PyObject *kept = isolated(isolate, op, fatal);
    Py_DECREF(fatal);
    return kept;
}

struct one_cqe {
    PyObject *user_data, *res;
};

static PyObject *
again_one(PyObject *op, void *arg)
{
    struct one_cqe *cqe = arg;
    return complete_one(op, cqe->user_data, cqe->res);
}

static PyObject *
again_parts(PyObject *op, void *arg)
{
    PyObject **columns = arg;
    PyObject *call[] = {op, columns[0], columns[1]};
    return PyObject_VectorcallMethod(s_complete_parts, call, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

/* `res == CANCELED and not op.multi and refused(op, user_data)`: 1 when refused took the
 * operation, 0 when it is to complete, -1 on an error. */
static int
taken_as_refused(PyObject *refused, PyObject *op, PyObject *user_data, PyObject *res)
{
    int canceled;
    if (PyLong_CheckExact(res)) { /* (a CQE's result, always: no call to make) */
        int overflow;
        canceled = PyLong_AsLongAndOverflow(res, &overflow) == -ECANCELED && !overflow;
    }
    else if ((canceled = PyObject_RichCompareBool(res, canceled_obj, Py_EQ)) < 0)
        return -1;
    if (!canceled)
        return 0;
    int multi = is_multi(op);
    if (multi != 0)
        return multi < 0 ? -1 : 0;
    PyObject *call[] = {op, user_data};
    PyObject *took = PyObject_Vectorcall(refused, call, 2, NULL);
    if (took == NULL)
        return -1;
    int r = PyObject_IsTrue(took);
    Py_DECREF(took);
    return r;
}

static PyObject *
deliver_completions(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 && nargs != 5) {
        PyErr_Format(PyExc_TypeError, "deliver() takes 4 or 5 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *inflight = args[0], *isolate = args[3];
    PyObject *refused = nargs == 5 ? args[4] : Py_None;
    if (!PyDict_CheckExact(inflight) || !PyList_CheckExact(args[1]) || !PyList_CheckExact(args[2])) {
        PyErr_SetString(PyExc_TypeError, "deliver() takes the in-flight dict and two lists");
        return NULL;
    }
    if (PyList_GET_SIZE(args[1]) != PyList_GET_SIZE(args[2])) {
        PyErr_SetString(PyExc_ValueError, "deliver() needs one result per user_data");
        return NULL;
    }
    /* Snapshots: the completions run Python, which could change the lists. */
    PyObject *ud_tuple = PyList_AsTuple(args[1]);
    if (ud_tuple == NULL)
        return NULL;
    PyObject *res_tuple = PyList_AsTuple(args[2]);
    if (res_tuple == NULL) {
        Py_DECREF(ud_tuple);
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(ud_tuple);
    PyObject **uds = &PyTuple_GET_ITEM(ud_tuple, 0);
    PyObject **results = &PyTuple_GET_ITEM(res_tuple, 0);
    PyObject *fatal = Py_NewRef(Py_None);
    PyObject *first = NULL;
    if (n) {
        first = Py_XNewRef(PyDict_GetItemWithError(inflight, uds[0]));
        if (first == NULL && PyErr_Occurred())
            goto error;
    }
    int batch = first == NULL ? 0 : one_batch(inflight, first, uds, n);
    if (batch < 0)
        goto error;
    if (batch) {
        PyObject *columns[] = {args[1], args[2]};
        PyObject *r = again_parts(first, columns);
        if (r == NULL) {
            fatal = after_failure(isolate, first, fatal, again_parts, columns);
            if (fatal == NULL)
                goto error;
        }
        Py_XDECREF(r);
        for (Py_ssize_t i = 0; i < n; i++)
            if (forget(inflight, uds[i]) < 0)
                goto error;
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *op = Py_XNewRef(PyDict_GetItemWithError(inflight, uds[i]));
        if (op == NULL) {
            if (PyErr_Occurred())
                goto error;
            continue;
        }
        int taken = refused == Py_None ? 0 : taken_as_refused(refused, op, uds[i], results[i]);
        PyObject *r = taken > 0 ? Py_NewRef(Py_None) : taken < 0 ? NULL : complete_one(op, uds[i], results[i]);
        if (r == NULL) {
            struct one_cqe cqe = {uds[i], results[i]};
            fatal = after_failure(isolate, op, fatal, again_one, &cqe);
            if (fatal == NULL) {
                Py_DECREF(op);
                goto error;
            }
        }
        Py_XDECREF(r);
        Py_DECREF(op);
        if (forget(inflight, uds[i]) < 0)
            goto error;
    }
done:
    Py_XDECREF(first);
    Py_DECREF(ud_tuple);
    Py_DECREF(res_tuple);
    return fatal;
error:
    Py_XDECREF(first);
    Py_DECREF(ud_tuple);
    Py_DECREF(res_tuple);
    Py_XDECREF(fatal);
    return NULL;
}

/* file_facts(fd) -> (st_mode, st_size, st_blksize, st_dev) of fstat(2): see hotpath.py.
 * A descriptor that is not an int in a C int's range goes to os.fstat itself, whose
 * answer (or error) it then is. */
static PyObject *os_fstat; /* os.fstat */
static PyObject *s_st_mode, *s_st_size, *s_st_blksize, *s_st_dev;

static PyObject *
file_facts(PyObject *Py_UNUSED(module), PyObject *fd_obj)
{
    int fd = -1;
    if (PyLong_CheckExact(fd_obj)) {
        int overflow;
        long v = PyLong_AsLongAndOverflow(fd_obj, &overflow);
        if (!overflow && v >= 0 && v <= INT_MAX)
            fd = (int)v;
    }
    if (fd < 0) { /* (anything else: as os.fstat takes it) */
        PyObject *st = PyObject_CallOneArg(os_fstat, fd_obj);
        if (st == NULL)
            return NULL;
        PyObject *names[] = {s_st_mode, s_st_size, s_st_blksize, s_st_dev}, *facts = PyTuple_New(4);
        for (int i = 0; facts != NULL && i < 4; i++) {
            PyObject *value = PyObject_GetAttr(st, names[i]);
            if (value == NULL)
                Py_CLEAR(facts);
            else
                PyTuple_SET_ITEM(facts, i, value);
        }
        Py_DECREF(st);
        return facts;
    }
    struct stat st;
    int r, interrupted = 0;
    do { /* (as os.fstat: the GIL released, a network filesystem may ask its server; EINTR
          * retried once the signal handlers ran, PEP 475, unless one of them raised) */
        Py_BEGIN_ALLOW_THREADS
        r = fstat(fd, &st);
        Py_END_ALLOW_THREADS
    } while (r != 0 && errno == EINTR && !(interrupted = PyErr_CheckSignals()));
    if (interrupted)
        return NULL;
    if (r != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return Py_BuildValue("(lLlK)", (long)st.st_mode, (long long)st.st_size, (long)st.st_blksize,
                         (unsigned long long)st.st_dev);
}

/* open_cached(dirfd, path, flags) -> the new descriptor, or -errno: see hotpath.py. */
#define OPEN_HOW_RESOLVE_CACHED 0x20 /* linux/openat2.h, Linux 5.12 */
struct open_how_v0 {                 /* struct open_how, as Linux 5.6 defined it */
    uint64_t flags;
    uint64_t mode;
    uint64_t resolve;
};

/* A C int from a Python int, as os's converter: 0, or -1 with an error set. */
static int
as_c_int(PyObject *value, int *into)
{
    long v = PyLong_AsLong(value);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v < INT_MIN || v > INT_MAX) {
        PyErr_SetString(PyExc_OverflowError, "Python int too large to convert to C int");
        return -1;
    }
    *into = (int)v;
    return 0;
}

/* openat2(dirfd, path, flags | O_NONBLOCK, RESOLVE_CACHED), O_NONBLOCK taken off again
 * unless `flags` has it: the descriptor, or -errno. */
static long
open_cached_fd(int dirfd, const char *path, int flags)
{
#ifdef SYS_openat2
    struct open_how_v0 how = {
        .flags = (uint64_t)(unsigned int)(flags | O_NONBLOCK),
        .mode = 0,
        .resolve = OPEN_HOW_RESOLVE_CACHED,
    };
    long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    if (fd < 0)
        return -errno;
    if (!(flags & O_NONBLOCK) && fcntl((int)fd, F_SETFL, flags) < 0) {
        close((int)fd); /* the ring's open does it then */
        return -EAGAIN;
    }
    return fd;
#else
    (void)dirfd;
    (void)path;
    (void)flags;
    return -ENOSYS;
#endif
}

static PyObject *
open_cached(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "open_cached expected 3 arguments, got %zd", nargs);
        return NULL;
    }
    int dirfd, flags;
    if (as_c_int(args[0], &dirfd) < 0 || as_c_int(args[2], &flags) < 0)
        return NULL;
    if (!PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "open_cached: path must be bytes");
        return NULL;
    }
    const char *path = PyBytes_AS_STRING(args[1]);
    if ((Py_ssize_t)strlen(path) != PyBytes_GET_SIZE(args[1])) {
        PyErr_SetString(PyExc_ValueError, "embedded null byte");
        return NULL;
    }
    return PyLong_FromLong(open_cached_fd(dirfd, path, flags));
}

/* open_inline(path, flags=os.O_RDONLY, mode=0o777, *, dir_fd=None) -> the new descriptor,
 * or None: the twin of table._open_inline (open_fd's inline attempt), returned by
 * install_open_inline(). It makes the common case itself: a str path, int flags and mode
 * in a C int's range, no dir_fd, and openat2 with RESOLVE_CACHED known to work here
 * (table's _inline_opens holds True); every other call is the reference's, which it calls
 * with the same arguments. As the reference, it looks up table's _inline_opens,
 * OPEN_CACHED, forget_descriptor and os_error at each call; NEVER_INLINE and
 * _FINAL_OPEN_ERRORS are read once, by install_open_inline(). */
static PyObject *inline_reference, *table_names, *final_open_errors, *at_fdcwd;
static PyObject *s_inline_opens, *s_open_cached, *s_forget_descriptor, *s_os_error;
static long long never_inline_flags;

static PyObject *
open_inline(PyObject *module, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    long long flags, mode; /* (in a C int's range) */
    int openat2_works = 0;
    if (nargs == 3 && kwnames == NULL && PyUnicode_CheckExact(args[0]) &&
        int_in(args[1], INT_MIN, (long long)INT_MAX + 1, &flags) &&
        int_in(args[2], INT_MIN, (long long)INT_MAX + 1, &mode) && !(flags & never_inline_flags)) {
        PyObject *known = global_in(table_names, s_inline_opens);
        if (known == NULL)
            return NULL;
        openat2_works = PyList_CheckExact(known) && PyList_GET_SIZE(known) >= 1 && PyList_GET_ITEM(known, 0) == Py_True;
        Py_DECREF(known);
    }
    if (!openat2_works)
        return PyObject_Vectorcall(inline_reference, args, nargsf, kwnames);
    PyObject *raw = PyUnicode_EncodeFSDefault(args[0]);
    if (raw == NULL) { /* (the reference's `except Exception`) */
        if (!PyErr_ExceptionMatches(PyExc_Exception))
            return NULL;
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    if (PyBytes_GET_SIZE(raw) == 0 || (Py_ssize_t)strlen(PyBytes_AS_STRING(raw)) != PyBytes_GET_SIZE(raw)) {
        Py_DECREF(raw);
        Py_RETURN_NONE;
    }
    PyObject *attempt = global_in(table_names, s_open_cached),
             *cloexec = PyLong_FromLongLong(flags | O_CLOEXEC);
    if (attempt == NULL || cloexec == NULL) {
        Py_DECREF(raw);
        Py_XDECREF(attempt);
        Py_XDECREF(cloexec);
        return NULL;
    }
    PyObject *attempt_args[] = {at_fdcwd, raw, cloexec};
    PyObject *answer = PyObject_Vectorcall(attempt, attempt_args, 3, NULL);
    Py_DECREF(attempt);
    Py_DECREF(raw);
    Py_DECREF(cloexec);
    if (answer == NULL)
        return NULL;
    long fd = PyLong_AsLong(answer);
    if (fd == -1 && PyErr_Occurred()) {
        Py_DECREF(answer);
        return NULL;
    }
    if (fd >= 0) {
        PyObject *forget = global_in(table_names, s_forget_descriptor);
        PyObject *forgot = forget == NULL ? NULL : PyObject_CallOneArg(forget, answer);
        Py_XDECREF(forget);
        if (forgot == NULL) { /* (an interrupt: the descriptor is not lost) */
            PyObject *exc = take_raised();
            close((int)fd);
            restore_raised(exc);
            Py_DECREF(answer);
            return NULL;
        }
        Py_DECREF(forgot);
        return answer;
    }
    PyObject *code = PyLong_FromLong(-fd);
    int final = code == NULL ? -1 : PySet_Contains(final_open_errors, code);
    Py_XDECREF(code);
    if (final <= 0) {
        Py_DECREF(answer);
        return final < 0 ? NULL : Py_NewRef(Py_None);
    }
    PyObject *make = global_in(table_names, s_os_error);
    PyObject *error_args[] = {answer, args[0]};
    PyObject *error = make == NULL ? NULL : PyObject_Vectorcall(make, error_args, 2, NULL);
    Py_XDECREF(make);
    Py_DECREF(answer);
    if (error == NULL)
        return NULL;
    if (!PyExceptionInstance_Check(error)) { /* (as `raise` of one) */
        PyErr_SetString(PyExc_TypeError, "exceptions must derive from BaseException");
        Py_DECREF(error);
        return NULL;
    }
    PyErr_SetObject((PyObject *)Py_TYPE(error), error);
    Py_DECREF(error);
    return NULL;
}

static PyMethodDef open_inline_def = {
    "open_inline", (PyCFunction)(void (*)(void))open_inline, METH_FASTCALL | METH_KEYWORDS,
    "open_inline(path, flags=os.O_RDONLY, mode=0o777, *, dir_fd=None) -> fd or None: the twin of "
    "table._open_inline."};

/* install_open_inline(reference, globals) -> open_inline, over table's globals. */
static PyObject *
install_open_inline(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyCallable_Check(args[0]) || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "install_open_inline(reference, globals)");
        return NULL;
    }
    if (inline_reference != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "install_open_inline() was called already");
        return NULL;
    }
    PyObject *names = args[1], *never = PyDict_GetItemString(names, "NEVER_INLINE"),
             *final = PyDict_GetItemString(names, "_FINAL_OPEN_ERRORS");
    if (never == NULL || final == NULL || !PyAnySet_Check(final)) {
        PyErr_SetString(PyExc_TypeError, "the namespace has no NEVER_INLINE or _FINAL_OPEN_ERRORS");
        return NULL;
    }
    never_inline_flags = PyLong_AsLongLong(never);
    if (never_inline_flags == -1 && PyErr_Occurred())
        return NULL;
    if (intern(&s_inline_opens, "_inline_opens") < 0 || intern(&s_open_cached, "OPEN_CACHED") < 0 ||
        intern(&s_forget_descriptor, "forget_descriptor") < 0 || intern(&s_os_error, "os_error") < 0 ||
        (at_fdcwd = PyLong_FromLong(AT_FDCWD)) == NULL)
        return NULL;
    inline_reference = Py_NewRef(args[0]);
    table_names = Py_NewRef(names);
    final_open_errors = Py_NewRef(final);
    return PyCFunction_New(&open_inline_def, NULL);
}

/* read_cached(fd, size, offset) -> bytes or -errno: see hotpath.py. */
#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008 /* linux/fs.h, Linux 4.14 */
#endif
#define GIL_FREE_COPY 65536 /* copies from this size on let other threads run meanwhile */

/* A value in [low, high] from a Python int: 0, or -1 with an error set (ValueError when
 * out of range, as hotpath.py's, however far). */
static int
as_ranged(PyObject *value, long long low, long long high, const char *what, long long *into)
{
    PyObject *index = PyNumber_Index(value);
    if (index == NULL)
        return -1;
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(index, &overflow);
    if (v == -1 && PyErr_Occurred()) {
        Py_DECREF(index);
        return -1;
    }
    if (overflow || v < low || v > high) {
        PyErr_Format(PyExc_ValueError, "read %s %R out of range [%lld, %lld]", what, index,
                     low, high);
        Py_DECREF(index);
        return -1;
    }
    Py_DECREF(index);
    *into = v;
    return 0;
}

static PyObject *copy_cached(int fd, long long size, long long offset);

static PyObject *
read_cached(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "read_cached expected 3 arguments, got %zd", nargs);
        return NULL;
    }
    int fd;
    long long size, offset;
    if (as_c_int(args[0], &fd) < 0 || as_ranged(args[1], 1, MAX_RW_COUNT, "size", &size) < 0
        || as_ranged(args[2], 0, LLONG_MAX, "offset", &offset) < 0)
        return NULL;
    return copy_cached(fd, size, offset);
}

/* read_cached's copy, of checked values (size in [1, MAX_RW_COUNT], offset >= 0): new
 * bytes, or -errno as a Python int. */
static PyObject *
copy_cached(int fd, long long size, long long offset)
{
    PyObject *data = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
    if (data == NULL)
        return NULL;
    struct iovec iov = {PyBytes_AS_STRING(data), (size_t)size};
    ssize_t n;
    if (size >= GIL_FREE_COPY) {
        Py_BEGIN_ALLOW_THREADS
        n = preadv2(fd, &iov, 1, (off_t)offset, RWF_NOWAIT);
        Py_END_ALLOW_THREADS
    } else {
        n = preadv2(fd, &iov, 1, (off_t)offset, RWF_NOWAIT);
    }
    if (n < 0) { /* EAGAIN, EOPNOTSUPP, or an error the ring's read reports */
        int error = errno;
        Py_DECREF(data);
        return PyLong_FromLong(-error);
    }
    if (n < size && _PyBytes_Resize(&data, (Py_ssize_t)n) < 0)
        return NULL;
    return data;
}

/* read_many_cached(fds, sizes, offsets, limit) -> ([bytes, ...], -errno or 0): see hotpath.py. */

/* The columns of a batch: signed 64-bit buffers (read_many_args's arrays) read in place,
 * any other sequence item by item. */
typedef struct {
    PyObject *seq;
    Py_buffer view; /* view.obj NULL: not a 'q' buffer */
} column;

static int
column_open(column *c, PyObject *seq)
{
    c->seq = seq;
    c->view.obj = NULL;
    if (PyObject_CheckBuffer(seq)) {
        if (PyObject_GetBuffer(seq, &c->view, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) {
            PyErr_Clear(); /* not contiguous: item by item, as seq[i] gives them */
            c->view.obj = NULL;
            return 0;
        }
        if (c->view.ndim != 1 || c->view.itemsize != 8 || c->view.format == NULL
            || strcmp(c->view.format, "q") != 0)
            PyBuffer_Release(&c->view); /* (sets view.obj to NULL) */
    }
    return 0;
}

static void
column_close(column *c)
{
    if (c->view.obj != NULL)
        PyBuffer_Release(&c->view);
}

static Py_ssize_t
column_len(column *c)
{
    return c->view.obj != NULL ? c->view.len / 8 : PyObject_Size(c->seq);
}

/* Item i as a new reference (a Python int for a buffer's), as seq[i] gives it. */
static PyObject *
column_item(column *c, Py_ssize_t i)
{
    if (c->view.obj != NULL)
        return PyLong_FromLongLong(((long long *)c->view.buf)[i]);
    PyObject *key = PyLong_FromSsize_t(i);
    if (key == NULL)
        return NULL;
    PyObject *item = PyObject_GetItem(c->seq, key);
    Py_DECREF(key);
    return item;
}

/* CopyRing: a batch's copies through a small io_uring of its own (see hotpath.py): the
 * requests' non-blocking reads (RWF_NOWAIT, as preadv2's above) written as READ SQEs into
 * fresh bytes objects and submitted together, so one io_uring_enter makes what would be one
 * preadv2 each. The kernel completes such a read inside that call (it copies from the page
 * cache or fails at once with EAGAIN: RWF_NOWAIT keeps it from waiting or going to a
 * worker), so the call returns with every CQE posted. The answers are read_cached()'s, in
 * order.
 *
 * A CopyRing without a ring (io_uring_setup failed, closed, failed since, or in a forked
 * child, whose maps would be its parent's ring) leaves the copies to preadv2.
 *
 * Invariant: every bytes object an SQE points at is held until its CQE was reaped; where
 * the CQEs cannot all be had (io_uring_enter failing while waiting for them, which a read
 * that cannot wait does not make it do), the buffers are leaked and the ring closed: never
 * freed under the kernel. */

#define COPY_RING_ENTRIES 64
#define COPY_RING_MIN 12 /* fewer reads: preadv2 each, cheaper (the break-even is about 8) */

struct ring_params { /* struct io_uring_params */
    uint32_t sq_entries, cq_entries, flags, sq_thread_cpu, sq_thread_idle, features, wq_fd;
    uint32_t resv[3];
    uint32_t sq_head, sq_tail, sq_ring_mask, sq_ring_entries, sq_flags, sq_dropped, sq_array,
        sq_resv1;
    uint64_t sq_user_addr;
    uint32_t cq_head, cq_tail, cq_ring_mask, cq_ring_entries, cq_overflow, cq_cqes, cq_flags,
        cq_resv1;
    uint64_t cq_user_addr;
};
_Static_assert(sizeof(struct ring_params) == 120, "io_uring_params is 120 bytes");

struct ring_cqe {
    uint64_t user_data;
    int32_t res;
    uint32_t flags;
};

#define SETUP_SUBMIT_ALL (1U << 7) /* Linux 5.18: a failed SQE does not stop the batch */
#define FEAT_SINGLE_MMAP (1U << 0)
#define ENTER_GETEVENTS (1U << 0)
#define OFF_SQ_RING 0ULL
#define OFF_CQ_RING 0x8000000ULL
#define OFF_SQES 0x10000000ULL

typedef struct {
    int fd;
    pid_t pid;
    int busy;            /* a call is copying through it (the GIL released between its runs,
                          * maybe): no other call may use it, and a close() meanwhile is
                          * left to that call */
    int close_when_done; /* close() came meanwhile: the call that holds it closes it */
    unsigned entries, sq_mask, cq_mask;
    uint32_t generation; /* the high half of user_data: CQEs of an earlier call are not ours */
    void *ring_map, *cq_map; /* cq_map NULL: the ring map holds the CQ too */
    size_t ring_len, cq_len, sqes_len;
    struct sqe *sqes;
    uint32_t *sq_head, *sq_tail, *sq_array, *cq_head, *cq_tail;
    struct ring_cqe *cqes;
} copy_ring;

static void
copy_ring_unmap(copy_ring *r)
{
    if (r->sqes != NULL)
        munmap(r->sqes, r->sqes_len);
    if (r->cq_map != NULL)
        munmap(r->cq_map, r->cq_len);
    if (r->ring_map != NULL)
        munmap(r->ring_map, r->ring_len);
    if (r->fd >= 0)
        close(r->fd);
    PyMem_RawFree(r);
}

/* A new ring, or NULL (errno set; no Python error). */
static copy_ring *
copy_ring_make(void)
{
    copy_ring *r = PyMem_RawCalloc(1, sizeof(copy_ring));
    if (r == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    r->fd = -1;
    struct ring_params p;
    for (int attempt = 0; r->fd < 0; attempt++) {
        memset(&p, 0, sizeof p);
        p.flags = attempt == 0 ? SETUP_SUBMIT_ALL : 0;
        r->fd = (int)syscall(__NR_io_uring_setup, COPY_RING_ENTRIES, &p);
        if (r->fd < 0 && (errno != EINVAL || attempt > 0))
            goto failed;
    }
    r->pid = getpid();
    r->entries = p.sq_entries;
    r->ring_len = p.sq_array + p.sq_entries * sizeof(uint32_t);
    size_t cq_len = p.cq_cqes + p.cq_entries * sizeof(struct ring_cqe);
    int prot = PROT_READ | PROT_WRITE, flags = MAP_SHARED | MAP_POPULATE;
    if (p.features & FEAT_SINGLE_MMAP) {
        if (cq_len > r->ring_len)
            r->ring_len = cq_len;
    }
    r->ring_map = mmap(NULL, r->ring_len, prot, flags, r->fd, OFF_SQ_RING);
    if (r->ring_map == MAP_FAILED) {
        r->ring_map = NULL;
        goto failed;
    }
    char *cq = r->ring_map;
    if (!(p.features & FEAT_SINGLE_MMAP)) {
        r->cq_len = cq_len;
        r->cq_map = mmap(NULL, cq_len, prot, flags, r->fd, OFF_CQ_RING);
        if (r->cq_map == MAP_FAILED) {
            r->cq_map = NULL;
            goto failed;
        }
        cq = r->cq_map;
    }
    r->sqes_len = p.sq_entries * sizeof(struct sqe);
    r->sqes = mmap(NULL, r->sqes_len, prot, flags, r->fd, OFF_SQES);
    if (r->sqes == MAP_FAILED) {
        r->sqes = NULL;
        goto failed;
    }
    char *sq = r->ring_map;
    r->sq_head = (uint32_t *)(sq + p.sq_head);
    r->sq_tail = (uint32_t *)(sq + p.sq_tail);
    r->sq_array = (uint32_t *)(sq + p.sq_array);
    r->sq_mask = *(uint32_t *)(sq + p.sq_ring_mask);
    r->cq_head = (uint32_t *)(cq + p.cq_head);
    r->cq_tail = (uint32_t *)(cq + p.cq_tail);
    r->cq_mask = *(uint32_t *)(cq + p.cq_ring_mask);
    r->cqes = (struct ring_cqe *)(cq + p.cq_cqes);
    return r;
failed:;
    int error = errno;
    copy_ring_unmap(r);
    errno = error;
    return NULL;
}

typedef struct {
    PyObject_HEAD
    copy_ring *ring; /* NULL: none */
} CopyRing;

static PyTypeObject CopyRingType;

/* The ring of a CopyRing, taken for a call (busy until release_ring()), or NULL where it has
 * none that may copy now (made by another process, or busy with another call). */
static copy_ring *
take_ring(PyObject *obj)
{
    if (obj == NULL || Py_TYPE(obj) != &CopyRingType)
        return NULL;
    copy_ring *r = ((CopyRing *)obj)->ring;
    if (r == NULL || r->busy || r->pid != getpid())
        return NULL;
    r->busy = 1;
    return r;
}

/* The end of a call that took `r`: closed now if close() came meanwhile. */
static void
release_ring(copy_ring *r)
{
    r->busy = 0;
    if (r->close_when_done)
        copy_ring_unmap(r);
}

static PyObject *
CopyRing_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) || (kwds != NULL && PyDict_GET_SIZE(kwds))) {
        PyErr_SetString(PyExc_TypeError, "CopyRing() takes no arguments");
        return NULL;
    }
    CopyRing *self = (CopyRing *)type->tp_alloc(type, 0);
    if (self != NULL)
        self->ring = copy_ring_make(); /* (NULL: none, the copies are preadv2 calls) */
    return (PyObject *)self;
}

/* Invariant: a ring is unmapped only when no call of this process holds it (busy): a call
 * that holds it (another thread's, between two runs with the GIL released) closes it as it
 * ends. (A forked child's busy is its parent's: no thread of the child will end that call.) */
static PyObject *
CopyRing_close(CopyRing *self, PyObject *Py_UNUSED(ignored))
{
    copy_ring *r = self->ring;
    self->ring = NULL;
    if (r != NULL) {
        if (r->busy && r->pid == getpid())
            r->close_when_done = 1;
        else
            copy_ring_unmap(r);
    }
    Py_RETURN_NONE;
}

static PyObject *
CopyRing_fileno(CopyRing *self, PyObject *Py_UNUSED(ignored))
{
    copy_ring *r = self->ring;
    return PyLong_FromLong(r == NULL || r->pid != getpid() ? -1 : r->fd);
}

static void
CopyRing_dealloc(CopyRing *self)
{
    if (self->ring != NULL)
        copy_ring_unmap(self->ring);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef CopyRing_methods[] = {
    {"close", (PyCFunction)CopyRing_close, METH_NOARGS,
     "close() -> None: close the ring (the copies are preadv2 calls from then on)."},
    {"fileno", (PyCFunction)CopyRing_fileno, METH_NOARGS,
     "fileno() -> the ring's descriptor, or -1 where the copies are preadv2 calls."},
    {NULL}};

static PyTypeObject CopyRingType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "uringloop._ops._hotpath.CopyRing",
    .tp_basicsize = sizeof(CopyRing),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "CopyRing(): the small io_uring read_many_cached() copies batches through.",
    .tp_new = CopyRing_new,
    .tp_dealloc = (destructor)CopyRing_dealloc,
    .tp_methods = CopyRing_methods,
};

/* io_uring_enter(to_submit, min_complete, GETEVENTS) on `r`, with the GIL released where
 * the reads are large (`release`): its return, -1 with errno set. */
static long
copy_ring_enter(copy_ring *r, unsigned to_submit, unsigned min_complete, int release)
{
    long entered;
    if (release) {
        Py_BEGIN_ALLOW_THREADS
        entered = syscall(__NR_io_uring_enter, r->fd, to_submit, min_complete, ENTER_GETEVENTS,
                          NULL, 0);
        Py_END_ALLOW_THREADS
    } else {
        entered = syscall(__NR_io_uring_enter, r->fd, to_submit, min_complete, ENTER_GETEVENTS,
                          NULL, 0);
    }
    return entered;
}

/* The CQEs of call `generation` posted so far, into `results` (INT32_MIN where none
 * yet), the CQ head moved past every CQE seen: how many were this call's. */
static Py_ssize_t
copy_ring_reap(copy_ring *r, uint32_t generation, Py_ssize_t n, int32_t *results)
{
    Py_ssize_t reaped = 0;
    uint32_t head = *r->cq_head;
    uint32_t cq_tail = __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE);
    for (; head != cq_tail; head++) {
        struct ring_cqe *c = &r->cqes[head & r->cq_mask];
        if ((uint32_t)(c->user_data >> 32) != generation)
            continue; /* an earlier call's, given up on */
        uint32_t k = (uint32_t)c->user_data;
        if (k < (uint32_t)n && results[k] == INT32_MIN) {
            results[k] = c->res;
            reaped++;
        }
    }
    /* Invariant: the CQ head passes a CQE only once it was read (release). */
    __atomic_store_n(r->cq_head, head, __ATOMIC_RELEASE);
    return reaped;
}

/* An error of io_uring_enter after which waiting again makes sense. */
static int
enter_again(int error)
{
    return error == 0 || error == EINTR || error == EAGAIN || error == EBUSY;
}

/* Copy requests [first, first + n) of the columns (values in range, sizes >= 1) through
 * the ring, into `into[k]` (new bytes of sizes[first + k]) and `results[k]` (the CQE's
 * res; -EAGAIN for a read the kernel did not take). 0, or -1 where the ring could not be
 * used (its state is unknown: the caller closes it; the reads whose CQEs are missing keep
 * their buffers, their `into[k]` set to NULL: leaked). */
static int
copy_ring_submit(copy_ring *r, const long long *fds, const long long *sizes,
                 const long long *offsets, Py_ssize_t n, PyObject **into, int32_t *results)
{
    uint32_t generation = ++r->generation;
    uint32_t tail = *r->sq_tail; /* (ours alone to move) */
    long long total = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        uint32_t index = (tail + (uint32_t)k) & r->sq_mask;
        struct sqe *e = &r->sqes[index];
        memset(e, 0, sizeof *e);
        e->opcode = IORING_OP_READ;
        e->fd = (int32_t)fds[k];
        e->off = (uint64_t)offsets[k];
        e->addr = (uint64_t)(uintptr_t)PyBytes_AS_STRING(into[k]);
        e->len = (uint32_t)sizes[k];
        e->rw_flags = RWF_NOWAIT;
        e->user_data = ((uint64_t)generation << 32) | (uint64_t)k;
        r->sq_array[index] = index;
        results[k] = INT32_MIN; /* no CQE yet */
        total += sizes[k];
    }
    int release = total >= GIL_FREE_COPY;
    /* Invariant: the SQEs are written before the tail that publishes them (release). */
    __atomic_store_n(r->sq_tail, tail + (uint32_t)n, __ATOMIC_RELEASE);
    int error = copy_ring_enter(r, (unsigned)n, (unsigned)n, release) < 0 ? errno : 0;
    /* What the kernel took: a failed SQE stops a batch where SUBMIT_ALL is not known; the
     * rest were not read: the tail goes back over them. */
    Py_ssize_t submitted = (uint32_t)(__atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE) - tail);
    if (submitted > n)
        submitted = n; /* (cannot be) */
    if (submitted < n)
        __atomic_store_n(r->sq_tail, tail + (uint32_t)submitted, __ATOMIC_RELEASE);
    if (submitted == 0 && !enter_again(error))
        return -1; /* not a ring any more (nothing in flight) */
    Py_ssize_t reaped = copy_ring_reap(r, generation, n, results);
    for (int tries = 0; reaped < submitted; tries++) {
        if (!enter_again(error) || tries == 1000) { /* reads the kernel may still make */
            for (Py_ssize_t k = 0; k < submitted; k++)
                if (results[k] == INT32_MIN)
                    into[k] = NULL; /* leaked, never freed under the kernel */
            return -1;
        }
        unsigned waiting = (unsigned)(submitted - reaped);
        error = copy_ring_enter(r, 0, waiting, release) < 0 ? errno : 0;
        reaped += copy_ring_reap(r, generation, n, results);
    }
    for (Py_ssize_t k = submitted; k < n; k++)
        results[k] = -EAGAIN; /* not read: the caller's copies stop there */
    return 0;
}

/* The descriptors a call has found to be regular files or block devices (io_uring's READ
 * of anything else, a pipe, a socket, ignores the offset and takes what is there, where
 * preadv2 fails with ESPIPE): the first CHECKED_FDS a call looks at, an fstat each. The
 * requests of any other descriptor are preadv2 calls (so a call makes at most CHECKED_FDS
 * fstat calls, however its descriptors alternate). */
#define CHECKED_FDS 8
typedef struct {
    long long fds[CHECKED_FDS];
    int ring[CHECKED_FDS]; /* 1: a regular file or block device */
    int count;
} checked_fds;

static int
takes_offsets(checked_fds *seen, long long fd)
{
    for (int i = 0; i < seen->count; i++)
        if (seen->fds[i] == fd)
            return seen->ring[i];
    if (seen->count == CHECKED_FDS)
        return 0;
    struct stat st;
    int ring = fstat((int)fd, &st) == 0 && (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode));
    seen->fds[seen->count] = fd;
    seen->ring[seen->count++] = ring;
    return ring; /* (0: its read_cached() answers it) */
}

/* How many requests from `first` on (at most COPY_RING_ENTRIES) the ring may read as one
 * batch: values in range and sizes >= 1 (read_many_cached's copies without a Python int),
 * of a regular file or a block device. */
static Py_ssize_t
ring_run(const long long *fds, const long long *sizes, const long long *offsets,
         Py_ssize_t first, Py_ssize_t count, unsigned entries, checked_fds *seen)
{
    Py_ssize_t most = entries < COPY_RING_ENTRIES ? (Py_ssize_t)entries : COPY_RING_ENTRIES;
    Py_ssize_t k = first;
    while (k < count && k - first < most && 0 <= fds[k] && fds[k] <= INT_MAX && 1 <= sizes[k]
           && sizes[k] <= MAX_RW_COUNT && offsets[k] >= 0 && takes_offsets(seen, fds[k]))
        k++;
    return k - first;
}

/* Requests [first, first + n) copied through the ring, their answers appended to
 * `answers` in order while each is whole (read_many_cached's rule). 0: all were, go on;
 * 1: stopped (*stopped set to the -errno where one failed); 2: the ring failed, nothing
 * appended (copy them another way); -1: a Python error. */
static int
copy_through_ring(copy_ring *r, const long long *fds, const long long *sizes,
                  const long long *offsets, Py_ssize_t first, Py_ssize_t n, long page,
                  PyObject *answers, PyObject **stopped)
{
    PyObject *into[COPY_RING_ENTRIES];
    int32_t results[COPY_RING_ENTRIES];
    for (Py_ssize_t k = 0; k < n; k++) {
        into[k] = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)sizes[first + k]);
        if (into[k] == NULL) {
            while (k > 0)
                Py_DECREF(into[--k]);
            return -1;
        }
    }
    if (copy_ring_submit(r, fds + first, sizes + first, offsets + first, n, into, results) < 0) {
        for (Py_ssize_t k = 0; k < n; k++)
            Py_XDECREF(into[k]); /* (NULL: leaked, the kernel may write there yet) */
        return 2;
    }
    int outcome = 0;
    Py_ssize_t k = 0;
    for (; k < n && outcome == 0; k++) {
        int32_t res = results[k];
        long long size = sizes[first + k], offset = offsets[first + k];
        if (res < 0) { /* EAGAIN, EOPNOTSUPP, or an error the loop's ring read reports */
            PyObject *error = PyLong_FromLong(res);
            if (error == NULL) {
                outcome = -1;
                break;
            }
            Py_SETREF(*stopped, error);
            outcome = 1;
            break;
        }
        if (res != size && res && (offset + res) % page == 0) {
            outcome = 1; /* a page not cached, maybe: the whole read goes the other way */
            break;
        }
        if (res < size && _PyBytes_Resize(&into[k], (Py_ssize_t)res) < 0) {
            outcome = -1; /* (into[k] freed and NULL) */
            break;
        }
        if (PyList_Append(answers, into[k]) < 0) {
            outcome = -1;
            break;
        }
        Py_CLEAR(into[k]);
    }
    for (; k < n; k++)
        Py_XDECREF(into[k]);
    return outcome;
}

static PyObject *
read_many_cached(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 && nargs != 5) {
        PyErr_Format(PyExc_TypeError, "read_many_cached expected 4 or 5 arguments, got %zd",
                     nargs);
        return NULL;
    }
    PyObject *index = PyNumber_Index(args[3]);
    if (index == NULL)
        return NULL;
    int overflow;
    long long wanted = PyLong_AsLongLongAndOverflow(index, &overflow);
    Py_DECREF(index);
    if (wanted == -1 && PyErr_Occurred())
        return NULL;
    /* (any limit past the batch is the batch, any below 0 none, as min() makes it) */
    Py_ssize_t limit = overflow > 0 || wanted > PY_SSIZE_T_MAX ? PY_SSIZE_T_MAX
                       : overflow < 0 || wanted < 0         ? 0
                                                            : (Py_ssize_t)wanted;
    column cols[3];
    int opened = 0;
    copy_ring *taken = NULL; /* the ring this call holds: given back at the end */
    checked_fds seen = {.count = 0};
    Py_ssize_t ring_from = 0; /* no run of the ring can start before this request */
    PyObject *answers = NULL, *stopped = PyLong_FromLong(0), *result = NULL;
    if (stopped == NULL)
        return NULL;
    for (; opened < 3; opened++)
        if (column_open(&cols[opened], args[opened]) < 0)
            goto done;
    Py_ssize_t count = column_len(&cols[0]), sizes = column_len(&cols[1]),
               offsets = column_len(&cols[2]);
    if (count < 0 || sizes < 0 || offsets < 0)
        goto done;
    if (sizes != count || offsets != count) {
        PyErr_SetString(PyExc_ValueError,
                        "read_many_cached: fds, sizes and offsets differ in length");
        goto done;
    }
    if (limit < count)
        count = limit < 0 ? 0 : limit;
    answers = PyList_New(0);
    if (answers == NULL)
        goto done;
    long page = sysconf(_SC_PAGESIZE);
    int in_place = cols[0].view.obj != NULL && cols[1].view.obj != NULL
                   && cols[2].view.obj != NULL;
    copy_ring *ring = in_place && count >= COPY_RING_MIN && nargs == 5 ? take_ring(args[4])
                                                                        : NULL;
    taken = ring;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *data = NULL;
        long long size = 0, offset = 0;
        long long fd = -1;
        if (ring != NULL && i >= ring_from) {
            const long long *fds = cols[0].view.buf, *sizes = cols[1].view.buf,
                            *offsets = cols[2].view.buf;
            Py_ssize_t run = ring_run(fds, sizes, offsets, i, count, ring->entries, &seen);
            if (run < COPY_RING_MIN) /* request i + run is in no run: none starts before */
                ring_from = i + run + 1;
            else {
                int outcome =
                    copy_through_ring(ring, fds, sizes, offsets, i, run, page, answers, &stopped);
                if (outcome < 0) {
                    Py_CLEAR(answers);
                    goto done;
                }
                if (outcome == 1)
                    break;
                if (outcome == 0) {
                    i += run - 1;
                    continue;
                }
                /* The ring failed: closed (what may still be in flight keeps its
                 * buffers), and these and the rest are copied one preadv2 at a time. */
                CopyRing_close((CopyRing *)args[4], NULL);
                ring = NULL;
            }
        }
        if (in_place) {
            fd = ((long long *)cols[0].view.buf)[i];
            size = ((long long *)cols[1].view.buf)[i];
            offset = ((long long *)cols[2].view.buf)[i];
        }
        if (in_place && 0 <= fd && fd <= INT_MAX && 0 <= size && size <= MAX_RW_COUNT
            && offset >= 0) { /* values in range (read_many_args's): no Python ints made */
            data = size ? copy_cached((int)fd, size, offset) : PyBytes_FromStringAndSize(NULL, 0);
        } else { /* any other sequence's, or out of range: as hotpath.py, for its errors */
            PyObject *fields[3] = {NULL, NULL, NULL};
            for (int k = 0; k < 3; k++) {
                fields[k] = column_item(&cols[k], i);
                if (fields[k] == NULL) {
                    Py_XDECREF(fields[0]);
                    Py_XDECREF(fields[1]);
                    Py_CLEAR(answers);
                    goto done;
                }
            }
            size = offset = 0;
            PyObject *size_index = PyNumber_Index(fields[1]);
            if (size_index != NULL) {
                int zero = PyObject_Not(size_index);
                if (zero == 1)
                    data = PyBytes_FromStringAndSize(NULL, 0);
                else if (zero == 0)
                    data = read_cached(module, fields, 3);
                if (data != NULL && PyBytes_Check(data) && !zero) {
                    /* read_cached took both as in range: these cannot fail */
                    size = PyLong_AsLongLong(size_index);
                    offset = PyLong_AsLongLong(fields[2]);
                }
                Py_DECREF(size_index);
            }
            Py_DECREF(fields[0]);
            Py_DECREF(fields[1]);
            Py_DECREF(fields[2]);
        }
        if (data == NULL) {
            Py_CLEAR(answers);
            goto done;
        }
        if (!PyBytes_Check(data)) { /* -errno */
            Py_SETREF(stopped, data);
            break;
        }
        Py_ssize_t copied = PyBytes_GET_SIZE(data);
        if (copied != size && copied && (offset + copied) % page == 0) {
            Py_DECREF(data); /* a page not cached, maybe: the whole read goes the other way */
            break;
        }
        int failed = PyList_Append(answers, data);
        Py_DECREF(data);
        if (failed) {
            Py_CLEAR(answers);
            goto done;
        }
    }
    result = PyTuple_Pack(2, answers, stopped);
done:
    if (taken != NULL)
        release_ring(taken);
    while (opened > 0)
        column_close(&cols[--opened]);
    Py_XDECREF(answers);
    Py_DECREF(stopped);
    return result;
}

/* split_requests(requests, size_max) -> (fds, sizes, offsets, fd, largest, lowest, highest)
 * or None: see hotpath.py. Requests that are tuples or lists are read here, column by
 * column as the reference's zip() gives them to array('q'), so the same values are
 * converted in the same order and the same errors come out of them; a batch with any
 * other kind of request is answered by the reference itself. */

static PyObject *split_reference; /* hotpath.split_requests, imported at its first use */
static PyObject *q_template;      /* array('q', [0]) */

static int
soft_error(void) /* one the reference turns into None (its except clause) */
{
    return PyErr_ExceptionMatches(PyExc_TypeError) || PyErr_ExceptionMatches(PyExc_ValueError)
        || PyErr_ExceptionMatches(PyExc_OverflowError);
}

static PyObject *
split_requests(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "split_requests expected 2 arguments, got %zd", nargs);
        return NULL;
    }
    PyObject *limit = PyNumber_Index(args[1]);
    if (limit == NULL)
        return NULL;
    int overflow;
    long long size_max = PyLong_AsLongLongAndOverflow(limit, &overflow);
    Py_DECREF(limit);
    if (size_max == -1 && PyErr_Occurred())
        return NULL;
    if (overflow) /* a comparison with it goes the same way as with the extreme */
        size_max = overflow > 0 ? LLONG_MAX : LLONG_MIN;
    /* A tuple of the requests, as zip(*requests) makes one: __index__ code run below
     * cannot change it under us. */
    PyObject *seq = PySequence_Tuple(args[0]);
    if (seq == NULL) {
        if (!soft_error())
            return NULL;
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(seq);
    PyObject **rows = &PyTuple_GET_ITEM(seq, 0);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyTuple_CheckExact(rows[i]) && !PyList_CheckExact(rows[i])) {
            /* (given the tuple: the requests are not iterated a second time) */
            PyObject *result = NULL;
            if (split_reference != NULL
                || !import_from("uringloop._ops.hotpath", "split_requests", &split_reference))
                result = PyObject_CallFunctionObjArgs(split_reference, seq, args[1], NULL);
            Py_DECREF(seq);
            return result;
        }
    }
    PyObject *result = NULL, *columns[3] = {NULL, NULL, NULL};
    PyObject **items = NULL; /* one column's values, taken before any is converted */
    Py_ssize_t taken = 0;
    Py_buffer views[3];
    int opened = 0;
    long long low[3], high[3];
    if (n == 0)
        goto none;
    items = PyMem_New(PyObject *, n);
    if (items == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    /* Columns 0-2, then a fourth where the requests have one: the reference's unpacking
     * asks zip() for it and fails, after converting it (array('q') of it, stopping at its
     * first error, which comes out unless it is a soft one) when every request has one. */
    for (int k = 0; k < 4; k++) {
        if (k == 3) {
            Py_ssize_t i = 0;
            while (i < n && Py_SIZE(rows[i]) <= 3)
                i++;
            if (i == n) /* none has a fourth value: the three columns are the answer */
                break;
        }
        for (taken = 0; taken < n; taken++) { /* zip's column k: a short row ends it */
            PyObject *row = rows[taken];
            if (Py_SIZE(row) <= k)
                goto none;
            items[taken] = Py_NewRef(PyTuple_CheckExact(row) ? PyTuple_GET_ITEM(row, k)
                                                             : PyList_GET_ITEM(row, k));
        }
        long long *into = NULL; /* (the fourth column is converted, not kept) */
        if (k < 3) {
            columns[k] = PySequence_Repeat(q_template, n);
            if (columns[k] == NULL
                || PyObject_GetBuffer(columns[k], &views[k], PyBUF_WRITABLE) < 0)
                goto fail;
            opened++;
            into = (long long *)views[k].buf;
            low[k] = LLONG_MAX;
            high[k] = LLONG_MIN;
        }
        for (Py_ssize_t i = 0; i < n; i++) { /* array('q', column) */
            long long v = PyLong_AsLongLongAndOverflow(items[i], &overflow);
            if (v == -1 && PyErr_Occurred())
                goto fail;
            if (overflow) /* array('q') raises OverflowError */
                goto none;
            if (into != NULL) {
                into[i] = v;
                low[k] = v < low[k] ? v : low[k];
                high[k] = v > high[k] ? v : high[k];
            }
        }
        while (taken > 0)
            Py_DECREF(items[--taken]);
        if (k == 3)
            goto none;
    }
    if (low[0] < 0 || high[0] > INT_MAX || low[1] < 1 || high[1] > size_max || low[2] < -1)
        goto none;
    while (opened > 0)
        PyBuffer_Release(&views[--opened]);
    result = Py_BuildValue("(OOOLLLL)", columns[0], columns[1], columns[2],
                           low[0] == high[0] ? low[0] : -1LL, high[1], low[2], high[2]);
    goto done;
fail:
    if (!soft_error())
        goto done;
    PyErr_Clear();
none:
    result = Py_NewRef(Py_None);
done:
    while (taken > 0)
        Py_DECREF(items[--taken]);
    PyMem_Free(items);
    while (opened > 0)
        PyBuffer_Release(&views[--opened]);
    for (int k = 0; k < 3; k++)
        Py_XDECREF(columns[k]);
    Py_DECREF(seq);
    return result;
}

static PyMethodDef hotpath_functions[] = {
    {"write_entries", (PyCFunction)(void (*)(void))write_entries_into, METH_FASTCALL,
     "write_entries(backlog, inflight, sqes, words, offsets, used, user_data, abandoned)\n"
     "-> (used, user_data): write queued one-SQE operations into SQ slots."},
    {"deliver", (PyCFunction)(void (*)(void))deliver_completions, METH_FASTCALL,
     "deliver(inflight, user_datas, results, isolate, refused=None) -> fatal or None:\n"
     "complete the operations of peeked CQEs, each on its own, and take them out of the\n"
     "table."},
    {"file_facts", (PyCFunction)file_facts, METH_O,
     "file_facts(fd) -> (st_mode, st_size, st_blksize, st_dev) of fstat(2), as os.fstat gives\n"
     "them (its errors too)."},
    {"open_cached", (PyCFunction)(void (*)(void))open_cached, METH_FASTCALL,
     "open_cached(dirfd, path, flags) -> fd or -errno: the kernel's non-blocking first\n"
     "attempt at an open, from the dentry cache alone."},
    {"install_open_inline", (PyCFunction)(void (*)(void))install_open_inline, METH_FASTCALL,
     "install_open_inline(reference, globals) -> open_inline, the twin of\n"
     "table._open_inline, over table's globals."},
    {"read_cached", (PyCFunction)(void (*)(void))read_cached, METH_FASTCALL,
     "read_cached(fd, size, offset) -> bytes or -errno: the kernel's non-blocking first\n"
     "attempt at a read, from the page cache alone."},
    {"read_many_cached", (PyCFunction)(void (*)(void))read_many_cached, METH_FASTCALL,
     "read_many_cached(fds, sizes, offsets, limit, ring=None) -> ([bytes, ...], -errno or\n"
     "0): read_cached() of the first requests, for as long as each copy is the whole answer."},
    {"build", (PyCFunction)(void (*)(void))build_operation, METH_FASTCALL | METH_KEYWORDS,
     "build(spec, *args, **kwargs) -> operation: spec.build(*args, **kwargs) compiled."},
    {"pinned_at", (PyCFunction)(void (*)(void))pinned_at, METH_FASTCALL,
     "pinned_at(cls, check, opcode, fd, offset, buffer, writable) -> operation or None:\n"
     "a read into, or a write from, the caller's memory at an offset, in the common case."},
    {"split_requests", (PyCFunction)(void (*)(void))split_requests, METH_FASTCALL,
     "split_requests(requests, size_max) -> (fds, sizes, offsets, fd, largest, lowest,\n"
     "highest) or None: pread_many's requests as three int64 arrays, in the common range."},
    {NULL}};

static struct PyModuleDef hotpath_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "uringloop._ops._hotpath",
    .m_doc = "The compiled twin of uringloop/_ops/hotpath.py.",
    .m_size = -1,
    .m_methods = hotpath_functions,
};

PyMODINIT_FUNC
PyInit__hotpath(void)
{
    if (PyType_Ready(&ReadCoreType) < 0 || PyType_Ready(&PositionedCoreType) < 0
        || PyType_Ready(&CopyRingType) < 0)
        return NULL;
    if (intern(&s_free_small, "free_small") || intern(&s_alloc, "alloc") ||
        intern(&s_address_of, "address_of") || intern(&s_free_list_of, "free_list_of") ||
        intern(&s_free, "free") || intern(&s_done, "done") ||
        intern(&s_set_result, "set_result") || intern(&s_set_exception, "set_exception") ||
        intern(&s_take, "take") || intern(&s_release, "release") ||
        intern(&s_address, "address") || intern(&s_multi, "multi") || intern(&s_prep, "prep") ||
        intern(&s_complete, "complete") || intern(&s_complete_part, "complete_part") ||
        intern(&s_complete_parts, "complete_parts") ||
        intern(&s_popleft, "popleft") || intern(&s_state, "state") ||
        intern(&s_waiter, "waiter") || intern(&s_user_data, "user_data") ||
        intern(&s_nbytes, "nbytes") || intern(&s_stub, "stub") || intern(&s_blocking, "blocking") ||
        intern(&s_call, "call") || intern(&s_spec, "spec") || intern(&s_args, "args") ||
        intern(&s_kwargs, "kwargs") || intern(&s_st_mode, "st_mode") ||
        intern(&s_st_size, "st_size") || intern(&s_st_blksize, "st_blksize") ||
        intern(&s_st_dev, "st_dev"))
        return NULL;
    empty_tuple = PyTuple_New(0);
    queued_obj = PyLong_FromLong(QUEUED);
    submitted_obj = PyLong_FromLong(SUBMITTED);
    done_obj = PyLong_FromLong(DONE);
    canceled_obj = PyLong_FromLong(-ECANCELED);
    if (empty_tuple == NULL || queued_obj == NULL || submitted_obj == NULL || done_obj == NULL ||
        canceled_obj == NULL)
        return NULL;
    for (int i = 0; i < N_CORE_NAMES; i++) { /* borrowed: the static types' dicts keep them */
        core_attrs[i] = PyDict_GetItemWithError(ReadCoreType.tp_dict, *core_names[i]);
        positioned_core_attrs[i] = core_attrs[i] == NULL ? NULL
            : PyDict_GetItemWithError(PositionedCoreType.tp_dict, *core_names[i]);
        if (positioned_core_attrs[i] == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ImportError, "a core lacks a field the loops use");
            return NULL;
        }
    }
    if (import_from("struct", "error", &struct_error) ||
        import_from("uringloop._buffers", "ScratchBuffer", &scratch_type) ||
        import_from("uringloop._errors", "os_error", &os_error) ||
        import_from("uringloop._ops.state", "NO_KWARGS", &no_kwargs) ||
        import_from("uringloop._buffers", "PIN", &pin_type) || import_from("os", "fstat", &os_fstat))
        return NULL;
    PyObject *array_type;
    if (import_from("array", "array", &array_type))
        return NULL;
    q_template = PyObject_CallFunction(array_type, "s(i)", "q", 0);
    Py_DECREF(array_type);
    if (q_template == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&hotpath_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&ReadCoreType);
    if (PyModule_AddObject(m, "ReadCore", (PyObject *)&ReadCoreType) < 0) {
        Py_DECREF(&ReadCoreType);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddObjectRef(m, "PositionedCore", (PyObject *)&PositionedCoreType) < 0
        || PyModule_AddObjectRef(m, "CopyRing", (PyObject *)&CopyRingType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return with_source_digest(m);
}
