//! AFL++ entry point of the `accepted_harmless` target (see the `fuzz` crate); run by
//! `cargo xtask fuzz accepted_harmless`.

fn main() {
    // The engines are made once per process: AFL++ feeds many inputs to each.
    let harness = fuzz::Harmless::new();
    afl::fuzz!(|data: &[u8]| {
        harness.run(data);
    });
}
