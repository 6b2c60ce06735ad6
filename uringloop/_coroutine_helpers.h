/*
 * What the compiled coroutines share (_loop_c.c's PreadCall, _files_c.c's FileCall): the
 * coroutine protocol (send, throw, close, __await__, cr_running, cr_await, the "never
 * awaited" warning) around the steps each file makes itself, the exception throw()
 * raises, as a generator makes them, and the call of a compiled method's reference.
 *
 * A file including this one begins its coroutine's struct with COROUTINE_HEAD and defines
 * the four functions declared below (coroutine_step, coroutine_finish, coroutine_thrown,
 * coroutine_never_awaited); it calls coroutine_names_ready() once, at module init.
 */
#ifndef URINGLOOP_COROUTINE_HELPERS_H
#define URINGLOOP_COROUTINE_HELPERS_H

#include "_twin_helpers.h"

/* The value of a StopIteration being raised (a new reference), the error cleared; NULL with
 * the error left where it is another one. */
static inline PyObject *
take_stop_value(void)
{
    if (!PyErr_ExceptionMatches(PyExc_StopIteration))
        return NULL;
    PyObject *exc = take_raised();
    PyObject *value = NULL;
    if (exc != NULL && PyObject_TypeCheck(exc, (PyTypeObject *)PyExc_StopIteration))
        value = Py_XNewRef(((PyStopIterationObject *)exc)->value);
    if (value == NULL)
        value = Py_NewRef(Py_None);
    Py_XDECREF(exc);
    return value;
}

/* A PySendResult as a step of the iterator protocol: the value yielded, or NULL with
 * StopIteration (carrying the value returned) or the error set. */
static inline PyObject *
as_step(PySendResult sent, PyObject *value)
{
    if (sent == PYGEN_NEXT)
        return value;
    if (sent == PYGEN_RETURN) {
        if (value == Py_None)
            PyErr_SetNone(PyExc_StopIteration);
        else {
            PyObject *stop = PyObject_CallOneArg(PyExc_StopIteration, value);
            if (stop != NULL) {
                PyErr_SetObject(PyExc_StopIteration, stop);
                Py_DECREF(stop);
            }
        }
        Py_DECREF(value);
    }
    return NULL;
}

/* Set the exception throw(typ[, val[, tb]]) raises, as a generator's throw() makes it: 0,
 * or -1 with a TypeError set for arguments that do not make one. */
static inline int
set_thrown(PyObject *typ, PyObject *val, PyObject *tb)
{
    if (tb == Py_None)
        tb = NULL;
    else if (tb != NULL && !PyTraceBack_Check(tb)) {
        PyErr_SetString(PyExc_TypeError, "throw() third argument must be a traceback object");
        return -1;
    }
    Py_INCREF(typ);
    Py_XINCREF(val);
    Py_XINCREF(tb);
    if (PyExceptionClass_Check(typ))
        PyErr_NormalizeException(&typ, &val, &tb);
    else if (PyExceptionInstance_Check(typ)) {
        if (val != NULL && val != Py_None) {
            PyErr_SetString(PyExc_TypeError, "instance exception may not have a separate value");
            goto failed;
        }
        Py_XDECREF(val);
        val = typ;
        typ = Py_NewRef(PyExceptionInstance_Class(typ));
        if (tb == NULL)
            tb = PyException_GetTraceback(val);
    }
    else {
        PyErr_Format(PyExc_TypeError, "exceptions must be classes or instances deriving from BaseException, not %s",
                     Py_TYPE(typ)->tp_name);
        goto failed;
    }
    PyErr_Restore(typ, val, tb);
    return 0;
failed:
    Py_DECREF(typ);
    Py_XDECREF(val);
    Py_XDECREF(tb);
    return -1;
}

/* A StopIteration being raised by the code a coroutine's step called, replaced by the
 * RuntimeError a native coroutine raises instead (PEP 479), the StopIteration its cause:
 * returned as it is, it would end the awaiting frame's `await` with its value. Any other
 * error is left as it is. */
