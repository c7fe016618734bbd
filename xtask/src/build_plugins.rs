//! `cargo xtask build-plugins`: compiles every plugin under `plugins/` to wasm32 and checks the
//! result against the plugin ABI.
//!
//! # Layout
//!
//! - `plugins/<name>/<name>.c` or `plugins/<name>/<name>.cpp` is an example plugin. It is built
//!   to `target/plugins/<name>.wasm`, the folder the host serves, and must be ABI-compliant.
//!   Names are lowercase ASCII letters, digits, `-` and `_`, which are safe in a URL and a path.
//! - `plugins/invalid/<rule>.c`, `.cpp` or `.wat` is a negative fixture: a plugin that breaks
//!   exactly one ABI rule. It is built to `target/plugins/invalid/<rule>.wasm`, a subfolder, so
//!   it is never served, and it must produce exactly the violation its `expect-violation`
//!   directive names. `.wat` is for rules C cannot break, such as having a start function; it is
//!   assembled with the `wat` crate instead of clang.
//! - `plugins/faults/<name>.c`, `.cpp` or `.wat` is a fault plugin: a hostile plugin (an
//!   infinite loop, a stack overflow, a trap, a module that does not validate...) for the host's
//!   tests, which load it with the host's ABI check switched off to prove the host survives it.
//!   It is built to `target/plugins/faults/<name>.wasm`, a subfolder that is never served. Some
//!   faults break an ABI rule and some are compliant but misbehave at run time, so each states
//!   which with a directive (`expect-violation` or `expect-abi: compliant`), and the build fails
//!   unless the ABI check agrees: the suite cannot drift from what the host's tests assume.
//!
//! - `plugins/compat/<name>.c` or `.cpp` is a compatibility fixture: a plugin written to the
//!   seed's original contract **without** `wasm_plugin.h`, in one of the common ways of building
//!   such a plugin. It is compiled without the SDK's include folder, so it cannot include the
//!   header, and at `-O0`, `-O2` and `-Oz`, each into `target/plugins/compat/<name>[-<variant>]-<level>.wasm`
//!   (`-o0`, `-o2`, `-oz`). Each must pass the ABI check as v1 with exactly the
//!   `missing-abi-version` warning (so none may declare a version); the host's tests serve them.
//!
//! `invalid`, `faults` and `compat` are therefore not available as example names.
//!
//! # Directives
//!
//! The comment lines at the very top of a source file (up to the first line that is neither a
//! comment nor blank) may carry directives, one per line:
//!
//! ```text
//! // plugin-flags: -O1 -fno-inline
//! // expect-violation: float-instruction
//! ```
//!
//! - `plugin-flags:` extra clang arguments, split on whitespace (there is no quoting). They come
//!   after the default arguments, so they override them (`-O1` beats the default `-O2`). The
//!   directive may repeat; its arguments accumulate. `.wat` files cannot have it.
//! - `expect-violation:` the [`plugin_sdk::AbiViolation::code`] the fixture or fault must
//!   produce, and the only one it may produce (any number of times). Every fixture has exactly
//!   one, because a fixture without an assertion would test nothing.
//! - `expect-abi: compliant` (the only value): the fault plugin must pass the ABI check; it is
//!   hostile only at run time. Only faults may have it: an example is compliant by definition and
//!   a fixture must break a rule.
//! - `plugin-variant: <variant> [flags]` (compat plugins only; may repeat): build the plugin once
//!   more per variant, with these extra clang arguments, named `<name>-<variant>-<level>`. The
//!   variant name follows the rule for plugin names.
//!
//! Every fault has exactly one of the two expectations, since the host's tests rely on knowing
//! whether the host's own ABI check would have refused the plugin; examples have neither.
//!
//! `.wat` files write the comment as `;;` instead of `//`. A misspelt directive (any other
//! `plugin-…:` or `expect-…:`) is an error rather than silently ignored.
//!
//! # Compilation
//!
//! The `cc` crate assembles the clang command line, as it would in a build script: target
//! `wasm32-wasip1`, `-O2`, warnings as errors, and whatever `CFLAGS`/`CXXFLAGS` (or their
//! `_wasm32_wasip1` variants) say. On top of that come `-nostdlib -Wl,--no-entry` (a plugin is
//! a library with no libc and no `main`), `-I plugin-sdk/include`, `-fno-exceptions -fno-rtti`
//! for C++, and the file's `plugin-flags`. One clang call compiles and links each plugin.
//!
//! Each output is written under a temporary name in its final folder, checked, and only then
//! renamed into place, so a server reading `target/plugins/` never sees half a module or one
//! that failed its check; a plugin that fails also loses its previous output. An output newer
//! than its source, every header in `plugin-sdk/include` and the xtask binary itself (which holds
//! the compile flags) is up to date and not rebuilt, unless `--force` is given. The ABI check runs
//! on every output, rebuilt or not, so the verdict never depends on what happened to be rebuilt.

use std::{
    collections::BTreeSet,
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicU64, Ordering},
};

use anyhow::{Context, bail, ensure};
use plugin_sdk::AbiReport;
use xshell::Shell;

use crate::{PLUGIN_OUT_DIR, setup, step};

/// The clang target: `wasm32-wasip1` is today's name for `wasm32-wasi`, the target the project's
/// design names. With `-nostdlib` and no imports allowed, nothing WASI-specific is used; the
/// triple mainly defines `__wasi__` for code that wants to know.
const TARGET: &str = "wasm32-wasip1";

/// The folder under `plugins/` (and under the output folder) that holds negative fixtures.
const FIXTURE_DIR: &str = "invalid";

/// The folder under `plugins/` (and under the output folder) that holds fault plugins.
const FAULT_DIR: &str = "faults";

/// The folder under `plugins/` (and under the output folder) that holds compatibility fixtures.
const COMPAT_DIR: &str = "compat";

/// The optimisation levels every compatibility fixture is built at, with their name suffixes:
/// plugin authors ship debug builds, speed builds and size builds, and each must run.
const COMPAT_LEVELS: [(&str, &str); 3] = [("o0", "-O0"), ("o2", "-O2"), ("oz", "-Oz")];

#[derive(Debug, Default, clap::Args)]
pub struct BuildPlugins {
    /// Rebuild every plugin, even those whose output is newer than their sources.
    #[arg(long)]
    pub force: bool,
}

