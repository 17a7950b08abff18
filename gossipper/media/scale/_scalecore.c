/* _scalecore: the native sender of the scale RTP engine.
 *
 * Why native: half a million packets per second is far beyond what the
 * interpreter can schedule, so a few worker threads (never one per stream) each
 * own a min-heap of streams keyed on their next send time.  A worker sleeps
 * until something is due, then sends every due packet: one sendmsg() per packet
 * in mode "send", or one io_uring_enter() per batch in mode "iouring".  Python
 * never runs in the workers; callers reach a worker only through its mutex, so
 * add/pause/resume/remove work from any thread while the senders keep going.
 *
 * Ownership: a stream in the heap or in flight belongs to its worker's
 * scheduler (F_SCHEDULED).  remove() waits only for the one packet that may be
 * in flight, so once it returns the worker never touches the socket again.
 *
 * Receiving: the far end (an SBC, or a UAS echoing RTP) sends back to each
 * stream's bound port.  Each worker watches its streams' sockets with one
 * edge-triggered epoll instance and, just before it goes to sleep, asks it
 * without waiting which sockets have data, then counts their datagrams (no
 * payload copied) until each is empty.  With nothing coming back that costs
 * one epoll_wait() per wake-up; whatever arrives is counted at the latest
 * around the stream's next send, and by remove() for what is left.
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <errno.h>
#include <linux/io_uring.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define RTP_HEADER_BYTES 12
#define RTP_VERSION_BYTE 0x80 /* V=2, no padding, no extension, no CSRC */
#define MARKER_BIT 0x80
#define MAX_PAYLOAD_BYTES (65507 - RTP_HEADER_BYTES) /* largest UDP payload over IPv4 */
#define BATCH_MAX 256u          /* sends per batch; also the io_uring SQ size */
#define EVENTS_MAX 256          /* ready sockets taken per epoll_wait() */
#define GRAIN_NS 250000         /* shortest gap between two batches: lets sends coalesce */
#define INFLIGHT_POLL_NS 1000000 /* wait cap while io_uring sends are still outstanding */
#define TIMER_SLACK_NS 10000
#define NS_PER_MS 1000000LL
#define CHUNK_BITS 10
#define CHUNK_SLOTS (1u << CHUNK_BITS)
#define MAX_SLOTS (1u << 24) /* slots per worker: 24 bits of the handle */
#define MAX_WORKERS 255      /* 8 bits of the handle */
#define ERRNO_SLOTS 256
#define UNLIMITED UINT64_MAX
#define NO_SLOT UINT32_MAX

enum stream_flag {
    F_LIVE = 1 << 0,
    F_SCHEDULED = 1 << 1, /* in the heap or in flight: the worker will look at it again */
    F_INFLIGHT = 1 << 2,  /* a packet of it is being sent; its socket is in use */
    F_PAUSED = 1 << 3,
    F_MARKER = 1 << 4, /* the next packet carries the marker bit */
    F_REMOVED = 1 << 5,
    F_CLAIMED = 1 << 6, /* remove() has read the counts: the slot may be reused */
    F_FINISHED = 1 << 7,
};

/* One stream, one cache line.  seq_next/ts_next/next_due_ns describe the next
 * packet; the heap key may be later than next_due_ns (see reschedule()). */
struct stream {
    int64_t next_due_ns;
    uint64_t packets;
    uint64_t errors;
    uint64_t remaining; /* packets still to attempt, UNLIMITED without a limit */
    uint32_t interval_ns;
    uint32_t ts_step;
    uint32_t ts_next;
    uint32_t ssrc;
    int32_t fd;
    uint16_t seq_next;
    uint16_t payload_len;
    uint8_t pt;
    uint8_t silence;
    uint16_t flags;
};
_Static_assert(sizeof(struct stream) == 64, "a stream record should stay one cache line");

/* What came back to a stream's socket.  Kept beside the record rather than in
 * it: the sender's hot path never reads it and the record stays one line. */
struct received {
    uint64_t packets;
    uint64_t octets; /* RTP payload octets: datagram length minus the fixed header */
};

/* Records live in chunks that never move, so a worker may keep pointers to
 * them while it sends without the lock and while add() grows the table. */
struct chunk {
    struct stream rec[CHUNK_SLOTS];
    struct received rx[CHUNK_SLOTS];
    uint32_t gen[CHUNK_SLOTS]; /* bumped on reuse so stale handles are refused */
};

struct heap_entry {
    int64_t key;
    uint32_t slot;
};

/* One packet being sent.  Its header copy and msghdr stay valid until the
 * send completes, which io_uring needs. */
struct op {
    struct msghdr msg;
    struct iovec iov[2];
    int64_t due_ns;
    int64_t sent_ns;
    uint32_t slot; /* NO_SLOT when the op is free */
    int32_t fd;
    int32_t res; /* bytes sent or -errno */
    uint8_t hdr[RTP_HEADER_BYTES];
};

struct counters {
    uint64_t packets;
    uint64_t octets;
    uint64_t late;
    uint64_t on_time_1ms;
    uint64_t on_time_2ms;
    uint64_t skipped;
    uint64_t finished;
    int64_t max_late_ns;
    uint64_t received_packets;
    uint64_t received_octets;
    uint64_t received_malformed; /* datagrams shorter than a header or not RTP version 2 */
    uint64_t errors[ERRNO_SLOTS];
};

struct ring {
    int fd; /* -1: mode "send" */
    unsigned *sq_tail, *sq_mask, *sq_array;
    unsigned *cq_head, *cq_tail, *cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
    void *sq_map, *cq_map, *sqe_map;
    size_t sq_map_len, cq_map_len, sqe_map_len;
    unsigned pending; /* SQEs queued that the kernel has not taken yet */
};

