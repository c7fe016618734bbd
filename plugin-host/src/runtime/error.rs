//! The runtime's one error type, with causes a caller can match on.

use std::{fmt, time::Duration};

use wasmedge_sdk::error::{CoreCommonError, CoreError, CoreExecutionError, InstanceError, WasmEdgeError};

use plugin_sdk::names;

use crate::failure::FailureKind;

/// A plugin function the host calls: v1's three, or any of a v2 plugin's exports by name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AbiFunction {
    Init,
    Process,
    Cleanup,
    /// A v2 export: `fn_<name>`, `stream_<name>_<part>` or a buffer function.
    Export(String),
}

impl AbiFunction {
    pub fn export_name(&self) -> &str {
        match self {
            AbiFunction::Init => names::INIT,
            AbiFunction::Process => names::PROCESS,
            AbiFunction::Cleanup => names::CLEANUP,
            AbiFunction::Export(name) => name,
        }
    }

    /// Whether the function is given the caller's input, so that -3 means "this input is
    /// refused" (422) rather than a plugin failure.
    pub fn takes_input(&self) -> bool {
        match self {
            AbiFunction::Process => true,
            AbiFunction::Export(name) => names::is_function_export(name),
            AbiFunction::Init | AbiFunction::Cleanup => false,
        }
    }
}

impl fmt::Display for AbiFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.export_name())
    }
}

pub use plugin_sdk::PluginErrorCode;

/// Why WebAssembly execution stopped abnormally.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum TrapKind {
    #[error("unreachable executed")]
    Unreachable,
    #[error("out-of-bounds memory access")]
    MemoryOutOfBounds,
    #[error("integer division by zero")]
    DivideByZero,
    #[error("integer overflow")]
    IntegerOverflow,
    #[error("invalid conversion to integer")]
    InvalidConversion,
    #[error("out-of-bounds table access")]
    TableOutOfBounds,
    #[error("indirect call to an undefined or mistyped element")]
    BadIndirectCall,
    #[error("{0}")]
    Other(String),
}

/// Everything that can go wrong between plugin bytes and a result.
///
/// Worker processes send it to the server as it is (serde): one type on both sides of the
/// process boundary. Engine messages are strings because WasmEdge's errors cannot cross it.
#[derive(Debug, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum RuntimeError {
    #[error("plugin file is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: u64, limit: u64 },
    /// Never crosses the process boundary: workers do not check the ABI (the server does before
    /// a module reaches them), so this variant is not serialized.
    #[error("plugin breaks the ABI ({} violation(s)): {}", .0.violations.len(), first_violation(.0))]
    #[serde(skip)]
    AbiViolation(plugin_sdk::AbiReport),
    #[error("invalid WebAssembly module: {0}")]
    InvalidModule(String),
    #[error("plugin needs {requested} pages of memory, over the {limit}-page limit")]
    MemoryLimit { requested: u32, limit: u32 },
    #[error("instantiation failed: {0}")]
    Instantiation(String),
    #[error("AOT compilation failed: {0}")]
    Compilation(String),
    #[error("`{function}` returned {code}")]
    Plugin { function: AbiFunction, code: PluginErrorCode },
    #[error("`{function}` trapped: {trap}")]
    Trap { function: AbiFunction, trap: TrapKind },
    #[error("`{function}` did not finish within the {timeout:?} deadline")]
    Timeout { function: AbiFunction, timeout: Duration },
    /// The call failed, and so did the `cleanup` that followed. `failure` decides how the
    /// call is reported; `cleanup` is kept so that it is not lost.
    #[error("{failure}; cleanup failed too: {cleanup}")]
    CleanupAlsoFailed { failure: Box<RuntimeError>, cleanup: Box<RuntimeError> },
    #[error("WasmEdge failed: {0}")]
    Engine(String),
    /// A call of one ABI version on a plugin of another: an integer call on a v2 plugin, or a
    /// call by function name on a v1 plugin.
    #[error("{}", wrong_abi_version(*.plugin))]
    WrongAbiVersion { plugin: u32 },
    /// A v2 call names a function the plugin does not have.
    #[error("the plugin has no function `{function}`; it has: {}", .available.join(", "))]
    FunctionNotFound { function: String, available: Vec<String> },
    /// A stream was opened on a function that is not a stream.
    #[error("the plugin's function `{function}` is not a stream")]
    NotAStream { function: String },
    /// A stream was fed or finished after it failed or ended (a host bug, not the plugin's).
    #[error("the stream is over")]
    StreamOver,
    /// A v2 call's input is over the plugin's input buffer.
    #[error("the input is {size} bytes, over the plugin's {capacity}-byte input buffer")]
    InputTooLarge { size: u64, capacity: u32 },
    /// A v2 plugin broke its side of the buffer contract: a length over its output buffer, a
    /// buffer that moved or left memory. The instance is discarded.
    #[error("`{function}` broke the buffer contract: {problem}")]
    BufferFault { function: AbiFunction, problem: String },
    /// `init` refused the operator's configuration (it returned -3 with a configuration in its
    /// buffer). Says nothing about the configuration itself, which may hold secrets.
    #[error("`init` refused the plugin's configuration (invalid argument, -3)")]
    ConfigurationRefused,
    /// A configuration larger than the plugin's configuration buffer holds, or one given to a
    /// plugin that declares no configuration buffer (`room` 0). The host checks this before a
    /// call, so this is the runtime's own guard.
    #[error("the configuration is {size} bytes; the plugin's configuration buffer holds {room}")]
    ConfigurationTooLarge { size: u64, room: u32 },
}

