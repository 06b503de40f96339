/* exec-load: start /bin/true again and again, at a fixed rate or as fast as possible.
 *
 *   exec-load RATE SECONDS     RATE execs per second for SECONDS (0 = as fast as possible)
 *
 * Each exec is a posix_spawn of /bin/true with one argument, waited for before the next, so the
 * cost of auditing it lands in the measured time. Prints: execs, seconds, execs/s, and the
 * average microseconds per exec (spawn to reaped).
 */
#define _GNU_SOURCE
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s RATE SECONDS\n", argv[0]);
        return 2;
    }
    double rate = atof(argv[1]), seconds = atof(argv[2]);
    char *child[] = {"/bin/true", "herdwatch-bench", NULL};
    double start = now(), busy = 0;
    long count = 0;
    for (;;) {
        double t = now();
        if (t - start >= seconds) break;
        if (rate > 0) {
            double due = start + count / rate;
            if (due > t) {
                struct timespec pause = {(time_t)(due - t), (long)((due - t - (time_t)(due - t)) * 1e9)};
                nanosleep(&pause, NULL);
            }
        }
        double before = now();
        pid_t pid;
        if (posix_spawn(&pid, child[0], NULL, NULL, child, environ) != 0) { perror("posix_spawn"); return 1; }
        int status;
        waitpid(pid, &status, 0);
        busy += now() - before;
        count++;
    }
    double elapsed = now() - start;
    printf("%ld %.3f %.1f %.1f\n", count, elapsed, count / elapsed, busy / count * 1e6);
    return 0;
}