struct worker {
    pthread_mutex_t lock;
    pthread_cond_t wake; /* the worker sleeps on it (CLOCK_MONOTONIC) */
    pthread_cond_t done; /* remove() waits on it for an in-flight packet */
    pthread_t thread;
    int epfd; /* the streams' sockets, edge-triggered, data = slot */
    int running;
    int stop;
    uint32_t index;
    struct chunk **chunks;
    uint32_t nchunks;
    uint32_t used; /* slots ever handed out */
    uint32_t *free_slots;
    uint32_t nfree;
    struct heap_entry *heap; /* capacity: every slot, so pushes never allocate */
    uint32_t heap_len;
    uint32_t active; /* written under the lock, read without it by pick_worker() */
    int64_t sleep_until; /* INT64_MIN while awake */
    uint8_t *const *silence;
    struct op ops[BATCH_MAX];
    uint32_t free_ops[BATCH_MAX];
    uint32_t nfree_ops;
    uint32_t batch[BATCH_MAX];
    struct ring ring;
    struct counters c;
};

enum core_state { CORE_NEW, CORE_RUNNING, CORE_STOPPING, CORE_STOPPED };

typedef struct {
    PyObject_HEAD
    struct worker *workers;
    uint32_t nworkers;
    int state; /* read and written with the GIL held */
    PyObject *mode;
    PyObject *mode_reason;
    uint8_t *silence[256]; /* one shared payload per silence byte, allocated on first use */
} CoreObject;

/* ---- small helpers ------------------------------------------------------ */

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static struct timespec to_timespec(int64_t ns) {
    struct timespec ts = {.tv_sec = ns / 1000000000LL, .tv_nsec = ns % 1000000000LL};
    return ts;
}

static const char *errno_name(int err) {
    const char *name = strerrorname_np(err);
    return name ? name : "unknown errno";
}

static inline struct stream *rec(struct worker *w, uint32_t slot) {
    return &w->chunks[slot >> CHUNK_BITS]->rec[slot & (CHUNK_SLOTS - 1)];
}

static inline struct received *rx_of(struct worker *w, uint32_t slot) {
    return &w->chunks[slot >> CHUNK_BITS]->rx[slot & (CHUNK_SLOTS - 1)];
}

static inline uint32_t *gen_of(struct worker *w, uint32_t slot) {
    return &w->chunks[slot >> CHUNK_BITS]->gen[slot & (CHUNK_SLOTS - 1)];
}

static inline uint32_t ops_in_flight(const struct worker *w) { return BATCH_MAX - w->nfree_ops; }

static inline void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline uint32_t get32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* ---- heap (caller holds the worker lock) -------------------------------- */

static void heap_push(struct worker *w, int64_t key, uint32_t slot) {
    uint32_t i = w->heap_len++;
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (w->heap[parent].key <= key)
            break;
        w->heap[i] = w->heap[parent];
        i = parent;
    }
    w->heap[i].key = key;
    w->heap[i].slot = slot;
}

static uint32_t heap_pop(struct worker *w) {
    uint32_t top = w->heap[0].slot;
    uint32_t n = --w->heap_len;
    if (n == 0)
        return top;
    struct heap_entry last = w->heap[n];
    uint32_t i = 0;
    for (;;) {
        uint32_t child = 2 * i + 1;
        if (child >= n)
            break;
        if (child + 1 < n && w->heap[child + 1].key < w->heap[child].key)
            child++;
        if (last.key <= w->heap[child].key)
            break;
        w->heap[i] = w->heap[child];
        i = child;
    }
    w->heap[i] = last;
    return top;
}

/* Push, waking the worker when the stream is due before it planned to wake. */
static void schedule(struct worker *w, int64_t key, uint32_t slot) {
    heap_push(w, key, slot);
    if (key < w->sleep_until)
        pthread_cond_signal(&w->wake);
}

/* ---- stream table (caller holds the worker lock) ------------------------ */

/* Allocation happens only here, in the caller's thread, so that the worker
 * never has to handle a failed malloc. */
static int grow_table(struct worker *w) {
    uint32_t capacity = (w->nchunks + 1) * CHUNK_SLOTS;
    if (capacity > MAX_SLOTS)
        return -ENOSPC;
    struct chunk **chunks = realloc(w->chunks, (w->nchunks + 1) * sizeof *chunks);
    if (!chunks)
        return -ENOMEM;
    w->chunks = chunks;
    uint32_t *free_slots = realloc(w->free_slots, capacity * sizeof *free_slots);
    if (!free_slots)
        return -ENOMEM;
    w->free_slots = free_slots;
    struct heap_entry *heap = realloc(w->heap, capacity * sizeof *heap);
    if (!heap)
        return -ENOMEM;
    w->heap = heap;
    struct chunk *chunk = calloc(1, sizeof *chunk);
    if (!chunk)
        return -ENOMEM;
    for (uint32_t i = 0; i < CHUNK_SLOTS; i++)
        chunk->gen[i] = 1;
    w->chunks[w->nchunks++] = chunk;
    return 0;
}

static int alloc_slot(struct worker *w, uint32_t *slot) {
    if (w->nfree) {
        *slot = w->free_slots[--w->nfree];
        return 0;
    }
    if (w->used == w->nchunks * CHUNK_SLOTS) {
        int err = grow_table(w);
        if (err)
            return err;
    }
    *slot = w->used++;
    return 0;
}

static void release_slot(struct worker *w, uint32_t slot) {
    rec(w, slot)->flags = 0;
    uint32_t *gen = gen_of(w, slot);
    *gen = *gen + 1 ? *gen + 1 : 1;
    w->free_slots[w->nfree++] = slot;
}

/* Move a stream's next packet k slots along its grid: the timestamp follows
 * the schedule, the sequence number does not (it counts packets). */
static void advance(struct stream *s, uint64_t k) {
    s->next_due_ns += (int64_t)(k * s->interval_ns);
    s->ts_next += (uint32_t)(k * s->ts_step);
}

/* ---- sending ------------------------------------------------------------ */

static void prepare_op(struct worker *w, struct op *op, struct stream *s, uint32_t slot) {
    op->slot = slot;
    op->fd = s->fd;
    op->due_ns = s->next_due_ns;
    op->hdr[0] = RTP_VERSION_BYTE;
    op->hdr[1] = s->pt | ((s->flags & F_MARKER) ? MARKER_BIT : 0);
    put16(op->hdr + 2, s->seq_next);
    put32(op->hdr + 4, s->ts_next);
    put32(op->hdr + 8, s->ssrc);
    op->iov[1].iov_base = w->silence[s->silence];
    op->iov[1].iov_len = s->payload_len;
    op->msg.msg_iovlen = s->payload_len ? 2 : 1;
    s->flags = (uint16_t)((s->flags & ~F_MARKER) | F_INFLIGHT);
    s->seq_next++;
    advance(s, 1);
    if (s->remaining != UNLIMITED)
        s->remaining--;
}