impl BuildPlugins {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let clang = setup::wasm_clang(sh)?;
        let layout = Layout::in_project(&sh.current_dir());
        // cc writes its compiler-detection scratch files here; nothing in it is kept.
        let scratch = sh.create_temp_dir()?;
        let compiler = Compiler::new(&clang, &layout.include_dir, scratch.path())?;
        let plugins = discover(&layout.plugins_dir)?;
        step(format!("building {} plugins into {PLUGIN_OUT_DIR}", plugins.len()));

        let shown_output = |plugin: &Plugin| format!("{PLUGIN_OUT_DIR}/{}.wasm", plugin.name);
        let width = plugins.iter().map(|p| shown_output(p).len()).max().unwrap_or(0);
        let mut failures = String::new();
        let mut failed = 0;
        for plugin in &plugins {
            match build(&compiler, &layout, plugin, self.force) {
                Ok(built) => {
                    let action = if built.rebuilt { "built" } else { "up to date" };
                    println!("{action:>10}  {:<width$}  {}", shown_output(plugin), built.verdict);
                }
                Err(err) => {
                    failed += 1;
                    println!("{:>10}  {:<width$}  (see below)", "FAILED", shown_output(plugin));
                    let source = plugin.source.strip_prefix(sh.current_dir()).unwrap_or(&plugin.source);
                    write!(failures, "\n\n{}: {err:#}", source.display())?;
                }
            }
        }
        ensure!(failed == 0, "{failed} of {} plugins failed to build or check:{failures}", plugins.len());
        Ok(())
    }
}

/// Where plugin sources, the SDK headers and the outputs live. The project uses
/// [`Layout::in_project`]; tests point the output (and sometimes the sources) elsewhere.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub plugins_dir: PathBuf,
    pub include_dir: PathBuf,
    pub out_dir: PathBuf,
}

impl Layout {
    pub fn in_project(root: &Path) -> Self {
        Self {
            plugins_dir: root.join("plugins"),
            include_dir: root.join("plugin-sdk/include"),
            out_dir: root.join(PLUGIN_OUT_DIR),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Language {
    C,
    Cpp,
    Wat,
}

impl Language {
    fn from_extension(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()? {
            "c" => Some(Self::C),
            "cpp" => Some(Self::Cpp),
            "wat" => Some(Self::Wat),
            _ => None,
        }
    }

    /// How a line comment starts in this language, which is where directives live.
    fn comment_marker(self) -> &'static str {
        match self {
            Self::C | Self::Cpp => "//",
            Self::Wat => ";;",
        }
    }
}

/// What a plugin is for, which decides where it goes and what its ABI check must say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `plugins/<name>/<name>.{c,cpp}`: served, and must be ABI-compliant.
    Example,
    /// `plugins/invalid/<rule>.{c,cpp,wat}`: must break exactly the rule it names.
    Fixture,
    /// `plugins/faults/<name>.{c,cpp,wat}`: hostile at run time; compliant or not, as it states.
    Fault,
    /// `plugins/compat/<name>.{c,cpp}`: the seed's contract without the header; compliant as
    /// v1 with only the `missing-abi-version` warning.
    Compat,
}

/// One source file to build.
#[derive(Debug, Clone)]
pub(crate) struct Plugin {
    /// `hello` for an example, `invalid/float` for a fixture, `faults/traps` for a fault,
    /// `compat/export-name-wasm32-o2` for a compatibility fixture: the output's path below the
    /// output folder, without `.wasm`.
    pub name: String,
    pub source: PathBuf,
    pub language: Language,
    pub kind: Kind,
    /// Whether this is a negative fixture under `plugins/invalid/`, that is `kind ==
    /// Kind::Fixture`. Redundant, but check_abi's tests select the fixtures by it; [`Plugin::new`]
    /// keeps the two in step.
    #[cfg_attr(not(test), expect(dead_code, reason = "only check_abi's tests read it"))]
    pub fixture: bool,
    /// Clang arguments of this build of the source, after its `plugin-flags` (a compat
    /// fixture's variant and optimisation level); empty for everything else.
    pub build_flags: Vec<String>,
}

impl Plugin {
    fn new(name: String, source: PathBuf, language: Language, kind: Kind) -> Self {
        Self { name, source, language, kind, fixture: kind == Kind::Fixture, build_flags: Vec::new() }
    }

    /// Every build of a compatibility fixture: each variant it names (or the source as it is)
    /// at each of [`COMPAT_LEVELS`].
    fn compat_builds(stem: &str, source: &Path, language: Language) -> anyhow::Result<Vec<Self>> {
        let text = fs::read_to_string(source).with_context(|| format!("cannot read {}", source.display()))?;
        let directives = Directives::parse(&text, language).with_context(|| source.display().to_string())?;
        let variants = match directives.variants.as_slice() {
            [] => vec![Variant { name: String::new(), flags: Vec::new() }],
            named => named.to_vec(),
        };
        let mut builds = Vec::new();
        for variant in variants {
            for (level, flag) in COMPAT_LEVELS {
                let name = match variant.name.as_str() {
                    "" => format!("{COMPAT_DIR}/{stem}-{level}"),
                    variant => format!("{COMPAT_DIR}/{stem}-{variant}-{level}"),
                };
                let mut plugin = Self::new(name, source.to_path_buf(), language, Kind::Compat);
                plugin.build_flags = variant.flags.iter().cloned().chain([flag.to_owned()]).collect();
                builds.push(plugin);
            }
        }
        Ok(builds)
    }
}

/// Finds every example, fixture and fault under `plugins_dir`, sorted by name so output is stable.
pub(crate) fn discover(plugins_dir: &Path) -> anyhow::Result<Vec<Plugin>> {
    let mut plugins = Vec::new();
    for dir in sorted_entries(plugins_dir)? {
        if !dir.is_dir() {
            // Files directly in `plugins/` (a README, say) are not plugins.
            continue;
        }
        let dir_name = file_name(&dir)?;
        // Fixtures and faults are loose files in their folder: they are many and small, and a
        // folder each would only add noise.
        let loose_kind = match dir_name {
            FIXTURE_DIR => Some(Kind::Fixture),
            FAULT_DIR => Some(Kind::Fault),
            COMPAT_DIR => Some(Kind::Compat),
            _ => None,
        };
        if let Some(kind) = loose_kind {
            for source in sorted_entries(&dir)? {
                // Anything that is not a plugin source (a README, a shared header) is left alone.
                let Some(language) = Language::from_extension(&source) else {
                    continue;
                };
                let stem = source.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
                check_name(stem, &source)?;
                if kind == Kind::Compat {
                    ensure!(language != Language::Wat, "{}: a compat plugin is C or C++", source.display());
                    plugins.extend(Plugin::compat_builds(stem, &source, language)?);
                } else {
                    plugins.push(Plugin::new(format!("{dir_name}/{stem}"), source, language, kind));
                }
            }
            continue;
        }
        check_name(dir_name, &dir)?;
        let candidates: Vec<(PathBuf, Language)> = [("c", Language::C), ("cpp", Language::Cpp)]
            .into_iter()
            .map(|(ext, language)| (dir.join(format!("{dir_name}.{ext}")), language))
            .filter(|(path, _)| path.is_file())
            .collect();
        match candidates.as_slice() {
            [(source, language)] => {
                plugins.push(Plugin::new(dir_name.to_owned(), source.clone(), *language, Kind::Example));
            }
            [] => bail!("{} holds no plugin: expected {dir_name}.c or {dir_name}.cpp in it", dir.display()),
            _ => bail!("{} holds both {dir_name}.c and {dir_name}.cpp; keep one", dir.display()),
        }
    }
    Ok(plugins)
}

fn sorted_entries(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut entries = fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("cannot list {}", dir.display()))?;
    entries.sort();
    Ok(entries)
}

