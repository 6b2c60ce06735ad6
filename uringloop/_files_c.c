/*
 * The file classes' read, seek, __anext__, readline and write, compiled.
 *
 * The twins of the `async def` methods of uringloop/_files.py's AsyncFileIO (read, seek),
 * AsyncBufferedFile and AsyncTextFile (read, write, and _FileBase's __anext__ and
 * readline), which are the readable reference. install() returns them as methods of their classes whose calls
 * return a coroutine (a FileCall, registered as a collections.abc.Coroutine, so
 * create_task(), gather() and iscoroutine() take it) that behaves as the reference's.
 * Nothing happens before its first step, as with a coroutine: the arguments and the file
 * are looked at then.
 *
 * Its first step makes the common case itself, from the files' slots (read at the offsets
 * of their member descriptors, where an attribute lookup would cost as much as the
 * reference's bytecode): seek(offset) at a plain file's position; read(size) of 1 byte
 * up to PARALLEL_MIN from a plain file at its position, copied from the page cache within
 * the loop's inline budget; a buffered file's read(size) of bytes its read buffer holds;
 * a buffered file's next line (__anext__, or readline() with no limit) its read buffer
 * holds; a text file's read(size) of characters it decoded already, and its next line
 * where it decoded one already with newlines translated; a buffered file's write(bytes)
 * that joins its write buffer without filling it; a text file's write(str) with no
 * newline to translate and no line buffering, in a codec whose encoder keeps no state
 * (the encoded bytes join the pending ones, or, where a flush is due, go on in the
 * reference's AsyncTextFile._write_encoded_holding). A raw read the copy does not
 * complete goes on in the reference's AsyncFileIO._read_rest, as the reference's own does. Every other
 * case (other arguments, another class, the file's lock taken or waited for, a closed,
 * direct or unseekable file, I/O not yet set up for the running loop, bytes or characters
 * not there yet, text waiting to be written) is the reference's own coroutine, which this
 * one creates then and passes every step to, as `await` would: it is decided before
 * anything is done but what the reference does first too (looking up the running loop).
 *
 * PARALLEL_MIN, LSEEK_CHECKED_FROM, _PAGE_SIZE, _NO_NOWAIT and TEXT_CHUNK_SIZE are read
 * once, by install(); the slots are read and written directly (a property replacing one
 * later is not seen), and the reference's helpers (_buffered_bytes, _buffered_line, _take,
 * _get_decoded) are not called where the common case is made here (one patched on the
 * class, or set on an instance, is not seen).
 *
 * Invariant: a FileCall in DELEGATING holds the coroutine it passes steps to; nothing else
 * is left to do of its own.
 */
#include "_twin_helpers.h"
#include "_coroutine_helpers.h"
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#if PY_VERSION_HEX < 0x030C0000
#include <structmember.h>
#define OBJECT_SLOT T_OBJECT_EX
#define SLOT_READONLY READONLY
#else
#define OBJECT_SLOT Py_T_OBJECT_EX
#define SLOT_READONLY Py_READONLY
#endif

enum { NEW = COROUTINE_NEW, DELEGATING = COROUTINE_DELEGATING, DONE = COROUTINE_DONE };
enum { READ, SEEK, BUFFERED_READ, BUFFERED_NEXT, BUFFERED_READLINE, BUFFERED_WRITE, TEXT_READ, TEXT_NEXT,
       TEXT_READLINE, TEXT_WRITE, N_KINDS };

typedef struct {
    COROUTINE_HEAD   /* (its inner: the reference's coroutine, or _read_rest's) */
    int kind;        /* READ, SEEK, BUFFERED_READ, BUFFERED_NEXT, BUFFERED_READLINE, BUFFERED_WRITE,
                      * TEXT_READ, TEXT_NEXT, TEXT_READLINE or TEXT_WRITE */
    PyObject *file;  /* until the first step */
    PyObject *arg;   /* read's and readline's size, seek's offset, write's data (NULL: __anext__) */
    PyObject *whence;/* seek's */
} FileCall;

static PyTypeObject FileCall_Type;

/* What install() was given once. */
static PyTypeObject *file_type, *buffered_type, *text_type, *lock_type, *ring_io_type;
static PyObject *namespace;           /* uringloop._files' globals: read_cached and
                                       * _running_loop are looked up there at each read */
static PyObject *references[N_KINDS]; /* the `async def` twins, by kind */
/* Each kind's method: its name, qualified name, and how many arguments its reference's
 * coroutine is made with (self included). */
static const struct {
    const char *name, *qualname, *never_awaited;
    int nargs;
} kinds[N_KINDS] = {
    [READ] = {"read", "AsyncFileIO.read", "coroutine 'AsyncFileIO.read' was never awaited", 2},
    [SEEK] = {"seek", "AsyncFileIO.seek", "coroutine 'AsyncFileIO.seek' was never awaited", 3},
    [BUFFERED_READ] = {"read", "AsyncBufferedFile.read",
                       "coroutine 'AsyncBufferedFile.read' was never awaited", 2},
    [BUFFERED_NEXT] = {"__anext__", "_FileBase.__anext__", /* (where the reference is defined) */
                       "coroutine '_FileBase.__anext__' was never awaited", 1},
    [BUFFERED_READLINE] = {"readline", "_FileBase.readline",
                           "coroutine '_FileBase.readline' was never awaited", 2},
    [BUFFERED_WRITE] = {"write", "AsyncBufferedFile.write",
                        "coroutine 'AsyncBufferedFile.write' was never awaited", 2},
    [TEXT_READ] = {"read", "AsyncTextFile.read", "coroutine 'AsyncTextFile.read' was never awaited", 2},
    [TEXT_NEXT] = {"__anext__", "_FileBase.__anext__", /* (where the reference is defined) */
                   "coroutine '_FileBase.__anext__' was never awaited", 1},
    [TEXT_READLINE] = {"readline", "_FileBase.readline", "coroutine '_FileBase.readline' was never awaited",
                       2},
    [TEXT_WRITE] = {"write", "AsyncTextFile.write", "coroutine 'AsyncTextFile.write' was never awaited", 2},
};
static PyObject *no_nowait;           /* read_cached's answer where the file cannot say */
static PyObject *minus_one, *seek_set;  /* read()'s default size; os.SEEK_SET */
static long long seek_set_value;
static long long parallel_min, lseek_checked_from, page_size;
static PyObject *text_chunk_size;     /* TEXT_CHUNK_SIZE */
/* The slots' offsets: AsyncFileIO's, _FileLock's, _RingIO's. */
static Py_ssize_t o_lock, o_io_cache, o_fd, o_pos, o_readable, o_writable, o_closed, o_direct, o_seekable,
    o_copies, o_kernel_seeks, o_held, o_kept, o_after, o_settle, o_waiters, o_loop, o_inline_turn;
/* AsyncBufferedFile's, AsyncTextFile's. */
static Py_ssize_t o_b_lock, o_b_rbuf, o_b_rpos, o_b_raw, o_b_wbuf, o_b_write_size;
static Py_ssize_t o_t_lock, o_t_decoded, o_t_used, o_t_pending, o_t_readtranslate, o_t_buffer, o_t_decoder,
    o_t_encode_errors, o_t_pending_count, o_t_plain_writes, o_t_stateless;
static PyObject *s_read_rest, *s_running_loop, *s_read_cached, *s_take,
    *s_get_decoded, *s_rpos, *s_decoded, *s_pending, *s_pending_count, *s_decoder, *s_append, *s_wrote,
    *s_write_encoded_holding;

#define SLOT(obj, offset) (*(PyObject **)((char *)(obj) + (offset)))

/* The truth of a slot's value: 1, 0, -1 with an error set, or 2 where it is unset (the
 * reference's lookup would raise AttributeError: it is left to it). */
static int
slot_truth(PyObject *obj, Py_ssize_t offset)
{
    PyObject *value = SLOT(obj, offset);
    if (value == Py_True)
        return 1;
    if (value == Py_False)
        return 0;
    return value == NULL ? 2 : PyObject_IsTrue(value);
}

/* Store `value` (a new reference) in a slot. */
static void
slot_set(PyObject *obj, Py_ssize_t offset, PyObject *value)
{
    PyObject *old = SLOT(obj, offset);
    SLOT(obj, offset) = value;
    Py_XDECREF(old);
}

/* `name`'s value of the file's slot at `offset` (a new reference), or NULL with the
 * interpreter's own AttributeError where it is unset. */
static PyObject *
slot_get(PyObject *file, Py_ssize_t offset, PyObject *name)
{
    PyObject *value = SLOT(file, offset);
    return value != NULL ? Py_NewRef(value) : PyObject_GetAttr(file, name);
}

/* Whether `lock` (a _FileLock, held by the caller) is free, nobody waiting for it (as the
 * reference's `not lock.held and not lock.waiters`): 1, 0 (or left to the reference), -1
 * with an error. */
static int
lock_is_free(PyObject *lock)
{
    int held = slot_truth(lock, o_held);
    int waiting = held != 0 ? 0 : slot_truth(lock, o_waiters);
    if (held != 0)
        return held < 0 ? -1 : 0;
    return waiting != 0 ? (waiting < 0 ? -1 : 0) : 1;
}

/* lock_is_free() of the file's lock: 1, 0 (or left to the reference), -1 with an error. */
static int
lock_free(PyObject *file, Py_ssize_t lock_offset)
{
    PyObject *lock = SLOT(file, lock_offset);
    if (lock == NULL || Py_TYPE(lock) != lock_type)
        return 0;
    Py_INCREF(lock); /* (a __bool__ run by the checks may replace the file's lock) */
    int free = lock_is_free(lock);
    Py_DECREF(lock);
    return free;
}

/* `expected` (0 or 1) for each of the file's flags at `offsets`: 1, 0, or -1 with an error. */
static int
flags_are(PyObject *file, const Py_ssize_t *offsets, const int *expected, int n)
{
    for (int i = 0; i < n; i++) {
        int truth = slot_truth(file, offsets[i]);
        if (truth != expected[i])
            return truth < 0 ? -1 : 0;
    }
    return 1;
}

/* namespace[name] called with `args`: a new reference, or NULL with an error set. */
static PyObject *
call_global(PyObject *name, PyObject *const *args, size_t nargs)
{
    PyObject *fn = global_in(namespace, name);
    if (fn == NULL)
        return NULL;
    PyObject *result = PyObject_Vectorcall(fn, args, nargs, NULL);
    Py_DECREF(fn);
    return result;
}

