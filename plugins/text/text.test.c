// Native test of text.c's functions (see plugins/native_test.h).
#include "text.c"

#include <native_test.h>

int main(void) {
    EXPECT_EQ(init(), PLUGIN_OK);
    EXPECT_CALL(fn_upper, "hello, World", "HELLO, WORLD");
    EXPECT_CALL(fn_upper, "", "");
    EXPECT_CALL(fn_upper, "añb 123", "AñB 123");
    EXPECT_CALL(fn_lower, "Hello, WORLD", "hello, world");
    EXPECT_CALL(fn_lower, "ÀBC", "Àbc");
    EXPECT_CALL(fn_reverse, "", "");
    EXPECT_CALL(fn_reverse, "abc", "cba");
    EXPECT_CALL(fn_reverse, "añb", "bña");
    EXPECT_CALL(fn_reverse, "a€😀z", "z😀€a");
    EXPECT_CODE(fn_reverse, "\x80", PLUGIN_ERR_INVALID_ARGUMENT);        // stray continuation byte
    EXPECT_CODE(fn_reverse, "ab\xE2\x82", PLUGIN_ERR_INVALID_ARGUMENT);   // truncated sequence
    EXPECT_CODE(fn_reverse, "\xC0\xAF", PLUGIN_ERR_INVALID_ARGUMENT);     // over-long '/'
    EXPECT_CODE(fn_reverse, "\xED\xA0\x80", PLUGIN_ERR_INVALID_ARGUMENT); // surrogate U+D800
    EXPECT_CODE(fn_reverse, "\xF4\x90\x80\x80", PLUGIN_ERR_INVALID_ARGUMENT); // above U+10FFFF
    EXPECT_CALL(fn_word_count, "", "0");
    EXPECT_CALL(fn_word_count, "   ", "0");
    EXPECT_CALL(fn_word_count, "one", "1");
    EXPECT_CALL(fn_word_count, "  one two\tthree\n", "3");
    EXPECT_CALL(fn_word_count, "a\r\nb\vc\fd", "4");

    // A full buffer: 65536 bytes in, 65536 out, and 32768 words.
    static char big[65536];
    for (int i = 0; i < 65536; i++) {
        big[i] = (i % 2) ? ' ' : 'x';
    }
    EXPECT_EQ(call_with(fn_upper, big, 65536), 65536);
    EXPECT_EQ(plugin_output[65534], 'X');
    EXPECT_EQ(call_with(fn_word_count, big, 65536), 5);
    EXPECT_EQ(memcmp(plugin_output, "32768", 5), 0);
    // Lengths a correct host never sends are refused, not read.
    EXPECT_EQ(fn_upper(-1), PLUGIN_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(fn_word_count(65537), PLUGIN_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(cleanup(), PLUGIN_OK);
    return native_test_result("text");
}
