// redact: masks e-mail addresses and payment card numbers in text, for logs and support
// tickets that must not carry them. The output is exactly as long as the input, every masked
// byte becomes '*', and everything else is copied unchanged. Stateless but for its
// configuration. Buffers: 64 KiB each, configuration 4 KiB.
//
//   init()             0 (PLUGIN_OK), or -3 for a configuration it refuses (see below)
//   cleanup()          0, always
//   fn_redact(n)       the input with the configured kinds masked (default: both) and the
//                      configured JSON fields hidden; n bytes out
//   fn_emails(n)       the input with only e-mail addresses masked; n bytes out
//   fn_cards(n)        the input with only card numbers masked; n bytes out
//
// An e-mail address is `local@domain`: `local` is 1 to 64 of A-Z a-z 0-9 and . _ % + -, not
// starting or ending with '.'; `domain` is two or more labels of A-Z a-z 0-9 and '-' (1 to 63
// each, not starting or ending with '-') separated by single dots, the last label at least 2
// letters. The longest such text around an '@' is taken, and the whole address, '@' included,
// is masked: "mail bob.smith@example.co.uk now" -> "mail *********************** now". A trailing
// dot is not part of the address ("x@example.com." keeps its final '.').
//
// A card number is 13 to 19 digits, optionally grouped by single spaces or single dashes
// (not mixed), that passes the Luhn check and is not part of a longer run of digits or word
// characters. Every digit but the last four is masked, separators are kept:
// "card 4111 1111 1111 1111." -> "card **** **** **** 1111.". Digit runs that fail the Luhn
// check (order numbers, phone numbers) are left alone: "4111 1111 1111 1112" is unchanged.
//
// A negative n, or n above the input capacity, is -3 (PLUGIN_ERR_INVALID_ARGUMENT).
//
// Configuration (optional, at most 4 KiB of JSON; see README, "Plugin configuration"):
//
//   {"mask": ["emails", "cards"], "fields": ["password", "ssn"]}
//
// `mask` is what fn_redact masks (default: both kinds; [] masks neither); `fields` names JSON
// fields whose values fn_redact hides wherever they appear in the input: a string value's
// characters between its quotes, or a whole number, literal, object or array, each byte
// becoming '*' ("{\"ssn\": \"078-05-1120\"}" -> "{\"ssn\": \"***********\"}"). Default: none;
// at most 16 names of 1 to 64 bytes without escapes. fn_emails and fn_cards do what their
// names say whatever the configuration. init() refuses (-3) a configuration that is not an
// object of these two keys with those values.

#include <wasm_plugin_v2.h>

PLUGIN_BUFFERS(65536, 65536)
PLUGIN_CONFIG(4096)

enum { EMAILS = 1, CARDS = 2 };

enum { MAX_FIELDS = 16, MAX_FIELD_LEN = 64 };

/* What init() read from the configuration; reset with every instance. */
static int configured_kinds = EMAILS | CARDS;
static int field_count;
static int field_lengths[MAX_FIELDS];
static unsigned char fields[MAX_FIELDS][MAX_FIELD_LEN];

/* A cursor over the configuration. */
struct reader {
    const unsigned char *text;
    int len;
    int at;
};

static void skip_space(struct reader *r) {
    while (r->at < r->len &&
           (r->text[r->at] == ' ' || r->text[r->at] == '\t' || r->text[r->at] == '\n' || r->text[r->at] == '\r')) {
        r->at++;
    }
}

static int take(struct reader *r, unsigned char c) {
    skip_space(r);
    if (r->at < r->len && r->text[r->at] == c) {
        r->at++;
        return 1;
    }
    return 0;
}

/* A string without escapes: its start and length, or 0 if there is none here. */
static int read_string(struct reader *r, const unsigned char **start, int *length) {
    if (!take(r, '"')) {
        return 0;
    }
    int begin = r->at;
    while (r->at < r->len && r->text[r->at] != '"') {
        if (r->text[r->at] == '\\' || r->text[r->at] < 0x20) {
            return 0;
        }
        r->at++;
    }
    if (r->at == r->len) {
        return 0;
    }
    *start = r->text + begin;
    *length = r->at - begin;
    r->at++;
    return 1;
}

static int equals(const unsigned char *text, int length, const char *word) {
    int i = 0;
    for (; i < length; i++) {
        if (word[i] == 0 || (unsigned char)word[i] != text[i]) {
            return 0;
        }
    }
    return word[i] == 0;
}

/* `"mask": [...]`'s array; PLUGIN_OK or -3. */
static int read_mask(struct reader *r) {
    if (!take(r, '[')) {
        return PLUGIN_ERR_INVALID_ARGUMENT;
    }
    configured_kinds = 0;
    if (take(r, ']')) {
        return PLUGIN_OK;
    }
    do {
        const unsigned char *kind;
        int length;
        if (!read_string(r, &kind, &length)) {
            return PLUGIN_ERR_INVALID_ARGUMENT;
        }
        if (equals(kind, length, "emails")) {
            configured_kinds |= EMAILS;
        } else if (equals(kind, length, "cards")) {
            configured_kinds |= CARDS;
        } else {
            return PLUGIN_ERR_INVALID_ARGUMENT;
        }
    } while (take(r, ','));
    return take(r, ']') ? PLUGIN_OK : PLUGIN_ERR_INVALID_ARGUMENT;
}

