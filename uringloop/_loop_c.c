/*
 * The coroutines of Loop's operations, compiled: Loop.pread's, and every declared
 * operation's without an inline attempt (preadinto, pwrite, fsync, statx, ...).
 *
 * PreadCall is the twin of Loop._pread (uringloop/_loop.py), which is the readable reference:
 * pread_call(loop, fd, size, offset, known_seekable, cached_copy, unclaimed, direct) returns
 * a coroutine (registered as a collections.abc.Coroutine, so create_task(), gather() and
 * iscoroutine() take it) that behaves as `loop._pread(...)`'s. Nothing happens before its
 * first step, as with a coroutine: the arguments are looked at then.
 *
 * Its first step makes the common case itself: a read of 1..POOLED_MAX bytes at an offset,
 * of a descriptor vouched for, already looked at this loop iteration, or whose position the
 * step looks at itself (check_position's preadv of no buffers), on a usable loop: the copy of
 * what the page cache holds first where the reference would try it (read_cached, within the inline
 * budget), then the rest on the ring; the same calls in the same order as the reference
 * (copies_cached, inline_turn, read_cached, the Read, its Future, Loop._run_lone or the
 * driver's queue_read and, where it would act, Loop._submit_early), without the reference's
 * frame and bytecode. Every other case (an argument to check or refuse, a read at the file
 * position, a descriptor whose check fails, a closed or forked loop) is the reference's own
 * coroutine, which this one creates then and passes every step to, as `await` would: it is
 * decided before anything is done.
 *
 * OperationCall is the twin of the coroutine method _loop._coroutine() writes for a
 * declaration: a closed (or forked) loop refused before anything is built, but for an
 * operation that must run (a close), then `await self._run(build(*args, **kwargs))`. An
 * OperationMethod(build, name, qualname, must_run) is that method compiled: called with the
 * loop and the public arguments, it returns an OperationCall, which makes that check and
 * builds the operation at its first step (an argument refused is raised there, as from the
 * reference's first step) and then makes Loop._run's
 * common case itself: an operation to queue (not answered when it was built), on a usable
 * loop, whose result nobody needs to undo (its declaration has no `discard`). Its Future,
 * Loop._run_lone or the driver's queue and, where it would act, Loop._submit_early, and
 * the await are the reference's, in the same order. Every other case is the coroutine of
 * Loop._run(op), which it passes every step to from then on.
 *
 * Invariant: in WAITING, `op` and `future` are the operation and its waiter, and `iter`
 * the future's __await__ iterator, every step passed to it as `await future` does; a
 * CancelledError (thrown in, or the future's own) makes Loop._abandon(op, future) run
 * before it is raised, as the reference's `except` does, and so does close() there (a
 * GeneratorExit, as the reference's at its `await`), or the coroutine's collection.
 */
#include "_twin_helpers.h"
#include "_coroutine_helpers.h"
#include <limits.h>
#include <stddef.h>
#include <sys/uio.h>
#include <unistd.h>

enum { NEW = COROUTINE_NEW, DELEGATING = COROUTINE_DELEGATING, DONE = COROUTINE_DONE, WAITING = COROUTINE_OWN };
enum { A_FD, A_SIZE, A_OFFSET, A_KNOWN_SEEKABLE, A_CACHED_COPY, A_UNCLAIMED, A_DIRECT, N_ARGS };

/* The state of both coroutines (a PreadCall leaves the fields of an OperationCall NULL,
 * and the other way round). */
typedef struct {
    COROUTINE_HEAD          /* (its inner: the reference's coroutine) */
    PyObject *loop;
    PyObject *op;           /* WAITING */
    PyObject *future;       /* WAITING */
    PyObject *iter;         /* WAITING: the future's __await__ iterator */
    PyObject *head;         /* PreadCall: what a copy from the page cache read first, or NULL */
    PyObject *args[N_ARGS]; /* PreadCall: its arguments, until the first step */
    PyObject *method;       /* OperationCall: its OperationMethod */
    PyObject *values;       /* OperationCall: the public arguments' values (a tuple, the
                             * positional ones first), until the first step */
    PyObject *kwnames;      /* OperationCall: the keyword arguments' names, or NULL */
} LoopCall;

/* A declared operation's coroutine method, compiled (see the module's doc). */
typedef struct {
    PyObject_HEAD
    PyObject *build;         /* the declaration's Spec.build */
    PyObject *name;          /* str: the method's __name__ */
    PyObject *qualname;      /* str: its __qualname__ */
    PyObject *never_awaited; /* bytes: the RuntimeWarning's text for a coroutine dropped */
    PyObject *dict;          /* its __dict__ (the reference's signature, doc, ...) */
    vectorcallfunc vectorcall;
    int must_run;            /* the declaration's: a closed loop makes it (a close) */
} OperationMethod;

static PyTypeObject PreadCall_Type, OperationCall_Type, OperationMethod_Type;

/* What the module imports once. */
static PyObject *namespace;        /* uringloop._loop's globals (use_namespace()): the Read,
                                    * _Future and copies_cached called are looked up there at
                                    * each read, as the reference's names are */
static PyObject *cancelled_error;  /* asyncio.CancelledError */
static PyObject *checked;          /* the dict of descriptors looked at this iteration */
static long long pooled_max;       /* the pool's largest slot */
static long long off_max;          /* the largest offset */
static PyObject *loop_kwnames;     /* ("loop",) */
static PyObject *no_nowait;        /* read_cached's answer where the file cannot say */
static long long page_size;
static PyObject *s_closed, *s_state, *s_forked, *s_inline, *s_pool, *s_ready, *s_eager_left,
    *s_driver, *s_queue_read, *s_slow_completions, *s_run_lone, *s_submit_early, *s_abandon,
    *s_pread, *s_waiter, *s_loop, *s_read, *s_future, *s_copies_cached,
    *s_inline_turn, *s_read_cached, *s_copies_refused, *s_nbytes, *s_queue, *s_run, *s_state_of_op, *s_spec, *s_check_usable,
    *s_discard, *s_backlog, *s_inflight, *s_uses_ring, *s_early_batch, *s_early_share;
static PyObject *done_state;       /* an operation's state once answered (state.DONE) */

/* namespace[name], a new reference: NULL with an error set where it is not there. */
static PyObject *
global(PyObject *name)
{
    return global_in(namespace, name);
}

