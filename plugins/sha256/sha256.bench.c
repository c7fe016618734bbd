// Native benchmark of sha256.c, for `cargo xtask bench`: the plugin's own stream functions,
// compiled for the build machine at the same optimisation level as the plugin (-O2), fed
// `argv[1]` MiB of a fixed pattern in chunks of the input capacity, as the host feeds them.
// Prints one JSON line: {"bytes": N, "seconds": S, "digest": "<hex>"}.
#define _POSIX_C_SOURCE 199309L /* clock_gettime under -std=c11 */
#include "sha256.c"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
    long mib = argc > 1 ? atol(argv[1]) : 256;
    long total = mib << 20;
    for (int i = 0; i < PLUGIN_INPUT_CAPACITY; i++) {
        plugin_input[i] = (unsigned char)(i * 31 + 7);
    }
    struct timespec start, stop;
    clock_gettime(CLOCK_MONOTONIC, &start);
    if (stream_sha256sum_begin() != PLUGIN_OK) return 1;
    for (long fed = 0; fed < total; fed += PLUGIN_INPUT_CAPACITY) {
        if (stream_sha256sum_feed(PLUGIN_INPUT_CAPACITY) != 0) return 1;
    }
    int length = stream_sha256sum_end();
    clock_gettime(CLOCK_MONOTONIC, &stop);
    double seconds = (double)(stop.tv_sec - start.tv_sec) + (double)(stop.tv_nsec - start.tv_nsec) / 1e9;
    printf("{\"bytes\": %ld, \"seconds\": %.6f, \"digest\": \"%.*s\"}\n", total, seconds, length, (const char *)plugin_output);
    return 0;
}