/* Pop every due stream into the batch.  A stream more than one interval
 * behind jumps to its latest due slot instead of catching up in a burst. */
static uint32_t collect_due(struct worker *w, int64_t now) {
    uint32_t n = 0;
    while (w->heap_len && w->heap[0].key <= now && w->nfree_ops) {
        uint32_t slot = heap_pop(w);
        struct stream *s = rec(w, slot);
        if (s->flags & (F_REMOVED | F_PAUSED)) {
            s->flags &= ~F_SCHEDULED;
            if (s->flags & F_CLAIMED)
                release_slot(w, slot);
            continue;
        }
        int64_t behind = now - s->next_due_ns;
        if (behind >= (int64_t)s->interval_ns) {
            uint64_t missed = (uint64_t)behind / s->interval_ns;
            advance(s, missed);
            w->c.skipped += missed;
        }
        uint32_t index = w->free_ops[--w->nfree_ops];
        prepare_op(w, &w->ops[index], s, slot);
        w->batch[n++] = index;
    }
    return n;
}

static void count_result(struct worker *w, struct stream *s, const struct op *op) {
    if (op->res < 0) {
        int err = -op->res;
        s->errors++;
        w->c.errors[err < ERRNO_SLOTS ? err : 0]++;
        return;
    }
    s->packets++;
    w->c.packets++;
    w->c.octets += s->payload_len;
    int64_t late = op->sent_ns - op->due_ns;
    if (late < 0)
        late = 0;
    if (late > w->c.max_late_ns)
        w->c.max_late_ns = late;
    if (late > NS_PER_MS)
        w->c.late++;
    else
        w->c.on_time_1ms++;
    if (late <= 2 * NS_PER_MS)
        w->c.on_time_2ms++;
}

/* Account a finished send and decide the stream's next turn.  The next
 * packet may not leave sooner than half an interval after this one, so a late
 * packet is followed by a late one rather than by a burst.  Returns 1 when a
 * remove() may be waiting for this stream. */
static int complete_op(struct worker *w, uint32_t index) {
    struct op *op = &w->ops[index];
    uint32_t slot = op->slot;
    struct stream *s = rec(w, slot);
    count_result(w, s, op);
    op->slot = NO_SLOT;
    w->free_ops[w->nfree_ops++] = index;
    s->flags &= ~F_INFLIGHT;
    if (s->remaining == 0 && !(s->flags & F_FINISHED)) {
        s->flags |= F_FINISHED;
        w->c.finished++;
    }
    if (s->flags & F_REMOVED) {
        s->flags &= ~F_SCHEDULED;
        return 1;
    }
    if ((s->flags & F_PAUSED) || s->remaining == 0) {
        s->flags &= ~F_SCHEDULED;
        return 0;
    }
    int64_t earliest = op->sent_ns + s->interval_ns / 2;
    heap_push(w, s->next_due_ns > earliest ? s->next_due_ns : earliest, slot);
    return 0;
}

static void transmit_send(struct worker *w, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) {
        struct op *op = &w->ops[w->batch[i]];
        ssize_t sent = sendmsg(op->fd, &op->msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        op->res = sent < 0 ? -errno : (int32_t)sent;
        op->sent_ns = now_ns();
    }
}

/* ---- receiving (caller holds the worker lock) --------------------------- */

/* Count every datagram queued on a stream's socket.  Only the length and the
 * version bits matter, so one byte is copied and MSG_TRUNC still reports the
 * full length.  A recv() error is a pending error of an earlier send, which
 * this call consumes; the drain goes on after one, a second in a row (a socket
 * that can only fail) ends it. */
static void drain_socket(struct worker *w, uint32_t slot) {
    int fd = rec(w, slot)->fd;
    struct received *rx = rx_of(w, slot);
    int failures = 0;
    for (;;) {
        uint8_t first = 0;
        ssize_t len = recv(fd, &first, 1, MSG_DONTWAIT | MSG_TRUNC);
        if (len < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK || ++failures > 1)
                return;
            continue;
        }
        failures = 0;
        if (len < RTP_HEADER_BYTES || (first >> 6) != 2) {
            w->c.received_malformed++;
            continue;
        }
        rx->packets++;
        rx->octets += (uint64_t)(len - RTP_HEADER_BYTES);
        w->c.received_packets++;
        w->c.received_octets += (uint64_t)(len - RTP_HEADER_BYTES);
    }
}

/* A socket that reports an error (the ICMP answer to a send) while its stream
 * still sends is left for now: recv() would swallow the error that the next
 * send reports in the errno table.  Its data is counted on the next arrival. */
static int error_belongs_to_sender(const struct stream *s, uint32_t events) {
    return (events & EPOLLERR) && s->remaining && !(s->flags & F_PAUSED);
}

/* Drain every socket that became readable; never waits. */
static void poll_received(struct worker *w) {
    struct epoll_event events[EVENTS_MAX];
    int n;
    do {
        n = epoll_wait(w->epfd, events, EVENTS_MAX, 0);
        for (int i = 0; i < n; i++) {
            uint32_t slot = events[i].data.u32;
            if (!error_belongs_to_sender(rec(w, slot), events[i].events))
                drain_socket(w, slot);
        }
    } while (n == EVENTS_MAX || (n < 0 && errno == EINTR));
}

/* ---- io_uring ----------------------------------------------------------- */

static void ring_close(struct ring *r) {
    if (r->sqe_map)
        munmap(r->sqe_map, r->sqe_map_len);
    if (r->cq_map && r->cq_map != r->sq_map)
        munmap(r->cq_map, r->cq_map_len);
    if (r->sq_map)
        munmap(r->sq_map, r->sq_map_len);
    if (r->fd >= 0)
        close(r->fd);
    memset(r, 0, sizeof *r);
    r->fd = -1;
}