/* `"fields": [...]`'s array; PLUGIN_OK or -3. */
static int read_fields(struct reader *r) {
    if (!take(r, '[')) {
        return PLUGIN_ERR_INVALID_ARGUMENT;
    }
    if (take(r, ']')) {
        return PLUGIN_OK;
    }
    do {
        const unsigned char *name;
        int length;
        if (!read_string(r, &name, &length) || length == 0 || length > MAX_FIELD_LEN || field_count == MAX_FIELDS) {
            return PLUGIN_ERR_INVALID_ARGUMENT;
        }
        plugin_copy(fields[field_count], name, length);
        field_lengths[field_count++] = length;
    } while (take(r, ','));
    return take(r, ']') ? PLUGIN_OK : PLUGIN_ERR_INVALID_ARGUMENT;
}

/* Reads the configuration (none: the defaults); PLUGIN_OK, or -3 to refuse it. */
static int configure(const unsigned char *text, int len) {
    if (len == 0) {
        return PLUGIN_OK;
    }
    struct reader r = {text, len, 0};
    if (!take(&r, '{')) {
        return PLUGIN_ERR_INVALID_ARGUMENT;
    }
    if (!take(&r, '}')) {
        do {
            const unsigned char *key;
            int length;
            if (!read_string(&r, &key, &length) || !take(&r, ':')) {
                return PLUGIN_ERR_INVALID_ARGUMENT;
            }
            int read;
            if (equals(key, length, "mask")) {
                read = read_mask(&r);
            } else if (equals(key, length, "fields")) {
                read = read_fields(&r);
            } else {
                read = PLUGIN_ERR_INVALID_ARGUMENT;
            }
            if (read != PLUGIN_OK) {
                return read;
            }
        } while (take(&r, ','));
        if (!take(&r, '}')) {
            return PLUGIN_ERR_INVALID_ARGUMENT;
        }
    }
    skip_space(&r);
    return r.at == r.len ? PLUGIN_OK : PLUGIN_ERR_INVALID_ARGUMENT;
}

PLUGIN_EXPORT(init) int init(void) {
    return configure(PLUGIN_CONFIG_DATA, PLUGIN_CONFIG_LENGTH());
}

PLUGIN_EXPORT(cleanup) int cleanup(void) {
    return PLUGIN_OK;
}

static int is_digit(unsigned char c) {
    return c >= '0' && c <= '9';
}

