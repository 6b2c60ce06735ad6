/* A bound for the randread benchmark's O_DIRECT rows: random 4 KiB O_DIRECT reads kept
 * QD deep by a C program that sleeps the way uringloop's loop sleeps, without Python.
 *
 * The ring asks for the loop's setup flags (SINGLE_ISSUER, DEFER_TASKRUN, COOP_TASKRUN,
 * TASKRUN_FLAG, SUBMIT_ALL; not R_DISABLED, which only lets another thread claim the
 * ring), dropped in the loop's order where the kernel refuses them. An eventfd registered
 * for completions is watched by epoll and, as the loop keeps it, disabled
 * (IORING_CQ_EVENTFD_DISABLED) while the program is awake: before sleeping it enables it,
 * then looks again for completions (posted, or pending as deferred task work), and sleeps
 * in epoll_wait only when there are none; after waking it disables it, reads it, and an
 * io_uring_enter(GETEVENTS) posts completions. Each is then replaced by a new read at a
 * random offset. MODE "batch" submits the replacements of what it reaped with one
 * io_uring_enter, as the loop's pre-select step does; MODE "each" submits each with an
 * io_uring_enter of its own as soon as its completion is seen, as fio does. Every enter
 * passes GETEVENTS, as the loop's do. (Since Linux 6.13 an enter that does not wait posts
 * at most 20 deferred completions and leaves IORING_SQ_TASKRUN raised for the rest; the
 * loop's enters are such enters too: past 20 reads a wake, "batch" is a few submissions a
 * wake, as the loop's are.)
 *
 * The first WARMUP seconds are not counted. One read in 64 of the counted ones is kept
 * and compared with a buffered pread of the same block after the clock stops.
 * Built and run by examples/bench/randread.py; prints one JSON line:
 * {"reads": N, "seconds": S, "wakes": W, "timeouts": T, "enters": E, "submits": U,
 *  "refills": R}
 * (reads and seconds: the counted part; the other counters cover the whole run: returns
 * from epoll_wait, those of them that timed out (100 ms without a signal: a lost wake-up,
 * or a read that slow), io_uring_enter calls, those of them that submitted, reads
 * submitted after the first QD).
 *
 * usage: refill PATH QD SECONDS WARMUP SEED batch|each
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Older kernel headers: the values are the kernel's ABI. */
#ifndef IORING_SETUP_SUBMIT_ALL
#define IORING_SETUP_SUBMIT_ALL (1U << 7)
#endif
#ifndef IORING_SETUP_COOP_TASKRUN
#define IORING_SETUP_COOP_TASKRUN (1U << 8)
#endif
#ifndef IORING_SETUP_TASKRUN_FLAG
#define IORING_SETUP_TASKRUN_FLAG (1U << 9)
#endif
#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#endif
#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN (1U << 13)
#endif
#ifndef IORING_SQ_TASKRUN
#define IORING_SQ_TASKRUN (1U << 2)
#endif
#ifndef IORING_CQ_EVENTFD_DISABLED
#define IORING_CQ_EVENTFD_DISABLED (1U << 0)
#endif

#define BLOCK 4096
#define MAX_SAMPLES 4096

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void die(const char *what)
{
    fprintf(stderr, "refill: %s: %s\n", what, strerror(errno));
    exit(1);
}

static uint64_t rng_state;

static uint64_t next_random(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return rng_state >> 17;
}

struct ring {
    int fd;
    unsigned flags; /* the setup flags the kernel took */
    _Atomic unsigned *sq_tail, *sq_flags, *cq_head, *cq_tail, *cq_flags;
    unsigned *sq_array, sq_mask, cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
};

static unsigned long long enters;

static int enter(struct ring *r, unsigned to_submit)
{
    int n;
    enters++;
    do {
        n = (int)syscall(__NR_io_uring_enter, r->fd, to_submit, 0, IORING_ENTER_GETEVENTS, NULL, 0);
    } while (n < 0 && errno == EINTR);
    return n;
}

static void setup(struct ring *r, unsigned entries)
{
    /* The loop's wanted flags, and the groups it drops, in its order, on EINVAL. */
    unsigned flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
                     IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
                     IORING_SETUP_SUBMIT_ALL;
    const unsigned fallback[] = {IORING_SETUP_DEFER_TASKRUN, IORING_SETUP_SINGLE_ISSUER,
                                 IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
                                 IORING_SETUP_SUBMIT_ALL};
    struct io_uring_params p;
    for (size_t dropped = 0;; dropped++) {
        memset(&p, 0, sizeof p);
        p.flags = flags;
        r->fd = (int)syscall(__NR_io_uring_setup, entries, &p);
        if (r->fd >= 0 || errno != EINVAL || dropped == sizeof fallback / sizeof *fallback)
            break;
        flags &= ~fallback[dropped];
    }
    if (r->fd < 0)
        die("io_uring_setup");
    r->flags = flags;
    size_t sq_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    size_t size = sq_size > cq_size ? sq_size : cq_size;
    char *sq = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
                    IORING_OFF_SQ_RING);
    if (sq == MAP_FAILED)
        die("mmap rings");
    char *cq = sq;
    if (!(p.features & IORING_FEAT_SINGLE_MMAP)) {
        cq = mmap(NULL, cq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
                  IORING_OFF_CQ_RING);
        if (cq == MAP_FAILED)
            die("mmap cq");
    }
    r->sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
    if (r->sqes == MAP_FAILED)
        die("mmap sqes");
    r->sq_tail = (_Atomic unsigned *)(sq + p.sq_off.tail);
    r->sq_flags = (_Atomic unsigned *)(sq + p.sq_off.flags);
    r->sq_array = (unsigned *)(sq + p.sq_off.array);
    r->sq_mask = *(unsigned *)(sq + p.sq_off.ring_mask);
    r->cq_head = (_Atomic unsigned *)(cq + p.cq_off.head);
    r->cq_tail = (_Atomic unsigned *)(cq + p.cq_off.tail);
    r->cq_flags = (_Atomic unsigned *)(cq + p.cq_off.flags);
    r->cq_mask = *(unsigned *)(cq + p.cq_off.ring_mask);
    r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    for (unsigned i = 0; i < p.sq_entries; i++)
        r->sq_array[i] = i;
}

