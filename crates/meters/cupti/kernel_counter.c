/*
 * lenet-compare's kernel counter: what the device itself did during a run.
 *
 * The CUDA driver loads this library into a process at cuInit when CUDA_INJECTION64_PATH names it,
 * and calls InitializeInjection; a harness may also load it and call lenet_kernels_start. It records,
 * through CUPTI's activity API, every kernel (graph replays' kernels included), memory copy and
 * memory set with its device start and end, and the marks the harness sets around each epoch
 * (lenet_kernels_mark), all on CUPTI's one clock, into the file LENET_KERNELS_OUT names (or the one
 * a harness passes to lenet_kernels_start). Without either it does nothing. The file is plain
 * text, one record per line, read by `meters::kernels`:
 *
 *   # lenet-kernels 1                 header
 *   N <index> <name>                  a kernel's name, before its first K line
 *   K <start> <end> <index> <graph>   a kernel (ns; graph: CUDA graph id, 0 outside a graph)
 *   C <start> <end> <bytes>           a memory copy
 *   S <start> <end> <bytes>           a memory set
 *   M <timestamp> B|E <epoch>         the harness's mark: an epoch begins (B) or ends (E)
 *   D <count>                         records CUPTI dropped (a buffer was full)
 *   F <status>                        a CUPTI call failed, with its status
 *
 * It is not loaded into timed runs: tracing every kernel costs the host time.
 */
#include <cupti.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUFFER_BYTES (8u << 20)
#define ALIGN 8u

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *out;
static int started;

/* Kernel names: CUPTI shares one name pointer among a kernel's records, so names are known by
 * pointer; an open-addressing table from pointer to index. */
#define NAMES 4096
static const char *names[NAMES];
static uint32_t indices[NAMES];
static uint32_t next_index;

static uint32_t name_index(const char *name) {
    size_t slot = ((uintptr_t)name >> 3) % NAMES;
    for (size_t probe = 0; probe < NAMES; probe++, slot = (slot + 1) % NAMES) {
        if (names[slot] == name) {
            return indices[slot];
        }
        if (names[slot] == NULL) {
            names[slot] = name;
            indices[slot] = next_index;
            fprintf(out, "N %u %s\n", next_index, name ? name : "?");
            return next_index++;
        }
    }
    /* Table full: the name is written again under a fresh index. */
    fprintf(out, "N %u %s\n", next_index, name ? name : "?");
    return next_index++;
}

static void failed(CUptiResult status) {
    if (out) {
        fprintf(out, "F %d\n", (int)status);
    }
}

static void CUPTIAPI buffer_requested(uint8_t **buffer, size_t *size, size_t *max_records) {
    uint8_t *b = NULL;
    if (posix_memalign((void **)&b, ALIGN, BUFFER_BYTES) != 0) {
        b = NULL;
    }
    *buffer = b;
    *size = b ? BUFFER_BYTES : 0;
    *max_records = 0;
}

static void CUPTIAPI buffer_completed(CUcontext ctx, uint32_t stream, uint8_t *buffer, size_t size,
                                      size_t valid) {
    (void)size;
    CUpti_Activity *record = NULL;
    pthread_mutex_lock(&lock);
    while (out && cuptiActivityGetNextRecord(buffer, valid, &record) == CUPTI_SUCCESS) {
        switch (record->kind) {
        case CUPTI_ACTIVITY_KIND_KERNEL:
        case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL: {
            CUpti_ActivityKernel10 *k = (CUpti_ActivityKernel10 *)record;
            uint32_t index = name_index(k->name);
            fprintf(out, "K %llu %llu %u %u\n", (unsigned long long)k->start,
                    (unsigned long long)k->end, index, k->graphId);
            break;
        }
        case CUPTI_ACTIVITY_KIND_MEMCPY: {
            CUpti_ActivityMemcpy6 *c = (CUpti_ActivityMemcpy6 *)record;
            fprintf(out, "C %llu %llu %llu\n", (unsigned long long)c->start,
                    (unsigned long long)c->end, (unsigned long long)c->bytes);
            break;
        }
        case CUPTI_ACTIVITY_KIND_MEMSET: {
            CUpti_ActivityMemset4 *s = (CUpti_ActivityMemset4 *)record;
            fprintf(out, "S %llu %llu %llu\n", (unsigned long long)s->start,
                    (unsigned long long)s->end, (unsigned long long)s->bytes);
            break;
        }
        default:
            break;
        }
    }
    size_t dropped = 0;
    if (out && cuptiActivityGetNumDroppedRecords(ctx, stream, &dropped) == CUPTI_SUCCESS &&
        dropped > 0) {
        fprintf(out, "D %zu\n", dropped);
    }
    pthread_mutex_unlock(&lock);
    free(buffer);
}

