//! AFL++ entry point of the `checker_smith` target (see the `fuzz` crate); run by `cargo xtask fuzz checker_smith`.

fn main() {
    afl::fuzz!(|data: &[u8]| fuzz::checker_smith(data));
}
