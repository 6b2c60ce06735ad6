/*
 * Pin, compiled: the twin of uringloop/_buffers.py's Pin, which is the readable reference.
 *
 * Pin(obj, writable) holds a buffer export of `obj` open until release() (or until it is
 * freed): `address` and `nbytes` stay valid meanwhile, and the object cannot be resized
 * (bytearray.extend raises BufferError). It refuses what the reference refuses, with the
 * same exceptions, messages and chaining (`raise ... from None`), in the same order.
 *
 * Writable: a memoryview of `obj` of its own (so a caller's memoryview stays free to be
 * released), C-contiguous and writable, and a second memoryview of that one (as the
 * reference's ctypes char holds one): either holds `obj`'s export while it lives, so
 * releasing one (reached through gc.get_referents) unpins nothing. Read-only: an export
 * of `obj` itself (PyObject_GetBuffer, PyBUF_SIMPLE, as the reference's), or, where `obj`
 * is a memoryview, the two memoryviews of its own, the first checked by that call.
 *
 * Invariant: view.obj != NULL exactly while an export of a caller's object is held;
 * `memory` and `anchor` are this Pin's own memoryviews (NULL once released), which nothing
 * else references and nothing exports: the collector may clear them (a cycle through the
 * Pin), which a memoryview with exports does not survive.
 */
#include "_twin_helpers.h"
#include "structmember.h"

typedef struct {
    PyObject_HEAD
    Py_buffer view;
    PyObject *memory;
    PyObject *anchor;
    unsigned long long address;
    Py_ssize_t nbytes;
} Pin;

static PyObject *not_bytes_like; /* uringloop._errors.not_bytes_like */
static PyObject *s_c_contiguous;
static PyObject *s_not_contiguous; /* BufferError's message for a view not C-contiguous */

/* Replace the error being raised by `make(arg)`'s answer (an exception to raise), as
 * `raise make(arg) from None` in an except block does: its __context__ is the error
 * replaced, its __cause__ None, its context suppressed. Where `make` fails, its error is
 * the one raised. */
static void
raise_from_none(PyObject *make, PyObject *arg)
{
    PyObject *value = take_raised();
    PyObject *replacement = PyObject_CallOneArg(make, arg);
    if (replacement == NULL) {
        Py_XDECREF(value);
        return;
    }
    PyException_SetContext(replacement, value); /* (steals value) */
    PyException_SetCause(replacement, NULL);    /* (__cause__ None, context suppressed) */
    /* PyErr_Restore, not PyErr_SetObject: that would set __context__ to the exception
     * the caller handles, where the reference's is the one replaced. */
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(replacement)), replacement, NULL);
}

static void
pin_release_now(Pin *self)
{
    if (self->view.obj != NULL)
        PyBuffer_Release(&self->view); /* (sets view.obj to NULL) */
    /* This Pin's own view, referenced nowhere else: freeing it releases it, as the
     * reference's memory.release() does (or, where something still exported it, as the
     * reference leaves it: released when it is freed). */
    Py_CLEAR(self->anchor);
    Py_CLEAR(self->memory);
}

/* The second view of `memory` (see the invariant): 0, or -1 with an error set. */
static int
pin_anchor(Pin *self)
{
    self->anchor = PyMemoryView_FromObject(self->memory);
    if (self->anchor == NULL) {
        pin_release_now(self);
        return -1;
    }
    return 0;
}

static int
pin_writable(Pin *self, PyObject *obj)
{
    PyObject *memory = PyMemoryView_FromObject(obj);
    if (memory == NULL) {
        if (PyErr_ExceptionMatches(PyExc_TypeError))
            raise_from_none(not_bytes_like, obj);
        return -1;
    }
    PyObject *contiguous = PyObject_GetAttr(memory, s_c_contiguous);
    int c_contiguous = contiguous == NULL ? -1 : PyObject_IsTrue(contiguous);
    Py_XDECREF(contiguous);
    if (c_contiguous <= 0) {
        Py_DECREF(memory);
        if (c_contiguous == 0)
            PyErr_SetObject(PyExc_BufferError, s_not_contiguous);
        return -1;
    }
    if (PyMemoryView_GET_BUFFER(memory)->readonly) {
        Py_DECREF(memory);
        PyErr_SetString(PyExc_BufferError, "memoryview: underlying buffer is not writable");
        return -1;
    }
    self->memory = memory;
    if (pin_anchor(self) < 0)
        return -1;
    self->nbytes = PyMemoryView_GET_BUFFER(memory)->len;
    /* (C-contiguous: its buffer starts at its first byte) */
    self->address = self->nbytes ? (unsigned long long)(uintptr_t)PyMemoryView_GET_BUFFER(memory)->buf : 0;
    return 0;
}

