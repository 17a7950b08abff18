/* scalecore.c: the engine of the native scale RTP sender (API in scalecore.h).
 *
 * Why native: half a million packets per second is far beyond what the
 * interpreter can schedule, so a few worker threads (never one per stream) each
 * own a timing wheel of streams with one list per 1 ms tick of their next send
 * time.  A worker sleeps until the next tick that has streams, then sends every
 * packet of the tick, each at most half a tick early or late: one send() per
 * packet in mode "send", or one io_uring_enter() per SUBMIT_CHUNK packets in
 * mode "iouring" (sockets registered as fixed files).  Streams go to the first
 * worker with room in their tick (TICK_BUDGET_NS of sending) rather than evenly,
 * so that a light load wakes one thread, not all of them, and a heavy one does
 * not crowd a tick on one worker.  No interpreter runs in the workers; callers
 * reach a worker only through its mutex, so add/pause/resume/remove work from
 * any thread while the senders keep going.
 *
 * Ownership: a stream in the wheel or in flight belongs to its worker's
 * scheduler (F_SCHEDULED).  remove() waits only for the one packet that may be
 * in flight, so once it returns the worker never touches the socket again.
 *
 * Receiving: the far end (an SBC, or a UAS echoing RTP) sends back to each
 * stream's bound port.  Before it goes to sleep, a worker looks at a share of its
 * streams' sockets with one poll() that does not wait, so that every socket is
 * looked at once per RX_SWEEP_NS, and counts the datagrams of the readable ones
 * (no payload copied) until each is empty; remove() counts what is left.  Not
 * epoll: a socket in an epoll set carries a wait-queue entry, and every packet it
 * sends then pays for a wake-up callback when the kernel frees the packet.
 *
 * ICMP: toward a port with no listener every packet draws an ICMP port
 * unreachable, which the connected socket keeps and hands to its next send
 * (ECONNREFUSED) instead of sending that packet.  The packet goes again at once
 * (retry_after_icmp()) and the report counts apart from send errors, so a
 * closed port costs a second syscall per packet, not every other packet.
 *
 * Everything the workers run is in this one file, static, so the compiler sees
 * the whole send path at once; the binding (_scalecore.c) only calls the sc_*
 * functions at the bottom.
 */
#define _GNU_SOURCE
#include "scalecore.h"

#include <errno.h>
#include <linux/close_range.h>
#include <linux/io_uring.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* The engine's own sizes and periods; the rules a caller may rely on are in scalecore.h. */
#define INLINE_PAYLOAD_BYTES 500 /* payloads up to this size go out from one buffer with send() */
#define BATCH_MAX 256u           /* sends per batch; also the io_uring SQ size */
#define SUBMIT_CHUNK 64u         /* sends per io_uring_enter() */
#define WHEEL_SLOTS 4096u        /* ticks in one turn of the wheel (4.096 s) */
#define WHEEL_WORDS (WHEEL_SLOTS / 64)
#define FAR_TICKS (1 << 30)      /* a key further ahead waits this long, then is looked at again */
#define TICK_BUDGET_NS 800000    /* a worker takes streams into a tick while their sends fit in this; */
                                 /* the rest of the tick is slack for its wake-up and its sweep, and a */
                                 /* fuller worker spares its sibling a wake-up for a few packets */
#define FLOOR_COST_NS 4000       /* what a packet costs a busy worker, at least: 200 streams a tick */
#define COST_SAMPLE_PACKETS 8192 /* packets per new measure of that cost */
#define RX_SWEEP_NS 500000000LL  /* each socket is polled for returning RTP once per this period */
#define IDLE_SWEEP_NS (RX_SWEEP_NS / 8) /* a worker with streams but nothing to send wakes this often */
#define POLL_FDS 256             /* sockets per poll() of the sweep */
#define RECV_BATCH 64            /* datagrams per recvmmsg() */
#define SWEEP_MARGIN_NS 100000   /* a sweep stops this long before the worker's next tick */
#define INFLIGHT_POLL_NS 1000000 /* wait cap while io_uring sends are still outstanding */
#define TIMER_SLACK_NS 10000
#define CHUNK_BITS 10
#define CHUNK_SLOTS (1u << CHUNK_BITS)
#define MAX_SLOTS (1u << 24) /* slots per worker: 24 bits of the handle, beside 8 for the worker */
#define UNLIMITED UINT64_MAX
#define NO_SLOT UINT32_MAX
#define FIXED_FILES_MAX 65536u /* io_uring fixed-file table per worker, at most RLIMIT_NOFILE */
#define CLOSE_QUEUE 256u       /* removed streams' duplicates waiting for their worker to close them */
#define CLOSE_SPIN_NS 50000    /* remove() spins this long for the close before it sleeps */
#define MODE_REASON_BYTES 160
#define NO_SEQ UINT32_MAX
#define NO_SEND UINT32_MAX     /* a ring entry of a send that failed: nothing to echo */
#define RTT_SKEW_US 1000       /* an echo stamped up to this before its send (clock skew) is taken as 0 */
#define RX_CONTROL_BYTES 64    /* room for one SCM_TIMESTAMPNS */
_Static_assert((SEND_RING & (SEND_RING - 1)) == 0 && SEND_RING <= 32768, "the ring is indexed by seq bits");
_Static_assert(DUP_WINDOW == 64, "the duplicate window is one 64-bit word");

enum stream_flag {
    F_LIVE = 1 << 0,
    F_SCHEDULED = 1 << 1, /* in the wheel or in flight: the worker will look at it again */
    F_INFLIGHT = 1 << 2,  /* a packet of it is being sent; its socket is in use */
    F_PAUSED = 1 << 3,
    F_MARKER = 1 << 4, /* the next packet carries the marker bit */
    F_REMOVED = 1 << 5,
    F_CLAIMED = 1 << 6, /* remove() has read the counts: the slot may be reused */
    F_FINISHED = 1 << 7,
    F_FIXED = 1 << 8, /* its socket is in the ring's table of fixed files */
    F_OWN_FD = 1 << 9, /* fd is the worker's own duplicate of the socket (-1 if that failed) */
    F_QUALITY = 1 << 10, /* added with a clock rate: its sends and what comes back keep an rx_state */
};

/* One stream, one cache line.  seq_next/ts_next/next_due_ns describe the next
 * packet; the tick it waits for in the wheel may be later (see complete_op()). */
struct stream {
    int64_t next_due_ns;
    uint64_t packets;
    uint64_t remaining; /* packets still to attempt, UNLIMITED without a limit */
    uint32_t interval_ns;
    uint32_t ts_step;
    uint32_t ts_next;
    uint32_t ssrc;
    int32_t fd;
    uint32_t wheel_next; /* the next stream in the same wheel list */
    uint32_t tick;       /* the tick it waits for in the wheel, modulo 2^32 */
    uint16_t seq_next;
    uint16_t payload_len;
    uint8_t pt;
    uint8_t silence;
    uint16_t flags;
};
_Static_assert(sizeof(struct stream) == 64, "a stream record should stay one cache line");

/* A stream's send errors, ICMP reports and what came back to its socket.  Kept
 * beside the record rather than in it: a successful send never touches them and
 * the record stays one line. */
struct side_counts {
    uint64_t send_errors;
    uint64_t icmp_reports;
    uint64_t received_packets;
    uint64_t received_octets; /* RTP payload octets: datagram length minus the fixed header */
    int32_t caller_fd;        /* the descriptor add() was given, in the caller's table */
};

/* A stream's receive quality (scalecore.h's sc_quality says what each figure
 * means).  Beside the record too, and touched only for a stream added with a
 * clock rate: once per completed send (its slot of the ring of send times) and
 * once per packet that comes back.  No allocation: it lives in the chunk. */
struct rx_state {
    uint32_t clock_rate;
    uint32_t ssrc;          /* the source followed */
    uint32_t bad_seq;       /* the sequence number that would confirm a jump; NO_SEQ: none */
    uint32_t prev_ts;       /* RTP timestamp of the last packet taken */
    uint16_t last_sent_seq; /* of the stream's last completed send: the ring's newest entry */
    uint8_t seen;           /* a packet of the source has come */
    uint8_t sent_any;       /* last_sent_seq is valid */
    int64_t base_ext;       /* extended sequence number of the current run's first packet */
    int64_t max_ext;        /* ... and of its highest */
    uint64_t window;        /* bit i: sequence max_ext - i arrived (duplicates) */
    int64_t prev_arrival_ns;
    uint64_t expected_before; /* packets expected in the runs before a restart or new source */
    uint64_t received, duplicates, reordered, seq_jumps, ssrc_changes;
    int64_t jitter16_ns; /* A.8's estimate scaled by 16, as its integer form keeps it */
    uint64_t jitter_max_ns;
    uint64_t rtt_count, rtt_sum_ns, rtt_min_ns, rtt_max_ns, rtt_unmatched;
};

/* Records live in chunks that never move, so a worker may keep pointers to
 * them while it sends without the lock and while add() grows the table.  The
 * quality parts are the bulk of a chunk (calloc'ed, so its pages stay unmapped
 * while no stream measures quality). */
