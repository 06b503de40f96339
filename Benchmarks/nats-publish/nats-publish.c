// nats-publish — the peer for scripts/bench-ship: the NATS C client alone publishing the same
// events to JetStream, the way the agent's sink does (asynchronous publish with a message id,
// EVENTS_PER_MESSAGE JSON lines per message, batches of 1,000 events, waiting for every
// acknowledgment after each batch), without the spool. Prints one JSON line like
// herdwatch-bench-ship's.
//
//   nats-publish NATS_URL FILE N [EVENTS_PER_MESSAGE]
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double cpu_seconds(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

static int acked, failed;

static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure) {
    (void)js; (void)closure;
    if (pa != NULL) acked++; else failed++;
    (void)pae;
    natsMsg_Destroy(msg);
}

int main(int argc, char **argv) {
    if (argc != 4 && argc != 5) { fprintf(stderr, "usage: nats-publish NATS_URL EVENTS.jsonl N [EVENTS_PER_MESSAGE]\n"); return 2; }
    long count = atol(argv[3]);
    long per_message = argc == 5 ? atol(argv[4]) : 1;
    if (count <= 0 || per_message <= 0 || per_message > 1000) { fprintf(stderr, "N and EVENTS_PER_MESSAGE (1-1000) must be positive\n"); return 2; }
    FILE *file = fopen(argv[2], "r");
    if (!file) { perror(argv[2]); return 1; }
    char **lines = NULL; size_t *lengths = NULL; size_t n = 0, cap = 0;
    char *line = NULL; size_t size = 0; ssize_t got;
    while ((got = getline(&line, &size, file)) > 0) {
        if (line[got - 1] == '\n') got--;
        if (got == 0) continue;
        if (n == cap) { cap = cap ? cap * 2 : 256; lines = realloc(lines, cap * sizeof *lines); lengths = realloc(lengths, cap * sizeof *lengths); }
        lines[n] = malloc(got); memcpy(lines[n], line, got); lengths[n] = got; n++;
    }
    fclose(file);
    if (n == 0) { fprintf(stderr, "no events\n"); return 1; }

    natsConnection *conn = NULL; jsCtx *js = NULL; jsOptions o; jsErrCode jerr = 0;
    if (natsConnection_ConnectTo(&conn, argv[1]) != NATS_OK) { fprintf(stderr, "connect failed\n"); return 1; }
    jsOptions_Init(&o);
    o.PublishAsync.MaxPending = 65536;
    o.PublishAsync.AckHandler = on_ack;
    if (natsConnection_JetStream(&js, conn, &o) != NATS_OK) return 1;
    jsStreamConfig cfg; jsStreamInfo *si = NULL;
    const char *subjects[] = {"herdwatch.events.>"};
    jsStreamConfig_Init(&cfg);
    cfg.Name = "HERDWATCH"; cfg.Subjects = subjects; cfg.SubjectsLen = 1; cfg.Storage = js_FileStorage;
    if (js_GetStreamInfo(&si, js, "HERDWATCH", NULL, &jerr) == NATS_OK) jsStreamInfo_Destroy(si);
    else if (js_AddStream(&si, js, &cfg, NULL, &jerr) == NATS_OK) jsStreamInfo_Destroy(si);

    long bytes = 0;
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    double cpu_start = cpu_seconds();
    char id[64];
    size_t longest = 0;
    for (size_t k = 0; k < n; k++) if (lengths[k] > longest) longest = lengths[k];
    char *message = malloc((longest + 1) * per_message);
    long messages = 0, batch_start = 0;
    for (long i = 0; i < count; i += per_message) {
        long last = i + per_message < count ? i + per_message : count;
        size_t length = 0;
        for (long j = i; j < last; j++) {
            size_t k = j % n;
            if (j > i) message[length++] = '\n';
            memcpy(message + length, lines[k], lengths[k]);
            length += lengths[k];
            bytes += lengths[k];
        }
        jsPubOptions po; jsPubOptions_Init(&po);
        snprintf(id, sizeof id, "peer-%ld+%ld", i, last - i);
        po.MsgId = id;
        if (js_PublishAsync(js, "herdwatch.events.peer", message, (int)length, &po) != NATS_OK) { fprintf(stderr, "publish failed\n"); return 1; }
        messages++;
        if (last - batch_start >= 1000 || last == count) {
            batch_start = last;
            jsPubOptions wait; jsPubOptions_Init(&wait); wait.MaxWait = 5000;
            if (js_PublishAsyncComplete(js, &wait) != NATS_OK) { fprintf(stderr, "acks timed out\n"); return 1; }
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    double seconds = (end.tv_sec - start.tv_sec) + (end.tv_nsec - start.tv_nsec) / 1e9;
    if (acked != messages || failed) { fprintf(stderr, "acked %d of %ld messages, %d failed\n", acked, messages, failed); return 1; }
    printf("{\"events\":%ld,\"bytes\":%ld,\"seconds\":%.3f,\"events_per_second\":%ld,\"cpu_seconds\":%.3f}\n", count, bytes, seconds, (long)(count / seconds), cpu_seconds() - cpu_start);
    jsCtx_Destroy(js); natsConnection_Destroy(conn);
    return 0;
}
