/*
 * What the compiled coroutines share (_loop_c.c's PreadCall, _files_c.c's FileCall): the
 * steps of the iterator protocol, and the exception throw() raises, as a generator makes
 * them.
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
    PyObject *type, *exc, *tb;
    PyErr_Fetch(&type, &exc, &tb);
    PyErr_NormalizeException(&type, &exc, &tb);
    PyObject *value = NULL;
    if (exc != NULL && PyObject_TypeCheck(exc, (PyTypeObject *)PyExc_StopIteration))
        value = Py_XNewRef(((PyStopIterationObject *)exc)->value);
    if (value == NULL)
        value = Py_NewRef(Py_None);
    Py_XDECREF(type);
    Py_XDECREF(exc);
    Py_XDECREF(tb);
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
    PyObject *type, *cause, *tb;
    PyErr_Fetch(&type, &cause, &tb);
    PyErr_NormalizeException(&type, &cause, &tb);
    if (tb != NULL && cause != NULL)
        PyException_SetTraceback(cause, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
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

#endif
