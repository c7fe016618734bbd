//! ABI v2: byte functions called by name, and streams.
//!
//! The host writes the input at the start of the plugin's input buffer, calls
//! `fn_<name>(input_len)`, and copies the number of bytes the function returns from the start
//! of the output buffer. A stream is `stream_<name>_begin`, any number of
//! `stream_<name>_feed(chunk_len)` and `stream_<name>_end` on one instance, each output copied
//! out as it is produced.
//!
//! Where the buffers are is known from the checker, which read the constants the four buffer
//! functions return. The host still never trusts it: before the first call that uses the
//! buffers on each instance it asks the plugin again and checks the answer against the checked
//! layout and the size of memory, in 64-bit arithmetic, and it checks every returned length
//! against the output capacity. A plugin that says otherwise is faulty
//! ([`RuntimeError::BufferFault`]): the call fails and the instance is discarded, never reused.
//! The buffer functions are called without a deadline: the checker proved each is a single
//! constant, so none can loop. For the same reason, and because a v2 memory never grows, one
//! check per instance holds for every later call on it (a recycled instance keeps its memory
//! size); asking again before every call cost four engine calls each time (measured: a 16-byte
//! `upper` call took 21.9 µs with them and 16.6 µs without).
//!
//! Fresh state: one-shot calls get an instance in its fresh state, like v1; a reused instance
//! has had its whole memory (buffers included) written back from the fresh image, so nothing
//! of one call's input or output is visible to the next.

use std::sync::Arc;

use plugin_sdk::names;
use plugin_sdk::{Buffer, BufferKind, CONFIG_LENGTH_BYTES, FunctionKind, StreamPart, V2Layout};
use wasmedge_sdk::{AsInstance, WasmValue};

use super::{
    AbiFunction, CompiledPlugin, PluginErrorCode, PluginInstance, RuntimeError, Used,
    executor::{returned_normally, with_cleanup},
};

impl CompiledPlugin {
    /// The v2 interface: buffers and functions. A v1 plugin has none.
    pub fn interface(&self) -> Result<&Arc<V2Layout>, RuntimeError> {
        match (&self.interface, self.abi_version) {
            (Some(layout), _) => Ok(layout),
            (None, None | Some(1)) => Err(RuntimeError::WrongAbiVersion { plugin: 1 }),
            // Only reachable with the ABI check switched off: the plugin says v2 but the
            // checker found no usable interface.
            (None, Some(version)) => Err(RuntimeError::InvalidModule(format!(
                "the plugin declares ABI v{version} but its buffers or functions break the ABI"
            ))),
        }
    }

    /// Calls the function `name` with `input` on an instance in its fresh state and returns its
    /// output. A streaming function is run as one whole stream: begun, fed `input` in chunks of
    /// the input capacity, and ended, its outputs joined.
    pub fn call_function(&self, name: &str, input: &[u8]) -> Result<Vec<u8>, RuntimeError> {
        self.call_function_configured(name, input, None)
    }

    /// [`call_function`](Self::call_function) with the operator's configuration written into
    /// the plugin's configuration buffer before `init` (see [`PluginInstance::configure`]).
    pub fn call_function_configured(
        &self,
        name: &str,
        input: &[u8],
        config: Option<&[u8]>,
    ) -> Result<Vec<u8>, RuntimeError> {
        let (result, used) = self.call_function_reset_later(name, input, config);
        if let Some(used) = used {
            used.put_back();
        }
        result
    }

