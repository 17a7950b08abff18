/* scalecore.h: the native engine of the scale RTP sender, as a plain C API.
 *
 * The engine (scalecore.c) knows nothing of Python: _scalecore.c binds it to the
 * interpreter, and any C program may drive it the same way.  An engine owns a
 * fixed number of worker threads; streams are added to it with the descriptor
 * of a connected UDP socket, which the caller keeps and closes after
 * sc_engine_remove() has returned.
 *
 * Errors: every call that can fail returns 0 or a negative errno:
 *   -EINVAL     an argument out of range; `why` (when given) says which, in words
 *   -ESHUTDOWN  the engine has been closed (or a start after a close)
 *   -ENOENT     a stream handle that is unknown or already removed
 *   -ENOMEM     out of memory; anything else comes from the system call that failed.
 *
 * Threads: once created, an engine may be used from any thread at once; only
 * sc_engine_destroy() must be the last call.  The calls that wait (start, close,
 * add, pause, resume, remove, the stream reads, stats) take a worker's lock, so a
 * caller holding an interpreter lock should drop it around them.
 */
#ifndef GOSSIPPER_SCALECORE_H
#define GOSSIPPER_SCALECORE_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

/* ---- the contract shared with the Python side ----------------------------
 * gossipper/media/scale/api.py holds these names with the same values, and the
 * pure-Python backend uses them from there; the binding exposes each as an
 * attribute of _scalecore and tests/media/scale/test_native_core.py checks that
 * they agree.  The rules they bound are written out in api.py's ScaleEngine. */
#define NS_PER_MS 1000000LL
#define RTP_HEADER_BYTES 12       /* the fixed header: no CSRC, no extension */
#define RTP_VERSION 2
#define MAX_WORKERS 255           /* sender threads of one engine: 8 bits of a stream handle */
#define LATE_NS NS_PER_MS         /* sent more than this after its slot, a packet is late */
#define LATE_2MS_NS (2 * NS_PER_MS) /* ... and more than this, not even on time within 2 ms */
#define EARLY_NS HALF_GRAIN_NS    /* a packet leaves at most this long before its slot... */
#define MAX_EARLY_NS (EARLY_NS + RUN_AHEAD_NS) /* ...but up to this under load, on a worker running ahead */

/* ---- how the workers keep that schedule ------------------------------------ */
#define GRAIN_NS NS_PER_MS           /* one tick of a worker's timing wheel: a slot rounds to the */
#define HALF_GRAIN_NS (GRAIN_NS / 2) /* nearest tick, sent as it begins: up to half a tick early */
#define RUN_AHEAD_NS 400000          /* a busy worker takes its next tick this long before it begins */

/* ---- limits of a stream's parameters --------------------------------------- */
#define RTP_VERSION_BYTE (RTP_VERSION << 6) /* first header byte: V=2, no padding, extension or CSRC */
#define MARKER_BIT 0x80
#define MAX_PAYLOAD_BYTES (65507 - RTP_HEADER_BYTES) /* largest UDP payload over IPv4 */
#define ERRNO_SLOTS 256 /* send errors are counted per errno below this; larger ones under 0 */
#define SC_WHY_BYTES 256 /* room for the sentence an -EINVAL leaves in `why` */

/* The errnos a UDP socket reports an ICMP error that came back for one of its packets
 * with (port and host unreachable, parameter problem): counted apart from send errors,
 * see sc_stats.icmp_reports.  api.py's ICMP_REPORT_ERRNOS holds the same. */
static inline int sc_is_icmp_report(int err) {
    return err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH || err == EHOSTDOWN || err == EPROTO;
}

struct sc_engine; /* opaque */

/* One stream: its socket, its first packet's header and its schedule.  Slot k is
 * due at first_due_ns + k * interval_ns (CLOCK_MONOTONIC); its packet carries the
 * header's timestamp + k * ts_step and the header's sequence number + the packets
 * attempted before it (a skipped slot sends nothing and counts no sequence number). */
