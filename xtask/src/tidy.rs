//! House rules and the architecture invariants ARCHITECTURE.md states, checked by `cargo test`
//! so that they hold without anyone remembering them.

#[cfg(test)]
mod tests {
    use std::{
        fs,
        path::{Path, PathBuf},
    };

    /// The crates of the workspace (root `Cargo.toml`); a test below keeps the list honest.
    const WORKSPACE_MEMBERS: [&str; 5] = ["fuzz", "host", "plugin-sdk", "plugin-signature", "xtask"];

    #[test]
    fn the_member_list_matches_the_workspace() {
        let manifest = fs::read_to_string(crate::project_root().join("Cargo.toml")).unwrap();
        let members = manifest.lines().find(|line| line.starts_with("members")).expect("a members line");
        let listed: Vec<&str> = members.split('"').skip(1).step_by(2).collect();
        assert_eq!(listed, WORKSPACE_MEMBERS);
    }

    #[test]
    fn the_wasmtime_peer_stays_out_of_the_workspace() {
        // `cargo xtask bench` builds it with `--manifest-path`; nothing else may compile wasmtime.
        let root = crate::project_root();
        let manifest = fs::read_to_string(root.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("exclude = [\"bench/wasmtime-peer\"]"), "the root Cargo.toml excludes the peer");
        let peer = fs::read_to_string(root.join("bench/wasmtime-peer/Cargo.toml")).unwrap();
        assert!(peer.lines().any(|l| l.trim() == "[workspace]"), "the peer is a workspace of its own");
        let lock = fs::read_to_string(root.join("Cargo.lock")).unwrap();
        assert!(!lock.contains("name = \"wasmtime\""), "wasmtime is in the workspace's Cargo.lock");
    }

    fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if name == "target" || name.to_string_lossy().starts_with('.') {
                continue;
            }
            if path.is_dir() {
                rust_files(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }

    #[test]
    fn every_rust_file_says_what_it_owns_and_has_no_debugging_leftovers() {
        // The workspace's crates; build output and other checkouts' folders are not ours.
        let mut files = Vec::new();
        for member in WORKSPACE_MEMBERS {
            rust_files(&crate::project_root().join(member), &mut files);
        }
        assert!(files.len() > 30, "found only {} files", files.len());
        let mut problems = Vec::new();
        for file in &files {
            let text = fs::read_to_string(file).unwrap();
            if !text.starts_with("//!") {
                problems.push(format!("{}: does not start with a `//!` line saying what it owns", file.display()));
            }
            // This file names the macros it looks for.
            if file.ends_with("xtask/src/tidy.rs") {
                continue;
            }
            for (number, line) in text.lines().enumerate() {
                if let Some(word) = ["dbg!(", "todo!(", "unimplemented!("].iter().find(|b| line.contains(*b)) {
                    problems.push(format!("{}:{}: {word}", file.display(), number + 1));
                }
                // A `Command`'s `Debug` prints environment values (all of them after `env_clear`,
                // as `cc` does): show commands with `xtask::command_line::CommandLine`.
                if let Some(word) = ["{command:?}", "{cmd:?}", "{command:#?}"].iter().find(|b| line.contains(*b)) {
                    problems.push(format!(
                        "{}:{}: {word} prints the environment; use CommandLine",
                        file.display(),
                        number + 1
                    ));
                }
            }
        }
        assert!(problems.is_empty(), "house rules broken:\n{}", problems.join("\n"));
    }

    /// Every Rust file under `dir` (relative to the project root) with its text.
    fn sources_under(dir: &str) -> Vec<(PathBuf, String)> {
        let mut files = Vec::new();
        rust_files(&crate::project_root().join(dir), &mut files);
        assert!(!files.is_empty(), "{dir} holds no Rust file");
        files.into_iter().map(|file| (file.clone(), fs::read_to_string(&file).unwrap())).collect()
    }

    /// The lines of `text` that are code, not comments.
    fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
        text.lines().enumerate().filter(|(_, line)| !line.trim_start().starts_with("//")).map(|(i, line)| (i + 1, line))
    }