static int is_alnum(unsigned char c) {
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_local_char(unsigned char c) {
    return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}

/* The length of a valid domain starting at text[0] (at most `available` bytes), or 0. Labels
 * are taken greedily; a final '.' or '-' that would end the domain badly is left out. */
static int domain_length(const unsigned char *text, int available) {
    int end = 0;       /* the end of the last complete label */
    int labels = 0;
    int last_alpha = 1; /* whether the last complete label is all letters (a TLD) */
    int i = 0;
    while (i < available) {
        int start = i;
        int alpha = 1;
        while (i < available && (is_alnum(text[i]) || text[i] == '-') && i - start < 63) {
            alpha &= !is_digit(text[i]) && text[i] != '-';
            i++;
        }
        int len = i - start;
        if (len == 0 || text[start] == '-' || text[i - 1] == '-') {
            break;
        }
        labels++;
        end = i;
        last_alpha = alpha && len >= 2;
        if (i + 1 < available && text[i] == '.' && is_alnum(text[i + 1])) {
            i++;
            continue;
        }
        break;
    }
    /* A domain whose last label is not a TLD-like label is shortened to the last label that
     * is: "a@example.com.x1" keeps "example.com". */
    while (labels >= 2 && !last_alpha) {
        int cut = end - 1;
        while (cut > 0 && text[cut] != '.') {
            cut--;
        }
        end = cut;
        labels--;
        int start = cut - 1;
        while (start > 0 && text[start - 1] != '.') {
            start--;
        }
        last_alpha = end - start >= 2;
        for (int j = start; j < end; j++) {
            last_alpha &= !is_digit(text[j]) && text[j] != '-';
        }
    }
    return labels >= 2 ? end : 0;
}

static void mask_emails(const unsigned char *in, unsigned char *out, int len) {
    for (int at = 0; at < len; at++) {
        if (in[at] != '@') {
            continue;
        }
        int start = at;
        while (start > 0 && is_local_char(in[start - 1]) && at - (start - 1) <= 64) {
            start--;
        }
        while (start < at && in[start] == '.') {
            start++;
        }
        if (start == at || in[at - 1] == '.') {
            continue;
        }
        int domain = domain_length(in + at + 1, len - at - 1);
        if (domain == 0) {
            continue;
        }
        plugin_fill(out + start, '*', at + 1 + domain - start);
        at += domain;
    }
}

/* Whether the digits (ignoring separators) in text[start, end) pass the Luhn check. */
static int luhn_valid(const unsigned char *text, int start, int end) {
    int sum = 0;
    int doubled = 0;
    for (int i = end - 1; i >= start; i--) {
        if (!is_digit(text[i])) {
            continue;
        }
        int digit = text[i] - '0';
        if (doubled) {
            digit *= 2;
            if (digit > 9) {
                digit -= 9;
            }
        }
        sum += digit;
        doubled = !doubled;
    }
    return sum % 10 == 0;
}

static int is_word_char(unsigned char c) {
    return is_alnum(c) || c == '_';
}

static void mask_cards(const unsigned char *in, unsigned char *out, int len) {
    int i = 0;
    while (i < len) {
        if (!is_digit(in[i]) || (i > 0 && is_word_char(in[i - 1]))) {
            i++;
            continue;
        }
        // The longest candidate from here: digits with single separators of one kind.
        int end = i;
        int digits = 0;
        unsigned char separator = 0;
        int j = i;
        while (j < len) {
            if (is_digit(in[j])) {
                digits++;
                j++;
                end = j;
            } else if ((in[j] == ' ' || in[j] == '-') && (separator == 0 || separator == in[j]) && j + 1 < len &&
                       is_digit(in[j + 1])) {
                separator = in[j];
                j++;
            } else {
                break;
            }
        }
        int standalone = end == len || !is_word_char(in[end]);
        if (standalone && digits >= 13 && digits <= 19 && luhn_valid(in, i, end)) {
            int keep = 4;
            for (int k = end - 1; k >= i; k--) {
                if (!is_digit(in[k])) {
                    continue;
                }
                if (keep > 0) {
                    keep--;
                } else {
                    out[k] = '*';
                }
            }
        }
        // Skip the whole run either way: a run that is not a card holds no card either.
        i = end > i ? end : i + 1;
        while (i < len && is_word_char(in[i])) {
            i++;
        }
    }
}

/* The end of the JSON value starting at in[i] (a string's closing quote excluded), for
 * hiding it. */
static int value_end(const unsigned char *in, int len, int i) {
    if (in[i] == '"') {
        i++;
        while (i < len && in[i] != '"') {
            i += in[i] == '\\' ? 2 : 1;
        }
        return i < len ? i : len;
    }
    int depth = 0;
    int in_string = 0;
    for (; i < len; i++) {
        unsigned char c = in[i];
        if (in_string) {
            if (c == '\\') {
                i++;
            } else if (c == '"') {
                in_string = 0;
            }
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (depth == 0) {
                return i;
            }
            if (--depth == 0) {
                return i + 1;
            }
        } else if (depth == 0 && (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r')) {
            return i;
        }
    }
    return len;
}

/* Hides the value of every configured field: `"name"`, optional spaces, ':', optional
 * spaces, then the value. */
static void hide_fields(const unsigned char *in, unsigned char *out, int len) {
    for (int f = 0; f < field_count; f++) {
        int name_len = field_lengths[f];
        for (int i = 0; i + name_len + 2 <= len; i++) {
            if (in[i] != '"' || in[i + name_len + 1] != '"' || plugin_compare(in + i + 1, fields[f], name_len) != 0) {
                continue;
            }
            int j = i + name_len + 2;
            while (j < len && (in[j] == ' ' || in[j] == '\t')) {
                j++;
            }
            if (j >= len || in[j] != ':') {
                continue;
            }
            j++;
            while (j < len && (in[j] == ' ' || in[j] == '\t')) {
                j++;
            }
            if (j >= len) {
                continue;
            }
            int start = in[j] == '"' ? j + 1 : j;
            int end = value_end(in, len, j);
            plugin_fill(out + start, '*', end - start);
            i = end > i ? end - 1 : i;
        }
    }
}

static int redact(int input_len, int kinds) {
    if (input_len < 0 || input_len > PLUGIN_INPUT_CAPACITY || input_len > PLUGIN_OUTPUT_CAPACITY) {
        return PLUGIN_ERR_INVALID_ARGUMENT;
    }
    plugin_copy(plugin_output, plugin_input, input_len);
    // Both scans read the original input and only write masks, so their order does not matter.
    if (kinds & EMAILS) {
        mask_emails(plugin_input, plugin_output, input_len);
    }
    if (kinds & CARDS) {
        mask_cards(plugin_input, plugin_output, input_len);
    }
    return input_len;
}

PLUGIN_FUNCTION(redact) {
    int written = redact(input_len, configured_kinds);
    if (written > 0) {
        hide_fields(plugin_input, plugin_output, input_len);
    }
    return written;
}

PLUGIN_FUNCTION(emails) {
    return redact(input_len, EMAILS);
}

PLUGIN_FUNCTION(cards) {
    return redact(input_len, CARDS);
}