static void *map_ring(int fd, size_t len, off_t offset) {
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, offset);
    return p == MAP_FAILED ? NULL : p;
}

/* Returns 0 or -errno, with *step naming the call that failed. */
static int ring_open(struct ring *r, const char **step) {
    /* SUBMIT_ALL: one failed send must not stop the rest of the batch; older
     * kernels without these flags get a plain ring. */
    static const unsigned flag_sets[] = {IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN, 0};
    struct io_uring_params p;
    int fd = -1;
    for (size_t i = 0; i < sizeof flag_sets / sizeof flag_sets[0]; i++) {
        memset(&p, 0, sizeof p);
        p.flags = flag_sets[i];
        fd = (int)syscall(__NR_io_uring_setup, BATCH_MAX, &p);
        if (fd >= 0 || errno != EINVAL)
            break;
    }
    *step = "io_uring_setup";
    if (fd < 0)
        return -errno;
    memset(r, 0, sizeof *r);
    r->fd = fd;
    r->sq_map_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    r->cq_map_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    int single = (p.features & IORING_FEAT_SINGLE_MMAP) != 0;
    if (single) {
        if (r->cq_map_len > r->sq_map_len)
            r->sq_map_len = r->cq_map_len;
        r->cq_map_len = r->sq_map_len;
    }
    r->sqe_map_len = p.sq_entries * sizeof(struct io_uring_sqe);
    *step = "mmap of the io_uring rings";
    r->sq_map = map_ring(fd, r->sq_map_len, IORING_OFF_SQ_RING);
    r->cq_map = single ? r->sq_map : map_ring(fd, r->cq_map_len, IORING_OFF_CQ_RING);
    r->sqe_map = map_ring(fd, r->sqe_map_len, IORING_OFF_SQES);
    if (!r->sq_map || !r->cq_map || !r->sqe_map) {
        int err = errno;
        ring_close(r);
        return -err;
    }
    char *sq = r->sq_map, *cq = r->cq_map;
    r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
    r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
    r->sq_array = (unsigned *)(sq + p.sq_off.array);
    r->cq_head = (unsigned *)(cq + p.cq_off.head);
    r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
    r->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
    r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    r->sqes = r->sqe_map;
    return 0;
}

/* Hand queued SQEs to the kernel, waiting for min_complete completions.
 * Returns 0 or -errno; a refusal (EAGAIN/EBUSY under memory pressure) leaves
 * the SQEs queued for the next round. */
static int ring_submit(struct ring *r, unsigned min_complete) {
    while (r->pending || min_complete) {
        long taken = syscall(__NR_io_uring_enter, r->fd, r->pending, min_complete, IORING_ENTER_GETEVENTS,
                             NULL, 0);
        if (taken < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        r->pending -= (unsigned)taken;
        min_complete = 0;
    }
    return 0;
}

static void transmit_ring(struct worker *w, uint32_t n) {
    struct ring *r = &w->ring;
    unsigned tail = *r->sq_tail, mask = *r->sq_mask;
    for (uint32_t i = 0; i < n; i++, tail++) {
        struct op *op = &w->ops[w->batch[i]];
        struct io_uring_sqe *sqe = &r->sqes[tail & mask];
        memset(sqe, 0, sizeof *sqe);
        sqe->opcode = IORING_OP_SENDMSG;
        sqe->fd = op->fd;
        sqe->addr = (uint64_t)(uintptr_t)&op->msg;
        sqe->len = 1;
        /* MSG_DONTWAIT makes a full socket complete at once with EAGAIN
         * instead of parking the send in the kernel. */
        sqe->msg_flags = MSG_DONTWAIT | MSG_NOSIGNAL;
        sqe->user_data = w->batch[i];
        r->sq_array[tail & mask] = tail & mask;
    }
    __atomic_store_n(r->sq_tail, tail, __ATOMIC_RELEASE);
    r->pending += n;
    ring_submit(r, 0);
    int64_t sent = now_ns();
    for (uint32_t i = 0; i < n; i++)
        w->ops[w->batch[i]].sent_ns = sent;
}

/* Reap completions (worker lock held).  Returns 1 when a remove() may wait. */
static int reap(struct worker *w) {
    struct ring *r = &w->ring;
    unsigned head = *r->cq_head, mask = *r->cq_mask;
    unsigned tail = __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE);
    int removed = 0;
    for (; head != tail; head++) {
        const struct io_uring_cqe *cqe = &r->cqes[head & mask];
        uint32_t index = (uint32_t)cqe->user_data;
        w->ops[index].res = cqe->res;
        removed |= complete_op(w, index);
    }
    __atomic_store_n(r->cq_head, head, __ATOMIC_RELEASE);
    return removed;
}

/* At exit: wait for the last completions so no remove() waits forever; if the
 * ring itself fails, the outstanding sends are counted as failed with its errno. */
static void drain_ring(struct worker *w) {
    int removed = 0;
    while (ops_in_flight(w)) {
        int err = ring_submit(&w->ring, 1);
        removed |= reap(w);
        if (!err)
            continue;
        for (uint32_t i = 0; i < BATCH_MAX; i++) {
            if (w->ops[i].slot != NO_SLOT) {
                w->ops[i].res = err;
                removed |= complete_op(w, i);
            }
        }
    }
    if (removed)
        pthread_cond_broadcast(&w->done);
}

/* ---- the worker thread -------------------------------------------------- */

static void sleep_locked(struct worker *w, int64_t until) {
    w->sleep_until = until;
    if (until == INT64_MAX) {
        pthread_cond_wait(&w->wake, &w->lock);
    } else {
        struct timespec ts = to_timespec(until);
        pthread_cond_timedwait(&w->wake, &w->lock, &ts);
    }
    w->sleep_until = INT64_MIN;
}