/* `value` (a new reference, or NULL from a failed call) dropped: 0, or -1 with an error. */
static int
dropped(PyObject *value)
{
    Py_XDECREF(value);
    return value == NULL ? -1 : 0;
}

/* truth of getattr(obj, name): 1, 0, or -1 with an error set */
static int
attr_true(PyObject *obj, PyObject *name)
{
    return truth_of(PyObject_GetAttr(obj, name));
}

/* obj.name(*args), at most two: a new reference, or NULL with an error set */
static PyObject *
call_method(PyObject *obj, PyObject *name, PyObject *const *args, size_t nargs)
{
    PyObject *stack[3] = {obj, nargs > 0 ? args[0] : NULL, nargs > 1 ? args[1] : NULL};
    return PyObject_VectorcallMethod(name, stack, (nargs + 1) | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

/* The namespace's function `name` called with `args`: a new reference, or NULL. */
static PyObject *
call_global(PyObject *name, PyObject *const *args, size_t nargs)
{
    PyObject *fn = global(name);
    if (fn == NULL)
        return NULL;
    PyObject *result = PyObject_Vectorcall(fn, args, nargs, NULL);
    Py_DECREF(fn);
    return result;
}

/* *seen = checked.get(fd), borrowed (NULL: not there): 0, or -1 with an error set. */
static int
checked_get(PyObject *fd, PyObject **seen)
{
    *seen = PyDict_GetItemWithError(checked, fd);
    return *seen == NULL && PyErr_Occurred() ? -1 : 0;
}

/* len(obj.name): >= 0, or -1 with an error set */
static Py_ssize_t
attr_length(PyObject *obj, PyObject *name)
{
    PyObject *value = PyObject_GetAttr(obj, name);
    if (value == NULL)
        return -1;
    Py_ssize_t n = PyObject_Length(value);
    Py_DECREF(value);
    return n;
}

/* An exact int's value, or 0 with *fits cleared where it does not fit a long long. */
static long long
small_int(PyObject *value, int *fits)
{
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow)
        *fits = 0;
    return v;
}

/* The copy of what the page cache holds, tried first (the reference's `head`): 2, the read
 * answered (*value set); 1, the copy stopped at a page's end (self->head set, the size and
 * offset arguments moved past it); 0, no copy (or it refused: copies_refused()); -1 error */
static int
copy_first(LoopCall *self, long long *size, long long *offset, PyObject **value)
{
    PyObject **a = self->args;
    PyObject *copy_args[3] = {a[A_FD], a[A_SIZE], a[A_OFFSET]};
    PyObject *copy = call_global(s_read_cached, copy_args, 3);
    if (copy == NULL)
        return -1;
    if (PyBytes_CheckExact(copy)) {
        long long copied = PyBytes_GET_SIZE(copy);
        if (copied == *size || copied == 0 || (*offset + copied) % page_size) {
            *value = copy;
            return 2;
        }
        PyObject *rest = PyLong_FromLongLong(*size - copied);
        PyObject *at = rest == NULL ? NULL : PyLong_FromLongLong(*offset + copied);
        if (at == NULL) {
            Py_XDECREF(rest);
            Py_DECREF(copy);
            return -1;
        }
        self->head = copy;
        Py_SETREF(a[A_SIZE], rest);
        Py_SETREF(a[A_OFFSET], at);
        *size -= copied;
        *offset += copied;
        return 1;
    }
    int refused = PyObject_RichCompareBool(copy, no_nowait, Py_EQ);
    Py_DECREF(copy);
    if (refused > 0)
        refused = dropped(call_global(s_copies_refused, &a[A_FD], 1));
    return refused < 0 ? -1 : 0;
}

/* op.nbytes where `nbytes` is NULL, else `nbytes`: a new reference, or NULL with an error. */
static PyObject *
nbytes_of(PyObject *op, PyObject *nbytes)
{
    return nbytes != NULL ? Py_NewRef(nbytes) : PyObject_GetAttr(op, s_nbytes);
}

/* loop._eager_left > 0: 1, 0, or -1 with an error set. */
static int
eager_turns_left(PyObject *loop)
{
    PyObject *left = PyObject_GetAttr(loop, s_eager_left);
    PyObject *zero = left == NULL ? NULL : PyLong_FromLong(0);
    int positive = zero == NULL ? -1 : PyObject_RichCompareBool(left, zero, Py_GT);
    Py_XDECREF(left);
    Py_XDECREF(zero);
    return positive;
}

/* The module global `name` of _loop into *out, when it is an int that fits: 1; 0 when it is
 * missing or anything else (no error set); -1 on another error. */
static int
global_ssize(PyObject *name, Py_ssize_t *out)
{
    PyObject *value = global(name);
    if (value == NULL) {
        PyErr_Clear();
        return 0;
    }
    int is_int = PyLong_Check(value);
    *out = is_int ? PyLong_AsSsize_t(value) : -1;
    Py_DECREF(value);
    if (*out == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return -1;
        PyErr_Clear();
        return 0;
    }
    return is_int;
}

/* Whether Loop._submit_early would do something now, right after an operation was queued
 * on `driver` with `waiting` callbacks ready: its own checks, in its order, so that it is
 * called only then (otherwise it returns False and does nothing). 1, 0, or -1 with an
 * error set. A pre-filter: where the rule's constants are not what it can compute with
 * (ints that fit, a positive share), 1, and _submit_early decides (and raises as the
 * reference does). */
static int
early_due(PyObject *loop, PyObject *driver, Py_ssize_t waiting)
{
    if (waiting > 0) {
        int slow = attr_true(driver, s_slow_completions);
        if (slow <= 0)
            return slow;
        /* len(backlog) >= max(EARLY_BATCH, len(inflight) // EARLY_SHARE) */
        Py_ssize_t queued = attr_length(driver, s_backlog), batch = 0, share = 0, inflight;
        if (queued < 0 || (inflight = attr_length(driver, s_inflight)) < 0)
            return -1;
        int usable = global_ssize(s_early_batch, &batch);
        if (usable > 0)
            usable = global_ssize(s_early_share, &share);
        if (usable <= 0 || share <= 0)
            return usable < 0 ? -1 : 1;
        return queued >= (inflight / share > batch ? inflight / share : batch);
    }
    int ring = attr_true(driver, s_uses_ring);
    if (ring <= 0)
        return ring;
    Py_ssize_t queued = attr_length(driver, s_backlog);
    if (queued != 1)
        return queued < 0 ? -1 : 0;
    int busy = attr_true(driver, s_inflight);
    if (busy != 0)
        return busy < 0 ? -1 : 0;
    return eager_turns_left(loop);
}

/* start_operation()'s rest, with `ready` (loop._ready) and its length `waiting`. */
static int
start_queued(LoopCall *self, PyObject *op, PyObject *nbytes, PyObject *queue, PyObject *ready,
             Py_ssize_t waiting)
{
    PyObject *loop = self->loop;
    int lone = 0;
    if (waiting == 0) {
        int positive = eager_turns_left(loop);
        if (positive < 0)
            return -1;
        if (positive) {
            PyObject *size = nbytes_of(op, nbytes);
            if (size == NULL)
                return -1;
            PyObject *run_args[2] = {op, size};
            lone = truth_of(call_method(loop, s_run_lone, run_args, 2));
            Py_DECREF(size);
            if (lone < 0)
                return -1;
        }
    }
    if (!lone) {
        PyObject *driver = PyObject_GetAttr(loop, s_driver);
        if (driver == NULL)
            return -1;
        if (dropped(call_method(driver, queue, &op, 1)) < 0) {
            Py_DECREF(driver);
            return -1;
        }
        waiting = PyObject_Length(ready);
        int early = waiting < 0 ? -1 : early_due(loop, driver, waiting);
        Py_DECREF(driver);
        if (early > 0) {
            PyObject *size = nbytes_of(op, nbytes);
            early = size == NULL ? -1 : truth_of(call_method(loop, s_submit_early, &size, 1));
            Py_XDECREF(size);
        }
        if (early < 0)
            return -1;
    }
    return 1;
}

/* What both references do with the operation they built, `op` (a new reference, taken):
 * its Future, made and set as its waiter; then, with no callback ready and eager turns left,
 * Loop._run_lone(op, nbytes), else the driver's method `queue` (queue_read or queue) and,
 * where it would do something, Loop._submit_early(nbytes). `nbytes`: the bytes it moves,
 * or NULL to ask op.nbytes each time they are needed, as Loop._run does. 1 (the future
 * maybe done), or -1 with an error set; self->op and self->future are set once both exist. */
static int
start_operation(LoopCall *self, PyObject *op, PyObject *nbytes, PyObject *queue)
{
    PyObject *loop = self->loop;
    PyObject *future_type = global(s_future);
    PyObject *future = future_type == NULL ? NULL : PyObject_Vectorcall(future_type, &loop, 0, loop_kwnames);
    Py_XDECREF(future_type);
    if (future == NULL || PyObject_SetAttr(op, s_waiter, future) < 0) {
        Py_DECREF(op);
        Py_XDECREF(future);
        return -1;
    }
    self->op = op;
    self->future = future;

    /* From here on the operation exists: an error leaves it to its own end, as the
     * reference's would, with self->op and self->future set (released with the coroutine).
     * loop._ready is looked up once (as Loop._pread does; asyncio never replaces the deque)
     * and its length asked before and after the operation is queued. */
    PyObject *ready = PyObject_GetAttr(loop, s_ready);
    Py_ssize_t waiting = ready == NULL ? -1 : PyObject_Length(ready);
    int made = waiting < 0 ? -1 : start_queued(self, op, nbytes, queue, ready, waiting);
    Py_XDECREF(ready);
    return made;
}

/* The first step's common case. 1: made, self->op and self->future set (the future maybe
 * done); 2: answered by the copy alone (*value set); 0: not this case, nothing done (the
 * reference does it all); -1: an error. */
static int
start_read(LoopCall *self, PyObject **value)
{
    PyObject **a = self->args;
    PyObject *loop = self->loop;
    PyObject *direct = a[A_DIRECT];
    if (!PyLong_CheckExact(a[A_FD]) || !PyLong_CheckExact(a[A_SIZE]) || !PyLong_CheckExact(a[A_OFFSET]))
        return 0;
    if ((a[A_KNOWN_SEEKABLE] != Py_True && a[A_KNOWN_SEEKABLE] != Py_False) ||
        (a[A_CACHED_COPY] != Py_True && a[A_CACHED_COPY] != Py_False) ||
        (direct != Py_None && direct != Py_True && direct != Py_False))
        return 0; /* (their truth would be asked twice) */
    int fits = 1;
    long long fd = small_int(a[A_FD], &fits);
    long long size = small_int(a[A_SIZE], &fits);
    long long offset = small_int(a[A_OFFSET], &fits);
    if (!fits || fd < 0 || fd > INT_MAX || size < 1 || size > pooled_max || offset < 0 || offset > off_max)
        return 0;
    PyObject *seen; /* NULL: not looked at (None) */
    if (checked_get(a[A_FD], &seen) < 0)
        return -1;
    if (seen == NULL && a[A_KNOWN_SEEKABLE] == Py_False) {
        /* check_position's preadv(2) of no buffers, once per descriptor per loop
         * iteration. Where it fails (ESPIPE, to be raised; EBADF and the like, for the
         * read to report) the reference makes the call, and looks again. */
        struct iovec none = {NULL, 0};
        if (preadv((int)fd, &none, 0, 0) < 0)
            return 0;
        if (PyDict_SetItem(checked, a[A_FD], Py_None) < 0)
            return -1;
        seen = Py_None;
    }
    PyObject *state = PyObject_GetAttr(loop, s_state);
    if (state == NULL)
        return -1;
    int unusable = attr_true(loop, s_closed);
    if (unusable == 0)
        unusable = attr_true(state, s_forked);
    int copies = unusable == 0 && a[A_CACHED_COPY] == Py_True ? attr_true(state, s_inline) : 0;
    Py_DECREF(state);
    if (unusable != 0) /* closed or forked: the reference raises */
        return unusable < 0 ? -1 : 0;
    if (copies > 0) { /* as the reference's: allowed, and a turn of the inline budget */
        if (checked_get(a[A_FD], &seen) < 0)
            return -1;
        if (seen != Py_True) {
            PyObject *seen_or = seen == NULL ? Py_None : seen;
            copies = PyObject_IsTrue(seen_or);
            if (copies == 0)
                copies = truth_of(call_global(s_copies_cached, &a[A_FD], 1));
        }
        if (copies > 0)
            copies = truth_of(call_method(loop, s_inline_turn, &a[A_SIZE], 1));
        if (copies > 0)
            copies = copy_first(self, &size, &offset, value);
        if (copies == 2)
            return 2;
        if (copies < 0)
            return -1;
        if (checked_get(a[A_FD], &seen) < 0) /* (as it is now) */
            return -1;
    }
    if (copies < 0)
        return -1;

    int into_result;
    if (direct == Py_False)
        into_result = seen != Py_False;
    else if (direct == Py_None) {
        into_result = seen == Py_True ? 1 : truth_of(call_global(s_copies_cached, &a[A_FD], 1));
        if (into_result < 0)
            return -1;
    }
    else
        into_result = 0;

    PyObject *read_type = global(s_read);
    if (read_type == NULL)
        return -1;
    PyObject *pool = PyObject_GetAttr(loop, s_pool);
    if (pool == NULL) {
        Py_DECREF(read_type);
        return -1;
    }
    PyObject *read_args[5] = {a[A_FD], a[A_SIZE], a[A_OFFSET], pool, into_result ? Py_True : Py_False};
    PyObject *op = PyObject_Vectorcall(read_type, read_args, 5, NULL);
    Py_DECREF(pool);
    Py_DECREF(read_type);
    if (op == NULL)
        return -1;
    return start_operation(self, op, a[A_SIZE], s_queue_read);
}

/* Enter DONE, dropping what the steps held. */
static void
finish(LoopCall *self)
{
    self->co.state = DONE;
    for (int i = 0; i < N_ARGS; i++)
        Py_CLEAR(self->args[i]);
    Py_CLEAR(self->op);
    Py_CLEAR(self->future);
    Py_CLEAR(self->iter);
    Py_CLEAR(self->co.inner);
    Py_CLEAR(self->head);
    Py_CLEAR(self->values);
    Py_CLEAR(self->kwnames);
}

/* The CancelledError (or GeneratorExit: closed) being raised meets the `except` of the
 * reference: _abandon(op, future) runs with it as the exception being handled (what an
 * exception _abandon raises takes as its __context__, as in the `except` block), then it
 * is raised again. */
static void
abandon_on_cancel(LoopCall *self)
{
    if (!PyErr_ExceptionMatches(cancelled_error) && !PyErr_ExceptionMatches(PyExc_GeneratorExit))
        return;
    OuterHandled outer;
    PyObject *exc = begin_handling(&outer);
    PyObject *abandon_args[2] = {self->op, self->future};
    int failed = dropped(call_method(self->loop, s_abandon, abandon_args, 2)) < 0;
    end_handling(&outer);
    if (failed) /* its exception replaces the CancelledError */
        Py_XDECREF(exc);
    else
        restore_raised(exc);
}

/* A step of the awaited future's own __await__ iterator, as the reference's `await
 * future` takes it: the future yielded (WAITING), or its outcome (head + data where a copy
 * read the head). `waited`: resumed from WAITING, where a CancelledError abandons the
 * read. */
static PySendResult
step_future(LoopCall *self, int waited, PyObject *arg, PyObject **result)
{
    PyObject *value = NULL;
    PySendResult sent = PyIter_Send(self->iter, arg, &value);
    if (sent == PYGEN_NEXT) {
        self->co.state = WAITING;
        *result = value;
        return PYGEN_NEXT;
    }
    if (sent == PYGEN_RETURN && self->head != NULL) /* head + data, as the reference returns */
        Py_SETREF(value, PyNumber_Add(self->head, value));
    if (value == NULL && waited)
        abandon_on_cancel(self);
    finish(self);
    *result = value;
    return value == NULL ? PYGEN_ERROR : PYGEN_RETURN;
}

static void
coroutine_finish(Coroutine *self)
{
    finish((LoopCall *)self);
}

/* throw() or close() in WAITING: the reference's `except` for a CancelledError or a
 * GeneratorExit. */
static void
coroutine_thrown(Coroutine *self)
{
    abandon_on_cancel((LoopCall *)self);
}

static const char *
coroutine_never_awaited(Coroutine *self)
{
    PyObject *method = ((LoopCall *)self)->method;
    if (Py_IS_TYPE(self, &OperationCall_Type))
        return method == NULL ? "coroutine was never awaited"
                              : PyBytes_AS_STRING(((OperationMethod *)method)->never_awaited);
    return "coroutine 'Loop.pread' was never awaited";
}

/* After the first step's start_operation(): the future's outcome where it is done already
 * (outside the reference's try: nothing is abandoned), else the future yielded. */
static PySendResult
await_future(LoopCall *self, PyObject **result)
{
    PyAsyncMethods *am = Py_TYPE(self->future)->tp_as_async;
    self->iter = am == NULL || am->am_await == NULL ? NULL : am->am_await(self->future);
    if (self->iter == NULL) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_TypeError, "object %.100s can't be used in 'await' expression",
                         Py_TYPE(self->future)->tp_name);
        finish(self);
        return PYGEN_ERROR;
    }
    return step_future(self, 0, Py_None, result);
}

