//! Plugin versions: what a store holds under one name, and which one a request asks for.
//!
//! A store may hold, under one name, an unversioned plugin (the flat `<name>.wasm` of the
//! file stores) and any number of versions named by [semantic versioning](https://semver.org)
//! (`<name>/<version>.wasm`, or the tags of `<prefix>/<name>` in a registry). Stores only list
//! and read them; which one a request gets is decided in one place, [`super::Resolver`].

use std::fmt;

pub use semver::Version;

use super::PluginName;

/// One plugin file in a store: a name, and the version when it is a versioned one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PluginRef {
    pub name: PluginName,
    /// `None` for the unversioned plugin (the flat `<name>.wasm`).
    pub version: Option<Version>,
}

impl PluginRef {
    pub fn unversioned(name: PluginName) -> Self {
        PluginRef { name, version: None }
    }

    pub fn versioned(name: PluginName, version: Version) -> Self {
        PluginRef { name, version: Some(version) }
    }
}

impl From<&PluginName> for PluginRef {
    fn from(name: &PluginName) -> Self {
        PluginRef::unversioned(name.clone())
    }
}

impl fmt::Display for PluginRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.version {
            Some(version) => write!(f, "{} {version}", self.name),
            None => write!(f, "{}", self.name),
        }
    }
}

/// What a store holds under one name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Versions {
    /// Whether there is an unversioned plugin (`<name>.wasm`).
    pub unversioned: bool,
    /// Every valid version, lowest first. Entries whose names are not versions are left out
    /// (the store warns about them).
    pub versions: Vec<Version>,
}

impl Versions {
    pub fn is_empty(&self) -> bool {
        !self.unversioned && self.versions.is_empty()
    }

    /// What there is, as a message lists it: `unversioned` for the unversioned plugin, then
    /// the versions; `none` for nothing.
    pub fn describe(&self) -> String {
        let unversioned = self.unversioned.then(|| "unversioned".to_string());
        let all: Vec<String> = unversioned.into_iter().chain(self.versions.iter().map(ToString::to_string)).collect();
        if all.is_empty() { "none".to_string() } else { all.join(", ") }
    }

    /// Every version that is never served because another one of equal precedence (they
    /// differ only in build metadata) is, each with the one served instead (see
    /// `served_first`). Empty in a store that publishing alone has written.
    pub fn conflicts(&self) -> Vec<(&Version, &Version)> {
        // Sorted (lowest first), so versions of equal precedence are neighbours.
        self.versions
            .chunk_by(|a, b| a.cmp_precedence(b).is_eq())
            .filter(|equal| equal.len() > 1)
            .flat_map(|equal| {
                let served = equal.iter().min_by(|a, b| served_first(a, b)).expect("a chunk is never empty");
                equal.iter().filter(move |version| *version != served).map(move |version| (version, served))
            })
            .collect()
    }
}

/// The order among versions that differ only in build metadata (`2.3.4`, `2.3.4+zzz`), which
/// semver gives no precedence over each other: a requirement such as `=2.3.4` matches all of
/// them, so the store must hold only one. When it holds several anyway, the one with the
/// lowest build metadata in semver's order is served (no build metadata before any), whichever
/// was published last: publishing `2.3.4+zzz` beside `2.3.4` then never moves a caller pinned
/// to `=2.3.4`, and every replica picks the same one.
pub fn served_first(a: &Version, b: &Version) -> std::cmp::Ordering {
    a.build.cmp(&b.build)
}

/// Tells the operator, once per change, when a plugin holds versions that differ only in
/// build metadata (WARN, naming the version served and those never served), and when that is
/// over (INFO). Only plugins with conflicts are remembered.
#[derive(Debug, Default)]
pub(crate) struct ConflictLog(parking_lot::Mutex<std::collections::HashMap<PluginName, String>>);

impl ConflictLog {
    /// Looks at a fresh listing of `name`; returns whether it said something.
    pub fn note(&self, name: &PluginName, versions: &Versions) -> bool {
        let conflicts = versions.conflicts();
        let described = conflicts
            .iter()
            .map(|(shadowed, served)| format!("{shadowed} (serving {served} instead)"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut reported = self.0.lock();
        match reported.get(name) {
            Some(before) if *before == described => false,
            None if conflicts.is_empty() => false,
            Some(_) if conflicts.is_empty() => {
                reported.remove(name);
                tracing::info!(plugin = %name, "the plugin no longer holds versions that differ only in build metadata");
                true
            }
            _ => {
                tracing::warn!(
                    plugin = %name,
                    never_served = %described,
                    "the plugin holds versions that differ only in build metadata, which no requirement can tell \
                     apart; the one with the lowest build metadata is served. Remove the others"
                );
                reported.insert(name.clone(), described);
                true
            }
        }
    }
}

/// A version requirement in Cargo's syntax: `^1.2`, `~1.4.0`, `=1.4.2`, `>=1, <3`, `1.4`
/// (which means `^1.4`), `*`.
///
/// Pre-releases follow Cargo's (and semver's) rule: a pre-release such as `2.0.0-rc.1` is only
/// chosen by a requirement that names a pre-release of the same `major.minor.patch`
/// (`>=2.0.0-rc.0`, `=2.0.0-rc.1`). Without a requirement, the highest release is chosen.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VersionRequirement(semver::VersionReq);

/// Why a requirement was refused. Deliberately does not carry the text: callers must not echo
/// untrusted input back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the version requirement is not valid Cargo syntax (for example `^1.2`, `~1.4.0`, `=1.4.2` or `>=1, <3`), or \
     is longer than {MAX_REQUIREMENT_LEN} bytes"
)]
pub struct InvalidRequirement;