struct chunk {
    struct stream rec[CHUNK_SLOTS];
    struct side_counts side[CHUNK_SLOTS];
    uint32_t gen[CHUNK_SLOTS]; /* bumped on reuse so stale handles are refused */
    struct rx_state rx[CHUNK_SLOTS];
    uint32_t sent_us[CHUNK_SLOTS][SEND_RING]; /* send time (CLOCK_MONOTONIC us, low 32 bits) by seq */
};

/* One packet being sent; its buffers stay valid until the send completes, which
 * io_uring needs.  A payload that fits follows the header in pkt, so the packet
 * is one buffer for send() (cheaper in the kernel than sendmsg()'s msghdr and
 * iovec); pkt keeps its payload bytes between uses, rewritten only when the
 * next stream's silence byte or length differ.  A longer payload goes by
 * sendmsg() as the header plus the shared silence buffer. */
struct op {
    uint8_t pkt[RTP_HEADER_BYTES + INLINE_PAYLOAD_BYTES];
    uint16_t len;    /* bytes of pkt to send; 0: send msg */
    uint16_t filled; /* payload bytes of pkt that hold fill_byte */
    uint8_t fill_byte;
    uint8_t fixed; /* io_uring: fd is an index in the table of fixed files */
    uint32_t slot; /* NO_SLOT when the op is free */
    int32_t fd;
    int32_t res;  /* bytes sent or -errno */
    int32_t icmp; /* errno of an ICMP report the send met before it was tried again, else 0 */
    int64_t due_ns;
    int64_t sent_ns;   /* when the send returned (or its submission): how late it left */
    int64_t handed_ns; /* just before the send (or its submission): where an echo's round trip starts */
    struct msghdr msg;
    struct iovec iov[2];
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
    uint64_t icmp_reports[ERRNO_SLOTS];
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
    unsigned files;   /* size of the table of fixed files, indexed by descriptor; 0: none */
};

struct worker {
    pthread_mutex_t lock;
    pthread_cond_t wake; /* the worker sleeps on it (CLOCK_MONOTONIC) */
    pthread_cond_t done; /* remove() waits on it for an in-flight packet */
    pthread_t thread;
    int running;
    int stop;
    uint32_t index;
    struct chunk **chunks;
    uint32_t nchunks;
    uint32_t used; /* slots ever handed out */
    uint32_t *free_slots;
    uint32_t nfree;
    uint32_t wheel[WHEEL_SLOTS];      /* each tick's list of streams; NO_SLOT: empty */
    uint32_t wheel_tail[WHEEL_SLOTS]; /* its last stream: lists keep the order streams came in */
    uint32_t wheel_len[WHEEL_SLOTS];  /* streams in each list, read without the lock by pick_worker() */
    uint64_t wheel_busy[WHEEL_WORDS]; /* one bit per non-empty list */
    int64_t tick;                     /* the next tick to send: earlier ones are done */
    int64_t phase_ns;                 /* this worker's ticks begin this long after the millisecond */
    uint32_t waiting;                 /* streams in the wheel */
    int64_t cost_ns;                  /* time spent sending and sweeping since the last measure */
    int64_t setup_ns;                 /* of which duplicating new streams' sockets, a one-off */
    uint64_t cost_packets;            /* packets sent meanwhile */
    uint32_t packet_cost_ns;          /* the last measure per packet, read like wheel_len */
    uint32_t active;                  /* streams added and not removed */
    int64_t sleep_until;              /* INT64_MIN while awake */
    uint32_t sweep_next;              /* the next slot the receive sweep looks at */
    int64_t sweep_started;            /* when the current sweep began at slot 0 */
    int pidfd;          /* the process, to duplicate sockets from; -1: the worker shares its table */
    int own_files;      /* the worker has a descriptor table of its own (set as it starts) */
    int started;        /* own_files is settled */
    int closing[CLOSE_QUEUE]; /* duplicates of removed streams' sockets for the worker to close */
    uint32_t nclosing;        /* also read without the lock, between packets */
    uint64_t closes_asked, closes_done; /* remove() waits until done reaches its number */
    uint8_t *const *silence;
    struct op ops[BATCH_MAX];
    uint32_t free_ops[BATCH_MAX];
    uint32_t nfree_ops;
    uint32_t batch[BATCH_MAX];
    struct ring ring;
    struct counters c;
};

enum engine_state { ENGINE_NEW, ENGINE_RUNNING, ENGINE_STOPPED };

struct sc_engine {
    struct worker *workers;
    uint32_t nworkers;
    pthread_mutex_t control; /* held by start and close throughout, and by add while it looks at these: */
    int state;               /* callers may come from any thread at once */
    uint8_t *silence[256]; /* a payload longer than INLINE_PAYLOAD_BYTES per silence byte, on first use */
    const char *mode;
    char mode_reason[MODE_REASON_BYTES];
    int rt_priority;    /* SCHED_RR priority the workers run at; 0: normal scheduling */
    int rt_error;       /* errno of a refused real-time priority, else 0 */
    int private_tables; /* workers that send through a descriptor table of their own */
};

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

const char *sc_errno_name(int err) {
    const char *name = strerrorname_np(err);
    return name ? name : "unknown errno";
}

static inline struct stream *rec(struct worker *w, uint32_t slot) {
    return &w->chunks[slot >> CHUNK_BITS]->rec[slot & (CHUNK_SLOTS - 1)];
}

static inline struct side_counts *side_of(struct worker *w, uint32_t slot) {
    return &w->chunks[slot >> CHUNK_BITS]->side[slot & (CHUNK_SLOTS - 1)];
}

static inline struct rx_state *rx_of(struct worker *w, uint32_t slot) {
    return &w->chunks[slot >> CHUNK_BITS]->rx[slot & (CHUNK_SLOTS - 1)];
}

static inline uint32_t *ring_of(struct worker *w, uint32_t slot) {
    return w->chunks[slot >> CHUNK_BITS]->sent_us[slot & (CHUNK_SLOTS - 1)];
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

static inline uint16_t get16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }

/* ---- timing wheel (caller holds the worker lock) ------------------------ */

/* Tick t sends the keys from t - 1/2 ms to t + 1/2 ms as soon as t begins (a
 * busy worker: a little before, see RUN_AHEAD_NS).
 * A list is sent from its head and grows at its tail: streams come back in the
 * order they were sent, so a tick sends its earliest keys first and a long
 * batch does not make them later still. */
static inline void link_stream(struct worker *w, uint32_t tick, uint32_t slot) {
    struct stream *s = rec(w, slot);
    uint32_t i = tick & (WHEEL_SLOTS - 1);
    s->tick = tick;
    s->wheel_next = NO_SLOT;
    if (w->wheel[i] == NO_SLOT)
        w->wheel[i] = slot;
    else
        rec(w, w->wheel_tail[i])->wheel_next = slot;
    w->wheel_tail[i] = slot;
    w->wheel_busy[i / 64] |= 1ull << (i % 64);
    __atomic_store_n(&w->wheel_len[i], w->wheel_len[i] + 1, __ATOMIC_RELAXED);
}

/* Workers' ticks are staggered over the millisecond: each burst of sends
 * contends with its siblings' in the kernel (the route's reference count, the
 * receiving socket of an SBC that many streams share), so bursts that begin
 * together cost every packet more. */
static inline int64_t tick_start(const struct worker *w, int64_t tick) { return tick * GRAIN_NS + w->phase_ns; }

static inline int64_t tick_of(const struct worker *w, int64_t ns) { return (ns - w->phase_ns) / GRAIN_NS; }

static inline int64_t nearest_tick(const struct worker *w, int64_t ns) {
    int64_t t = ns - w->phase_ns;
    return t / GRAIN_NS + (t % GRAIN_NS >= HALF_GRAIN_NS);
}

/* File a stream under the tick its key rounds to; a key already past goes to
 * the next tick to be sent. */
static void wheel_add(struct worker *w, int64_t key, uint32_t slot) {
    int64_t start = tick_start(w, w->tick), ahead = 0;
    if (key > start) {
        int64_t gap = key - start;
        ahead = gap / GRAIN_NS + (gap % GRAIN_NS >= HALF_GRAIN_NS);
    }
    link_stream(w, (uint32_t)(w->tick + (ahead < FAR_TICKS ? ahead : FAR_TICKS)), slot);
    w->waiting++;
}

/* The first tick from w->tick on with a non-empty list (whose streams may
 * still wait for a later turn); INT64_MAX when the wheel is empty. */
static int64_t next_busy_tick(const struct worker *w) {
    if (!w->waiting)
        return INT64_MAX;
    uint32_t start = (uint32_t)w->tick & (WHEEL_SLOTS - 1);
    for (uint32_t k = 0; k <= WHEEL_WORDS; k++) {
        uint32_t word = (start / 64 + k) % WHEEL_WORDS;
        uint64_t bits = w->wheel_busy[word];
        if (k == 0)
            bits &= ~0ull << (start % 64);
        else if (k == WHEEL_WORDS)
            bits &= (1ull << (start % 64)) - 1;
        if (bits)
            return w->tick + ((word * 64 + (uint32_t)__builtin_ctzll(bits) - start) & (WHEEL_SLOTS - 1));
    }
    return INT64_MAX;
}