static PyObject *loop_run; /* Loop._run (the reference's), looked up at first use */

/* 1 where type(loop)._run is Loop._run (a subclass's own _run gets every operation, as
 * the reference's method calls it), 0 if not, -1 with an error set. */
static int
runs_loops_own(PyObject *loop)
{
    if (loop_run == NULL) {
        PyObject *name = PyUnicode_InternFromString("Loop");
        PyObject *cls = name == NULL ? NULL : global(name);
        Py_XDECREF(name);
        loop_run = cls == NULL ? NULL : PyObject_GetAttr(cls, s_run);
        Py_XDECREF(cls);
        if (loop_run == NULL)
            return -1;
    }
    PyObject *run = PyObject_GetAttr((PyObject *)Py_TYPE(loop), s_run);
    if (run == NULL)
        return -1;
    int same = run == loop_run;
    Py_DECREF(run);
    return same;
}

/* loop._closed or loop._state.forked (a loop that takes no operation): 1, 0, or -1 with an
 * error set. */
static int
loop_unusable(PyObject *loop)
{
    int unusable = attr_true(loop, s_closed);
    if (unusable == 0) {
        PyObject *loop_state = PyObject_GetAttr(loop, s_state);
        unusable = loop_state == NULL ? -1 : attr_true(loop_state, s_forked);
        Py_XDECREF(loop_state);
    }
    return unusable;
}