/* seek()'s common case: 1 with *value the new position, 0 where the reference seeks, or
 * -1 with an error set. */
static int
seek_now(FileCall *self, PyObject **value)
{
    PyObject *file = self->file;
    long long offset, whence;
    if (Py_TYPE(file) != file_type || !int_in(self->whence, seek_set_value, seek_set_value + 1, &whence) ||
        !int_in(self->arg, 0, lseek_checked_from, &offset))
        return 0;
    int free = lock_free(file, o_lock);
    if (free <= 0)
        return free;
    static const int expected[] = {1, 0, 0};
    const Py_ssize_t offsets[] = {o_seekable, o_kernel_seeks, o_closed};
    int plain = flags_are(file, offsets, expected, 3);
    if (plain <= 0)
        return plain;
    slot_set(file, o_pos, Py_NewRef(self->arg));
    *value = Py_NewRef(self->arg);
    return 1;
}

/* read()'s common case: 1 with *value the bytes copied (the whole read), 2 with *value the
 * coroutine of _read_rest that reads the rest, 0 where the reference reads, or -1 with an
 * error set. */
static int
read_now(FileCall *self, PyObject **value)
{
    PyObject *file = self->file, *size = self->arg;
    long long n, position;
    if (Py_TYPE(file) != file_type || !int_in(size, 1, parallel_min, &n))
        return 0;
    int free = lock_free(file, o_lock);
    if (free <= 0)
        return free;
    static const int expected[] = {1, 0, 0, 1};
    const Py_ssize_t offsets[] = {o_readable, o_closed, o_direct, o_seekable};
    int plain = flags_are(file, offsets, expected, 4);
    if (plain <= 0)
        return plain;
    /* What the steps below use is held: the calls they make run code (the running loop's
     * lookup, a __bool__, inline_turn, read_cached) that may replace the slots' values. */
    PyObject *io = SLOT(file, o_io_cache);
    if (io == NULL || Py_TYPE(io) != ring_io_type)
        return 0;
    Py_INCREF(io);
    PyObject *running = call_global(s_running_loop, NULL, 0);
    if (running == NULL) {
        Py_DECREF(io);
        return -1;
    }
    int same_loop = SLOT(io, o_loop) == running && SLOT(io, o_inline_turn) != NULL;
    Py_DECREF(running); /* (compared by identity only) */
    PyObject *fd = SLOT(file, o_fd), *pos = SLOT(file, o_pos);
    if (!same_loop || fd == NULL || pos == NULL || !int_in(pos, 0, LLONG_MAX - parallel_min, &position)) {
        Py_DECREF(io);
        return 0;
    }
    Py_INCREF(fd);
    Py_INCREF(pos);
    int copies = slot_truth(file, o_copies);
    int made = copies < 0 ? -1 : copies == 2 ? 0 : 2;
    PyObject *data = made < 2 ? NULL : PyBytes_FromStringAndSize(NULL, 0);
    if (made == 2 && data == NULL)
        made = -1;
    int turn = 0;
    if (made > 0 && copies) {
        PyObject *inline_turn = Py_NewRef(SLOT(io, o_inline_turn));
        PyObject *answer = PyObject_Vectorcall(inline_turn, &size, 1, NULL);
        Py_DECREF(inline_turn);
        turn = answer == NULL ? -1 : PyObject_IsTrue(answer);
        Py_XDECREF(answer);
        if (turn < 0)
            made = -1;
    }
    if (made > 0 && turn) {
        PyObject *args[3] = {fd, size, pos};
        PyObject *copy = call_global(s_read_cached, args, 3);
        if (copy == NULL)
            made = -1;
        else if (PyBytes_CheckExact(copy)) {
            long long copied = PyBytes_GET_SIZE(copy);
            /* Stopped short inside a page, or at once: EOF (_copy_was_whole) */
            if (copied == n || !copied || (position + copied) % page_size) {
                PyObject *moved = PyLong_FromLongLong(position + copied);
                if (moved == NULL) {
                    Py_DECREF(copy);
                    made = -1;
                }
                else {
                    slot_set(file, o_pos, moved);
                    *value = copy;
                    made = 1;
                }
            }
            else
                Py_SETREF(data, copy);
        }
        else {
            int refused = PyObject_RichCompareBool(copy, no_nowait, Py_EQ);
            Py_DECREF(copy);
            if (refused < 0)
                made = -1;
            else if (refused)
                slot_set(file, o_copies, Py_NewRef(Py_False));
        }
    }
    if (made == 2) {
        PyObject *stack[6] = {file, io, fd, size, pos, data};
        *value = PyObject_VectorcallMethod(s_read_rest, stack, 6 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        if (*value == NULL)
            made = -1;
    }
    Py_XDECREF(data);
    Py_DECREF(io);
    Py_DECREF(fd);
    Py_DECREF(pos);
    return made;
}

/* The buffered file's read buffer: 1 with *buffer and *start set (borrowed), where it is
 * a bytes object holding `size` bytes from *start on; else 0. */
static int
buffered(PyObject *file, long long size, PyObject **buffer, long long *start)
{
    *buffer = SLOT(file, o_b_rbuf);
    PyObject *rpos = SLOT(file, o_b_rpos);
    return *buffer != NULL && PyBytes_CheckExact(*buffer) && rpos != NULL &&
           int_in(rpos, 0, LLONG_MAX, start) && size <= PyBytes_GET_SIZE(*buffer) - *start;
}

/* The buffered file's _take(count), its checks passed: 1 with *value the bytes, or -1 with
 * an error set. They are taken as the reference's _take takes them, from the buffer there
 * is now (the checks may have run code that changed it); by the reference's _take itself
 * where that buffer, or `count`, is not one this code reads. */
static int
buffered_take(PyObject *file, PyObject *count, PyObject **value)
{
    PyObject *buffer;
    long long n, start;
    if (!int_in(count, 1, LLONG_MAX, &n) || !buffered(file, n, &buffer, &start)) {
        PyObject *stack[2] = {file, count};
        *value = PyObject_VectorcallMethod(s_take, stack, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        return *value == NULL ? -1 : 1;
    }
    Py_ssize_t length = PyBytes_GET_SIZE(buffer);
    /* The whole buffer is returned as is, without a copy. */
    PyObject *data = start == 0 && n >= length
                         ? Py_NewRef(buffer)
                         : PyBytes_FromStringAndSize(PyBytes_AS_STRING(buffer) + start, (Py_ssize_t)n);
    if (data == NULL)
        return -1;
    PyObject *empty = NULL, *moved = NULL;
    if (start + n >= length) {
        empty = PyBytes_FromStringAndSize(NULL, 0);
        moved = PyLong_FromLong(0);
    }
    else
        moved = PyLong_FromLongLong(start + n);
    if (moved == NULL || (start + n >= length && empty == NULL)) {
        Py_DECREF(data);
        Py_XDECREF(empty);
        Py_XDECREF(moved);
        return -1;
    }
    if (empty != NULL)
        slot_set(file, o_b_rbuf, empty);
    slot_set(file, o_b_rpos, moved);
    *value = data;
    return 1;
}

/* Whether nothing keeps a buffered file's read from its read buffer (the reference's
 * `lock.held or lock.waiters or self.raw._closed_flag`, false): 1, 0 (or left to the
 * reference), -1 with an error set. */
static int
buffer_free(PyObject *file)
{
    int free = lock_free(file, o_b_lock);
    if (free <= 0)
        return free;
    PyObject *raw = SLOT(file, o_b_raw);
    if (raw == NULL || Py_TYPE(raw) != file_type)
        return 0;
    int closed = slot_truth(raw, o_closed);
    return closed != 0 ? (closed < 0 ? -1 : 0) : 1;
}

/* AsyncBufferedFile.read()'s common case (its _buffered_bytes and _take): 1 with *value
 * the next `size` bytes of the read buffer, 0 where the reference reads, or -1 with an
 * error set. */
static int
buffered_read_now(FileCall *self, PyObject **value)
{
    PyObject *file = self->file, *buffer;
    long long n, start;
    if (Py_TYPE(file) != buffered_type || !int_in(self->arg, 1, LLONG_MAX, &n) ||
        !buffered(file, n, &buffer, &start))
        return 0;
    int free = buffer_free(file);
    return free <= 0 ? free : buffered_take(file, self->arg, value);
}

/* AsyncBufferedFile.__anext__()'s common case (_FileBase.__anext__ and its
 * _buffered_line): 1 with *value the next line of the read buffer, 0 where the reference
 * reads, or -1 with an error set. */
static int
buffered_next_now(FileCall *self, PyObject **value)
{
    PyObject *file = self->file, *buffer;
    long long start;
    if (Py_TYPE(file) != buffered_type || !buffered(file, 0, &buffer, &start))
        return 0;
    const char *bytes = PyBytes_AS_STRING(buffer);
    Py_ssize_t length = PyBytes_GET_SIZE(buffer);
    const char *newline = start < length ? memchr(bytes + start, '\n', length - start) : NULL;
    if (newline == NULL)
        return 0;
    PyObject *past = PyLong_FromSsize_t(newline - bytes + 1);
    if (past == NULL)
        return -1;
    int free = buffer_free(file);
    if (free <= 0) {
        Py_DECREF(past);
        return free;
    }
    /* As the reference: _take(end + 1 - self._rpos), with _rpos as it is now. */
    PyObject *position = slot_get(file, o_b_rpos, s_rpos);
    if (position == NULL) {
        Py_DECREF(past);
        return -1;
    }
    PyObject *count = PyNumber_Subtract(past, position);
    Py_DECREF(position);
    Py_DECREF(past);
    if (count == NULL)
        return -1;
    int made = buffered_take(file, count, value);
    Py_DECREF(count);
    return made;
}

/* The text file's decoded characters and how many of them were returned (borrowed): 1
 * where they are a str and an int within it, else 0. */
static int
decoded(PyObject *file, PyObject **chars, Py_ssize_t *used)
{
    *chars = SLOT(file, o_t_decoded);
    PyObject *count = SLOT(file, o_t_used);
    long long n;
    if (*chars == NULL || !PyUnicode_CheckExact(*chars) || count == NULL ||
        !int_in(count, 0, (long long)PyUnicode_GET_LENGTH(*chars) + 1, &n))
        return 0;
    *used = (Py_ssize_t)n;
    return 1;
}

/* Whether nothing keeps a text file's read from the characters it decoded (the
 * reference's `lock.held or lock.waiters or self._pending or self.buffer.raw._closed_flag`,
 * false): 1, 0 (or left to the reference), -1 with an error set. */
static int
text_free(PyObject *file)
{
    int free = lock_free(file, o_t_lock);
    if (free <= 0)
        return free;
    int pending = slot_truth(file, o_t_pending);
    if (pending != 0)
        return pending < 0 ? -1 : 0;
    PyObject *buffer = SLOT(file, o_t_buffer);
    if (buffer == NULL || Py_TYPE(buffer) != buffered_type)
        return 0;
    PyObject *raw = SLOT(buffer, o_b_raw);
    if (raw == NULL || Py_TYPE(raw) != file_type)
        return 0;
    int closed = slot_truth(raw, o_closed);
    return closed != 0 ? (closed < 0 ? -1 : 0) : 1;
}

/* AsyncTextFile.read()'s common case (its _get_decoded): 1 with *value the next `size`
 * characters already decoded, 0 where the reference reads, or -1 with an error set. */
static int
text_read_now(FileCall *self, PyObject **value)
{
    PyObject *file = self->file, *chars;
    Py_ssize_t used;
    long long n;
    if (Py_TYPE(file) != text_type || !int_in(self->arg, 1, LLONG_MAX, &n) ||
        !decoded(file, &chars, &used) || n > PyUnicode_GET_LENGTH(chars) - used)
        return 0;
    int free = text_free(file);
    if (free <= 0)
        return free;
    /* The checks passed: the characters are taken as the reference's _get_decoded takes
     * them from what is there now (the truth tests above may have run code that changed
     * it); by _get_decoded itself where that is not what this code reads. */
    if (!decoded(file, &chars, &used)) {
        PyObject *stack[2] = {file, self->arg};
        *value = PyObject_VectorcallMethod(s_get_decoded, stack, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        return *value == NULL ? -1 : 1;
    }
    Py_ssize_t length = PyUnicode_GET_LENGTH(chars);
    Py_ssize_t end = n > length - used ? length : used + (Py_ssize_t)n;
    PyObject *taken = PyUnicode_Substring(chars, used, end);
    PyObject *moved = taken == NULL ? NULL : PyLong_FromSsize_t(end);
    if (moved == NULL) {
        Py_XDECREF(taken);
        return -1;
    }
    slot_set(file, o_t_used, moved);
    *value = taken;
    return 1;
}

/* AsyncTextFile.__anext__()'s common case (its _buffered_line): 1 with *value the next
 * line, decoded already, its newlines translated, 0 where the reference reads, or -1 with
 * an error set. */
static int
text_next_now(FileCall *self, PyObject **value)
{
    PyObject *file = self->file, *chars;
    Py_ssize_t used;
    if (Py_TYPE(file) != text_type)
        return 0;
    int translated = slot_truth(file, o_t_readtranslate);
    if (translated != 1)
        return translated < 0 ? -1 : 0;
    if (!decoded(file, &chars, &used))
        return 0;
    Py_ssize_t end = PyUnicode_FindChar(chars, '\n', used, PyUnicode_GET_LENGTH(chars), 1);
    if (end < 0)
        return end == -1 ? 0 : -1;
    int free = text_free(file);
    if (free <= 0)
        return free;
    /* As the reference: the line's bounds as found before the checks, taken from the
     * characters there are now. */
    end += 1;
    PyObject *moved = PyLong_FromSsize_t(end);
    if (moved == NULL)
        return -1;
    /* `_used` first, as the reference stores it (the old value's release may run code:
     * the characters are looked up after it). */
    slot_set(file, o_t_used, moved);
    PyObject *now = slot_get(file, o_t_decoded, s_decoded);
    if (now == NULL)
        return -1;
    PyObject *line;
    if (PyUnicode_CheckExact(now))
        line = PyUnicode_Substring(now, used, end);
    else { /* as `self._decoded[start:end]` */
        PyObject *first = PyLong_FromSsize_t(used), *past = PyLong_FromSsize_t(end);
        PyObject *bounds = first == NULL || past == NULL ? NULL : PySlice_New(first, past, NULL);
        Py_XDECREF(first);
        Py_XDECREF(past);
        line = bounds == NULL ? NULL : PyObject_GetItem(now, bounds);
        Py_XDECREF(bounds);
    }
    Py_DECREF(now);
    if (line == NULL)
        return -1;
    *value = line;
    return 1;
}

static void
coroutine_finish(Coroutine *coroutine)
{
    FileCall *self = (FileCall *)coroutine;
    self->co.state = DONE;
    Py_CLEAR(self->file);
    Py_CLEAR(self->arg);
    Py_CLEAR(self->whence);
    Py_CLEAR(self->co.inner);
}

/* (a FileCall has no state of its own) */
static void
coroutine_thrown(Coroutine *Py_UNUSED(coroutine))
{
}

static const char *
coroutine_never_awaited(Coroutine *coroutine)
{
    return kinds[((FileCall *)coroutine)->kind].never_awaited;
}

/* AsyncBufferedFile.write()'s common case: bytes that join the write buffer without filling
 * it, with no read-ahead to write into, the lock free and the file open for writing: 1
 * with *value the count, 0 where the reference writes, or -1 with an error set. Values not
 * of the types the reference's own make (bool flags, bytes and bytearray buffers, an int
 * size) are left to it, with nothing run. */
static int
buffered_write_now(FileCall *self, PyObject **value)
{
    PyObject *file = self->file, *data = self->arg;
    if (Py_TYPE(file) != buffered_type || !PyBytes_CheckExact(data))
        return 0;
    int free = lock_free(file, o_b_lock);
    if (free <= 0)
        return free;
    PyObject *rbuf = SLOT(file, o_b_rbuf), *wbuf = SLOT(file, o_b_wbuf), *raw = SLOT(file, o_b_raw),
             *limit = SLOT(file, o_b_write_size);
    Py_ssize_t n = PyBytes_GET_SIZE(data);
    long long most;
    if (n == 0 || rbuf == NULL || !PyBytes_CheckExact(rbuf) || PyBytes_GET_SIZE(rbuf) != 0 || wbuf == NULL ||
        !PyByteArray_CheckExact(wbuf) || raw == NULL || Py_TYPE(raw) != file_type || limit == NULL ||
        !int_in(limit, 1, LLONG_MAX, &most) || (long long)PyByteArray_GET_SIZE(wbuf) + n >= most ||
        SLOT(raw, o_writable) != Py_True || SLOT(raw, o_closed) != Py_False)
        return 0;
    /* `wbuf += data` (BufferError where the buffer is exported, as there) */
    Py_ssize_t size = PyByteArray_GET_SIZE(wbuf);
    if (PyByteArray_Resize(wbuf, size + n) < 0)
        return -1;
    memcpy(PyByteArray_AS_STRING(wbuf) + size, PyBytes_AS_STRING(data), (size_t)n);
    *value = PyLong_FromSsize_t(n);
    return *value == NULL ? -1 : 1;
}

/* The text file's write(text), its encoded `data` made: the reference's common case from
 * there on (the pending bytes' count first, then the bytes joining them where no flush is
 * due, else its _write_encoded_holding(lock, ...)). 1 or 2 (*value: its coroutine) as
 * text_write_now, or -1 with an error set. */
static int
text_write_encoded(PyObject *file, PyObject *lock, PyObject *text, PyObject *data, PyObject **value)
{
    PyObject *before = slot_get(file, o_t_pending_count, s_pending_count);
    if (before == NULL)
        return -1;
    PyObject *length = PyLong_FromSsize_t(PyBytes_GET_SIZE(data));
    PyObject *count = length == NULL ? NULL : PyNumber_Add(before, length);
    Py_DECREF(before);
    Py_XDECREF(length);
    if (count == NULL)
        return -1;
    int below = PyObject_RichCompareBool(count, text_chunk_size, Py_LT);
    if (below <= 0) {
        Py_DECREF(count);
        if (below < 0)
            return -1;
        /* a flush is due: the rest of _write(), holding the lock */
        PyObject *chars = PyLong_FromSsize_t(PyUnicode_GET_LENGTH(text));
        if (chars == NULL)
            return -1;
        PyObject *stack[4] = {file, lock, chars, data};
        *value = PyObject_VectorcallMethod(s_write_encoded_holding, stack, 4 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                           NULL);
        Py_DECREF(chars);
        return *value == NULL ? -1 : 2;
    }
    PyObject *pending = slot_get(file, o_t_pending, s_pending);
    int appended = -1;
    if (pending != NULL) {
        if (PyList_CheckExact(pending))
            appended = PyList_Append(pending, data);
        else {
            PyObject *stack[2] = {pending, data};
            PyObject *none =
                PyObject_VectorcallMethod(s_append, stack, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
            appended = none == NULL ? -1 : 0;
            Py_XDECREF(none);
        }
        Py_DECREF(pending);
    }
    if (appended < 0) {
        Py_DECREF(count);
        return -1;
    }
    slot_set(file, o_t_pending_count, count);
    PyObject *decoder = slot_get(file, o_t_decoder, s_decoder);
    if (decoder == NULL)
        return -1;
    int reading = decoder != Py_None;
    Py_DECREF(decoder);
    if (reading) { /* (without a decoder, _wrote() has nothing to do) */
        PyObject *stack[1] = {file};
        PyObject *none = PyObject_VectorcallMethod(s_wrote, stack, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        if (none == NULL)
            return -1;
        Py_DECREF(none);
    }
    *value = PyLong_FromSsize_t(PyUnicode_GET_LENGTH(text));
    return *value == NULL ? -1 : 1;
}

/* text_write_now() (below) past the file's type and its text's: `lock`, the file's, held. */
static int
text_write_free(PyObject *file, PyObject *lock, PyObject *text, PyObject **value)
{
    int free = lock_is_free(lock);
    if (free <= 0)
        return free;
    PyObject *buffer = SLOT(file, o_t_buffer);
    PyObject *raw = buffer != NULL && Py_TYPE(buffer) == buffered_type ? SLOT(buffer, o_b_raw) : NULL;
    PyObject *encoding = SLOT(file, o_t_stateless), *errors = SLOT(file, o_t_encode_errors),
             *count = SLOT(file, o_t_pending_count), *pending = SLOT(file, o_t_pending);
    long long before;
    if (SLOT(file, o_t_plain_writes) != Py_True || raw == NULL || Py_TYPE(raw) != file_type ||
        SLOT(raw, o_closed) != Py_False || encoding == NULL || !PyUnicode_CheckExact(encoding) ||
        errors == NULL || !PyUnicode_CheckExact(errors) || count == NULL ||
        !int_in(count, 0, LLONG_MAX, &before) || pending == NULL || !PyList_CheckExact(pending) ||
        SLOT(file, o_t_decoder) == NULL)
        return 0;
    /* text.encode(stateless, self._encode_errors), as str.encode takes its arguments; the
     * names held across it (an error handler may replace the slots' values) */
    Py_INCREF(encoding);
    Py_INCREF(errors);
    Py_ssize_t encoding_size, errors_size;
    const char *codec = PyUnicode_AsUTF8AndSize(encoding, &encoding_size);
    const char *handler = codec == NULL ? NULL : PyUnicode_AsUTF8AndSize(errors, &errors_size);
    int made = 0;
    if (handler == NULL || strlen(codec) != (size_t)encoding_size || strlen(handler) != (size_t)errors_size)
        PyErr_Clear(); /* (str.encode refuses them: the reference raises that) */
    else {
        PyObject *data = PyUnicode_AsEncodedString(text, codec, handler);
        made = data == NULL ? -1 : text_write_encoded(file, lock, text, data, value);
        Py_XDECREF(data);
    }
    Py_DECREF(encoding);
    Py_DECREF(errors);
    return made;
}

/* AsyncTextFile.write()'s common case: a str with no newline to translate and no line
 * buffering, in a codec whose encoder keeps no state, the lock free and the file open: 1
 * with *value the count of characters, 2 with *value the coroutine that writes the rest
 * (a flush is due), 0 where the reference writes, or -1 with an error set. Until the text
 * is encoded (which may run an error handler), values not of the types the reference's
 * own make are left to it, with nothing run; from there on, it is the reference's own
 * steps, over whatever the encoding left. */
static int
text_write_now(FileCall *self, PyObject **value)
{
    PyObject *file = self->file, *text = self->arg;
    if (Py_TYPE(file) != text_type || !PyUnicode_CheckExact(text))
        return 0;
    PyObject *lock = SLOT(file, o_t_lock); /* the reference's `lock`, looked up first */
    if (lock == NULL || Py_TYPE(lock) != lock_type)
        return 0;
    Py_INCREF(lock);
    int made = text_write_free(file, lock, text, value);
    Py_DECREF(lock);
    return made;
}

/* Whether readline(size) asks for a whole line, where the reference looks for one in what
 * the file holds first: size None or an int (not a subclass's) below 0 that fits a C
 * ssize_t (one below that is refused, OverflowError, by the reference). */
static int
whole_line(PyObject *size)
{
    if (size == Py_None)
        return 1;
    if (!PyLong_CheckExact(size))
        return 0;
    int overflow;
    long long n = PyLong_AsLongLongAndOverflow(size, &overflow);
    return !overflow && n < 0 && n >= PY_SSIZE_T_MIN; /* (cannot fail: an exact int) */
}

/* (a FileCall's only state for a step to be made in is NEW) */
static PySendResult
coroutine_step(Coroutine *coroutine, PyObject *arg, PyObject **result)
{
    FileCall *self = (FileCall *)coroutine;
    if (arg != Py_None) {
        PyErr_SetString(PyExc_TypeError, "can't send non-None value to a just-started coroutine");
        return PYGEN_ERROR;
    }
    PyObject *value = NULL;
    int made;
    switch (self->kind) {
    case READ:
        made = read_now(self, &value);
        break;
    case SEEK:
        made = seek_now(self, &value);
        break;
    case BUFFERED_READ:
        made = buffered_read_now(self, &value);
        break;
    case BUFFERED_NEXT:
        made = buffered_next_now(self, &value);
        break;
    case BUFFERED_READLINE:
        made = whole_line(self->arg) ? buffered_next_now(self, &value) : 0;
        break;
    case TEXT_READ:
        made = text_read_now(self, &value);
        break;
    case TEXT_NEXT:
        made = text_next_now(self, &value);
        break;
    case TEXT_READLINE: /* (size None: refused by the reference, as the built-in's) */
        made = self->arg != Py_None && whole_line(self->arg) ? text_next_now(self, &value) : 0;
        break;
    case BUFFERED_WRITE:
        made = buffered_write_now(self, &value);
        break;
    default:
        made = text_write_now(self, &value);
    }
    if (made < 0 || made == 1) {
        if (made < 0)
            stop_iteration_as_runtime_error();
        coroutine_finish(coroutine);
        *result = value;
        return made < 0 ? PYGEN_ERROR : PYGEN_RETURN;
    }
    PyObject *inner = value; /* 2: _read_rest's or _write_encoded_holding's coroutine */
    if (made == 0) {
        PyObject *stack[3] = {self->file, self->arg, self->whence};
        inner = PyObject_Vectorcall(references[self->kind], stack, kinds[self->kind].nargs, NULL);
    }
    if (inner == NULL) {
        coroutine_finish(coroutine);
        return PYGEN_ERROR;
    }
    Py_CLEAR(self->file);
    Py_CLEAR(self->arg);
    Py_CLEAR(self->whence);
    return coroutine_delegate(coroutine, inner, result);
}

static PyObject *
call_name(FileCall *self, void *Py_UNUSED(closure))
{
    return PyUnicode_FromString(kinds[self->kind].name);
}

static PyObject *
call_qualname(FileCall *self, void *Py_UNUSED(closure))
{
    return PyUnicode_FromString(kinds[self->kind].qualname);
}

static int
call_traverse(FileCall *self, visitproc visit, void *arg)
{
    Py_VISIT(self->file);
    Py_VISIT(self->arg);
    Py_VISIT(self->whence);
    Py_VISIT(self->co.inner);
    return 0;
}

static int
call_clear(FileCall *self)
{
    coroutine_finish(&self->co);
    return 0;
}

static PyObject *
new_call(int kind, PyObject *file, PyObject *arg, PyObject *whence)
{
    FileCall *self = PyObject_GC_New(FileCall, &FileCall_Type);
    if (self == NULL)
        return NULL;
    self->co.state = NEW;
    self->co.running = 0;
    self->kind = kind;
    self->file = Py_NewRef(file);
    self->arg = Py_XNewRef(arg);
    self->whence = Py_XNewRef(whence);
    self->co.inner = NULL;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

/* read(size=-1) or readline(size=-1) of `kind`: its coroutine. */
static PyObject *
read_call(int kind, PyObject *file, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs > 1 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames)))
        return reference_call(references[kind], file, args, nargs, kwnames);
    return new_call(kind, file, nargs ? args[0] : minus_one, NULL);
}

static PyObject *
file_read(PyObject *file, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return read_call(READ, file, args, nargs, kwnames);
}

static PyObject *
buffered_read(PyObject *file, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return read_call(BUFFERED_READ, file, args, nargs, kwnames);
}

static PyObject *
text_read(PyObject *file, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return read_call(TEXT_READ, file, args, nargs, kwnames);
}

/* __anext__() of `kind`: its coroutine (arguments: the reference's call, which refuses
 * them). */
static PyObject *
next_call(int kind, PyObject *file, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs || (kwnames != NULL && PyTuple_GET_SIZE(kwnames)))
        return reference_call(references[kind], file, args, nargs, kwnames);
    return new_call(kind, file, NULL, NULL);
}

static PyObject *
buffered_next(PyObject *file, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return next_call(BUFFERED_NEXT, file, args, nargs, kwnames);
}

static PyObject *
text_next(PyObject *file, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return next_call(TEXT_NEXT, file, args, nargs, kwnames);
}

static PyObject *
buffered_readline(PyObject *file, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return read_call(BUFFERED_READLINE, file, args, nargs, kwnames);
}

static PyObject *
text_readline(PyObject *file, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return read_call(TEXT_READLINE, file, args, nargs, kwnames);
}

/* write(data) of `kind`: its coroutine. */
static PyObject *
write_call(int kind, PyObject *file, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs != 1 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames)))
        return reference_call(references[kind], file, args, nargs, kwnames);
    return new_call(kind, file, args[0], NULL);
}

