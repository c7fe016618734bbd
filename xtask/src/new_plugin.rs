//! `cargo xtask new-plugin NAME --lang c|rust|zig|assemblyscript [--abi 1|2]`: writes a starting
//! point at `plugins/<name>/` that `cargo xtask build-plugins` builds and the host serves as it is.

use std::{fs, path::Path};

use anyhow::{Context, ensure};
use xshell::Shell;

use crate::step;

#[derive(Debug, clap::Args)]
pub struct NewPlugin {
    /// The plugin's name: 1 to 64 of a-z, 0-9, '-' and '_', starting with a letter or digit.
    name: String,
    /// The language to write it in.
    #[arg(long, value_enum)]
    lang: Lang,
    /// The ABI version: 1 (one integer in, one out) or 2 (bytes in and out, by function name).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=2))]
    abi: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Lang {
    C,
    Rust,
    Zig,
    Assemblyscript,
}

impl NewPlugin {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let source = write(&sh.current_dir().join("plugins"), &self.name, self.lang, self.abi)?;
        step(format!("wrote {}; build it with `cargo xtask build-plugins`", source.display()));
        Ok(())
    }
}

/// Writes the template into `plugins_dir/<name>/` and returns the source file's path. Refuses an
/// existing folder rather than overwrite anybody's work.
pub(crate) fn write(plugins_dir: &Path, name: &str, lang: Lang, abi: u32) -> anyhow::Result<std::path::PathBuf> {
    crate::build_plugins::check_name(name, Path::new(name))?;
    ensure!(abi == 1 || abi == 2, "--abi is 1 or 2, not {abi}");
    let (extension, text) = match (lang, abi) {
        (Lang::C, 1) => ("c", C_V1),
        (Lang::C, _) => ("c", C_V2),
        (Lang::Rust, 1) => ("rs", RUST_V1),
        (Lang::Rust, _) => ("rs", RUST_V2),
        (Lang::Zig, 1) => ("zig", ZIG_V1),
        (Lang::Zig, _) => ("zig", ZIG_V2),
        (Lang::Assemblyscript, 1) => ("ts", ASSEMBLYSCRIPT_V1),
        (Lang::Assemblyscript, _) => ("ts", ASSEMBLYSCRIPT_V2),
    };
    let dir = plugins_dir.join(name);
    ensure!(!dir.exists(), "{} exists already; choose another name or remove it", dir.display());
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let source = dir.join(format!("{name}.{extension}"));
    fs::write(&source, text.replace("NAME", name)).with_context(|| format!("cannot write {}", source.display()))?;
    Ok(source)
}

const C_V1: &str = r#"// NAME: an ABI v1 plugin (one integer in, one out). `process(21)` answers 43.
// Call it with: curl -s localhost:8080/run -H 'content-type: application/json' -d '{"plugin":"NAME","input":21}'

#include <wasm_plugin.h>

static int initialized;

PLUGIN_EXPORT(init) int init(void) {
    if (initialized) {
        return PLUGIN_ERR_ALREADY_INITIALIZED;
    }
    initialized = 1;
    return PLUGIN_OK;
}

PLUGIN_EXPORT(process) int process(int input) {
    if (!initialized) {
        return PLUGIN_ERR_NOT_INITIALIZED;
    }
    if (input < 0 || input > (__INT_MAX__ - 1) / 2) {
        return PLUGIN_ERR_INVALID_ARGUMENT;
    }
    return 2 * input + 1;
}

PLUGIN_EXPORT(cleanup) int cleanup(void) {
    initialized = 0;
    return PLUGIN_OK;
}
"#;

const C_V2: &str = r#"// NAME: an ABI v2 plugin (bytes in, bytes out). `upper` turns ASCII letters to upper case.
// Call it with: curl -s --data-binary 'hello' localhost:8080/plugins/NAME/functions/upper

#include <wasm_plugin_v2.h>

PLUGIN_BUFFERS(65536, 65536)

PLUGIN_EXPORT(init) int init(void) {
    return PLUGIN_OK;
}

PLUGIN_EXPORT(cleanup) int cleanup(void) {
    return PLUGIN_OK;
}

PLUGIN_FUNCTION(upper) {
    if (input_len < 0 || input_len > PLUGIN_OUTPUT_CAPACITY) {
        return PLUGIN_ERR_INVALID_ARGUMENT;
    }
    for (int i = 0; i < input_len; i++) {
        unsigned char c = plugin_input[i];
        plugin_output[i] = (c >= 'a' && c <= 'z') ? (unsigned char)(c - 'a' + 'A') : c;
    }
    return input_len;
}
"#;

