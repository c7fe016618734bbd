//! House rules and the architecture invariants ARCHITECTURE.md states, checked by `cargo test`
//! so that they hold without anyone remembering them.

#[cfg(test)]
mod tests {
    use std::{
        fs,
        path::{Path, PathBuf},
    };

    /// The crates of the workspace (root `Cargo.toml`); a test below keeps the list honest.
    const WORKSPACE_MEMBERS: [&str; 7] =
        ["fuzz", "host", "plugin-host", "plugin-host-build", "plugin-sdk", "plugin-signature", "xtask"];

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
        let exclude = manifest.lines().find(|line| line.starts_with("exclude")).expect("an exclude line");
        assert!(exclude.contains("\"bench/wasmtime-peer\""), "the root Cargo.toml excludes the peer");
        let peer = fs::read_to_string(root.join("bench/wasmtime-peer/Cargo.toml")).unwrap();
        assert!(peer.lines().any(|l| l.trim() == "[workspace]"), "the peer is a workspace of its own");
        let lock = fs::read_to_string(root.join("Cargo.lock")).unwrap();
        assert!(!lock.contains("name = \"wasmtime\""), "wasmtime is in the workspace's Cargo.lock");
    }

    /// The README's library example is a user's crate: outside the workspace (as theirs would
    /// be), with a lockfile of its own, and made of exactly the files the README shows.
    #[test]
    fn the_readme_library_example_is_examples_embedder() {
        let root = crate::project_root();
        let manifest = fs::read_to_string(root.join("Cargo.toml")).unwrap();
        let exclude = manifest.lines().find(|line| line.starts_with("exclude")).expect("an exclude line");
        assert!(exclude.contains("\"examples/embedder\""), "the root Cargo.toml excludes examples/embedder");
        assert!(root.join("examples/embedder/Cargo.lock").is_file(), "examples/embedder has its own Cargo.lock");
        let readme = fs::read_to_string(root.join("README.md")).unwrap();
        let shown = readme_files(&readme);
        let names: Vec<&str> = shown.iter().map(|(path, _)| path.as_str()).collect();
        for file in ["examples/embedder/Cargo.toml", "examples/embedder/build.rs", "examples/embedder/src/main.rs"] {
            assert!(names.contains(&file), "README.md shows no `<!-- file: {file} -->` block (it shows {names:?})");
        }
        for (path, block) in shown {
            let text = fs::read_to_string(root.join(&path)).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert!(
                text == block,
                "README.md's block for {path} and the file differ: copy one to the other\n--- README.md\n{block}\n--- \
                 {path}\n{text}"
            );
        }
    }

    /// The packages a Cargo.lock pins, as `name version`.
    fn locked_packages(lock: &str) -> Vec<String> {
        let mut found = Vec::new();
        let mut lines = lock.lines();
        while let Some(line) = lines.next() {
            if let Some(name) = line.strip_prefix("name = ") {
                let version = lines.next().and_then(|line| line.strip_prefix("version = ")).unwrap_or_default();
                found.push(format!("{} {}", name.trim_matches('"'), version.trim_matches('"')));
            }
        }
        found
    }

    /// The example's lockfile pins the workspace's versions, so that its test builds from the
    /// packages the workspace's build already fetched (and exactly what the workspace tested).
    #[test]
    fn the_embedder_locks_the_workspaces_versions() {
        let root = crate::project_root();
        let workspace = locked_packages(&fs::read_to_string(root.join("Cargo.lock")).unwrap());
        let example = locked_packages(&fs::read_to_string(root.join("examples/embedder/Cargo.lock")).unwrap());
        assert!(example.iter().any(|package| package.starts_with("axum ")), "{example:?}");
        let other: Vec<_> = example.iter().filter(|package| !workspace.contains(package)).collect();
        assert!(
            other == ["embedder 0.1.0"],
            "examples/embedder/Cargo.lock pins versions the workspace's does not: {other:?}; regenerate it from the \
             workspace's: `cp Cargo.lock examples/embedder/ && (cd examples/embedder && cargo metadata --offline \
             >/dev/null)`"
        );
    }

    /// README.md's `<!-- file: PATH -->` blocks: the path, and the fenced block on the next lines.
    fn readme_files(readme: &str) -> Vec<(String, String)> {
        let mut found = Vec::new();
        let mut lines = readme.lines();
        while let Some(line) = lines.next() {
            let Some(path) = line.strip_prefix("<!-- file: ").and_then(|rest| rest.strip_suffix(" -->")) else {
                continue;
            };
            let fence = lines.next().unwrap_or_default();
            assert!(fence.starts_with("```"), "README.md: `{line}` is not followed by a fenced block");
            let mut block = String::new();
            for line in lines.by_ref().take_while(|line| *line != "```") {
                block.push_str(line);
                block.push('\n');
            }
            found.push((path.to_owned(), block));
        }
        found
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
            // A file pasted in with `include!` cannot hold an inner doc comment; it says so instead.
            if !text.starts_with("//!") && !text.starts_with("// Included by") {
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

    /// ARCHITECTURE.md: "only `plugin-host/src/runtime` imports `wasmedge_sdk`".
    #[test]
    fn invariant_only_the_runtime_touches_wasmedge() {
        let found = uses("plugin-host/src", Some("plugin-host/src/runtime"), "wasmedge_sdk");
        assert!(found.is_empty(), "wasmedge_sdk used outside plugin-host/src/runtime:\n{}", found.join("\n"));
    }

    /// ARCHITECTURE.md: "the signature format exists only in `plugin-signature`": no other
    /// crate signs, verifies or parses keys itself, so the host and xtask cannot disagree about
    /// what a valid signature is.
    #[test]
    fn invariant_signatures_are_made_and_checked_only_in_the_signature_crate() {
        let mut found = Vec::new();
        for dir in ["plugin-host/src", "host/src", "host/tests", "xtask/src", "plugin-sdk/src", "fuzz"] {
            for pattern in ["p256::", "ecdsa::", "use p256", "use ecdsa"] {
                found.extend(uses(dir, None, pattern));
            }
        }
        assert!(found.is_empty(), "cryptography outside plugin-signature:\n{}", found.join("\n"));
        for crate_dir in ["plugin-host/src", "xtask/src"] {
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
        // The server owns the API, not the other way round: the two never import each other.
        found.extend(uses("host/src/api", None, "crate::server"));
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

    /// The names of the crates a manifest's `[dependencies]` (and `[target.*.dependencies]`) list:
    /// what the package's users compile too, unlike its dev- and build-dependencies.
    fn normal_dependencies(manifest: &str) -> Vec<(String, String)> {
        let mut found = Vec::new();
        let mut in_dependencies = false;
        for line in manifest.lines().map(str::trim) {
            if let Some(header) = line.strip_prefix('[') {
                let header = header.trim_end_matches(']');
                let table = header.rsplit('.').next().unwrap_or_default();
                in_dependencies = header == "dependencies" || header.starts_with("target.") && table == "dependencies";
                // `[dependencies.name]`
                if let Some(name) = header.strip_prefix("dependencies.") {
                    found.push((name.to_owned(), line.to_owned()));
                }
                continue;
            }
            if in_dependencies && !line.is_empty() && !line.starts_with('#') {
                let name = line.split(['=', '.']).next().unwrap_or_default().trim();
                found.push((name.to_owned(), line.to_owned()));
            }
        }
        found
    }

    /// ARCHITECTURE.md: "the library depends on no HTTP, command-line or metrics crate": an
    /// embedder compiles none of the server's.
    #[test]
    fn invariant_the_library_does_not_depend_on_the_servers_crates() {
        let manifest = fs::read_to_string(crate::project_root().join("plugin-host/Cargo.toml")).unwrap();
        let dependencies = normal_dependencies(&manifest);
        assert!(dependencies.iter().any(|(name, _)| name == "wasmedge-sdk"), "found no dependencies: {dependencies:?}");
        let server_only =
            ["axum", "hyper", "hyper-util", "tower", "tower-http", "clap", "prometheus-client", "tracing-subscriber"];
        let found: Vec<_> = dependencies.iter().filter(|(name, _)| server_only.contains(&name.as_str())).collect();
        assert!(found.is_empty(), "plugin-host/Cargo.toml depends on the server's crates: {found:?}");
    }

    /// ARCHITECTURE.md: "the server reaches the library only through its public root": no path
    /// into the layers the `internals` feature opens, and that feature off in its dependencies
    /// (its tests may turn it on).
    #[test]
    fn invariant_the_server_uses_only_the_librarys_public_api() {
        let mut found = Vec::new();
        for (file, text) in sources_under("host/src") {
            for (number, line) in code_lines(&text) {
                // `plugin_host::runner::..` and `use plugin_host::{runner::.., ..}` alike.
                for rest in line.split("plugin_host::").skip(1) {
                    let items = match rest.strip_prefix('{') {
                        Some(group) => group.split(',').map(str::trim).collect(),
                        None => vec![rest],
                    };
                    for item in items {
                        if ["runner", "runtime", "store"].iter().any(|layer| {
                            item.strip_prefix(layer).is_some_and(|after| after.starts_with("::") || after.is_empty())
                        }) {
                            found.push(format!("{}:{number}: {}", file.display(), line.trim()));
                        }
                    }
                }
            }
        }
        let manifest = fs::read_to_string(crate::project_root().join("host/Cargo.toml")).unwrap();
        let library: Vec<_> =
            normal_dependencies(&manifest).into_iter().filter(|(name, _)| name == "plugin-host").collect();
        assert!(!library.is_empty(), "host/Cargo.toml does not depend on plugin-host");
        for (_, line) in library.iter().filter(|(_, line)| line.contains("internals")) {
            found.push(format!("host/Cargo.toml: {line}"));
        }
        assert!(found.is_empty(), "the server reaches below the library's public API:\n{}", found.join("\n"));
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

    /// ARCHITECTURE.md: "the rules exist only in `plugin-sdk`; xtask and the library both call
    /// `check`". Rules need a WebAssembly parser: outside the ABI crate, only the runtime's
    /// reuse rewrite (which decides nothing) may use one, and both other crates must call the
    /// shared checker.
    #[test]
    fn invariant_abi_rules_live_only_in_the_abi_crate() {
        let mut parsers = uses("plugin-host/src", Some("plugin-host/src/runtime/reuse.rs"), "wasmparser");
        parsers.extend(uses("xtask/src", None, "wasmparser"));
        assert!(parsers.is_empty(), "WebAssembly parsed outside plugin-sdk:\n{}", parsers.join("\n"));
        for crate_dir in ["plugin-host/src", "xtask/src"] {
            assert!(
                !uses(crate_dir, None, "plugin_sdk::check").is_empty(),
                "{crate_dir} does not call the shared checker"
            );
        }
    }

    /// ARCHITECTURE.md: "ABI facts live only in `plugin-sdk`": the library and the server take
    /// the entry names, the v2 export prefixes, the memory's name, the page size and the error
    /// codes from `plugin_sdk` (`names`, `ErrorCode`, `PluginErrorCode`), never restate them.
    /// Test modules (from a file's `#[cfg(test)]` on) and WAT text are exempt: they write
    /// plugins, which must spell the names out.
    #[test]
    fn invariant_abi_facts_are_not_restated_outside_the_abi_crate() {
        let found = restated_abi_facts(&["plugin-host/src", "host/src"]);
        assert!(
            found.is_empty(),
            "ABI facts restated outside plugin-sdk (use plugin_sdk::names / ErrorCode):\n{}",
            found.join("\n")
        );
    }

    /// Lines under `dirs` that restate an ABI name, prefix, page size or error code.
    fn restated_abi_facts(dirs: &[&str]) -> Vec<String> {
        // Exact literals and the starts of literals that only an ABI fact would be.
        const LITERALS: [&str; 6] = ["\"init\"", "\"process\"", "\"cleanup\"", "\"memory\"", "\"fn_", "(\"stream_"];
        const NUMBERS: [&str; 3] = ["65536", "64 * 1024", "1 << 16"];
        const CODES: [&str; 9] =
            ["=> -1", "=> -2", "=> -3", "=> -4", "-1 =>", "-2 =>", "-3 =>", "-4 =>", "PLUGIN_ERR_"];
        let mut found = Vec::new();
        for dir in dirs {
            for (file, text) in sources_under(dir) {
                let code = text.split("#[cfg(test)]").next().unwrap_or_default();
                for (number, line) in code_lines(code) {
                    let wat = line.trim_start().starts_with('(');
                    // A page size only where the line speaks of pages: other limits may be 64 KiB.
                    let numbers = if line.to_lowercase().contains("page") { &NUMBERS[..] } else { &[] };
                    let hit = LITERALS.iter().chain(numbers).chain(&CODES).find(|fact| line.contains(**fact));
                    if let Some(fact) = hit.filter(|_| !wat) {
                        found.push(format!("{}:{number}: {fact}: {}", file.display(), line.trim()));
                    }
                }
            }
        }
        found
    }

    /// ARCHITECTURE.md: "a name reaches the filesystem only as a validated `PluginName`": no
    /// function of the store takes a name as a plain string, except the validation itself.
    #[test]
    fn invariant_names_reach_the_store_only_validated() {
        let found: Vec<_> = uses("plugin-host/src/store", Some("plugin-host/src/store/name.rs"), "fn ")
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
