// redact: masks e-mail addresses and payment card numbers in text, for logs and support
// tickets that must not carry them. The output is exactly as long as the input, every masked
// byte becomes '*', and everything else is copied unchanged. Stateless. Buffers: 64 KiB each.
//
//   init(), cleanup()  0 (PLUGIN_OK), always
//   fn_redact(n)       the input with both kinds masked; n bytes out
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

#include <wasm_plugin_v2.h>

PLUGIN_BUFFERS(65536, 65536)

PLUGIN_EXPORT(init) int init(void) {
    return PLUGIN_OK;
}

PLUGIN_EXPORT(cleanup) int cleanup(void) {
    return PLUGIN_OK;
}

enum { EMAILS = 1, CARDS = 2 };

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
    return redact(input_len, EMAILS | CARDS);
}

PLUGIN_FUNCTION(emails) {
    return redact(input_len, EMAILS);
}

PLUGIN_FUNCTION(cards) {
    return redact(input_len, CARDS);
}
