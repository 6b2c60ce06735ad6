/*
 * The asyncio.Handle of a callback the loop makes ready, outside debug mode, compiled.
 *
 * The twin of uringloop/_handle.py, which is the readable reference: ready_handle()
 * returns the Handle that `Handle(callback, args, loop, context)` returns when the loop is
 * not in debug mode: the same type, the same seven fields with the same values. It fills
 * the fields in place instead of running Handle.__init__ (a Python frame, seven attribute
 * stores and a call to loop.get_debug()): the cost of every task wake-up.
 *
 * Invariant: the module imports only if asyncio's Handle is asyncio.events' own class,
 * based on object, with exactly the slots this file fills (checked at import, by name and
 * kind); any other Handle makes the import fail, and the pure-Python twin is used. Should
 * Handle.__init__ be replaced later, ready_handle() calls the class, as the twin does.
 */
#include "_twin_helpers.h"
#include <structmember.h>

enum { CONTEXT, LOOP, CALLBACK, ARGS, CANCELLED, REPR, SOURCE_TRACEBACK, N_FIELDS };
static const char *const field_names[N_FIELDS] = {
    "_context", "_loop", "_callback", "_args", "_cancelled", "_repr", "_source_traceback"};
/* The slots Handle declares: the fields above and __weakref__. */
#define N_SLOTS (N_FIELDS + 1)

static PyTypeObject *handle_type;       /* asyncio.events.Handle */
static Py_ssize_t field_offset[N_FIELDS]; /* where each slot lives in a Handle */
static PyObject *handle_init;           /* Handle.__init__ as imported */
static unsigned int handle_tag;         /* Handle's type version while it is unchanged */
static PyObject *s_init;

/* 1 when Handle still has the __init__ this module stands in for (checked again each
 * time the class changes: a patched __init__ is then called instead), 0, -1 on error. */
static int
handle_unchanged(void)
{
    if (handle_tag != 0 && version_valid(handle_type) && handle_type->tp_version_tag == handle_tag)
        return 1;
    PyObject *init = PyObject_GetAttr((PyObject *)handle_type, s_init);
    if (init == NULL)
        return -1;
    int same = init == handle_init;
    Py_DECREF(init);
    if (same && version_valid(handle_type))
        handle_tag = handle_type->tp_version_tag;
    return same;
}

static PyObject *
ready_handle(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "ready_handle() takes 4 arguments (%zd given)", nargs);
        return NULL;
    }
    int unchanged = handle_unchanged();
    if (unchanged <= 0) /* as the twin does it: through the class */
        return unchanged < 0 ? NULL : PyObject_Vectorcall((PyObject *)handle_type, args, 4, NULL);
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

/* Find each field's slot offset; ImportError unless Handle is asyncio's own class, based
 * on object, with exactly the slots this module fills. */
static int
find_fields(void)
{
    PyObject *module_name = PyObject_GetAttrString((PyObject *)handle_type, "__module__");
    if (module_name == NULL)
        return -1;
    int ours = PyUnicode_Check(module_name) && PyUnicode_CompareWithASCIIString(module_name, "asyncio.events") == 0;
    Py_DECREF(module_name);
    if (!ours || handle_type->tp_base != &PyBaseObject_Type ||
        PyDict_GetItemString(handle_type->tp_dict, "__init__") == NULL) {
        PyErr_SetString(PyExc_ImportError, "asyncio.Handle is not asyncio.events' own class");
        return -1;
    }
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
    handle_init = PyObject_GetAttr((PyObject *)handle_type, s_init);
    if (handle_init == NULL)
        return -1;
    /* 0 (no valid version): handle_unchanged() looks at __init__ on each call instead */
    handle_tag = version_valid(handle_type) ? handle_type->tp_version_tag : 0;
    return 0;
}

PyMODINIT_FUNC
PyInit__handle_c(void)
{
    PyObject *handle;
    if (import_from("asyncio.events", "Handle", &handle) < 0)
        return NULL;
    if (!PyType_Check(handle)) {
        Py_DECREF(handle);
        PyErr_SetString(PyExc_ImportError, "asyncio.Handle is not a class");
        return NULL;
    }
    handle_type = (PyTypeObject *)handle; /* kept for the module's life */
    if (intern(&s_init, "__init__") < 0 || find_fields() < 0) {
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
    return with_source_digest(PyModule_Create(&handle_module));
}
