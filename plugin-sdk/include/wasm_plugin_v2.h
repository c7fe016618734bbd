/*
 * wasm_plugin_v2.h - the plugin ABI, version 2, for plugins written in C or C++:
 * bytes in and out, several functions per plugin, streaming. Still no
 * allocator, no imports and no floating point.
 *
 * A v2 plugin includes this header instead of wasm_plugin.h (which this header
 * includes for the error codes, PLUGIN_EXPORT and the version marker, now
 * saying 2). A complete plugin:
 *
 *     #include "wasm_plugin_v2.h"
 *
 *     PLUGIN_BUFFERS(4096, 4096)
 *
 *     PLUGIN_EXPORT(init) int init(void) { return PLUGIN_OK; }
 *     PLUGIN_EXPORT(cleanup) int cleanup(void) { return PLUGIN_OK; }
 *
 *     // Upper-cases ASCII letters; every other byte is copied as it is.
 *     PLUGIN_FUNCTION(upper) {
 *         if (input_len > PLUGIN_OUTPUT_CAPACITY) return PLUGIN_ERR_INVALID_ARGUMENT;
 *         for (int i = 0; i < input_len; i++) {
 *             unsigned char c = plugin_input[i];
 *             plugin_output[i] = (c >= 'a' && c <= 'z') ? c - 32 : c;
 *         }
 *         return input_len;
 *     }
 *
 * Build it like a v1 plugin:
 *
 *     clang --target=wasm32 -nostdlib -O2 -Wl,--no-entry -I plugin-sdk/include \
 *           -o upper.wasm upper.c
 *
 * The contract, as the host sees it (ABI.md has the complete specification):
 *
 *   - the plugin owns two static buffers in its linear memory, which it
 *     exports as `memory` (wasm-ld's default) and never grows. Four exported
 *     functions `() -> i32` say where they are: plugin_input_ptr,
 *     plugin_input_capacity, plugin_output_ptr, plugin_output_capacity.
 *     PLUGIN_BUFFERS defines all four. Each must return a constant (the
 *     address or size of a static array and nothing else): the host's checker
 *     reads them from the compiled code, without running it, and refuses
 *     buffers that overlap, lie outside memory, are empty or exceed the host's
 *     limit (1 MiB each by default);
 *   - init() and cleanup() return PLUGIN_OK or a PLUGIN_ERR_* code, as in v1;
 *   - each function `fn_<name>(int input_len) -> int` (PLUGIN_FUNCTION(name))
 *     finds `input_len` bytes of input at the start of plugin_input, writes
 *     its output at the start of plugin_output and returns the number of
 *     bytes written (0 up to the output capacity), or a negative PLUGIN_ERR_*
 *     code (PLUGIN_ERR_INVALID_ARGUMENT: the input is refused). There must be
 *     at least one;
 *   - a streaming function (PLUGIN_STREAM(name, begin, feed, end)) is three
 *     exports, all three or none: stream_<name>_begin() starts a stream and
 *     returns PLUGIN_OK or an error; stream_<name>_feed(int input_len) takes
 *     the next chunk of input from plugin_input and returns the number of
 *     output bytes it wrote for that chunk, or an error; stream_<name>_end()
 *     writes the final output and returns its length, or an error. The host
 *     calls them in that order on one instance, so the state between chunks
 *     lives in static variables; a chunk is at most the input capacity, and
 *     the whole stream may be of any length;
 *   - <name> is 1 to 32 of a-z, 0-9 and `_`, starting with a letter; a name is
 *     a function or a stream, not both;
 *   - the plugin exports nothing else (in particular no `process`), and every
 *     v1 rule still holds: no imports, no allocator, no floating point, no
 *     recursion, no start function, the same WebAssembly features.
 *
 * Without a libc: this header gives plugin_copy, plugin_fill and
 * plugin_compare, and it defines memcpy, memmove, memset, memcmp and bcmp as
 * weak functions inside the plugin. clang turns copy and fill loops, struct
 * copies and array initialisers into calls to those, even with -nostdlib and
 * -ffreestanding; without a definition the link fails on an undefined symbol
 * (or, with -Wl,--allow-undefined, the plugin imports them and the host
 * refuses it). With -mbulk-memory, clang emits the memory.copy and
 * memory.fill instructions instead, which the ABI allows, and the weak
 * definitions are dropped by the linker as unused. A plugin may define its own
 * versions: a strong definition wins over a weak one.
 */
#ifndef WASM_PLUGIN_V2_H
#define WASM_PLUGIN_V2_H

#ifdef WASM_PLUGIN_H
#error "wasm_plugin.h was included before wasm_plugin_v2.h: a v2 plugin includes only wasm_plugin_v2.h"
#endif

#define WASM_PLUGIN_ABI_VERSION 2
#include "wasm_plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The two buffers, defined by PLUGIN_BUFFERS in one source file of the
 * plugin. In that file, PLUGIN_INPUT_CAPACITY and PLUGIN_OUTPUT_CAPACITY give
 * their sizes; other files call plugin_input_capacity() and
 * plugin_output_capacity().
 */
