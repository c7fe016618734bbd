// Native test of sha256.c against FIPS 180-4's vectors (see plugins/native_test.h).
#include "sha256.c"

#include <native_test.h>

#define EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define TWO_BLOCKS "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
#define MILLION_A "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"

/* Streams `len` bytes of `data` in chunks of `chunk` bytes; returns end()'s result. */
static int stream_in_chunks(const unsigned char *data, long len, int chunk) {
    EXPECT_EQ(stream_sha256sum_begin(), PLUGIN_OK);
    for (long offset = 0; offset < len; offset += chunk) {
        int n = len - offset < chunk ? (int)(len - offset) : chunk;
        EXPECT_EQ(call_with(stream_sha256sum_feed, data + offset, n), 0);
    }
    return stream_sha256sum_end();
}

int main(void) {
    EXPECT_EQ(init(), PLUGIN_OK);
    EXPECT_CALL(fn_sha256, "", EMPTY);
    EXPECT_CALL(fn_sha256, "abc", ABC);
    EXPECT_CALL(fn_sha256, "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", TWO_BLOCKS);

    // One million 'a's, as a stream in chunks of every awkward size: 1 byte, around a block,
    // and the whole input buffer.
    static unsigned char million[1000000];
    memset(million, 'a', sizeof million);
    int chunks[] = {1, 63, 64, 65, 1000, 4096, 65536};
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        int chunk = chunks[i];
        // One byte at a time is slow under the sanitizers; 100 KB of it covers every path.
        long len = chunk == 1 ? 100000 : (long)sizeof million;
        int result = stream_in_chunks(million, len, chunk);
        EXPECT_EQ(result, 64);
        if (len == (long)sizeof million) {
            expect_output_at(__FILE__, __LINE__, "a million 'a's", result, MILLION_A, 64);
        }
    }
    // The one-shot function and the stream agree on every length around a block boundary.
    for (int len = 0; len <= 200; len++) {
        EXPECT_EQ(call_with(fn_sha256, million, len), 64);
        unsigned char once[64];
        memcpy(once, plugin_output, 64);
        EXPECT_EQ(stream_in_chunks(million, len, 7), 64);
        EXPECT_EQ(memcmp(once, plugin_output, 64), 0);
    }
    // An empty stream is the digest of "".
    EXPECT_EQ(stream_sha256sum_begin(), PLUGIN_OK);
    EXPECT_EQ(call_with(stream_sha256sum_feed, "", 0), 0);
    expect_output_at(__FILE__, __LINE__, "empty stream", stream_sha256sum_end(), EMPTY, 64);
    // Out of order: feed or end without begin.
    EXPECT_EQ(stream_sha256sum_feed(3), PLUGIN_ERR_NOT_INITIALIZED);
    EXPECT_EQ(stream_sha256sum_end(), PLUGIN_ERR_NOT_INITIALIZED);
    // Lengths a correct host never sends.
    EXPECT_EQ(fn_sha256(-1), PLUGIN_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(fn_sha256(65537), PLUGIN_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(cleanup(), PLUGIN_OK);
    return native_test_result("sha256");
}