struct sc_stream_params {
    int fd;                /* a connected UDP socket; the caller keeps it open until removal */
    const uint8_t *header; /* RTP_HEADER_BYTES: V=2, marker clear (the engine sets it) */
    size_t header_len;
    int payload_len;       /* 0..MAX_PAYLOAD_BYTES octets, each silence_byte */
    int silence_byte;      /* 0..255 */
    int64_t ts_step;       /* timestamp units per slot, 0..2^32-1 */
    int64_t interval_ns;   /* 1..2^32-1 */
    int64_t first_due_ns;  /* >= 0 */
    int64_t packet_limit;  /* sends to attempt in all; 0: no limit */
    uint32_t clock_rate;   /* RTP clock of the codec (Hz); 0: no receive quality for this stream */
};

/* What a stream has sent (octets: RTP payload octets, as RTCP's sender count). */
struct sc_sent {
    uint64_t packets;
    uint64_t octets;
    uint64_t errors;       /* failed sends */
    uint64_t icmp_reports; /* ICMP errors its socket reported (see sc_stats.icmp_reports) */
};

/* What came back to a stream's socket (octets: RTP payload octets). */
struct sc_received {
    uint64_t packets;
    uint64_t octets;
};

/* Receive quality of one stream (kept only for streams added with a clock_rate).
 *
 * What comes back to a stream's port is followed as RFC 3550 appendix A follows a
 * source: the first SSRC seen is the source; another SSRC restarts the count for the
 * new one (ssrc_changes).  Sequence numbers are extended over wraps (A.1, no
 * probation); a jump of more than MAX_DROPOUT ahead or MAX_MISORDER behind is taken
 * only when the next packet follows it (then the sequence restarts there: seq_jumps),
 * the lone packet of the jump being ignored.
 *   expected  = highest extended sequence - first + 1, over every restart
 *   received  = packets of the source taken, duplicates included (as A.3 counts)
 *   lost      = expected - received: negative when duplicates outnumber losses
 *   duplicates, reordered: packets older than the highest seen, told apart by a
 *               bitmap of the last DUP_WINDOW sequence numbers (an older one counts as
 *               reordered, never as a duplicate)
 *   jitter    = A.8's interarrival estimate, in ns rather than timestamp units (the
 *               clock rate converts the timestamp difference), from kernel arrival
 *               stamps (SO_TIMESTAMPNS), so the sweep's delay does not count
 *   rtt       = for an echo (the source is the stream's own SSRC), arrival minus the
 *               time the send of the packet with that sequence number began, from a
 *               ring of the last SEND_RING sends; an older one counts in rtt_unmatched. */
#define MAX_DROPOUT 3000
#define MAX_MISORDER 100
#define DUP_WINDOW 64
#define SEND_RING 128
struct sc_quality {
    uint64_t handle;
    uint32_t ssrc;  /* the source followed (valid when received > 0) */
    int echo;       /* the source is the stream's own SSRC: an echo, rtt measured */
    uint64_t received;
    uint64_t expected;
    int64_t lost;
    uint64_t duplicates;
    uint64_t reordered;
    uint64_t seq_jumps;
    uint64_t ssrc_changes;
    uint64_t jitter_ns;     /* the current estimate */
    uint64_t jitter_max_ns; /* its largest value so far */
    uint64_t rtt_count;
    uint64_t rtt_sum_ns;
    uint64_t rtt_min_ns;
    uint64_t rtt_max_ns;
    uint64_t rtt_unmatched; /* echoed packets whose send time had left the ring */
};