static PyObject *
buffered_write(PyObject *file, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return write_call(BUFFERED_WRITE, file, args, nargs, kwnames);
}

static PyObject *
text_write(PyObject *file, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return write_call(TEXT_WRITE, file, args, nargs, kwnames);
}

static PyObject *
file_seek(PyObject *file, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs < 1 || nargs > 2 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames)))
        return reference_call(references[SEEK], file, args, nargs, kwnames);
    return new_call(SEEK, file, args[0], nargs > 1 ? args[1] : seek_set);
}

static PyMethodDef read_def = {
    "read", (PyCFunction)(void (*)(void))file_read, METH_FASTCALL | METH_KEYWORDS,
    "read($self, size=-1)\n--\n\nRead up to `size` bytes (all to the end: -1 or None) at the "
    "file's position, which moves past them."};
static PyMethodDef buffered_read_def = {
    "read", (PyCFunction)(void (*)(void))buffered_read, METH_FASTCALL | METH_KEYWORDS,
    "read($self, size=-1)\n--\n\nRead up to `size` bytes (all to the end: -1 or None) at "
    "the file's position: the buffer's first, then the file's."};
static PyMethodDef buffered_next_def = {
    "__anext__", (PyCFunction)(void (*)(void))buffered_next, METH_FASTCALL | METH_KEYWORDS,
    "__anext__($self, /)\n--\n\nThe next line (`async for`)."};