const RUST_V1: &str = r#"//! NAME: an ABI v1 plugin (one integer in, one out). `process(21)` answers 43.
//! Call it with: curl -s localhost:8080/run -H 'content-type: application/json' -d '{"plugin":"NAME","input":21}'

#![no_std]

use wasm_plugin::{Error, State};

static INITIALIZED: State<bool> = State::new(false);

fn init() -> Result<(), Error> {
    if INITIALIZED.get() {
        return Err(Error::AlreadyInitialized);
    }
    INITIALIZED.set(true);
    Ok(())
}

fn process(input: i32) -> Result<i32, Error> {
    if !INITIALIZED.get() {
        return Err(Error::NotInitialized);
    }
    if !(0..=(i32::MAX - 1) / 2).contains(&input) {
        return Err(Error::InvalidArgument);
    }
    Ok(2 * input + 1)
}

fn cleanup() -> Result<(), Error> {
    INITIALIZED.set(false);
    Ok(())
}

wasm_plugin::plugin_v1!(init, process, cleanup);
"#;

const RUST_V2: &str = r#"//! NAME: an ABI v2 plugin (bytes in, bytes out). `upper` turns ASCII letters to upper case.
//! Call it with: curl -s --data-binary 'hello' localhost:8080/plugins/NAME/functions/upper

#![no_std]

use wasm_plugin::Error;

wasm_plugin::plugin_v2!(buffers(65536, 65536), init = init, cleanup = cleanup);
wasm_plugin::function!(upper, upper);

fn init() -> Result<(), Error> {
    Ok(())
}

fn cleanup() -> Result<(), Error> {
    Ok(())
}

fn upper(input: &[u8], output: &mut [u8]) -> Result<usize, Error> {
    let output = output.get_mut(..input.len()).ok_or(Error::InvalidArgument)?;
    for (out, byte) in output.iter_mut().zip(input) {
        *out = byte.to_ascii_uppercase();
    }
    Ok(input.len())
}
"#;

const ZIG_V1: &str = r#"//! NAME: an ABI v1 plugin (one integer in, one out). `process(21)` answers 43.
//! Call it with: curl -s localhost:8080/run -H 'content-type: application/json' -d '{"plugin":"NAME","input":21}'

const abi = @import("wasm_plugin");

comptime {
    asm (".section .custom_section.wasm_plugin_abi,\"\",@\n.int32 1\n.text");
}

var initialized: bool = false;

export fn init() i32 {
    if (initialized) return abi.ERR_ALREADY_INITIALIZED;
    initialized = true;
    return abi.OK;
}

export fn process(input: i32) i32 {
    if (!initialized) return abi.ERR_NOT_INITIALIZED;
    if (input < 0 or input > @divTrunc(2147483647 - 1, 2)) return abi.ERR_INVALID_ARGUMENT;
    return 2 * input + 1;
}

export fn cleanup() i32 {
    initialized = false;
    return abi.OK;
}
"#;

const ZIG_V2: &str = r#"//! NAME: an ABI v2 plugin (bytes in, bytes out). `upper` turns ASCII letters to upper case.
//! Call it with: curl -s --data-binary 'hello' localhost:8080/plugins/NAME/functions/upper

const abi = @import("wasm_plugin");

comptime {
    asm (".section .custom_section.wasm_plugin_abi,\"\",@\n.int32 2\n.text");
}

const capacity = 65536;
var input: [capacity]u8 = undefined;
var output: [capacity]u8 = undefined;

// The host reads both buffers from these four functions before the plugin runs, so each must
// return a constant: an address or a size.
export fn plugin_input_ptr() i32 {
    return @intCast(@intFromPtr(&input));
}
export fn plugin_input_capacity() i32 {
    return capacity;
}
export fn plugin_output_ptr() i32 {
    return @intCast(@intFromPtr(&output));
}
export fn plugin_output_capacity() i32 {
    return capacity;
}

export fn init() i32 {
    return abi.OK;
}

export fn cleanup() i32 {
    return abi.OK;
}

export fn fn_upper(input_len: i32) i32 {
    if (input_len < 0 or input_len > capacity) return abi.ERR_INVALID_ARGUMENT;
    const n: usize = @intCast(input_len);
    for (input[0..n], output[0..n]) |byte, *out| {
        out.* = if (byte >= 'a' and byte <= 'z') byte - ('a' - 'A') else byte;
    }
    return input_len;
}
"#;

