//! Finding the plugins under `plugins/`: what each source file is (an example, a negative
//! fixture, a fault or a compatibility fixture), in which language, and where its output goes.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, bail, ensure};

use super::directives::{Directives, Variant};
use crate::{PLUGIN_FIXTURE_DIR, PLUGIN_OUT_DIR};

/// The folder under `plugins/` (and under the fixture output folder) that holds negative fixtures.
pub(super) const FIXTURE_DIR: &str = "invalid";

/// The folder under `plugins/` (and under the fixture output folder) that holds fault plugins.
pub(super) const FAULT_DIR: &str = "faults";

/// The folder under `plugins/` (and under the fixture output folder) that holds compatibility fixtures.
pub(super) const COMPAT_DIR: &str = "compat";

/// The optimisation levels every compatibility fixture is built at, with their name suffixes:
/// plugin authors ship debug builds, speed builds and size builds, and each must run.
const COMPAT_LEVELS: [(&str, &str); 3] = [("o0", "-O0"), ("o2", "-O2"), ("oz", "-Oz")];

/// Where plugin sources, the SDK headers and the outputs live. The project uses
/// [`Layout::in_project`]; tests point the output (and sometimes the sources) elsewhere.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) plugins_dir: PathBuf,
    pub(crate) include_dir: PathBuf,
    /// The Rust plugin SDK and its build flags.
    pub(crate) rust_sdk_dir: PathBuf,
    /// The Zig plugin SDK.
    pub(crate) zig_sdk_dir: PathBuf,
    /// The AssemblyScript marker transform.
    pub(crate) assemblyscript_sdk_dir: PathBuf,
    /// Where the examples go: the folder the host serves.
    pub(crate) out_dir: PathBuf,
    /// Where fixtures, faults and compatibility fixtures go, in their subfolders: never inside
    /// `out_dir`, which the host would read as version folders.
    pub(crate) fixture_dir: PathBuf,
}

impl Layout {
    pub(crate) fn in_project(root: &Path) -> Self {
        Self {
            plugins_dir: root.join("plugins"),
            include_dir: root.join("plugin-sdk/include"),
            rust_sdk_dir: root.join(super::rust::SDK_DIR),
            zig_sdk_dir: root.join(super::zig::SDK_DIR),
            assemblyscript_sdk_dir: root.join(super::assemblyscript::SDK_DIR),
            out_dir: root.join(PLUGIN_OUT_DIR),
            fixture_dir: root.join(PLUGIN_FIXTURE_DIR),
        }
    }

    /// The SDK folder whose files go into `language`'s plugins, for the up-to-date check.
    pub(super) fn sdk_dir(&self, language: Language) -> &Path {
        match language {
            Language::Rust => &self.rust_sdk_dir,
            Language::Zig => &self.zig_sdk_dir,
            Language::AssemblyScript => &self.assemblyscript_sdk_dir,
            Language::C | Language::Cpp | Language::Wat => &self.include_dir,
        }
    }

    /// Where `plugin` is built to: its name as a `.wasm` file below the served folder for an
    /// example, below the fixture folder for everything else.
    pub(super) fn output(&self, plugin: &Plugin) -> PathBuf {
        let dir = if plugin.kind == Kind::Example { &self.out_dir } else { &self.fixture_dir };
        dir.join(format!("{}.wasm", plugin.name))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Language {
    C,
    Cpp,
    Wat,
    /// `#![no_std]` Rust against `plugin-sdk/rust` (examples only).
    Rust,
    /// Zig against `plugin-sdk/zig` (examples only).
    Zig,
    /// AssemblyScript with the marker transform in `plugin-sdk/assemblyscript` (examples only).
    AssemblyScript,
}

impl Language {
    fn from_extension(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()? {
            "c" => Some(Self::C),
            "cpp" => Some(Self::Cpp),
            "wat" => Some(Self::Wat),
            "rs" => Some(Self::Rust),
            "zig" => Some(Self::Zig),
            "ts" => Some(Self::AssemblyScript),
            _ => None,
        }
    }

    /// How a line comment starts in this language, which is where directives live.
    pub(super) fn comment_marker(self) -> &'static str {
        match self {
            Self::C | Self::Cpp | Self::Rust | Self::Zig | Self::AssemblyScript => "//",
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
    /// served folder (examples) or the fixture folder (the rest), without `.wasm`.
    pub(crate) name: String,
    pub(crate) source: PathBuf,
    pub(super) language: Language,
    pub(crate) kind: Kind,
    /// Clang arguments of this build of the source, after its `plugin-flags` (a compat
    /// fixture's variant and optimisation level); empty for everything else.
    pub(super) build_flags: Vec<String>,
}

impl Plugin {
    fn new(name: String, source: PathBuf, language: Language, kind: Kind) -> Self {
        Self { name, source, language, kind, build_flags: Vec::new() }
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

/// The source an example folder `plugins/<name>/` may hold, `<name>.<extension>`, per language.
const EXAMPLE_LANGUAGES: [(&str, Language); 5] = [
    ("c", Language::C),
    ("cpp", Language::Cpp),
    ("rs", Language::Rust),
    ("zig", Language::Zig),
    ("ts", Language::AssemblyScript),
];

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
                // Fixtures, faults and compat builds pin what clang emits; other languages
                // have their examples.
                ensure!(
                    matches!(language, Language::C | Language::Cpp | Language::Wat),
                    "{}: plugins/{dir_name}/ holds C, C++ or WebAssembly text only",
                    source.display()
                );
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
        let candidates: Vec<(PathBuf, Language)> = EXAMPLE_LANGUAGES
            .into_iter()
            .map(|(ext, language)| (dir.join(format!("{dir_name}.{ext}")), language))
            .filter(|(path, _)| path.is_file())
            .collect();
        match candidates.as_slice() {
            [(source, language)] => {
                plugins.push(Plugin::new(dir_name.to_owned(), source.clone(), *language, Kind::Example));
            }
            [] => bail!(
                "{} holds no plugin: expected one of {} in it",
                dir.display(),
                EXAMPLE_LANGUAGES.map(|(ext, _)| format!("{dir_name}.{ext}")).join(", ")
            ),
            several => bail!(
                "{} holds {}; keep one",
                dir.display(),
                several.iter().map(|(path, _)| path.display().to_string()).collect::<Vec<_>>().join(" and ")
            ),
        }
    }
    Ok(plugins)
}

pub(super) fn sorted_entries(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
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
/// host's rule for names (`plugin-host/src/store/name.rs`: 1 to 64 letters, digits, `_` and `-`,
/// starting with a letter or digit), narrowed to lowercase so names never differ only in case.
pub(crate) fn check_name(name: &str, path: &Path) -> anyhow::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_rejects_unusable_plugin_folders() {
        let plugins = tempfile::tempdir().unwrap();
        fs::create_dir(plugins.path().join("empty")).unwrap();
        let err = discover(plugins.path()).unwrap_err().to_string();
        assert!(err.contains("expected one of empty.c, empty.cpp, empty.rs, empty.zig, empty.ts"), "{err}");

        fs::write(plugins.path().join("empty/empty.c"), "").unwrap();
        fs::write(plugins.path().join("empty/empty.cpp"), "").unwrap();
        let err = discover(plugins.path()).unwrap_err().to_string();
        assert!(err.contains("empty.c and") && err.contains("empty.cpp; keep one"), "{err}");

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
