//! hello in Rust: the same plugin as `plugins/hello/hello.cpp`, answer for answer. Doubles its
//! input and adds one, but only between init() and cleanup().
//!
//!   init()      0; -2 (AlreadyInitialized) if called again before cleanup()
//!   process(x)  2 * x + 1 for 0 <= x <= 1073741823; process(21) == 43
//!               -1 (NotInitialized) before init() or after cleanup()
//!               -3 (InvalidArgument) for x < 0 or x > 1073741823
//!   cleanup()   0, always; afterwards init() may be called again

#![no_std]

use wasm_plugin::{Error, State};

/// The largest input whose result, 2 * x + 1, still fits in an i32.
const MAX_INPUT: i32 = (i32::MAX - 1) / 2;

static INITIALIZED: State<bool> = State::new(false);

fn init() -> Result<(), Error> {
    if INITIALIZED.get() {
        return Err(Error::AlreadyInitialized);
    }
    INITIALIZED.set(true);
    Ok(())
}

fn process(input: i32) -> Result<i32, Error> {
    if !INITIALIZED.get() {
        return Err(Error::NotInitialized);
    }
    if !(0..=MAX_INPUT).contains(&input) {
        return Err(Error::InvalidArgument);
    }
    Ok(2 * input + 1)
}

fn cleanup() -> Result<(), Error> {
    INITIALIZED.set(false);
    Ok(())
}

wasm_plugin::plugin_v1!(init, process, cleanup);
