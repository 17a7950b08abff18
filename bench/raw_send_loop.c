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
 * wake-up delay (the core sends each tick's packets at most 0.5 ms early or late); it is
 * single-threaded, which spares each send() the descriptor reference count a threaded
 * process pays; and with one thread it falls behind once a core cannot keep up (near
 * 400,000 packets/s on the bench's 2-core VM), where it stops sleeping and so spends
 * less per packet while missing its schedule.
 *
 * Usage: raw_send_loop STREAMS DEST_IP DEST_PORT LOCAL_IP BASE_PORT INTERVAL_MS SECONDS
 * (SECONDS 0: until SIGINT/SIGTERM). Prints "ready" on stderr once the sockets are open,
 * then one JSON line on stdout at the end: packets, errors, timing, CPU of the send loop.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
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

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: %s STREAMS DEST_IP DEST_PORT LOCAL_IP BASE_PORT INTERVAL_MS SECONDS\n", argv[0]);
        return 2;
    }
    long streams = atol(argv[1]);
    struct sockaddr_in dest = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[3]))};
    struct sockaddr_in local = {.sin_family = AF_INET};
    if (streams <= 0 || inet_pton(AF_INET, argv[2], &dest.sin_addr) != 1 ||
        inet_pton(AF_INET, argv[4], &local.sin_addr) != 1) {
        fprintf(stderr, "raw_send_loop: bad arguments\n");
        return 2;
    }
    int base_port = atoi(argv[5]);
    int64_t interval_ns = atoll(argv[6]) * NS_PER_MS;
    int64_t run_ns = atoll(argv[7]) * NS_PER_S;

    int *fds = calloc((size_t)streams, sizeof *fds);
    uint8_t(*packets)[PACKET_BYTES] = calloc((size_t)streams, PACKET_BYTES);
    if (!fds || !packets) {
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
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    fprintf(stderr, "ready\n");

    uint64_t sent = 0, errors = 0, late = 0, on_time_1ms = 0, on_time_2ms = 0;
    int64_t max_late_ns = 0;
    double cpu_start = cpu_seconds();
    int64_t start = now_ns() + NS_PER_MS;
    for (uint64_t k = 0; !stopping; k++) {
        for (long i = 0; i < streams && !stopping; i++) {
            int64_t due = start + (int64_t)k * interval_ns + i * interval_ns / streams;
            if (run_ns && due - start >= run_ns) {
                stopping = 1;
                break;
            }
            if (due - now_ns() > SLEEP_THRESHOLD_NS)
                sleep_until(due);
            uint8_t *p = packets[i];
            uint16_t seq = htons((uint16_t)k);
            uint32_t ts = htonl((uint32_t)(k * PAYLOAD_BYTES));
            memcpy(p + 2, &seq, 2);
            memcpy(p + 4, &ts, 4);
            if (send(fds[i], p, PACKET_BYTES, MSG_DONTWAIT) < 0) {
                errors++;
                continue;
            }
            sent++;
            int64_t lateness = now_ns() - due;
            if (lateness > max_late_ns)
                max_late_ns = lateness;
            if (lateness > NS_PER_MS)
                late++;
            else
                on_time_1ms++;
            if (lateness <= 2 * NS_PER_MS)
                on_time_2ms++;
        }
    }
    double cpu = cpu_seconds() - cpu_start;
    printf("{\"packets\": %llu, \"errors\": %llu, \"late_packets\": %llu, \"on_time_1ms\": %llu, "
           "\"on_time_2ms\": %llu, \"max_late_ms\": %.3f, \"cpu_seconds\": %.3f}\n",
           (unsigned long long)sent, (unsigned long long)errors, (unsigned long long)late,
           (unsigned long long)on_time_1ms, (unsigned long long)on_time_2ms, (double)max_late_ns / NS_PER_MS,
           cpu);
    return 0;
}
