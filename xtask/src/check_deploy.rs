//! `cargo xtask check-deploy`: validates the Containerfile and every kustomize overlay under
//! `deploy/` offline, and proves that each check can fail.
//!
//! # Checks
//!
//! | check | on | tool |
//! |---|---|---|
//! | `kustomize` | every overlay (and `deploy/base`) | `kubectl kustomize` (or `kustomize build`) |
//! | `kubernetes-validate` | built-in kinds of each rendering | `kubernetes-validate --strict`, Kubernetes [`KUBERNETES_VERSION`] |
//! | `crd-schema` | custom resources (Fluid, ServiceMonitor) | `deploy/tools/validate_crs.py` against the real CRDs |
//! | `checkov` | each rendering and the Containerfile | checkov, settings in `deploy/checkov.yaml` |
//! | `hadolint` | the Containerfile | hadolint, settings in `deploy/hadolint.yaml` |
//! | `invariants` | each rendering | `deploy/tools/check_invariants.py` (what this host needs) |
//!
//! The Python tools are pinned in `deploy/requirements.txt` and installed into a private
//! virtualenv in the user's cache folder, keyed by that file's content. The CRDs are vendored
//! in `deploy/vendor/` (`CRD_SCHEMA_DIR` points at other ones).
//!
//! # Negative fixtures
//!
//! `deploy/tests/negative/` holds broken inputs, each with one directive at the top:
//!
//! ```text
//! # expect-rejection: checkov CKV_K8S_22
//! ```
//!
//! The named check must reject the fixture, and its output must contain the rest of the line;
//! a fixture that passes, or fails for another reason, fails the command. Every check must have
//! at least one fixture, so none of them can silently stop checking anything.

use std::{
    fmt, fs,
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

use crate::{setup, step};

/// The Kubernetes release whose schemas built-in kinds are validated against.
pub(crate) const KUBERNETES_VERSION: &str = "1.34.0";

/// The pinned Python tools.
const REQUIREMENTS: &str = "deploy/requirements.txt";
/// Broken inputs, one or more per check.
const NEGATIVE_FIXTURES: &str = "deploy/tests/negative";
/// The CustomResourceDefinitions of Fluid and the Prometheus Operator, copied from their
/// releases (each folder's SOURCE.txt says which) with their licences.
const VENDORED_CRDS: &str = "deploy/vendor";
/// Renderings and scratch files, kept for inspection after a run.
const OUT_DIR: &str = "target/deploy";

#[derive(Debug, clap::Args)]
pub struct CheckDeploy {}

impl CheckDeploy {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let started = Instant::now();
        let tools = Tools::find_or_install(sh)?;
        let out = sh.current_dir().join(OUT_DIR);
        if out.exists() {
            fs::remove_dir_all(&out)?;
        }
        fs::create_dir_all(out.join("rendered"))?;
        let mut failures = Vec::new();

        step(format!("checking the Containerfile and every kustomization (Kubernetes {KUBERNETES_VERSION})"));
        let containerfile = sh.current_dir().join("Containerfile");
        for check in [Check::Hadolint, Check::Checkov] {
            expect_pass(sh, &tools, check, &containerfile, &out, &mut failures)?;
        }
        for overlay in overlays(sh)? {
            let name = overlay.file_name().context("overlay folder")?.to_string_lossy().into_owned();
            if !expect_pass(sh, &tools, Check::Kustomize, &overlay, &out, &mut failures)? {
                continue;
            }
            let rendered = out.join("rendered").join(format!("{name}.yaml"));
            fs::write(&rendered, tools.render(sh, &overlay)?)?;
            for check in [Check::KubernetesValidate, Check::CrdSchema, Check::Checkov, Check::Invariants] {
                expect_pass(sh, &tools, check, &rendered, &out, &mut failures)?;
            }
        }

        step(format!("checking that every check rejects its negative fixtures ({NEGATIVE_FIXTURES})"));
        let fixtures = negative_fixtures(sh)?;
        let uncovered: Vec<_> = Check::ALL.iter().filter(|c| !fixtures.iter().any(|f| f.check == **c)).collect();
        if !uncovered.is_empty() {
            failures.push(format!("no negative fixture for {uncovered:?}: every check must be shown to fail"));
        }
        for fixture in &fixtures {
            match fixture.check.run(sh, &tools, &fixture.path, &out)? {
                Verdict::Reject(output) if output.contains(&fixture.expected) => {
                    println!("rejected  {:<20} {} ({})", fixture.check, relative(sh, &fixture.path), fixture.expected);
                }
                Verdict::Reject(output) => failures.push(format!(
                    "{} rejected {} but not for the expected reason (its output lacks {:?}):\n{output}",
                    fixture.check,
                    relative(sh, &fixture.path),
                    fixture.expected
                )),
                Verdict::Pass(output) => failures.push(format!(
                    "{} accepted the broken fixture {}, so it checks nothing:\n{output}",
                    fixture.check,
                    relative(sh, &fixture.path)
                )),
            }
        }

        if !failures.is_empty() {
            bail!("check-deploy failed:\n\n{}", failures.join("\n\n"));
        }
        step(format!(
            "deployment checks passed in {:.0}s (renderings in {OUT_DIR}/rendered)",
            started.elapsed().as_secs_f64()
        ));
        Ok(())
    }
}