    /// Where files under `dir` (other than those under `except`) write `pattern` in code.
    fn uses(dir: &str, except: Option<&str>, pattern: &str) -> Vec<String> {
        let exempt = except.map(|e| crate::project_root().join(e));
        let mut found = Vec::new();
        for (file, text) in sources_under(dir) {
            // This file names the patterns it looks for.
            if exempt.as_ref().is_some_and(|e| file.starts_with(e)) || file.ends_with("xtask/src/tidy.rs") {
                continue;
            }
            for (number, line) in code_lines(&text).filter(|(_, line)| line.contains(pattern)) {
                found.push(format!("{}:{number}: {}", file.display(), line.trim()));
            }
        }
        found
    }

    /// ARCHITECTURE.md: "only `host/src/runtime` imports `wasmedge_sdk`".
    #[test]
    fn invariant_only_the_runtime_touches_wasmedge() {
        let found = uses("host/src", Some("host/src/runtime"), "wasmedge_sdk");
        assert!(found.is_empty(), "wasmedge_sdk used outside host/src/runtime:\n{}", found.join("\n"));
    }

    /// ARCHITECTURE.md: "the signature format exists only in `plugin-signature`": no other
    /// crate signs, verifies or parses keys itself, so the host and xtask cannot disagree about
    /// what a valid signature is.
    #[test]
    fn invariant_signatures_are_made_and_checked_only_in_the_signature_crate() {
        let mut found = Vec::new();
        for dir in ["host/src", "host/tests", "xtask/src", "plugin-sdk/src", "fuzz"] {
            for pattern in ["p256::", "ecdsa::", "use p256", "use ecdsa"] {
                found.extend(uses(dir, None, pattern));
            }
        }
        assert!(found.is_empty(), "cryptography outside plugin-signature:\n{}", found.join("\n"));
        for crate_dir in ["host/src", "xtask/src"] {
            assert!(
                !uses(crate_dir, None, "plugin_signature::").is_empty(),
                "{crate_dir} does not use the shared format"
            );
        }
    }

    /// ARCHITECTURE.md: "the HTTP layer knows nothing about WasmEdge or files; it sees the
    /// runner's types, the failure table and the plugin name".
    #[test]
    fn invariant_the_http_layer_sees_only_the_runner() {
        let mut found = uses("host/src/api", None, "runtime::");
        found.extend(uses("host/src/api", None, "wasmedge_sdk"));
        found.extend(uses("host/src/api", None, "std::fs"));
        for (file, text) in sources_under("host/src/api") {
            for (number, line) in code_lines(&text) {
                // From the store, only the name type (the allowlist a name passes before it can
                // reach any file system) and the version types (a parsed requirement, and the
                // name and version a request resolved to) may be used.
                let store_items = line.split("store::").skip(1).flat_map(|rest| match rest.strip_prefix('{') {
                    Some(group) => group.split('}').next().unwrap_or_default().split(',').map(str::trim).collect(),
                    None => vec![rest.split(|c: char| !c.is_alphanumeric() && c != '_').next().unwrap_or_default()],
                });
                for item in store_items.filter(|item| {
                    !["PluginName", "InvalidName", "PluginRef", "VersionRequirement", "InvalidRequirement", ""]
                        .contains(item)
                }) {
                    found.push(format!("{}:{number}: store::{item}", file.display()));
                }
            }
        }
        assert!(found.is_empty(), "the HTTP layer reaches below the runner:\n{}", found.join("\n"));
    }