static PyMethodDef buffered_readline_def = {
    "readline", (PyCFunction)(void (*)(void))buffered_readline, METH_FASTCALL | METH_KEYWORDS,
    "readline($self, size=-1)\n--\n\nThe next line, up to `size` bytes (no limit: -1 or None); "
    "b\"\" at the end of the file."};
static PyMethodDef buffered_write_def = {
    "write", (PyCFunction)(void (*)(void))buffered_write, METH_FASTCALL | METH_KEYWORDS,
    "write($self, data)\n--\n\nWrite `data` (a bytes-like object) at the file's position, "
    "through the write buffer: its length."};
static PyMethodDef text_read_def = {
    "read", (PyCFunction)(void (*)(void))text_read, METH_FASTCALL | METH_KEYWORDS,
    "read($self, size=-1)\n--\n\nRead up to `size` characters (all to the end: -1 or "
    "None) at the file's position."};
static PyMethodDef text_next_def = {
    "__anext__", (PyCFunction)(void (*)(void))text_next, METH_FASTCALL | METH_KEYWORDS,
    "__anext__($self, /)\n--\n\nThe next line (`async for`)."};
static PyMethodDef text_readline_def = {
    "readline", (PyCFunction)(void (*)(void))text_readline, METH_FASTCALL | METH_KEYWORDS,
    "readline($self, size=-1)\n--\n\nThe next line, up to `size` characters (no limit: -1; "
    "None is refused, TypeError, as by the built-in's); \"\" at the end of the file."};
