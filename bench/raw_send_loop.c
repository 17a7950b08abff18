/* raw_send_loop: the bench's reference sender, the least work a paced RTP generator can do.
 *
 * One thread, N connected non-blocking UDP sockets (stream i bound to BASE + 2i), one
 * send() per packet, streams spread evenly over the interval exactly like gossipper's
 * standalone mode, sleeping with clock_nanosleep only when the next packet is more than
 * 1 ms away (the tick of the native core's timing wheel, so both wake about as often).
 * No scheduler, no pause/resume, no skip, nothing received: it cannot do less per
 * packet, so its CPU per million packets is the floor gossipper is compared with.
 *
 * Where it is not like for like (the bench prints this too): it sends a packet as soon
 * as it is less than 1 ms ahead of schedule, so up to 1 ms early and never late but for
 * wake-up delay (the core sends a packet at most 0.5 ms early, 0.9 ms when a busy worker
 * takes its next tick rather than sleep less than 0.4 ms); it is
 * single-threaded, which spares each send() the descriptor reference count a threaded
 * process pays (gossipper's workers avoid it too: a descriptor table of their own in the
 * send() loop, fixed files with io_uring); and with one thread it falls behind once a core cannot keep up (near
 * 400,000 packets/s on the bench's 2-core VM), where it stops sleeping and so spends
 * less per packet while missing its schedule.
 *
 * With THREADS > 1 ("raw-mt" in the bench) stream i belongs to thread i % THREADS, each
 * thread the same loop over its own streams: the reference once one core cannot keep up,
 * paying, like gossipper's workers, the file reference count of a threaded process.
 *
 * Usage: raw_send_loop STREAMS DEST_IP DEST_PORT LOCAL_IP BASE_PORT INTERVAL_MS SECONDS [THREADS]
 * (SECONDS 0: until SIGINT/SIGTERM). Prints "ready" on stderr once the sockets are open,
 * then one JSON line on stdout at the end: packets, errors, timing, CPU of the send loop.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HEADER_BYTES 12
#define PAYLOAD_BYTES 160 /* PCMU at 20 ms */
#define PACKET_BYTES (HEADER_BYTES + PAYLOAD_BYTES)
#define SLEEP_THRESHOLD_NS 1000000
#define NS_PER_S 1000000000LL
#define NS_PER_MS 1000000LL

static volatile sig_atomic_t stopping;

struct sender {
    pthread_t thread;
    long first, step, streams; /* this thread sends streams first, first + step, ... of streams */
    const int *fds;
    uint8_t (*packets)[PACKET_BYTES];
    int64_t start, interval_ns, run_ns;
    uint64_t sent, errors, late, on_time_1ms, on_time_2ms;
    int64_t max_late_ns;
};

static void on_signal(int signum) {
    (void)signum;
    stopping = 1;
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static void sleep_until(int64_t when_ns) {
    struct timespec ts = {.tv_sec = when_ns / NS_PER_S, .tv_nsec = when_ns % NS_PER_S};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR && !stopping) {
    }
}

static double cpu_seconds(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return (double)(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
           (double)(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

static int open_stream(const struct sockaddr_in *local, const struct sockaddr_in *dest) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    int buffer = 1 << 20;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer, sizeof buffer) < 0 ||
        bind(fd, (const struct sockaddr *)local, sizeof *local) < 0 ||
        connect(fd, (const struct sockaddr *)dest, sizeof *dest) < 0) {
        fprintf(stderr, "raw_send_loop: port %u: %s\n", ntohs(local->sin_port), strerror(errno));
        exit(2);
    }
    return fd;
}

