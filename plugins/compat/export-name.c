// A plugin written to the seed's original contract, as a C author would write it without this
// project's header: three functions exported by name with clang's `export_name` attribute, no
// wasm_plugin.h, so no ABI version marker. The host treats it as ABI v1 and runs it.
//
// Built as `clang --target=wasm32-wasi` and `--target=wasm32` (each at -O0, -O2 and -Oz):
// plugin-variant: wasm32-wasi --target=wasm32-wasi
// plugin-variant: wasm32 --target=wasm32
//
// Behaviour, shared by every plugin in plugins/compat/ so one table of expectations tests all:
//   init()      0; -2 if called again before cleanup()
//   process(x)  -1 before init(); x * x for 0 <= x <= 46340; -4 for x > 46340 (the square does
//               not fit an int); for x < 0 the error code x itself when x is -1, -2 or -4 (so a
//               host can reach every error path through the input), -3 for any other x < 0
//   cleanup()   0; -1 if not initialized

static int initialized;

__attribute__((export_name("init"))) int init(void) {
    if (initialized) return -2;
    initialized = 1;
    return 0;
}

__attribute__((export_name("process"))) int process(int input) {
    if (!initialized) return -1;
    if (input == -1 || input == -2 || input == -4) return input;
    if (input < 0) return -3;
    if (input > 46340) return -4;
    return input * input;
}

__attribute__((export_name("cleanup"))) int cleanup(void) {
    if (!initialized) return -1;
    initialized = 0;
    return 0;
}
