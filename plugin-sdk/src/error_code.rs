//! The negative codes a plugin's entry points return to report an error.

use serde::Serialize;

/// Declares [`ErrorCode`] from a table with one row per code: its documentation, its value, the
/// name of its `#define` in `wasm_plugin.h`, its message and the short form hosts report. The list of every code is derived
/// from the rows, so a new code is one new row (and one `#define` in the header, which a test
/// checks).
macro_rules! error_codes {
    ($(
        $(#[doc = $doc:literal])*
        $code:ident = $value:literal, $c_name:literal, $message:literal, $short:literal;
    )*) => {
        /// An error a plugin reports by returning a negative number from `init`, `process` or
        /// `cleanup`; the header defines each as `PLUGIN_ERR_*`.
        ///
        /// Success is `0` (`PLUGIN_OK`) for `init` and `cleanup`, and any non-negative result for
        /// `process`, so it has no variant here: a return value is either a result or one of these.
        /// Negative values outside this list are not errors the ABI defines; [`ErrorCode::from_code`]
        /// returns `None` for them and the host decides how to treat them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error, Serialize)]
        #[serde(rename_all = "kebab-case")]
        #[repr(i32)]
        pub enum ErrorCode {
            $(
                $(#[doc = $doc])*
                #[doc = ""]
                #[doc = concat!("In `wasm_plugin.h`: `", $c_name, "`.")]
                #[error($message)]
                $code = $value,
            )*
        }

        impl ErrorCode {
            /// Every code the ABI defines, from -1 downwards.
            pub const ALL: [ErrorCode; [$($value),*].len()] = [$(ErrorCode::$code),*];

            /// The name of this code's `#define` in `wasm_plugin.h`.
            pub fn c_name(self) -> &'static str {
                match self {
                    $(ErrorCode::$code => $c_name,)*
                }
            }

            /// What a host says a function returned: `invalid argument`.
            pub fn short(self) -> &'static str {
                match self {
                    $(ErrorCode::$code => $short,)*
                }
            }
        }
    };
}

error_codes! {
    /// `process` or `cleanup` ran before `init` succeeded.
    NotInitialized = -1, "PLUGIN_ERR_NOT_INITIALIZED", "plugin not initialized", "not initialized";
    /// `init` ran twice without `cleanup` in between.
    AlreadyInitialized = -2, "PLUGIN_ERR_ALREADY_INITIALIZED", "plugin already initialized", "already initialized";
    /// The plugin does not accept this input.
    InvalidArgument = -3, "PLUGIN_ERR_INVALID_ARGUMENT", "invalid argument", "invalid argument";
    /// Anything else went wrong inside the plugin.
    Internal = -4, "PLUGIN_ERR_INTERNAL", "internal plugin error", "internal error";
}

impl ErrorCode {
    /// The error a plugin meant by returning `code`, or `None` if the ABI defines no such
    /// error (including every non-negative value, which means success).
    pub fn from_code(code: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|known| known.code() == code)
    }

    /// The number a plugin returns for this error.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// What a negative value returned by a plugin function means: one of the ABI's [`ErrorCode`]s,
/// or a value the ABI does not define. Serialized as the number itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(from = "i32", into = "i32")]
pub enum PluginErrorCode {
    Known(ErrorCode),
    Unknown(i32),
}

impl PluginErrorCode {
    /// Whether it is `code`.
    pub fn is(self, code: ErrorCode) -> bool {
        self == PluginErrorCode::Known(code)
    }
}

impl From<i32> for PluginErrorCode {
    fn from(code: i32) -> Self {
        ErrorCode::from_code(code).map_or(PluginErrorCode::Unknown(code), PluginErrorCode::Known)
    }
}

impl From<PluginErrorCode> for i32 {
    fn from(code: PluginErrorCode) -> Self {
        match code {
            PluginErrorCode::Known(code) => code.code(),
            PluginErrorCode::Unknown(code) => code,
        }
    }
}

impl std::fmt::Display for PluginErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginErrorCode::Known(code) => write!(f, "{} ({})", code.short(), code.code()),
            PluginErrorCode::Unknown(code) => write!(f, "unknown plugin error {code}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_code(code.code()), Some(code));
        }
        assert_eq!(ErrorCode::NotInitialized.code(), -1);
        assert_eq!(ErrorCode::AlreadyInitialized.code(), -2);
        assert_eq!(ErrorCode::InvalidArgument.code(), -3);
        assert_eq!(ErrorCode::Internal.code(), -4);
    }

    #[test]
    fn success_and_unknown_codes_are_not_errors() {
        for value in [0, 1, 43, i32::MAX, -5, i32::MIN] {
            assert_eq!(ErrorCode::from_code(value), None, "{value}");
        }
    }

    #[test]
    fn abi_md_lists_every_code() {
        let abi_md = include_str!("../../ABI.md");
        for code in ErrorCode::ALL {
            let row = format!("| `{}` | `{}` |", code.code(), code.c_name());
            assert!(abi_md.lines().any(|line| line.starts_with(&row)), "ABI.md lacks a row starting with {row:?}");
        }
    }

    #[test]
    fn display_is_a_readable_phrase() {
        assert_eq!(ErrorCode::AlreadyInitialized.to_string(), "plugin already initialized");
    }
}
