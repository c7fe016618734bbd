// checksum: the Luhn check digit of a number, the checksum used by payment card and many
// account numbers. Appending the digit to the number's decimal digits gives a number that
// passes the Luhn test. Stateless, so init() and cleanup() have nothing to do.
//
//   init()      0 (PLUGIN_OK), always
//   process(x)  the check digit, 0..=9, for x >= 0; works without init()
//               process(0) == 0, process(1) == 8 (18 is valid), process(12345) == 5,
//               process(1789372997) == 4 (Wikipedia's example), process(2147483647) == 1
//               -3 (PLUGIN_ERR_INVALID_ARGUMENT) for x < 0: a negative number has no digits
//                  to check
//   cleanup()   0 (PLUGIN_OK), always

#include <wasm_plugin.h>

PLUGIN_EXPORT(init) int init(void) {
    return PLUGIN_OK;
}

PLUGIN_EXPORT(process) int process(int input) {
    if (input < 0) {
        return PLUGIN_ERR_INVALID_ARGUMENT;
    }
    // Walk the digits from the right. The rightmost digit of the payload ends up second from
    // the right once the check digit is appended, so it is the first one to be doubled.
    int sum = 0;
    int doubled = 1;
    do {
        int digit = input % 10;
        if (doubled) {
            digit *= 2;
            if (digit > 9) {
                digit -= 9;
            }
        }
        sum += digit;
        doubled = !doubled;
        input /= 10;
    } while (input > 0);
    return (10 - sum % 10) % 10;
}

PLUGIN_EXPORT(cleanup) int cleanup(void) {
    return PLUGIN_OK;
}
