// csvsum: per-key totals of a CSV of `key,amount` lines (sales by region, bytes by client,
// cents by account...), once for an input that fits the input buffer and as a stream for a file
// of any length fed in chunks of any size: a chunk may end in the middle of a line. Buffers:
// 64 KiB of input, 32 KiB of output.
//
// Input: lines ending in "\n" ("\r\n" too; the last line needs no newline). Empty lines are
// skipped, and so is a first line that is exactly the header "key,amount". Every other line is
// `key,amount`: `key` is 1 to 32 bytes without ',', '"', '\r' or '\n' (no quoting), `amount`
// an integer of 1 to 18 digits with an optional '+' or '-' (use cents for money: the ABI has no
// floating point). At most 256 distinct keys.
//
// Output: the CSV "key,count,sum,min,max\n" followed by one line per key, sorted by key (bytes
// compared as unsigned), each ending in "\n":
//   "b,5\na,1\nb,-2\n" -> "key,count,sum,min,max\na,1,1,1,1\nb,2,3,-2,5\n"
//   ""                 -> "key,count,sum,min,max\n"
//
//   init(), cleanup()          0 (PLUGIN_OK), always
//   fn_totals(n)               the totals of the n input bytes: the output's length (it ends
//                              a stream under way on the same instance)
//   stream_aggregate_begin()   starts new totals: 0 (a stream under way starts over)
//   stream_aggregate_feed(n)   adds the next n bytes: 0 output bytes
//   stream_aggregate_end()     the totals of everything fed since begin: the output's length;
//                              the stream is over
//
// Errors, each -3 (PLUGIN_ERR_INVALID_ARGUMENT): a line that is not `key,amount` as above, a
// line longer than 128 bytes, a 257th key, or a sum outside the signed 64-bit range. After an
// error the stream is over: feed and end answer -1 (PLUGIN_ERR_NOT_INITIALIZED) until the next
// begin, as they do without a begin. A negative n, or n above the input capacity, is -3.

#include <wasm_plugin_v2.h>

PLUGIN_BUFFERS(65536, 32768)

PLUGIN_EXPORT(init) int init(void) {
    return PLUGIN_OK;
}

PLUGIN_EXPORT(cleanup) int cleanup(void) {
    return PLUGIN_OK;
}

enum { MAX_KEYS = 256, MAX_KEY = 32, MAX_LINE = 128, MAX_DIGITS = 18 };

struct total {
    unsigned char key[MAX_KEY];
    int key_len;
    long long count, sum, min, max;
};

/* The totals so far, sorted by key; the unfinished line a chunk ended in; whether any line has
 * been seen (the header may only be first); whether a stream is under way. */
static struct total totals[MAX_KEYS];
static int key_count;
static unsigned char carry[MAX_LINE];
static int carry_len;
static int seen_line;
static int streaming;

static void reset(void) {
    key_count = 0;
    carry_len = 0;
    seen_line = 0;
}

/* -1, 0 or 1 as key a sorts before, with or after b. */
static int compare_keys(const unsigned char *a, int a_len, const unsigned char *b, int b_len) {
    int common = a_len < b_len ? a_len : b_len;
    int order = plugin_compare(a, b, common);
    if (order != 0) {
        return order;
    }
    return (a_len > b_len) - (a_len < b_len);
}

