//! Plugin names: validated before anything touches the filesystem.

use std::fmt;

/// Longest accepted name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// A plugin name that is safe to turn into a file name.
///
/// The allowlist: 1 to 64 ASCII letters, digits, `_` and `-`, starting with a letter or digit.
/// Everything else is refused, so no spelling of `..`, `/`, `\`, an absolute path, a NUL or a
/// control character can ever reach a path. The file behind a name is `<name>.wasm`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", schema(value_type = String, example = "hello"))]
pub struct PluginName(String);

/// The name rule in words, said by every refusal (and by the README's `invalid_plugin_name`
/// row), so a client learns the whole rule from whichever part it broke.
pub const NAME_RULE: &str =
    "a plugin name is 1 to 64 ASCII letters, digits, '_' and '-', and starts with a letter or digit";

/// Why a name was refused. Deliberately does not carry the name: callers must not echo
/// untrusted input back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidName {
    #[error("the plugin name is empty ({NAME_RULE})")]
    Empty,
    #[error("the plugin name is longer than {MAX_NAME_LEN} bytes ({NAME_RULE})")]
    TooLong,
    #[error("the plugin name does not start with a letter or digit ({NAME_RULE})")]
    BadStart,
    #[error("the plugin name has a character other than ASCII letters, digits, '_' and '-' ({NAME_RULE})")]
    BadCharacter,
}

impl PluginName {
    pub fn new(name: &str) -> Result<Self, InvalidName> {
        if name.is_empty() {
            return Err(InvalidName::Empty);
        }
        if name.len() > MAX_NAME_LEN {
            return Err(InvalidName::TooLong);
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if !name.chars().all(allowed) {
            return Err(InvalidName::BadCharacter);
        }
        if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(InvalidName::BadStart);
        }
        Ok(PluginName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The plugin's file name inside a store's root.
    pub fn file_name(&self) -> String {
        format!("{}.wasm", self.0)
    }

    /// The name a file in a store's root stands for, if it is a plugin file at all.
    pub fn from_file_name(file_name: &str) -> Option<Self> {
        PluginName::new(file_name.strip_suffix(".wasm")?).ok()
    }
}

impl fmt::Display for PluginName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for name in ["hello", "a", "rate-classifier_v2", "X9", &"a".repeat(MAX_NAME_LEN)] {
            assert_eq!(PluginName::new(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn refuses_everything_that_could_become_a_path() {
        let bad = [
            "../hello",
            "..",
            ".",
            "/etc/passwd",
            "hello/../../x",
            "..\\hello",
            "hello\\x",
            "a/b",
            "hello\0",
            "\0",
            "hel\nlo",
            "hello\t",
            "%2e%2e%2fhello",
            "..%2Fhello",
            ".hidden",
            "hello.wasm",
            "-rf",
            "_x",
            "héllo",
            "hello ",
            " hello",
            "～",
            "hello\u{7f}",
        ];
        for name in bad {
            assert!(PluginName::new(name).is_err(), "{name:?} was accepted");
        }
        assert_eq!(PluginName::new(""), Err(InvalidName::Empty));
        assert_eq!(PluginName::new(&"a".repeat(MAX_NAME_LEN + 1)), Err(InvalidName::TooLong));
        assert_eq!(PluginName::new("-rf"), Err(InvalidName::BadStart));
        assert_eq!(PluginName::new("_x"), Err(InvalidName::BadStart));
        assert_eq!(PluginName::new("../hello"), Err(InvalidName::BadCharacter));
    }

    /// Whichever part of the rule a name breaks, the message states the whole rule, and so does
    /// the README's row for `invalid_plugin_name`.
    #[test]
    fn every_refusal_and_the_readme_state_the_whole_rule() {
        for (name, part) in [
            ("", "is empty"),
            (&*"a".repeat(MAX_NAME_LEN + 1), "longer than 64 bytes"),
            ("-rf", "does not start with a letter or digit"),
            ("a b", "a character other than"),
        ] {
            let message = PluginName::new(name).unwrap_err().to_string();
            assert!(message.contains(part) && message.contains(NAME_RULE), "{name:?}: {message}");
        }
        assert!(NAME_RULE.contains(&format!("1 to {MAX_NAME_LEN}")));
        let readme = include_str!("../../../README.md");
        let row = readme.lines().find(|line| line.contains("| `invalid_plugin_name` |")).expect("README row");
        for words in
            ["empty", &format!("over {MAX_NAME_LEN} bytes"), "`A-Z a-z 0-9 _ -`", "starts with a letter or digit"]
        {
            assert!(row.contains(words), "README's invalid_plugin_name row lacks {words:?}: {row}");
        }
    }

    #[test]
    fn maps_file_names_both_ways() {
        let name = PluginName::new("hello").unwrap();
        assert_eq!(name.file_name(), "hello.wasm");
        assert_eq!(PluginName::from_file_name("hello.wasm"), Some(name));
        assert_eq!(PluginName::from_file_name("hello.txt"), None);
        assert_eq!(PluginName::from_file_name(".wasm"), None);
    }
}
