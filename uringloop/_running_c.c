/*
 * The event loop running in this thread, compiled: asyncio.get_running_loop without the
 * getpid(2) system call Python 3.10 and 3.11 make at each lookup.
 *
 * The twin of uringloop/_running.py, whose reference calls asyncio.get_running_loop,
 * looked up at each call (a replaced one, by a test's mock or a library, is the one
 * called). running_loop() returns what it returns and raises what it raises: every case
 * but the common one (asyncio's own lookup in place, a loop running in this thread, set by
 * this process) is answered by calling it.
 *
 * On 3.10 and 3.11, _asyncio keeps the running loop in the thread state's dict, under
 * "__asyncio_running_event_loop__", in a holder that each _set_running_loop() makes anew:
 * { PyObject_HEAD; PyObject *rl_loop; pid_t rl_pid; }, the loop and the process that set
 * it. asyncio's lookup compares rl_pid with getpid() each time, so that a child made by
 * fork() inside a running loop does not see its parent's loop. Here the process's pid is
 * taken once and again after each fork (a pthread_atfork child handler forgets it): the
 * comparison is the same, without the system call. (Python 3.12 drops the comparison for
 * the same reason: asyncio resets the running loop in a forked child.)
 *
 * Invariant: the holder's layout is private, so it is read only once it is trusted
 * (layout_trusted > 0): after asyncio's own get_running_loop answered a loop and the
 * holder in the dict then had the holder's type name and size, that loop in rl_loop and
 * this process's pid in rl_pid. Any mismatch sets layout_trusted < 0, and from then on
 * every lookup asks asyncio. Only an object of that same type is read.
 *
 * On 3.12 and later asyncio's lookup makes no system call: running_loop() calls it.
 *
 * The module's state (the asyncio package it asks, the trust) is the process's, made at
 * its first import (single-phase init): one interpreter's, as the package's other
 * extensions are (uringloop installs them once).
 */
#include "_twin_helpers.h"
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

static int ready;                  /* module state made whole (set last) */
static PyObject *asyncio_module;   /* the asyncio package */
static PyObject *s_get_running_loop;
static PyObject *asyncio_own;      /* asyncio.get_running_loop as imported: _asyncio's */

#if PY_VERSION_HEX < 0x030C0000
typedef struct {
    PyObject_HEAD
    PyObject *rl_loop;
    pid_t rl_pid;
} RunningLoopHolder; /* _asyncio's PyRunningLoopHolder on 3.10 and 3.11 (Linux) */

static PyObject *s_holder_key;         /* "__asyncio_running_event_loop__" */
static PyTypeObject *holder_type;      /* the holder's type, once trusted */
static int layout_trusted;             /* 1 trusted, 0 not yet looked at, -1 never */
static volatile pid_t this_pid;        /* getpid(), 0 where not taken since the last fork */
static unsigned long long held, asked; /* lookups answered from the holder, by asyncio */

static void
forget_pid(void)
{
    this_pid = 0;
}

/* The holder in this thread's state (borrowed), or NULL: none (no error set) or an error. */
static PyObject *
holder_now(void)
{
    PyObject *dict = PyThreadState_GetDict(); /* (borrowed; NULL: none, no error set) */
    return dict == NULL ? NULL : PyDict_GetItemWithError(dict, s_holder_key);
}

/* Trust the holder's layout if the holder in the dict now agrees with `loop`, the loop
 * asyncio's own get_running_loop has just answered: 0, or -1 with an error set. */
static int
check_layout(PyObject *loop)
{
    PyObject *holder = holder_now();
    if (holder == NULL)
        return PyErr_Occurred() ? -1 : (layout_trusted = -1, 0);
    PyTypeObject *tp = Py_TYPE(holder);
    const char *name = strrchr(tp->tp_name, '.');
    name = name == NULL ? tp->tp_name : name + 1;
    RunningLoopHolder *h = (RunningLoopHolder *)holder;
    if (strcmp(name, "_RunningLoopHolder") == 0 && tp->tp_basicsize == (Py_ssize_t)sizeof(RunningLoopHolder) &&
        h->rl_loop == loop && h->rl_pid == getpid()) {
        holder_type = (PyTypeObject *)Py_NewRef((PyObject *)tp);
        layout_trusted = 1;
    } else
        layout_trusted = -1;
    return 0;
}