    /// [`call_function_configured`](Self::call_function_configured) for a caller with
    /// something more urgent to do before the instance is put back into its fresh state (see
    /// [`run_v1_reset_later`](Self::run_v1_reset_later)): the instance of a one-shot call that
    /// returned normally comes back to be reset with [`Used::put_back`]. A stream's instance
    /// is never reused, so a streaming function gives none back.
    pub fn call_function_reset_later(
        &self,
        name: &str,
        input: &[u8],
        config: Option<&[u8]>,
    ) -> (Result<Vec<u8>, RuntimeError>, Option<Used>) {
        let layout = match self.interface() {
            Ok(layout) => layout,
            Err(error) => return (Err(error), None),
        };
        match function_kind(layout, name) {
            Err(error) => (Err(error), None),
            Ok(FunctionKind::Call) => {
                let capacity = layout.input.capacity;
                if input.len() as u64 > u64::from(capacity) {
                    return (Err(RuntimeError::InputTooLarge { size: input.len() as u64, capacity }), None);
                }
                let mut instance = match self.checkout_any() {
                    Ok(instance) => instance,
                    Err(error) => return (Err(error), None),
                };
                let function = AbiFunction::Export(names::call_export(name));
                if let Err(error) =
                    instance.configure(layout, config).and_then(|()| instance.init_configured(config.is_some()))
                {
                    return (Err(error), None);
                }
                let result = with_cleanup(&mut instance, |instance| instance.call_with_input(layout, function, input));
                let reusable = result.as_ref().err().is_none_or(returned_normally);
                (result, reusable.then_some(Used(instance)))
            }
            Ok(FunctionKind::Stream) => (self.run_whole_stream(layout, name, input, config), None),
        }
    }

    /// A streaming function run as one call: begun, fed `input` in chunks of the input
    /// capacity, and ended, its outputs joined.
    fn run_whole_stream(
        &self,
        layout: &V2Layout,
        name: &str,
        input: &[u8],
        config: Option<&[u8]>,
    ) -> Result<Vec<u8>, RuntimeError> {
        let mut stream = self.open_stream_configured(name, config)?;
        let mut output = Vec::new();
        for chunk in input.chunks(layout.input.capacity as usize) {
            output.extend(stream.feed(chunk)?);
        }
        output.extend(stream.finish()?);
        Ok(output)
    }

    /// Begins the stream `name` on an instance of its own (`init`, then `stream_<name>_begin`).
    pub fn open_stream(&self, name: &str) -> Result<StreamSession, RuntimeError> {
        self.open_stream_configured(name, None)
    }

    /// [`open_stream`](Self::open_stream) with the operator's configuration (see
    /// [`call_function_configured`](Self::call_function_configured)).
    pub fn open_stream_configured(&self, name: &str, config: Option<&[u8]>) -> Result<StreamSession, RuntimeError> {
        let layout = Arc::clone(self.interface()?);
        if function_kind(&layout, name)? != FunctionKind::Stream {
            return Err(RuntimeError::NotAStream { function: name.to_owned() });
        }
        let mut instance = self.checkout_any()?;
        let export = |part: StreamPart| AbiFunction::Export(part.export(name));
        instance.configure(&layout, config)?;
        instance.init_configured(config.is_some())?;
        let begun = with_cleanup_on_error(&mut instance, |instance| {
            instance.check_buffers(&layout, &export(StreamPart::Begin))?;
            instance.invoke(export(StreamPart::Begin), None).map(drop)
        });
        begun?;
        Ok(StreamSession {
            instance: Some(instance),
            layout,
            feed: export(StreamPart::Feed),
            end: export(StreamPart::End),
            fed_bytes: 0,
        })
    }
}

/// What kind of function `name` is, or the error listing the plugin's functions.
pub fn function_kind(layout: &V2Layout, name: &str) -> Result<FunctionKind, RuntimeError> {
    layout.function(name).map(|function| function.kind).ok_or_else(|| RuntimeError::FunctionNotFound {
        function: name.to_owned(),
        available: layout.functions.iter().map(|function| function.name.clone()).collect(),
    })
}

/// Runs `work`, and on failure runs the plugin's `cleanup` too (after a timeout the instance is
/// abandoned instead), so a stream that cannot begin still ends its lifecycle.
fn with_cleanup_on_error(
    instance: &mut PluginInstance,
    work: impl FnOnce(&mut PluginInstance) -> Result<(), RuntimeError>,
) -> Result<(), RuntimeError> {
    match work(instance) {
        Ok(()) => Ok(()),
        Err(failure) => with_cleanup(instance, |_| Err(failure)),
    }
}

/// A stream begun on one instance. Feed it chunks of at most the input capacity, then
/// [`finish`](Self::finish) it; dropping it instead abandons the instance (the plugin's state
/// is mid-stream, so it is never reused). After any error the stream is over.
#[derive(Debug)]
pub struct StreamSession {
    /// `None` once the stream failed or ended.
    instance: Option<PluginInstance>,
    layout: Arc<V2Layout>,
    feed: AbiFunction,
    end: AbiFunction,
    fed_bytes: u64,
}