/* Totals of every stream an engine ever had, removed ones included. */
struct sc_stats {
    uint64_t packets;
    uint64_t octets;
    uint64_t late_packets; /* sent more than LATE_NS after their slot */
    uint64_t on_time_1ms;  /* the others */
    uint64_t on_time_2ms;  /* sent at most LATE_2MS_NS after their slot */
    uint64_t max_late_ns;
    uint64_t skipped;      /* slots a stream more than an interval behind sent nothing in */
    uint64_t active;       /* streams added and not removed */
    uint64_t finished;     /* streams that reached their packet limit */
    uint64_t threads;      /* worker threads */
    uint64_t received_packets;
    uint64_t received_octets;
    uint64_t received_malformed; /* datagrams shorter than a header or not RTP_VERSION */
    uint64_t errors[ERRNO_SLOTS]; /* failed sends by errno */
    /* ICMP errors (port unreachable and the like) the streams' sockets reported, by the
     * errno they report as.  A connected UDP socket keeps the last one that came back
     * and fails its next send with it instead of sending: the engine counts that report
     * here and sends the same packet again at once, which counts as sent or, failing
     * too, in errors.  A report met while counting what came back counts here too. */
    uint64_t icmp_reports[ERRNO_SLOTS];
};

/* How an engine sends, and how its workers run once started. */
struct sc_info {
    const char *mode;        /* "iouring" or "send": what actually runs */
    const char *mode_reason; /* why this mode runs, a sentence */
    int rt_priority;         /* SCHED_RR priority of the workers after start; 0: normal scheduling */
    int rt_error;            /* errno of a refused real-time priority, else 0 */
    int private_tables;      /* workers that send through a descriptor table of their own */
};

/* An engine of `workers` (1..MAX_WORKERS) threads, not started.  mode "iouring"
 * asks for io_uring batches, falling back to "send" (one send() per packet) for
 * every worker when any ring cannot be set up; sc_info says which runs and why. */
int sc_engine_create(int workers, const char *mode, struct sc_engine **engine, char *why, size_t why_len);

/* Start the workers (once; again while running does nothing).  rt_priority 0, or
 * a SCHED_RR priority the workers ask for: refused, they all run normally and
 * sc_info's rt_error says why. */
int sc_engine_start(struct sc_engine *engine, int rt_priority, char *why, size_t why_len);

/* Stop and join the workers; idempotent.  Streams can no longer be added; the
 * others calls go on working, and once it returns no worker holds a socket. */
void sc_engine_close(struct sc_engine *engine);

/* Close the engine if need be and free it. */
void sc_engine_destroy(struct sc_engine *engine);

void sc_engine_info(const struct sc_engine *engine, struct sc_info *info);

/* Add a stream, sent from its first slot on with the marker bit; *handle names it. */
int sc_engine_add(struct sc_engine *engine, const struct sc_stream_params *params, uint64_t *handle, char *why,
                  size_t why_len);

/* Stop sending a stream until resumed (paused already: nothing changes). */
int sc_engine_pause(struct sc_engine *engine, uint64_t handle);

/* Send a paused stream again from the first slot of its grid not in the past, with
 * the marker bit and the timestamp advanced over the slots it missed. */
int sc_engine_resume(struct sc_engine *engine, uint64_t handle);

/* Stop a stream for good and count what arrived on its socket since the worker
 * last looked; *sent and *quality (each may be NULL) get its totals, quality's
 * all zero for a stream added without a clock_rate.  Once it returns, no worker
 * sends on, polls or holds the socket any more. */
int sc_engine_remove(struct sc_engine *engine, uint64_t handle, struct sc_sent *sent, struct sc_quality *quality);

int sc_engine_stream_sent(struct sc_engine *engine, uint64_t handle, struct sc_sent *sent);

int sc_engine_stream_received(struct sc_engine *engine, uint64_t handle, struct sc_received *received);

/* A live stream's receive quality so far (all zero without a clock_rate). */
int sc_engine_stream_quality(struct sc_engine *engine, uint64_t handle, struct sc_quality *quality);

/* The receive quality of every live stream added with a clock_rate, up to `room`
 * of them into out; returns how many there are (more than room: call again). */
size_t sc_engine_quality_list(struct sc_engine *engine, struct sc_quality *out, size_t room);

void sc_engine_stats(struct sc_engine *engine, struct sc_stats *stats);

/* The errno's name ("EPERM"), or "unknown errno". */
const char *sc_errno_name(int err);

#endif
