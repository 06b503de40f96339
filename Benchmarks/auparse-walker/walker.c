/*
 * walker.c — baseline for Herdwatch's parser benchmark: walk an audit log
 * with libauparse and count events, records and fields.
 *
 * Build (Debian: apt-get install libauparse-dev):
 *   cc -O2 -o .build-bench/auparse-walker Benchmarks/auparse-walker/walker.c -lauparse -laudit
 * Run:
 *   .build-bench/auparse-walker [-i] FILE
 *     -i  also call auparse_interpret_field() on every field (comparable to
 *         Herdwatch's interpreted ECS output); without it only
 *         auparse_get_field_str() is called (raw walk).
 * Output (stdout, one line):
 *   events=N records=N fields=N seconds=S
 * where seconds is the wall time of auparse_init + the walk + auparse_destroy.
 * scripts/bench-parse builds and runs it.
 */
#define _POSIX_C_SOURCE 200809L
#include <auparse.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [-i] FILE\n", argv0);
    exit(2);
}

int main(int argc, char **argv)
{
    int interpret = 0;
    const char *path = NULL;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-i") == 0)
            interpret = 1;
        else if (argv[i][0] == '-' && argv[i][1] != '\0')
            usage(argv[0]);
        else if (path == NULL)
            path = argv[i];
        else
            usage(argv[0]);
    }
    if (path == NULL)
        usage(argv[0]);

    /* Touch the strings so the walk cannot be skipped; sum of first bytes. */
    volatile unsigned long sink = 0;
    unsigned long events = 0, records = 0, fields = 0;

    double start = now_seconds();
    auparse_state_t *au = auparse_init(AUSOURCE_FILE, path);
    if (au == NULL) {
        perror("auparse_init");
        return 1;
    }

    int rc;
    while ((rc = auparse_next_event(au)) > 0) {
        events++;
        /* After next_event the cursor is on the event's first record. */
        do {
            records++;
            if (auparse_first_field(au) <= 0)
                continue;
            do {
                fields++;
                const char *s = auparse_get_field_str(au);
                if (s != NULL)
                    sink += (unsigned char)s[0];
                if (interpret) {
                    const char *v = auparse_interpret_field(au);
                    if (v != NULL)
                        sink += (unsigned char)v[0];
                }
            } while (auparse_next_field(au) > 0);
        } while (auparse_next_record(au) > 0);
    }
    if (rc < 0) {
        fprintf(stderr, "auparse_next_event: error after %lu events\n", events);
        auparse_destroy(au);
        return 1;
    }
    auparse_destroy(au);
    double elapsed = now_seconds() - start;

    printf("events=%lu records=%lu fields=%lu seconds=%.3f\n",
           events, records, fields, elapsed);
    (void)sink;
    return 0;
}
