// pipe_bw.c - IPC floor between two processes: bulk throughput and
// small-message round-trip latency, over pipes and AF_UNIX socketpairs.
//
// Build: cc -O2 -Wall -o pipe_bw pipe_bw.c
// Usage: pipe_bw [-s total_MiB] [-r rounds] [-k pingpong_iters] [-a none|same|split]
//                [-o rt -m msg_bytes | -o bw -c chunk_bytes]
//   -o rt / -o bw (added for plugwarden-bench): measure only a pipe-pair
//       round trip of msg_bytes, or only pipe(64KiB) throughput with
//       chunk_bytes writes, and print one line "RESULT <median>" (us per
//       round trip, or GB/s).
//   -a: CPU affinity: none (default, scheduler decides), same (both
//       processes on CPU 0), split (parent CPU 0, child CPU 1)
//
// Throughput: parent forks a reader that read()s into a buffer of the same
// size as the writer's chunk until EOF; the parent write()s total bytes,
// closes, waits for the reader.  GB/s = total / (time from first write to
// reader reaped), 1 GB = 1e9 bytes.  Median/min/max over rounds.
// Latency: parent sends an N-byte message, child echoes it back; us per
// round trip, median/min/max over rounds.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *aff = "none";
static void pin(int parent) {
    int cpu;
    if (!strcmp(aff, "same")) cpu = 0;
    else if (!strcmp(aff, "split")) cpu = parent ? 0 : 1;
    else return;
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    if (sched_setaffinity(0, sizeof(s), &s)) { perror("sched_setaffinity"); exit(1); }
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void write_all(int fd, const char *b, size_t n) {
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0) { if (errno == EINTR) continue; perror("write"); exit(1); }
        b += w; n -= (size_t)w;
    }
}
static int read_full(int fd, char *b, size_t n) {
    while (n) {
        ssize_t r = read(fd, b, n);
        if (r < 0) { if (errno == EINTR) continue; perror("read"); exit(1); }
        if (r == 0) return 0;
        b += r; n -= (size_t)r;
    }
    return 1;
}

enum kind { K_PIPE, K_PIPE_1M, K_SOCK };
static const char *kname[] = {"pipe(64KiB buf)", "pipe(F_SETPIPE_SZ 1MiB)", "socketpair(AF_UNIX,STREAM)"};

static void mk(enum kind k, int fds[2]) {
    if (k == K_SOCK) {
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds)) { perror("socketpair"); exit(1); }
    } else {
        if (pipe(fds)) { perror("pipe"); exit(1); }  // fds[0] read, fds[1] write
        if (k == K_PIPE_1M && fcntl(fds[1], F_SETPIPE_SZ, 1 << 20) < 0) { perror("F_SETPIPE_SZ"); exit(1); }
    }
}

static double one_bw(enum kind k, size_t chunk, size_t total) {
    int fds[2];
    mk(k, fds);
    int rfd = fds[0], wfd = fds[1];
    char *buf = malloc(chunk);
    memset(buf, 'x', chunk);
    pid_t p = fork();
    if (p == 0) {
        pin(0);
        close(wfd);
        for (;;) {
            ssize_t r = read(rfd, buf, chunk);
            if (r == 0) _exit(0);
            if (r < 0 && errno != EINTR) _exit(1);
        }
    }
    close(rfd);
    double t0 = now_s();
    for (size_t done = 0; done < total; done += chunk) write_all(wfd, buf, chunk);
    close(wfd);
    int st;
    waitpid(p, &st, 0);
    double t = now_s() - t0;
    free(buf);
    return total / t / 1e9;
}