static void finish(void) {
    cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
    pthread_mutex_lock(&lock);
    if (out) {
        fflush(out);
    }
    pthread_mutex_unlock(&lock);
}

/* Starts recording into `path` once; 1 when recording (or asked not to record: no path), 0 when
 * the file cannot be written or CUPTI refused. */
static int start(const char *path) {
    pthread_mutex_lock(&lock);
    if (started) {
        pthread_mutex_unlock(&lock);
        return out != NULL;
    }
    started = 1;
    if (path == NULL || path[0] == '\0') {
        pthread_mutex_unlock(&lock);
        return 1;
    }
    out = fopen(path, "w");
    if (out == NULL) {
        pthread_mutex_unlock(&lock);
        return 0;
    }
    fprintf(out, "# lenet-kernels 1\n");
    pthread_mutex_unlock(&lock);
    CUptiResult status = cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed);
    const CUpti_ActivityKind kinds[] = {CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL,
                                        CUPTI_ACTIVITY_KIND_MEMCPY, CUPTI_ACTIVITY_KIND_MEMSET};
    for (size_t i = 0; status == CUPTI_SUCCESS && i < sizeof kinds / sizeof kinds[0]; i++) {
        status = cuptiActivityEnable(kinds[i]);
    }
    if (status != CUPTI_SUCCESS) {
        failed(status);
        fflush(out);
        return 0;
    }
    atexit(finish);
    return 1;
}

/* Called by the CUDA driver (CUDA_INJECTION64_PATH) at cuInit: records into LENET_KERNELS_OUT. */
int InitializeInjection(void) {
    /* A counter that cannot record must not stop the process: the records say why (F lines). */
    start(getenv("LENET_KERNELS_OUT"));
    return 1;
}

/* Called by a harness that loaded this library itself, before its first CUDA call: records into
 * `path`. 1 when recording, 0 when not (the file cannot be written, or CUPTI refused). */
int lenet_kernels_start(const char *path) { return start(path); }

/* Writes out every record so far and closes the file (the harness, when its run has ended). */
void lenet_kernels_finish(void) {
    cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
    pthread_mutex_lock(&lock);
    if (out) {
        fclose(out);
        out = NULL;
    }
    pthread_mutex_unlock(&lock);
}

/* The harness's epoch marks: begin (1) or end (0) of an epoch, on CUPTI's clock. An end flushes
 * the records so far, so that a run that dies later keeps its finished epochs. */
void lenet_kernels_mark(int begin, uint32_t epoch) {
    uint64_t now = 0;
    CUptiResult status = cuptiGetTimestamp(&now);
    pthread_mutex_lock(&lock);
    if (out) {
        if (status == CUPTI_SUCCESS) {
            fprintf(out, "M %llu %c %u\n", (unsigned long long)now, begin ? 'B' : 'E', epoch);
        } else {
            fprintf(out, "F %d\n", (int)status);
        }
    }
    pthread_mutex_unlock(&lock);
    if (!begin) {
        cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
        pthread_mutex_lock(&lock);
        if (out) {
            fflush(out);
        }
        pthread_mutex_unlock(&lock);
    }
}