/* Add, waking the worker when the stream's tick comes before it planned to wake. */
static void schedule(struct worker *w, int64_t key, uint32_t slot) {
    wheel_add(w, key, slot);
    if (key - HALF_GRAIN_NS < w->sleep_until)
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

/* ---- the worker's descriptor table ------------------------------------- */

/* In a process with more than one thread, every send() takes and drops a
 * reference on its socket's file, an atomic update of a shared cache line,
 * since another thread could close the descriptor meanwhile; a thread whose
 * descriptor table no other thread uses skips that (bench/rtp_scale.py
 * measures the send path).  So in mode "send" each worker unshares its table as it
 * starts, keeps only the pidfd of its process in it, and sends through its own
 * duplicate of each stream's socket, made on first use: the caller keeps its
 * descriptor, and remove() has the worker close the duplicate and waits for it,
 * so that the port is free once the caller closes its own.  The worker looks
 * for such requests between any two packets, not only between batches: a
 * remove() then waits for one send, not for a whole tick's batch.  A worker
 * that stops closes its whole table before it exits. */

/* A pidfd of this process from which sockets can be duplicated, or -1 where
 * the kernel is too old or a sandbox forbids it (the workers then share). */
static int open_self_pidfd(void) {
    int pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
    if (pidfd < 0)
        return -1;
    int probe = (int)syscall(SYS_pidfd_getfd, pidfd, pidfd, 0);
    if (probe < 0) {
        close(pidfd);
        return -1;
    }
    close(probe);
    return pidfd;
}

/* Give the calling thread a table of its own holding only `keep`.  Returns
 * whether it did; on failure the thread still shares the process's table. */
static int unshare_files(int keep) {
    if (keep == 0)
        return syscall(SYS_close_range, 1u, ~0u, CLOSE_RANGE_UNSHARE) == 0;
    if (syscall(SYS_close_range, 0u, (unsigned)keep - 1, CLOSE_RANGE_UNSHARE) != 0)
        return 0;
    syscall(SYS_close_range, (unsigned)keep + 1, ~0u, 0);
    return 1;
}

/* The descriptor the worker sends and polls a stream's socket with (worker
 * thread only).  A failed duplicate leaves -1, so each send of the stream
 * fails with EBADF and is counted as an error. */
static int own_fd(struct worker *w, struct stream *s) {
    if (w->own_files && !(s->flags & F_OWN_FD)) {
        int64_t start = now_ns();
        s->fd = (int32_t)syscall(SYS_pidfd_getfd, w->pidfd, s->fd, 0);
        s->flags |= F_OWN_FD;
        w->setup_ns += now_ns() - start;
    }
    return s->fd;
}

/* Close the duplicates remove() has queued (worker thread, lock held). */
static void close_queued(struct worker *w) {
    for (uint32_t i = 0; i < w->nclosing; i++)
        close(w->closing[i]);
    __atomic_store_n(&w->nclosing, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&w->closes_done, w->closes_asked, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&w->done);
}

/* Between two sends of a batch (worker thread, lock not held). */
static inline void close_queued_now(struct worker *w) {
    if (__builtin_expect(__atomic_load_n(&w->nclosing, __ATOMIC_RELAXED) == 0, 1))
        return;
    pthread_mutex_lock(&w->lock);
    close_queued(w);
    pthread_mutex_unlock(&w->lock);
}

/* Have the worker close its duplicate of a removed stream's socket, and wait
 * until it has (caller's thread, lock held). */
static void close_own_fd(struct worker *w, struct stream *s) {
    int fd = s->fd;
    s->flags &= ~F_OWN_FD;
    s->fd = -1;
    while (fd >= 0 && w->nclosing == CLOSE_QUEUE && !w->stop)
        pthread_cond_wait(&w->done, &w->lock);
    if (fd < 0 || w->stop)
        return;
    w->closing[w->nclosing] = fd;
    __atomic_store_n(&w->nclosing, w->nclosing + 1, __ATOMIC_RELAXED);
    uint64_t ticket = ++w->closes_asked;
    if (w->sleep_until != INT64_MIN)
        pthread_cond_signal(&w->wake);
    /* The worker gets to it within a send or a wake-up: sooner than this
     * thread would sleep and wake again. */
    pthread_mutex_unlock(&w->lock);
    int64_t give_up = now_ns() + CLOSE_SPIN_NS;
    while (__atomic_load_n(&w->closes_done, __ATOMIC_ACQUIRE) < ticket && now_ns() < give_up)
        __builtin_ia32_pause();
    pthread_mutex_lock(&w->lock);
    while (w->closes_done < ticket && !w->stop)
        pthread_cond_wait(&w->done, &w->lock);
}

/* ---- sending ------------------------------------------------------------ */

static void prepare_op(struct worker *w, struct op *op, struct stream *s, uint32_t slot) {
    op->slot = slot;
    op->fd = own_fd(w, s);
    op->fixed = (s->flags & F_FIXED) != 0;
    op->due_ns = s->next_due_ns;
    op->pkt[0] = RTP_VERSION_BYTE;
    op->pkt[1] = s->pt | ((s->flags & F_MARKER) ? MARKER_BIT : 0);
    put16(op->pkt + 2, s->seq_next);
    put32(op->pkt + 4, s->ts_next);
    put32(op->pkt + 8, s->ssrc);
    if (s->payload_len <= INLINE_PAYLOAD_BYTES) {
        if (op->fill_byte != s->silence || op->filled < s->payload_len) {
            memset(op->pkt + RTP_HEADER_BYTES, s->silence, s->payload_len);
            op->fill_byte = s->silence;
            op->filled = s->payload_len;
        }
        op->len = (uint16_t)(RTP_HEADER_BYTES + s->payload_len);
    } else {
        op->iov[1].iov_base = w->silence[s->silence];
        op->iov[1].iov_len = s->payload_len;
        op->len = 0;
    }
    s->flags = (uint16_t)((s->flags & ~F_MARKER) | F_INFLIGHT);
    s->seq_next++;
    advance(s, 1);
    if (s->remaining != UNLIMITED)
        s->remaining--;
}

/* Put a due stream's packet in the batch, or let the stream go when it was
 * removed or paused meanwhile.  A stream more than one interval behind jumps to
 * its latest due slot instead of catching up in a burst.  The batch is for the
 * ticks begun by `until`, which is `now` but for a worker running ahead. */
static void take_due(struct worker *w, uint32_t slot, int64_t now, int64_t until, uint32_t *n) {
    struct stream *s = rec(w, slot);
    if (s->flags & (F_REMOVED | F_PAUSED)) {
        s->flags &= ~F_SCHEDULED;
        if (s->flags & F_CLAIMED)
            release_slot(w, slot);
        return;
    }
    if (s->next_due_ns > until + HALF_GRAIN_NS) { /* parked FAR_TICKS ahead of a later key */
        wheel_add(w, s->next_due_ns, slot);
        return;
    }
    int64_t behind = now - s->next_due_ns;
    if (behind >= (int64_t)s->interval_ns) {
        uint64_t missed = (uint64_t)behind / s->interval_ns;
        advance(s, missed);
        w->c.skipped += missed;
    }
    uint32_t index = w->free_ops[--w->nfree_ops];
    prepare_op(w, &w->ops[index], s, slot);
    w->batch[(*n)++] = index;
}

/* Take the streams of every tick begun by `until`, tick by tick, until the
 * batch is full; a tick left with due streams is finished by the next batch.
 * After a stall longer than a turn, one turn still visits every list. */
static uint32_t collect_due(struct worker *w, int64_t now, int64_t until) {
    int64_t last = tick_of(w, until);
    if (last - w->tick >= (int64_t)WHEEL_SLOTS)
        w->tick = last - WHEEL_SLOTS + 1;
    uint32_t n = 0;
    while (w->tick <= last && w->nfree_ops) {
        uint32_t i = (uint32_t)w->tick & (WHEEL_SLOTS - 1), slot = w->wheel[i];
        int full = 0;
        w->wheel[i] = NO_SLOT;
        w->wheel_busy[i / 64] &= ~(1ull << (i % 64));
        __atomic_store_n(&w->wheel_len[i], 0, __ATOMIC_RELAXED);
        while (slot != NO_SLOT) {
            struct stream *s = rec(w, slot);
            uint32_t next = s->wheel_next;
            if (next != NO_SLOT) /* a list is a chain of cache misses: start the next one now */
                __builtin_prefetch(rec(w, next), 1);
            int later = (int32_t)(s->tick - (uint32_t)w->tick) > 0; /* waits for a later turn */
            if (later || !w->nfree_ops) {
                full |= !later;
                link_stream(w, s->tick, slot);
            } else {
                w->waiting--;
                take_due(w, slot, now, until, &n);
            }
            slot = next;
        }
        if (full)
            break;
        w->tick++;
    }
    return n;
}

/* A stream's socket reported an ICMP error `err` (worker lock held). */
static void count_icmp_report(struct worker *w, uint32_t slot, int err) {
    side_of(w, slot)->icmp_reports++;
    w->c.icmp_reports[err < ERRNO_SLOTS ? err : 0]++;
}

static void count_result(struct worker *w, struct stream *s, struct op *op) {
    if (__builtin_expect(op->icmp != 0, 0)) {
        count_icmp_report(w, op->slot, op->icmp);
        op->icmp = 0;
    }
    if (op->res < 0) {
        int err = -op->res;
        side_of(w, op->slot)->send_errors++;
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
    if (late > LATE_NS)
        w->c.late++;
    else
        w->c.on_time_1ms++;
    if (late <= LATE_2MS_NS)
        w->c.on_time_2ms++;
}

/* Keep a quality stream's send time under its sequence number, for the echo
 * that may come back (a failed send leaves NO_SEND: nothing went out).  A
 * stream has one packet in flight at most, so sends complete in sequence. */
static void note_sent(struct worker *w, uint32_t slot, const struct op *op) {
    struct rx_state *q = rx_of(w, slot);
    uint16_t seq = get16(op->pkt + 2);
    ring_of(w, slot)[seq & (SEND_RING - 1)] = op->res < 0 ? NO_SEND : (uint32_t)(op->handed_ns / 1000);
    q->last_sent_seq = seq;
    q->sent_any = 1;
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
    if (s->flags & F_QUALITY)
        note_sent(w, slot, op);
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
    wheel_add(w, s->next_due_ns > earliest ? s->next_due_ns : earliest, slot);
    return 0;
}

/* A bare system call: glibc's send() is a cancellation point, which in a
 * threaded process costs two atomic updates of the thread's cancel state per
 * packet, and the workers are never cancelled. */
static long send_op(const struct op *op) {
    if (op->len)
        return syscall(SYS_sendto, op->fd, op->pkt, op->len, MSG_DONTWAIT | MSG_NOSIGNAL, NULL, 0);
    return syscall(SYS_sendmsg, op->fd, &op->msg, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* A failed send whose error is the report of an ICMP error (port unreachable...)
 * that came back for an earlier packet: a connected UDP socket keeps the last
 * such report and hands it to the next send, which returns it instead of
 * sending.  The packet itself was not tried, so it goes again at once, once;
 * complete_op() counts the report and the second attempt's result.  Without
 * this, a stream toward a port with no listener lost every other packet.  Out
 * of line: a send that succeeds pays one test of its result. */
__attribute__((noinline, cold)) static void retry_after_icmp(struct op *op) {
    if (!sc_is_icmp_report(-op->res))
        return;
    op->icmp = -op->res;
    op->handed_ns = now_ns();
    long sent = send_op(op);
    op->res = sent < 0 ? -errno : (int32_t)sent;
}

static void transmit_send(struct worker *w, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) {
        struct op *op = &w->ops[w->batch[i]];
        op->handed_ns = now_ns();
        long sent = send_op(op);
        op->res = sent < 0 ? -errno : (int32_t)sent;
        if (__builtin_expect(sent < 0, 0))
            retry_after_icmp(op);
        op->sent_ns = now_ns();
        close_queued_now(w);
    }
}

/* ---- receive quality (caller holds the worker lock) -------------------- */

/* Begin a run of sequence numbers at `seq`: a new source, or a jump confirmed by
 * the packet after it.  What the previous run expected stays in the total. */
static void start_run(struct rx_state *q, uint16_t seq) {
    if (q->seen)
        q->expected_before += (uint64_t)(q->max_ext - q->base_ext + 1);
    q->base_ext = q->max_ext = seq;
    q->window = 1;
    q->bad_seq = NO_SEQ;
}

enum arrival { ARRIVAL_NEW, ARRIVAL_OLD, ARRIVAL_DUPLICATE, ARRIVAL_IGNORED };

/* Place a sequence number against the highest so far (RFC 3550 A.1 without its
 * probation: the engine knows what it expects, a stream's first packet counts). */
static enum arrival place_seq(struct rx_state *q, uint16_t seq) {
    uint16_t ahead = (uint16_t)(seq - (uint16_t)q->max_ext);
    if (ahead == 0)
        return ARRIVAL_DUPLICATE;
    if (ahead < MAX_DROPOUT) {
        q->max_ext += ahead; /* across a wrap too: the extended number keeps counting */
        q->window = ahead < DUP_WINDOW ? (q->window << ahead) | 1 : 1;
        return ARRIVAL_NEW;
    }
    if (ahead <= 65536 - MAX_MISORDER) { /* a jump: believed once the next packet follows it */
        if (seq == q->bad_seq) {
            q->seq_jumps++;
            start_run(q, seq);
            return ARRIVAL_NEW;
        }
        q->bad_seq = (uint16_t)(seq + 1);
        return ARRIVAL_IGNORED;
    }
    uint32_t behind = 65536u - ahead;
    if (behind < DUP_WINDOW) {
        uint64_t bit = 1ull << behind;
        if (q->window & bit)
            return ARRIVAL_DUPLICATE;
        q->window |= bit;
    }
    return ARRIVAL_OLD;
}

/* An echo of the stream's own packet: its round trip, from the ring of send times. */
static void note_echo(struct rx_state *q, const uint32_t *ring, uint16_t seq, int64_t arrival_ns) {
    uint16_t age = (uint16_t)(q->last_sent_seq - seq);
    uint32_t sent = ring[seq & (SEND_RING - 1)];
    if (!q->sent_any || age >= SEND_RING || sent == NO_SEND) {
        q->rtt_unmatched++;
        return;
    }
    int32_t rtt_us = (int32_t)((uint32_t)(arrival_ns / 1000) - sent);
    if (rtt_us < -RTT_SKEW_US) { /* not ours after all (a stale entry): no sample */
        q->rtt_unmatched++;
        return;
    }
    /* The send's stamp is taken before the send, so only the kernel clock's
     * conversion to the monotonic one can put an echo a little before it: 0. */
    uint64_t rtt_ns = rtt_us > 0 ? (uint64_t)rtt_us * 1000 : 0;
    if (!q->rtt_count || rtt_ns < q->rtt_min_ns)
        q->rtt_min_ns = rtt_ns;
    if (rtt_ns > q->rtt_max_ns)
        q->rtt_max_ns = rtt_ns;
    q->rtt_count++;
    q->rtt_sum_ns += rtt_ns;
}

/* One RTP packet that came back to a quality stream: h is its fixed header. */
static void note_arrival(struct rx_state *q, const uint32_t *ring, uint32_t own_ssrc, const uint8_t *h,
                         int64_t arrival_ns) {
    uint16_t seq = get16(h + 2);
    uint32_t ts = get32(h + 4), ssrc = get32(h + 8);
    int first = !q->seen || ssrc != q->ssrc;
    if (first) {
        if (q->seen)
            q->ssrc_changes++;
        start_run(q, seq);
        q->seen = 1;
        q->ssrc = ssrc;
    } else {
        enum arrival kind = place_seq(q, seq);
        if (kind == ARRIVAL_IGNORED)
            return;
        q->received++;
        if (kind == ARRIVAL_DUPLICATE) { /* no second sample of the same packet's timing */
            q->duplicates++;
            return;
        }
        if (kind == ARRIVAL_OLD)
            q->reordered++;
        /* A.8: the difference of two packets' transit times, in ns here. */
        int64_t d = (arrival_ns - q->prev_arrival_ns) -
                    (int64_t)(int32_t)(ts - q->prev_ts) * 1000000000LL / (int64_t)q->clock_rate;
        if (d < 0)
            d = -d;
        q->jitter16_ns += d - ((q->jitter16_ns + 8) >> 4);
        if ((uint64_t)(q->jitter16_ns >> 4) > q->jitter_max_ns)
            q->jitter_max_ns = (uint64_t)(q->jitter16_ns >> 4);
    }
    if (first)
        q->received++;
    q->prev_arrival_ns = arrival_ns;
    q->prev_ts = ts;
    if (ssrc == own_ssrc)
        note_echo(q, ring, seq, arrival_ns);
}

/* The kernel's arrival stamp of a datagram (CLOCK_REALTIME) on the monotonic
 * clock, or `fallback` when it carries none. */
static int64_t arrival_of(struct msghdr *msg, int64_t realtime_offset, int64_t fallback) {
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(c), sizeof ts);
            return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec - realtime_offset;
        }
    }
    return fallback;
}

