// Native test of csvsum.c (see plugins/native_test.h).
#include "csvsum.c"

#include <native_test.h>

#define HEADER "key,count,sum,min,max\n"

/* Streams the C string `text` in chunks of `chunk` bytes; returns end()'s result. */
static int stream_text(const char *text, int chunk) {
    int len = (int)strlen(text);
    EXPECT_EQ(stream_aggregate_begin(), PLUGIN_OK);
    for (int offset = 0; offset < len; offset += chunk) {
        int n = len - offset < chunk ? len - offset : chunk;
        int fed = call_with(stream_aggregate_feed, text + offset, n);
        if (fed != 0) {
            return fed;
        }
    }
    return stream_aggregate_end();
}

int main(void) {
    EXPECT_EQ(init(), PLUGIN_OK);
    EXPECT_CALL(fn_totals, "", HEADER);
    EXPECT_CALL(fn_totals, "b,5\na,1\nb,-2\n", HEADER "a,1,1,1,1\nb,2,3,-2,5\n");
    EXPECT_CALL(fn_totals, "key,amount\r\nx,+7\r\n\r\nx,3", HEADER "x,2,10,3,7\n");
    EXPECT_CALL(fn_totals, "B,1\na,1\nAa,1\n", HEADER "Aa,1,1,1,1\nB,1,1,1,1\na,1,1,1,1\n");
    EXPECT_CALL(fn_totals, "k,999999999999999999\nk,-999999999999999999\n", HEADER "k,2,0,-999999999999999999,999999999999999999\n");
    // Malformed input.
    EXPECT_CODE(fn_totals, "x,1\nkey,amount\n", PLUGIN_ERR_INVALID_ARGUMENT);  // a header later on
    EXPECT_CODE(fn_totals, "novalue\n", PLUGIN_ERR_INVALID_ARGUMENT);
    EXPECT_CODE(fn_totals, ",5\n", PLUGIN_ERR_INVALID_ARGUMENT);
    EXPECT_CODE(fn_totals, "k,\n", PLUGIN_ERR_INVALID_ARGUMENT);
    EXPECT_CODE(fn_totals, "k,1.5\n", PLUGIN_ERR_INVALID_ARGUMENT);
    EXPECT_CODE(fn_totals, "k,-\n", PLUGIN_ERR_INVALID_ARGUMENT);
    EXPECT_CODE(fn_totals, "\"k\",1\n", PLUGIN_ERR_INVALID_ARGUMENT);
    EXPECT_CODE(fn_totals, "k,1234567890123456789\n", PLUGIN_ERR_INVALID_ARGUMENT);  // 19 digits
    EXPECT_CODE(fn_totals, "abcdefghijabcdefghijabcdefghijabc,1\n", PLUGIN_ERR_INVALID_ARGUMENT);  // 33-byte key
    // The sum leaves the signed 64-bit range after ten large amounts.
    static char big[1024];
    big[0] = 0;
    for (int i = 0; i < 10; i++) {
        strcat(big, "k,999999999999999999\n");
    }
    EXPECT_EQ(call_with(fn_totals, big, (int)strlen(big)), PLUGIN_ERR_INVALID_ARGUMENT);
    // 256 keys fit, the 257th does not; the output of 256 keys fits the output buffer.
    static char keys[65536];
    int len = 0;
    for (int i = 0; i < 257; i++) {
        len += sprintf(keys + len, "key-number-%021d,-999999999999999999\n", i);
    }
    EXPECT_EQ(call_with(fn_totals, keys, len), PLUGIN_ERR_INVALID_ARGUMENT);
    int last_line = (int)strlen("key-number-000000000000000000256,-999999999999999999\n");
    int out = call_with(fn_totals, keys, len - last_line);
    EXPECT_EQ(out > 0 && out <= PLUGIN_OUTPUT_CAPACITY, 1);
    // Streams give what the one-shot function gives, whatever the chunk size, lines split or not.
    const char *sales = "key,amount\nnorth,120\nsouth,80\nnorth,-20\neast,5\nsouth,1\n";
    int once = call_with(fn_totals, sales, (int)strlen(sales));
    static unsigned char expected[32768];
    memcpy(expected, plugin_output, (size_t)once);
    for (int chunk = 1; chunk <= 60; chunk++) {
        int streamed = stream_text(sales, chunk);
        expect_output_at(__FILE__, __LINE__, "stream", streamed, expected, once);
    }
    EXPECT_EQ(memcmp(expected, HEADER "east,1,5,5,5\nnorth,2,100,-20,120\nsouth,2,81,1,80\n", (size_t)once), 0);
    // A line longer than 128 bytes, split over chunks, is refused, and ends the stream.
    static char long_line[200];
    memset(long_line, 'k', 150);
    strcpy(long_line + 150, ",1\n");
    EXPECT_EQ(stream_text(long_line, 100), PLUGIN_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(stream_aggregate_end(), PLUGIN_ERR_NOT_INITIALIZED);
    EXPECT_EQ(stream_aggregate_feed(0), PLUGIN_ERR_NOT_INITIALIZED);
    EXPECT_EQ(fn_totals(-1), PLUGIN_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(cleanup(), PLUGIN_OK);
    return native_test_result("csvsum");
}