/// Longest requirement accepted, in bytes.
pub const MAX_REQUIREMENT_LEN: usize = 128;

impl VersionRequirement {
    pub fn parse(text: &str) -> Result<Self, InvalidRequirement> {
        if text.len() > MAX_REQUIREMENT_LEN {
            return Err(InvalidRequirement);
        }
        semver::VersionReq::parse(text).map(VersionRequirement).map_err(|_| InvalidRequirement)
    }

    pub fn matches(&self, version: &Version) -> bool {
        self.0.matches(version)
    }

    /// The one version an exact pin (`=1.4.2`, `=2.0.0-rc.1`) names; `None` for anything
    /// else (`=1.4` is a range).
    pub fn exact(&self) -> Option<Version> {
        let [comparator] = self.0.comparators.as_slice() else {
            return None;
        };
        if comparator.op != semver::Op::Exact {
            return None;
        }
        let mut version = Version::new(comparator.major, comparator.minor?, comparator.patch?);
        version.pre = comparator.pre.clone();
        Some(version)
    }
}

/// The parsed form (`^1.2`), never the caller's text: safe to put in messages and logs.
impl fmt::Display for VersionRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The version a request gets: the highest that satisfies `requirement`, or without one the
/// highest release. `None` when nothing qualifies. Among versions of equal precedence (they
/// differ only in build metadata) the one [`served_first`] puts first, never the highest
/// build metadata.
pub fn select<'a>(versions: &'a [Version], requirement: Option<&VersionRequirement>) -> Option<&'a Version> {
    versions
        .iter()
        .filter(|version| match requirement {
            Some(requirement) => requirement.matches(version),
            None => version.pre.is_empty(),
        })
        .max_by(|a, b| a.cmp_precedence(b).then_with(|| served_first(b, a)))
}

/// The name of a version's file inside `<name>/`, and back. A name that is not exactly a
/// version's canonical spelling (`1.0`, `v1.0.0`, `01.0.0`, `1.0.0.wasm.tmp`) is not a version.
pub(crate) fn version_file_name(version: &Version) -> String {
    format!("{version}.wasm")
}

pub(crate) fn version_from_file_name(file: &str) -> Option<Version> {
    parse_version_exactly(file.strip_suffix(".wasm")?)
}