impl StreamSession {
    /// The largest chunk [`feed`](Self::feed) takes: the plugin's input capacity.
    pub fn chunk_capacity(&self) -> usize {
        self.layout.input.capacity as usize
    }

    /// Bytes fed so far.
    pub fn fed_bytes(&self) -> u64 {
        self.fed_bytes
    }

    /// Feeds one chunk and returns the output the plugin produced for it. Each chunk gets the
    /// whole call deadline.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<u8>, RuntimeError> {
        let capacity = self.layout.input.capacity;
        if chunk.len() as u64 > u64::from(capacity) {
            return Err(RuntimeError::InputTooLarge { size: chunk.len() as u64, capacity });
        }
        let mut instance = self.instance.take().ok_or(RuntimeError::StreamOver)?;
        instance.renew_deadline();
        let output = instance.call_with_input(&self.layout, self.feed.clone(), chunk);
        if output.is_ok() {
            self.fed_bytes += chunk.len() as u64;
            self.instance = Some(instance);
        } else if output.as_ref().err().is_some_and(returned_normally) {
            // The plugin refused the chunk with an error code: end its lifecycle properly, then
            // drop it (its state is mid-stream).
            return with_cleanup(&mut instance, |_| output);
        }
        output
    }

    /// Ends the stream (`stream_<name>_end`, then `cleanup`) and returns the final output. The
    /// instance is put back into its fresh state for reuse when every call returned normally.
    pub fn finish(mut self) -> Result<Vec<u8>, RuntimeError> {
        let mut instance = self.instance.take().ok_or(RuntimeError::StreamOver)?;
        instance.renew_deadline();
        let (layout, end) = (Arc::clone(&self.layout), self.end.clone());
        let result = with_cleanup(&mut instance, |instance| {
            instance.check_buffers(&layout, &end)?;
            let length = instance.invoke(end.clone(), None)?;
            instance.read_output(&layout, &end, length)
        });
        if result.as_ref().err().is_none_or(returned_normally) {
            instance.recycle_after_reset();
        }
        result
    }
}

impl PluginInstance {
    /// Writes the configuration buffer of a plugin that declares one, before `init`: the
    /// length of `config` as a little-endian `u32` (0 without a configuration), then its bytes.
    /// Every instance gets this before every `init`, fresh or recycled: a recycled instance's
    /// memory was written back from the image taken right after instantiation, which holds no
    /// configuration. A configuration for a plugin without the buffer, or larger than the
    /// buffer holds, is refused (the host checks both before it calls; this is the guard).
    pub(super) fn configure(&mut self, layout: &V2Layout, config: Option<&[u8]>) -> Result<(), RuntimeError> {
        let Some(buffer) = layout.config else {
            return match config {
                Some(config) => Err(RuntimeError::ConfigurationTooLarge { size: config.len() as u64, room: 0 }),
                None => Ok(()),
            };
        };
        let bytes = config.unwrap_or_default();
        if bytes.len() as u64 > u64::from(buffer.config_room()) {
            return Err(RuntimeError::ConfigurationTooLarge { size: bytes.len() as u64, room: buffer.config_room() });
        }
        let function = AbiFunction::Init;
        self.check_buffers(layout, &function)?;
        let length = u32::try_from(bytes.len()).expect("at most the buffer's capacity, a u32");
        self.write_memory(&function, buffer.offset, &length.to_le_bytes())?;
        self.write_memory(&function, buffer.offset + CONFIG_LENGTH_BYTES, bytes)
    }

    /// `init`, after [`configure`](Self::configure): with a configuration given, -3 means the
    /// plugin refuses that configuration.
    pub(super) fn init_configured(&mut self, configured: bool) -> Result<(), RuntimeError> {
        match self.invoke(AbiFunction::Init, None) {
            Err(RuntimeError::Plugin {
                code: PluginErrorCode::Known(plugin_sdk::ErrorCode::InvalidArgument), ..
            }) if configured => Err(RuntimeError::ConfigurationRefused),
            other => other.map(drop),
        }
    }