static void *worker_main(void *arg) {
    struct worker *w = arg;
    int use_ring = w->ring.fd >= 0;
    int64_t last_batch = INT64_MIN / 2;
    int backlog = 0;
    prctl(PR_SET_TIMERSLACK, TIMER_SLACK_NS, 0, 0, 0);
    pthread_mutex_lock(&w->lock);
    while (!w->stop) {
        if (use_ring && ops_in_flight(w)) {
            ring_submit(&w->ring, 0);
            if (reap(w))
                pthread_cond_broadcast(&w->done);
        }
        int64_t now = now_ns();
        int64_t next = w->heap_len ? w->heap[0].key : INT64_MAX;
        if (!backlog && next < last_batch + GRAIN_NS)
            next = last_batch + GRAIN_NS;
        if (next > now) {
            if (ops_in_flight(w) && next > now + INFLIGHT_POLL_NS)
                next = now + INFLIGHT_POLL_NS;
            poll_received(w);
            sleep_locked(w, next);
            continue;
        }
        uint32_t n = collect_due(w, now);
        backlog = n && !w->nfree_ops && w->heap_len && w->heap[0].key <= now;
        if (!n)
            continue;
        last_batch = now;
        pthread_mutex_unlock(&w->lock);
        if (use_ring)
            transmit_ring(w, n);
        else
            transmit_send(w, n);
        pthread_mutex_lock(&w->lock);
        int removed = 0;
        if (use_ring) {
            removed = reap(w);
        } else {
            for (uint32_t i = 0; i < n; i++)
                removed |= complete_op(w, w->batch[i]);
        }
        if (removed)
            pthread_cond_broadcast(&w->done);
    }
    if (use_ring)
        drain_ring(w);
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* ---- core lifecycle ----------------------------------------------------- */

static int worker_init(struct worker *w, uint32_t index, uint8_t *const *silence) {
    memset(w, 0, sizeof *w);
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (w->epfd < 0)
        return errno;
    w->index = index;
    w->silence = silence;
    w->sleep_until = INT64_MIN;
    w->ring.fd = -1;
    for (uint32_t i = 0; i < BATCH_MAX; i++) {
        struct op *op = &w->ops[i];
        op->slot = NO_SLOT;
        op->iov[0].iov_base = op->hdr;
        op->iov[0].iov_len = RTP_HEADER_BYTES;
        op->msg.msg_iov = op->iov;
        w->free_ops[i] = BATCH_MAX - 1 - i;
    }
    w->nfree_ops = BATCH_MAX;
    pthread_condattr_t attr;
    int err = pthread_condattr_init(&attr);
    if (!err)
        err = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (!err)
        err = pthread_cond_init(&w->wake, &attr);
    pthread_condattr_destroy(&attr);
    if (!err)
        err = pthread_cond_init(&w->done, NULL);
    if (!err)
        err = pthread_mutex_init(&w->lock, NULL);
    if (err)
        close(w->epfd);
    return err;
}

static void worker_free(struct worker *w) {
    ring_close(&w->ring);
    close(w->epfd);
    for (uint32_t i = 0; i < w->nchunks; i++)
        free(w->chunks[i]);
    free(w->chunks);
    free(w->free_slots);
    free(w->heap);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->wake);
    pthread_cond_destroy(&w->done);
}

/* Join every started worker.  Safe without the GIL: touches no Python object. */
static void stop_workers(CoreObject *self) {
    for (uint32_t i = 0; i < self->nworkers; i++) {
        struct worker *w = &self->workers[i];
        pthread_mutex_lock(&w->lock);
        w->stop = 1;
        pthread_cond_signal(&w->wake);
        pthread_mutex_unlock(&w->lock);
    }
    for (uint32_t i = 0; i < self->nworkers; i++) {
        struct worker *w = &self->workers[i];
        if (w->running) {
            pthread_join(w->thread, NULL);
            w->running = 0;
        }
    }
}

/* Try io_uring on every worker; on the first failure fall back to send() for
 * all of them and say why. */
static PyObject *open_rings(CoreObject *self, PyObject **reason) {
    for (uint32_t i = 0; i < self->nworkers; i++) {
        const char *step;
        int err = ring_open(&self->workers[i].ring, &step);
        if (err) {
            for (uint32_t j = 0; j < i; j++)
                ring_close(&self->workers[j].ring);
            *reason = PyUnicode_FromFormat("%s failed: %s; send() loop", step, errno_name(-err));
            return PyUnicode_FromString("send");
        }
    }
    *reason = PyUnicode_FromFormat("io_uring batches of up to %u sends per syscall", BATCH_MAX);
    return PyUnicode_FromString("iouring");
}

