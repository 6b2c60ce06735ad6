/*
 * What the compiled twins share (included by every one): interned
 * names, imports at module init, and the type version that tells whether a class changed.
 */
#ifndef URINGLOOP_TWIN_HELPERS_H
#define URINGLOOP_TWIN_HELPERS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* *slot = the interned `name`: 0, or -1 with an error set. */
static inline int
intern(PyObject **slot, const char *name)
{
    *slot = PyUnicode_InternFromString(name);
    return *slot == NULL ? -1 : 0;
}

/* *into = module_name's attribute `name` (a new reference): 0, or -1 with an error set. */
static inline int
import_from(const char *module_name, const char *name, PyObject **into)
{
    PyObject *module = PyImport_ImportModule(module_name);
    if (module == NULL)
        return -1;
    *into = PyObject_GetAttrString(module, name);
    Py_DECREF(module);
    return *into == NULL ? -1 : 0;
}

/* The exception being raised, taken (the error indicator cleared): normalized, with its
 * traceback attached, as a new reference; NULL where none is being raised. (Python 3.12's
 * PyErr_GetRaisedException, on every version.) */
static inline PyObject *
take_raised(void)
{
    PyObject *type, *exc, *tb;
    PyErr_Fetch(&type, &exc, &tb);
    if (type == NULL)
        return NULL;
    PyErr_NormalizeException(&type, &exc, &tb);
    if (tb != NULL && exc != NULL)
        PyException_SetTraceback(exc, tb);
    Py_DECREF(type);
    Py_XDECREF(tb);
    return exc;
}

/* `exc` (a new reference, taken; NULL: none) raised again with its traceback: take_raised()
 * undone (Python 3.12's PyErr_SetRaisedException, on every version). */
static inline void
restore_raised(PyObject *exc)
{
    if (exc != NULL)
        PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
}

/* What was the exception being handled (sys.exc_info()) before begin_handling(). */
typedef struct {
    PyObject *type, *value, *traceback;
} OuterHandled;

/* The exception being raised, taken (a new reference) and made the one being handled, as
 * on entering an `except` block: sys.exc_info() gives it, and anything raised until
 * end_handling(outer) takes it as its __context__. */
static inline PyObject *
begin_handling(OuterHandled *outer)
{
    PyObject *exc = take_raised();
    PyErr_GetExcInfo(&outer->type, &outer->value, &outer->traceback);
    PyErr_SetExcInfo(exc == NULL ? NULL : Py_NewRef((PyObject *)Py_TYPE(exc)), Py_XNewRef(exc),
                     exc == NULL ? NULL : PyException_GetTraceback(exc));
    return exc;
}

/* Leaving that `except` block: the exception handled before is again. */
static inline void
end_handling(OuterHandled *outer)
{
    PyErr_SetExcInfo(outer->type, outer->value, outer->traceback); /* (steals them) */
}

/* Whether `tp` has a valid type version tag (the version changes whenever the class or a
 * base is modified), assigning one where the interpreter lets us ask (3.12+). CPython
 * 3.13 marks a valid tag by a non-zero tp_version_tag, earlier ones by a flag too. */
static inline int
version_valid(PyTypeObject *tp)
{
#if PY_VERSION_HEX >= 0x030C0000
    if (tp->tp_version_tag == 0)
        PyUnstable_Type_AssignVersionTag(tp);
#endif
#if PY_VERSION_HEX >= 0x030D0000
    return tp->tp_version_tag != 0;
#else
    return (tp->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG) != 0 && tp->tp_version_tag != 0;
#endif
}

/* The digest of the module's sources, compiled in by setup.py; _twins.py compares it with
 * the sources beside the module at import. "" where the module was built otherwise. */
#ifndef URINGLOOP_SOURCE_DIGEST
#define URINGLOOP_SOURCE_DIGEST ""
#endif

/* `m` with its SOURCE_DIGEST set: `m`, or NULL (m released) with an error set. */
static inline PyObject *
with_source_digest(PyObject *m)
{
    if (m != NULL && PyModule_AddStringConstant(m, "SOURCE_DIGEST", URINGLOOP_SOURCE_DIGEST) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

/* names[name] (a module's globals), a new reference: NULL with an error set, a NameError
 * where it is not there, as the reference's lookup of a global. */
static inline PyObject *
global_in(PyObject *names, PyObject *name)
{
    PyObject *value = PyDict_GetItemWithError(names, name);
    if (value == NULL && !PyErr_Occurred())
        PyErr_Format(PyExc_NameError, "name '%U' is not defined", name);
    return Py_XNewRef(value);
}

/* The truth of `value`, a new reference it releases: 1, 0, or -1 with an error set (also
 * where `value` is NULL, the call that made it having failed). */
static inline int
truth_of(PyObject *value)
{
    if (value == NULL)
        return -1;
    int truth = PyObject_IsTrue(value);
    Py_DECREF(value);
    return truth;
}

/* 1 where `value` is an exact int in [low, high), its value in *n; else 0 (no error set). */
static inline int
int_in(PyObject *value, long long low, long long high, long long *n)
{
    if (!PyLong_CheckExact(value))
        return 0;
    int overflow;
    *n = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow || (*n == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    return low <= *n && *n < high;
}

#endif