static inline void
stop_iteration_as_runtime_error(void)
{
    if (!PyErr_ExceptionMatches(PyExc_StopIteration))
        return;
    PyObject *cause = take_raised();
    PyObject *error = PyObject_CallFunction(PyExc_RuntimeError, "s", "coroutine raised StopIteration");
    if (error == NULL) {
        Py_XDECREF(cause);
        return;
    }
    if (cause != NULL) {
        PyException_SetCause(error, Py_NewRef(cause));
        PyException_SetContext(error, cause); /* (steals it) */
    }
    PyErr_SetObject(PyExc_RuntimeError, error);
    Py_DECREF(error);
}

/* A method's reference called with the same arguments, `self` first (for every call the
 * compiled method does not bind itself): what it returns, or the TypeError its call
 * raises for arguments it does not take. */
static PyObject *
reference_call(PyObject *reference, PyObject *self, PyObject *const *args, Py_ssize_t nargs,
               PyObject *kwnames)
{
    Py_ssize_t total = nargs + (kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames));
    PyObject **stack = PyMem_Malloc((total + 1) * sizeof(PyObject *));
    if (stack == NULL)
        return PyErr_NoMemory();
    stack[0] = self;
    for (Py_ssize_t i = 0; i < total; i++)
        stack[i + 1] = args[i];
    PyObject *result = PyObject_Vectorcall(reference, stack, nargs + 1, kwnames);
    PyMem_Free(stack);
    return result;
}

/* The states every compiled coroutine has; a file's own states are numbered from
 * COROUTINE_OWN. */
enum { COROUTINE_NEW, COROUTINE_DELEGATING, COROUTINE_DONE, COROUTINE_OWN };

/* What every compiled coroutine's struct begins with (as its first member, `co`, so that a
 * pointer to the one is a pointer to the other, as PyObject_HEAD's ob_base is).
 * Invariant: `inner` is set in COROUTINE_DELEGATING (and only there), and every step is
 * passed to it; `running` is 1 while a step or a call it passes on is under way. */
typedef struct {
    PyObject_HEAD
    int state;       /* COROUTINE_NEW, _DELEGATING, _DONE, or the file's own */
    int running;     /* a step is under way (a reentrant one is refused) */
    PyObject *inner; /* COROUTINE_DELEGATING: the coroutine every step is passed to */
} Coroutine;

#define COROUTINE_HEAD Coroutine co;

/* Defined by the including file. */
/* A step in COROUTINE_NEW or a state of the file's own: the value yielded or returned in
 * *result, or PYGEN_ERROR with an error set. Unless it yields, it has called
 * coroutine_delegate() or coroutine_finish() (but for a first send of a value other than
 * None, refused with a TypeError: the coroutine stays NEW, as a native one does). */
static PySendResult coroutine_step(Coroutine *self, PyObject *arg, PyObject **result);
/* Enter COROUTINE_DONE, dropping what the steps held (`inner` too). */
static void coroutine_finish(Coroutine *self);
/* throw() in a state of the file's own, its exception set (a TypeError where throw()'s
 * arguments make none: raised there, as a coroutine raises it at its point): what the
 * coroutine does there before it is raised (the exception may be replaced). */
static void coroutine_thrown(Coroutine *self);
/* The RuntimeWarning's text where the coroutine is dropped before its first step. */
static const char *coroutine_never_awaited(Coroutine *self);

static PyObject *coroutine_s_throw, *coroutine_s_close;

/* The names the protocol calls, interned: 0, or -1 with an error set. */
static int
coroutine_names_ready(void)
{
    if (intern(&coroutine_s_throw, "throw") < 0 || intern(&coroutine_s_close, "close") < 0)
        return -1;
    return 0;
}

/* A step of `inner` (held by the caller across it) has given `value`: the coroutine's. */
static PySendResult
coroutine_delegated(Coroutine *self, PySendResult sent, PyObject *value, PyObject **result)
{
    if (sent != PYGEN_NEXT)
        coroutine_finish(self);
    *result = value;
    return sent;
}

/* From COROUTINE_NEW: every step is passed to `inner` (a new reference, taken) from now
 * on, this first one too. */