static PyMethodDef text_write_def = {
    "write", (PyCFunction)(void (*)(void))text_write, METH_FASTCALL | METH_KEYWORDS,
    "write($self, text)\n--\n\nWrite `text` (a str), encoded, at the file's position: "
    "its length in characters."};
static PyMethodDef seek_def = {
    "seek", (PyCFunction)(void (*)(void))file_seek, METH_FASTCALL | METH_KEYWORDS,
    "seek($self, offset, whence=os.SEEK_SET)\n--\n\nMove the file's position, as os.lseek: the "
    "new position."};

static PyGetSetDef call_getset[] = {
    {"__name__", (getter)call_name, NULL, NULL, NULL},
    {"__qualname__", (getter)call_qualname, NULL, NULL, NULL},
    {"cr_running", (getter)coroutine_running, NULL, NULL, NULL},
    {"cr_await", (getter)coroutine_awaiting, NULL, NULL, NULL},
    {NULL}};

static PyTypeObject FileCall_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "uringloop._files_c.FileCall",
    .tp_basicsize = sizeof(FileCall),
    .tp_flags = COROUTINE_FLAGS,
    .tp_doc = "The coroutine the compiled file methods return (see the module's doc).",
    .tp_as_async = &coroutine_async,
    .tp_iternext = (iternextfunc)coroutine_iternext,
    .tp_methods = coroutine_methods,
    .tp_getset = call_getset,
    .tp_traverse = (traverseproc)call_traverse,
    .tp_clear = (inquiry)call_clear,
    .tp_dealloc = (destructor)coroutine_dealloc,
    .tp_finalize = (destructor)coroutine_finalize,
};

/* *offset = the offset of `cls`'s slot `name` (an object slot one may set): 0, or -1 with a
 * TypeError set. */
static int
slot_offset(PyTypeObject *cls, const char *name, Py_ssize_t *offset)
{
    PyObject *descr = PyObject_GetAttrString((PyObject *)cls, name);
    if (descr == NULL)
        return -1;
    int usable = Py_IS_TYPE(descr, &PyMemberDescr_Type);
    if (usable) {
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        usable = member->type == OBJECT_SLOT && !(member->flags & SLOT_READONLY);
        *offset = member->offset;
    }
    Py_DECREF(descr);
    if (!usable)
        PyErr_Format(PyExc_TypeError, "%s.%s is not a slot", cls->tp_name, name);
    return usable ? 0 : -1;
}

/* *into = names[name] as a long long: 0, or -1 with an error set. */
static int
namespace_long(PyObject *names, const char *name, long long *into)
{
    PyObject *value = PyDict_GetItemString(names, name);
    if (value == NULL) {
        PyErr_Format(PyExc_TypeError, "the namespace has no %s", name);
        return -1;
    }
    *into = PyLong_AsLongLong(value);
    return *into == -1 && PyErr_Occurred() ? -1 : 0;
}

static PyObject *
install(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7 || !PyType_Check(args[0]) || !PyType_Check(args[1]) || !PyType_Check(args[2]) ||
        !PyType_Check(args[3]) || !PyType_Check(args[4]) || !PyDict_Check(args[5]) ||
        !PyTuple_Check(args[6]) || PyTuple_GET_SIZE(args[6]) != N_KINDS) {
        PyErr_SetString(PyExc_TypeError,
                        "install(AsyncFileIO, AsyncBufferedFile, AsyncTextFile, _FileLock, _RingIO, "
                        "globals, references) takes five classes, a dict and the ten reference "
                        "methods (read, seek, buffered read, __anext__, readline and write, text "
                        "read, __anext__, readline and write)");
        return NULL;
    }
    if (file_type != NULL) { /* (once: what it sets is the methods' for good) */
        PyErr_SetString(PyExc_RuntimeError, "install() was called already");
        return NULL;
    }
    PyTypeObject *file = (PyTypeObject *)args[0], *buffered_file = (PyTypeObject *)args[1],
                 *text_file = (PyTypeObject *)args[2], *lock = (PyTypeObject *)args[3],
                 *ring_io = (PyTypeObject *)args[4];
    PyObject *names = args[5], *given = args[6];
    if (slot_offset(file, "_lock", &o_lock) < 0 || slot_offset(file, "_io_cache", &o_io_cache) < 0 ||
        slot_offset(file, "_fd", &o_fd) < 0 || slot_offset(file, "_pos", &o_pos) < 0 ||
        slot_offset(file, "_readable", &o_readable) < 0 || slot_offset(file, "_writable", &o_writable) < 0 ||
        slot_offset(file, "_closed_flag", &o_closed) < 0 ||
        slot_offset(file, "_direct", &o_direct) < 0 || slot_offset(file, "_seekable", &o_seekable) < 0 ||
        slot_offset(file, "_copies", &o_copies) < 0 || slot_offset(file, "_kernel_seeks", &o_kernel_seeks) < 0 ||
        slot_offset(buffered_file, "_lock", &o_b_lock) < 0 || slot_offset(buffered_file, "_rbuf", &o_b_rbuf) < 0 ||
        slot_offset(buffered_file, "_rpos", &o_b_rpos) < 0 || slot_offset(buffered_file, "raw", &o_b_raw) < 0 ||
        slot_offset(buffered_file, "_wbuf", &o_b_wbuf) < 0 ||
        slot_offset(buffered_file, "write_size", &o_b_write_size) < 0 ||
        slot_offset(text_file, "_lock", &o_t_lock) < 0 || slot_offset(text_file, "_decoded", &o_t_decoded) < 0 ||
        slot_offset(text_file, "_used", &o_t_used) < 0 || slot_offset(text_file, "_pending", &o_t_pending) < 0 ||
        slot_offset(text_file, "_readtranslate", &o_t_readtranslate) < 0 ||
        slot_offset(text_file, "buffer", &o_t_buffer) < 0 || slot_offset(text_file, "_decoder", &o_t_decoder) < 0 ||
        slot_offset(text_file, "_encode_errors", &o_t_encode_errors) < 0 ||
        slot_offset(text_file, "_pending_count", &o_t_pending_count) < 0 ||
        slot_offset(text_file, "_plain_writes", &o_t_plain_writes) < 0 ||
        slot_offset(text_file, "_stateless_encoding", &o_t_stateless) < 0 ||
        slot_offset(lock, "held", &o_held) < 0 || slot_offset(lock, "kept", &o_kept) < 0 ||
        slot_offset(lock, "after", &o_after) < 0 || slot_offset(lock, "settle", &o_settle) < 0 ||
        slot_offset(lock, "waiters", &o_waiters) < 0 ||
        slot_offset(ring_io, "loop", &o_loop) < 0 || slot_offset(ring_io, "inline_turn", &o_inline_turn) < 0)
        return NULL;
    if (namespace_long(names, "PARALLEL_MIN", &parallel_min) < 0 ||
        namespace_long(names, "LSEEK_CHECKED_FROM", &lseek_checked_from) < 0 ||
        namespace_long(names, "_PAGE_SIZE", &page_size) < 0)
        return NULL;
    if (page_size <= 0 || parallel_min <= 1) {
        PyErr_SetString(PyExc_ValueError, "_PAGE_SIZE and PARALLEL_MIN must be positive");
        return NULL;
    }
    PyObject *refused = PyDict_GetItemString(names, "_NO_NOWAIT");
    PyObject *chunk = PyDict_GetItemString(names, "TEXT_CHUNK_SIZE");
    if (refused == NULL || chunk == NULL) {
        PyErr_SetString(PyExc_TypeError, "the namespace has no _NO_NOWAIT or TEXT_CHUNK_SIZE");
        return NULL;
    }
    PyObject *methods[N_KINDS] = {
        [READ] = PyDescr_NewMethod(file, &read_def),
        [SEEK] = PyDescr_NewMethod(file, &seek_def),
        [BUFFERED_READ] = PyDescr_NewMethod(buffered_file, &buffered_read_def),
        [BUFFERED_NEXT] = PyDescr_NewMethod(buffered_file, &buffered_next_def),
        [BUFFERED_READLINE] = PyDescr_NewMethod(buffered_file, &buffered_readline_def),
        [BUFFERED_WRITE] = PyDescr_NewMethod(buffered_file, &buffered_write_def),
        [TEXT_READ] = PyDescr_NewMethod(text_file, &text_read_def),
        [TEXT_NEXT] = PyDescr_NewMethod(text_file, &text_next_def),
        [TEXT_READLINE] = PyDescr_NewMethod(text_file, &text_readline_def),
        [TEXT_WRITE] = PyDescr_NewMethod(text_file, &text_write_def),
    };
    PyObject *made = PyTuple_New(N_KINDS);
    for (int i = 0; i < N_KINDS; i++) {
        if (methods[i] == NULL)
            Py_CLEAR(made);
        if (made != NULL)
            PyTuple_SET_ITEM(made, i, methods[i]);
        else
            Py_XDECREF(methods[i]);
    }
    if (made == NULL)
        return NULL;
    namespace = Py_NewRef(names);
    no_nowait = Py_NewRef(refused);
    text_chunk_size = Py_NewRef(chunk);
    for (int i = 0; i < N_KINDS; i++)
        references[i] = Py_NewRef(PyTuple_GET_ITEM(given, i));
    file_type = (PyTypeObject *)Py_NewRef(file);
    buffered_type = (PyTypeObject *)Py_NewRef(buffered_file);
    text_type = (PyTypeObject *)Py_NewRef(text_file);
    lock_type = (PyTypeObject *)Py_NewRef(lock);
    ring_io_type = (PyTypeObject *)Py_NewRef(ring_io);
    return made;
}

