// expect-abi: compliant
//
// Fault plugin for ABI v2: it follows every rule the checker can see, and misbehaves where only
// the host can stop it. The host must answer each call with a clear error, discard the
// instance, and keep serving; and it must never let one call see another's bytes. Buffers:
// 4 KiB of input, 4 KiB of output.
//
//   init(), cleanup()       0 (PLUGIN_OK), always
//   fn_overflow(n)          claims 4097 bytes of output: one more than its output buffer
//   fn_huge(n)              claims 2147483647 bytes of output
//   fn_peek(n)              copies its whole input buffer (all 4096 bytes, whatever n is) to
//                           its output: anything an earlier call left there shows
//   fn_stale(n)             writes nothing and claims its whole output buffer (4096 bytes):
//                           whatever an earlier call left there shows
//   fn_echo(n)              the n input bytes, unchanged
//   stream_trap_*           feed: the first chunk echoes back, the second traps (unreachable)
//   stream_spin_*           feed: spins forever, incrementing a counter
//   stream_lines_*          feed: echoes a chunk that ends in "\n"; -3 for a chunk that does not
//                           (part of a record); end: "" (0 bytes)

#include <wasm_plugin_v2.h>

PLUGIN_BUFFERS(4096, 4096)

PLUGIN_EXPORT(init) int init(void) {
    return PLUGIN_OK;
}

PLUGIN_EXPORT(cleanup) int cleanup(void) {
    return PLUGIN_OK;
}

PLUGIN_FUNCTION(overflow) {
    (void)input_len;
    return PLUGIN_OUTPUT_CAPACITY + 1;
}

PLUGIN_FUNCTION(huge) {
    (void)input_len;
    return 2147483647;
}

PLUGIN_FUNCTION(peek) {
    (void)input_len;
    plugin_copy(plugin_output, plugin_input, PLUGIN_INPUT_CAPACITY);
    return PLUGIN_INPUT_CAPACITY;
}

PLUGIN_FUNCTION(stale) {
    (void)input_len;
    return PLUGIN_OUTPUT_CAPACITY;
}

PLUGIN_FUNCTION(echo) {
    plugin_copy(plugin_output, plugin_input, input_len);
    return input_len;
}

static int chunks;

static int trap_begin(void) {
    chunks = 0;
    return PLUGIN_OK;
}

static int trap_feed(int input_len) {
    if (++chunks >= 2) {
        __builtin_trap();
    }
    plugin_copy(plugin_output, plugin_input, input_len);
    return input_len;
}

static int trap_end(void) {
    return 0;
}

PLUGIN_STREAM(trap, trap_begin, trap_feed, trap_end)

static volatile unsigned int spins;

static int spin_begin(void) {
    return PLUGIN_OK;
}

static int spin_feed(int input_len) {
    (void)input_len;
    for (;;) {
        spins++;
    }
}

static int spin_end(void) {
    return 0;
}

PLUGIN_STREAM(spin, spin_begin, spin_feed, spin_end)

static int lines_begin(void) {
    return PLUGIN_OK;
}

static int lines_feed(int input_len) {
    if (input_len > 0 && plugin_input[input_len - 1] != '\n') {
        return PLUGIN_ERR_INVALID_ARGUMENT;
    }
    plugin_copy(plugin_output, plugin_input, input_len);
    return input_len;
}

static int lines_end(void) {
    return 0;
}

PLUGIN_STREAM(lines, lines_begin, lines_feed, lines_end)