static PySendResult
coroutine_delegate(Coroutine *self, PyObject *inner, PyObject **result)
{
    self->inner = inner;
    self->state = COROUTINE_DELEGATING;
    Py_INCREF(inner);
    PyObject *value = NULL;
    PySendResult sent = PyIter_Send(inner, Py_None, &value);
    Py_DECREF(inner);
    return coroutine_delegated(self, sent, value, result);
}

/* 0, or -1 with ValueError set where a step is under way already. */
static int
coroutine_not_running(Coroutine *self)
{
    if (!self->running)
        return 0;
    PyErr_SetString(PyExc_ValueError, "coroutine already executing");
    return -1;
}

/* am_send. */
static PySendResult
coroutine_send(Coroutine *self, PyObject *arg, PyObject **result)
{
    *result = NULL;
    if (coroutine_not_running(self) < 0)
        return PYGEN_ERROR;
    self->running = 1;
    PySendResult sent;
    if (self->state == COROUTINE_DELEGATING) {
        PyObject *inner = Py_NewRef(self->inner);
        PyObject *value = NULL;
        sent = PyIter_Send(inner, arg, &value);
        Py_DECREF(inner);
        sent = coroutine_delegated(self, sent, value, result);
    }
    else if (self->state == COROUTINE_DONE) {
        PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited coroutine");
        sent = PYGEN_ERROR;
    }
    else
        sent = coroutine_step(self, arg, result);
    self->running = 0;
    return sent;
}

static PyObject *
coroutine_iternext(Coroutine *self)
{
    PyObject *value;
    PySendResult sent = coroutine_send(self, Py_None, &value);
    return as_step(sent, value);
}

static PyObject *
coroutine_send_method(Coroutine *self, PyObject *arg)
{
    PyObject *value;
    PySendResult sent = coroutine_send(self, arg, &value);
    return as_step(sent, value);
}

static PyObject *
coroutine_throw(Coroutine *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 3) { /* (as a generator's throw() words it) */
        PyErr_Format(PyExc_TypeError, nargs < 1 ? "throw expected at least 1 argument, got %zd"
                                                : "throw expected at most 3 arguments, got %zd",
                     nargs);
        return NULL;
    }
    if (coroutine_not_running(self) < 0)
        return NULL;
#if PY_VERSION_HEX >= 0x030C0000
    if (nargs > 1 && PyErr_WarnEx(PyExc_DeprecationWarning,
                                  "the (type, exc, tb) signature of throw() is deprecated, "
                                  "use the single-arg signature instead.",
                                  1) < 0)
        return NULL; /* (as a coroutine's throw() warns from 3.12 on) */
#endif
    if (self->state == COROUTINE_DELEGATING) {
        PyObject *inner = Py_NewRef(self->inner);
        PyObject *stack[4] = {inner, args[0], nargs > 1 ? args[1] : NULL, nargs > 2 ? args[2] : NULL};
        self->running = 1;
        PyObject *value = PyObject_VectorcallMethod(coroutine_s_throw, stack, (nargs + 1) | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                                    NULL);
        self->running = 0;
        Py_DECREF(inner);
        if (value != NULL)
            return value;
        PyObject *stop = take_stop_value();
        coroutine_finish(self);
        return stop != NULL ? as_step(PYGEN_RETURN, stop) : NULL;
    }
    /* The exception raised at the coroutine's point: its start (NEW: nothing was done), a
     * state of the file's own (coroutine_thrown), or none (DONE). */
    int thrown = set_thrown(args[0], nargs > 1 ? args[1] : NULL, nargs > 2 ? args[2] : NULL);
    if (self->state == COROUTINE_NEW && thrown < 0)
        return NULL; /* (not started, as a coroutine whose throw() refused its arguments) */
#if PY_VERSION_HEX < 0x030C0000
    if (self->state == COROUTINE_NEW && thrown == 0)
        stop_iteration_as_runtime_error(); /* raised in its frame: PEP 479 */
