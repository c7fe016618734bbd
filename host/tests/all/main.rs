//! The host's integration tests, in one binary so they link once (WasmEdge makes linking slow).
//!
//! They run real things: WasmEdge, the example plugins compiled by `cargo xtask build-plugins`
//! (in `target/plugins`), small modules written here in WAT, real temporary directories and
//! a real HTTP server on 127.0.0.1.

mod binary;
mod compat;
mod configuration;
mod connections;
mod embedder;
mod functions;
mod go_client;
mod http;
mod isolation;
mod lanes;
mod languages;
mod long;
mod memory;
mod openapi;
mod pressure;
mod readme;
mod registry;
mod runner;
mod runtime;
mod signing;
mod stores;
mod support;
mod tokens;
mod versions;