fn file_name(path: &Path) -> anyhow::Result<&str> {
    path.file_name().and_then(|n| n.to_str()).with_context(|| format!("{} has no UTF-8 file name", path.display()))
}

/// Plugin names become file names and the name a client asks the host for, so they follow the
/// host's rule for names (`host/src/store/name.rs`: 1 to 64 letters, digits, `_` and `-`,
/// starting with a letter or digit), narrowed to lowercase so names never differ only in case.
fn check_name(name: &str, path: &Path) -> anyhow::Result<()> {
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let valid = name.len() <= 64
        && name.bytes().next().is_some_and(allowed)
        && name.bytes().all(|b| allowed(b) || b == b'-' || b == b'_');
    ensure!(
        valid,
        "{}: a plugin name is 1 to 64 of a-z, 0-9, '-' and '_', starting with a letter or \
         digit, not {name:?}",
        path.display()
    );
    Ok(())
}

/// The directives at the top of a source file (see the module documentation).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Directives {
    pub flags: Vec<String>,
    pub expect: Option<Expectation>,
    pub variants: Vec<Variant>,
}

/// One `plugin-variant:` line: a named build with extra clang arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Variant {
    pub name: String,
    pub flags: Vec<String>,
}

/// What a fixture or fault states the ABI check must find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expectation {
    /// `expect-abi: compliant`: no violation at all.
    Compliant,
    /// `expect-violation: <code>`: this violation and no other.
    Violation(String),
}

impl std::fmt::Display for Expectation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Compliant => f.write_str("compliant"),
            Self::Violation(code) => f.write_str(code),
        }
    }
}

impl Directives {
    pub fn parse(source: &str, language: Language) -> anyhow::Result<Self> {
        let marker = language.comment_marker();
        let mut directives = Self::default();
        for (index, line) in source.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let Some(comment) = line.strip_prefix(marker) else {
                break;
            };
            let comment = comment.trim();
            let line_no = index + 1;
            if let Some(flags) = comment.strip_prefix("plugin-flags:") {
                ensure!(language != Language::Wat, "line {line_no}: plugin-flags has no meaning for a .wat file");
                directives.flags.extend(flags.split_whitespace().map(str::to_owned));
            } else if let Some(code) = comment.strip_prefix("expect-violation:") {
                let code = code.trim();
                ensure!(!code.is_empty(), "line {line_no}: expect-violation needs a violation code");
                directives.expect_once(Expectation::Violation(code.to_owned()), line_no)?;
            } else if let Some(variant) = comment.strip_prefix("plugin-variant:") {
                ensure!(language != Language::Wat, "line {line_no}: plugin-variant has no meaning for a .wat file");
                let mut words = variant.split_whitespace().map(str::to_owned);
                let name = words.next().with_context(|| format!("line {line_no}: plugin-variant needs a name"))?;
                check_name(&name, Path::new(&format!("line {line_no}: plugin-variant")))?;
                ensure!(
                    directives.variants.iter().all(|v| v.name != name),
                    "line {line_no}: a second plugin-variant named {name:?}"
                );
                directives.variants.push(Variant { name, flags: words.collect() });
            } else if let Some(verdict) = comment.strip_prefix("expect-abi:") {
                // Only one verdict exists: a plugin that breaks a rule names the rule instead,
                // which asserts more than a bare "violating" would.
                ensure!(
                    verdict.trim() == "compliant",
                    "line {line_no}: expect-abi takes only `compliant`, not {:?}; a plugin that breaks \
                     a rule names it with `expect-violation: <code>`",
                    verdict.trim()
                );
                directives.expect_once(Expectation::Compliant, line_no)?;
            } else if let Some((word, _)) = comment.split_once(':') {
                let looks_like_directive =
                    (word.starts_with("plugin-") || word.starts_with("expect-")) && !word.contains(char::is_whitespace);
                ensure!(
                    !looks_like_directive,
                    "line {line_no}: unknown directive `{word}:` (known: plugin-flags, plugin-variant, \
                     expect-violation, expect-abi)"
                );
            }
        }
        Ok(directives)
    }

    /// The violation the plugin must produce, if it states one; `None` means it must comply.
    fn expected_violation(&self) -> Option<&str> {
        match &self.expect {
            Some(Expectation::Violation(code)) => Some(code),
            Some(Expectation::Compliant) | None => None,
        }
    }

    fn expect_once(&mut self, expectation: Expectation, line_no: usize) -> anyhow::Result<()> {
        ensure!(
            self.expect.is_none(),
            "line {line_no}: a second expectation; a plugin states exactly one, either one \
             `expect-violation` (it breaks exactly one rule) or `expect-abi: compliant`"
        );
        self.expect = Some(expectation);
        Ok(())
    }
}

