//! The library's one public error type.

use std::time::Duration;

use crate::{failure::FailureKind, runner::RunError};

/// Why a call, a listing or starting a [`crate::Host`] failed. Its [`kind`](Self::kind) is one
/// of the stable kinds of the failure table; its message (`Display`) is for the host's log, and
/// [`client_message`](Self::client_message) is what a caller of a service may be told.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Error(#[from] RunError);

impl Error {
    /// Which kind of failure this is: its stable code, whether retrying may help, whether the
    /// plugin was found.
    pub fn kind(&self) -> FailureKind {
        self.0.kind()
    }

    /// How long to wait before retrying, when the failure is transient and knows better than
    /// a default (a quarantine knows when it ends).
    pub fn retry_after(&self) -> Option<Duration> {
        self.0.retry_after_secs().map(Duration::from_secs)
    }

    /// What a client may be told: the message itself when the kind discloses details (what
    /// the plugin did, which function is missing), else the kind's fixed sentence, so that file
    /// paths and engine internals stay in the log.
    pub fn client_message(&self) -> String {
        match self.kind().disclosure() {
            crate::failure::Disclosure::Fixed(sentence) => sentence.to_owned(),
            crate::failure::Disclosure::Details => self.0.public_details(),
        }
    }
}