static int cq_empty(struct ring *r)
{
    return atomic_load_explicit(r->cq_head, memory_order_relaxed) ==
           atomic_load_explicit(r->cq_tail, memory_order_acquire);
}

/* Whether completions may wait as deferred task work (an enter would post them): with
 * TASKRUN_FLAG, on x86-64, the kernel says so in the SQ flags; otherwise always maybe, as
 * the loop does (elsewhere the kernel's flag store and its read of the eventfd flag are not
 * ordered against ours). */
static int may_have_work(struct ring *r)
{
#if defined(__x86_64__)
    return !(r->flags & IORING_SETUP_TASKRUN_FLAG) ||
           (atomic_load(r->sq_flags) & IORING_SQ_TASKRUN);
#else
    (void)r;
    return 1;
#endif
}

/* About to sleep: enable the eventfd, then look again, as the loop's prepare_block does.
 * 1: completions are there (the eventfd disabled again): do not sleep. */
static int arm(struct ring *r)
{
    /* Sequentially consistent (on x86-64 a locked RMW): ordered before the reads below. */
    atomic_fetch_and(r->cq_flags, ~IORING_CQ_EVENTFD_DISABLED);
    int look = !cq_empty(r);
    if (!look) {
        /* With TASKRUN_FLAG the kernel raises IORING_SQ_TASKRUN for deferred work before it
         * reads the eventfd flag: either it signals the eventfd, or we see its flag here.
         * (Completions this enter posts signal the eventfd too, now enabled: the next sleep
         * may then return at once, as the loop's does.) */
        if (may_have_work(r) && enter(r, 0) < 0)
            die("io_uring_enter (before sleeping)");
        look = !cq_empty(r);
    }
    if (look)
        atomic_fetch_or(r->cq_flags, IORING_CQ_EVENTFD_DISABLED);
    return look;
}

/* Queue a read of one block at a random offset into slot `slot` at SQ index `tail`; the
 * caller publishes the tail. offsets[slot] remembers where, for the check. */
static void queue_read(struct ring *r, unsigned tail, int fd, char *buffers, long long *offsets,
                       unsigned slot, long long blocks)
{
    struct io_uring_sqe *sqe = &r->sqes[tail & r->sq_mask];
    memset(sqe, 0, sizeof *sqe);
    offsets[slot] = (long long)(next_random() % (uint64_t)blocks) * BLOCK;
    sqe->opcode = IORING_OP_READ;
    sqe->fd = fd;
    sqe->addr = (uint64_t)(uintptr_t)(buffers + (size_t)slot * BLOCK);
    sqe->len = BLOCK;
    sqe->off = (uint64_t)offsets[slot];
    sqe->user_data = slot;
}

/* Publish the SQ tail and submit `n` entries. The SQ head is never read: every enter must
 * take all that is published (SUBMIT_ALL; anything else ends the program), and at most QD
 * reads are ever queued between two enters (a refill replaces reads reaped), so the SQ,
 * QD entries or more, never fills. */
static void submit(struct ring *r, unsigned tail, unsigned n, unsigned long long *submits)
{
    atomic_store_explicit(r->sq_tail, tail, memory_order_release);
    (*submits)++;
    if (enter(r, n) != (int)n)
        die("io_uring_enter (submit)");
}