/// A clang command line per language, assembled once by `cc` and reused for every plugin.
#[derive(Debug)]
pub(crate) struct Compiler {
    c: cc::Tool,
    cpp: cc::Tool,
    /// `plugin-sdk/include`, given to every plugin but the compatibility fixtures, which must
    /// build without it.
    include_dir: PathBuf,
}

impl Compiler {
    /// `scratch` is where `cc` may write while it inspects the compiler; it must outlive this call only.
    pub fn new(clang: &Path, include_dir: &Path, scratch: &Path) -> anyhow::Result<Self> {
        let tool = |cpp: bool| -> anyhow::Result<cc::Tool> {
            let mut build = cc::Build::new();
            // Outside a build script cargo provides no TARGET, HOST, OPT_LEVEL, DEBUG or OUT_DIR,
            // so every one of them is set here, and cargo metadata (meant for a build script's
            // stdout) is switched off.
            build
                .compiler(clang)
                .cpp(cpp)
                .target(TARGET)
                .host(&host_triple())
                .opt_level(2)
                .debug(false)
                .out_dir(scratch)
                .cargo_metadata(false)
                .warnings_into_errors(true)
                // A plugin is a library without libc or `main`: the host calls its exports.
                .flag("-nostdlib")
                .flag("-Wl,--no-entry");
            if cpp {
                // Both need runtime support (unwinding, type_info) that a plugin cannot link.
                build.flag("-fno-exceptions").flag("-fno-rtti");
            }
            build.try_get_compiler().with_context(|| format!("cannot set up {} for {TARGET}", clang.display()))
        };
        Ok(Self { c: tool(false)?, cpp: tool(true)?, include_dir: include_dir.to_path_buf() })
    }

    fn command(&self, plugin: &Plugin) -> Command {
        let mut command = if plugin.language == Language::Cpp { self.cpp.to_command() } else { self.c.to_command() };
        if plugin.kind != Kind::Compat {
            command.arg("-I").arg(&self.include_dir);
        }
        command
    }
}

/// The triple of the machine running xtask. `cc` compares it with the target to know this is a
/// cross-compile (so it reads `TARGET_CFLAGS`, not `HOST_CFLAGS`); cargo only provides it to
/// build scripts, and only the architecture and OS matter here.
fn host_triple() -> String {
    let arch = std::env::consts::ARCH;
    match std::env::consts::OS {
        "linux" => format!("{arch}-unknown-linux-gnu"),
        "macos" => format!("{arch}-apple-darwin"),
        "windows" => format!("{arch}-pc-windows-msvc"),
        os => format!("{arch}-unknown-{os}"),
    }
}

/// A plugin's output after [`build`]: where it is, whether this run wrote it, what the ABI check
/// found, and a one-line verdict for the progress output.
#[derive(Debug)]
pub(crate) struct Built {
    #[cfg_attr(not(test), expect(dead_code, reason = "tests inspect it; the command prints the verdict"))]
    pub output: PathBuf,
    pub rebuilt: bool,
    #[cfg_attr(not(test), expect(dead_code, reason = "tests inspect it; the command prints the verdict"))]
    pub report: AbiReport,
    pub verdict: String,
}

/// Builds one plugin into `layout.out_dir` (unless it is up to date) and checks the output
/// against the ABI and the plugin's expectation. An `Err` means the plugin failed the build.
pub(crate) fn build(compiler: &Compiler, layout: &Layout, plugin: &Plugin, force: bool) -> anyhow::Result<Built> {
    let text =
        fs::read_to_string(&plugin.source).with_context(|| format!("cannot read {}", plugin.source.display()))?;
    let directives = Directives::parse(&text, plugin.language)?;
    ensure!(
        directives.variants.is_empty() || plugin.kind == Kind::Compat,
        "only compatibility fixtures (in plugins/{COMPAT_DIR}/) may have a `plugin-variant` comment"
    );
    match (plugin.kind, &directives.expect) {
        (Kind::Example | Kind::Compat, None)
        | (Kind::Fixture, Some(Expectation::Violation(_)))
        | (Kind::Fault, Some(_)) => {}
        (Kind::Compat, Some(_)) => bail!(
            "a compatibility fixture (in plugins/{COMPAT_DIR}/) has no expectation comment: it must \
             pass the ABI check as v1, with only the warning that it declares no version"
        ),
        (Kind::Fixture, None) => bail!(
            "this negative fixture has no `expect-violation: <code>` comment at its top; \
             a fixture without an assertion tests nothing"
        ),
        (Kind::Fault, None) => bail!(
            "this fault plugin has no `expect-violation: <code>` or `expect-abi: compliant` comment at \
             its top; the host's tests rely on knowing whether the ABI check would refuse it"
        ),
        (Kind::Example, Some(Expectation::Violation(_))) => bail!(
            "only negative fixtures (in plugins/{FIXTURE_DIR}/) and fault plugins (in plugins/{FAULT_DIR}/) \
             may have an `expect-violation` comment"
        ),
        (Kind::Example | Kind::Fixture, Some(Expectation::Compliant)) => bail!(
            "only fault plugins (in plugins/{FAULT_DIR}/) may have an `expect-abi` comment: an example is \
             compliant anyway, and a negative fixture must name the rule it breaks"
        ),
    }

    let output = layout.out_dir.join(format!("{}.wasm", plugin.name));
    let rebuilt = force || !is_up_to_date(&output, &plugin.source, &layout.include_dir)?;
    let (wasm, partial) = if rebuilt {
        let partial = compile(compiler, plugin, &directives, &output)?;
        let wasm = fs::read(&partial.path).with_context(|| format!("cannot read {}", partial.path.display()))?;
        (wasm, Some(partial))
    } else {
        (fs::read(&output).with_context(|| format!("cannot read {}", output.display()))?, None)
    };
    let report = plugin_sdk::check(&wasm);
    match verify(plugin.kind, directives.expected_violation(), &report) {
        Ok(verdict) => {
            if let Some(partial) = partial {
                partial.persist(&output)?;
            }
            Ok(Built { output, rebuilt, report, verdict })
        }
        Err(err) => {
            // A plugin that fails its check never reaches the output folder, and an older build
            // of it leaves: the host serves that folder, and the next run must not call it up to
            // date. (A new build that failed is dropped with `partial`.)
            match fs::remove_file(&output) {
                Ok(()) => {}
                Err(io) if io.kind() == std::io::ErrorKind::NotFound => {}
                Err(io) => {
                    return Err(err.context(format!("also cannot remove {}: {io}", output.display())));
                }
            }
            Err(err)
        }
    }
}