// returns us per round trip
static double one_pingpong(enum kind k, size_t msg, int iters) {
    int a[2], b[2];  // a: parent->child, b: child->parent
    mk(k, a);
    mk(k, b);
    char *buf = malloc(msg);
    memset(buf, 'y', msg);
    // for pipes: write end [1], read end [0]; for socketpair use [0] parent, [1] child
    int p_w, p_r, c_w, c_r;
    if (k == K_SOCK) { p_w = p_r = a[0]; c_w = c_r = a[1]; close(b[0]); close(b[1]); }
    else { p_w = a[1]; c_r = a[0]; c_w = b[1]; p_r = b[0]; }
    pid_t p = fork();
    if (p == 0) {
        pin(0);
        if (k == K_SOCK) close(p_w); else { close(p_w); close(p_r); }
        while (read_full(c_r, buf, msg)) write_all(c_w, buf, msg);
        _exit(0);
    }
    if (k == K_SOCK) close(c_w); else { close(c_r); close(c_w); }
    for (int i = 0; i < 100; i++) { write_all(p_w, buf, msg); read_full(p_r, buf, msg); }
    double t0 = now_s();
    for (int i = 0; i < iters; i++) { write_all(p_w, buf, msg); read_full(p_r, buf, msg); }
    double t = now_s() - t0;
    close(p_w);
    if (p_r != p_w) close(p_r);
    int st;
    waitpid(p, &st, 0);
    free(buf);
    return t / iters * 1e6;
}

int main(int argc, char **argv) {
    long total_mib = 1024;
    int rounds = 5, iters = 20000, opt;
    const char *only = NULL;
    size_t one_msg = 1024, one_chunk = 1 << 20;
    while ((opt = getopt(argc, argv, "s:r:k:a:o:m:c:")) != -1) {
        switch (opt) {
        case 's': total_mib = atol(optarg); break;
        case 'r': rounds = atoi(optarg); break;
        case 'k': iters = atoi(optarg); break;
        case 'a': aff = optarg; break;
        case 'o': only = optarg; break;
        case 'm': one_msg = (size_t)atol(optarg); break;
        case 'c': one_chunk = (size_t)atol(optarg); break;
        default: fprintf(stderr, "usage: %s [-s total_MiB] [-r rounds] [-k pingpong_iters] [-a none|same|split]\n", argv[0]); return 2;
        }
    }
    size_t total = (size_t)total_mib << 20;
    pin(1);
    if (only) {
        double *y = calloc(rounds, sizeof(double));
        for (int r = 0; r < rounds; r++)
            y[r] = !strcmp(only, "rt") ? one_pingpong(K_PIPE, one_msg, iters) : one_bw(K_PIPE, one_chunk, total);
        qsort(y, rounds, sizeof(double), cmp_d);
        printf("RESULT %.4f\n", y[rounds / 2]);
        return 0;
    }
    printf("# affinity: %s\n", aff);
    static const size_t chunks[] = {4096, 65536, 1 << 20};
    printf("# throughput: %ld MiB per round, %d rounds, GB/s (1e9 B/s)\n", total_mib, rounds);
    printf("%-30s %8s %8s %8s %8s\n", "channel", "chunk", "median", "min", "max");
    double *x = calloc(rounds, sizeof(double));
    for (int k = 0; k < 3; k++) {
        for (size_t c = 0; c < 3; c++) {
            for (int r = 0; r < rounds; r++) x[r] = one_bw((enum kind)k, chunks[c], total);
            qsort(x, rounds, sizeof(double), cmp_d);
            printf("%-30s %7zuK %8.2f %8.2f %8.2f\n", kname[k], chunks[c] >> 10, x[rounds / 2], x[0], x[rounds - 1]);
        }
    }
    static const size_t msgs[] = {64, 4096, 65536};
    printf("# round trip (parent writes msg, child echoes it): %d iters per round, %d rounds, us per round trip\n", iters, rounds);
    printf("%-30s %8s %8s %8s %8s\n", "channel", "msg", "median", "min", "max");
    for (int k = 0; k < 3; k += 2) {  // pipe pair and socketpair
        for (size_t m = 0; m < 3; m++) {
            for (int r = 0; r < rounds; r++) x[r] = one_pingpong((enum kind)k, msgs[m], iters);
            qsort(x, rounds, sizeof(double), cmp_d);
            printf("%-30s %7zuB %8.1f %8.1f %8.1f\n", k == K_SOCK ? kname[K_SOCK] : "pipe pair(64KiB buf)", msgs[m],
                   x[rounds / 2], x[0], x[rounds - 1]);
        }
    }
    return 0;
}
