//! A `Calls` runner with native functions instead of plugins, for the same-stack native
//! baseline (`examples/native_server.rs`, and `benches/request_path.rs`).

use plugin_host::{
    PluginStatus, Ran, Target, VersionStatus,
    runner::{Attempt, Calls, Inspects, Interface, PluginStream, RunError},
    store::{PluginName, PluginRef, StoreError},
};

/// `hello` computes what `plugins/hello` does.
#[derive(Debug)]
pub struct NativeRunner;

impl Calls for NativeRunner {
    /// Native functions have no versions: every request gets the one there is.
    fn resolve(&self, target: &Target) -> Result<PluginRef, RunError> {
        Ok(PluginRef::from(&target.name))
    }

    /// A native function is always short: it runs where the host runs a short plugin call.
    fn run_now(&self, target: &Target, input: i32) -> Attempt<i32> {
        Attempt::Done(self.run(&PluginRef::from(&target.name), input))
    }

    fn run(&self, plugin: &PluginRef, input: i32) -> Result<Ran<i32>, RunError> {
        match plugin.name.as_str() {
            "hello" => Ok(Ran { output: 2 * input + 1, plugin: plugin.clone(), sha256: "native".into() }),
            _ => Err(StoreError::NotFound(plugin.clone()).into()),
        }
    }

    fn interface(&self, plugin: &PluginRef) -> Result<Interface, RunError> {
        match plugin.name.as_str() {
            "hello" => Ok(Interface::V1),
            _ => Err(StoreError::NotFound(plugin.clone()).into()),
        }
    }

    fn call(&self, plugin: &PluginRef, function: &str, _input: &[u8]) -> Result<Ran<Vec<u8>>, RunError> {
        Err(self.interface(plugin)?.function_kind(function).expect_err("hello has no functions"))
    }

    fn open_stream(&self, plugin: &PluginRef, function: &str) -> Result<Ran<Box<dyn PluginStream>>, RunError> {
        Err(self.interface(plugin)?.function_kind(function).expect_err("hello has no functions"))
    }
}

impl Inspects for NativeRunner {
    fn inspect(&self, plugin: &PluginRef) -> Result<PluginStatus, RunError> {
        Err(StoreError::NotFound(plugin.clone()).into())
    }

    fn versions(&self, name: &PluginName) -> Result<Vec<VersionStatus>, RunError> {
        Err(StoreError::NotFound(name.into()).into())
    }

    fn list(&self) -> Result<Vec<PluginStatus>, RunError> {
        Ok(Vec::new())
    }

    fn describe_store(&self) -> String {
        "native functions (benchmark baseline)".into()
    }
}