/// A version spelled exactly as semver prints it (a registry tag, a file stem).
pub(crate) fn parse_version_exactly(text: &str) -> Option<Version> {
    Version::parse(text).ok().filter(|version| version.to_string() == text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn versions(list: &[&str]) -> Vec<Version> {
        let mut versions: Vec<Version> = list.iter().map(|v| Version::parse(v).unwrap()).collect();
        versions.sort();
        versions
    }

    fn pick(list: &[&str], requirement: Option<&str>) -> Option<String> {
        let requirement = requirement.map(|r| VersionRequirement::parse(r).unwrap());
        select(&versions(list), requirement.as_ref()).map(ToString::to_string)
    }

    #[test]
    fn each_requirement_form_picks_the_highest_match() {
        let all = ["1.0.0", "1.2.0", "1.4.0", "1.4.2", "1.5.1", "2.0.0", "2.1.0-rc.1", "3.0.0-alpha.1"];
        assert_eq!(pick(&all, None).as_deref(), Some("2.0.0"), "no requirement: the highest release");
        assert_eq!(pick(&all, Some("^1.2")).as_deref(), Some("1.5.1"));
        assert_eq!(pick(&all, Some("1.2")).as_deref(), Some("1.5.1"), "a bare version means ^");
        assert_eq!(pick(&all, Some("~1.4.0")).as_deref(), Some("1.4.2"));
        assert_eq!(pick(&all, Some("=1.4.0")).as_deref(), Some("1.4.0"), "pinned");
        assert_eq!(pick(&all, Some(">=1, <2")).as_deref(), Some("1.5.1"));
        assert_eq!(pick(&all, Some("*")).as_deref(), Some("2.0.0"), "* never picks a pre-release");
        assert_eq!(pick(&all, Some("^4")), None);
    }

    #[test]
    fn pre_releases_only_when_asked_for() {
        let all = ["1.0.0", "2.0.0-rc.1", "2.0.0-rc.2"];
        assert_eq!(pick(&all, None).as_deref(), Some("1.0.0"));
        assert_eq!(pick(&all, Some(">=1")).as_deref(), Some("1.0.0"));
        assert_eq!(pick(&all, Some(">=2.0.0-rc.1")).as_deref(), Some("2.0.0-rc.2"));
        assert_eq!(pick(&all, Some("=2.0.0-rc.1")).as_deref(), Some("2.0.0-rc.1"));
        // Only pre-releases: nothing without a requirement that names one.
        assert_eq!(pick(&["2.0.0-rc.1"], None), None);
    }

    /// Versions that differ only in build metadata are one version to a requirement; the one
    /// with the lowest build metadata (none at all first) is served, whatever else is there, so
    /// adding `2.3.4+zzz` beside `2.3.4` moves no pin, and every store order gives the same pick.
    #[test]
    fn build_metadata_never_moves_a_pin() {
        let all = ["1.0.0", "2.3.4", "2.3.4+zzz", "2.3.4+aaa", "2.3.5-rc.1+b", "2.3.5-rc.1+a"];
        assert_eq!(pick(&all, Some("=2.3.4")).as_deref(), Some("2.3.4"));
        assert_eq!(pick(&all, Some("^2")).as_deref(), Some("2.3.4"));
        assert_eq!(pick(&all, None).as_deref(), Some("2.3.4"), "no requirement: the same one");
        assert_eq!(pick(&all, Some("=2.3.5-rc.1")).as_deref(), Some("2.3.5-rc.1+a"));
        assert_eq!(pick(&["2.3.4+b", "2.3.4+a", "2.3.4+a.1"], Some("=2.3.4")).as_deref(), Some("2.3.4+a"));
        // Numeric identifiers compare as numbers, as semver orders build metadata.
        assert_eq!(pick(&["2.3.4+10", "2.3.4+9"], Some("=2.3.4")).as_deref(), Some("2.3.4+9"));
        // A higher version still wins over any build metadata.
        assert_eq!(pick(&["2.3.4", "2.3.4+zzz", "2.3.5+a"], Some("^2")).as_deref(), Some("2.3.5+a"));

        let listed = Versions { unversioned: false, versions: versions(&all) };
        let conflicts: Vec<(String, String)> = listed
            .conflicts()
            .into_iter()
            .map(|(shadowed, served)| (shadowed.to_string(), served.to_string()))
            .collect();
        assert_eq!(
            conflicts,
            [
                ("2.3.4+aaa".to_string(), "2.3.4".to_string()),
                ("2.3.4+zzz".to_string(), "2.3.4".to_string()),
                ("2.3.5-rc.1+b".to_string(), "2.3.5-rc.1+a".to_string()),
            ]
        );
        assert!(Versions { unversioned: true, versions: versions(&["1.0.0", "1.0.1+x"]) }.conflicts().is_empty());
    }

    #[test]
    fn a_description_names_the_unversioned_plugin() {
        let describe = |unversioned, list: &[&str]| Versions { unversioned, versions: versions(list) }.describe();
        assert_eq!(describe(false, &[]), "none");
        assert_eq!(describe(true, &[]), "unversioned");
        assert_eq!(describe(true, &["1.0.0", "2.0.0-rc.1"]), "unversioned, 1.0.0, 2.0.0-rc.1");
        assert_eq!(describe(false, &["1.0.0"]), "1.0.0");
    }

    #[test]
    fn refuses_what_is_not_a_requirement() {
        for bad in ["", "latest", "1.x.y", "^^1", ">=1 <2 ||", "v1", &"1".repeat(200)] {
            assert_eq!(VersionRequirement::parse(bad), Err(InvalidRequirement), "{bad:?}");
        }
        assert_eq!(VersionRequirement::parse(" ^1.2 ").unwrap().to_string(), "^1.2");
    }

    #[test]
    fn only_canonical_version_file_names_are_versions() {
        assert_eq!(version_from_file_name("1.4.2.wasm"), Some(Version::new(1, 4, 2)));
        assert_eq!(version_from_file_name("2.0.0-rc.1+build.5.wasm").unwrap().to_string(), "2.0.0-rc.1+build.5");
        for bad in ["1.4.wasm", "v1.4.2.wasm", "01.4.2.wasm", "1.4.2", "1.4.2.wasm.tmp", ".1.4.2.wasm", "latest.wasm"] {
            assert_eq!(version_from_file_name(bad), None, "{bad}");
        }
        assert_eq!(version_file_name(&Version::new(1, 4, 2)), "1.4.2.wasm");
    }
}