    /// ARCHITECTURE.md: "xtask does not depend on `host`" (it must build before WasmEdge exists),
    /// and neither does the ABI crate, which both sides share.
    #[test]
    fn invariant_xtask_and_the_abi_crate_do_not_depend_on_the_host() {
        for manifest in ["xtask/Cargo.toml", "plugin-sdk/Cargo.toml", "plugin-signature/Cargo.toml"] {
            let text = fs::read_to_string(crate::project_root().join(manifest)).unwrap();
            let dependencies = text.lines().filter(|line| {
                let name = line.split(['=', '.']).next().unwrap_or_default().trim();
                name == "host" || name == "wasmedge-sdk" || name == "wasmedge-sys"
            });
            let found: Vec<_> = dependencies.collect();
            assert!(found.is_empty(), "{manifest} depends on {found:?}");
        }
    }

    /// ARCHITECTURE.md: "the rules exist only in `plugin-sdk`; xtask and host both call
    /// `check`". Rules need a WebAssembly parser: outside the ABI crate, only the runtime's
    /// reuse rewrite (which decides nothing) may use one, and both other crates must call the
    /// shared checker.
    #[test]
    fn invariant_abi_rules_live_only_in_the_abi_crate() {
        let mut parsers = uses("host/src", Some("host/src/runtime/reuse.rs"), "wasmparser");
        parsers.extend(uses("xtask/src", None, "wasmparser"));
        assert!(parsers.is_empty(), "WebAssembly parsed outside plugin-sdk:\n{}", parsers.join("\n"));
        for crate_dir in ["host/src", "xtask/src"] {
            assert!(
                !uses(crate_dir, None, "plugin_sdk::check").is_empty(),
                "{crate_dir} does not call the shared checker"
            );
        }
    }

    /// ARCHITECTURE.md: "a name reaches the filesystem only as a validated `PluginName`": no
    /// function of the store takes a name as a plain string, except the validation itself.
    #[test]
    fn invariant_names_reach_the_store_only_validated() {
        let found: Vec<_> = uses("host/src/store", Some("host/src/store/name.rs"), "fn ")
            .into_iter()
            .filter(|line| line.contains("name: &str") || line.contains("name: String"))
            .collect();
        assert!(found.is_empty(), "store functions taking unvalidated names:\n{}", found.join("\n"));
    }

    /// The subcommands clap knows, in the order `--help` lists them.
    fn subcommands() -> Vec<String> {
        use clap::CommandFactory;
        crate::Cli::command()
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .filter(|name| name != "help")
            .collect()
    }

    /// ARCHITECTURE.md's entry point for xtask names every subcommand, and only those.
    #[test]
    fn the_architecture_lists_every_subcommand() {
        let text = fs::read_to_string(crate::project_root().join("ARCHITECTURE.md")).unwrap();
        let start = text.find("- `xtask/src/main.rs`: `cargo xtask ").expect("an entry point for xtask/src/main.rs");
        let rest = &text[start + "- `xtask/src/main.rs`: `cargo xtask ".len()..];
        let listed: Vec<String> = rest[..rest.find('`').unwrap()]
            .split('|')
            .map(|name| name.split_whitespace().collect::<String>())
            .collect();
        let mut known = subcommands();
        let mut listed_sorted = listed.clone();
        known.sort();
        listed_sorted.sort();
        assert_eq!(listed_sorted, known, "ARCHITECTURE.md lists {listed:?}");
    }

    /// BUILD.md's table of commands has a row for every subcommand, and no row for one that
    /// does not exist.
    #[test]
    fn the_build_guide_has_a_row_for_every_subcommand() {
        let text = fs::read_to_string(crate::project_root().join("BUILD.md")).unwrap();
        let mut rows: Vec<String> = text
            .lines()
            .filter_map(|line| line.strip_prefix("| `cargo xtask "))
            .filter_map(|rest| rest.split([' ', '`']).next())
            .map(str::to_string)
            .collect();
        let mut known = subcommands();
        rows.sort();
        known.sort();
        assert_eq!(rows, known, "BUILD.md's command table and the subcommands differ");
    }
}