extern unsigned char plugin_input[];
extern unsigned char plugin_output[];

#define PLUGIN_INPUT_CAPACITY ((int)sizeof plugin_input)
#define PLUGIN_OUTPUT_CAPACITY ((int)sizeof plugin_output)

PLUGIN_EXPORT(plugin_input_ptr) int plugin_input_ptr(void);
PLUGIN_EXPORT(plugin_input_capacity) int plugin_input_capacity(void);
PLUGIN_EXPORT(plugin_output_ptr) int plugin_output_ptr(void);
PLUGIN_EXPORT(plugin_output_capacity) int plugin_output_capacity(void);

#ifdef __cplusplus
}
#define WASM_PLUGIN_C_BEGIN extern "C" {
#define WASM_PLUGIN_C_END }
#else
#define WASM_PLUGIN_C_BEGIN
#define WASM_PLUGIN_C_END
#endif

/*
 * Defines the two buffers (`input_capacity` and `output_capacity` bytes, both
 * at least 1, 16-byte aligned) and the four functions that tell the host where
 * they are. Use it exactly once per plugin, at file scope:
 *
 *     PLUGIN_BUFFERS(65536, 65536)
 *
 * The buffers are zero when an instance starts, like every static variable.
 * The functions return the array's address and size and nothing else, which
 * clang compiles to a single constant at every optimisation level: that is
 * what lets the host check the buffers before it runs anything.
 */
#define PLUGIN_BUFFERS(input_capacity, output_capacity)                                      \
    WASM_PLUGIN_C_BEGIN                                                                       \
    __attribute__((aligned(16))) unsigned char plugin_input[input_capacity];                 \
    __attribute__((aligned(16))) unsigned char plugin_output[output_capacity];               \
    WASM_PLUGIN_C_END                                                                         \
    PLUGIN_EXPORT(plugin_input_ptr) int plugin_input_ptr(void) {                              \
        return (int)(__UINTPTR_TYPE__)plugin_input;                                           \
    }                                                                                         \
    PLUGIN_EXPORT(plugin_input_capacity) int plugin_input_capacity(void) {                    \
        return (int)sizeof plugin_input;                                                      \
    }                                                                                         \
    PLUGIN_EXPORT(plugin_output_ptr) int plugin_output_ptr(void) {                            \
        return (int)(__UINTPTR_TYPE__)plugin_output;                                          \
    }                                                                                         \
    PLUGIN_EXPORT(plugin_output_capacity) int plugin_output_capacity(void) {                  \
        return (int)sizeof plugin_output;                                                     \
    }

/*
 * Optional: a read-only configuration buffer, for settings the operator
 * chooses per deployment (ABI.md, "Configuration"). Use it at most once per
 * plugin, at file scope, with the largest configuration the plugin takes:
 *
 *     PLUGIN_CONFIG(4096)
 *
 * It defines `plugin_config` (4 + max_bytes bytes, 16-byte aligned) and the
 * two functions that tell the host where it is, plugin_config_ptr and
 * plugin_config_capacity (constants, like the buffer functions). Before every
 * init() the host writes the configuration's length as a little-endian
 * 32-bit number at the start of the buffer and the configuration after it;
 * the length is 0 when the operator gave none. In init(), read it with
 * PLUGIN_CONFIG_LENGTH() and PLUGIN_CONFIG_DATA, and return
 * PLUGIN_ERR_INVALID_ARGUMENT to refuse a configuration: the host then
 * answers every call with `configuration_refused` until the configuration
 * changes. The buffer is fresh on every instance, like every static variable,
 * so read it in init() and keep what you need in statics.
 */
#define PLUGIN_CONFIG(max_bytes)                                                              \
    WASM_PLUGIN_C_BEGIN                                                                       \
    __attribute__((aligned(16))) unsigned char plugin_config[4 + (max_bytes)];               \
    WASM_PLUGIN_C_END                                                                         \
    PLUGIN_EXPORT(plugin_config_ptr) int plugin_config_ptr(void) {                            \
        return (int)(__UINTPTR_TYPE__)plugin_config;                                          \
    }                                                                                         \
    PLUGIN_EXPORT(plugin_config_capacity) int plugin_config_capacity(void) {                  \
        return (int)sizeof plugin_config;                                                     \
    }

/* The configuration's bytes, in the file that uses PLUGIN_CONFIG. */
#define PLUGIN_CONFIG_DATA (plugin_config + 4)

/*
 * The configuration's length in bytes (0 without one), in the file that uses
 * PLUGIN_CONFIG; never more than the buffer holds, whatever the length word
 * says.
 */
#define PLUGIN_CONFIG_LENGTH()                                                                \
    plugin_config_length_of(plugin_config, (int)sizeof plugin_config - 4)

static inline int plugin_config_length_of(const unsigned char *buffer, int room) {
    unsigned int length = (unsigned int)buffer[0] | (unsigned int)buffer[1] << 8 |
                          (unsigned int)buffer[2] << 16 | (unsigned int)buffer[3] << 24;
    return length > (unsigned int)room ? room : (int)length;
}

