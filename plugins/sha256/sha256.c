// sha256: the SHA-256 digest (FIPS 180-4) of a byte string, as 64 lowercase hexadecimal
// characters without a newline, once for an input that fits the input buffer and as a stream
// for an input of any length (up to 2^61 - 1 bytes, SHA-256's own limit). Buffers: 64 KiB of
// input (the largest chunk a stream is fed at a time), 64 bytes of output.
//
//   init(), cleanup()         0 (PLUGIN_OK), always
//   fn_sha256(n)              the digest of the n input bytes: 64 bytes out.
//                             "" -> e3b0c442...b855, "abc" -> ba7816bf...15ad
//   stream_sha256sum_begin()  starts a digest: 0; a stream already begun starts over
//   stream_sha256sum_feed(n)  adds the next n bytes (any n from 0 to the input capacity, in
//                             chunks of any sizes): 0 output bytes; -1
//                             (PLUGIN_ERR_NOT_INITIALIZED) without a begin first
//   stream_sha256sum_end()    the digest of everything fed since begin: 64 bytes out, and the
//                             stream is over (a feed or end after it is -1 until the next begin)
//
// A negative n, or n above the input capacity, is -3 (PLUGIN_ERR_INVALID_ARGUMENT), as is a
// stream longer than 2^61 - 1 bytes.

#include <wasm_plugin_v2.h>

PLUGIN_BUFFERS(65536, 64)

PLUGIN_EXPORT(init) int init(void) {
    return PLUGIN_OK;
}

PLUGIN_EXPORT(cleanup) int cleanup(void) {
    return PLUGIN_OK;
}

/* The state of one digest: the chaining value, the bytes not yet hashed (less than a block)
 * and how many bytes were added in all. */
struct sha256 {
    unsigned int h[8];
    unsigned char block[64];
    unsigned int pending;
    unsigned long long length;
};

static const unsigned int K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/* The longest message SHA-256 defines, in bytes: its length in bits must fit 64 bits. */
#define SHA256_MAX_BYTES ((1ULL << 61) - 1)

static unsigned int rotr(unsigned int x, int n) {
    return (x >> n) | (x << (32 - n));
}

static void sha256_start(struct sha256 *s) {
    static const unsigned int initial[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                            0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    for (int i = 0; i < 8; i++) {
        s->h[i] = initial[i];
    }
    s->pending = 0;
    s->length = 0;
}

static void sha256_compress(unsigned int h[8], const unsigned char *block) {
    unsigned int w[64];
    for (int i = 0; i < 16; i++) {
        w[i] = (unsigned int)block[4 * i] << 24 | (unsigned int)block[4 * i + 1] << 16 |
               (unsigned int)block[4 * i + 2] << 8 | block[4 * i + 3];
    }
    for (int i = 16; i < 64; i++) {
        unsigned int s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        unsigned int s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    unsigned int a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        unsigned int t1 = k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        unsigned int t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += k;
}

/* Adds `len` bytes; 0, or -1 if the message would exceed SHA-256's limit. */
static int sha256_add(struct sha256 *s, const unsigned char *data, unsigned int len) {
    if (len > SHA256_MAX_BYTES - s->length) {
        return -1;
    }
    s->length += len;
    if (s->pending > 0) {
        unsigned int take = 64 - s->pending < len ? 64 - s->pending : len;
        plugin_copy(s->block + s->pending, data, (int)take);
        s->pending += take, data += take, len -= take;
        if (s->pending < 64) {
            return 0;
        }
        sha256_compress(s->h, s->block);
        s->pending = 0;
    }
    // Whole blocks straight from the input, without copying them.
    for (; len >= 64; data += 64, len -= 64) {
        sha256_compress(s->h, data);
    }
    plugin_copy(s->block, data, (int)len);
    s->pending = len;
    return 0;
}

/* Pads, finishes and writes the digest as 64 hex characters at `out`. */
static void sha256_finish_hex(struct sha256 *s, unsigned char out[64]) {
    static const char hex[] = "0123456789abcdef";
    unsigned long long bits = s->length * 8;
    s->block[s->pending++] = 0x80;
    if (s->pending > 56) {
        plugin_fill(s->block + s->pending, 0, (int)(64 - s->pending));
        sha256_compress(s->h, s->block);
        s->pending = 0;
    }
    plugin_fill(s->block + s->pending, 0, (int)(56 - s->pending));
    for (int i = 0; i < 8; i++) {
        s->block[56 + i] = (unsigned char)(bits >> (56 - 8 * i));
    }
    sha256_compress(s->h, s->block);
    for (int i = 0; i < 32; i++) {
        unsigned char byte = (unsigned char)(s->h[i / 4] >> (24 - 8 * (i % 4)));
        out[2 * i] = (unsigned char)hex[byte >> 4];
        out[2 * i + 1] = (unsigned char)hex[byte & 15];
    }
}

static int valid_length(int input_len) {
    return input_len >= 0 && input_len <= PLUGIN_INPUT_CAPACITY;
}

PLUGIN_FUNCTION(sha256) {
    if (!valid_length(input_len)) {
        return PLUGIN_ERR_INVALID_ARGUMENT;
    }
    struct sha256 digest;
    sha256_start(&digest);
    sha256_add(&digest, plugin_input, (unsigned int)input_len);
    sha256_finish_hex(&digest, plugin_output);
    return 64;
}

/* The stream's digest, and whether a stream is under way. */
static struct sha256 stream;
static int streaming;

static int sha256sum_begin(void) {
    sha256_start(&stream);
    streaming = 1;
    return PLUGIN_OK;
}

static int sha256sum_feed(int input_len) {
    if (!streaming) {
        return PLUGIN_ERR_NOT_INITIALIZED;
    }
    if (!valid_length(input_len) || sha256_add(&stream, plugin_input, (unsigned int)input_len) != 0) {
        return PLUGIN_ERR_INVALID_ARGUMENT;
    }
    return 0;
}

static int sha256sum_end(void) {
    if (!streaming) {
        return PLUGIN_ERR_NOT_INITIALIZED;
    }
    streaming = 0;
    sha256_finish_hex(&stream, plugin_output);
    return 64;
}

PLUGIN_STREAM(sha256sum, sha256sum_begin, sha256sum_feed, sha256sum_end)