#endif
    /* (From 3.12 on a coroutine not started raises it unchanged: its frame is not entered.) */
    if (self->state == COROUTINE_DONE) {
        if (thrown == 0) {
            PyErr_Clear();
            PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited coroutine");
        }
        return NULL;
    }
    if (self->state >= COROUTINE_OWN) {
        self->running = 1;
        coroutine_thrown(self);
        self->running = 0;
    }
    coroutine_finish(self);
    return NULL;
}

static PyObject *
coroutine_close(Coroutine *self, PyObject *Py_UNUSED(ignored))
{
    if (coroutine_not_running(self) < 0)
        return NULL;
    if (self->state >= COROUTINE_OWN) {
        /* GeneratorExit raised at the coroutine's point, as a generator's close() does: a
         * state of the file's own meets it (coroutine_thrown); what that raises instead
         * is close()'s error. */
        PyErr_SetNone(PyExc_GeneratorExit);
        self->running = 1;
        coroutine_thrown(self);
        self->running = 0;
        coroutine_finish(self);
        if (!PyErr_ExceptionMatches(PyExc_GeneratorExit))
            return NULL;
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    if (self->state == COROUTINE_DELEGATING) {
        PyObject *inner = Py_NewRef(self->inner);
        coroutine_finish(self);
        self->running = 1;
        PyObject *stack[1] = {inner};
        PyObject *value = PyObject_VectorcallMethod(coroutine_s_close, stack, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        self->running = 0;
        Py_DECREF(inner);
        return value;
    }
    coroutine_finish(self);
    Py_RETURN_NONE;
}

static PyObject *
coroutine_await(Coroutine *self)
{
    return Py_NewRef(self);
}

static PyObject *
coroutine_running(Coroutine *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->running);
}

/* cr_await where the coroutine is not waiting in a state of the file's own. */
static PyObject *
coroutine_awaiting(Coroutine *self, void *Py_UNUSED(closure))
{
    if (self->state == COROUTINE_DELEGATING) {
        PyObject *inner = Py_NewRef(self->inner);
        PyObject *value = PyObject_GetAttrString(inner, "cr_await");
        Py_DECREF(inner);
        if (value != NULL || !PyErr_ExceptionMatches(PyExc_AttributeError))
            return value;
        PyErr_Clear();
    }
    Py_RETURN_NONE;
}

/* tp_finalize: a coroutine never started warns; one left waiting in a state of its own is
 * closed, as a generator collected at a suspension point is (its error unraisable). */
static void
coroutine_finalize(Coroutine *self)
{
    if (self->state != COROUTINE_NEW && self->state < COROUTINE_OWN)
        return;
    PyObject *type, *exc, *tb;
    PyErr_Fetch(&type, &exc, &tb);
    if (self->state == COROUTINE_NEW) {
        if (PyErr_WarnEx(PyExc_RuntimeWarning, coroutine_never_awaited(self), 1) < 0)
            PyErr_WriteUnraisable((PyObject *)self);
    }
    else {
        PyObject *closed = coroutine_close(self, NULL);
        if (closed == NULL)
            PyErr_WriteUnraisable((PyObject *)self);
        Py_XDECREF(closed);
    }
    PyErr_Restore(type, exc, tb);
}

/* tp_dealloc: the type's tp_clear drops what it holds. */
static void
coroutine_dealloc(Coroutine *self)
{
    /* tracked while the finalizer runs, as a generator is: one it resurrects stays so */
    if (PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0)
        return; /* resurrected */
    PyObject_GC_UnTrack(self);
    Py_TYPE(self)->tp_clear((PyObject *)self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef coroutine_methods[] = {
    {"send", (PyCFunction)coroutine_send_method, METH_O, "send(value): the coroutine's next step."},
    {"throw", (PyCFunction)(void (*)(void))coroutine_throw, METH_FASTCALL,
     "throw(exc): raise exc at the coroutine's point."},
    {"close", (PyCFunction)coroutine_close, METH_NOARGS, "close(): end the coroutine."},
    {NULL}};

static PyAsyncMethods coroutine_async = {
    .am_await = (unaryfunc)coroutine_await,
    .am_send = (sendfunc)coroutine_send,
};

#define COROUTINE_FLAGS (Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC)

#endif