/* Whether Loop._run(op) takes its common case, which OperationCall makes itself: the loop's
 * class has Loop's own _run, the operation is to queue (not answered when it was built),
 * the loop usable, and nobody needs to undo its result (its declaration has no discard).
 * 1, 0, or -1 with an error set. */
static int
runs_usually(LoopCall *self, PyObject *op)
{
    int own = runs_loops_own(self->loop);
    if (own <= 0)
        return own;
    PyObject *state = PyObject_GetAttr(op, s_state_of_op);
    if (state == NULL)
        return -1;
    int done = PyObject_RichCompareBool(state, done_state, Py_EQ);
    Py_DECREF(state);
    if (done != 0)
        return done < 0 ? -1 : 0;
    int unusable = loop_unusable(self->loop);
    if (unusable != 0)
        return unusable < 0 ? -1 : 0;
    PyObject *spec = PyObject_GetAttr(op, s_spec);
    if (spec == NULL)
        return -1;
    int discards = spec == Py_None ? 0 : attr_true(spec, s_discard);
    Py_DECREF(spec);
    return discards < 0 ? -1 : !discards;
}

/* An OperationCall's first step: build the operation, then Loop._run's common case, or
 * Loop._run(op)'s coroutine for every other. */
static PySendResult
operation_first_step(LoopCall *self, PyObject **result)
{
    OperationMethod *method = (OperationMethod *)self->method;
    /* As the reference: a loop that takes no operation refuses it before it is built
     * (building one may make it at once: RunNow), but for one that must run. */
    int unusable = method->must_run ? 0 : loop_unusable(self->loop);
    if (unusable > 0)
        unusable = dropped(call_method(self->loop, s_check_usable, NULL, 0));
    if (unusable < 0) {
        stop_iteration_as_runtime_error();
        finish(self);
        return PYGEN_ERROR;
    }
    Py_ssize_t keywords = self->kwnames == NULL ? 0 : PyTuple_GET_SIZE(self->kwnames);
    PyObject *values = self->values;
    PyObject *op = PyObject_Vectorcall(method->build, ((PyTupleObject *)values)->ob_item,
                                       PyTuple_GET_SIZE(values) - keywords, self->kwnames);
    Py_CLEAR(self->values);
    Py_CLEAR(self->kwnames);
    int usual = op == NULL ? -1 : runs_usually(self, op);
    if (usual == 0) {
        PyObject *inner = call_method(self->loop, s_run, &op, 1);
        Py_DECREF(op);
        if (inner == NULL) {
            finish(self);
            return PYGEN_ERROR;
        }
        return coroutine_delegate(&self->co, inner, result);
    }
    if (usual < 0)
        Py_XDECREF(op);
    if (usual < 0 || start_operation(self, op, NULL, s_queue) < 0) {
        stop_iteration_as_runtime_error();
        finish(self);
        return PYGEN_ERROR;
    }
    return await_future(self, result);
}