/// Runs a check that must pass; records its output as a failure otherwise. Returns whether it
/// passed.
fn expect_pass(
    sh: &Shell,
    tools: &Tools,
    check: Check,
    input: &Path,
    out: &Path,
    failures: &mut Vec<String>,
) -> anyhow::Result<bool> {
    match check.run(sh, tools, input, out)? {
        Verdict::Pass(output) => {
            let summary = output.lines().find(|l| l.starts_with("Passed checks:")).unwrap_or_default();
            println!("ok        {check:<20} {} {summary}", relative(sh, input));
            Ok(true)
        }
        Verdict::Reject(output) => {
            println!("FAILED    {check:<20} {}", relative(sh, input));
            failures.push(format!("{check} rejected {}:\n{output}", relative(sh, input)));
            Ok(false)
        }
    }
}

/// `deploy/base` and every folder under `deploy/overlays/`: everything a user may apply.
fn overlays(sh: &Shell) -> anyhow::Result<Vec<PathBuf>> {
    let root = sh.current_dir();
    let mut overlays = vec![root.join("deploy/base")];
    let mut found: Vec<PathBuf> = fs::read_dir(root.join("deploy/overlays"))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("kustomization.yaml").is_file())
        .collect();
    found.sort();
    overlays.extend(found);
    Ok(overlays)
}

/// The project's validation steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Check {
    Kustomize,
    KubernetesValidate,
    CrdSchema,
    Checkov,
    Hadolint,
    Invariants,
}

/// What a check said about one input, with the tool's output.
#[derive(Debug)]
enum Verdict {
    Pass(String),
    Reject(String),
}

impl Check {
    const ALL: [Check; 6] = [
        Check::Kustomize,
        Check::KubernetesValidate,
        Check::CrdSchema,
        Check::Checkov,
        Check::Hadolint,
        Check::Invariants,
    ];

