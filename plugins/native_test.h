/*
 * native_test.h - what the native tests of v2 plugins share (plugins/<name>/<name>.test.c).
 *
 * A native test includes its plugin's source and runs the plugin's functions as ordinary C on
 * the build machine, the way the host will call them in WebAssembly: copy the input into
 * plugin_input, call the function with its length, read the output from plugin_output. That
 * proves a plugin's logic (against known vectors) before, and independently of, the host.
 * `cargo test -p xtask` compiles each with the system C compiler under AddressSanitizer and
 * UndefinedBehaviorSanitizer and runs it: exit status 0 means every check passed.
 */
#ifndef NATIVE_TEST_H
#define NATIVE_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int native_test_failures;

/* Calls `function` on `len` bytes of `input`; returns its result. */
static int call_with(int (*function)(int), const void *input, int len) {
    if (len < 0 || len > PLUGIN_INPUT_CAPACITY) {
        fprintf(stderr, "test bug: input of %d bytes does not fit the input buffer\n", len);
        exit(2);
    }
    memcpy(plugin_input, input, (size_t)len);
    return function(len);
}

/* Checks that `result` is the length of exactly `expected` in plugin_output. */
static void expect_output_at(const char *file, int line, const char *what, int result, const void *expected,
                             int expected_len) {
    if (result != expected_len || memcmp(plugin_output, expected, (size_t)expected_len) != 0) {
        native_test_failures++;
        fprintf(stderr, "%s:%d: %s: expected %d bytes \"%.*s\", got %d", file, line, what, expected_len,
                expected_len, (const char *)expected, result);
        if (result > 0 && result <= PLUGIN_OUTPUT_CAPACITY) {
            fprintf(stderr, " bytes \"%.*s\"", result, (const char *)plugin_output);
        }
        fprintf(stderr, "\n");
    }
}

/* Checks that an int-valued expression has the expected value. */
static void expect_equal_at(const char *file, int line, const char *what, long long got, long long expected) {
    if (got != expected) {
        native_test_failures++;
        fprintf(stderr, "%s:%d: %s: expected %lld, got %lld\n", file, line, what, expected, got);
    }
}

/* `function` on the C string `input` gives the C string `expected`. */
#define EXPECT_CALL(function, input, expected)                                                          \
    expect_output_at(__FILE__, __LINE__, #function "(\"" input "\")",                                   \
                     call_with(function, input, (int)strlen(input)), expected, (int)strlen(expected))

/* `function` on the C string `input` returns `code` (an error code). */
#define EXPECT_CODE(function, input, code)                                                              \
    expect_equal_at(__FILE__, __LINE__, #function "(\"" input "\")", call_with(function, input, (int)strlen(input)), \
                    code)

#define EXPECT_EQ(got, expected) expect_equal_at(__FILE__, __LINE__, #got, (got), (expected))

/* What main returns: 0 when every check passed. */
static int native_test_result(const char *name) {
    if (native_test_failures > 0) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, native_test_failures);
        return 1;
    }
    printf("%s: all checks passed\n", name);
    return 0;
}

#endif /* NATIVE_TEST_H */