/* A step in NEW or WAITING. */
static PySendResult
coroutine_step(Coroutine *coroutine, PyObject *arg, PyObject **result)
{
    LoopCall *self = (LoopCall *)coroutine;
    if (self->co.state == WAITING)
        return step_future(self, 1, arg, result);
    if (arg != Py_None) {
        PyErr_SetString(PyExc_TypeError, "can't send non-None value to a just-started coroutine");
        return PYGEN_ERROR;
    }
    if (Py_IS_TYPE(coroutine, &OperationCall_Type))
        return operation_first_step(self, result);
    PyObject *copied = NULL;
    int made = start_read(self, &copied);
    if (made < 0 || made == 2) {
        if (made < 0)
            stop_iteration_as_runtime_error();
        finish(self);
        *result = copied;
        return made < 0 ? PYGEN_ERROR : PYGEN_RETURN;
    }
    if (made == 0) {
        PyObject **a = self->args;
        PyObject *stack[N_ARGS + 1] = {self->loop,        a[A_FD],          a[A_SIZE],
                                       a[A_OFFSET],       a[A_KNOWN_SEEKABLE], a[A_CACHED_COPY],
                                       a[A_UNCLAIMED],    a[A_DIRECT]};
        PyObject *inner = PyObject_VectorcallMethod(s_pread, stack, (N_ARGS + 1) | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        for (int i = 0; i < N_ARGS; i++)
            Py_CLEAR(self->args[i]);
        if (inner == NULL) {
            finish(self);
            return PYGEN_ERROR;
        }
        return coroutine_delegate(coroutine, inner, result);
    }
    for (int i = 0; i < N_ARGS; i++)
        Py_CLEAR(self->args[i]);
    return await_future(self, result);
}

static PyObject *
pread_name(LoopCall *self, void *Py_UNUSED(closure))
{
    return PyUnicode_FromString("pread");
}

static PyObject *
pread_qualname(LoopCall *self, void *Py_UNUSED(closure))
{
    return PyUnicode_FromString("Loop.pread");
}

static PyObject *
loop_call_awaiting(LoopCall *self, void *closure)
{
    if (self->co.state == WAITING) /* as `await future` leaves it: the future's iterator */
        return Py_NewRef(self->iter);
    return coroutine_awaiting(&self->co, closure);
}

static int
loop_call_traverse(LoopCall *self, visitproc visit, void *arg)
{
    Py_VISIT(self->loop);
    for (int i = 0; i < N_ARGS; i++)
        Py_VISIT(self->args[i]);
    Py_VISIT(self->op);
    Py_VISIT(self->future);
    Py_VISIT(self->iter);
    Py_VISIT(self->co.inner);
    Py_VISIT(self->head);
    Py_VISIT(self->method);
    Py_VISIT(self->values);
    Py_VISIT(self->kwnames);
    return 0;
}

static int
loop_call_clear(LoopCall *self)
{
    self->co.state = DONE;
    Py_CLEAR(self->loop);
    for (int i = 0; i < N_ARGS; i++)
        Py_CLEAR(self->args[i]);
    Py_CLEAR(self->op);
    Py_CLEAR(self->future);
    Py_CLEAR(self->iter);
    Py_CLEAR(self->co.inner);
    Py_CLEAR(self->head);
    Py_CLEAR(self->method);
    Py_CLEAR(self->values);
    Py_CLEAR(self->kwnames);
    return 0;
}

static PyObject *
use_namespace(PyObject *module, PyObject *dict)
{
    if (!PyDict_Check(dict)) {
        PyErr_SetString(PyExc_TypeError, "use_namespace() takes a dict");
        return NULL;
    }
    Py_XSETREF(namespace, Py_NewRef(dict));
    Py_RETURN_NONE;
}

/* The coroutine of loop.pread(*args), its arguments in the order of A_FD .. A_DIRECT. */
static PyObject *
new_pread(PyObject *loop, PyObject *const *args)
{
    if (namespace == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "pread_call() before use_namespace()");
        return NULL;
    }
    LoopCall *self = PyObject_GC_New(LoopCall, &PreadCall_Type);
    if (self == NULL)
        return NULL;
    self->co.state = NEW;
    self->co.running = 0;
    self->loop = Py_NewRef(loop);
    for (int i = 0; i < N_ARGS; i++)
        self->args[i] = Py_NewRef(args[i]);
    self->op = self->future = self->iter = self->co.inner = self->head = NULL;
    self->method = self->values = self->kwnames = NULL;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

/* An OperationMethod called: the coroutine of method(loop, *args, **kwargs), the arguments
 * as a vectorcall gives them (`loop` first). */
static PyObject *
operation_method_call(OperationMethod *method, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs < 1) {
        PyErr_Format(PyExc_TypeError, "%U() missing 1 required positional argument: 'self'", method->qualname);
        return NULL;
    }
    if (namespace == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "an OperationMethod called before use_namespace()");
        return NULL;
    }
    Py_ssize_t count = nargs - 1 + (kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames));
    PyObject *values = PyTuple_New(count);
    if (values == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < count; i++)
        PyTuple_SET_ITEM(values, i, Py_NewRef(args[i + 1]));
    LoopCall *self = PyObject_GC_New(LoopCall, &OperationCall_Type);
    if (self == NULL) {
        Py_DECREF(values);
        return NULL;
    }
    self->co.state = NEW;
    self->co.running = 0;
    self->loop = Py_NewRef(args[0]);
    for (int i = 0; i < N_ARGS; i++)
        self->args[i] = NULL;
    self->op = self->future = self->iter = self->co.inner = self->head = NULL;
    self->method = Py_NewRef((PyObject *)method);
    self->values = values;
    self->kwnames = kwnames == NULL || PyTuple_GET_SIZE(kwnames) == 0 ? NULL : Py_NewRef(kwnames);
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

