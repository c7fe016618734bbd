//! The rules of ABI v2's interface (its exports, its two buffers and its functions), which
//! replace v1's three-export rule for a plugin that declares version 2. Every other rule
//! (imports, floats, allocation, recursion, features, limits) is shared with v1.

use std::collections::{BTreeMap, BTreeSet};

use wasmparser::ExternalKind;

use super::AbiLimits;
use super::constant;
use super::details::{ExternKind, Signature};
use super::layout::{Buffer, BufferKind, CONFIG_LENGTH_BYTES, FunctionKind, PluginFunction, StreamPart, V2Layout};
use super::location::Location;
use super::module::ModuleInfo;
use super::rules::{self, Findings, MEMORY_EXPORT, export_cause};
use super::violation::AbiViolation;

/// The lifecycle exports a v2 plugin shares with v1, in the order the host calls them.
const LIFECYCLE: [&str; 2] = [crate::names::INIT, crate::names::CLEANUP];

/// The v1 entry point a v2 plugin must not export.
const V1_PROCESS: &str = crate::names::PROCESS;

/// The four functions that say where the buffers are, each `[] -> [i32]`.
pub(crate) const BUFFER_FUNCTIONS: [&str; 4] =
    ["plugin_input_ptr", "plugin_input_capacity", "plugin_output_ptr", "plugin_output_capacity"];

/// The two functions that say where the optional configuration buffer is, each `[] -> [i32]`:
/// both or neither.
pub(crate) const CONFIG_FUNCTIONS: [&str; 2] = ["plugin_config_ptr", "plugin_config_capacity"];

