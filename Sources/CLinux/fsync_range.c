// dxs_fsync_range: fsync(2) limited to a byte range, which only io_uring's IORING_OP_FSYNC
// offers from user space (vfs_fsync_range with the request's offset and length). Each thread
// that calls it gets its own one-entry ring on first use, closed when the thread exits, so
// callers never share or lock one. No liburing: three system calls and the rings' layout.
#define _GNU_SOURCE
#include "CLinux.h"

#include <errno.h>
#include <linux/io_uring.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

struct dxs_ring {
    int fd;
    uint64_t sequence;  // user_data of the last request: a completion left by an abandoned one is skipped
    void *sq_map, *cq_map;
    size_t sq_map_size, cq_map_size;
    struct io_uring_sqe *sqes;
    unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
    unsigned *cq_head, *cq_tail, *cq_mask;
    struct io_uring_cqe *cqes;
};

static pthread_key_t dxs_ring_key;
static pthread_once_t dxs_ring_once = PTHREAD_ONCE_INIT;
static int dxs_ring_key_error;
// Set once io_uring_setup said ENOSYS or EPERM: the kernel will not change its mind.
static int dxs_ring_unavailable;

static void dxs_ring_free(void *p) {
    struct dxs_ring *r = p;
    if (r->sqes) munmap(r->sqes, sizeof(struct io_uring_sqe));
    if (r->cq_map && r->cq_map != r->sq_map) munmap(r->cq_map, r->cq_map_size);
    if (r->sq_map) munmap(r->sq_map, r->sq_map_size);
    if (r->fd >= 0) close(r->fd);
    free(r);
}

static void dxs_ring_make_key(void) { dxs_ring_key_error = pthread_key_create(&dxs_ring_key, dxs_ring_free); }

// The calling thread's ring, set up on first use; NULL and errno when io_uring is missing
// (ENOSYS) or refused (EPERM under kernel.io_uring_disabled or a seccomp filter).
static struct dxs_ring *dxs_ring_get(void) {
    pthread_once(&dxs_ring_once, dxs_ring_make_key);
    if (dxs_ring_key_error) { errno = dxs_ring_key_error; return NULL; }
    struct dxs_ring *r = pthread_getspecific(dxs_ring_key);
    if (r) return r;
    int refused = __atomic_load_n(&dxs_ring_unavailable, __ATOMIC_RELAXED);
    if (refused) { errno = refused; return NULL; }
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    int fd = (int)syscall(__NR_io_uring_setup, 1, &p);
    if (fd < 0) {
        if (errno == ENOSYS || errno == EPERM) __atomic_store_n(&dxs_ring_unavailable, errno, __ATOMIC_RELAXED);
        return NULL;
    }
    r = calloc(1, sizeof *r);
    if (!r) { close(fd); errno = ENOMEM; return NULL; }
    r->fd = fd;
    r->sq_map_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    r->cq_map_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    if (p.features & IORING_FEAT_SINGLE_MMAP) {
        if (r->cq_map_size > r->sq_map_size) r->sq_map_size = r->cq_map_size;
        r->cq_map_size = r->sq_map_size;
    }
    r->sq_map = mmap(NULL, r->sq_map_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
    if (r->sq_map == MAP_FAILED) { r->sq_map = NULL; goto fail; }
    if (p.features & IORING_FEAT_SINGLE_MMAP) {
        r->cq_map = r->sq_map;
    } else {
        r->cq_map = mmap(NULL, r->cq_map_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_CQ_RING);
        if (r->cq_map == MAP_FAILED) { r->cq_map = NULL; goto fail; }
    }
    r->sqes = mmap(NULL, sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
    if (r->sqes == MAP_FAILED) { r->sqes = NULL; goto fail; }
    char *sq = r->sq_map, *cq = r->cq_map;
    r->sq_head = (unsigned *)(sq + p.sq_off.head);
    r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
    r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
    r->sq_array = (unsigned *)(sq + p.sq_off.array);
    r->cq_head = (unsigned *)(cq + p.cq_off.head);
    r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
    r->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
    r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    if (pthread_setspecific(dxs_ring_key, r) != 0) goto fail;
    return r;
fail:;
    int saved = errno ? errno : ENOMEM;
    dxs_ring_free(r);
    errno = saved;
    return NULL;
}

int dxs_fsync_range(int fd, uint64_t offset, uint32_t length, int datasync) {
    struct dxs_ring *r = dxs_ring_get();
    if (!r) return -errno;
    unsigned tail = *r->sq_tail, index = tail & *r->sq_mask;
    struct io_uring_sqe *sqe = &r->sqes[index];
    memset(sqe, 0, sizeof *sqe);
    sqe->opcode = IORING_OP_FSYNC;
    sqe->fd = fd;
    sqe->off = offset;
    sqe->len = length;
    sqe->fsync_flags = datasync ? IORING_FSYNC_DATASYNC : 0;
    sqe->user_data = ++r->sequence;
    r->sq_array[index] = index;
    __atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
    for (;;) {
        unsigned head = *r->cq_head;
        if (head != __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE)) {
            struct io_uring_cqe *cqe = &r->cqes[head & *r->cq_mask];
            int result = cqe->res;
            uint64_t whose = cqe->user_data;
            __atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
            if (whose == r->sequence) return result;
            continue;
        }
        // Submit the entry unless the kernel took it already (an earlier call interrupted).
        unsigned pending = __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE) != tail + 1;
        if (syscall(__NR_io_uring_enter, r->fd, pending, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0 && errno != EINTR) {
            int error = errno;
            if (pending) __atomic_store_n(r->sq_tail, tail, __ATOMIC_RELEASE);  // not submitted: take it back
            return -error;
        }
    }
}