/*
 * Starts the definition of the function `name`, exported as `fn_<name>`,
 * whose parameter is `int input_len`:
 *
 *     PLUGIN_FUNCTION(word_count) {
 *         ... read plugin_input[0 .. input_len), write plugin_output ...
 *         return bytes_written;
 *     }
 */
#define PLUGIN_FUNCTION(name) PLUGIN_EXPORT(fn_##name) int fn_##name(int input_len)

/*
 * Exports the streaming function `name` as its three parts, each calling one
 * of the plugin's own functions (which may be static):
 *
 *     static int digest_begin(void);          // PLUGIN_OK, or an error
 *     static int digest_feed(int input_len);  // output bytes for this chunk
 *     static int digest_end(void);            // final output bytes
 *     PLUGIN_STREAM(digest, digest_begin, digest_feed, digest_end)
 *
 * One macro for all three, so a stream cannot lack a part.
 */
#define PLUGIN_STREAM(name, begin, feed, end)                                                 \
    PLUGIN_EXPORT(stream_##name##_begin) int stream_##name##_begin(void) {                    \
        return begin();                                                                       \
    }                                                                                         \
    PLUGIN_EXPORT(stream_##name##_feed) int stream_##name##_feed(int input_len) {             \
        return feed(input_len);                                                               \
    }                                                                                         \
    PLUGIN_EXPORT(stream_##name##_end) int stream_##name##_end(void) {                        \
        return end();                                                                         \
    }

/*
 * Byte helpers for plugins without a libc. Lengths are ints, like input_len;
 * a length of zero or less does nothing (and compares equal).
 */

/* Copies `len` bytes from `src` to `dst`; the two may overlap. */
static inline void plugin_copy(void *dst, const void *src, int len) {
    if (len > 0) {
        __builtin_memmove(dst, src, (__SIZE_TYPE__)len);
    }
}

/* Sets `len` bytes at `dst` to `byte`. */
static inline void plugin_fill(void *dst, unsigned char byte, int len) {
    if (len > 0) {
        __builtin_memset(dst, byte, (__SIZE_TYPE__)len);
    }
}

/*
 * Compares `len` bytes as unsigned values: negative if `a` sorts first, 0 if
 * they are equal, positive otherwise.
 */
static inline int plugin_compare(const void *a, const void *b, int len) {
    return len > 0 ? __builtin_memcmp(a, b, (__SIZE_TYPE__)len) : 0;
}

#if defined(__wasm__)
/*
 * The functions clang calls for copies, fills and comparisons it recognises
 * (loops, struct assignment, `= {0}`, __builtin_mem*), defined in the plugin
 * because a plugin links no libc and may import nothing.
 *
 * Weak, so that a plugin built from several files that all include this header
 * links (one copy is kept, the rest are dropped, as are all of them when
 * unused) and a plugin's own strong definition wins. `no_builtin` keeps clang
 * from recognising each function's own loop as the function itself, which
 * would make it call itself (the checker would refuse that as recursion).
 */
#define WASM_PLUGIN_LIBC_HELPER WASM_PLUGIN_EXTERN_C __attribute__((weak, no_builtin))

WASM_PLUGIN_LIBC_HELPER void *memcpy(void *dst, const void *src, __SIZE_TYPE__ len) {
    unsigned char *d = (unsigned char *)dst;
    const unsigned char *s = (const unsigned char *)src;
    while (len--) {
        *d++ = *s++;
    }
    return dst;
}

WASM_PLUGIN_LIBC_HELPER void *memmove(void *dst, const void *src, __SIZE_TYPE__ len) {
    unsigned char *d = (unsigned char *)dst;
    const unsigned char *s = (const unsigned char *)src;
    if (d < s) {
        while (len--) {
            *d++ = *s++;
        }
    } else if (d > s) {
        while (len--) {
            d[len] = s[len];
        }
    }
    return dst;
}

WASM_PLUGIN_LIBC_HELPER void *memset(void *dst, int byte, __SIZE_TYPE__ len) {
    unsigned char *d = (unsigned char *)dst;
    while (len--) {
        *d++ = (unsigned char)byte;
    }
    return dst;
}

WASM_PLUGIN_LIBC_HELPER int memcmp(const void *a, const void *b, __SIZE_TYPE__ len) {
    const unsigned char *x = (const unsigned char *)a;
    const unsigned char *y = (const unsigned char *)b;
    for (; len; len--, x++, y++) {
        if (*x != *y) {
            return *x < *y ? -1 : 1;
        }
    }
    return 0;
}

/* What clang turns `memcmp(...) == 0` into on some targets. */
WASM_PLUGIN_LIBC_HELPER int bcmp(const void *a, const void *b, __SIZE_TYPE__ len) {
    return memcmp(a, b, len);
}
#endif /* __wasm__ */

#endif /* WASM_PLUGIN_V2_H */