/// What a v2 export name means.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Export<'a> {
    /// `init`, `cleanup` or a buffer function.
    Fixed(&'a str),
    /// `fn_<name>`.
    Call(&'a str),
    /// `stream_<name>_<part>`.
    Stream(&'a str, StreamPart),
    /// Starts with `fn_` or `stream_` but is neither of the above.
    InvalidFunction,
    /// `process`.
    V1Process,
    /// Anything else.
    Other,
}

/// Reads a function export's name the way ABI v2 does.
fn classify(name: &str) -> Export<'_> {
    if LIFECYCLE.contains(&name) || BUFFER_FUNCTIONS.contains(&name) || CONFIG_FUNCTIONS.contains(&name) {
        Export::Fixed(name)
    } else if name == V1_PROCESS {
        Export::V1Process
    } else if let Some(function) = name.strip_prefix(crate::names::CALL_PREFIX) {
        if crate::is_valid_function_name(function) { Export::Call(function) } else { Export::InvalidFunction }
    } else if let Some(rest) = name.strip_prefix(crate::names::STREAM_PREFIX) {
        StreamPart::ALL
            .into_iter()
            .find_map(|part| {
                let stream = rest.strip_suffix(part.suffix())?.strip_suffix('_')?;
                crate::is_valid_function_name(stream).then_some(Export::Stream(stream, part))
            })
            .unwrap_or(Export::InvalidFunction)
    } else {
        Export::Other
    }
}

/// Checks a v2 plugin's exports, buffers and functions, and returns its layout if this rule
/// found nothing wrong (the caller keeps it only if no other rule did either).
pub(crate) fn interface(module: &ModuleInfo<'_>, limits: &AbiLimits, found: &mut Findings) -> Option<V2Layout> {
    let before = found.0.len();
    let cause = export_cause(module);
    let mut fixed: BTreeMap<&str, u32> = BTreeMap::new();
    let mut calls: BTreeSet<&str> = BTreeSet::new();
    let mut streams: BTreeMap<&str, BTreeSet<StreamPart>> = BTreeMap::new();
    let mut first_export_of_stream: BTreeMap<&str, &str> = BTreeMap::new();
    let mut memory = None;
    for export in &module.exports {
        let location = Location::Export { name: export.name.to_owned() };
        let is_function = matches!(export.kind, ExternalKind::Func | ExternalKind::FuncExact);
        if export.kind == ExternalKind::Memory && export.name == MEMORY_EXPORT {
            memory = Some(export.index);
            continue;
        }
        if rules::is_tolerated_global(module, export) {
            continue;
        }
        let meaning = if is_function { classify(export.name) } else { Export::Other };
        let expected = match meaning {
            Export::Fixed(name) => {
                fixed.insert(name, export.index);
                Signature::nullary()
            }
            Export::Call(name) => {
                calls.insert(name);
                Signature::unary()
            }
            Export::Stream(name, part) => {
                streams.entry(name).or_default().insert(part);
                first_export_of_stream.entry(name).or_insert(export.name);
                if part == StreamPart::Feed { Signature::unary() } else { Signature::nullary() }
            }
            Export::InvalidFunction => {
                found.push(AbiViolation::InvalidFunctionName { name: export.name.to_owned() }, location);
                continue;
            }
            Export::V1Process => {
                found.push(AbiViolation::V1ExportInV2 { name: export.name.to_owned() }, location);
                continue;
            }
            Export::Other => {
                found.push(
                    AbiViolation::UnexpectedExport {
                        name: export.name.to_owned(),
                        kind: ExternKind::from(export.kind),
                        cause,
                        abi_version: 2,
                    },
                    location,
                );
                continue;
            }
        };
        if !rules::signature(module, export, expected, location, found)
            && let Export::Fixed(name) = meaning
        {
            // A buffer function of the wrong type cannot be read as a buffer.
            fixed.remove(name);
        }
    }

    let exported = |name: &str| module.exports.iter().any(|e| e.name == name && e.kind == ExternalKind::Func);
    for name in LIFECYCLE.into_iter().filter(|name| !exported(name)) {
        found.push(AbiViolation::MissingExport { name: name.to_owned() }, Location::Module);
    }
    for name in BUFFER_FUNCTIONS.into_iter().filter(|name| !exported(name)) {
        found.push(AbiViolation::MissingBufferExport { name: name.to_owned() }, Location::Module);
    }
    let config_exports = CONFIG_FUNCTIONS.into_iter().filter(|name| exported(name)).count();
    if config_exports == 1 {
        let missing = CONFIG_FUNCTIONS.into_iter().find(|name| !exported(name)).expect("one of two is missing");
        found.push(AbiViolation::IncompleteConfigBuffer { missing: missing.to_owned() }, Location::Module);
    }
    if memory.is_none() {
        found.push(AbiViolation::MissingMemoryExport, Location::Module);
    }
    if calls.is_empty() {
        found.push(AbiViolation::NoFunctions, Location::Module);
    }
    for (name, parts) in &streams {
        let missing: Vec<String> =
            StreamPart::ALL.into_iter().filter(|part| !parts.contains(part)).map(|part| part.export(name)).collect();
        if !missing.is_empty() {
            let location = Location::Export { name: first_export_of_stream[name].to_owned() };
            found.push(AbiViolation::IncompleteStream { name: (*name).to_owned(), missing }, location);
        }
    }
    for name in calls.iter().filter(|name| streams.contains_key(*name)) {
        found.push(
            AbiViolation::DuplicateFunctionName { name: (*name).to_owned() },
            Location::Export { name: crate::names::call_export(name) },
        );
    }

    let buffers = buffers(module, &fixed, memory, limits, config_exports == 2, found);
    if found.0.len() != before {
        return None;
    }
    let (input, output, config) = buffers?;
    let mut functions: Vec<PluginFunction> = calls
        .into_iter()
        .map(|name| PluginFunction { name: name.to_owned(), kind: FunctionKind::Call })
        .chain(streams.into_keys().map(|name| PluginFunction { name: name.to_owned(), kind: FunctionKind::Stream }))
        .collect();
    functions.sort_by(|a, b| a.name.cmp(&b.name));
    Some(V2Layout { input, output, functions, config })
}

/// Evaluates the four buffer functions and checks the buffers they describe: each one on its
/// own (not empty, within the limit, inside memory), then the two together (apart). A buffer
/// that fails on its own is not compared with the other, so one mistake gives one violation.
/// The configuration buffer, when `with_config` (both of its functions are exported), is held
/// to the same rules, to room for its length word and some configuration, and apart from both.
fn buffers(
    module: &ModuleInfo<'_>,
    fixed: &BTreeMap<&str, u32>,
    memory: Option<u32>,
    limits: &AbiLimits,
    with_config: bool,
    found: &mut Findings,
) -> Option<(Buffer, Buffer, Option<Buffer>)> {
    // Each value read as unsigned, as the host reads an address or a size.
    let mut values = BTreeMap::new();
    let config_functions: &[&str] = if with_config { &CONFIG_FUNCTIONS } else { &[] };
    for &name in BUFFER_FUNCTIONS.iter().chain(config_functions) {
        let &index = fixed.get(name)?;
        let Some(code) = module.code_of(index) else {
            // An exported import: refused by the import rule already.
            continue;
        };
        match constant::evaluate(code) {
            Ok(value) => {
                values.insert(name, u32::from_ne_bytes(value.to_ne_bytes()));
            }
            Err(not) => found.push(
                AbiViolation::BufferNotConstant { name: name.to_owned(), op: not.op },
                Location::function(&module.function(index), Some(not.offset)),
            ),
        }
    }
    if values.len() != BUFFER_FUNCTIONS.len() + config_functions.len() {
        return None;
    }
    // The initial size of the exported memory, if the module defines it; an imported memory
    // is refused by the import rule, and its size is not known here.
    let memory_bytes = memory
        .and_then(|index| index.checked_sub(module.imported_memories))
        .and_then(|defined| module.memories.get(usize::try_from(defined).ok()?))
        .map(|memory| memory.initial.saturating_mul(65536));
    let mut fit = |kind: BufferKind| -> Option<Buffer> {
        let buffer = Buffer { offset: values[kind.ptr_export()], capacity: values[kind.capacity_export()] };
        let at_capacity = Location::Export { name: kind.capacity_export().to_owned() };
        if buffer.capacity == 0 {
            found.push(AbiViolation::EmptyBuffer { buffer: kind }, at_capacity);
            return None;
        }
        if buffer.capacity > limits.max_buffer_capacity {
            found.push(
                AbiViolation::BufferCapacityTooLarge {
                    buffer: kind,
                    capacity: buffer.capacity,
                    limit: limits.max_buffer_capacity,
                },
                at_capacity,
            );
            return None;
        }
        let memory_bytes = memory_bytes?;
        if buffer.end() > memory_bytes {
            found.push(
                AbiViolation::BufferOutsideMemory {
                    buffer: kind,
                    offset: buffer.offset,
                    capacity: buffer.capacity,
                    memory_bytes,
                },
                Location::Export { name: kind.ptr_export().to_owned() },
            );
            return None;
        }
        Some(buffer)
    };
    let (input, output) = (fit(BufferKind::Input), fit(BufferKind::Output));
    let config = with_config.then(|| fit(BufferKind::Config));
    let config = match config {
        Some(Some(config)) if config.capacity <= CONFIG_LENGTH_BYTES => {
            let at_capacity = Location::Export { name: BufferKind::Config.capacity_export().to_owned() };
            found.push(AbiViolation::ConfigBufferTooSmall { capacity: config.capacity }, at_capacity);
            return None;
        }
        Some(Some(config)) => Some(config),
        Some(None) => return None,
        None => None,
    };
    let (input, output) = (input?, output?);
    if input.overlaps(&output) {
        found.push(AbiViolation::BuffersOverlap { input, output }, Location::Module);
        return None;
    }
    if let Some(config) = config {
        for (kind, other) in [(BufferKind::Input, input), (BufferKind::Output, output)] {
            if config.overlaps(&other) {
                found.push(AbiViolation::ConfigBufferOverlaps { config, buffer: kind, other }, Location::Module);
                return None;
            }
        }
    }
    Some((input, output, config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_names() {
        assert_eq!(classify("init"), Export::Fixed("init"));
        assert_eq!(classify("plugin_output_capacity"), Export::Fixed("plugin_output_capacity"));
        assert_eq!(classify("process"), Export::V1Process);
        assert_eq!(classify("fn_word_count"), Export::Call("word_count"));
        assert_eq!(classify("stream_sha256sum_feed"), Export::Stream("sha256sum", StreamPart::Feed));
        // The suffix is taken from the end, so a name may itself contain `_end` or `_begin`.
        assert_eq!(classify("stream_to_the_end_end"), Export::Stream("to_the_end", StreamPart::End));
        for invalid in ["fn_", "fn_Upper", "fn_1", "stream_x", "stream_x_start", "stream__feed", "stream_feed"] {
            assert_eq!(classify(invalid), Export::InvalidFunction, "{invalid}");
        }
        assert_eq!(classify("helper"), Export::Other);
        assert_eq!(classify("plugin_input"), Export::Other);
    }
}