/* -- open_now: uringloop.open's common case (the twin of _files._open_now) ---------------
 *
 * install_open(globals()) returns it, after install(). It makes the file objects
 * itself, as their __init__ would with the arguments _open_now passes them: each made by
 * its class's tp_new (object.__new__), its slots set at their offsets and the other
 * attributes stored through the instance's dict in the order __init__ stores them (so the
 * class's shared-key layout is kept); likewise the file's _RingIO, _FileLock and
 * _StreamReads. _running_loop, _text_encoding, _file_facts and _mounts are looked up in
 * the namespace at each call, as are _open_fd and its `inline`, whose attempt it makes as
 * _RingIO.open_now makes it (the loop's inline_turn, then the attempt; a TypeError from it
 * is "not made"), that method's steps without its call; _parsed_modes (the dict
 * itself), Loop, _NEVER_INLINE, _no_turn, _STATELESS_ENCODINGS, DEFAULT_WRITE_BUFFER_SIZE,
 * io.DEFAULT_BUFFER_SIZE, io.IncrementalNewlineDecoder, collections.deque, codecs.lookup,
 * os.linesep and the six classes are read once, by install_open(), and the classes'
 * __init__ are not called (one patched is not seen). A mode's six fields are read once a
 * call, as the reference reads them; _file_facts must answer a 4-tuple, its block size an
 * int (else the default buffer size), as both twins of it do; the text file's
 * buffer._tell() is not asked (a file just opened without appending is at 0).
 *
 * Invariant: a descriptor it opened is closed on every error before it is returned or
 * owned by the AsyncFileIO made (whose _close_sync closes it then).
 */

static PyTypeObject *mode_type, *stream_type, *loop_class;
static PyObject *parsed_modes, *no_turn, *stateless_encodings, *default_buffer_size,
    *default_write_buffer_size, *newline_decoder, *deque_type, *codecs_lookup, *linesep, *empty_tuple,
    *mode_0o666;
static long long never_inline, default_write_size_value;
static Py_ssize_t o_r_executor, o_r_ring, o_r_stream, o_r_own_pread, o_r_own_open, o_r_own_pwrite;
static Py_ssize_t o_s_late, o_s_left;
static PyObject *s_open_fd, *s_inline, *s_text_encoding, *s_file_facts, *s_mounts, *s_closes_inline,
    *s_inline_turn, *s_uring_available, *s_pread, *s_pwrite, *s_open_fd_method, *s_warn_default_encoding,
    *s_close_sync, *s_name, *s_mode, *s_appending, *s_closefd, *s_blksize, *s_size_hint, *s_executor,
    *s_closes_inline_attr, *s_buffer_size, *s_encoding, *s_errors, *s_line_buffering, *s_readuniversal,
    *s_readnl, *s_writetranslate, *s_writenl, *s_encoder, *s_telling, *s_incrementaldecoder,
    *s_incrementalencoder, *s_strict;

/* What open_now reads of a _Mode, once, as the reference does (new references). */
enum { M_FLAGS, M_APPENDING, M_BINARY, M_RAW_MODE, M_READABLE, M_WRITABLE, N_MODE_FIELDS };
static Py_ssize_t mode_offsets[N_MODE_FIELDS];
static PyObject *mode_names[N_MODE_FIELDS];

/* `parsed`'s fields into `into`: 0, or -1 with the interpreter's AttributeError for one
 * unset (those read before it released). */
static int
mode_fields(PyObject *parsed, PyObject **into)
{
    for (int i = 0; i < N_MODE_FIELDS; i++) {
        if ((into[i] = slot_get(parsed, mode_offsets[i], mode_names[i])) == NULL) {
            for (int j = 0; j < i; j++)
                Py_CLEAR(into[j]);
            return -1;
        }
    }
    return 0;
}

/* A new instance of `cls` as object.__new__(cls) makes it (nothing set), or NULL. */
static PyObject *
new_instance(PyTypeObject *cls)
{
    return cls->tp_new(cls, empty_tuple, NULL);
}

/* Store attributes through the instance's dict: `n` names and values (borrowed), in order.
 * 0, or -1 with an error set. */
static int
store_attributes(PyObject *obj, PyObject *const *names, PyObject *const *values, int n)
{
    for (int i = 0; i < n; i++)
        if (PyObject_GenericSetAttr(obj, names[i], values[i]) < 0)
            return -1;
    return 0;
}

/* Whether type(loop)'s attribute `name` is Loop's own: 1, 0, or -1 with an error set. */
static int
loop_own(PyObject *loop, PyObject *name)
{
    PyObject *theirs = PyObject_GetAttr((PyObject *)Py_TYPE(loop), name);
    if (theirs == NULL)
        return -1;
    PyObject *ours = PyObject_GetAttr((PyObject *)loop_class, name);
    int same = ours == NULL ? -1 : theirs == ours;
    Py_DECREF(theirs);
    Py_XDECREF(ours);
    return same;
}

/* _RingIO(loop, executor), as its __init__ makes it: a new reference, or NULL. */
static PyObject *
ring_io_new(PyObject *loop, PyObject *executor)
{
    PyObject *io = new_instance(ring_io_type);
    if (io == NULL)
        return NULL;
    slot_set(io, o_loop, Py_NewRef(loop));
    slot_set(io, o_r_executor, Py_NewRef(executor));
    PyObject *ring = PyObject_GetAttr(loop, s_uring_available);
    if (ring == NULL)
        goto error;
    slot_set(io, o_r_ring, ring);
    PyObject *stream = new_instance(stream_type);
    if (stream == NULL)
        goto error;
    slot_set(stream, o_s_late, Py_NewRef(Py_None));
    slot_set(stream, o_s_left, PyBytes_FromStringAndSize(NULL, 0));
    slot_set(io, o_r_stream, stream);
    int own_pread = loop_own(loop, s_pread);
    if (own_pread < 0)
        goto error;
    slot_set(io, o_r_own_pread, Py_NewRef(own_pread ? Py_True : Py_False));
    PyObject *turn = own_pread ? PyObject_GetAttr(loop, s_inline_turn) : Py_NewRef(no_turn);
    if (turn == NULL)
        goto error;
    slot_set(io, o_inline_turn, turn);
    int own_open = loop_own(loop, s_open_fd_method);
    if (own_open < 0)
        goto error;
    slot_set(io, o_r_own_open, Py_NewRef(own_open ? Py_True : Py_False));
    int own_pwrite = loop_own(loop, s_pwrite);
    if (own_pwrite < 0)
        goto error;
    slot_set(io, o_r_own_pwrite, Py_NewRef(own_pwrite ? Py_True : Py_False));
    return io;
error:
    Py_DECREF(io);
    return NULL;
}

/* _FileLock(): a new reference, or NULL. */
static PyObject *
lock_new(void)
{
    PyObject *lock = new_instance(lock_type);
    if (lock == NULL)
        return NULL;
    slot_set(lock, o_held, Py_NewRef(Py_False));
    slot_set(lock, o_kept, Py_NewRef(Py_None));
    slot_set(lock, o_after, Py_NewRef(Py_None));
    slot_set(lock, o_settle, Py_NewRef(Py_None));
    PyObject *waiters = PyObject_CallNoArgs(deque_type);
    if (waiters == NULL) {
        Py_DECREF(lock);
        return NULL;
    }
    slot_set(lock, o_waiters, waiters);
    return lock;
}

/* AsyncFileIO(fd, path, raw_mode, readable, writable, False, True, True, 0, blksize,
 * executor, False, 0, 0, size, io, True, True, False), as _open_now makes it (`fields`, the
 * mode's). */
static PyObject *
raw_file_new(PyObject *fd, PyObject *path, PyObject *const *fields, PyObject *blksize, PyObject *size,
             PyObject *executor, PyObject *io)
{
    PyObject *raw = new_instance(file_type);
    if (raw == NULL)
        return NULL;
    PyObject *zero = PyLong_FromLong(0); /* (a small int: never fails) */
    slot_set(raw, o_fd, Py_NewRef(fd));
    PyObject *names1[] = {s_name, s_mode};
    PyObject *values1[] = {path, fields[M_RAW_MODE]};
    if (store_attributes(raw, names1, values1, 2) < 0)
        goto error;
    slot_set(raw, o_readable, Py_NewRef(fields[M_READABLE]));
    slot_set(raw, o_writable, Py_NewRef(fields[M_WRITABLE]));
    PyObject *names2[] = {s_appending, s_closefd};
    PyObject *values2[] = {Py_False, Py_True};
    if (store_attributes(raw, names2, values2, 2) < 0)
        goto error;
    slot_set(raw, o_seekable, Py_NewRef(Py_True));
    slot_set(raw, o_pos, Py_NewRef(zero));
    PyObject *names3[] = {s_blksize, s_size_hint, s_executor};
    PyObject *values3[] = {blksize, size, executor};
    if (store_attributes(raw, names3, values3, 3) < 0)
        goto error;
    slot_set(raw, o_direct, Py_NewRef(Py_False));
    PyObject *lock = lock_new();
    if (lock == NULL)
        goto error;
    slot_set(raw, o_lock, lock);
    slot_set(raw, o_io_cache, Py_NewRef(io));
    if (PyObject_GenericSetAttr(raw, s_closes_inline_attr, Py_True) < 0)
        goto error;
    slot_set(raw, o_copies, Py_NewRef(Py_True));
    slot_set(raw, o_kernel_seeks, Py_NewRef(Py_False));
    slot_set(raw, o_closed, Py_NewRef(Py_False)); /* (last, as __init__ sets it) */
    Py_DECREF(zero);
    return raw;
error:
    Py_DECREF(zero);
    /* (marked closed so its __del__ leaves the descriptor, which the caller closes) */
    slot_set(raw, o_closed, Py_NewRef(Py_True));
    Py_DECREF(raw);
    return NULL;
}

/* AsyncBufferedFile(raw, buffering, raw_mode, write_size): a new reference, or NULL. */
static PyObject *
buffered_file_new(PyObject *raw, PyObject *buffering, PyObject *raw_mode, PyObject *write_size)
{
    PyObject *buffered = new_instance(buffered_type);
    if (buffered == NULL)
        return NULL;
    slot_set(buffered, o_b_raw, Py_NewRef(raw));
    if (PyObject_GenericSetAttr(buffered, s_buffer_size, buffering) < 0)
        goto error;
    slot_set(buffered, o_b_write_size, Py_NewRef(write_size));
    if (PyObject_GenericSetAttr(buffered, s_mode, raw_mode) < 0)
        goto error;
    slot_set(buffered, o_b_lock, Py_NewRef(SLOT(raw, o_lock)));
    slot_set(buffered, o_b_rbuf, PyBytes_FromStringAndSize(NULL, 0));
    slot_set(buffered, o_b_rpos, PyLong_FromLong(0));
    PyObject *wbuf = PyByteArray_FromStringAndSize(NULL, 0);
    if (wbuf == NULL)
        goto error;
    slot_set(buffered, o_b_wbuf, wbuf);
    return buffered;
error:
    slot_set(buffered, o_b_raw, NULL); /* (so its __del__ leaves the raw file alone) */
    Py_DECREF(buffered);
    return NULL;
}

