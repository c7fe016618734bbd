/*
 * wasm_plugin.h - the plugin ABI, version 1, for plugins written in C or C++.
 *
 * This is the only header a v1 plugin includes. It declares the three
 * functions every v1 plugin defines, the error codes they return, and it
 * records the ABI version the plugin was built against inside the compiled
 * .wasm file. (A v2 plugin, which passes bytes through memory, includes
 * wasm_plugin_v2.h instead; that header includes this one for what both
 * versions share: the error codes, PLUGIN_EXPORT and the version marker.)
 *
 * A complete plugin:
 *
 *     #include "wasm_plugin.h"
 *
 *     static int initialized;
 *
 *     PLUGIN_EXPORT(init) int init(void) {
 *         if (initialized) return PLUGIN_ERR_ALREADY_INITIALIZED;
 *         initialized = 1;
 *         return PLUGIN_OK;
 *     }
 *
 *     PLUGIN_EXPORT(process) int process(int input) {
 *         if (!initialized) return PLUGIN_ERR_NOT_INITIALIZED;
 *         return 2 * input + 1;
 *     }
 *
 *     PLUGIN_EXPORT(cleanup) int cleanup(void) {
 *         initialized = 0;
 *         return PLUGIN_OK;
 *     }
 *
 * Build it with clang for wasm32 without any standard library, for example:
 *
 *     clang --target=wasm32 -nostdlib -O2 -Wl,--no-entry -I plugin-sdk/include \
 *           -o hello.wasm hello.c
 *
 * What the host checks before it runs a plugin (`cargo xtask check-abi` runs
 * the same checks, and prints how to fix each problem it finds):
 *
 *   - it exports exactly `init`, `process` and `cleanup` with the signatures
 *     below (and, optionally, its linear memory as `memory`);
 *   - it imports nothing: no libc, no WASI, no host functions;
 *   - it never allocates dynamically: no malloc/free, no C++ new/delete, and no
 *     `memory.grow`; keep state in static variables instead;
 *   - it uses no floating point at all (types, constants or instructions);
 *   - it has no start function and no recursion (directly or through other
 *     functions, including calls through function pointers);
 *   - it uses only the "lime1" WebAssembly features (no SIMD, threads,
 *     exceptions, tail calls, reference types, multiple memories, ...);
 *   - its linear memory starts small (1 MiB by default);
 *   - it carries this header's ABI version (see WASM_PLUGIN_ABI_VERSION).
 */
#ifndef WASM_PLUGIN_H
#define WASM_PLUGIN_H

/*
 * The version of the plugin ABI this header describes: 1, unless
 * wasm_plugin_v2.h included it and set 2.
 *
 * It changes only when a plugin built against the old header could misbehave
 * under a host expecting the new one; the host refuses a plugin whose version
 * it does not support instead of guessing.
 */
#ifndef WASM_PLUGIN_ABI_VERSION
#define WASM_PLUGIN_ABI_VERSION 1
#endif
#if WASM_PLUGIN_ABI_VERSION == 2 && !defined(WASM_PLUGIN_V2_H)
#error "for plugin ABI v2, include wasm_plugin_v2.h instead of wasm_plugin.h"
#elif WASM_PLUGIN_ABI_VERSION != 1 && WASM_PLUGIN_ABI_VERSION != 2
#error "WASM_PLUGIN_ABI_VERSION must be 1 (wasm_plugin.h) or 2 (wasm_plugin_v2.h)"
#endif

/* Returned by init() and cleanup() on success. */
#define PLUGIN_OK 0
/* process() or cleanup() was called before init() succeeded. */
#define PLUGIN_ERR_NOT_INITIALIZED -1
/* init() was called twice without cleanup() in between. */
#define PLUGIN_ERR_ALREADY_INITIALIZED -2
/* The input is outside the range this plugin accepts. */
#define PLUGIN_ERR_INVALID_ARGUMENT -3
/* Anything else went wrong inside the plugin. */
#define PLUGIN_ERR_INTERNAL -4