/* The loop the holder names, as asyncio's own lookup would answer it (a new reference), or
 * NULL: left to asyncio (no error set), or an error. */
static PyObject *
loop_held(void)
{
    PyObject *holder = holder_now();
    if (holder == NULL || Py_TYPE(holder) != holder_type)
        return NULL;
    RunningLoopHolder *h = (RunningLoopHolder *)holder;
    pid_t pid = this_pid;
    if (pid == 0)
        this_pid = pid = getpid();
    if (h->rl_loop == Py_None || h->rl_pid != pid)
        return NULL;
    held++;
    return Py_NewRef(h->rl_loop);
}
#endif

/* asyncio.get_running_loop now (a new reference), or NULL with an error set. A plain
 * module's attribute is its dict's entry (no class attribute of a module is called so):
 * read there, else asked as the attribute. */
static PyObject *
current_lookup(void)
{
    if (Py_IS_TYPE(asyncio_module, &PyModule_Type)) {
        PyObject *found = PyDict_GetItemWithError(PyModule_GetDict(asyncio_module), s_get_running_loop);
        if (found != NULL)
            return Py_NewRef(found);
        if (PyErr_Occurred())
            return NULL;
    }
    return PyObject_GetAttr(asyncio_module, s_get_running_loop);
}

static PyObject *
running_loop(PyObject *module, PyObject *unused)
{
    PyObject *lookup = current_lookup();
    if (lookup == NULL)
        return NULL;
#if PY_VERSION_HEX < 0x030C0000
    int own = lookup == asyncio_own;
    if (own && layout_trusted > 0) {
        PyObject *loop = loop_held();
        if (loop != NULL || PyErr_Occurred()) {
            Py_DECREF(lookup);
            return loop;
        }
    }
    asked++;
#endif
    PyObject *loop = PyObject_CallNoArgs(lookup);
    Py_DECREF(lookup);
#if PY_VERSION_HEX < 0x030C0000
    if (loop != NULL && own && layout_trusted == 0 && check_layout(loop) < 0)
        Py_CLEAR(loop);
#endif
    return loop;
}

static PyObject *
lookup_counts(PyObject *module, PyObject *unused)
{
#if PY_VERSION_HEX < 0x030C0000
    return Py_BuildValue("(KK)", held, asked);
#else
    return Py_BuildValue("(ii)", 0, 0);
#endif
}

static PyMethodDef functions[] = {
    {"running_loop", (PyCFunction)running_loop, METH_NOARGS,
     "running_loop() -> asyncio.get_running_loop() (3.10, 3.11: without its getpid(2))."},
    {"lookup_counts", (PyCFunction)lookup_counts, METH_NOARGS,
     "lookup_counts() -> (answered from asyncio's holder, answered by calling asyncio's "
     "lookup); (0, 0) on 3.12+, where every lookup is asyncio's."},
    {NULL}};

static struct PyModuleDef running_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "uringloop._running_c",
    .m_doc = "The compiled twin of uringloop/_running.py: the running loop's lookup.",
    .m_size = -1,
    .m_methods = functions,
};

PyMODINIT_FUNC
PyInit__running_c(void)
{
    if (!ready) { /* (each step kept once made: an import tried again goes on from there) */
        if (s_get_running_loop == NULL && intern(&s_get_running_loop, "get_running_loop") < 0)
            return NULL;
        if (asyncio_module == NULL && (asyncio_module = PyImport_ImportModule("asyncio")) == NULL)
            return NULL;
        if (asyncio_own == NULL && (asyncio_own = PyObject_GetAttr(asyncio_module, s_get_running_loop)) == NULL)
            return NULL;
#if PY_VERSION_HEX < 0x030C0000
        if (s_holder_key == NULL && intern(&s_holder_key, "__asyncio_running_event_loop__") < 0)
            return NULL;
        int err = pthread_atfork(NULL, NULL, forget_pid);
        if (err != 0) {
            errno = err;
            return PyErr_SetFromErrno(PyExc_OSError);
        }
#endif
        ready = 1;
    }
    return with_source_digest(PyModule_Create(&running_module));
}