fn wrong_abi_version(plugin: u32) -> String {
    if plugin == 1 {
        "this plugin follows ABI v1: it has no named functions; call it with an integer \"input\" and no \
         \"function\""
            .into()
    } else {
        format!(
            "this plugin follows ABI v{plugin}: name one of its functions (\"function\") and send bytes (\"input\" \
             as text or \"input_base64\"), or POST the bytes to /plugins/<name>/functions/<function>"
        )
    }
}

fn first_violation(report: &plugin_sdk::AbiReport) -> String {
    report.violations.first().map(|v| v.to_string()).unwrap_or_default()
}

impl RuntimeError {
    /// The error that decides how a failed call is reported.
    pub fn primary(&self) -> &RuntimeError {
        match self {
            RuntimeError::CleanupAlsoFailed { failure, .. } => failure.primary(),
            other => other,
        }
    }

    /// How the host reports this (see [`crate::failure`]): by the failure that decided the
    /// call, not a cleanup that failed after it.
    pub fn kind(&self) -> FailureKind {
        match self.primary() {
            RuntimeError::Plugin { function, code: PluginErrorCode::Known(plugin_sdk::ErrorCode::InvalidArgument) }
                if function.takes_input() =>
            {
                FailureKind::InvalidArgument
            }
            RuntimeError::Plugin { .. } => FailureKind::PluginError,
            RuntimeError::Trap { .. } => FailureKind::PluginTrapped,
            RuntimeError::Timeout { .. } => FailureKind::PluginTimeout,
            RuntimeError::TooLarge { .. } => FailureKind::PluginTooLarge,
            RuntimeError::AbiViolation(_) => FailureKind::AbiViolation,
            RuntimeError::InvalidModule(_) => FailureKind::InvalidModule,
            RuntimeError::MemoryLimit { .. } => FailureKind::MemoryLimit,
            RuntimeError::WrongAbiVersion { .. } => FailureKind::WrongAbiVersion,
            RuntimeError::FunctionNotFound { .. } | RuntimeError::NotAStream { .. } => FailureKind::FunctionNotFound,
            RuntimeError::InputTooLarge { .. } => FailureKind::InputTooLarge,
            RuntimeError::BufferFault { .. } => FailureKind::BufferFault,
            RuntimeError::ConfigurationRefused => FailureKind::ConfigurationRefused,
            RuntimeError::ConfigurationTooLarge { .. } => FailureKind::InvalidConfiguration,
            // Instantiating a module the checker and the engine's validator accepted fails only
            // for something in the module itself (a segment that does not fit, a limit of the
            // engine): the plugin's fault, reported with its own code.
            RuntimeError::Instantiation(_) => FailureKind::PluginInstantiationFailed,
            RuntimeError::Compilation(_)
            | RuntimeError::Engine(_)
            | RuntimeError::StreamOver
            | RuntimeError::CleanupAlsoFailed { .. } => FailureKind::Internal,
        }
    }

    /// Classifies an error from calling a plugin function.
    pub(crate) fn from_call(function: AbiFunction, timeout: Duration, error: WasmEdgeError) -> Self {
        let trap = match error {
            WasmEdgeError::ExecuteTimeout => return RuntimeError::Timeout { function, timeout },
            WasmEdgeError::Core(CoreError::Execution(e)) => match e {
                CoreExecutionError::Unreachable => TrapKind::Unreachable,
                CoreExecutionError::MemoryOutOfBounds => TrapKind::MemoryOutOfBounds,
                CoreExecutionError::DivideByZero => TrapKind::DivideByZero,
                CoreExecutionError::IntegerOverflow => TrapKind::IntegerOverflow,
                CoreExecutionError::InvalidConvToInt => TrapKind::InvalidConversion,
                CoreExecutionError::TableOutOfBounds => TrapKind::TableOutOfBounds,
                CoreExecutionError::UninitializedElement
                | CoreExecutionError::UndefinedElement
                | CoreExecutionError::IndirectCallTypeMismatch
                | CoreExecutionError::AccessNullFunc => TrapKind::BadIndirectCall,
                other => TrapKind::Other(other.to_string()),
            },
            // Only reachable for modules loaded without the ABI check.
            WasmEdgeError::Instance(InstanceError::NotFoundFunc(_))
            | WasmEdgeError::Core(CoreError::Common(CoreCommonError::FuncNotFound)) => {
                return RuntimeError::InvalidModule(format!("the module does not export `{function}`"));
            }
            other => TrapKind::Other(other.to_string()),
        };
        RuntimeError::Trap { function, trap }
    }
}