/* codec's `attribute` (incrementaldecoder or incrementalencoder) called with "strict", as
 * AsyncTextFile.__init__ does (LookupError(encoding) where the codec has none): a new
 * reference, or NULL. */
static PyObject *
codec_part(PyObject *codec, PyObject *attribute, PyObject *encoding)
{
    PyObject *make = PyObject_GetAttr(codec, attribute);
    if (make == NULL)
        return NULL;
    if (make == Py_None) {
        Py_DECREF(make);
        PyErr_SetObject(PyExc_LookupError, encoding);
        return NULL;
    }
    PyObject *made = PyObject_CallOneArg(make, s_strict);
    Py_DECREF(make);
    return made;
}

/* AsyncTextFile(buffered, mode, encoding, "strict", None, False) over a raw file just
 * opened (`reads` and `writes` its readable and writable, at position 0, where the
 * reference's buffer._tell() is 0): a new reference, or NULL. */
static PyObject *
text_file_new(PyObject *buffered, PyObject *mode, PyObject *encoding, int reads, int writes)
{
    PyObject *text = new_instance(text_type), *codec = NULL;
    if (text == NULL)
        return NULL;
    slot_set(text, o_t_buffer, Py_NewRef(buffered));
    if (PyObject_GenericSetAttr(text, s_mode, mode) < 0)
        goto error;
    slot_set(text, o_t_lock, Py_NewRef(SLOT(buffered, o_b_lock)));
    slot_set(text, o_t_decoded, PyUnicode_FromStringAndSize(NULL, 0));
    slot_set(text, o_t_used, PyLong_FromLong(0));
    PyObject *names1[] = {s_encoding, s_errors, s_line_buffering, s_readuniversal};
    PyObject *values1[] = {encoding, s_strict, Py_False, Py_True};
    if (store_attributes(text, names1, values1, 4) < 0)
        goto error;
    slot_set(text, o_t_readtranslate, Py_NewRef(Py_True));
    PyObject *names2[] = {s_readnl, s_writetranslate, s_writenl};
    PyObject *values2[] = {Py_None, Py_True, linesep};
    if (store_attributes(text, names2, values2, 3) < 0)
        goto error;
    codec = PyObject_CallOneArg(codecs_lookup, encoding);
    if (codec == NULL)
        goto error;
    PyObject *decoder = Py_NewRef(Py_None);
    if (reads) {
        Py_DECREF(decoder);
        PyObject *inner = codec_part(codec, s_incrementaldecoder, encoding);
        if (inner == NULL)
            goto error;
        PyObject *decoder_args[] = {inner, Py_True};
        decoder = PyObject_Vectorcall(newline_decoder, decoder_args, 2, NULL);
        Py_DECREF(inner);
        if (decoder == NULL)
            goto error;
    }
    slot_set(text, o_t_decoder, decoder);
    slot_set(text, o_t_encode_errors, Py_NewRef(s_strict));
    slot_set(text, o_t_stateless, Py_NewRef(Py_None));
    if (writes) {
        PyObject *encoder = codec_part(codec, s_incrementalencoder, encoding);
        if (encoder == NULL)
            goto error;
        int stored = PyObject_GenericSetAttr(text, s_encoder, encoder);
        Py_DECREF(encoder);
        if (stored < 0)
            goto error;
        PyObject *name = PyObject_GetAttr(codec, s_name);
        if (name == NULL)
            goto error;
        int stateless = PySet_Contains(stateless_encodings, name);
        if (stateless < 0) {
            Py_DECREF(name);
            goto error;
        }
        if (stateless)
            slot_set(text, o_t_stateless, name);
        else
            Py_DECREF(name);
    }
    slot_set(text, o_t_pending, PyList_New(0));
    if (SLOT(text, o_t_pending) == NULL)
        goto error;
    slot_set(text, o_t_pending_count, PyLong_FromLong(0));
    if (PyObject_GenericSetAttr(text, s_telling, Py_True) < 0)
        goto error;
    /* (_encoder is not None, no line buffering, and "\n" written as it is) */
    int plain = writes && PyUnicode_CompareWithASCIIString(linesep, "\n") == 0;
    slot_set(text, o_t_plain_writes, Py_NewRef(plain ? Py_True : Py_False));
    Py_DECREF(codec);
    return text;
error:
    Py_XDECREF(codec);
    slot_set(text, o_t_buffer, NULL); /* (so its __del__ leaves the buffered file alone) */
    Py_DECREF(text);
    return NULL;
}

/* close(2) of a descriptor made here, the error being raised kept. */
static void
close_made(PyObject *fd)
{
    PyObject *exc = take_raised();
    long n = PyLong_AsLong(fd);
    if (n >= 0)
        close((int)n);
    PyErr_Clear();
    restore_raised(exc);
}

static PyObject *
open_now(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 10) {
        PyErr_SetString(PyExc_TypeError, "open_now() takes open()'s ten arguments");
        return NULL;
    }
    PyObject *file = args[0], *mode = args[1], *encoding = args[3], *errors = args[4], *newline = args[5],
             *closefd = args[6], *opener = args[7], *direct = args[8], *executor = args[9];
    long long buffering;
    if (!PyUnicode_CheckExact(file) || !int_in(args[2], -1, 0, &buffering) || encoding != Py_None ||
        errors != Py_None || newline != Py_None || closefd != Py_True || opener != Py_None ||
        direct != Py_False || !PyUnicode_CheckExact(mode))
        Py_RETURN_NONE;
    PyObject *parsed = PyDict_GetItemWithError(parsed_modes, mode);
    if (parsed == NULL)
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    if (Py_TYPE(parsed) != mode_type)
        Py_RETURN_NONE;
    PyObject *result = NULL, *loop = NULL, *io = NULL, *text_encoding = NULL, *attempt = NULL, *fd = NULL,
             *facts = NULL, *raw = NULL, *buffered = NULL, *fields[N_MODE_FIELDS] = {NULL};
    Py_INCREF(parsed);
    PyObject *decl = global_in(namespace, s_open_fd);
    attempt = decl == NULL ? NULL : PyObject_GetAttr(decl, s_inline);
    Py_XDECREF(decl);
    if (attempt == NULL || mode_fields(parsed, fields) < 0)
        goto done;
    long long flags;
    int appending = PyObject_IsTrue(fields[M_APPENDING]), binary = PyObject_IsTrue(fields[M_BINARY]),
        reads = PyObject_IsTrue(fields[M_READABLE]), writes = PyObject_IsTrue(fields[M_WRITABLE]);
    if (appending < 0 || binary < 0 || reads < 0 || writes < 0)
        goto done;
    if (appending || attempt == Py_None || !int_in(fields[M_FLAGS], INT_MIN, (long long)INT_MAX + 1, &flags) ||
        (flags & never_inline)) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    PyObject *sys_flags = PySys_GetObject("flags"); /* (borrowed) */
    if (sys_flags == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "lost sys.flags");
        goto done;
    }
    int warns = truth_of(PyObject_GetAttr(sys_flags, s_warn_default_encoding));
    if (warns != 0) {
        result = warns < 0 ? NULL : Py_NewRef(Py_None);
        goto done;
    }
    if ((loop = call_global(s_running_loop, NULL, 0)) == NULL)
        goto done;
    int ours = PyObject_IsInstance(loop, (PyObject *)loop_class);
    if (ours <= 0) {
        result = ours < 0 ? NULL : Py_NewRef(Py_None);
        goto done;
    }
    if ((io = ring_io_new(loop, executor)) == NULL)
        goto done;
    int ring = slot_truth(io, o_r_ring), own_open = ring == 1 ? slot_truth(io, o_r_own_open) : 0;
    if (ring < 0 || own_open < 0)
        goto done;
    if (ring != 1 || own_open != 1) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    PyObject *none_arg = Py_None;
    if (binary)
        text_encoding = Py_NewRef(Py_None);
    else if ((text_encoding = call_global(s_text_encoding, &none_arg, 1)) == NULL)
        goto done;
    int turned = truth_of(PyObject_CallMethodNoArgs(loop, s_inline_turn));
    if (turned != 1) {
        result = turned < 0 ? NULL : Py_NewRef(Py_False);
        goto done;
    }
    PyObject *attempt_args[] = {file, fields[M_FLAGS], mode_0o666};
    fd = PyObject_Vectorcall(attempt, attempt_args, 3, NULL);
    if (fd == NULL) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) { /* (as open_now's) */
            PyErr_Clear();
            result = Py_NewRef(Py_False);
        }
        goto done;
    }
    if (fd == Py_None) {
        result = Py_NewRef(Py_False);
        goto done;
    }
    /* From here the descriptor is this call's to close on an error. */
    if ((facts = call_global(s_file_facts, &fd, 1)) == NULL)
        goto close_fd;
    if (!PyTuple_Check(facts) || PyTuple_GET_SIZE(facts) != 4) {
        PyErr_SetString(PyExc_TypeError, "_file_facts() must return a 4-tuple");
        goto close_fd;
    }
    long st_mode = PyLong_AsLong(PyTuple_GET_ITEM(facts, 0));
    if (st_mode == -1 && PyErr_Occurred())
        goto close_fd;
    int local = 0;
    if (S_ISREG(st_mode)) {
        PyObject *mounts = global_in(namespace, s_mounts);
        local = mounts == NULL ? -1
                               : truth_of(PyObject_CallMethodOneArg(mounts, s_closes_inline, PyTuple_GET_ITEM(facts, 3)));
        Py_XDECREF(mounts);
        if (local < 0)
            goto close_fd;
    }
    if (!local) {
        result = Py_NewRef(fd);
        goto done;
    }
    PyObject *blksize = PyTuple_GET_ITEM(facts, 2);
    raw = raw_file_new(fd, file, fields, blksize, PyTuple_GET_ITEM(facts, 1), executor, io);
    if (raw == NULL)
        goto close_fd;
    /* From here the raw file owns the descriptor: its _close_sync closes it on an error. */
    long long blocks;
    PyObject *buffering_value =
        int_in(blksize, 2, LLONG_MAX, &blocks) ? blksize : default_buffer_size;
    if (!int_in(buffering_value, 1, LLONG_MAX, &blocks)) {
        PyErr_SetString(PyExc_ValueError, "buffer size must be strictly positive");
        goto close_raw;
    }
    PyObject *write_size = blocks >= default_write_size_value ? buffering_value : default_write_buffer_size;
    buffered = buffered_file_new(raw, buffering_value, fields[M_RAW_MODE], write_size);
    if (buffered == NULL)
        goto close_raw;
    if (text_encoding == Py_None) {
        result = Py_NewRef(buffered);
        goto done;
    }
    if ((result = text_file_new(buffered, mode, text_encoding, reads, writes)) == NULL)
        goto close_raw;
    goto done;