/* CLOCK_REALTIME minus CLOCK_MONOTONIC now: what turns a kernel stamp into the
 * clock the sends are stamped with. */
static int64_t realtime_offset(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec - now_ns();
}

/* ---- receiving (caller holds the worker lock) --------------------------- */

/* Count every datagram queued on a stream's socket, up to RECV_BATCH per
 * system call.  Without quality only the length and the version bits matter,
 * so one byte of each is copied and MSG_TRUNC still reports the full length;
 * a quality stream takes the fixed header and the kernel's arrival stamp.  A
 * receive error is a pending error of an earlier send, which this call
 * consumes (an ICMP report counts as one); the drain goes on after one, a
 * second in a row (a socket that can only fail) ends it.
 * Returns 1 when `deadline` came before the socket was empty: the rest waits,
 * as the worker's next tick must not (a peer echoing every stream leaves a
 * sweep's worth of datagrams queued, more than a tick of draining in one go). */
static int drain_socket(struct worker *w, uint32_t slot, int fd, int64_t deadline) {
    struct side_counts *side = side_of(w, slot);
    const struct stream *s = rec(w, slot);
    int quality = (s->flags & F_QUALITY) != 0;
    size_t take = quality ? RTP_HEADER_BYTES : 1;
    uint8_t headers[RECV_BATCH][RTP_HEADER_BYTES];
    union {
        struct cmsghdr align;
        uint8_t bytes[RX_CONTROL_BYTES];
    } control[RECV_BATCH];
    struct iovec iov[RECV_BATCH];
    struct mmsghdr msgs[RECV_BATCH];
    memset(msgs, 0, sizeof msgs);
    for (uint32_t i = 0; i < RECV_BATCH; i++) {
        iov[i].iov_base = headers[i];
        iov[i].iov_len = take;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int64_t offset = quality ? realtime_offset() : 0;
    int failures = 0;
    for (;;) {
        if (quality) {
            for (uint32_t i = 0; i < RECV_BATCH; i++) { /* the kernel shortens it to what it wrote */
                msgs[i].msg_hdr.msg_control = control[i].bytes;
                msgs[i].msg_hdr.msg_controllen = RX_CONTROL_BYTES;
            }
        }
        int got = recvmmsg(fd, msgs, RECV_BATCH, MSG_DONTWAIT | MSG_TRUNC, NULL);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            if (sc_is_icmp_report(errno)) /* an earlier packet's, which no send will meet now */
                count_icmp_report(w, slot, errno);
            if (++failures > 1)
                return 0;
            continue;
        }
        failures = 0;
        int64_t now = quality ? now_ns() : 0;
        for (int i = 0; i < got; i++) {
            uint32_t len = msgs[i].msg_len;
            if (len < RTP_HEADER_BYTES || (headers[i][0] >> 6) != RTP_VERSION) {
                w->c.received_malformed++;
                continue;
            }
            side->received_packets++;
            side->received_octets += len - RTP_HEADER_BYTES;
            w->c.received_packets++;
            w->c.received_octets += len - RTP_HEADER_BYTES;
            if (quality)
                note_arrival(rx_of(w, slot), ring_of(w, slot), s->ssrc, headers[i],
                             arrival_of(&msgs[i].msg_hdr, offset, now));
        }
        if (now_ns() >= deadline)
            return 1;
    }
}

