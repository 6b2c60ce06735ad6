/* A bound for the randread benchmark's O_DIRECT rows: random 4 KiB O_DIRECT reads kept
 * QD deep by a C program that waits the way uringloop's loop waits, without Python.
 *
 * The ring is set up as the loop's (SINGLE_ISSUER | DEFER_TASKRUN | COOP_TASKRUN, plain
 * when the kernel refuses them), with an eventfd registered for completions and watched by
 * epoll. Each round: sleep in epoll_wait until the eventfd fires (unless completions are
 * already there), read the eventfd, one io_uring_enter(GETEVENTS) posts the completions,
 * each is checked and replaced by a new read at a random offset. MODE "batch" submits the
 * replacements with one io_uring_enter, as the loop's pre-select step does; MODE "each"
 * submits each replacement with an io_uring_enter of its own as soon as its completion is
 * seen, as fio does. One read in 64 is compared with a buffered pread of the same block.
 * Built and run by examples/bench/randread.py; prints one JSON line:
 * {"reads": N, "seconds": S, "wakes": W, "enters": E}.
 *
 * usage: refill PATH QD SECONDS SEED MODE
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

#define BLOCK 4096

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
    unsigned *sq_tail, *sq_array, sq_mask, sq_entries;
    unsigned *cq_head, *cq_tail, cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
};

static int enter(struct ring *r, unsigned to_submit, unsigned flags)
{
    int n;
    do {
        n = (int)syscall(__NR_io_uring_enter, r->fd, to_submit, 0, flags, NULL, 0);
    } while (n < 0 && errno == EINTR);
    return n;
}

static void setup(struct ring *r, unsigned entries)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN;
    r->fd = (int)syscall(__NR_io_uring_setup, entries, &p);
    if (r->fd < 0 && errno == EINVAL) {
        memset(&p, 0, sizeof p);
        r->fd = (int)syscall(__NR_io_uring_setup, entries, &p);
    }
    if (r->fd < 0)
        die("io_uring_setup");
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
    r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
    r->sq_array = (unsigned *)(sq + p.sq_off.array);
    r->sq_mask = *(unsigned *)(sq + p.sq_off.ring_mask);
    r->sq_entries = p.sq_entries;
    r->cq_head = (unsigned *)(cq + p.cq_off.head);
    r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
    r->cq_mask = *(unsigned *)(cq + p.cq_off.ring_mask);
    r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    for (unsigned i = 0; i < p.sq_entries; i++)
        r->sq_array[i] = i;
}

/* Queue a read of one block at a random offset into slot `slot`; the caller publishes
 * the tail. offsets[slot] remembers where, for the check. */
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

int main(int argc, char **argv)
{
    if (argc != 6 || (strcmp(argv[5], "batch") != 0 && strcmp(argv[5], "each") != 0)) {
        fprintf(stderr, "usage: refill PATH QD SECONDS SEED batch|each\n");
        return 2;
    }
    int each = strcmp(argv[5], "each") == 0;
    const char *path = argv[1];
    unsigned qd = (unsigned)atoi(argv[2]);
    double seconds = atof(argv[3]);
    rng_state = (uint64_t)strtoull(argv[4], NULL, 10);
    if (qd < 1 || qd > 4096 || !(seconds > 0)) {
        fprintf(stderr, "refill: QD must be 1..4096 and SECONDS > 0\n");
        return 2;
    }
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
    char check[BLOCK];
    if (buffers == MAP_FAILED || offsets == NULL)
        die("memory");

    struct ring r;
    setup(&r, qd);
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (efd < 0 || ep < 0)
        die("eventfd/epoll");
    if (syscall(__NR_io_uring_register, r.fd, IORING_REGISTER_EVENTFD, &efd, 1) < 0)
        die("IORING_REGISTER_EVENTFD");
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = efd};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) < 0)
        die("epoll_ctl");

    unsigned tail = *r.sq_tail;
    for (unsigned slot = 0; slot < qd; slot++)
        queue_read(&r, tail++, fd, buffers, offsets, slot, blocks);
    atomic_store_explicit((_Atomic unsigned *)r.sq_tail, tail, memory_order_release);
    if (enter(&r, qd, IORING_ENTER_GETEVENTS) != (int)qd)
        die("io_uring_enter (first submission)");

    unsigned long long reads = 0, wakes = 0, enters = 1;
    double start = now(), deadline = start + seconds;
    for (;;) {
        unsigned head = *r.cq_head;
        unsigned ctail = atomic_load_explicit((_Atomic unsigned *)r.cq_tail, memory_order_acquire);
        if (head == ctail) {
            if (now() >= deadline)
                break;
            /* Nothing posted: sleep until the eventfd says completions wait as task work. */
            struct epoll_event got;
            int n = epoll_wait(ep, &got, 1, 100);
            if (n < 0 && errno != EINTR)
                die("epoll_wait");
            uint64_t value;
            if (read(efd, &value, sizeof value) < 0 && errno != EAGAIN)
                die("read eventfd");
            wakes++;
            enters++;
            if (enter(&r, 0, IORING_ENTER_GETEVENTS) < 0)
                die("io_uring_enter (reap)");
            continue;
        }
        unsigned refill = 0;
        tail = *r.sq_tail;
        for (; head != ctail; head++) {
            struct io_uring_cqe *cqe = &r.cqes[head & r.cq_mask];
            unsigned slot = (unsigned)cqe->user_data;
            if (cqe->res != BLOCK) {
                errno = cqe->res < 0 ? -cqe->res : EIO;
                die("a read");
            }
            if ((reads & 63) == 0) {
                char *data = buffers + (size_t)slot * BLOCK;
                if (pread(check_fd, check, BLOCK, offsets[slot]) != BLOCK ||
                    memcmp(check, data, BLOCK) != 0) {
                    fprintf(stderr, "refill: wrong bytes at offset %lld\n", offsets[slot]);
                    return 1;
                }
            }
            reads++;
            if (now() < deadline) {
                queue_read(&r, tail++, fd, buffers, offsets, slot, blocks);
                refill++;
                if (each) {
                    atomic_store_explicit((_Atomic unsigned *)r.sq_tail, tail, memory_order_release);
                    enters++;
                    if (enter(&r, 1, 0) != 1)
                        die("io_uring_enter (submit one)");
                    refill = 0;
                }
            }
        }
        atomic_store_explicit((_Atomic unsigned *)r.cq_head, head, memory_order_release);
        if (refill) {
            atomic_store_explicit((_Atomic unsigned *)r.sq_tail, tail, memory_order_release);
            enters++;
            if (enter(&r, refill, IORING_ENTER_GETEVENTS) != (int)refill)
                die("io_uring_enter (submit)");
        }
    }
    double elapsed = now() - start;
    printf("{\"reads\": %llu, \"seconds\": %.6f, \"wakes\": %llu, \"enters\": %llu}\n", reads,
           elapsed, wakes, enters);
    return 0;
}