    fn name(self) -> &'static str {
        match self {
            Check::Kustomize => "kustomize",
            Check::KubernetesValidate => "kubernetes-validate",
            Check::CrdSchema => "crd-schema",
            Check::Checkov => "checkov",
            Check::Hadolint => "hadolint",
            Check::Invariants => "invariants",
        }
    }

    /// Runs the check on a kustomization folder (kustomize), a Containerfile (`Containerfile`
    /// or `*.Containerfile`: checkov, hadolint) or a YAML stream (the rest). An error means the
    /// tool could not run at all, which is not a verdict.
    fn run(self, sh: &Shell, tools: &Tools, input: &Path, out: &Path) -> anyhow::Result<Verdict> {
        let venv = &tools.venv;
        let output = match self {
            Check::Kustomize => {
                let (program, args) = tools.kustomize.split_first().context("kustomize command")?;
                cmd!(sh, "{program} {args...} {input}").ignore_status().quiet().output()?
            }
            Check::KubernetesValidate => {
                // Only the built-in kinds: custom resources are the `crd-schema` check's, and
                // kubernetes-validate would merely warn about them. A warning about anything
                // left (a built-in group with an unknown kind) is a failure.
                let builtin = out.join("builtin.yaml");
                let crds = &tools.crds;
                let split = cmd!(
                    sh,
                    "{venv}/bin/python deploy/tools/validate_crs.py --crds {crds} --builtin-out {builtin} {input}"
                )
                .ignore_status()
                .quiet()
                .output()?;
                if !builtin.exists() {
                    bail!("validate_crs.py did not write {}:\n{}", builtin.display(), text(&split));
                }
                let output =
                    cmd!(sh, "{venv}/bin/kubernetes-validate --strict --quiet -k {KUBERNETES_VERSION} {builtin}")
                        .ignore_status()
                        .quiet()
                        .output()?;
                let report = text(&output);
                fs::remove_file(&builtin)?;
                let warned = report.lines().any(|l| l.starts_with("WARN"));
                return Ok(if output.status.success() && !warned {
                    Verdict::Pass(report)
                } else {
                    Verdict::Reject(report)
                });
            }
            Check::CrdSchema => {
                let crds = &tools.crds;
                cmd!(sh, "{venv}/bin/python deploy/tools/validate_crs.py --strict --crds {crds} {input}")
                    .ignore_status()
                    .quiet()
                    .output()?
            }
            Check::Checkov => {
                let config = "deploy/checkov.yaml";
                if is_containerfile(input) {
                    // checkov only recognises files named `Dockerfile`.
                    let dir = out.join("checkov-dockerfile");
                    fs::create_dir_all(&dir)?;
                    let copy = dir.join("Dockerfile");
                    fs::copy(input, &copy)?;
                    cmd!(sh, "{venv}/bin/checkov --config-file {config} --quiet --framework dockerfile -f {copy}")
                        .ignore_status()
                        .quiet()
                        .output()?
                } else {
                    cmd!(sh, "{venv}/bin/checkov --config-file {config} --quiet --framework kubernetes -f {input}")
                        .ignore_status()
                        .quiet()
                        .output()?
                }
            }
            Check::Hadolint => cmd!(sh, "{venv}/bin/hadolint --no-color --config deploy/hadolint.yaml {input}")
                .ignore_status()
                .quiet()
                .output()?,
            Check::Invariants => cmd!(sh, "{venv}/bin/python deploy/tools/check_invariants.py {input}")
                .ignore_status()
                .quiet()
                .output()?,
        };
        let report = text(&output);
        Ok(if output.status.success() { Verdict::Pass(report) } else { Verdict::Reject(report) })
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

fn is_containerfile(path: &Path) -> bool {
    path.file_name().is_some_and(|n| {
        let n = n.to_string_lossy();
        n == "Containerfile" || n == "Dockerfile" || n.ends_with(".Containerfile")
    })
}

fn text(output: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn relative(sh: &Shell, path: &Path) -> String {
    path.strip_prefix(sh.current_dir()).unwrap_or(path).display().to_string()
}

/// A broken input and the rejection it must get.
#[derive(Debug)]
struct Fixture {
    path: PathBuf,
    check: Check,
    /// Text the check's output must contain, so that a fixture rejected for some other reason
    /// (a typo in the fixture itself) does not count.
    expected: String,
}

const DIRECTIVE: &str = "# expect-rejection:";

fn negative_fixtures(sh: &Shell) -> anyhow::Result<Vec<Fixture>> {
    let dir = sh.current_dir().join(NEGATIVE_FIXTURES);
    let mut paths: Vec<PathBuf> = fs::read_dir(&dir)?.flatten().map(|e| e.path()).collect();
    paths.sort();
    let mut fixtures = Vec::new();
    for path in paths {
        // A kustomization fixture is a folder; its directive is in its kustomization.yaml.
        let source = if path.is_dir() { path.join("kustomization.yaml") } else { path.clone() };
        let text = fs::read_to_string(&source).with_context(|| format!("reading {}", source.display()))?;
        let (check, expected) = parse_directive(&text).with_context(|| format!("in {}", source.display()))?;
        fixtures.push(Fixture { path, check, expected });
    }
    if fixtures.is_empty() {
        bail!("no negative fixtures in {}", dir.display());
    }
    Ok(fixtures)
}

/// Reads the one `# expect-rejection: <check> <expected output>` line of a fixture.
fn parse_directive(text: &str) -> anyhow::Result<(Check, String)> {
    let mut directives = text.lines().filter_map(|l| l.trim().strip_prefix(DIRECTIVE));
    let directive = directives.next().with_context(|| format!("no `{DIRECTIVE} <check> <expected output>` line"))?;
    if directives.next().is_some() {
        bail!("more than one `{DIRECTIVE}` line");
    }
    let (name, expected) = directive.trim().split_once(' ').context("the directive names no expected output")?;
    let check = Check::ALL
        .into_iter()
        .find(|c| c.name() == name)
        .with_context(|| format!("unknown check {name:?}; one of {:?}", Check::ALL.map(Check::name)))?;
    Ok((check, expected.trim().to_string()))
}

/// Where the tools come from: kustomize, the private virtualenv and the CRD folder.
#[derive(Debug)]
pub(crate) struct Tools {
    /// `kubectl kustomize` or `kustomize build`.
    kustomize: Vec<String>,
    pub(crate) venv: PathBuf,
    crds: PathBuf,
}

impl Tools {
    pub(crate) fn find_or_install(sh: &Shell) -> anyhow::Result<Self> {
        let kustomize = kustomize_command(sh)?;
        let crds = crd_folder(sh)?;
        let venv = pinned_venv(sh, REQUIREMENTS, "the pinned deployment tools")?;
        Ok(Tools { kustomize, venv, crds })
    }

    /// The rendered YAML stream of a kustomization folder.
    pub(crate) fn render(&self, sh: &Shell, overlay: &Path) -> anyhow::Result<String> {
        let (program, args) = self.kustomize.split_first().context("kustomize command")?;
        cmd!(sh, "{program} {args...} {overlay}")
            .quiet()
            .read()
            .with_context(|| format!("rendering {}", overlay.display()))
    }

    /// The documents of a kustomization folder, as JSON values (YAML is read by the
    /// virtualenv's PyYAML, which keeps xtask free of a YAML dependency).
    pub(crate) fn render_json(&self, sh: &Shell, overlay: &Path) -> anyhow::Result<Vec<serde_json::Value>> {
        let yaml = self.render(sh, overlay)?;
        let venv = &self.venv;
        let script = "import json, sys, yaml; json.dump([d for d in yaml.safe_load_all(sys.stdin) if d], sys.stdout)";
        let json = cmd!(sh, "{venv}/bin/python -c {script}").stdin(yaml).quiet().read()?;
        Ok(serde_json::from_str(&json)?)
    }
}

/// kustomize as kubectl embeds it, or standalone. Debian 12 itself packages neither; where the
/// machine's apt knows a `kubectl` package (the project's machines have Google's repository
/// configured), it is installed from there. Otherwise the message says what to get.
fn kustomize_command(sh: &Shell) -> anyhow::Result<Vec<String>> {
    let found = || {
        if let Some(kubectl) = setup::resolve_program(Path::new("kubectl")) {
            return Some(vec![kubectl.display().to_string(), "kustomize".into()]);
        }
        setup::resolve_program(Path::new("kustomize")).map(|k| vec![k.display().to_string(), "build".into()])
    };
    if let Some(command) = found() {
        return Ok(command);
    }
    let apt_has_kubectl = cmd!(sh, "apt-cache show kubectl").quiet().ignore_stdout().ignore_stderr().run().is_ok();
    if apt_has_kubectl
        && setup::apt_install(sh, &["kubectl".to_string()], "kubectl (for kustomize)").is_ok()
        && let Some(command) = found()
    {
        return Ok(command);
    }
    bail!(
        "neither kubectl nor kustomize is on PATH, and apt has no kubectl package. Install kubectl 1.27 or \
         newer (it embeds kustomize; https://kubernetes.io/docs/tasks/tools/install-kubectl-linux/) or a \
         standalone kustomize 5 (https://kubectl.docs.kubernetes.io/installation/kustomize/), then re-run"
    )
}

/// The CRDs custom resources are validated against: `CRD_SCHEMA_DIR` (to try other releases),
/// else the copies vendored in the repository ([`VENDORED_CRDS`], with their licences and
/// sources), so a clone needs nothing beside it. There is no fallback to skipping.
fn crd_folder(sh: &Shell) -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("CRD_SCHEMA_DIR") {
        let dir = PathBuf::from(dir);
        if !dir.is_dir() {
            bail!("CRD_SCHEMA_DIR={} is not a folder", dir.display());
        }
        return Ok(dir);
    }
    let vendored = sh.current_dir().join(VENDORED_CRDS);
    if !vendored.is_dir() {
        bail!("the vendored CRDs are missing: {} should be part of the checkout", vendored.display());
    }
    Ok(vendored)
}

/// A virtualenv with exactly the pinned packages of `requirements` (a path from the project's
/// root), made once per content of that file: `deploy/requirements.txt` here, and the API test
/// tools for `setup`.
pub(crate) fn pinned_venv(sh: &Shell, requirements_file: &str, what: &str) -> anyhow::Result<PathBuf> {
    let requirements_path = sh.current_dir().join(requirements_file);
    let requirements = fs::read(&requirements_path)?;
    let venv = setup::cache_dir().join(format!("venv-{:016x}", fnv1a(&requirements)));
    // Written last, so that an interrupted install is redone rather than trusted.
    let marker = venv.join("requirements.txt");
    if fs::read(&marker).is_ok_and(|done| done == requirements) {
        return Ok(venv);
    }
    ensure_python(sh)?;
    if venv.exists() {
        fs::remove_dir_all(&venv)?;
    }
    step(format!("installing {what} into {}", venv.display()));
    cmd!(sh, "python3 -m venv {venv}").run().context("creating the virtualenv")?;
    cmd!(sh, "{venv}/bin/pip install --quiet --disable-pip-version-check --no-input -r {requirements_path}")
        .run()
        .with_context(|| format!("pip could not install {requirements_file} (pinned for Python 3.11 or newer)"))?;
    fs::write(&marker, &requirements)?;
    Ok(venv)
}

/// Python 3 with `venv` and `ensurepip` (Debian splits them into `python3-venv`).
pub(crate) fn ensure_python(sh: &Shell) -> anyhow::Result<()> {
    let probe = "import venv, ensurepip";
    let usable = || cmd!(sh, "python3 -c {probe}").quiet().ignore_stdout().ignore_stderr().run().is_ok();
    if usable() {
        return Ok(());
    }
    setup::apt_install(sh, &["python3".to_string(), "python3-venv".to_string()], "Python 3 with venv")?;
    if !usable() {
        bail!("python3 was installed but still cannot create a virtualenv");
    }
    Ok(())
}

/// A stable 64-bit FNV-1a hash, enough to name a cache folder after a file's content.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_one_directive_per_fixture() {
        let (check, expected) = parse_directive("# expect-rejection: checkov CKV_K8S_22\nkind: Deployment\n").unwrap();
        assert_eq!((check, expected.as_str()), (Check::Checkov, "CKV_K8S_22"));
        let (check, expected) =
            parse_directive("# expect-rejection: crd-schema 'mountpoint' was unexpected\n").unwrap();
        assert_eq!((check, expected.as_str()), (Check::CrdSchema, "'mountpoint' was unexpected"));

        assert!(parse_directive("kind: Deployment\n").is_err(), "a fixture without an expectation tests nothing");
        assert!(parse_directive("# expect-rejection: checkov\n").is_err(), "an expectation needs the expected output");
        assert!(parse_directive("# expect-rejection: kubeval oops\n").is_err(), "unknown check");
        assert!(parse_directive("# expect-rejection: checkov A\n# expect-rejection: checkov B\n").is_err());
    }

    #[test]
    fn every_committed_fixture_names_a_known_check_and_every_check_has_one() {
        let sh = Shell::new().unwrap();
        sh.change_dir(crate::project_root());
        let fixtures = negative_fixtures(&sh).unwrap();
        for check in Check::ALL {
            assert!(fixtures.iter().any(|f| f.check == check), "no negative fixture for {check}");
        }
    }

    #[test]
    fn fnv1a_is_stable() {
        // The cache folder's name must not change between builds or platforms.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