static PyObject *
operation_method_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *build, *name, *qualname;
    int must_run;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "OperationMethod() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "OUUp:OperationMethod", &build, &name, &qualname, &must_run))
        return NULL;
    if (!PyCallable_Check(build)) {
        PyErr_SetString(PyExc_TypeError, "OperationMethod(build, name, qualname, must_run): build must be callable");
        return NULL;
    }
    const char *text = PyUnicode_AsUTF8(qualname);
    PyObject *warning = text == NULL ? NULL : PyBytes_FromFormat("coroutine '%s' was never awaited", text);
    if (warning == NULL)
        return NULL;
    OperationMethod *self = (OperationMethod *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_DECREF(warning);
        return NULL;
    }
    self->build = Py_NewRef(build);
    self->name = Py_NewRef(name);
    self->qualname = Py_NewRef(qualname);
    self->never_awaited = warning;
    self->dict = NULL;
    self->vectorcall = (vectorcallfunc)operation_method_call;
    self->must_run = must_run;
    return (PyObject *)self;
}

/* Looked up on the loop: bound to it, as a function is. */
static PyObject *
operation_method_get(PyObject *self, PyObject *obj, PyObject *Py_UNUSED(type))
{
    if (obj == NULL || obj == Py_None)
        return Py_NewRef(self);
    return PyMethod_New(self, obj);
}

static int
operation_method_traverse(OperationMethod *self, visitproc visit, void *arg)
{
    Py_VISIT(self->build);
    Py_VISIT(self->dict);
    return 0;
}

static int
operation_method_clear(OperationMethod *self)
{
    Py_CLEAR(self->build);
    Py_CLEAR(self->dict);
    return 0;
}

static void
operation_method_dealloc(OperationMethod *self)
{
    PyObject_GC_UnTrack(self);
    operation_method_clear(self);
    Py_CLEAR(self->name);
    Py_CLEAR(self->qualname);
    Py_CLEAR(self->never_awaited);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
operation_method_repr(OperationMethod *self)
{
    return PyUnicode_FromFormat("<compiled coroutine method %U>", self->qualname);
}

static PyObject *
operation_method_reduce(OperationMethod *self, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(self->qualname); /* pickled, copied by name, as a function is */
}

static PyMethodDef operation_method_methods[] = {
    {"__reduce__", (PyCFunction)operation_method_reduce, METH_NOARGS, NULL},
    {NULL}};

static PyGetSetDef operation_method_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL}};

/* (`method` is NULL only once the collector cleared the coroutine.) */
static PyObject *
operation_name(LoopCall *self, void *Py_UNUSED(closure))
{
    if (self->method == NULL)
        return PyUnicode_FromString("coroutine");
    return Py_NewRef(((OperationMethod *)self->method)->name);
}

static PyObject *
operation_qualname(LoopCall *self, void *Py_UNUSED(closure))
{
    if (self->method == NULL)
        return PyUnicode_FromString("coroutine");
    return Py_NewRef(((OperationMethod *)self->method)->qualname);
}

static PyObject *
pread_call(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != N_ARGS + 1) {
        PyErr_Format(PyExc_TypeError, "pread_call() takes %d arguments (%zd given)", N_ARGS + 1, nargs);
        return NULL;
    }
    return new_pread(args[0], args + 1);
}

/* Loop.pread compiled (install_pread()): the method's own argument binding, without the
 * reference's frame. Every call it does not bind itself (fd, size or offset by keyword, an
 * argument too many or too few, a keyword it does not take) is the reference's, which
 * binds them or raises the TypeError of its signature. */
static PyObject *pread_reference;    /* Loop.pread as written in _loop.py */
static PyObject *minus_one;          /* offset's default */
static PyObject *keyword_names[N_ARGS]; /* the keyword-only parameters' names, by A_ index */

/* The A_ index of the keyword-only parameter `name`, or -1 (a str subclass's name too:
 * the reference's binding compares it with its own __eq__). */