static void *send_loop(void *arg) {
    struct sender *t = arg;
    int stop = 0;
    for (uint64_t k = 0; !stop && !stopping; k++) {
        for (long i = t->first; i < t->streams && !stopping; i += t->step) {
            int64_t due = t->start + (int64_t)k * t->interval_ns + i * t->interval_ns / t->streams;
            if (t->run_ns && due - t->start >= t->run_ns) {
                stop = 1;
                break;
            }
            if (due - now_ns() > SLEEP_THRESHOLD_NS)
                sleep_until(due);
            uint8_t *p = t->packets[i];
            uint16_t seq = htons((uint16_t)k);
            uint32_t ts = htonl((uint32_t)(k * PAYLOAD_BYTES));
            memcpy(p + 2, &seq, 2);
            memcpy(p + 4, &ts, 4);
            if (send(t->fds[i], p, PACKET_BYTES, MSG_DONTWAIT) < 0) {
                t->errors++;
                continue;
            }
            t->sent++;
            int64_t lateness = now_ns() - due;
            if (lateness > t->max_late_ns)
                t->max_late_ns = lateness;
            if (lateness > NS_PER_MS)
                t->late++;
            else
                t->on_time_1ms++;
            if (lateness <= 2 * NS_PER_MS)
                t->on_time_2ms++;
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 8 && argc != 9) {
        fprintf(stderr, "usage: %s STREAMS DEST_IP DEST_PORT LOCAL_IP BASE_PORT INTERVAL_MS SECONDS [THREADS]\n",
                argv[0]);
        return 2;
    }
    long streams = atol(argv[1]);
    long threads = argc == 9 ? atol(argv[8]) : 1;
    struct sockaddr_in dest = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[3]))};
    struct sockaddr_in local = {.sin_family = AF_INET};
    if (streams <= 0 || threads <= 0 || threads > streams || inet_pton(AF_INET, argv[2], &dest.sin_addr) != 1 ||
        inet_pton(AF_INET, argv[4], &local.sin_addr) != 1) {
        fprintf(stderr, "raw_send_loop: bad arguments\n");
        return 2;
    }
    int base_port = atoi(argv[5]);
    int64_t interval_ns = atoll(argv[6]) * NS_PER_MS;
    int64_t run_ns = atoll(argv[7]) * NS_PER_S;

    int *fds = calloc((size_t)streams, sizeof *fds);
    uint8_t(*packets)[PACKET_BYTES] = calloc((size_t)streams, PACKET_BYTES);
    struct sender *senders = calloc((size_t)threads, sizeof *senders);
    if (!fds || !packets || !senders) {
        fprintf(stderr, "raw_send_loop: out of memory\n");
        return 2;
    }
    for (long i = 0; i < streams; i++) {
        local.sin_port = htons((uint16_t)(base_port + 2 * i));
        fds[i] = open_stream(&local, &dest);
        uint8_t *p = packets[i];
        p[0] = 0x80; /* V=2 */
        p[1] = 0;    /* PCMU */
        uint32_t ssrc = htonl((uint32_t)(i + 1));
        memcpy(p + 8, &ssrc, 4);
        memset(p + HEADER_BYTES, 0xFF, PAYLOAD_BYTES);
    }
    /* Threads block the stop signals; the main thread takes them and waits. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    fprintf(stderr, "ready\n");

    double cpu_start = cpu_seconds();
    int64_t start = now_ns() + NS_PER_MS;
    for (long t = 0; t < threads; t++) {
        senders[t] = (struct sender){.first = t, .step = threads, .streams = streams, .fds = fds,
                                     .packets = packets, .start = start, .interval_ns = interval_ns,
                                     .run_ns = run_ns};
    }
    if (threads == 1) {
        send_loop(&senders[0]);
    } else {
        pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
        for (long t = 0; t < threads; t++)
            if (pthread_create(&senders[t].thread, NULL, send_loop, &senders[t]) != 0) {
                fprintf(stderr, "raw_send_loop: cannot start thread %ld\n", t);
                return 2;
            }
        pthread_sigmask(SIG_UNBLOCK, &stop_signals, NULL);
        for (long t = 0; t < threads; t++)
            pthread_join(senders[t].thread, NULL);
    }
    double cpu = cpu_seconds() - cpu_start;
    struct sender total = {0};
    for (long t = 0; t < threads; t++) {
        total.sent += senders[t].sent;
        total.errors += senders[t].errors;
        total.late += senders[t].late;
        total.on_time_1ms += senders[t].on_time_1ms;
        total.on_time_2ms += senders[t].on_time_2ms;
        if (senders[t].max_late_ns > total.max_late_ns)
            total.max_late_ns = senders[t].max_late_ns;
    }
    printf("{\"packets\": %llu, \"errors\": %llu, \"late_packets\": %llu, \"on_time_1ms\": %llu, "
           "\"on_time_2ms\": %llu, \"max_late_ms\": %.3f, \"cpu_seconds\": %.3f}\n",
           (unsigned long long)total.sent, (unsigned long long)total.errors, (unsigned long long)total.late,
           (unsigned long long)total.on_time_1ms, (unsigned long long)total.on_time_2ms,
           (double)total.max_late_ns / NS_PER_MS, cpu);
    return 0;
}
