/* echo_peer.c: the SBC stand-in of bench/rtp_quality.py, sending every datagram back to
 * where it came from, as fast as one core allows.
 *
 * Why C: at 10,000 streams of 20 ms the generator sends 500,000 packets a second, and an
 * echo that cannot keep up would show as loss in the very figures being measured.  One
 * socket bound to the streams' destination takes up to BATCH datagrams per recvmmsg() and
 * sends them back with one sendmmsg(), each to its source (the stream's own port); the
 * process pins itself to one CPU, so it leaves the other to the generator, and asks for
 * real-time priority above the generator's senders (SCHED_RR 10 by default): otherwise
 * they preempt it on its CPU and the echo falls behind, which would show as loss and
 * round trip that are the echo's, not the generator's.
 *
 *   echo_peer IP PORT CPU [RT_PRIORITY]   (RT_PRIORITY 0: normal scheduling; default 20)
 *
 * It prints "ready" on stderr once bound, and on SIGINT or SIGTERM one line of JSON on
 * stdout: {"received": N, "echoed": N, "send_errors": N, "batches": N}.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 256
#define PACKET_BYTES 2048
#define BUFFER_BYTES (64 << 20) /* a generator's burst of a whole tick must not overflow it */

static volatile sig_atomic_t stop;

static void on_signal(int signum) {
    (void)signum;
    stop = 1;
}

int main(int argc, char **argv) {
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: %s IP PORT CPU [RT_PRIORITY]\n", argv[0]);
        return 2;
    }
    int priority = argc == 5 ? atoi(argv[4]) : 20;
    struct sched_param rt = {.sched_priority = priority};
    if (priority && sched_setscheduler(0, SCHED_RR, &rt) != 0)
        perror("sched_setscheduler (running at normal priority)");
    int cpu = atoi(argv[3]);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0)
        perror("sched_setaffinity (running unpinned)");

    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int size = BUFFER_BYTES;
    /* FORCE: past rmem_max/wmem_max, as root may; the plain option otherwise. */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) != 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &address.sin_addr) != 1 || bind(fd, (struct sockaddr *)&address, sizeof address)) {
        perror("bind");
        return 1;
    }

    struct sigaction action = {.sa_handler = on_signal}; /* no SA_RESTART: the receive returns EINTR */
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);

    static uint8_t packets[BATCH][PACKET_BYTES];
    static struct sockaddr_in sources[BATCH];
    static struct iovec iov[BATCH];
    static struct mmsghdr msgs[BATCH];
    uint64_t received = 0, echoed = 0, send_errors = 0, batches = 0;
    fprintf(stderr, "ready\n");
    fflush(stderr);
    while (!stop) {
        for (int i = 0; i < BATCH; i++) {
            iov[i] = (struct iovec){.iov_base = packets[i], .iov_len = PACKET_BYTES};
            msgs[i].msg_hdr = (struct msghdr){.msg_name = &sources[i], .msg_namelen = sizeof sources[i],
                                              .msg_iov = &iov[i], .msg_iovlen = 1};
        }
        int got = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
        if (got <= 0)
            continue; /* EINTR: a stop signal; anything else: try again */
        received += (uint64_t)got;
        batches++;
        for (int i = 0; i < got; i++)
            iov[i].iov_len = msgs[i].msg_len; /* send back what came, to where it came from */
        int sent = 0;
        while (sent < got) {
            int n = sendmmsg(fd, msgs + sent, (unsigned)(got - sent), 0);
            if (n < 0) {
                if (errno == EINTR && !stop)
                    continue;
                send_errors++; /* skip the one that failed (a stream's port closing at the end) */
                sent++;
                continue;
            }
            sent += n;
            echoed += (uint64_t)n;
        }
    }
    printf("{\"received\": %llu, \"echoed\": %llu, \"send_errors\": %llu, \"batches\": %llu}\n",
           (unsigned long long)received, (unsigned long long)echoed, (unsigned long long)send_errors,
           (unsigned long long)batches);
    return 0;
}