int main(int argc, char **argv)
{
    if (argc != 7 || (strcmp(argv[6], "batch") != 0 && strcmp(argv[6], "each") != 0)) {
        fprintf(stderr, "usage: refill PATH QD SECONDS WARMUP SEED batch|each\n");
        return 2;
    }
    const char *path = argv[1];
    int qd_arg = atoi(argv[2]);
    double seconds = atof(argv[3]), warmup = atof(argv[4]);
    rng_state = (uint64_t)strtoull(argv[5], NULL, 10);
    int each = strcmp(argv[6], "each") == 0;
    if (qd_arg < 1 || qd_arg > 4096 || !(seconds > 0) || !(warmup >= 0)) {
        fprintf(stderr, "refill: QD must be 1..4096, SECONDS > 0 and WARMUP >= 0\n");
        return 2;
    }
    unsigned qd = (unsigned)qd_arg;
    int fd = open(path, O_RDONLY | O_DIRECT);
    int check_fd = open(path, O_RDONLY);
    if (fd < 0 || check_fd < 0)
        die(path);
    struct stat st;
    if (fstat(fd, &st) < 0)
        die("fstat");
    long long blocks = (long long)st.st_size / BLOCK;
    if (blocks < 1) {
        fprintf(stderr, "refill: %s is smaller than one block\n", path);
        return 2;
    }
    char *buffers = mmap(NULL, (size_t)qd * BLOCK, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    long long *offsets = calloc(qd, sizeof *offsets);
    long long *sample_offsets = calloc(MAX_SAMPLES, sizeof *sample_offsets);
    char *samples = malloc((size_t)MAX_SAMPLES * BLOCK);
    if (buffers == MAP_FAILED || offsets == NULL || sample_offsets == NULL || samples == NULL)
        die("memory");

    struct ring r;
    setup(&r, qd);
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (efd < 0 || ep < 0)
        die("eventfd/epoll");
    if (syscall(__NR_io_uring_register, r.fd, IORING_REGISTER_EVENTFD, &efd, 1) < 0)
        die("IORING_REGISTER_EVENTFD");
    atomic_fetch_or(r.cq_flags, IORING_CQ_EVENTFD_DISABLED); /* awake */
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = efd};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) < 0)
        die("epoll_ctl");

    unsigned long long reads = 0, wakes = 0, timeouts = 0, submits = 0, refills = 0, kept = 0;
    unsigned tail = atomic_load_explicit(r.sq_tail, memory_order_relaxed);
    for (unsigned slot = 0; slot < qd; slot++)
        queue_read(&r, tail++, fd, buffers, offsets, slot, blocks);
    submit(&r, tail, qd, &submits);

    /* The window counted: [counted_from, deadline), or, where no read completed in it (a
     * short window on a loaded machine, the program not run meanwhile), up to the first
     * read counted after it (`late`). */
    double counted_from = now() + warmup, deadline = counted_from + seconds, stopped;
    int late = 0;
    for (;;) {
        if (cq_empty(&r)) {
            if (now() >= deadline && reads)
                break;
            if (arm(&r))
                continue;
            struct epoll_event got;
            int signalled = epoll_wait(ep, &got, 1, 100);
            if (signalled < 0 && errno != EINTR)
                die("epoll_wait");
            wakes++;
            timeouts += signalled == 0;
            atomic_fetch_or(r.cq_flags, IORING_CQ_EVENTFD_DISABLED);
            uint64_t value;
            if (read(efd, &value, sizeof value) < 0 && errno != EAGAIN)
                die("read eventfd");
            if (may_have_work(&r) && enter(&r, 0) < 0)
                die("io_uring_enter (reap)");
            continue;
        }
        double t = now();
        int refilling = t < deadline || !reads, counting = t >= counted_from && refilling;
        late |= counting && t >= deadline;
        unsigned head = atomic_load_explicit(r.cq_head, memory_order_relaxed);
        unsigned ctail = atomic_load_explicit(r.cq_tail, memory_order_acquire);
        unsigned batch = 0;
        tail = atomic_load_explicit(r.sq_tail, memory_order_relaxed);
        for (; head != ctail; head++) {
            struct io_uring_cqe *cqe = &r.cqes[head & r.cq_mask];
            unsigned slot = (unsigned)cqe->user_data;
            if (cqe->res != BLOCK) {
                errno = cqe->res < 0 ? -cqe->res : EIO;
                die("a read");
            }
            if (counting) {
                if ((reads & 63) == 0 && kept < MAX_SAMPLES) {
                    sample_offsets[kept] = offsets[slot];
                    memcpy(samples + kept * BLOCK, buffers + (size_t)slot * BLOCK, BLOCK);
                    kept++;
                }
                reads++;
            }
            if (refilling) {
                queue_read(&r, tail++, fd, buffers, offsets, slot, blocks);
                refills++;
                if (each)
                    submit(&r, tail, 1, &submits);
                else
                    batch++;
            }
        }
        atomic_store_explicit(r.cq_head, head, memory_order_release);
        if (batch)
            submit(&r, tail, batch, &submits);
    }
    stopped = now();

    char check[BLOCK];
    for (unsigned long long i = 0; i < kept; i++) {
        if (pread(check_fd, check, BLOCK, sample_offsets[i]) != BLOCK ||
            memcmp(check, samples + i * BLOCK, BLOCK) != 0) {
            fprintf(stderr, "refill: wrong bytes at offset %lld\n", sample_offsets[i]);
            return 1;
        }
    }
    printf("{\"reads\": %llu, \"seconds\": %.6f, \"wakes\": %llu, \"timeouts\": %llu, "
           "\"enters\": %llu, \"submits\": %llu, \"refills\": %llu}\n",
           reads, (late || stopped < deadline ? stopped : deadline) - counted_from, wakes, timeouts, enters,
           submits, refills);
    return 0;
}