/* A socket that reports an error (the ICMP answer to a send) while its stream
 * still sends is left for now: recv() would swallow the error that the next
 * send reports in the errno table.  Its data is counted on the next arrival. */
static int error_belongs_to_sender(const struct stream *s, uint32_t events) {
    return (events & POLLERR) && s->remaining && !(s->flags & F_PAUSED);
}

/* Poll, without waiting, the sockets the sweep has reached by now: the share
 * of the table that the time since the sweep began is of RX_SWEEP_NS, in whole
 * polls of POLL_FDS sockets but for the table's tail, until `deadline`: a
 * drain stopped there goes on from the same socket next time.  A poll() that
 * does not wait leaves nothing on the sockets' wait queues.  Only live
 * streams' sockets are open; other slots are skipped. */
static void sweep_received(struct worker *w, int64_t now, int64_t deadline) {
    int64_t elapsed = now - w->sweep_started;
    uint32_t target = elapsed >= RX_SWEEP_NS ? w->used : (uint32_t)((uint64_t)w->used * elapsed / RX_SWEEP_NS);
    while (w->sweep_next < target && (target - w->sweep_next >= POLL_FDS || target == w->used)) {
        if (now_ns() >= deadline)
            return;
        struct pollfd fds[POLL_FDS];
        uint32_t first = w->sweep_next, n = target - first < POLL_FDS ? target - first : POLL_FDS;
        for (uint32_t i = 0; i < n; i++) {
            struct stream *s = rec(w, first + i);
            fds[i].fd = (s->flags & (F_LIVE | F_REMOVED)) == F_LIVE ? own_fd(w, s) : -1;
            fds[i].events = POLLIN;
            fds[i].revents = 0;
        }
        int ready = poll(fds, n, 0);
        for (uint32_t i = 0; i < n && ready > 0; i++) {
            if (!fds[i].revents)
                continue;
            ready--;
            if (!error_belongs_to_sender(rec(w, first + i), (uint32_t)fds[i].revents) &&
                drain_socket(w, first + i, fds[i].fd, deadline)) {
                w->sweep_next = first + i; /* the next sweep starts with what is left there */
                return;
            }
        }
        w->sweep_next = first + n;
    }
    if (w->sweep_next >= w->used) {
        w->sweep_next = 0;
        w->sweep_started = now;
    }
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

/* An empty table of fixed files, one entry per possible descriptor: a send on
 * a fixed file skips the descriptor lookup and the reference count that each
 * packet otherwise costs in a threaded process.  Without it (an old kernel, a
 * tight limit) every send names its descriptor. */
static void register_file_table(struct ring *r) {
    struct rlimit limit;
    unsigned files = FIXED_FILES_MAX;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < files)
        files = (unsigned)limit.rlim_cur;
    struct io_uring_rsrc_register table = {.nr = files, .flags = IORING_RSRC_REGISTER_SPARSE};
    if (syscall(__NR_io_uring_register, r->fd, IORING_REGISTER_FILES2, &table, sizeof table) == 0)
        r->files = files;
}

/* Put a socket in the table at its descriptor's index, or (fd -1) take it out;
 * the caller holds the worker lock.  Returns whether the table changed. */
