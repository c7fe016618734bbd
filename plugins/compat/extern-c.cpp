// A plugin written to the seed's original contract in C++: the three functions have C linkage
// (`extern "C"`, so their names are not mangled) and are exported by linker flags. No
// wasm_plugin.h, so no ABI version marker: the host treats it as ABI v1.
//
// plugin-flags: -Wl,--export=init -Wl,--export=process -Wl,--export=cleanup
//
// Behaviour: as plugins/compat/export-name.c.

namespace {

bool initialized = false;

// The largest x whose square fits an int.
constexpr int max_root = 46340;

bool is_reported_error_code(int input) { return input == -1 || input == -2 || input == -4; }

}  // namespace

extern "C" {

int init() {
    if (initialized) return -2;
    initialized = true;
    return 0;
}

int process(int input) {
    if (!initialized) return -1;
    if (is_reported_error_code(input)) return input;
    if (input < 0) return -3;
    if (input > max_root) return -4;
    return input * input;
}

int cleanup() {
    if (!initialized) return -1;
    initialized = false;
    return 0;
}

}  // extern "C"