    /// Writes `input` into the input buffer, calls `function(input.len())` and copies its
    /// output out.
    fn call_with_input(
        &mut self,
        layout: &V2Layout,
        function: AbiFunction,
        input: &[u8],
    ) -> Result<Vec<u8>, RuntimeError> {
        self.check_buffers(layout, &function)?;
        self.write_memory(&function, layout.input.offset, input)?;
        let length = i32::try_from(input.len()).expect("inputs are at most the input capacity, an i32");
        let written = self.invoke(function.clone(), Some(length))?;
        self.read_output(layout, &function, written)
    }

    /// The `length` bytes `function` says it wrote at the start of the output buffer.
    fn read_output(&mut self, layout: &V2Layout, function: &AbiFunction, length: i32) -> Result<Vec<u8>, RuntimeError> {
        // `invoke` turned negative values into error codes, so `length` is at least 0 here.
        let length = u32::try_from(length).expect("non-negative");
        if length > layout.output.capacity {
            return Err(RuntimeError::BufferFault {
                function: function.clone(),
                problem: format!(
                    "it returned {length} bytes of output, over its {}-byte output buffer",
                    layout.output.capacity
                ),
            });
        }
        self.read_memory(function, layout.output.offset, length)
    }

    /// Asks the plugin where its buffers are and checks the answer: the same as the checker
    /// read, and inside memory as it is now; once per instance. See the module documentation.
    fn check_buffers(&mut self, layout: &V2Layout, function: &AbiFunction) -> Result<(), RuntimeError> {
        if self.buffers_checked {
            return Ok(());
        }
        let memory_bytes = self.memory_bytes(function)?;
        let config = layout.config.map(|config| (BufferKind::Config, config));
        for (kind, checked) in
            [(BufferKind::Input, layout.input), (BufferKind::Output, layout.output)].into_iter().chain(config)
        {
            let offset = self.buffer_query(kind.ptr_export())?;
            let capacity = self.buffer_query(kind.capacity_export())?;
            let fault = |problem: String| RuntimeError::BufferFault { function: function.clone(), problem };
            // Read as the unsigned values they are (a pointer above 2 GiB is negative as i32).
            let said = Buffer { offset: offset as u32, capacity: capacity as u32 };
            if said != checked {
                return Err(fault(format!("its {kind} buffer moved: it now says {said}, it was checked as {checked}")));
            }
            if said.end() > memory_bytes {
                return Err(fault(format!("its {kind} buffer ({said}) ends outside its {memory_bytes}-byte memory")));
            }
        }
        let config_overlaps = layout.config.is_some_and(|c| c.overlaps(&layout.input) || c.overlaps(&layout.output));
        if layout.input.overlaps(&layout.output) || config_overlaps {
            return Err(RuntimeError::BufferFault {
                function: function.clone(),
                problem: "its buffers overlap".into(),
            });
        }
        self.buffers_checked = true;
        Ok(())
    }

    /// Calls one of the four buffer functions.
    fn buffer_query(&mut self, export: &str) -> Result<i32, RuntimeError> {
        let function = AbiFunction::Export(export.to_owned());
        let returns = self
            .vm
            .run_func(None, export, [])
            .map_err(|e| RuntimeError::from_call(function.clone(), self.timeout, *e))?;
        returns
            .first()
            .map(WasmValue::to_i32)
            .ok_or_else(|| RuntimeError::BufferFault { function, problem: "it returned no value".into() })
    }

    fn memory_bytes(&mut self, function: &AbiFunction) -> Result<u64, RuntimeError> {
        let instance = self.active_instance()?;
        let memory = instance.get_memory_mut(names::MEMORY).map_err(|_| no_memory(function))?;
        Ok(u64::from(memory.size()) * names::PAGE_BYTES)
    }

    fn write_memory(&mut self, function: &AbiFunction, offset: u32, data: &[u8]) -> Result<(), RuntimeError> {
        let instance = self.active_instance()?;
        let mut memory = instance.get_memory_mut(names::MEMORY).map_err(|_| no_memory(function))?;
        memory.set_data(data, offset).map_err(|e| RuntimeError::Engine(format!("writing the input: {e}")))
    }