static int ring_set_file(struct ring *r, int index, int fd) {
    if (r->fd < 0 || (unsigned)index >= r->files)
        return 0;
    struct io_uring_files_update update = {.offset = (unsigned)index, .fds = (uint64_t)(uintptr_t)&fd};
    return syscall(__NR_io_uring_register, r->fd, IORING_REGISTER_FILES_UPDATE, &update, 1) == 1;
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
    register_file_table(r);
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

/* Queue ops [first, first + n) of the batch as SQEs and submit them. */
static void submit_ops(struct worker *w, uint32_t first, uint32_t n) {
    struct ring *r = &w->ring;
    unsigned tail = *r->sq_tail, mask = *r->sq_mask;
    for (uint32_t i = first; i < first + n; i++, tail++) {
        struct op *op = &w->ops[w->batch[i]];
        struct io_uring_sqe *sqe = &r->sqes[tail & mask];
        memset(sqe, 0, sizeof *sqe);
        sqe->opcode = op->len ? IORING_OP_SEND : IORING_OP_SENDMSG;
        sqe->fd = op->fd;
        sqe->flags = op->fixed ? IOSQE_FIXED_FILE : 0;
        sqe->addr = op->len ? (uint64_t)(uintptr_t)op->pkt : (uint64_t)(uintptr_t)&op->msg;
        sqe->len = op->len ? op->len : 1;
        /* MSG_DONTWAIT makes a full socket complete at once with EAGAIN
         * instead of parking the send in the kernel. */
        sqe->msg_flags = MSG_DONTWAIT | MSG_NOSIGNAL;
        sqe->user_data = w->batch[i];
        r->sq_array[tail & mask] = tail & mask;
    }
    __atomic_store_n(r->sq_tail, tail, __ATOMIC_RELEASE);
    r->pending += n;
    ring_submit(r, 0);
}

/* The batch goes in submissions of up to SUBMIT_CHUNK sends, each stamped with
 * the times its submission began (an echo's round trip starts there) and
 * returned (its lateness): the kernel sends a submission's SQEs in order, so
 * one stamp for a long batch would make its first packets look later than they
 * left. */
static void transmit_ring(struct worker *w, uint32_t n) {
    for (uint32_t first = 0; first < n; first += SUBMIT_CHUNK) {
        uint32_t k = n - first < SUBMIT_CHUNK ? n - first : SUBMIT_CHUNK;
        int64_t handed = now_ns();
        submit_ops(w, first, k);
        int64_t sent = now_ns();
        for (uint32_t i = first; i < first + k; i++) {
            w->ops[w->batch[i]].handed_ns = handed;
            w->ops[w->batch[i]].sent_ns = sent;
        }
    }
}

/* Reap completions (worker lock held).  Returns 1 when a remove() may wait.  A
 * send that met an ICMP report goes again here (retry_after_icmp()). */
static int reap(struct worker *w) {
    struct ring *r = &w->ring;
    unsigned head = *r->cq_head, mask = *r->cq_mask;
    unsigned tail = __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE);
    int removed = 0;
    for (; head != tail; head++) {
        const struct io_uring_cqe *cqe = &r->cqes[head & mask];
        uint32_t index = (uint32_t)cqe->user_data;
        struct op *op = &w->ops[index];
        op->res = cqe->res;
        if (__builtin_expect(cqe->res < 0, 0)) {
            /* Again by a plain send(), now: a fixed file's index is the socket's
             * descriptor in the process's table, which the ring's worker shares. */
            retry_after_icmp(op);
            if (op->icmp)
                op->sent_ns = now_ns();
        }
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

/* Measure what a packet costs this worker: the time of its batches (sending,
 * reaping, scheduling) and sweeps (counting what comes back) per packet sent,
 * without the wake-ups.  pick_worker() sizes a worker's share of a tick with it,
 * so a slower machine, or streams that also receive, spread sooner. */
static void note_cost(struct worker *w, uint32_t packets, int64_t ns) {
    w->cost_ns += ns - w->setup_ns; /* a start of many streams must not look like a slow worker */
    w->setup_ns = 0;
    w->cost_packets += packets;
    if (w->cost_packets < COST_SAMPLE_PACKETS)
        return;
    __atomic_store_n(&w->packet_cost_ns, (uint32_t)(w->cost_ns / (int64_t)w->cost_packets), __ATOMIC_RELAXED);
    w->cost_ns = 0;
    w->cost_packets = 0;
}

static void *worker_main(void *arg) {
    struct worker *w = arg;
    int use_ring = w->ring.fd >= 0;
    prctl(PR_SET_TIMERSLACK, TIMER_SLACK_NS, 0, 0, 0);
    pthread_mutex_lock(&w->lock);
    w->own_files = w->pidfd >= 0 && unshare_files(w->pidfd);
    w->started = 1;
    pthread_cond_broadcast(&w->done);
    while (!w->stop) {
        if (w->nclosing)
            close_queued(w);
        if (use_ring && ops_in_flight(w)) {
            ring_submit(&w->ring, 0);
            if (reap(w))
                pthread_cond_broadcast(&w->done);
        }
        int64_t now = now_ns(), tick = next_busy_tick(w);
        int64_t next = tick == INT64_MAX ? INT64_MAX : tick_start(w, tick);
        /* A worker that finishes a batch less than RUN_AHEAD_NS before its next
         * tick sends that tick at once rather than sleep: a wake-up costs more
         * than the short sleep saves (in a VM above all, where an idle CPU
         * exits to the host), and the batches of a loaded worker start a little
         * early instead of ever later.  A packet leaves at most MAX_EARLY_NS
         * (RUN_AHEAD_NS + 1/2 ms) early; an idle worker still wakes as its tick begins. */
        if (next > now + RUN_AHEAD_NS) {
            if (ops_in_flight(w) && next > now + INFLIGHT_POLL_NS)
                next = now + INFLIGHT_POLL_NS;
            /* Look for returning RTP until shortly before the next tick; a worker
             * with nothing to send has no tick to keep. */
            sweep_received(w, now, next == INT64_MAX ? INT64_MAX : next - SWEEP_MARGIN_NS);
            note_cost(w, 0, now_ns() - now);
            /* Streams that send nothing now (paused, or done and not yet removed)
             * may still receive: the sweep goes on at its pace. */
            if (next == INT64_MAX && w->active)
                next = now + IDLE_SWEEP_NS;
            sleep_locked(w, next);
            continue;
        }
        uint32_t n = collect_due(w, now, next > now ? next : now);
        if (!n)
            continue;
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
        note_cost(w, n, now_ns() - now);
    }
    if (use_ring)
        drain_ring(w);
    if (w->nclosing)
        close_queued(w);
    pthread_mutex_unlock(&w->lock);
    /* The kernel would release a table of our own as the thread exits, but only
     * after pthread_join() has returned in the thread that stops the core: a port
     * could then still be bound when close() returns.  So close it now. */
    if (w->own_files)
        syscall(SYS_close_range, 0u, ~0u, 0);
    return NULL;
}

/* ---- core lifecycle ----------------------------------------------------- */

static int worker_init(struct worker *w, uint32_t index, int64_t phase_ns, uint8_t *const *silence) {
    memset(w, 0, sizeof *w);
    w->index = index;
    w->silence = silence;
    w->sleep_until = INT64_MIN;
    w->phase_ns = phase_ns;
    w->tick = tick_of(w, now_ns());
    for (uint32_t i = 0; i < WHEEL_SLOTS; i++)
        w->wheel[i] = NO_SLOT;
    w->ring.fd = -1;
    w->pidfd = -1;
    for (uint32_t i = 0; i < BATCH_MAX; i++) {
        struct op *op = &w->ops[i];
        op->slot = NO_SLOT;
        op->iov[0].iov_base = op->pkt;
        op->iov[0].iov_len = RTP_HEADER_BYTES;
        op->msg.msg_iov = op->iov;
        op->msg.msg_iovlen = 2;
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
    return err;
}

static void worker_free(struct worker *w) {
    ring_close(&w->ring);
    for (uint32_t i = 0; i < w->nchunks; i++)
        free(w->chunks[i]);
    free(w->chunks);
    free(w->free_slots);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->wake);
    pthread_cond_destroy(&w->done);
}

/* Join every started worker. */
static void stop_workers(struct sc_engine *e) {
    for (uint32_t i = 0; i < e->nworkers; i++) {
        struct worker *w = &e->workers[i];
        pthread_mutex_lock(&w->lock);
        w->stop = 1;
        pthread_cond_signal(&w->wake);
        pthread_cond_broadcast(&w->done); /* a remove() waiting for a close need not */
        pthread_mutex_unlock(&w->lock);
    }
    for (uint32_t i = 0; i < e->nworkers; i++) {
        struct worker *w = &e->workers[i];
        if (w->running) {
            pthread_join(w->thread, NULL);
            w->running = 0;
        }
    }
}

/* Try io_uring on every worker; on the first failure fall back to send() for
 * all of them and say why. */
static void open_rings(struct sc_engine *e) {
    for (uint32_t i = 0; i < e->nworkers; i++) {
        const char *step;
        int err = ring_open(&e->workers[i].ring, &step);
        if (err) {
            for (uint32_t j = 0; j < i; j++)
                ring_close(&e->workers[j].ring);
            e->mode = "send";
            snprintf(e->mode_reason, sizeof e->mode_reason, "%s failed: %s; send() loop", step,
                     sc_errno_name(-err));
            return;
        }
    }
    e->mode = "iouring";
    snprintf(e->mode_reason, sizeof e->mode_reason, "io_uring batches of up to %u sends per syscall", BATCH_MAX);
}

__attribute__((format(printf, 3, 4))) static int invalid(char *why, size_t why_len, const char *format, ...) {
    if (why && why_len) {
        va_list args;
        va_start(args, format);
        vsnprintf(why, why_len, format, args);
        va_end(args);
    }
    return -EINVAL;
}

int sc_engine_create(int workers, const char *mode, struct sc_engine **engine, char *why, size_t why_len) {
    *engine = NULL;
    if (workers < 1 || workers > MAX_WORKERS)
        return invalid(why, why_len, "workers must be 1..%d, got %d", MAX_WORKERS, workers);
    int want_ring = strcmp(mode, "iouring") == 0;
    if (!want_ring && strcmp(mode, "send") != 0)
        return invalid(why, why_len, "mode must be 'iouring' or 'send', got '%s'", mode);
    struct sc_engine *e = calloc(1, sizeof *e);
    if (!e)
        return -ENOMEM;
    int err = pthread_mutex_init(&e->control, NULL);
    if (err) {
        free(e);
        return -err;
    }
    e->workers = calloc((size_t)workers, sizeof *e->workers);
    if (!e->workers) {
        sc_engine_destroy(e);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < (uint32_t)workers; i++) {
        err = worker_init(&e->workers[i], i, GRAIN_NS * i / workers, e->silence);
        if (err) {
            sc_engine_destroy(e);
            return -err;
        }
        e->nworkers = i + 1;
    }
    if (want_ring) {
        open_rings(e);
    } else {
        e->mode = "send";
        snprintf(e->mode_reason, sizeof e->mode_reason, "send() loop, one syscall per packet (as asked)");
    }
    *engine = e;
    return 0;
}

void sc_engine_destroy(struct sc_engine *e) {
    if (e->workers) {
        stop_workers(e);
        for (uint32_t i = 0; i < e->nworkers; i++)
            worker_free(&e->workers[i]);
        free(e->workers);
    }
    for (size_t i = 0; i < 256; i++)
        free(e->silence[i]);
    pthread_mutex_destroy(&e->control);
    free(e);
}

/* Give every worker the real-time priority asked for, or none of them: a
 * worker left behind would miss its ticks whenever its CPU is busy.  Under
 * normal scheduling a worker waits behind whatever else runs on its CPU, a
 * kernel thread or the other worker, for up to a whole time slice, several
 * ticks; SCHED_RR preempts them at once.  Returns 0 or the errno of the
 * refusal. */
static int raise_priority(struct sc_engine *e, int priority) {
    struct sched_param rt = {.sched_priority = priority}, normal = {.sched_priority = 0};
    for (uint32_t i = 0; i < e->nworkers; i++) {
        int err = pthread_setschedparam(e->workers[i].thread, SCHED_RR, &rt);
        if (err) {
            for (uint32_t j = 0; j < i; j++)
                pthread_setschedparam(e->workers[j].thread, SCHED_OTHER, &normal);
            return err;
        }
    }
    return 0;
}

/* The workers, started with the control lock held. */
static int start_locked(struct sc_engine *e, int rt_priority) {
    if (e->state == ENGINE_RUNNING)
        return 0;
    if (e->state != ENGINE_NEW)
        return -ESHUTDOWN;
    /* Workers block every signal so that the caller's handlers run in its own threads. */
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    int err = 0, pidfd = e->workers[0].ring.fd < 0 ? open_self_pidfd() : -1;
    for (uint32_t i = 0; i < e->nworkers && !err; i++) {
        struct worker *w = &e->workers[i];
        w->pidfd = pidfd;
        err = pthread_create(&w->thread, NULL, worker_main, w);
        if (!err) {
            w->running = 1;
            char name[16];
            snprintf(name, sizeof name, "gsp-rtp-%u", i % 1000u);
            pthread_setname_np(w->thread, name);
        }
    }
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    int private_tables = 0;
    for (uint32_t i = 0; i < e->nworkers; i++) {
        struct worker *w = &e->workers[i];
        pthread_mutex_lock(&w->lock);
        while (w->running && !w->started)
            pthread_cond_wait(&w->done, &w->lock);
        private_tables += w->own_files;
        pthread_mutex_unlock(&w->lock);
    }
    if (pidfd >= 0)
        close(pidfd); /* a worker with a table of its own keeps its copy */
    e->private_tables = private_tables;
    if (err) {
        stop_workers(e);
        e->state = ENGINE_STOPPED;
        return -err;
    }
    e->state = ENGINE_RUNNING;
    if (rt_priority) {
        err = raise_priority(e, rt_priority);
        if (err)
            e->rt_error = err;
        else
            e->rt_priority = rt_priority;
    }
    return 0;
}

int sc_engine_start(struct sc_engine *e, int rt_priority, char *why, size_t why_len) {
    int lowest = sched_get_priority_min(SCHED_RR), highest = sched_get_priority_max(SCHED_RR);
    if (rt_priority && (rt_priority < lowest || rt_priority > highest))
        return invalid(why, why_len, "rt_priority must be 0 or %d..%d, got %d", lowest, highest, rt_priority);
    pthread_mutex_lock(&e->control);
    int err = start_locked(e, rt_priority);
    pthread_mutex_unlock(&e->control);
    return err;
}

void sc_engine_close(struct sc_engine *e) {
    pthread_mutex_lock(&e->control);
    if (e->state != ENGINE_STOPPED) {
        stop_workers(e);
        e->state = ENGINE_STOPPED;
    }
    pthread_mutex_unlock(&e->control);
}

void sc_engine_info(const struct sc_engine *e, struct sc_info *info) {
    *info = (struct sc_info){
        .mode = e->mode,
        .mode_reason = e->mode_reason,
        .rt_priority = e->rt_priority,
        .rt_error = e->rt_error,
        .private_tables = e->private_tables,
    };
}

/* ---- stream commands ---------------------------------------------------- */

/* How many of a worker's streams share a grid of `step` ticks through `tick`:
 * those waiting for any tick of the wheel's turn from `from` on that lies a
 * whole number of steps from it.  A stream waits in the list of its next send
 * only, which for streams added moments apart may be this turn of the grid or
 * the next, so one list alone would miss some.  (Streams waiting for a tick
 * beyond the turn are not seen: an estimate, for streams that start soon.) */
static uint32_t streams_on_grid(struct worker *w, int64_t tick, int64_t step, int64_t from) {
    if (step >= (int64_t)WHEEL_SLOTS)
        return __atomic_load_n(&w->wheel_len[tick & (WHEEL_SLOTS - 1)], __ATOMIC_RELAXED);
    uint32_t n = 0;
    for (int64_t t = from + (tick - from) % step; t < from + (int64_t)WHEEL_SLOTS; t += step)
        n += __atomic_load_n(&w->wheel_len[t & (WHEEL_SLOTS - 1)], __ATOMIC_RELAXED);
    return n;
}

/* The first worker whose streams on the new stream's grid of ticks (the ticks
 * it will be sent in, turn after turn) take less than TICK_BUDGET_NS at its
 * measured cost per packet, else the one that would be done soonest there.  The
 * cost counts as FLOOR_COST_NS at least: measured while a load builds up, it is
 * lower than it will be once the worker is busy and its sibling thread too, and
 * a stream never moves once placed.  The floor is about what the kernel's send
 * of a packet costs on a small VM (bench/rtp_scale.py measures it): with the
 * lower cost seen early on, a large start would put more than a tick's work on
 * the first worker, which would then fall behind while its sibling idled.
 * This bounds what a worker sends at once even when streams come in the order
 * of their start times; and filling workers in turn keeps a light load on one
 * thread, as a worker wakes for every tick it has streams in, however few. */
static uint32_t pick_worker(struct sc_engine *e, int64_t first_due_ns, int64_t interval_ns) {
    int64_t now = now_ns(), due = first_due_ns;
    if (due < now)
        due += ((now - due) / interval_ns + 1) * interval_ns;
    int64_t step = interval_ns / GRAIN_NS + (interval_ns % GRAIN_NS >= HALF_GRAIN_NS);
    uint32_t best = 0;
    uint64_t best_ns = UINT64_MAX;
    for (uint32_t k = 0; k < e->nworkers; k++) {
        struct worker *w = &e->workers[k];
        uint64_t cost = __atomic_load_n(&w->packet_cost_ns, __ATOMIC_RELAXED);
        uint64_t ns = (cost > FLOOR_COST_NS ? cost : FLOOR_COST_NS) *
                      streams_on_grid(w, nearest_tick(w, due), step > 0 ? step : 1, tick_of(w, now));
        if (ns < TICK_BUDGET_NS)
            return k;
        if (ns < best_ns) {
            best = k;
            best_ns = ns;
        }
    }
    return best;
}

static int check_params(const struct sc_stream_params *a, char *why, size_t why_len) {
    const uint8_t *h = a->header;
    if (a->fd < 0)
        return invalid(why, why_len, "fd must be a socket descriptor, got %d", a->fd);
    if (a->header_len != RTP_HEADER_BYTES || h[0] != RTP_VERSION_BYTE)
        return invalid(why, why_len,
                       "header must be a 12-byte RTP header with V=2 and no padding, extension or CSRC");
    if (h[1] & MARKER_BIT)
        return invalid(why, why_len, "header marker bit must be clear (the core sets it)");
    if (a->payload_len < 0 || a->payload_len > MAX_PAYLOAD_BYTES)
        return invalid(why, why_len, "payload_len must be 0..%d, got %d", MAX_PAYLOAD_BYTES, a->payload_len);
    if (a->silence_byte < 0 || a->silence_byte > 255)
        return invalid(why, why_len, "silence_byte must be 0..255, got %d", a->silence_byte);
    if (a->ts_step < 0 || a->ts_step > UINT32_MAX)
        return invalid(why, why_len, "ts_step must fit 32 bits, got %lld", (long long)a->ts_step);
    if (a->interval_ns < 1 || a->interval_ns > UINT32_MAX)
        return invalid(why, why_len, "interval_ns must be 1..%u, got %lld", UINT32_MAX, (long long)a->interval_ns);
    if (a->first_due_ns < 0)
        return invalid(why, why_len, "first_due_ns must be a CLOCK_MONOTONIC time (>= 0), got %lld",
                       (long long)a->first_due_ns);
    if (a->packet_limit < 0)
        return invalid(why, why_len, "packet_limit must be >= 0, got %lld", (long long)a->packet_limit);
    if (a->clock_rate > 1000000000u)
        return invalid(why, why_len, "clock_rate must be 0..1000000000 Hz, got %u", a->clock_rate);
    return 0;
}

static void init_stream(struct stream *s, const struct sc_stream_params *a) {
    const uint8_t *h = a->header;
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
    s->flags = F_LIVE | F_SCHEDULED | F_MARKER | (a->clock_rate ? F_QUALITY : 0);
}

/* A quality stream's state, fresh; its socket stamps each datagram's arrival
 * (refused, the drain's own clock stands in: jitter then includes the sweep's
 * pace, so it is asked for on every add). */
static void init_quality(struct rx_state *q, uint32_t *ring, const struct sc_stream_params *a) {
    memset(q, 0, sizeof *q);
    for (uint32_t i = 0; i < SEND_RING; i++) /* a reused slot's ring holds its last stream's sends */
        ring[i] = NO_SEND;
    q->clock_rate = a->clock_rate;
    q->bad_seq = NO_SEQ;
    int on = 1;
    setsockopt(a->fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
}

static void quality_of(struct worker *w, uint32_t slot, uint64_t handle, struct sc_quality *out) {
    memset(out, 0, sizeof *out);
    out->handle = handle;
    if (!(rec(w, slot)->flags & F_QUALITY))
        return;
    const struct rx_state *q = rx_of(w, slot);
    out->ssrc = q->ssrc;
    out->echo = q->seen && q->ssrc == rec(w, slot)->ssrc;
    out->received = q->received;
    out->expected = q->seen ? q->expected_before + (uint64_t)(q->max_ext - q->base_ext + 1) : 0;
    out->lost = (int64_t)out->expected - (int64_t)q->received;
    out->duplicates = q->duplicates;
    out->reordered = q->reordered;
    out->seq_jumps = q->seq_jumps;
    out->ssrc_changes = q->ssrc_changes;
    out->jitter_ns = (uint64_t)(q->jitter16_ns >> 4);
    out->jitter_max_ns = q->jitter_max_ns;
    out->rtt_count = q->rtt_count;
    out->rtt_sum_ns = q->rtt_sum_ns;
    out->rtt_min_ns = q->rtt_min_ns;
    out->rtt_max_ns = q->rtt_max_ns;
    out->rtt_unmatched = q->rtt_unmatched;
}

static inline uint64_t handle_of(struct worker *w, uint32_t slot) {
    return ((uint64_t)*gen_of(w, slot) << 32) | ((uint64_t)w->index << 24) | slot;
}

/* A handle is the slot's generation << 32 | worker << 24 | slot. */
int sc_engine_add(struct sc_engine *e, const struct sc_stream_params *params, uint64_t *handle, char *why,
                  size_t why_len) {
    int err = check_params(params, why, why_len);
    if (err)
        return err;
    pthread_mutex_lock(&e->control);
    if (e->state == ENGINE_STOPPED) {
        err = -ESHUTDOWN;
    } else if (params->payload_len > INLINE_PAYLOAD_BYTES && !e->silence[params->silence_byte]) {
        uint8_t *payload = malloc(MAX_PAYLOAD_BYTES);
        if (payload) {
            memset(payload, params->silence_byte, MAX_PAYLOAD_BYTES);
            e->silence[params->silence_byte] = payload;
        } else {
            err = -ENOMEM;
        }
    }
    pthread_mutex_unlock(&e->control);
    if (err)
        return err;
    uint32_t wi = pick_worker(e, params->first_due_ns, params->interval_ns), slot = 0, gen = 0;
    struct worker *w = &e->workers[wi];
    pthread_mutex_lock(&w->lock);
    err = alloc_slot(w, &slot);
    if (!err) {
        *side_of(w, slot) = (struct side_counts){.caller_fd = params->fd};
        init_stream(rec(w, slot), params);
        if (params->clock_rate)
            init_quality(rx_of(w, slot), ring_of(w, slot), params);
        if (ring_set_file(&w->ring, params->fd, params->fd))
            rec(w, slot)->flags |= F_FIXED;
        gen = *gen_of(w, slot);
        w->active++;
        schedule(w, params->first_due_ns, slot);
    }
    pthread_mutex_unlock(&w->lock);
    if (!err)
        *handle = ((uint64_t)gen << 32) | ((uint64_t)wi << 24) | slot;
    return err;
}

/* Lock the worker owning a live handle; NULL (nothing locked) when the handle
 * is unknown or removed. */
static struct worker *lookup_locked(struct sc_engine *e, uint64_t handle, uint32_t *slot_out) {
    uint32_t wi = (uint32_t)(handle >> 24) & 0xff, slot = (uint32_t)handle & (MAX_SLOTS - 1);
    if (wi >= e->nworkers)
        return NULL;
    struct worker *w = &e->workers[wi];
    pthread_mutex_lock(&w->lock);
    if (slot < w->used && *gen_of(w, slot) == (uint32_t)(handle >> 32) &&
        (rec(w, slot)->flags & (F_LIVE | F_REMOVED)) == F_LIVE) {
        *slot_out = slot;
        return w;
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int sc_engine_pause(struct sc_engine *e, uint64_t handle) {
    uint32_t slot;
    struct worker *w = lookup_locked(e, handle, &slot);
    if (!w)
        return -ENOENT;
    rec(w, slot)->flags |= F_PAUSED;
    pthread_mutex_unlock(&w->lock);
    return 0;
}

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

int sc_engine_resume(struct sc_engine *e, uint64_t handle) {
    uint32_t slot;
    struct worker *w = lookup_locked(e, handle, &slot);
    if (!w)
        return -ENOENT;
    resume_locked(w, slot);
    pthread_mutex_unlock(&w->lock);
    return 0;
}

int sc_engine_remove(struct sc_engine *e, uint64_t handle, struct sc_sent *sent, struct sc_quality *quality) {
    uint32_t slot;
    struct worker *w = lookup_locked(e, handle, &slot);
    if (!w)
        return -ENOENT;
    struct stream *s = rec(w, slot);
    s->flags |= F_REMOVED;
    while (s->flags & F_INFLIGHT)
        pthread_cond_wait(&w->done, &w->lock);
    struct side_counts *side = side_of(w, slot);
    if (s->flags & F_FIXED)
        ring_set_file(&w->ring, side->caller_fd, -1); /* else the table would keep the socket open */
    if (s->flags & F_OWN_FD)
        close_own_fd(w, s);
    drain_socket(w, slot, side->caller_fd, INT64_MAX); /* what arrived since the worker last looked */
    if (sent)
        *sent = (struct sc_sent){.packets = s->packets, .octets = s->packets * s->payload_len,
                                 .errors = side->send_errors, .icmp_reports = side->icmp_reports};
    if (quality)
        quality_of(w, slot, handle, quality);
    s->flags |= F_CLAIMED;
    w->active--;
    if (!(s->flags & F_SCHEDULED))
        release_slot(w, slot); /* otherwise the worker frees it when it pops it */
    pthread_mutex_unlock(&w->lock);
    return 0;
}

int sc_engine_stream_sent(struct sc_engine *e, uint64_t handle, struct sc_sent *sent) {
    uint32_t slot;
    struct worker *w = lookup_locked(e, handle, &slot);
    if (!w)
        return -ENOENT;
    const struct stream *s = rec(w, slot);
    const struct side_counts *side = side_of(w, slot);
    *sent = (struct sc_sent){.packets = s->packets, .octets = s->packets * s->payload_len,
                             .errors = side->send_errors, .icmp_reports = side->icmp_reports};
    pthread_mutex_unlock(&w->lock);
    return 0;
}

int sc_engine_stream_received(struct sc_engine *e, uint64_t handle, struct sc_received *received) {
    uint32_t slot;
    struct worker *w = lookup_locked(e, handle, &slot);
    if (!w)
        return -ENOENT;
    const struct side_counts *side = side_of(w, slot);
    *received = (struct sc_received){.packets = side->received_packets, .octets = side->received_octets};
    pthread_mutex_unlock(&w->lock);
    return 0;
}

int sc_engine_stream_quality(struct sc_engine *e, uint64_t handle, struct sc_quality *quality) {
    uint32_t slot;
    struct worker *w = lookup_locked(e, handle, &slot);
    if (!w)
        return -ENOENT;
    quality_of(w, slot, handle, quality);
    pthread_mutex_unlock(&w->lock);
    return 0;
}

size_t sc_engine_quality_list(struct sc_engine *e, struct sc_quality *out, size_t room) {
    size_t n = 0;
    for (uint32_t i = 0; i < e->nworkers; i++) {
        struct worker *w = &e->workers[i];
        pthread_mutex_lock(&w->lock);
        for (uint32_t slot = 0; slot < w->used; slot++) {
            const struct stream *s = rec(w, slot);
            if ((s->flags & (F_LIVE | F_REMOVED | F_QUALITY)) != (F_LIVE | F_QUALITY))
                continue;
            if (n < room)
                quality_of(w, slot, handle_of(w, slot), &out[n]);
            n++;
        }
        pthread_mutex_unlock(&w->lock);
    }
    return n;
}

/* ---- totals ------------------------------------------------------------- */

static void add_counters(struct sc_stats *total, const struct counters *c) {
    total->packets += c->packets;
    total->octets += c->octets;
    total->late_packets += c->late;
    total->on_time_1ms += c->on_time_1ms;
    total->on_time_2ms += c->on_time_2ms;
    total->skipped += c->skipped;
    total->finished += c->finished;
    total->received_packets += c->received_packets;
    total->received_octets += c->received_octets;
    total->received_malformed += c->received_malformed;
    if ((uint64_t)c->max_late_ns > total->max_late_ns) /* never negative */
        total->max_late_ns = (uint64_t)c->max_late_ns;
    for (size_t i = 0; i < ERRNO_SLOTS; i++) {
        total->errors[i] += c->errors[i];
        total->icmp_reports[i] += c->icmp_reports[i];
    }
}

void sc_engine_stats(struct sc_engine *e, struct sc_stats *stats) {
    memset(stats, 0, sizeof *stats);
    for (uint32_t i = 0; i < e->nworkers; i++) {
        struct worker *w = &e->workers[i];
        pthread_mutex_lock(&w->lock);
        add_counters(stats, &w->c);
        stats->active += w->active;
        pthread_mutex_unlock(&w->lock);
    }
    stats->threads = e->nworkers;
}