/* Adds one amount to its key's total; 0, or an error code. */
static int add(const unsigned char *key, int key_len, long long amount) {
    int low = 0, high = key_count;
    while (low < high) {
        int middle = (low + high) / 2;
        int order = compare_keys(totals[middle].key, totals[middle].key_len, key, key_len);
        if (order == 0) {
            struct total *t = &totals[middle];
            if (__builtin_add_overflow(t->sum, amount, &t->sum)) {
                return PLUGIN_ERR_INVALID_ARGUMENT;
            }
            t->count++;
            t->min = amount < t->min ? amount : t->min;
            t->max = amount > t->max ? amount : t->max;
            return PLUGIN_OK;
        }
        if (order < 0) {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    if (key_count == MAX_KEYS) {
        return PLUGIN_ERR_INVALID_ARGUMENT;
    }
    plugin_copy(&totals[low + 1], &totals[low], (key_count - low) * (int)sizeof totals[0]);
    key_count++;
    struct total *t = &totals[low];
    plugin_copy(t->key, key, key_len);
    t->key_len = key_len;
    t->count = 1;
    t->sum = t->min = t->max = amount;
    return PLUGIN_OK;
}

/* Handles one line, without its "\n"; 0, or an error code. */
static int line(const unsigned char *text, int len) {
    if (len > 0 && text[len - 1] == '\r') {
        len--;
    }
    if (len == 0) {
        return PLUGIN_OK;
    }
    int first = !seen_line;
    seen_line = 1;
    if (first && len == 10 && plugin_compare(text, "key,amount", 10) == 0) {
        return PLUGIN_OK;
    }
    int comma = 0;
    while (comma < len && text[comma] != ',') {
        if (text[comma] == '"' || text[comma] == '\r') {
            return PLUGIN_ERR_INVALID_ARGUMENT;
        }
        comma++;
    }
    if (comma == 0 || comma > MAX_KEY || comma == len) {
        return PLUGIN_ERR_INVALID_ARGUMENT;
    }
    int i = comma + 1;
    int negative = 0;
    if (i < len && (text[i] == '-' || text[i] == '+')) {
        negative = text[i] == '-';
        i++;
    }
    int digits = len - i;
    if (digits < 1 || digits > MAX_DIGITS) {
        return PLUGIN_ERR_INVALID_ARGUMENT;
    }
    long long amount = 0;
    for (; i < len; i++) {
        if (text[i] < '0' || text[i] > '9') {
            return PLUGIN_ERR_INVALID_ARGUMENT;
        }
        amount = amount * 10 + (text[i] - '0');
    }
    return add(text, comma, negative ? -amount : amount);
}

/* Handles `len` more bytes, carrying an unfinished last line over; 0, or an error code. */
static int feed(const unsigned char *data, int len) {
    int start = 0;
    for (int i = 0; i < len; i++) {
        if (data[i] != '\n') {
            continue;
        }
        int result;
        if (carry_len > 0) {
            if (carry_len + (i - start) > MAX_LINE) {
                return PLUGIN_ERR_INVALID_ARGUMENT;
            }
            plugin_copy(carry + carry_len, data + start, i - start);
            result = line(carry, carry_len + (i - start));
            carry_len = 0;
        } else {
            if (i - start > MAX_LINE) {
                return PLUGIN_ERR_INVALID_ARGUMENT;
            }
            result = line(data + start, i - start);
        }
        if (result != PLUGIN_OK) {
            return result;
        }
        start = i + 1;
    }
    if (carry_len + (len - start) > MAX_LINE) {
        return PLUGIN_ERR_INVALID_ARGUMENT;
    }
    plugin_copy(carry + carry_len, data + start, len - start);
    carry_len += len - start;
    return PLUGIN_OK;
}

/* Writes `value` in decimal at `out`; returns the number of bytes. */
static int write_number(unsigned char *out, long long value) {
    unsigned long long magnitude = value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value;
    unsigned char digits[20];
    int count = 0;
    do {
        digits[count++] = (unsigned char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude > 0);
    int written = 0;
    if (value < 0) {
        out[written++] = '-';
    }
    while (count > 0) {
        out[written++] = digits[--count];
    }
    return written;
}

/* Finishes the last line and writes the totals; the output's length, or an error code. The
 * output always fits: 256 lines of at most 32 + 4 * 21 bytes, and the header. */
static int finish(void) {
    if (carry_len > 0) {
        int result = line(carry, carry_len);
        carry_len = 0;
        if (result != PLUGIN_OK) {
            return result;
        }
    }
    static const char header[] = "key,count,sum,min,max\n";
    int out = (int)sizeof header - 1;
    plugin_copy(plugin_output, header, out);
    for (int k = 0; k < key_count; k++) {
        const struct total *t = &totals[k];
        plugin_copy(plugin_output + out, t->key, t->key_len);
        out += t->key_len;
        const long long values[4] = {t->count, t->sum, t->min, t->max};
        for (int v = 0; v < 4; v++) {
            plugin_output[out++] = ',';
            out += write_number(plugin_output + out, values[v]);
        }
        plugin_output[out++] = '\n';
    }
    return out;
}

static int valid_length(int input_len) {
    return input_len >= 0 && input_len <= PLUGIN_INPUT_CAPACITY;
}

PLUGIN_FUNCTION(totals) {
    if (!valid_length(input_len)) {
        return PLUGIN_ERR_INVALID_ARGUMENT;
    }
    // The one-shot call shares the totals with the stream, so it ends a stream under way on
    // this instance (a host runs one or the other per instance anyway).
    streaming = 0;
    reset();
    int result = feed(plugin_input, input_len);
    if (result == PLUGIN_OK) {
        result = finish();
    }
    return result;
}

static int aggregate_begin(void) {
    reset();
    streaming = 1;
    return PLUGIN_OK;
}

static int aggregate_feed(int input_len) {
    if (!streaming) {
        return PLUGIN_ERR_NOT_INITIALIZED;
    }
    if (!valid_length(input_len)) {
        return PLUGIN_ERR_INVALID_ARGUMENT;
    }
    int result = feed(plugin_input, input_len);
    if (result != PLUGIN_OK) {
        streaming = 0;
        return result;
    }
    return 0;
}

static int aggregate_end(void) {
    if (!streaming) {
        return PLUGIN_ERR_NOT_INITIALIZED;
    }
    streaming = 0;
    return finish();
}

PLUGIN_STREAM(aggregate, aggregate_begin, aggregate_feed, aggregate_end)
