//! What the checker found out about a compliant ABI v2 plugin: where its two buffers are and
//! which functions it offers. The host reads this instead of asking the plugin.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The two buffers and the functions of a plugin that follows ABI v2.
///
/// The checker fills this in only for a compliant v2 plugin, from the constant bodies of the
/// four buffer functions (see [`AbiViolation::BufferNotConstant`](super::AbiViolation)), after
/// checking in 64-bit arithmetic that both buffers are non-empty, within
/// [`AbiLimits::max_buffer_capacity`](super::AbiLimits), inside the module's initial memory
/// (which a v2 plugin cannot grow) and apart from each other. A host may still re-read the four
/// functions before a call and compare: the answer cannot differ, because the bodies are
/// constants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct V2Layout {
    /// Where the host writes a call's input: `plugin_input_ptr()` and
    /// `plugin_input_capacity()`.
    pub input: Buffer,
    /// Where the plugin writes a call's output: `plugin_output_ptr()` and
    /// `plugin_output_capacity()`.
    pub output: Buffer,
    /// Every function the plugin offers, sorted by name; names are unique.
    pub functions: Vec<PluginFunction>,
    /// The configuration buffer, if the plugin declares one (`plugin_config_ptr()` and
    /// `plugin_config_capacity()`): before `init` the host writes there the length of the
    /// operator's configuration (a little-endian `u32`, 0 without one) and, after it, the
    /// configuration itself, at most [`CONFIG_LENGTH_BYTES`] fewer bytes than the capacity.
    /// Absent for a plugin that takes no configuration (the JSON leaves it out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<Buffer>,
}

/// Bytes at the start of the configuration buffer that hold the configuration's length.
pub const CONFIG_LENGTH_BYTES: u32 = 4;

impl Buffer {
    /// The most configuration bytes this buffer holds, when it is a configuration buffer: its
    /// capacity less the length word.
    pub fn config_room(&self) -> u32 {
        self.capacity.saturating_sub(CONFIG_LENGTH_BYTES)
    }
}

impl V2Layout {
    /// The function called `name`, if the plugin offers one.
    pub fn function(&self, name: &str) -> Option<&PluginFunction> {
        self.functions.iter().find(|function| function.name == name)
    }
}

/// One buffer in linear memory: `capacity` bytes starting at byte `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Buffer {
    /// The address of the first byte, as the `*_ptr` function returns it.
    pub offset: u32,
    /// The size in bytes, as the `*_capacity` function returns it.
    pub capacity: u32,
}

impl Buffer {
    /// One past the last byte, in 64-bit arithmetic so that it cannot wrap around.
    pub fn end(&self) -> u64 {
        u64::from(self.offset) + u64::from(self.capacity)
    }

    /// Whether the two buffers share at least one byte.
    pub fn overlaps(&self, other: &Buffer) -> bool {
        u64::from(self.offset) < other.end() && u64::from(other.offset) < self.end()
    }
}

/// `65536 bytes at 0x400`.
impl fmt::Display for Buffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes at {:#x}", self.capacity, self.offset)
    }
}

/// Which of the two buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BufferKind {
    Input,
    Output,
    /// The optional, read-only configuration buffer.
    Config,
}

impl BufferKind {
    /// The export returning this buffer's address.
    pub fn ptr_export(self) -> &'static str {
        match self {
            BufferKind::Input => "plugin_input_ptr",
            BufferKind::Output => "plugin_output_ptr",
            BufferKind::Config => "plugin_config_ptr",
        }
    }

    /// The export returning this buffer's size.
    pub fn capacity_export(self) -> &'static str {
        match self {
            BufferKind::Input => "plugin_input_capacity",
            BufferKind::Output => "plugin_output_capacity",
            BufferKind::Config => "plugin_config_capacity",
        }
    }
}

impl fmt::Display for BufferKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BufferKind::Input => "input",
            BufferKind::Output => "output",
            BufferKind::Config => "configuration",
        })
    }
}

/// A function a v2 plugin offers under `name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PluginFunction {
    /// Matches `[a-z][a-z0-9_]{0,31}` (see [`is_valid_function_name`]).
    pub name: String,
    /// Called once per input, or fed an input in chunks.
    pub kind: FunctionKind,
}

impl PluginFunction {
    /// The exports the host calls for this function, in the order it calls them.
    pub fn exports(&self) -> Vec<String> {
        match self.kind {
            FunctionKind::Call => vec![format!("fn_{}", self.name)],
            FunctionKind::Stream => StreamPart::ALL.iter().map(|part| part.export(&self.name)).collect(),
        }
    }
}

/// How the host calls a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum FunctionKind {
    /// `fn_<name>(input_len) -> output_len`: the whole input at once, at most the input
    /// buffer's capacity.
    Call,
    /// `stream_<name>_begin() -> status`, then `stream_<name>_feed(chunk_len) -> output_len`
    /// per chunk of input, then `stream_<name>_end() -> output_len`, on one instance: an input
    /// of any length.
    Stream,
}

/// One of the three exports of a streaming function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StreamPart {
    Begin,
    Feed,
    End,
}

impl StreamPart {
    /// The three parts, in the order the host calls them.
    pub const ALL: [StreamPart; 3] = [StreamPart::Begin, StreamPart::Feed, StreamPart::End];

    /// `begin`, `feed` or `end`: the export name's suffix.
    pub fn suffix(self) -> &'static str {
        match self {
            StreamPart::Begin => "begin",
            StreamPart::Feed => "feed",
            StreamPart::End => "end",
        }
    }

    /// `stream_<name>_<part>`.
    pub fn export(self, name: &str) -> String {
        crate::names::stream_export(name, self)
    }
}

/// Whether `name` may name a v2 function: `[a-z][a-z0-9_]{0,31}`, so 1 to 32 bytes of
/// lowercase ASCII letters, digits and `_`, starting with a letter. Names end up in export
/// names, URLs and JSON; this keeps them safe in all three without escaping.
pub fn is_valid_function_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=32).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes.iter().all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names() {
        for name in ["a", "upper", "word_count", "sha256", "a_", "x".repeat(32).as_str()] {
            assert!(is_valid_function_name(name), "{name}");
        }
        for name in ["", "Upper", "1st", "_a", "a-b", "a.b", "é", "x".repeat(33).as_str()] {
            assert!(!is_valid_function_name(name), "{name}");
        }
    }

    #[test]
    fn buffers_overlap_only_when_they_share_a_byte() {
        let at = |offset, capacity| Buffer { offset, capacity };
        assert!(!at(0, 16).overlaps(&at(16, 16)));
        assert!(at(0, 17).overlaps(&at(16, 16)));
        assert!(at(16, 16).overlaps(&at(0, 17)));
        assert!(at(10, 1).overlaps(&at(0, 100)));
        // 64-bit arithmetic: the end of the last possible byte does not wrap to 0.
        assert_eq!(at(u32::MAX, u32::MAX).end(), 2 * u64::from(u32::MAX));
        assert!(at(u32::MAX, 1).overlaps(&at(u32::MAX - 1, 2)));
    }

    #[test]
    fn exports_of_each_kind() {
        let call = PluginFunction { name: "upper".into(), kind: FunctionKind::Call };
        assert_eq!(call.exports(), ["fn_upper"]);
        let stream = PluginFunction { name: "sum".into(), kind: FunctionKind::Stream };
        assert_eq!(stream.exports(), ["stream_sum_begin", "stream_sum_feed", "stream_sum_end"]);
    }
}