const ASSEMBLYSCRIPT_V1: &str = r#"// NAME: an ABI v1 plugin (one integer in, one out). `process(21)` answers 43.
// Call it with: curl -s localhost:8080/run -H 'content-type: application/json' -d '{"plugin":"NAME","input":21}'
// No `new` anywhere: it would bring an allocator, memory.grow and an import.

const OK: i32 = 0;
const ERR_NOT_INITIALIZED: i32 = -1;
const ERR_ALREADY_INITIALIZED: i32 = -2;
const ERR_INVALID_ARGUMENT: i32 = -3;

// The largest input whose result, 2 * x + 1, still fits in an i32.
const MAX_INPUT: i32 = 1073741823;

let initialized = false;

export function init(): i32 {
  if (initialized) return ERR_ALREADY_INITIALIZED;
  initialized = true;
  return OK;
}

export function process(input: i32): i32 {
  if (!initialized) return ERR_NOT_INITIALIZED;
  if (input < 0 || input > MAX_INPUT) return ERR_INVALID_ARGUMENT;
  return 2 * input + 1;
}

export function cleanup(): i32 {
  initialized = false;
  return OK;
}
"#;

const ASSEMBLYSCRIPT_V2: &str = r#"// NAME: an ABI v2 plugin (bytes in, bytes out). `upper` turns ASCII letters to upper case.
// Call it with: curl -s --data-binary 'hello' localhost:8080/plugins/NAME/functions/upper

const OK: i32 = 0;
const ERR_INVALID_ARGUMENT: i32 = -3;

const CAPACITY: i32 = 65536;
// Static buffers: no `new` anywhere, which would bring an allocator, memory.grow and an import.
const input: usize = memory.data(CAPACITY, 16);
const output: usize = memory.data(CAPACITY, 16);

export function plugin_input_ptr(): i32 {
  return <i32>input;
}
export function plugin_input_capacity(): i32 {
  return CAPACITY;
}
export function plugin_output_ptr(): i32 {
  return <i32>output;
}
export function plugin_output_capacity(): i32 {
  return CAPACITY;
}

export function init(): i32 {
  return OK;
}

export function cleanup(): i32 {
  return OK;
}

export function fn_upper(input_len: i32): i32 {
  if (input_len < 0 || input_len > CAPACITY) return ERR_INVALID_ARGUMENT;
  for (let i: i32 = 0; i < input_len; i++) {
    const c = load<u8>(input + <usize>i);
    store<u8>(output + <usize>i, c >= 0x61 && c <= 0x7a ? c - 0x20 : c);
  }
  return input_len;
}
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Harness;

    #[test]
    fn every_template_builds_into_a_compliant_plugin_of_its_version() {
        let mut harness = Harness::new();
        let plugins = tempfile::tempdir().unwrap();
        harness.layout.plugins_dir = plugins.path().to_path_buf();
        let all = [
            (Lang::C, 1),
            (Lang::C, 2),
            (Lang::Rust, 1),
            (Lang::Rust, 2),
            (Lang::Zig, 1),
            (Lang::Zig, 2),
            (Lang::Assemblyscript, 1),
            (Lang::Assemblyscript, 2),
        ];
        for (lang, abi) in all {
            let name = format!("greet-{lang:?}-v{abi}").to_lowercase();
            write(plugins.path(), &name, lang, abi).unwrap();
        }
        let found = harness.plugins();
        assert_eq!(found.len(), all.len());
        for plugin in &found {
            let built = harness.build(plugin).unwrap_or_else(|err| panic!("{}: {err:#}", plugin.name));
            assert!(built.report.is_compliant() && built.report.warnings.is_empty(), "{}", built.report);
            let abi = if plugin.name.ends_with("v1") { 1 } else { 2 };
            assert_eq!(built.report.declared_abi_version, Some(abi), "{}", plugin.name);
        }
        // Nobody's work is overwritten.
        let again = write(plugins.path(), "greet-c-v1", Lang::C, 1).unwrap_err().to_string();
        assert!(again.contains("exists already"), "{again}");
        let bad = write(plugins.path(), "Greet", Lang::C, 2).unwrap_err().to_string();
        assert!(bad.contains("a plugin name is"), "{bad}");
    }
}
