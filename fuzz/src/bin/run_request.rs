//! AFL++ entry point of the `run_request` target (see the `fuzz` crate); run by
//! `cargo xtask fuzz run_request`.

fn main() {
    // One router for the whole process: AFL++ feeds many inputs to each.
    let harness = fuzz::RequestHarness::new();
    afl::fuzz!(|data: &[u8]| harness.run(data));
}