static void Core_dealloc(CoreObject *self) {
    if (self->workers) {
        stop_workers(self);
        for (uint32_t i = 0; i < self->nworkers; i++)
            worker_free(&self->workers[i]);
        free(self->workers);
    }
    for (size_t i = 0; i < 256; i++)
        free(self->silence[i]);
    Py_XDECREF(self->mode);
    Py_XDECREF(self->mode_reason);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Core_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"workers", "mode", NULL};
    int workers;
    const char *mode;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "is", kwlist, &workers, &mode))
        return NULL;
    if (workers < 1 || workers > MAX_WORKERS)
        return PyErr_Format(PyExc_ValueError, "workers must be 1..%d, got %d", MAX_WORKERS, workers);
    int want_ring = strcmp(mode, "iouring") == 0;
    if (!want_ring && strcmp(mode, "send") != 0)
        return PyErr_Format(PyExc_ValueError, "mode must be 'iouring' or 'send', got '%s'", mode);
    CoreObject *self = (CoreObject *)type->tp_alloc(type, 0);
    if (!self)
        return NULL;
    self->workers = calloc((size_t)workers, sizeof *self->workers);
    if (!self->workers) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    for (uint32_t i = 0; i < (uint32_t)workers; i++) {
        int err = worker_init(&self->workers[i], i, self->silence);
        if (err) {
            Py_DECREF(self);
            errno = err;
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        self->nworkers = i + 1;
    }
    if (want_ring) {
        self->mode = open_rings(self, &self->mode_reason);
    } else {
        self->mode = PyUnicode_FromString("send");
        self->mode_reason = PyUnicode_FromString("send() loop, one syscall per packet (as asked)");
    }
    if (!self->mode || !self->mode_reason) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static PyObject *Core_start(CoreObject *self, PyObject *Py_UNUSED(ignored)) {
    if (self->state == CORE_RUNNING)
        Py_RETURN_NONE;
    if (self->state != CORE_NEW) {
        PyErr_SetString(PyExc_RuntimeError, "scale core is stopped; it cannot start again");
        return NULL;
    }
    /* Workers block every signal so that Python's handlers run in its own threads. */
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    int err = 0;
    for (uint32_t i = 0; i < self->nworkers && !err; i++) {
        struct worker *w = &self->workers[i];
        err = pthread_create(&w->thread, NULL, worker_main, w);
        if (!err) {
            w->running = 1;
            char name[16];
            snprintf(name, sizeof name, "gsp-rtp-%u", i % 1000u);
            pthread_setname_np(w->thread, name);
        }
    }
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    if (err) {
        Py_BEGIN_ALLOW_THREADS
        stop_workers(self);
        Py_END_ALLOW_THREADS
        self->state = CORE_STOPPED;
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    self->state = CORE_RUNNING;
    Py_RETURN_NONE;
}

static PyObject *Core_stop(CoreObject *self, PyObject *Py_UNUSED(ignored)) {
    if (self->state == CORE_STOPPING || self->state == CORE_STOPPED)
        Py_RETURN_NONE;
    self->state = CORE_STOPPING;
    Py_BEGIN_ALLOW_THREADS
    stop_workers(self);
    Py_END_ALLOW_THREADS
    self->state = CORE_STOPPED;
    Py_RETURN_NONE;
}

/* ---- stream commands ---------------------------------------------------- */

static uint32_t pick_worker(CoreObject *self) {
    uint32_t best = 0, best_active = UINT32_MAX;
    for (uint32_t i = 0; i < self->nworkers; i++) {
        uint32_t active = __atomic_load_n(&self->workers[i].active, __ATOMIC_RELAXED);
        if (active < best_active) {
            best = i;
            best_active = active;
        }
    }
    return best;
}

struct stream_args {
    int fd;
    Py_buffer header;
    int payload_len;
    int silence_byte;
    long long ts_step;
    long long interval_ns;
    long long first_due_ns;
    long long packet_limit;
};

static int check_stream_args(const struct stream_args *a) {
    const uint8_t *h = a->header.buf;
    if (a->fd < 0)
        PyErr_Format(PyExc_ValueError, "fd must be a socket descriptor, got %d", a->fd);
    else if (a->header.len != RTP_HEADER_BYTES || h[0] != RTP_VERSION_BYTE)
        PyErr_SetString(PyExc_ValueError,
                        "header must be a 12-byte RTP header with V=2 and no padding, extension or CSRC");
    else if (h[1] & MARKER_BIT)
        PyErr_SetString(PyExc_ValueError, "header marker bit must be clear (the core sets it)");
    else if (a->payload_len < 0 || a->payload_len > MAX_PAYLOAD_BYTES)
        PyErr_Format(PyExc_ValueError, "payload_len must be 0..%d, got %d", MAX_PAYLOAD_BYTES, a->payload_len);
    else if (a->silence_byte < 0 || a->silence_byte > 255)
        PyErr_Format(PyExc_ValueError, "silence_byte must be 0..255, got %d", a->silence_byte);
    else if (a->ts_step < 0 || a->ts_step > UINT32_MAX)
        PyErr_Format(PyExc_ValueError, "ts_step must fit 32 bits, got %lld", a->ts_step);
    else if (a->interval_ns < 1 || a->interval_ns > UINT32_MAX)
        PyErr_Format(PyExc_ValueError, "interval_ns must be 1..%u, got %lld", UINT32_MAX, a->interval_ns);
    else if (a->packet_limit < 0)
        PyErr_Format(PyExc_ValueError, "packet_limit must be >= 0, got %lld", a->packet_limit);
    else
        return 0;
    return -1;
}

static void init_stream(struct stream *s, const struct stream_args *a) {
    const uint8_t *h = a->header.buf;
    memset(s, 0, sizeof *s);
    s->next_due_ns = a->first_due_ns;
    s->remaining = a->packet_limit ? (uint64_t)a->packet_limit : UNLIMITED;
    s->interval_ns = (uint32_t)a->interval_ns;
    s->ts_step = (uint32_t)a->ts_step;
    s->ts_next = get32(h + 4);
    s->ssrc = get32(h + 8);
    s->fd = a->fd;
    s->seq_next = (uint16_t)((h[2] << 8) | h[3]);
    s->payload_len = (uint16_t)a->payload_len;
    s->pt = h[1];
    s->silence = (uint8_t)a->silence_byte;
    s->flags = F_LIVE | F_SCHEDULED | F_MARKER;
}

static PyObject *Core_add(CoreObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"fd",          "header",      "payload_len",  "silence_byte",
                             "ts_step",     "interval_ns", "first_due_ns", "packet_limit", NULL};
    struct stream_args a;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "iy*iiLLLL", kwlist, &a.fd, &a.header, &a.payload_len,
                                     &a.silence_byte, &a.ts_step, &a.interval_ns, &a.first_due_ns,
                                     &a.packet_limit))
        return NULL;
    PyObject *result = NULL;
    if (check_stream_args(&a))
        goto out;
    if (self->state == CORE_STOPPING || self->state == CORE_STOPPED) {
        PyErr_SetString(PyExc_RuntimeError, "scale core is stopped");
        goto out;
    }
    if (!self->silence[a.silence_byte]) {
        uint8_t *payload = malloc(MAX_PAYLOAD_BYTES);
        if (!payload) {
            PyErr_NoMemory();
            goto out;
        }
        memset(payload, a.silence_byte, MAX_PAYLOAD_BYTES);
        self->silence[a.silence_byte] = payload;
    }
    uint32_t wi = pick_worker(self), slot = 0, gen = 0;
    struct worker *w = &self->workers[wi];
    int err;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&w->lock);
    err = alloc_slot(w, &slot);
    if (!err) {
        struct epoll_event watch = {.events = EPOLLIN | EPOLLET, .data.u32 = slot};
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, a.fd, &watch)) {
            err = -errno;
            release_slot(w, slot);
        }
    }
    if (!err) {
        *rx_of(w, slot) = (struct received){0};
        init_stream(rec(w, slot), &a);
        gen = *gen_of(w, slot);
        __atomic_store_n(&w->active, w->active + 1, __ATOMIC_RELAXED);
        schedule(w, a.first_due_ns, slot);
    }
    pthread_mutex_unlock(&w->lock);
    Py_END_ALLOW_THREADS
    if (err == -ENOMEM) {
        PyErr_NoMemory();
    } else if (err) {
        errno = -err;
        PyErr_SetFromErrno(PyExc_OSError);
    } else {
        result = PyLong_FromUnsignedLongLong(((uint64_t)gen << 32) | ((uint64_t)wi << 24) | slot);
    }