/// Whether `output` is newer than everything that went into it.
fn is_up_to_date(output: &Path, source: &Path, include_dir: &Path) -> anyhow::Result<bool> {
    let Ok(built_at) = fs::metadata(output).and_then(|m| m.modified()) else {
        return Ok(false);
    };
    let mut inputs = vec![source.to_path_buf()];
    inputs.extend(sorted_entries(include_dir)?);
    // The compile flags live in this binary: a rebuilt xtask may compile differently.
    inputs.extend(std::env::current_exe().ok());
    for input in inputs {
        let modified = fs::metadata(&input)
            .and_then(|m| m.modified())
            .with_context(|| format!("cannot read the modification time of {}", input.display()))?;
        if modified > built_at {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Compiles (or assembles) `plugin` into a temporary file next to `output`, which the caller
/// renames into place once the result passed its check: one rename is atomic, so a server never
/// sees half a module.
fn compile(
    compiler: &Compiler,
    plugin: &Plugin,
    directives: &Directives,
    output: &Path,
) -> anyhow::Result<PartialFile> {
    let folder = output.parent().context("an output path always has a folder")?;
    fs::create_dir_all(folder).with_context(|| format!("cannot create {}", folder.display()))?;
    let partial = PartialFile::new(output);

    if plugin.language == Language::Wat {
        // `wat` only parses and encodes; it does not validate (no type checking of function
        // bodies), which faults/invalid-module.wat relies on to reach the host ill-typed.
        let wasm = wat::parse_file(&plugin.source).map_err(|err| anyhow::anyhow!("{err}"))?;
        fs::write(&partial.path, wasm).with_context(|| format!("cannot write {}", partial.path.display()))?;
    } else {
        let mut command = compiler.command(plugin);
        command.args(&directives.flags).args(&plugin.build_flags).arg("-o").arg(&partial.path).arg(&plugin.source);
        let result = command.output().with_context(|| format!("cannot run {command:?}"))?;
        if !result.status.success() {
            let diagnostics = String::from_utf8_lossy(&result.stderr);
            bail!("clang failed ({}):\n{}\ncommand: {command:?}", result.status, diagnostics.trim_end());
        }
    }
    Ok(partial)
}

/// A file being written next to its final name. It is removed if it is never persisted, so a
/// failed compile leaves no debris in a folder a server reads.
#[derive(Debug)]
struct PartialFile {
    path: PathBuf,
    persisted: bool,
}

impl PartialFile {
    fn new(output: &Path) -> Self {
        // Unique per process and per call, since tests build the same plugins concurrently. The
        // leading dot and the suffix keep servers that look for `*.wasm` from picking it up.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let unique = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = output.file_name().unwrap_or_default().to_string_lossy();
        let path = output.with_file_name(format!(".{name}.{}-{unique}.partial", std::process::id()));
        Self { path, persisted: false }
    }

    fn persist(mut self, output: &Path) -> anyhow::Result<()> {
        fs::rename(&self.path, output).with_context(|| format!("cannot move {} into place", output.display()))?;
        self.persisted = true;
        Ok(())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.persisted {
            // The file may never have been created; either way there is nothing left to do.
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Checks a report against what the plugin promises: exactly the expected violation for a
/// fixture or a fault that names one, compliance for everything else; and whether it declares
/// its ABI version: a compatibility fixture must not (it is built without the header, and the
/// check must say so with exactly the `missing-abi-version` warning), everything else must
/// (it includes the header), so no other warning is allowed. Returns the verdict line for the
/// progress output.
pub(crate) fn verify(kind: Kind, expect_violation: Option<&str>, report: &AbiReport) -> anyhow::Result<String> {
    let codes: BTreeSet<&str> = report.violations.iter().map(|v| v.kind.code()).collect();
    let warnings: Vec<&str> = report.warnings.iter().map(|w| w.kind.code()).collect();
    let expected_warnings: &[&str] = if kind == Kind::Compat { &["missing-abi-version"] } else { &[] };
    ensure!(
        warnings == expected_warnings,
        "expected the warnings {expected_warnings:?}, found {warnings:?}{}:\n{report}",
        if kind == Kind::Compat { " (a compatibility fixture must not include wasm_plugin.h)" } else { "" }
    );
    let version = match (report.declared_abi_version, report.abi_version) {
        (Some(declared), _) => format!("ABI v{declared}"),
        (None, Some(implied)) => format!("ABI v{implied}, implied: no version declared"),
        (None, None) => "no ABI version".to_owned(),
    };
    match expect_violation {
        None if codes.is_empty() => Ok(format!("ok ({version})")),
        None => bail!("the plugin breaks the ABI:\n{report}"),
        Some(expected) if codes.len() == 1 && codes.contains(expected) => {
            Ok(format!("rejected as expected: {expected}"))
        }
        Some(expected) if codes.is_empty() => {
            bail!("expected violation `{expected}`, but the plugin is ABI-compliant")
        }
        Some(expected) => {
            let found = codes.into_iter().collect::<Vec<_>>().join(", ");
            bail!("expected only violation `{expected}`, found: {found}\n{report}")
        }
    }
}

/// Exercises the real fixtures and examples with the real compiler, so a test failure means
/// `cargo xtask build-plugins` would fail the same way.
#[cfg(test)]
pub(crate) mod tests {
    use std::time::SystemTime;

    use super::*;

    /// A shell rooted at the project, like the one `main` builds.
    pub(crate) fn project_shell() -> Shell {
        let sh = Shell::new().expect("a shell");
        sh.change_dir(crate::project_root());
        sh
    }

    /// Everything needed to build plugins, with outputs going to a fresh temporary folder.
    pub(crate) struct Harness {
        pub compiler: Compiler,
        pub layout: Layout,
        pub out: tempfile::TempDir,
        _scratch: tempfile::TempDir,
    }

    impl Harness {
        pub fn new() -> Self {
            let sh = project_shell();
            let clang = setup::wasm_clang(&sh).expect("a clang for wasm32 (run `cargo xtask setup`)");
            let out = tempfile::tempdir().expect("a temporary folder");
            let scratch = tempfile::tempdir().expect("a temporary folder");
            let mut layout = Layout::in_project(&sh.current_dir());
            layout.out_dir = out.path().to_path_buf();
            let compiler = Compiler::new(&clang, &layout.include_dir, scratch.path()).expect("cc configures clang");
            Self { compiler, layout, out, _scratch: scratch }
        }

        pub fn plugins(&self) -> Vec<Plugin> {
            discover(&self.layout.plugins_dir).expect("plugins/ is well formed")
        }

        pub fn build(&self, plugin: &Plugin) -> anyhow::Result<Built> {
            build(&self.compiler, &self.layout, plugin, false)
        }
    }

    #[test]
    fn every_example_builds_and_is_compliant() {
        let harness = Harness::new();
        let examples: Vec<_> = harness.plugins().into_iter().filter(|p| p.kind == Kind::Example).collect();
        let names: Vec<_> = examples.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["abi", "checksum", "hello", "primes", "simple"]);
        for plugin in &examples {
            let built = harness.build(plugin).unwrap_or_else(|err| panic!("{}: {err:#}", plugin.name));
            assert!(built.report.is_compliant(), "{}:\n{}", plugin.name, built.report);
            assert_eq!(built.output, harness.out.path().join(format!("{}.wasm", plugin.name)));
        }
    }

    #[test]
    fn every_fixture_produces_exactly_its_expected_violation() {
        let harness = Harness::new();
        let mut expectations = String::new();
        for plugin in harness.plugins().into_iter().filter(|p| p.kind == Kind::Fixture) {
            let text = fs::read_to_string(&plugin.source).unwrap();
            let Some(Expectation::Violation(expected)) = Directives::parse(&text, plugin.language).unwrap().expect
            else {
                panic!("{}: a fixture always names a violation", plugin.name)
            };
            let built = harness.build(&plugin).unwrap_or_else(|err| panic!("{}: {err:#}", plugin.name));
            let codes: BTreeSet<_> = built.report.violations.iter().map(|v| v.kind.code()).collect();
            assert_eq!(codes, BTreeSet::from([expected.as_str()]), "{}:\n{}", plugin.name, built.report);
            // Fixtures land in a subfolder, never next to the served examples.
            assert_eq!(
                built.output,
                harness.out.path().join(FIXTURE_DIR).join(format!("{}.wasm", file_stem(&plugin.source)))
            );
            writeln!(expectations, "{} -> {expected}", plugin.name).unwrap();
        }
        // The list of fixtures is part of the contract with the host's tests: adding or
        // renaming one should show up in review.
        insta::assert_snapshot!(expectations);
    }

    #[test]
    fn every_fault_builds_and_meets_its_expectation() {
        let harness = Harness::new();
        let mut expectations = String::new();
        for plugin in harness.plugins().into_iter().filter(|p| p.kind == Kind::Fault) {
            let text = fs::read_to_string(&plugin.source).unwrap();
            let expected = Directives::parse(&text, plugin.language).unwrap().expect.unwrap();
            let built = harness.build(&plugin).unwrap_or_else(|err| panic!("{}: {err:#}", plugin.name));
            let codes: BTreeSet<_> = built.report.violations.iter().map(|v| v.kind.code()).collect();
            let wanted = match &expected {
                Expectation::Compliant => BTreeSet::new(),
                Expectation::Violation(code) => BTreeSet::from([code.as_str()]),
            };
            assert_eq!(codes, wanted, "{}:\n{}", plugin.name, built.report);
            // Faults land in their own subfolder, never where the host serves plugins from.
            assert_eq!(
                built.output,
                harness.out.path().join(FAULT_DIR).join(format!("{}.wasm", file_stem(&plugin.source)))
            );
            writeln!(expectations, "{} -> {expected}", plugin.name).unwrap();
        }
        // The host's tests load these by name and assume these verdicts: a change shows up here.
        insta::assert_snapshot!(expectations);
    }

    #[test]
    fn every_compat_fixture_builds_at_every_level_as_an_undeclared_v1_plugin() {
        let harness = Harness::new();
        let mut builds = String::new();
        for plugin in harness.plugins().into_iter().filter(|p| p.kind == Kind::Compat) {
            let built = harness.build(&plugin).unwrap_or_else(|err| panic!("{}: {err:#}", plugin.name));
            assert!(built.report.is_compliant(), "{}:\n{}", plugin.name, built.report);
            assert_eq!((built.report.declared_abi_version, built.report.abi_version), (None, Some(1)));
            assert_eq!(built.output, harness.out.path().join(format!("{}.wasm", plugin.name)));
            writeln!(builds, "{} <- {} {}", plugin.name, file_stem(&plugin.source), plugin.build_flags.join(" "))
                .unwrap();
        }
        // The host's tests serve every one of these: a new build style shows up here.
        insta::assert_snapshot!(builds);
    }

    #[test]
    fn a_compat_fixture_cannot_include_the_header() {
        let harness = Harness::new();
        let (_dir, plugin) = scratch_plugin("compat/with-header.c", COMPLIANT_C);
        assert_eq!(plugin.name, "compat/with-header-o0");
        let err = format!("{:#}", harness.build(&plugin).unwrap_err());
        assert!(err.contains("clang failed") && err.contains("wasm_plugin.h"), "{err}");
    }

    #[test]
    fn a_compat_fixture_that_declares_a_version_fails_the_build() {
        let harness = Harness::new();
        // A hand-written marker, so that the file builds without the header.
        let source = "__attribute__((export_name(\"init\"))) int init(void) { return 0; }\n\
            __attribute__((export_name(\"process\"))) int process(int x) { return x; }\n\
            __attribute__((export_name(\"cleanup\"))) int cleanup(void) { return 0; }\n\
            __asm__(\".section .custom_section.wasm_plugin_abi,\\\"\\\",@\\n.int32 1\\n.text\\n\");\n";
        let (_dir, plugin) = scratch_plugin("compat/marked.c", source);
        let err = format!("{:#}", harness.build(&plugin).unwrap_err());
        assert!(err.contains("expected the warnings [\"missing-abi-version\"], found []"), "{err}");
    }

    #[test]
    fn plugin_variant_is_only_for_compat_fixtures() {
        let harness = Harness::new();
        let source = format!("// plugin-variant: small -Oz\n{COMPLIANT_C}");
        let (_dir, plugin) = scratch_plugin("varied/varied.c", &source);
        let err = format!("{:#}", harness.build(&plugin).unwrap_err());
        assert!(err.contains("only compatibility fixtures"), "{err}");
    }

    fn file_stem(path: &Path) -> &str {
        path.file_stem().unwrap().to_str().unwrap()
    }

    /// A throwaway `plugins/` folder holding one source file at `path` (say `invalid/x.c` for
    /// a fixture or `x/x.c` for an example), and the plugin discovery makes of it (the first
    /// build, for a compat fixture, which has one per optimisation level).
    fn scratch_plugin(path: &str, source: &str) -> (tempfile::TempDir, Plugin) {
        let plugins = tempfile::tempdir().unwrap();
        let file = plugins.path().join(path);
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(&file, source).unwrap();
        let found = discover(plugins.path()).unwrap();
        let builds = if path.starts_with("compat/") { COMPAT_LEVELS.len() } else { 1 };
        assert_eq!(found.len(), builds);
        (plugins, found.into_iter().next().unwrap())
    }

    const COMPLIANT_C: &str = "#include <wasm_plugin.h>\n\
        PLUGIN_EXPORT(init) int init(void) { return PLUGIN_OK; }\n\
        PLUGIN_EXPORT(process) int process(int input) { return input; }\n\
        PLUGIN_EXPORT(cleanup) int cleanup(void) { return PLUGIN_OK; }\n";

    /// The real float fixture, with its `expect-violation` line replaced by `directive`.
    fn float_fixture_with(harness: &Harness, directive: &str) -> String {
        let fixture = harness.layout.plugins_dir.join(FIXTURE_DIR).join("float.c");
        fs::read_to_string(fixture).unwrap().replace("// expect-violation: float-instruction", directive)
    }

    #[test]
    fn a_fixture_without_an_expectation_fails_the_build() {
        let harness = Harness::new();
        let (_dir, plugin) = scratch_plugin("invalid/unasserted.c", COMPLIANT_C);
        let err = format!("{:#}", harness.build(&plugin).unwrap_err());
        assert!(err.contains("no `expect-violation"), "{err}");
    }

    #[test]
    fn a_fault_without_an_expectation_fails_the_build() {
        let harness = Harness::new();
        let (_dir, plugin) = scratch_plugin("faults/unasserted.c", COMPLIANT_C);
        assert_eq!(plugin.kind, Kind::Fault);
        let err = format!("{:#}", harness.build(&plugin).unwrap_err());
        assert!(err.contains("no `expect-violation: <code>` or `expect-abi: compliant`"), "{err}");
        assert_eq!(fs::read_dir(harness.out.path()).unwrap().count(), 0, "nothing was built");
    }

    #[test]
    fn a_fault_is_held_to_its_expectation_both_ways() {
        let harness = Harness::new();
        let source = float_fixture_with(&harness, "// expect-abi: compliant");
        let (_dir, plugin) = scratch_plugin("faults/not-compliant.c", &source);
        let err = format!("{:#}", harness.build(&plugin).unwrap_err());
        assert!(err.contains("the plugin breaks the ABI") && err.contains("error[float-instruction]"), "{err}");

        let source = format!("// expect-violation: recursion\n{COMPLIANT_C}");
        let (_dir, plugin) = scratch_plugin("faults/harmless.c", &source);
        let err = format!("{:#}", harness.build(&plugin).unwrap_err());
        assert!(err.contains("expected violation `recursion`, but the plugin is ABI-compliant"), "{err}");

        let source = format!("// expect-abi: compliant\n{COMPLIANT_C}");
        let (_dir, plugin) = scratch_plugin("faults/compliant.c", &source);
        let built = harness.build(&plugin).unwrap();
        assert!(built.report.is_compliant());
        assert_eq!(built.output, harness.out.path().join("faults/compliant.wasm"));
    }

    #[test]
    fn expect_abi_is_only_for_faults() {
        let harness = Harness::new();
        let source = format!("// expect-abi: compliant\n{COMPLIANT_C}");
        for path in ["compliant/compliant.c", "invalid/compliant.c"] {
            let (_dir, plugin) = scratch_plugin(path, &source);
            let err = format!("{:#}", harness.build(&plugin).unwrap_err());
            assert!(err.contains("only fault plugins (in plugins/faults/) may have an `expect-abi`"), "{path}: {err}");
        }
    }

    #[test]
    fn a_fixture_that_breaks_no_rule_fails_the_build() {
        let harness = Harness::new();
        let source = format!("// expect-violation: float-instruction\n{COMPLIANT_C}");
        let (_dir, plugin) = scratch_plugin("invalid/innocent.c", &source);
        let err = format!("{:#}", harness.build(&plugin).unwrap_err());
        assert!(err.contains("but the plugin is ABI-compliant"), "{err}");
    }

    #[test]
    fn a_fixture_that_breaks_another_rule_fails_the_build() {
        let harness = Harness::new();
        let source = float_fixture_with(&harness, "// expect-violation: memory-grow");
        let (_dir, plugin) = scratch_plugin("invalid/mislabelled.c", &source);
        let err = format!("{:#}", harness.build(&plugin).unwrap_err());
        assert!(err.contains("expected only violation `memory-grow`, found: float-instruction"), "{err}");
    }

    #[test]
    fn an_example_that_breaks_the_abi_fails_and_leaves_the_served_folder() {
        let harness = Harness::new();
        // As an example, the float fixture must fail: examples may break no rule at all.
        let source = float_fixture_with(&harness, "");
        let (_dir, plugin) = scratch_plugin("float/float.c", &source);
        // An older, good build of the plugin is being served.
        let served = harness.out.path().join("float.wasm");
        fs::write(&served, b"an older build").unwrap();
        fs::File::options().write(true).open(&served).unwrap().set_modified(SystemTime::UNIX_EPOCH).unwrap();

        let err = format!("{:#}", harness.build(&plugin).unwrap_err());
        assert!(err.contains("the plugin breaks the ABI"), "{err}");
        assert!(err.contains("error[float-instruction]"), "{err}");
        assert!(!served.exists(), "a failing plugin is not left in the served folder");
        let leftovers = fs::read_dir(harness.out.path()).unwrap().count();
        assert_eq!(leftovers, 0, "no partial file is left behind either");
    }

    #[test]
    fn plugin_flags_reach_clang() {
        let harness = Harness::new();
        // An unknown warning flag is harmless, but -Werror (from cc) makes an unknown `-W`
        // option fatal, which proves the flag was passed.
        let source =
            format!("// expect-violation: float-instruction\n// plugin-flags: -Wno-such-warning-exists\n{COMPLIANT_C}");
        let (_dir, plugin) = scratch_plugin("invalid/flagged.c", &source);
        let err = format!("{:#}", harness.build(&plugin).unwrap_err());
        assert!(err.contains("clang failed") && err.contains("no-such-warning-exists"), "{err}");
    }

    #[test]
    fn a_second_build_reuses_up_to_date_outputs() {
        let mut harness = Harness::new();
        let (_dir, plugin) = scratch_plugin("fresh/fresh.c", COMPLIANT_C);
        // A copy of the headers, whose modification time this test may change.
        let include = tempfile::tempdir().unwrap();
        for header in sorted_entries(&harness.layout.include_dir).unwrap() {
            fs::copy(&header, include.path().join(header.file_name().unwrap())).unwrap();
        }
        harness.layout.include_dir = include.path().to_path_buf();
        let header = include.path().join("wasm_plugin.h");
        // Moving an input's modification time into the future makes it newer than any output;
        // moving it back makes the output up to date again.
        let set_modified = |path: &Path, time: SystemTime| {
            let file = fs::File::options().write(true).open(path).unwrap();
            file.set_modified(time).unwrap();
        };
        let modified = |path: &Path| fs::metadata(path).unwrap().modified().unwrap();
        let future = SystemTime::now() + std::time::Duration::from_secs(3600);

        assert!(harness.build(&plugin).unwrap().rebuilt);
        let again = harness.build(&plugin).unwrap();
        assert!(!again.rebuilt, "the output is newer than every input");
        assert!(again.report.is_compliant(), "an up-to-date output is still checked");
        let forced = build(&harness.compiler, &harness.layout, &plugin, true).unwrap();
        assert!(forced.rebuilt, "--force rebuilds anyway");

        for input in [&plugin.source, &header] {
            let before = modified(input);
            set_modified(input, future);
            assert!(harness.build(&plugin).unwrap().rebuilt, "{} is newer", input.display());
            set_modified(input, before);
            assert!(!harness.build(&plugin).unwrap().rebuilt);
        }

        // Only the output is left: partial files were renamed or removed.
        let files: Vec<_> = fs::read_dir(harness.out.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(files, ["fresh.wasm"]);
    }

    #[test]
    fn directives_are_read_from_the_leading_comments_only() {
        let source = "// what this does\n\n// plugin-flags: -O1 -fno-inline\n// plugin-flags: -DX=1\n\
                      // expect-violation: recursion\n#include <wasm_plugin.h>\n// plugin-flags: -O3\n";
        let directives = Directives::parse(source, Language::C).unwrap();
        assert_eq!(
            directives,
            Directives {
                flags: vec!["-O1".into(), "-fno-inline".into(), "-DX=1".into()],
                expect: Some(Expectation::Violation("recursion".into())),
                variants: vec![],
            }
        );
        let wat = ";; expect-violation: start-function\n(module)\n";
        assert_eq!(
            Directives::parse(wat, Language::Wat).unwrap().expect,
            Some(Expectation::Violation("start-function".into()))
        );
        let wat = ";; expect-abi: compliant\n(module)\n";
        assert_eq!(Directives::parse(wat, Language::Wat).unwrap().expect, Some(Expectation::Compliant));
    }

    #[test]
    fn malformed_directives_are_errors() {
        for (source, message) in [
            ("// plugin-flag: -O1\n", "unknown directive `plugin-flag:`"),
            ("// expect-violation:\n", "needs a violation code"),
            ("// expect-violation: a\n// expect-violation: b\n", "a second expectation"),
            ("// expect-abi: compliant\n// expect-violation: b\n", "a second expectation"),
            ("// expect-violation: a\n// expect-abi: compliant\n", "a second expectation"),
            ("// expect-abi: violating\n", "expect-abi takes only `compliant`, not \"violating\""),
            ("// expect-abi:\n", "expect-abi takes only `compliant`"),
            ("// expect-abis: compliant\n", "unknown directive `expect-abis:`"),
        ] {
            let err = Directives::parse(source, Language::C).unwrap_err().to_string();
            assert!(err.contains(message), "{source:?}: {err}");
        }
        let err = Directives::parse(";; plugin-flags: -O1\n", Language::Wat).unwrap_err().to_string();
        assert!(err.contains("no meaning for a .wat file"), "{err}");
    }

    #[test]
    fn discovery_rejects_unusable_plugin_folders() {
        let plugins = tempfile::tempdir().unwrap();
        fs::create_dir(plugins.path().join("empty")).unwrap();
        let err = discover(plugins.path()).unwrap_err().to_string();
        assert!(err.contains("expected empty.c or empty.cpp"), "{err}");

        fs::write(plugins.path().join("empty/empty.c"), "").unwrap();
        fs::write(plugins.path().join("empty/empty.cpp"), "").unwrap();
        let err = discover(plugins.path()).unwrap_err().to_string();
        assert!(err.contains("both empty.c and empty.cpp"), "{err}");

        let plugins = tempfile::tempdir().unwrap();
        fs::create_dir(plugins.path().join("Bad Name")).unwrap();
        let err = discover(plugins.path()).unwrap_err().to_string();
        assert!(err.contains("a plugin name is 1 to 64 of"), "{err}");

        let plugins = tempfile::tempdir().unwrap();
        fs::create_dir_all(plugins.path().join("invalid")).unwrap();
        fs::write(plugins.path().join("invalid/-dash.c"), "").unwrap();
        let err = discover(plugins.path()).unwrap_err().to_string();
        assert!(err.contains("starting with a letter or digit"), "{err}");

        let plugins = tempfile::tempdir().unwrap();
        fs::create_dir_all(plugins.path().join("faults")).unwrap();
        fs::write(plugins.path().join("faults/Loud.c"), "").unwrap();
        let err = discover(plugins.path()).unwrap_err().to_string();
        assert!(err.contains("not \"Loud\""), "{err}");
    }
}