    fn read_memory(&mut self, function: &AbiFunction, offset: u32, length: u32) -> Result<Vec<u8>, RuntimeError> {
        let instance = self.active_instance()?;
        let memory = instance.get_memory_mut(names::MEMORY).map_err(|_| no_memory(function))?;
        memory.get_data(offset, length).map_err(|e| RuntimeError::Engine(format!("reading the output: {e}")))
    }

    fn active_instance(&mut self) -> Result<&mut wasmedge_sdk::Instance, RuntimeError> {
        self.vm.active_module_mut().ok_or_else(|| RuntimeError::Engine("no active module".into()))
    }
}

fn no_memory(function: &AbiFunction) -> RuntimeError {
    RuntimeError::BufferFault {
        function: function.clone(),
        problem: format!("the module exports no memory named `{}`", names::MEMORY),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{Engine, ExecutionMode, RuntimeConfig};

    /// A v2 plugin in WAT: 256-byte buffers at 1024 and 2048, and `fn_echo`.
    fn echo_plugin() -> CompiledPlugin {
        let wasm = wat::parse_str(
            r#"(module
                (memory (export "memory") 1)
                (func (export "plugin_input_ptr") (result i32) i32.const 1024)
                (func (export "plugin_input_capacity") (result i32) i32.const 256)
                (func (export "plugin_output_ptr") (result i32) i32.const 2048)
                (func (export "plugin_output_capacity") (result i32) i32.const 256)
                (func (export "init") (result i32) i32.const 0)
                (func (export "cleanup") (result i32) i32.const 0)
                (func (export "fn_echo") (param $n i32) (result i32)
                    (memory.copy (i32.const 2048) (i32.const 1024) (local.get $n))
                    local.get $n)
                (@custom "wasm_plugin_abi" "\02\00\00\00"))"#,
        )
        .unwrap();
        let engine = Engine::new(RuntimeConfig::new(ExecutionMode::Interpreter)).unwrap();
        engine.compile(&wasm, "echo-test").unwrap()
    }

    /// A v2 plugin in WAT with a 20-byte configuration buffer at 4096 (16 bytes of
    /// configuration): `init` refuses a configuration starting with `x`, and `fn_config`
    /// answers with the configuration as `init` saw it.
    fn configured_plugin() -> CompiledPlugin {
        let wasm = wat::parse_str(
            r#"(module
                (memory (export "memory") 1)
                (global $seen (mut i32) (i32.const 0))
                (func (export "plugin_input_ptr") (result i32) i32.const 1024)
                (func (export "plugin_input_capacity") (result i32) i32.const 256)
                (func (export "plugin_output_ptr") (result i32) i32.const 2048)
                (func (export "plugin_output_capacity") (result i32) i32.const 256)
                (func (export "plugin_config_ptr") (result i32) i32.const 4096)
                (func (export "plugin_config_capacity") (result i32) i32.const 20)
                (func (export "init") (result i32)
                    (global.set $seen (i32.load (i32.const 4096)))
                    (if (i32.and (i32.gt_u (global.get $seen) (i32.const 0))
                                 (i32.eq (i32.load8_u (i32.const 4100)) (i32.const 120)))
                        (then (return (i32.const -3))))
                    i32.const 0)
                (func (export "cleanup") (result i32) i32.const 0)
                (func (export "fn_config") (param $n i32) (result i32)
                    (memory.copy (i32.const 2048) (i32.const 4100) (global.get $seen))
                    global.get $seen)
                (@custom "wasm_plugin_abi" "\02\00\00\00"))"#,
        )
        .unwrap();
        let engine = Engine::new(RuntimeConfig::new(ExecutionMode::Interpreter)).unwrap();
        engine.compile(&wasm, "configured-test").unwrap()
    }

    #[test]
    fn every_instance_sees_the_configuration_of_its_call() {
        let plugin = configured_plugin();
        assert!(plugin.reuses_instances());
        // Reused instances in between: each call sees its own configuration and nothing of
        // the one before.
        for config in [&b"alpha"[..], b"b", b"", b"sixteen bytes!!!"] {
            assert_eq!(plugin.call_function_configured("config", b"", Some(config)).unwrap(), config);
            assert_eq!(plugin.call_function("config", b"").unwrap(), b"", "no configuration: length 0");
        }
        assert!(matches!(
            plugin.call_function_configured("config", b"", Some(b"seventeen bytes!!")),
            Err(RuntimeError::ConfigurationTooLarge { size: 17, room: 16 })
        ));
        let refused = plugin.call_function_configured("config", b"", Some(b"xyz")).unwrap_err();
        assert!(matches!(refused, RuntimeError::ConfigurationRefused), "{refused:?}");
        assert_eq!(refused.kind(), crate::failure::FailureKind::ConfigurationRefused);
        // A plugin without the buffer takes no configuration.
        assert!(matches!(
            echo_plugin().call_function_configured("echo", b"hi", Some(b"{}")),
            Err(RuntimeError::ConfigurationTooLarge { size: 2, room: 0 })
        ));
        assert_eq!(echo_plugin().call_function_configured("echo", b"hi", None).unwrap(), b"hi");
    }

    /// As a worker process calls: the answer first, the reset after (or never: a dropped
    /// instance is freed). Each call still sees its own configuration and nothing else.
    #[test]
    fn an_instance_put_back_after_the_answer_is_fresh_for_the_next_call() {
        let plugin = configured_plugin();
        for (i, config) in [&b"alpha"[..], b"b", b"", b"sixteen bytes!!!", b"omega"].into_iter().enumerate() {
            let (output, used) = plugin.call_function_reset_later("config", b"", Some(config));
            assert_eq!(output.unwrap(), config);
            // A call made before that instance is reset gets another instance.
            assert_eq!(plugin.call_function("config", b"").unwrap(), b"", "no configuration: length 0");
            let used = used.expect("a call that returned normally leaves its instance reusable");
            if i % 2 == 0 {
                used.put_back();
            }
        }
        let (refused, used) = plugin.call_function_reset_later("config", b"", Some(b"xyz"));
        assert!(matches!(refused, Err(RuntimeError::ConfigurationRefused)), "{refused:?}");
        assert!(used.is_none(), "an instance whose init refused its configuration is not reused");
    }

    /// The plugin as if the checker had read another layout than the plugin now reports.
    fn with_layout(plugin: &CompiledPlugin, change: impl FnOnce(&mut V2Layout)) -> CompiledPlugin {
        let mut layout = V2Layout::clone(plugin.interface().unwrap());
        change(&mut layout);
        CompiledPlugin { interface: Some(Arc::new(layout)), ..plugin.clone() }
    }

    #[test]
    fn bytes_go_in_and_come_out() {
        let plugin = echo_plugin();
        assert!(plugin.reuses_instances());
        for _ in 0..3 {
            assert_eq!(plugin.call_function("echo", b"hello").unwrap(), b"hello");
        }
        assert!(matches!(
            plugin.call_function("echo", &[0; 257]),
            Err(RuntimeError::InputTooLarge { size: 257, capacity: 256 })
        ));
    }

    #[test]
    fn a_buffer_that_moved_is_a_plugin_fault() {
        let plugin = with_layout(&echo_plugin(), |layout| layout.input.offset = 1028);
        let error = plugin.call_function("echo", b"hi").unwrap_err();
        let RuntimeError::BufferFault { problem, .. } = &error else { panic!("{error:?}") };
        assert!(problem.contains("input buffer moved"), "{problem}");
    }

    #[test]
    fn a_length_over_the_output_capacity_is_a_plugin_fault() {
        // (The hostile example `plugins/faults/v2-hostile.c` does this through HTTP.)
        let plugin = echo_plugin();
        let mut instance = plugin.checkout_any().unwrap();
        let layout = V2Layout::clone(plugin.interface().unwrap());
        let function = AbiFunction::Export("fn_echo".into());
        let error = instance.read_output(&layout, &function, 257).unwrap_err();
        let RuntimeError::BufferFault { problem, .. } = &error else { panic!("{error:?}") };
        assert!(problem.contains("257 bytes of output, over its 256-byte output buffer"), "{problem}");
    }
}