out:
    PyBuffer_Release(&a.header);
    return result;
}

/* Lock the worker owning a live handle; NULL (nothing locked) when the handle
 * is unknown or removed.  Called without the GIL. */
static struct worker *lookup_locked(CoreObject *self, uint64_t handle, uint32_t *slot_out) {
    uint32_t wi = (uint32_t)(handle >> 24) & 0xff, slot = (uint32_t)handle & (MAX_SLOTS - 1);
    if (wi >= self->nworkers)
        return NULL;
    struct worker *w = &self->workers[wi];
    pthread_mutex_lock(&w->lock);
    if (slot < w->used && *gen_of(w, slot) == (uint32_t)(handle >> 32) &&
        (rec(w, slot)->flags & (F_LIVE | F_REMOVED)) == F_LIVE) {
        *slot_out = slot;
        return w;
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

static PyObject *unknown_handle(unsigned long long handle) {
    return PyErr_Format(PyExc_ValueError, "unknown or removed stream handle %llu", handle);
}

static int parse_handle(PyObject *arg, unsigned long long *handle) {
    *handle = PyLong_AsUnsignedLongLong(arg);
    if (!PyErr_Occurred())
        return 0;
    if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
        PyErr_Clear();
        unknown_handle(0);
    }
    return -1;
}

enum command { CMD_PAUSE, CMD_RESUME };

/* Resume puts the stream back on its own grid at the first slot not in the
 * past; the timestamp advances by the slots it skipped while paused. */
static void resume_locked(struct worker *w, uint32_t slot) {
    struct stream *s = rec(w, slot);
    if (!(s->flags & F_PAUSED))
        return;
    s->flags = (uint16_t)((s->flags & ~F_PAUSED) | F_MARKER);
    if ((s->flags & F_SCHEDULED) || s->remaining == 0)
        return;
    int64_t now = now_ns();
    if (s->next_due_ns < now)
        advance(s, ((uint64_t)(now - s->next_due_ns) + s->interval_ns - 1) / s->interval_ns);
    s->flags |= F_SCHEDULED;
    schedule(w, s->next_due_ns, slot);
}

static PyObject *run_command(CoreObject *self, PyObject *arg, enum command command) {
    unsigned long long handle;
    if (parse_handle(arg, &handle))
        return NULL;
    struct worker *w;
    Py_BEGIN_ALLOW_THREADS
    uint32_t slot;
    w = lookup_locked(self, handle, &slot);
    if (w) {
        if (command == CMD_PAUSE)
            rec(w, slot)->flags |= F_PAUSED;
        else
            resume_locked(w, slot);
        pthread_mutex_unlock(&w->lock);
    }
    Py_END_ALLOW_THREADS
    if (!w)
        return unknown_handle(handle);
    Py_RETURN_NONE;
}

static PyObject *Core_pause(CoreObject *self, PyObject *arg) { return run_command(self, arg, CMD_PAUSE); }

static PyObject *Core_resume(CoreObject *self, PyObject *arg) { return run_command(self, arg, CMD_RESUME); }

static PyObject *stream_tuple(uint64_t packets, uint64_t octets, uint64_t errors) {
    return Py_BuildValue("(KKK)", (unsigned long long)packets, (unsigned long long)octets,
                         (unsigned long long)errors);
}

static PyObject *Core_remove(CoreObject *self, PyObject *arg) {
    unsigned long long handle;
    if (parse_handle(arg, &handle))
        return NULL;
    struct worker *w;
    uint64_t packets = 0, octets = 0, errors = 0;
    Py_BEGIN_ALLOW_THREADS
    uint32_t slot;
    w = lookup_locked(self, handle, &slot);
    if (w) {
        struct stream *s = rec(w, slot);
        s->flags |= F_REMOVED;
        while (s->flags & F_INFLIGHT)
            pthread_cond_wait(&w->done, &w->lock);
        epoll_ctl(w->epfd, EPOLL_CTL_DEL, s->fd, NULL);
        drain_socket(w, slot); /* what arrived since the worker last looked */
        packets = s->packets;
        octets = s->packets * s->payload_len;
        errors = s->errors;
        s->flags |= F_CLAIMED;
        __atomic_store_n(&w->active, w->active - 1, __ATOMIC_RELAXED);
        if (!(s->flags & F_SCHEDULED))
            release_slot(w, slot); /* otherwise the worker frees it when it pops it */
        pthread_mutex_unlock(&w->lock);
    }
    Py_END_ALLOW_THREADS
    if (!w)
        return unknown_handle(handle);
    return stream_tuple(packets, octets, errors);
}

enum stream_view { VIEW_SENT, VIEW_RECEIVED };

static PyObject *read_stream(CoreObject *self, PyObject *arg, enum stream_view view) {
    unsigned long long handle;
    if (parse_handle(arg, &handle))
        return NULL;
    struct worker *w;
    uint64_t packets = 0, octets = 0, errors = 0;
    Py_BEGIN_ALLOW_THREADS
    uint32_t slot;
    w = lookup_locked(self, handle, &slot);
    if (w) {
        const struct stream *s = rec(w, slot);
        const struct received *rx = rx_of(w, slot);
        packets = view == VIEW_SENT ? s->packets : rx->packets;
        octets = view == VIEW_SENT ? s->packets * s->payload_len : rx->octets;
        errors = s->errors;
        pthread_mutex_unlock(&w->lock);
    }
    Py_END_ALLOW_THREADS
    if (!w)
        return unknown_handle(handle);
    if (view == VIEW_RECEIVED)
        return Py_BuildValue("(KK)", (unsigned long long)packets, (unsigned long long)octets);
    return stream_tuple(packets, octets, errors);
}

static PyObject *Core_stream_stats(CoreObject *self, PyObject *arg) {
    return read_stream(self, arg, VIEW_SENT);
}

static PyObject *Core_stream_received(CoreObject *self, PyObject *arg) {
    return read_stream(self, arg, VIEW_RECEIVED);
}

/* ---- totals ------------------------------------------------------------- */

static void add_counters(struct counters *total, const struct counters *c) {
    total->packets += c->packets;
    total->octets += c->octets;
    total->late += c->late;
    total->on_time_1ms += c->on_time_1ms;
    total->on_time_2ms += c->on_time_2ms;
    total->skipped += c->skipped;
    total->finished += c->finished;
    total->received_packets += c->received_packets;
    total->received_octets += c->received_octets;
    total->received_malformed += c->received_malformed;
    if (c->max_late_ns > total->max_late_ns)
        total->max_late_ns = c->max_late_ns;
    for (size_t i = 0; i < ERRNO_SLOTS; i++)
        total->errors[i] += c->errors[i];
}

static int set_count(PyObject *dict, const char *key, unsigned long long value) {
    PyObject *number = PyLong_FromUnsignedLongLong(value);
    if (!number)
        return -1;
    int err = PyDict_SetItemString(dict, key, number);
    Py_DECREF(number);
    return err;
}

static PyObject *errors_dict(const struct counters *total) {
    PyObject *errors = PyDict_New();
    for (int i = 0; errors && i < ERRNO_SLOTS; i++) {
        if (!total->errors[i])
            continue;
        PyObject *key = PyLong_FromLong(i), *count = PyLong_FromUnsignedLongLong(total->errors[i]);
        if (!key || !count || PyDict_SetItem(errors, key, count))
            Py_CLEAR(errors);
        Py_XDECREF(key);
        Py_XDECREF(count);
    }
    return errors;
}

static PyObject *Core_stats(CoreObject *self, PyObject *Py_UNUSED(ignored)) {
    struct counters *total = calloc(1, sizeof *total);
    if (!total)
        return PyErr_NoMemory();
    uint64_t active = 0;
    Py_BEGIN_ALLOW_THREADS
    for (uint32_t i = 0; i < self->nworkers; i++) {
        struct worker *w = &self->workers[i];
        pthread_mutex_lock(&w->lock);
        add_counters(total, &w->c);
        active += w->active;
        pthread_mutex_unlock(&w->lock);
    }
    Py_END_ALLOW_THREADS
    PyObject *dict = PyDict_New();
    PyObject *errors = errors_dict(total);
    int failed = !dict || !errors || set_count(dict, "packets", total->packets) ||
                 set_count(dict, "octets", total->octets) || set_count(dict, "late_packets", total->late) ||
                 set_count(dict, "on_time_1ms", total->on_time_1ms) ||
                 set_count(dict, "on_time_2ms", total->on_time_2ms) ||
                 set_count(dict, "max_late_ns", (unsigned long long)total->max_late_ns) ||
                 set_count(dict, "skipped", total->skipped) || PyDict_SetItemString(dict, "errors", errors) ||
                 set_count(dict, "active", active) || set_count(dict, "finished", total->finished) ||
                 set_count(dict, "threads", self->nworkers) ||
                 set_count(dict, "received_packets", total->received_packets) ||
                 set_count(dict, "received_octets", total->received_octets) ||
                 set_count(dict, "received_malformed", total->received_malformed);
    free(total);
    Py_XDECREF(errors);
    if (failed)
        Py_CLEAR(dict);
    return dict;
}

/* ---- type and module ---------------------------------------------------- */

static PyMethodDef Core_methods[] = {
    {"start", (PyCFunction)Core_start, METH_NOARGS, "Start the worker threads."},
    {"stop", (PyCFunction)Core_stop, METH_NOARGS, "Stop and join the workers (idempotent)."},
    {"add", (PyCFunction)(void (*)(void))Core_add, METH_VARARGS | METH_KEYWORDS,
     "add(fd, header, payload_len, silence_byte, ts_step, interval_ns, first_due_ns, packet_limit)"
     " -> handle"},
    {"pause", (PyCFunction)Core_pause, METH_O, "Stop sending a stream until resume()."},
    {"resume", (PyCFunction)Core_resume, METH_O, "Send again from the next slot of the stream's grid."},
    {"remove", (PyCFunction)Core_remove, METH_O,
     "Stop a stream for good -> (packets, octets, errors) sent; what it received stays in stats()."
     " The socket is free on return."},
    {"stream_stats", (PyCFunction)Core_stream_stats, METH_O,
     "(packets, octets, errors) sent by a live stream."},
    {"stream_received", (PyCFunction)Core_stream_received, METH_O,
     "(packets, payload octets) of RTP counted so far on a live stream's socket."},
    {"stats", (PyCFunction)Core_stats, METH_NOARGS, "Totals of every stream, removed ones included."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Core_members[] = {
    {"mode", T_OBJECT_EX, offsetof(CoreObject, mode), READONLY, "'iouring' or 'send': what actually runs"},
    {"mode_reason", T_OBJECT_EX, offsetof(CoreObject, mode_reason), READONLY, "why this mode runs"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gossipper.media.scale._scalecore.Core",
    .tp_doc = "Core(workers, mode): worker threads that send synthetic RTP streams on schedule"
               " and count the RTP that comes back to their sockets.",
    .tp_basicsize = sizeof(CoreObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Core_new,
    .tp_dealloc = (destructor)Core_dealloc,
    .tp_methods = Core_methods,
    .tp_members = Core_members,
};

static struct PyModuleDef scalecore_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_scalecore",
    .m_doc = "Native sender threads of the scale RTP engine.",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__scalecore(void) {
    if (PyType_Ready(&CoreType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&scalecore_module);
    if (!module)
        return NULL;
    Py_INCREF(&CoreType);
    if (PyModule_AddObject(module, "Core", (PyObject *)&CoreType) < 0) {
        Py_DECREF(&CoreType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