static int
keyword_index(PyObject *name)
{
    for (int i = A_KNOWN_SEEKABLE; i <= A_DIRECT; i++)
        if (keyword_names[i] == name)
            return i;
    if (!PyUnicode_CheckExact(name))
        return -1;
    for (int i = A_KNOWN_SEEKABLE; i <= A_DIRECT; i++)
        if (PyUnicode_Compare(keyword_names[i], name) == 0) /* (two str: cannot fail) */
            return i;
    return -1;
}

static PyObject *
loop_pread(PyObject *loop, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *given[N_ARGS] = {NULL, NULL, minus_one, Py_False, Py_True, Py_None, Py_None};
    Py_ssize_t keywords = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    int bound = 2 <= nargs && nargs <= 3;
    for (Py_ssize_t i = 0; bound && i < nargs; i++)
        given[i] = args[i];
    for (Py_ssize_t k = 0; bound && k < keywords; k++) {
        int index = keyword_index(PyTuple_GET_ITEM(kwnames, k));
        if (index < 0)
            bound = 0;
        else
            given[index] = args[nargs + k];
    }
    return bound ? new_pread(loop, given) : reference_call(pread_reference, loop, args, nargs, kwnames);
}

static PyMethodDef loop_pread_def = {"pread", (PyCFunction)(void (*)(void))loop_pread,
                                     METH_FASTCALL | METH_KEYWORDS, NULL};

/* install_pread(Loop, reference) -> Loop.pread compiled: a method of Loop whose calls
 * return what the reference's do, its docstring the reference's with its signature. */
static PyObject *
install_pread(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyType_Check(args[0]) || !PyCallable_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "install_pread(Loop, reference) takes a class and a function");
        return NULL;
    }
    if (pread_reference != NULL) { /* (once: its docstring is the method's for good) */
        PyErr_SetString(PyExc_RuntimeError, "install_pread() was called already");
        return NULL;
    }
    PyObject *doc = PyObject_GetAttrString(args[1], "__doc__");
    if (doc != NULL && !PyUnicode_Check(doc))
        Py_SETREF(doc, PyUnicode_FromString(""));
    if (doc == NULL)
        return NULL;
    PyObject *text = PyUnicode_FromFormat(
        "pread($self, fd, size, offset=-1, *, known_seekable=False, cached_copy=True, "
        "unclaimed=None, direct=None)\n--\n\n%U",
        doc);
    Py_DECREF(doc);
    if (text == NULL)
        return NULL;
    Py_ssize_t size;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &size);
    char *kept = utf8 == NULL ? NULL : PyMem_RawMalloc((size_t)size + 1);
    if (kept == NULL) {
        Py_DECREF(text);
        return utf8 == NULL ? NULL : PyErr_NoMemory();
    }
    memcpy(kept, utf8, (size_t)size + 1);
    Py_DECREF(text);
    loop_pread_def.ml_doc = kept; /* (kept for the process's life, as the method is) */
    PyObject *method = PyDescr_NewMethod((PyTypeObject *)args[0], &loop_pread_def);
    if (method == NULL)
        return NULL;
    pread_reference = Py_NewRef(args[1]);
    return method;
}

static PyGetSetDef pread_getset[] = {
    {"__name__", (getter)pread_name, NULL, NULL, NULL},
    {"__qualname__", (getter)pread_qualname, NULL, NULL, NULL},
    {"cr_running", (getter)coroutine_running, NULL, NULL, NULL},
    {"cr_await", (getter)loop_call_awaiting, NULL, NULL, NULL},
    {NULL}};

static PyGetSetDef operation_getset[] = {
    {"__name__", (getter)operation_name, NULL, NULL, NULL},
    {"__qualname__", (getter)operation_qualname, NULL, NULL, NULL},
    {"cr_running", (getter)coroutine_running, NULL, NULL, NULL},
    {"cr_await", (getter)loop_call_awaiting, NULL, NULL, NULL},
    {NULL}};

static PyTypeObject OperationCall_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "uringloop._loop_c.OperationCall",
    .tp_basicsize = sizeof(LoopCall),
    .tp_flags = COROUTINE_FLAGS,
    .tp_doc = "The coroutine a Loop's operation method returns (see the module's doc).",
    .tp_as_async = &coroutine_async,
    .tp_iter = NULL,
    .tp_iternext = (iternextfunc)coroutine_iternext,
    .tp_methods = coroutine_methods,
    .tp_getset = operation_getset,
    .tp_traverse = (traverseproc)loop_call_traverse,
    .tp_clear = (inquiry)loop_call_clear,
    .tp_dealloc = (destructor)coroutine_dealloc,
    .tp_finalize = (destructor)coroutine_finalize,
};

static PyTypeObject OperationMethod_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "uringloop._loop_c.OperationMethod",
    .tp_basicsize = sizeof(OperationMethod),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_doc = "OperationMethod(build, name, qualname, must_run): a declared operation's coroutine method of Loop, compiled "
              "(see the module's doc).",
    .tp_new = operation_method_new,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(OperationMethod, vectorcall),
    .tp_descr_get = operation_method_get,
    .tp_dictoffset = offsetof(OperationMethod, dict),
    .tp_getattro = PyObject_GenericGetAttr,
    .tp_setattro = PyObject_GenericSetAttr,
    .tp_repr = (reprfunc)operation_method_repr,
    .tp_methods = operation_method_methods,
    .tp_getset = operation_method_getset,
    .tp_traverse = (traverseproc)operation_method_traverse,
    .tp_clear = (inquiry)operation_method_clear,
    .tp_dealloc = (destructor)operation_method_dealloc,
};

static PyTypeObject PreadCall_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "uringloop._loop_c.PreadCall",
    .tp_basicsize = sizeof(LoopCall),
    .tp_flags = COROUTINE_FLAGS,
    .tp_doc = "The coroutine Loop.pread returns (see the module's doc).",
    .tp_as_async = &coroutine_async,
    .tp_iter = NULL,
    .tp_iternext = (iternextfunc)coroutine_iternext,
    .tp_methods = coroutine_methods,
    .tp_getset = pread_getset,
    .tp_traverse = (traverseproc)loop_call_traverse,
    .tp_clear = (inquiry)loop_call_clear,
    .tp_dealloc = (destructor)coroutine_dealloc,
    .tp_finalize = (destructor)coroutine_finalize,
};