close_raw: {
    PyObject *exc = take_raised();
    PyObject *closed = PyObject_CallMethodNoArgs(raw, s_close_sync);
    Py_XDECREF(closed);
    PyErr_Clear();
    restore_raised(exc);
    goto done;
}
close_fd:
    close_made(fd);
done:
    Py_DECREF(parsed);
    for (int i = 0; i < N_MODE_FIELDS; i++)
        Py_XDECREF(fields[i]);
    Py_XDECREF(attempt);
    Py_XDECREF(loop);
    Py_XDECREF(io);
    Py_XDECREF(text_encoding);
    Py_XDECREF(fd);
    Py_XDECREF(facts);
    Py_XDECREF(raw);
    Py_XDECREF(buffered);
    return result;
}

static PyMethodDef open_now_def = {
    "open_now", (PyCFunction)(void (*)(void))open_now, METH_FASTCALL,
    "open_now(file, mode, buffering, encoding, errors, newline, closefd, opener, direct, executor)"
    " -> the file, or where it stopped (None, False, a descriptor): _files._open_now's twin."};

/* namespace[name] as a type: a new reference, or NULL with a TypeError set. */
static PyTypeObject *
namespace_type(PyObject *names, const char *name)
{
    PyObject *value = PyDict_GetItemString(names, name);
    if (value == NULL || !PyType_Check(value)) {
        PyErr_Format(PyExc_TypeError, "the namespace has no class %s", name);
        return NULL;
    }
    return (PyTypeObject *)Py_NewRef(value);
}

/* namespace[name]: a new reference, or NULL with a TypeError set. */
static PyObject *
namespace_value(PyObject *names, const char *name)
{
    PyObject *value = PyDict_GetItemString(names, name);
    if (value == NULL)
        PyErr_Format(PyExc_TypeError, "the namespace has no %s", name);
    return Py_XNewRef(value);
}

static PyObject *
install_open(PyObject *module, PyObject *names)
{
    if (namespace == NULL || names != namespace) {
        PyErr_SetString(PyExc_RuntimeError, "install_open() takes the namespace install() was given, after it");
        return NULL;
    }
    if (mode_type != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "install_open() was called already");
        return NULL;
    }
    if ((mode_type = namespace_type(names, "_Mode")) == NULL ||
        (stream_type = namespace_type(names, "_StreamReads")) == NULL ||
        (loop_class = namespace_type(names, "Loop")) == NULL ||
        (parsed_modes = namespace_value(names, "_parsed_modes")) == NULL ||
        (no_turn = namespace_value(names, "_no_turn")) == NULL ||
        (stateless_encodings = namespace_value(names, "_STATELESS_ENCODINGS")) == NULL ||
        (default_write_buffer_size = namespace_value(names, "DEFAULT_WRITE_BUFFER_SIZE")) == NULL ||
        namespace_long(names, "_NEVER_INLINE", &never_inline) < 0 ||
        namespace_long(names, "DEFAULT_WRITE_BUFFER_SIZE", &default_write_size_value) < 0)
        return NULL;
    if (!PyDict_CheckExact(parsed_modes) || !PyAnySet_Check(stateless_encodings)) {
        PyErr_SetString(PyExc_TypeError, "_parsed_modes must be a dict, _STATELESS_ENCODINGS a set");
        return NULL;
    }
    static const char *const field_names[N_MODE_FIELDS] = {
        [M_FLAGS] = "flags", [M_APPENDING] = "appending", [M_BINARY] = "binary",
        [M_RAW_MODE] = "raw_mode", [M_READABLE] = "readable", [M_WRITABLE] = "writable"};
    for (int i = 0; i < N_MODE_FIELDS; i++)
        if (slot_offset(mode_type, field_names[i], &mode_offsets[i]) < 0 || intern(&mode_names[i], field_names[i]) < 0)
            return NULL;
    if (slot_offset(ring_io_type, "executor", &o_r_executor) < 0 ||
        slot_offset(ring_io_type, "ring", &o_r_ring) < 0 || slot_offset(ring_io_type, "stream", &o_r_stream) < 0 ||
        slot_offset(ring_io_type, "own_pread", &o_r_own_pread) < 0 ||
        slot_offset(ring_io_type, "own_open", &o_r_own_open) < 0 ||
        slot_offset(ring_io_type, "own_pwrite", &o_r_own_pwrite) < 0 ||
        slot_offset(stream_type, "late", &o_s_late) < 0 || slot_offset(stream_type, "left", &o_s_left) < 0)
        return NULL;
    if (import_from("io", "DEFAULT_BUFFER_SIZE", &default_buffer_size) < 0 ||
        import_from("io", "IncrementalNewlineDecoder", &newline_decoder) < 0 ||
        import_from("collections", "deque", &deque_type) < 0 ||
        import_from("codecs", "lookup", &codecs_lookup) < 0 || import_from("os", "linesep", &linesep) < 0 ||
        (empty_tuple = PyTuple_New(0)) == NULL || (mode_0o666 = PyLong_FromLong(0666)) == NULL)
        return NULL;
    if (!PyUnicode_Check(linesep)) {
        PyErr_SetString(PyExc_TypeError, "os.linesep must be a str");
        return NULL;
    }
    if (intern(&s_open_fd, "_open_fd") < 0 || intern(&s_inline, "inline") < 0 ||
        intern(&s_text_encoding, "_text_encoding") < 0 || intern(&s_file_facts, "_file_facts") < 0 ||
        intern(&s_mounts, "_mounts") < 0 || intern(&s_closes_inline, "closes_inline") < 0 ||
        intern(&s_inline_turn, "inline_turn") < 0 || intern(&s_uring_available, "uring_available") < 0 ||
        intern(&s_pread, "pread") < 0 || intern(&s_pwrite, "pwrite") < 0 ||
        intern(&s_open_fd_method, "open_fd") < 0 ||
        intern(&s_warn_default_encoding, "warn_default_encoding") < 0 ||
        intern(&s_close_sync, "_close_sync") < 0 || intern(&s_name, "name") < 0 || intern(&s_mode, "mode") < 0 ||
        intern(&s_appending, "_appending") < 0 || intern(&s_closefd, "_closefd") < 0 ||
        intern(&s_blksize, "_blksize") < 0 || intern(&s_size_hint, "_size_hint") < 0 ||
        intern(&s_executor, "_executor") < 0 || intern(&s_closes_inline_attr, "_closes_inline") < 0 ||
        intern(&s_buffer_size, "buffer_size") < 0 || intern(&s_encoding, "encoding") < 0 ||
        intern(&s_errors, "errors") < 0 || intern(&s_line_buffering, "_line_buffering") < 0 ||
        intern(&s_readuniversal, "_readuniversal") < 0 || intern(&s_readnl, "_readnl") < 0 ||
        intern(&s_writetranslate, "_writetranslate") < 0 || intern(&s_writenl, "_writenl") < 0 ||
        intern(&s_encoder, "_encoder") < 0 || intern(&s_telling, "_telling") < 0 ||
        intern(&s_incrementaldecoder, "incrementaldecoder") < 0 ||
        intern(&s_incrementalencoder, "incrementalencoder") < 0 || intern(&s_strict, "strict") < 0)
        return NULL;
    return PyCFunction_New(&open_now_def, NULL);
}

static PyMethodDef functions[] = {
    {"install", (PyCFunction)(void (*)(void))install, METH_FASTCALL,
     "install(AsyncFileIO, AsyncBufferedFile, AsyncTextFile, _FileLock, _RingIO, globals, "
     "references) -> the compiled methods (read, seek, buffered read, __anext__, readline "
     "and write, text read, __anext__, readline and write), over the slots of those "
     "classes, with the reference methods for "
     "what they do not do themselves."},
    {"install_open", (PyCFunction)install_open, METH_O,
     "install_open(globals) -> open_now, the twin of _open_now (after install())."},
    {NULL}};

static struct PyModuleDef files_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "uringloop._files_c",
    .m_doc = "The compiled twins of AsyncFileIO.read and .seek, and of the read, __anext__, "
             "readline and write of AsyncBufferedFile and AsyncTextFile (uringloop/_files.py).",
    .m_size = -1,
    .m_methods = functions,
};

PyMODINIT_FUNC
PyInit__files_c(void)
{
    if (import_from("os", "SEEK_SET", &seek_set) < 0 ||
        ((seek_set_value = PyLong_AsLongLong(seek_set)) == -1 && PyErr_Occurred()) ||
        (minus_one = PyLong_FromLong(-1)) == NULL ||
        intern(&s_read_rest, "_read_rest") < 0 || intern(&s_running_loop, "_running_loop") < 0 ||
        intern(&s_read_cached, "read_cached") < 0 || intern(&s_take, "_take") < 0 ||
        intern(&s_get_decoded, "_get_decoded") < 0 || intern(&s_rpos, "_rpos") < 0 ||
        intern(&s_decoded, "_decoded") < 0 || intern(&s_pending, "_pending") < 0 ||
        intern(&s_pending_count, "_pending_count") < 0 || intern(&s_decoder, "_decoder") < 0 ||
        intern(&s_append, "append") < 0 || intern(&s_wrote, "_wrote") < 0 ||
        intern(&s_write_encoded_holding, "_write_encoded_holding") < 0 || coroutine_names_ready() < 0)
        return NULL;
    if (PyType_Ready(&FileCall_Type) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&files_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "FileCall", (PyObject *)&FileCall_Type) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return with_source_digest(m);
}
