/*
 * The asyncio.Handle of a callback the loop makes ready, outside debug mode, compiled.
 *
 * The twin of uringloop/_handle.py, which is the readable reference: ready_handle()
 * returns the Handle that `Handle(callback, args, loop, context)` returns when the loop is
 * not in debug mode: the same type, the same seven fields with the same values. It fills
 * the fields in place instead of running Handle.__init__ (a Python frame, seven attribute
 * stores and a call to loop.get_debug()): the cost of every task wake-up.
 *
 * Invariant: the module imports only if asyncio's Handle has exactly the slots this file
 * fills (checked at import, by name and kind); any other Handle makes the import fail, and
 * the pure-Python twin is used.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

enum { CONTEXT, LOOP, CALLBACK, ARGS, CANCELLED, REPR, SOURCE_TRACEBACK, N_FIELDS };
static const char *const field_names[N_FIELDS] = {
    "_context", "_loop", "_callback", "_args", "_cancelled", "_repr", "_source_traceback"};
/* The slots Handle declares: the fields above and __weakref__. */
#define N_SLOTS (N_FIELDS + 1)

static PyTypeObject *handle_type;       /* asyncio.events.Handle */
static Py_ssize_t field_offset[N_FIELDS]; /* where each slot lives in a Handle */

static PyObject *
ready_handle(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "ready_handle() takes 4 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *context = args[3];
    if (context == Py_None) { /* as Handle: the current context, copied */
        context = PyContext_CopyCurrent();
        if (context == NULL)
            return NULL;
    }
    else {
        Py_INCREF(context);
    }
    PyObject *handle = handle_type->tp_alloc(handle_type, 0);
    if (handle == NULL) {
        Py_DECREF(context);
        return NULL;
    }
    PyObject *values[N_FIELDS] = {
        [CONTEXT] = context,                /* the reference taken above */
        [LOOP] = Py_NewRef(args[2]),
        [CALLBACK] = Py_NewRef(args[0]),
        [ARGS] = Py_NewRef(args[1]),
        [CANCELLED] = Py_NewRef(Py_False),
        [REPR] = Py_NewRef(Py_None),
        [SOURCE_TRACEBACK] = Py_NewRef(Py_None),
    };
    for (int i = 0; i < N_FIELDS; i++) /* fresh object: every slot is NULL */
        *(PyObject **)((char *)handle + field_offset[i]) = values[i];
    return handle;
}

static PyMethodDef functions[] = {
    {"ready_handle", (PyCFunction)(void (*)(void))ready_handle, METH_FASTCALL,
     "ready_handle(callback, args, loop, context) -> Handle, as Handle() makes it outside "
     "debug mode."},
    {NULL}};

static struct PyModuleDef handle_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "uringloop._handle_c",
    .m_doc = "The compiled twin of uringloop/_handle.py.",
    .m_size = -1,
    .m_methods = functions,
};

/* Find each field's slot offset; ImportError unless Handle's slots are exactly ours. */
static int
find_fields(void)
{
    PyObject *slots = PyObject_GetAttrString((PyObject *)handle_type, "__slots__");
    if (slots == NULL)
        return -1;
    Py_ssize_t n = PySequence_Size(slots);
    Py_DECREF(slots);
    if (n != N_SLOTS) {
        if (n >= 0)
            PyErr_Format(PyExc_ImportError, "asyncio.Handle has %zd slots, not %d", n, N_SLOTS);
        return -1;
    }
    for (int i = 0; i < N_FIELDS; i++) {
        PyObject *descr = PyDict_GetItemString(handle_type->tp_dict, field_names[i]);
        if (descr == NULL || !PyObject_TypeCheck(descr, &PyMemberDescr_Type)) {
            PyErr_Format(PyExc_ImportError, "asyncio.Handle's %s is not a slot", field_names[i]);
            return -1;
        }
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type != T_OBJECT_EX || (member->flags & READONLY)) {
            PyErr_Format(PyExc_ImportError, "asyncio.Handle's %s is not a plain slot",
                         field_names[i]);
            return -1;
        }
        field_offset[i] = member->offset;
    }
    return 0;
}

PyMODINIT_FUNC
PyInit__handle_c(void)
{
    PyObject *events = PyImport_ImportModule("asyncio.events");
    if (events == NULL)
        return NULL;
    PyObject *handle = PyObject_GetAttrString(events, "Handle");
    Py_DECREF(events);
    if (handle == NULL)
        return NULL;
    if (!PyType_Check(handle)) {
        Py_DECREF(handle);
        PyErr_SetString(PyExc_ImportError, "asyncio.Handle is not a class");
        return NULL;
    }
    handle_type = (PyTypeObject *)handle; /* kept for the module's life */
    if (find_fields() < 0) {
        if (!PyErr_ExceptionMatches(PyExc_ImportError)) { /* say it as an ImportError */
            PyObject *type, *exc, *tb;
            PyErr_Fetch(&type, &exc, &tb);
            PyErr_NormalizeException(&type, &exc, &tb);
            PyErr_Format(PyExc_ImportError, "asyncio.Handle is not what this module fills: %S", exc);
            Py_XDECREF(type);
            Py_XDECREF(exc);
            Py_XDECREF(tb);
        }
        return NULL;
    }
    return PyModule_Create(&handle_module);
}
