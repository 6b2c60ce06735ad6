/*
 * uringloop.threads.pread, compiled: the twin of _pread_python in uringloop/threads.py,
 * which is the readable reference.
 *
 * On its default route a thread's single read is the plain system call in that thread.
 * The Python twin is one Python frame around os.read / os.pread; this is the same call
 * without the frame. It takes only the common case itself: two or three positional
 * arguments, all exact ints, a descriptor and size in range and an offset of -1 (the file
 * position) or more. Then it does what os.read (offset -1) or os.pread does: a new bytes
 * object of `size`, the read with the GIL released, retried after EINTR unless a signal
 * handler raised, OSError from errno, the bytes cut to what was read. Any other call (a
 * keyword, loop=, timeout=, another type, a value out of range) goes to the Python twin,
 * so both behave the same by construction.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <limits.h>
#include <unistd.h>

#include "_twin_helpers.h"

#define MAX_RW_COUNT 0x7FFFF000L /* the most one read(2) returns (INT_MAX & PAGE_MASK) */

static PyObject *python_twin; /* uringloop.threads._pread_python, found at first use */

static PyObject *
call_python_twin(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (python_twin == NULL && import_from("uringloop.threads", "_pread_python", &python_twin) < 0)
        return NULL;
    return PyObject_Vectorcall(python_twin, args, (size_t)nargs, kwnames);
}

/* *value = the exact int `obj` if it lies in [low, high]: 1; 0 when it is not an exact
 * int or lies outside (no error set). */
static int
exact_in_range(PyObject *obj, long long low, long long high, long long *value)
{
    int overflow;
    long long v;

    if (!PyLong_CheckExact(obj))
        return 0;
    v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (overflow || (v == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    if (v < low || v > high)
        return 0;
    *value = v;
    return 1;
}

static PyObject *
pread_c(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    long long fd, size, offset = -1;
    PyObject *buffer;
    ssize_t n;
    int async_err = 0;

    if (kwnames != NULL || nargs < 2 || nargs > 3
        || !exact_in_range(args[0], 0, INT_MAX, &fd)
        || !exact_in_range(args[1], 0, MAX_RW_COUNT, &size)
        || (nargs == 3 && !exact_in_range(args[2], -1, LLONG_MAX, &offset)))
        return call_python_twin(args, nargs, kwnames);

    buffer = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
    if (buffer == NULL)
        return NULL;
    do {
        Py_BEGIN_ALLOW_THREADS
        if (offset == -1)
            n = read((int)fd, PyBytes_AS_STRING(buffer), (size_t)size);
        else
            n = pread((int)fd, PyBytes_AS_STRING(buffer), (size_t)size, (off_t)offset);
        Py_END_ALLOW_THREADS
    } while (n < 0 && errno == EINTR && !(async_err = PyErr_CheckSignals()));
    if (n < 0) {
        Py_DECREF(buffer);
        if (!async_err)
            PyErr_SetFromErrno(PyExc_OSError);
        return NULL;
    }
    if (n != size && _PyBytes_Resize(&buffer, (Py_ssize_t)n) < 0)
        return NULL;
    return buffer;
}

static PyMethodDef methods[] = {
    {"pread", (PyCFunction)(void (*)(void))pread_c, METH_FASTCALL | METH_KEYWORDS,
     "pread($module, /, fd, size, offset=-1, *, loop=None, timeout=None)\n--\n\n"
     "Read up to `size` bytes at `offset` (-1: at the file position) into new bytes.\n\n"
     "From a thread, this call blocks the thread: by default it is the system call itself;\n"
     "with `loop=` or `timeout=`, it goes through a loop's ring, and a timeout that expires\n"
     "raises TimeoutError as the module's docstring describes."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "uringloop._threads_c",
    "uringloop.threads.pread's common case, compiled (twin of threads._pread_python).",
    -1, methods,
};

PyMODINIT_FUNC
PyInit__threads_c(void)
{
    return with_source_digest(PyModule_Create(&module_def));
}
