//! AFL++ entry point of the `run_request` target (see the `fuzz` crate); run by
//! `cargo xtask fuzz run_request`.

use std::panic::AssertUnwindSafe;

fn main() {
    // One router for the whole process: AFL++ feeds many inputs to each. A panic is a finding
    // and ends the process, so no state is ever seen after one: asserting unwind safety (which
    // axum's router does not declare) hides nothing.
    let harness = AssertUnwindSafe(fuzz::RequestHarness::new());
    afl::fuzz!(|data: &[u8]| harness.run(data));
}
