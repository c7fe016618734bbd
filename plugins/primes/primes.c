// primes: counts the primes up to its input by trial division. Deliberately naive: it is the
// compute-bound plugin for benchmarks, and its cost grows with the input (about n * sqrt(n)
// / log(n) divisions). Stateless, so init() and cleanup() have nothing to do.
//
//   init()      0 (PLUGIN_OK), always
//   process(n)  the number of primes p <= n, for n <= 1000000; works without init()
//               0 for n <= 1 (including every negative n)
//               process(10) == 4, process(100) == 25, process(1000) == 168,
//               process(10000) == 1229, process(100000) == 9592, process(1000000) == 78498
//               -3 (PLUGIN_ERR_INVALID_ARGUMENT) for n > 1000000, which bounds the worst
//                  case at about 0.1 s when compiled ahead of time (far more interpreted)
//   cleanup()   0 (PLUGIN_OK), always

#include <wasm_plugin.h>

#define MAX_INPUT 1000000

// n must be at least 2. Divisors above sqrt(n) need not be tried: they pair with one below.
static int is_prime(int n) {
    if (n < 4) {
        return 1; // 2 and 3
    }
    if (n % 2 == 0) {
        return 0;
    }
    for (int divisor = 3; divisor * divisor <= n; divisor += 2) {
        if (n % divisor == 0) {
            return 0;
        }
    }
    return 1;
}

PLUGIN_EXPORT(init) int init(void) {
    return PLUGIN_OK;
}

PLUGIN_EXPORT(process) int process(int input) {
    if (input > MAX_INPUT) {
        return PLUGIN_ERR_INVALID_ARGUMENT;
    }
    int count = 0;
    for (int n = 2; n <= input; n++) {
        count += is_prime(n);
    }
    return count;
}

PLUGIN_EXPORT(cleanup) int cleanup(void) {
    return PLUGIN_OK;
}
