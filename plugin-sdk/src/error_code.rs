//! The negative codes a plugin's entry points return to report an error.

use serde::Serialize;

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
    /// `PLUGIN_ERR_NOT_INITIALIZED`: `process` or `cleanup` ran before `init` succeeded.
    #[error("plugin not initialized")]
    NotInitialized = -1,
    /// `PLUGIN_ERR_ALREADY_INITIALIZED`: `init` ran twice without `cleanup` in between.
    #[error("plugin already initialized")]
    AlreadyInitialized = -2,
    /// `PLUGIN_ERR_INVALID_ARGUMENT`: the plugin does not accept this input.
    #[error("invalid argument")]
    InvalidArgument = -3,
    /// `PLUGIN_ERR_INTERNAL`: anything else went wrong inside the plugin.
    #[error("internal plugin error")]
    Internal = -4,
}

impl ErrorCode {
    /// Every code the ABI defines, from -1 downwards.
    pub const ALL: [ErrorCode; 4] =
        [ErrorCode::NotInitialized, ErrorCode::AlreadyInitialized, ErrorCode::InvalidArgument, ErrorCode::Internal];

    /// The error a plugin meant by returning `code`, or `None` if the ABI defines no such
    /// error (including every non-negative value, which means success).
    pub fn from_code(code: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|known| known.code() == code)
    }

    /// The number a plugin returns for this error.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The name of this code's `#define` in `wasm_plugin.h`.
    pub fn c_name(self) -> &'static str {
        match self {
            ErrorCode::NotInitialized => "PLUGIN_ERR_NOT_INITIALIZED",
            ErrorCode::AlreadyInitialized => "PLUGIN_ERR_ALREADY_INITIALIZED",
            ErrorCode::InvalidArgument => "PLUGIN_ERR_INVALID_ARGUMENT",
            ErrorCode::Internal => "PLUGIN_ERR_INTERNAL",
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
    fn display_is_a_readable_phrase() {
        assert_eq!(ErrorCode::AlreadyInitialized.to_string(), "plugin already initialized");
    }
}