static int
pin_readonly(Pin *self, PyObject *obj)
{
    if (Py_IS_TYPE(obj, &PyMemoryView_Type)) {
        /* A view of its own: the caller's stays free to release while the kernel reads. */
        self->memory = PyMemoryView_FromObject(obj);
        if (self->memory == NULL)
            return -1;
        obj = self->memory;
    }
    if (PyObject_GetBuffer(obj, &self->view, PyBUF_SIMPLE) < 0) {
        self->view.obj = NULL;
        Py_INCREF(obj); /* (named in the TypeError below; release() may free it) */
        pin_release_now(self);
        if (PyErr_ExceptionMatches(PyExc_BufferError))
            raise_from_none(PyExc_BufferError, s_not_contiguous);
        else if (PyErr_ExceptionMatches(PyExc_TypeError))
            raise_from_none(not_bytes_like, obj);
        Py_DECREF(obj);
        return -1;
    }
    self->address = (unsigned long long)(uintptr_t)self->view.buf;
    self->nbytes = self->view.len;
    if (self->memory != NULL) {
        PyBuffer_Release(&self->view); /* (checked: the views hold the caller's export) */
        if (pin_anchor(self) < 0)
            return -1;
    }
    return 0;
}

static PyObject *
pin_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"obj", "writable", NULL};
    PyObject *obj, *writable;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO:Pin", keywords, &obj, &writable))
        return NULL;
    int want_writable = PyObject_IsTrue(writable);
    if (want_writable < 0)
        return NULL;
    Pin *self = (Pin *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->view.obj = NULL;
    self->memory = NULL;
    self->anchor = NULL;
    self->address = 0;
    self->nbytes = 0;
    if ((want_writable ? pin_writable(self, obj) : pin_readonly(self, obj)) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static PyObject *
pin_release(Pin *self, PyObject *unused)
{
    pin_release_now(self);
    Py_RETURN_NONE;
}

/* Tracked by the collector, as the reference's instances are: a cycle through a pin of
 * a memoryview of its own (an object that keeps the pin of its own memory, writable) is
 * freed. The export of a caller's object is not shown, as the reference's Py_buffer (a
 * ctypes structure) is not. */
static int
pin_traverse(Pin *self, visitproc visit, void *arg)
{
    Py_VISIT(self->memory);
    Py_VISIT(self->anchor);
    return 0;
}

static int
pin_clear(Pin *self)
{
    pin_release_now(self);
    return 0;
}

static void
pin_dealloc(Pin *self)
{
    PyObject_GC_UnTrack(self);
    pin_release_now(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef pin_methods[] = {
    {"release", (PyCFunction)pin_release, METH_NOARGS,
     "Drop the export. Idempotent; call only once the kernel is done with the memory."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef pin_members[] = {
    {"address", T_ULONGLONG, offsetof(Pin, address), READONLY, NULL},
    {"nbytes", T_PYSSIZET, offsetof(Pin, nbytes), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject Pin_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "uringloop._buffers_c.Pin",
    .tp_doc = "A buffer export held open: `address` and `nbytes` stay valid until release().",
    .tp_basicsize = sizeof(Pin),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = pin_new,
    .tp_dealloc = (destructor)pin_dealloc,
    .tp_traverse = (traverseproc)pin_traverse,
    .tp_clear = (inquiry)pin_clear,
    .tp_methods = pin_methods,
    .tp_members = pin_members,
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "uringloop._buffers_c",
    .m_doc = "The compiled twin of uringloop._buffers.Pin.",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__buffers_c(void)
{
    if (import_from("uringloop._errors", "not_bytes_like", &not_bytes_like) < 0
        || intern(&s_c_contiguous, "c_contiguous") < 0
        || intern(&s_not_contiguous, "memoryview: underlying buffer is not C-contiguous") < 0
        || PyType_Ready(&Pin_Type) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Pin", (PyObject *)&Pin_Type) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return with_source_digest(m);
}