/*
 * Gives a declaration C linkage in C++ (so the symbol is not name-mangled) and
 * expands to nothing in C.
 */
#ifdef __cplusplus
#define WASM_PLUGIN_EXTERN_C extern "C"
#else
#define WASM_PLUGIN_EXTERN_C
#endif

/*
 * Marks a function as a plugin entry point exported under exactly `name`.
 *
 * `export_name` makes the export name independent of the symbol name, of C++
 * name mangling and of linker flags such as --export-all, so the host always
 * finds `init`, `process` and `cleanup`. Put it in front of each definition:
 *
 *     PLUGIN_EXPORT(process) int process(int input) { ... }
 *
 * The declarations below already carry it, so it is optional on definitions
 * that follow this header; writing it anyway keeps each entry point easy to
 * spot and keeps C++ definitions `extern "C"` even if they are moved.
 */
#if defined(__wasm__)
#define PLUGIN_EXPORT(name) WASM_PLUGIN_EXTERN_C __attribute__((export_name(#name)))
#else
/* Native builds (for example unit tests of a plugin's logic) have no exports. */
#define PLUGIN_EXPORT(name) WASM_PLUGIN_EXTERN_C
#endif

/*
 * Called once after the plugin is loaded, before any process() call (v2:
 * before any function). Returns PLUGIN_OK, or PLUGIN_ERR_ALREADY_INITIALIZED
 * if called twice.
 */
PLUGIN_EXPORT(init) int init(void);

#if WASM_PLUGIN_ABI_VERSION == 1
/*
 * Computes the plugin's result for `input`; called any number of times after
 * init(). Returns the result (zero or positive), or a negative PLUGIN_ERR_*
 * code: PLUGIN_ERR_NOT_INITIALIZED before init(), PLUGIN_ERR_INVALID_ARGUMENT
 * for inputs the plugin does not accept.
 *
 * (A v2 plugin must not export it, so wasm_plugin_v2.h leaves it out.)
 */
PLUGIN_EXPORT(process) int process(int input);
#endif

/*
 * Called once before the plugin is unloaded; resets the state init() set up.
 * Returns PLUGIN_OK, or a negative PLUGIN_ERR_* code.
 */
PLUGIN_EXPORT(cleanup) int cleanup(void);

/*
 * Records WASM_PLUGIN_ABI_VERSION in the compiled module, without adding an
 * export, as a WebAssembly custom section named `wasm_plugin_abi` whose
 * content is the version as a 32-bit little-endian integer.
 *
 * Why inline assembly: clang (as of LLVM 19) turns a variable placed with
 * __attribute__((section(".custom_section.NAME"))) into an ordinary data
 * segment in linear memory, not a custom section. A `.section
 * .custom_section.NAME` directive in file-scope assembly does produce a
 * custom section, and the linker keeps it even with --strip-all or -s (which
 * drop the `name` section) and with -flto.
 *
 * Why the host accepts several copies: every translation unit that includes
 * this header emits the 4 bytes, and wasm-ld concatenates custom sections of
 * the same name, so a plugin built from N source files carries the version N
 * times in a row. The checker reads the content as a list of 32-bit versions
 * and accepts it when all of them are equal; different values mean the
 * sources were compiled against different versions of this header.
 *
 * The trailing `.text` returns the assembler to the code section, so whatever
 * the compiler emits after this statement is unaffected.
 */
#define WASM_PLUGIN_STRINGIFY_(x) #x
#define WASM_PLUGIN_STRINGIFY(x) WASM_PLUGIN_STRINGIFY_(x)
#if defined(__wasm__)
__asm__(".section .custom_section.wasm_plugin_abi,\"\",@\n"
        ".int32 " WASM_PLUGIN_STRINGIFY(WASM_PLUGIN_ABI_VERSION) "\n"
        ".text\n");
#endif

#endif /* WASM_PLUGIN_H */