static PyMethodDef functions[] = {
    {"use_namespace", (PyCFunction)use_namespace, METH_O,
     "use_namespace(globals): where pread_call()'s coroutines look up Read, _Future and "
     "copies_cached (uringloop._loop's globals)."},
    {"pread_call", (PyCFunction)(void (*)(void))pread_call, METH_FASTCALL,
     "pread_call(loop, fd, size, offset, known_seekable, cached_copy, unclaimed, direct) -> "
     "the coroutine of loop.pread(...)."},
    {"install_pread", (PyCFunction)(void (*)(void))install_pread, METH_FASTCALL,
     "install_pread(Loop, reference) -> Loop.pread compiled, a method of Loop that binds "
     "its arguments itself (every other call is the reference's)."},
    {NULL}};

static struct PyModuleDef loop_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "uringloop._loop_c",
    .m_doc = "The compiled twins of Loop._pread and of Loop's operation methods (uringloop/_loop.py).",
    .m_size = -1,
    .m_methods = functions,
};

/* *into = the value of module_name.name as a long long: 0, or -1 with an error set. */
static int
import_long(const char *module_name, const char *name, long long *into)
{
    PyObject *value;
    if (import_from(module_name, name, &value) < 0)
        return -1;
    *into = PyLong_AsLongLong(value);
    Py_DECREF(value);
    return *into == -1 && PyErr_Occurred() ? -1 : 0;
}

/* *into = the pool's largest slot size (uringloop._buffers.SLOT_SIZES[-1]): 0, or -1. */
static int
import_largest_slot(long long *into)
{
    PyObject *sizes;
    if (import_from("uringloop._buffers", "SLOT_SIZES", &sizes) < 0)
        return -1;
    Py_ssize_t n = PySequence_Size(sizes);
    PyObject *last = n > 0 ? PySequence_GetItem(sizes, n - 1) : NULL;
    Py_DECREF(sizes);
    if (last == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ImportError, "SLOT_SIZES is empty");
        return -1;
    }
    *into = PyLong_AsLongLong(last);
    Py_DECREF(last);
    return *into == -1 && PyErr_Occurred() ? -1 : 0;
}

PyMODINIT_FUNC
PyInit__loop_c(void)
{
    PyObject *checked_positions;
    if (import_from("asyncio", "CancelledError", &cancelled_error) < 0 ||
        import_from("uringloop._ops.operation", "checked_positions", &checked_positions) < 0 ||
        import_long("uringloop._ops.args", "OFF_MAX", &off_max) < 0 ||
        import_largest_slot(&pooled_max) < 0 || import_long("uringloop._aligned", "PAGE_SIZE", &page_size) < 0 ||
        import_from("uringloop._ops.hotpath", "NO_NOWAIT", &no_nowait) < 0 ||
        import_from("uringloop._ops.state", "DONE", &done_state) < 0)
        return NULL;
    if (page_size <= 0) {
        PyErr_SetString(PyExc_ImportError, "PAGE_SIZE is not positive");
        return NULL;
    }
    checked = PyObject_CallNoArgs(checked_positions);
    Py_DECREF(checked_positions);
    if (checked == NULL)
        return NULL;
    if (!PyDict_CheckExact(checked)) {
        PyErr_SetString(PyExc_ImportError, "checked_positions() is not a dict");
        return NULL;
    }
    if (intern(&s_loop, "loop") < 0 || (loop_kwnames = PyTuple_Pack(1, s_loop)) == NULL || intern(&s_closed, "_closed") < 0 || intern(&s_state, "_state") < 0 ||
        intern(&s_forked, "forked") < 0 || intern(&s_inline, "inline") < 0 || intern(&s_pool, "_pool") < 0 ||
        intern(&s_ready, "_ready") < 0 || intern(&s_eager_left, "_eager_left") < 0 ||
        intern(&s_driver, "_driver") < 0 || intern(&s_queue_read, "queue_read") < 0 ||
        intern(&s_slow_completions, "slow_completions") < 0 || intern(&s_run_lone, "_run_lone") < 0 ||
        intern(&s_submit_early, "_submit_early") < 0 || intern(&s_abandon, "_abandon") < 0 ||
        intern(&s_pread, "_pread") < 0 || intern(&s_waiter, "waiter") < 0 ||
        coroutine_names_ready() < 0 ||
        intern(&s_read, "Read") < 0 || intern(&s_future, "_Future") < 0 ||
        intern(&s_copies_cached, "copies_cached") < 0 || intern(&s_inline_turn, "inline_turn") < 0 ||
        intern(&s_read_cached, "read_cached") < 0 || intern(&s_copies_refused, "copies_refused") < 0 ||
        intern(&s_nbytes, "nbytes") < 0 || intern(&s_queue, "queue") < 0 || intern(&s_run, "_run") < 0 || intern(&s_check_usable, "_check_usable") < 0 ||
        intern(&s_state_of_op, "state") < 0 || intern(&s_spec, "spec") < 0 || intern(&s_discard, "discard") < 0 ||
        intern(&s_backlog, "backlog") < 0 || intern(&s_inflight, "inflight") < 0 ||
        intern(&s_uses_ring, "uses_ring") < 0 || intern(&s_early_batch, "EARLY_BATCH") < 0 ||
        intern(&s_early_share, "EARLY_SHARE") < 0 ||
        intern(&keyword_names[A_KNOWN_SEEKABLE], "known_seekable") < 0 ||
        intern(&keyword_names[A_CACHED_COPY], "cached_copy") < 0 ||
        intern(&keyword_names[A_UNCLAIMED], "unclaimed") < 0 || intern(&keyword_names[A_DIRECT], "direct") < 0 ||
        (minus_one = PyLong_FromLong(-1)) == NULL)
        return NULL;
    if (PyType_Ready(&PreadCall_Type) < 0 || PyType_Ready(&OperationCall_Type) < 0 ||
        PyType_Ready(&OperationMethod_Type) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&loop_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "PreadCall", (PyObject *)&PreadCall_Type) < 0 ||
        PyModule_AddObjectRef(m, "OperationCall", (PyObject *)&OperationCall_Type) < 0 ||
        PyModule_AddObjectRef(m, "OperationMethod", (PyObject *)&OperationMethod_Type) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return with_source_digest(m);
}
