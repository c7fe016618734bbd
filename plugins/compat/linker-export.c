// A plugin written to the seed's original contract with plain C functions, exported by linker
// flags instead of attributes, and without wasm_plugin.h (so no ABI version marker: the host
// treats it as ABI v1). `-Wl,--export-dynamic` changes nothing here, because clang gives
// wasm32 symbols hidden visibility by default; see plugins/invalid/export-dynamic.c for the
// build where it does.
//
// plugin-flags: -Wl,--export=init -Wl,--export=process -Wl,--export=cleanup
// plugin-variant: plain
// plugin-variant: export-dynamic -Wl,--export-dynamic
//
// Behaviour: as plugins/compat/export-name.c.

static int initialized;

int init(void) {
    if (initialized) return -2;
    initialized = 1;
    return 0;
}

int process(int input) {
    if (!initialized) return -1;
    if (input == -1 || input == -2 || input == -4) return input;
    if (input < 0) return -3;
    if (input > 46340) return -4;
    return input * input;
}

int cleanup(void) {
    if (!initialized) return -1;
    initialized = 0;
    return 0;
}
