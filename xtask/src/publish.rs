//! `cargo xtask publish`: publishes one plugin version to an OCI registry or a plugin folder.
//!
//! The plugin is checked against the ABI first (a plugin the host would refuse is never
//! published). A registry gets the CNCF Wasm artifact layout the host's OCI store reads
//! (config `application/vnd.wasm.config.v0+json`, one `application/wasm` layer) at
//! `<registry>/<prefix>/<name>:<version>` (`+` of build metadata written `_`, as OCI tags
//! cannot hold `+`), with annotations for the ABI version, the functions and the source
//! revision. A folder gets `<folder>/<name>/<version>.wasm`, written atomically. Either way an
//! existing version is never replaced unless `--force` is given: versions are immutable, so
//! that every replica pinned to one runs the same bytes. Versions that differ only in build
//! metadata (`2.3.4`, `2.3.4+zzz`) are one version to every requirement (`=2.3.4` matches
//! both), so a version is never published beside another of equal precedence, not even with
//! `--force`, which replaces only the very version named.
//!
//! `--sign KEY` (repeatable) signs what is published, in the format of `plugin_signature`: to a
//! registry, the cosign signature artifact `sha256-<manifest digest>.sig` beside the pushed
//! manifest (one payload layer per key); to a folder, the detached signature
//! `<version>.wasm.sig`, written before the plugin file so a host that requires signatures
//! never sees the new version unsigned.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use oci_client::{
    Client, Reference,
    client::{ClientConfig, ClientProtocol, Config, ImageLayer},
    errors::{OciDistributionError, OciErrorCode},
    manifest::OciImageManifest,
    secrets::RegistryAuth,
};
use plugin_signature::{
    CONFIG_MEDIA_TYPE, DETACHED_SUFFIX, DetachedSignature, PAYLOAD_MEDIA_TYPE, Payload, PrivateKey,
    SIGNATURE_ANNOTATION, signature_tag,
};
use xshell::{Shell, cmd};

use crate::{PLUGIN_OUT_DIR, step};

/// Media types of the CNCF Wasm OCI artifact.
const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";

/// Annotation keys (OCI's standard ones where there is one).
const ANNOTATION_ABI_VERSION: &str = "dev.wasm-plugin-host.abi.version";
const ANNOTATION_FUNCTIONS: &str = "dev.wasm-plugin-host.functions";
const ANNOTATION_REVISION: &str = "org.opencontainers.image.revision";
const ANNOTATION_VERSION: &str = "org.opencontainers.image.version";
const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";
const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
/// The plugin version's configuration (the host's `store::oci::CONFIG_ANNOTATION`).
const ANNOTATION_CONFIG: &str = "dev.wasm-plugin-host.config";

#[derive(Debug, clap::Args)]
pub struct Publish {
    /// A `.wasm` file, or the name of a plugin built by `build-plugins` (target/plugins/NAME.wasm).
    plugin: String,
    /// The version to publish, a semantic version (`1.4.2`, `2.0.0-rc.1`).
    #[arg(long)]
    version: String,
    /// Where to: `<registry-host[:port]>/<prefix>` (an OCI registry) or `dir:PATH` (a plugin
    /// folder the local or Fluid store serves).
    #[arg(long)]
    to: String,
    /// Replace the version if it exists (versions are otherwise immutable).
    #[arg(long)]
    force: bool,
    /// A JSON configuration published with the version (README, "Plugin configuration"): a
    /// registry gets it as the manifest annotation `dev.wasm-plugin-host.config` (readable by
    /// anyone who can pull: put secrets in a mounted Secret instead), a folder as
    /// `<name>/<version>.config.json`. Checked to be JSON within the plugin's configuration
    /// buffer; its contents are never printed.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Talk to the registry over plain HTTP.
    #[arg(long, env = "OCI_INSECURE", default_value_t = false, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    insecure: bool,
    /// Registry user name (with `--password`); anonymous without.
    #[arg(long, env = "OCI_USERNAME", requires = "password")]
    username: Option<String>,
    /// Registry password or token.
    #[arg(long, env = "OCI_PASSWORD", requires = "username", hide_env_values = true)]
    password: Option<String>,
    /// Sign with this private key (PKCS#8 PEM, as `keygen` writes; repeat for several signers).
    #[arg(long = "sign", value_name = "KEY")]
    sign: Vec<PathBuf>,
}

/// What is being published, checked.
#[derive(Debug)]
struct Artifact {
    name: String,
    version: semver::Version,
    bytes: Vec<u8>,
    annotations: BTreeMap<String, String>,
    /// The keys to sign it with (none: unsigned).
    keys: Vec<PrivateKey>,
    /// The configuration published with it, checked.
    config: Option<String>,
}

impl Publish {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let mut artifact = self.artifact(sh)?;
        match self.to.strip_prefix("dir:") {
            Some(folder) => publish_to_folder(&artifact, Path::new(folder), self.force),
            None => {
                if let Some(config) = artifact.config.take() {
                    artifact.annotations.insert(ANNOTATION_CONFIG.to_string(), config);
                }
                let auth = match (&self.username, &self.password) {
                    (Some(username), Some(password)) => RegistryAuth::Basic(username.clone(), password.clone()),
                    _ => RegistryAuth::Anonymous,
                };
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                runtime.block_on(publish_to_registry(&artifact, &self.to, self.insecure, &auth, self.force))
            }
        }
    }

    /// Reads the plugin, checks its name, version and ABI, and gathers its annotations.
    fn artifact(&self, sh: &Shell) -> anyhow::Result<Artifact> {
        let path = if self.plugin.ends_with(".wasm") {
            PathBuf::from(&self.plugin)
        } else {
            sh.current_dir().join(PLUGIN_OUT_DIR).join(format!("{}.wasm", self.plugin))
        };
        let name = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .filter(|stem| is_plugin_name(stem))
            .with_context(|| {
                format!(
                    "{}: a plugin's file name must be `<name>.wasm`, the name 1-64 ASCII letters, digits, `_` and \
                     `-`, starting with a letter or digit",
                    path.display()
                )
            })?
            .to_string();
        let version = semver::Version::parse(&self.version)
            .ok()
            .filter(|version| version.to_string() == self.version)
            .with_context(|| format!("`{}` is not a semantic version such as 1.4.2 or 2.0.0-rc.1", self.version))?;
        let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let report = plugin_sdk::check(&bytes);
        if !report.is_compliant() {
            let violations: Vec<String> = report.violations.iter().map(|v| format!("  {v}")).collect();
            bail!(
                "{} breaks the plugin ABI; the host would refuse it, so it is not published:\n{}",
                path.display(),
                violations.join("\n")
            );
        }
        let functions = match &report.v2 {
            Some(layout) => layout.functions.iter().map(|f| f.name.clone()).collect::<Vec<_>>().join(","),
            None => "init,process,cleanup".to_string(),
        };
        let mut annotations = BTreeMap::new();
        annotations.insert(ANNOTATION_TITLE.to_string(), name.clone());
        annotations.insert(ANNOTATION_VERSION.to_string(), version.to_string());
        annotations.insert(ANNOTATION_ABI_VERSION.to_string(), report.abi_version.unwrap_or(1).to_string());
        annotations.insert(ANNOTATION_FUNCTIONS.to_string(), functions);
        annotations.insert(ANNOTATION_REVISION.to_string(), source_revision(sh));
        annotations.insert(ANNOTATION_CREATED.to_string(), created_now(sh));
        let keys = self
            .sign
            .iter()
            .map(|path| {
                let pem = fs::read_to_string(path).with_context(|| format!("reading the key {}", path.display()))?;
                PrivateKey::from_pem(&pem).with_context(|| format!("the key {}", path.display()))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let config = match &self.config {
            None => None,
            Some(file) => Some(checked_config(file, report.v2.as_ref().and_then(|layout| layout.config))?),
        };
        Ok(Artifact { name, version, bytes, annotations, keys, config })
    }
}

/// The plugin name rule of the host (`plugin-host/src/store/name.rs`), which xtask cannot depend on.
fn is_plugin_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The commit the checkout is at, `-dirty` when it has uncommitted changes; `unknown` outside
/// a git checkout.
fn source_revision(sh: &Shell) -> String {
    let Ok(commit) = cmd!(sh, "git rev-parse HEAD").quiet().ignore_stderr().read() else {
        return "unknown".to_string();
    };
    let dirty = cmd!(sh, "git status --porcelain --untracked-files=no")
        .quiet()
        .ignore_stderr()
        .read()
        .is_ok_and(|status| !status.trim().is_empty());
    if dirty { format!("{commit}-dirty") } else { commit }
}

/// Now, in RFC 3339 as the OCI annotation wants (from `date`, to keep xtask free of a time crate).
fn created_now(sh: &Shell) -> String {
    cmd!(sh, "date -u +%Y-%m-%dT%H:%M:%SZ").quiet().read().unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

/// Refuses to publish `artifact` where `existing` holds a version of equal precedence spelled
/// otherwise (differing only in build metadata): the host could not tell the two apart by any
/// requirement, so publishing it would either shadow it or move every caller pinned to the
/// other one. `--force` does not override this: it replaces the version named, nothing else.
fn refuse_equal_precedence(
    artifact: &Artifact,
    existing: impl IntoIterator<Item = semver::Version>,
    place: &str,
) -> anyhow::Result<()> {
    let version = &artifact.version;
    let mut twins: Vec<semver::Version> =
        existing.into_iter().filter(|other| other.cmp_precedence(version).is_eq() && other != version).collect();
    twins.sort();
    let Some(first) = twins.first() else { return Ok(()) };
    let listed = twins.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    let bare = semver::Version { build: semver::BuildMetadata::EMPTY, ..version.clone() };
    bail!(
        "{place} holds {name} {listed}, which differs from {version} only in build metadata: to the host they are one \
         version (`={bare}` matches both), so {version} is not published, even with --force. Publish a new version, \
         or replace that one with `--version {first} --force`",
        name = artifact.name,
    )
}

/// A version spelled exactly as semver prints it (a file stem, a tag with `_` for `+`), as the
/// host reads them.
fn parse_version_exactly(text: &str) -> Option<semver::Version> {
    semver::Version::parse(text).ok().filter(|version| version.to_string() == text)
}

/// The versions `<folder>/<name>/` holds, as the host's file stores read them.
fn versions_in_folder(versions: &Path) -> anyhow::Result<Vec<semver::Version>> {
    let entries = match fs::read_dir(versions) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error).with_context(|| format!("listing {}", versions.display())),
    };
    let mut found = Vec::new();
    for entry in entries {
        let file_name = entry.with_context(|| format!("listing {}", versions.display()))?.file_name();
        if let Some(version) = file_name.to_str().and_then(|f| f.strip_suffix(".wasm")).and_then(parse_version_exactly)
        {
            found.push(version);
        }
    }
    Ok(found)
}

/// The configuration in `file`, if the host would pass it to a plugin with this configuration
/// buffer: well-formed JSON, within the buffer. Errors never quote it.
fn checked_config(file: &Path, buffer: Option<plugin_sdk::Buffer>) -> anyhow::Result<String> {
    let text = fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    if let Err(error) = serde_json::from_str::<serde_json::Value>(&text) {
        bail!("{} is not well-formed JSON (error at line {}, column {})", file.display(), error.line(), error.column());
    }
    let Some(buffer) = buffer else {
        bail!(
            "{}: the plugin declares no configuration buffer (PLUGIN_CONFIG), so it takes no configuration",
            file.display()
        );
    };
    if text.len() as u64 > u64::from(buffer.config_room()) {
        bail!(
            "{} is {} bytes, over the plugin's configuration buffer, which holds {}",
            file.display(),
            text.len(),
            buffer.config_room()
        );
    }
    Ok(text)
}

/// Writes `<folder>/<name>/<version>.wasm` atomically: a temporary file in the same folder,
/// renamed into place (without replacing an existing version unless forced, and never beside a
/// version of equal precedence).
fn publish_to_folder(artifact: &Artifact, folder: &Path, force: bool) -> anyhow::Result<()> {
    let versions = folder.join(&artifact.name);
    refuse_equal_precedence(artifact, versions_in_folder(&versions)?, &versions.display().to_string())?;
    fs::create_dir_all(&versions).with_context(|| format!("creating {}", versions.display()))?;
    let target = versions.join(format!("{}.wasm", artifact.version));
    if let Some(config) = &artifact.config {
        // Before the version itself, so that it never serves without its configuration.
        if target.exists() && !force {
            bail!(
                "{} exists: versions are immutable (publish a new version, or pass --force to replace it)",
                target.display()
            );
        }
        let mut file = tempfile::Builder::new().prefix(".publish-").suffix(".tmp").tempfile_in(&versions)?;
        std::io::Write::write_all(&mut file, config.as_bytes())?;
        file.as_file().sync_all()?;
        file.persist(versions.join(format!("{}.config.json", artifact.version))).map_err(|e| e.error)?;
    }
    if !artifact.keys.is_empty() {
        // First: the moment the plugin file appears, its signature is there.
        let signature = DetachedSignature::sign(&artifact.keys, &artifact.name, &artifact.bytes);
        let path = versions.join(format!("{}.wasm{DETACHED_SUFFIX}", artifact.version));
        // Checked again (atomically) when the plugin is written; here so that the signature of
        // an existing version is never replaced by one of other bytes.
        if target.exists() && !force {
            bail!(
                "{} exists: versions are immutable (publish a new version, or pass --force to replace it)",
                target.display()
            );
        }
        let mut file = tempfile::Builder::new().prefix(".publish-").suffix(".tmp").tempfile_in(&versions)?;
        std::io::Write::write_all(&mut file, signature.to_json().as_bytes())?;
        file.as_file().sync_all()?;
        file.persist(&path).map_err(|e| e.error).with_context(|| format!("writing {}", path.display()))?;
        step(format!("signed it: {}", path.display()));
    }
    let mut file = tempfile::Builder::new().prefix(".publish-").suffix(".tmp").tempfile_in(&versions)?;
    std::io::Write::write_all(&mut file, &artifact.bytes)?;
    file.as_file().sync_all()?;
    if force {
        file.persist(&target).map_err(|e| e.error)?;
    } else {
        // Refused by the kernel if the file exists, so two publishers cannot both succeed.
        file.persist_noclobber(&target).map_err(|error| match error.error.kind() {
            std::io::ErrorKind::AlreadyExists => anyhow::anyhow!(
                "{} exists: versions are immutable (publish a new version, or pass --force to replace it)",
                target.display()
            ),
            _ => anyhow::Error::new(error.error).context(format!("writing {}", target.display())),
        })?;
    }
    step(format!("published {} {} to {}", artifact.name, artifact.version, target.display()));
    Ok(())
}

async fn publish_to_registry(
    artifact: &Artifact,
    to: &str,
    insecure: bool,
    auth: &RegistryAuth,
    force: bool,
) -> anyhow::Result<()> {
    let (registry, prefix) = to.split_once('/').unwrap_or((to, ""));
    let prefix = prefix.trim_matches('/');
    let repository = if prefix.is_empty() { artifact.name.clone() } else { format!("{prefix}/{}", artifact.name) };
    let tag = artifact.version.to_string().replace('+', "_");
    let reference = Reference::with_tag(registry.to_string(), repository, tag);
    let config = ClientConfig {
        protocol: if insecure { ClientProtocol::Http } else { ClientProtocol::Https },
        ..ClientConfig::default()
    };
    let client = Client::new(config);

    // Asked first: the first request is the one that finds out whether the registry speaks
    // HTTPS at all.
    match client.fetch_manifest_digest(&reference, auth).await {
        Ok(digest) if !force => bail!(
            "{reference} exists ({digest}): versions are immutable (publish a new version, or pass --force to replace it)"
        ),
        Ok(_) => {}
        Err(error) if is_not_found(&error) => {}
        Err(error) if !insecure && matches!(error, OciDistributionError::RequestError(_)) => {
            // A TLS handshake with a plain-HTTP server fails with a message about a "corrupt
            // message": ask again in plain HTTP to say what is really wrong.
            let plain = Client::new(ClientConfig { protocol: ClientProtocol::Http, ..ClientConfig::default() });
            if !matches!(
                plain.fetch_manifest_digest(&reference, auth).await,
                Err(OciDistributionError::RequestError(_))
            ) {
                bail!(
                    "{registry} speaks plain HTTP, not HTTPS: pass --insecure (or set OCI_INSECURE=true) to publish to it"
                );
            }
            return Err(error).with_context(|| format!("asking {registry} whether {reference} exists"));
        }
        Err(error) => return Err(error).with_context(|| format!("asking {registry} whether {reference} exists")),
    }

    // The tags as the host reads them: `_` stands for the `+` of build metadata.
    let tags = match client.list_tags(&reference, auth, None, None).await {
        Ok(listing) => listing.tags,
        Err(error) if is_not_found(&error) => Vec::new(),
        Err(error) => return Err(error).with_context(|| format!("listing the tags of {reference}")),
    };
    let existing = tags.iter().filter_map(|tag| parse_version_exactly(&tag.replacen('_', "+", 1)));
    let repository = format!("{registry}/{}", reference.repository());
    refuse_equal_precedence(artifact, existing, &repository)?;

    let layer = ImageLayer::new(artifact.bytes.clone(), WASM_LAYER_MEDIA_TYPE.to_string(), None);
    let config_json = serde_json::json!({
        "created": artifact.annotations[ANNOTATION_CREATED],
        "architecture": "wasm",
        "os": "wasip1",
        "layerDigests": [layer.sha256_digest()],
    });
    let config = Config::new(serde_json::to_vec(&config_json)?, WASM_CONFIG_MEDIA_TYPE.to_string(), None);
    let mut manifest =
        OciImageManifest::build(std::slice::from_ref(&layer), &config, Some(artifact.annotations.clone()));
    manifest.media_type = Some(oci_client::manifest::OCI_IMAGE_MEDIA_TYPE.to_string());
    client
        .push(&reference, &[layer], config, auth, Some(manifest))
        .await
        .with_context(|| format!("pushing {reference}"))?;
    let digest = client.fetch_manifest_digest(&reference, auth).await?;
    step(format!("published {} {} to {reference} ({digest})", artifact.name, artifact.version));
    if !artifact.keys.is_empty() {
        push_signature(&client, &reference, &digest, &artifact.keys, auth).await?;
    }
    Ok(())
}

/// Pushes cosign's signature artifact for the manifest `digest` of `reference`'s repository:
/// tag `sha256-<hex>.sig`, one simple-signing payload layer per key, each with its signature
/// in the `dev.cosignproject.cosign/signature` annotation.
async fn push_signature(
    client: &Client,
    reference: &Reference,
    digest: &str,
    keys: &[PrivateKey],
    auth: &RegistryAuth,
) -> anyhow::Result<()> {
    let tag = signature_tag(digest).with_context(|| format!("the registry named the manifest `{digest}`"))?;
    // As cosign writes it: the registry host, lowercase, and the repository, no tag.
    let docker_reference = format!("{}/{}", reference.registry().to_ascii_lowercase(), reference.repository());
    let payload = Payload::new(docker_reference, digest).to_bytes();
    let layers: Vec<ImageLayer> = keys
        .iter()
        .map(|key| {
            let annotations = BTreeMap::from([(SIGNATURE_ANNOTATION.to_string(), key.sign(&payload))]);
            ImageLayer::new(payload.clone(), PAYLOAD_MEDIA_TYPE.to_string(), Some(annotations))
        })
        .collect();
    let config = Config::new(b"{}".to_vec(), CONFIG_MEDIA_TYPE.to_string(), None);
    let mut manifest = OciImageManifest::build(&layers, &config, None);
    manifest.media_type = Some(oci_client::manifest::OCI_IMAGE_MEDIA_TYPE.to_string());
    let signature = Reference::with_tag(reference.registry().to_string(), reference.repository().to_string(), tag);
    client
        .push(&signature, &layers, config, auth, Some(manifest))
        .await
        .with_context(|| format!("pushing the signature {signature}"))?;
    let signers: Vec<String> = keys.iter().map(|key| key.public_key().id()).collect();
    step(format!("signed it: {signature} (keys {})", signers.join(", ")));
    Ok(())
}

fn is_not_found(error: &OciDistributionError) -> bool {
    match error {
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::ServerError { code, .. } => *code == 404,
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(e.code, OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown | OciErrorCode::NotFound)
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::project_shell;

    fn publish(plugin: &Path, version: &str, to: &str, force: bool) -> Publish {
        Publish {
            plugin: plugin.display().to_string(),
            version: version.to_string(),
            to: to.to_string(),
            force,
            insecure: true,
            username: None,
            password: None,
            sign: Vec::new(),
            config: None,
        }
    }

    /// A compliant plugin assembled from WAT (no C compiler needed).
    fn plugin_file(dir: &Path, name: &str, output: i32) -> PathBuf {
        let wat = format!(
            r#"(module (memory (export "memory") 1)
                (func (export "init") (result i32) i32.const 0)
                (func (export "process") (param i32) (result i32) i32.const {output})
                (func (export "cleanup") (result i32) i32.const 0)
                (@custom "wasm_plugin_abi" "\01\00\00\00"))"#
        );
        let path = dir.join(format!("{name}.wasm"));
        fs::write(&path, wat::parse_str(wat).unwrap()).unwrap();
        path
    }

    #[test]
    fn publishes_to_a_folder_atomically_and_never_replaces_a_version_unless_forced() {
        let sh = project_shell();
        let work = tempfile::tempdir().unwrap();
        let store = work.path().join("store");
        let first = plugin_file(work.path(), "answer", 1);
        let to = format!("dir:{}", store.display());
        publish(&first, "1.0.0", &to, false).run(&sh).unwrap();
        let published = store.join("answer/1.0.0.wasm");
        assert_eq!(fs::read(&published).unwrap(), fs::read(&first).unwrap());

        let second = plugin_file(&work.path().join("."), "answer", 2);
        let error = publish(&second, "1.0.0", &to, false).run(&sh).unwrap_err();
        assert!(error.to_string().contains("immutable"), "{error:#}");
        publish(&second, "1.0.0", &to, true).run(&sh).unwrap();
        assert_eq!(fs::read(&published).unwrap(), fs::read(&second).unwrap(), "--force replaces it");
        let leftovers: Vec<_> = fs::read_dir(store.join("answer")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers, ["1.0.0.wasm"], "no temporary file is left behind");
    }

    #[test]
    fn signs_what_it_publishes_to_a_folder_with_a_detached_signature() {
        let sh = project_shell();
        let work = tempfile::tempdir().unwrap();
        let key_path = work.path().join("release.key");
        let key = PrivateKey::generate();
        fs::write(&key_path, key.to_pkcs8_pem()).unwrap();
        let plugin = plugin_file(work.path(), "answer", 1);
        let store = work.path().join("store");
        let mut signed = publish(&plugin, "1.0.0", &format!("dir:{}", store.display()), false);
        signed.sign = vec![key_path];
        signed.run(&sh).unwrap();
        let detached = DetachedSignature::parse(&fs::read(store.join("answer/1.0.0.wasm.sig")).unwrap()).unwrap();
        let [(payload, signature)] = &detached.entries().unwrap()[..] else { panic!("one signature") };
        let bytes = fs::read(store.join("answer/1.0.0.wasm")).unwrap();
        assert_eq!(Payload::parse(payload).unwrap(), Payload::new("answer", plugin_signature::sha256_digest(&bytes)));
        assert!(key.public_key().verify(payload, signature).unwrap());
    }

    /// `--sign` pushes cosign's signature artifact: tag `sha256-<manifest hex>.sig`, a
    /// simple-signing payload layer naming the repository and the manifest, and the signature
    /// in the layer's annotation, as skopeo (a standard client) reads it back.
    #[test]
    fn signs_what_it_pushes_with_a_cosign_signature_artifact() {
        let registry = crate::test_support::Registry::start(None);
        let sh = project_shell();
        let work = tempfile::tempdir().unwrap();
        let keys: Vec<PrivateKey> = (0..2).map(|_| PrivateKey::generate()).collect();
        let mut paths = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let path = work.path().join(format!("{i}.key"));
            fs::write(&path, key.to_pkcs8_pem()).unwrap();
            paths.push(path);
        }
        let plugin = plugin_file(work.path(), "answer", 1);
        let mut signed = publish(&plugin, "1.0.0", &format!("{}/plugins", registry.addr), false);
        signed.sign = paths;
        signed.run(&sh).unwrap();

        let client = Client::new(ClientConfig { protocol: ClientProtocol::Http, ..ClientConfig::default() });
        let reference = Reference::with_tag(registry.addr.clone(), "plugins/answer".into(), "1.0.0".into());
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let digest = runtime.block_on(client.fetch_manifest_digest(&reference, &RegistryAuth::Anonymous)).unwrap();
        let tag = signature_tag(&digest).unwrap();
        let manifest = skopeo_inspect(&registry, &format!("plugins/answer:{tag}"), true);
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 2, "one layer per key");
        let copy = work.path().join("signature");
        let source = format!("docker://{}/plugins/answer:{tag}", registry.addr);
        let destination = format!("dir:{}", copy.display());
        cmd!(sh, "skopeo copy --quiet --src-tls-verify=false {source} {destination}").run().unwrap();
        for (layer, key) in layers.iter().zip(&keys) {
            assert_eq!(layer["mediaType"], PAYLOAD_MEDIA_TYPE);
            let hex = layer["digest"].as_str().unwrap().strip_prefix("sha256:").unwrap();
            let payload = fs::read(copy.join(hex)).unwrap();
            let expected = Payload::new(format!("{}/plugins/answer", registry.addr), &digest);
            assert_eq!(Payload::parse(&payload).unwrap(), expected);
            let signature = layer["annotations"][SIGNATURE_ANNOTATION].as_str().unwrap();
            assert!(key.public_key().verify(&payload, signature).unwrap());
        }
    }

    /// `2.3.4+zzz` beside `2.3.4` would be one version to the host (`=2.3.4` matches both):
    /// refused with and without `--force`, which replaces only the version it names.
    #[test]
    fn never_publishes_a_version_beside_one_that_differs_only_in_build_metadata() {
        let sh = project_shell();
        let work = tempfile::tempdir().unwrap();
        let store = work.path().join("store");
        let to = format!("dir:{}", store.display());
        let first = plugin_file(work.path(), "answer", 1);
        publish(&first, "2.3.4", &to, false).run(&sh).unwrap();
        let second = plugin_file(&work.path().join("."), "answer", 2);
        for force in [false, true] {
            let error = publish(&second, "2.3.4+zzz", &to, force).run(&sh).unwrap_err().to_string();
            assert!(error.contains("answer 2.3.4, which differs from 2.3.4+zzz only in build metadata"), "{error}");
            assert!(error.contains("`--version 2.3.4 --force`"), "{error}");
        }
        // Other precedences are other versions: a patch, a pre-release, both with metadata.
        for version in ["2.3.5+zzz", "2.3.4-rc.1+zzz", "2.3.3"] {
            publish(&second, version, &to, false).run(&sh).unwrap();
        }
        // `--force` replaces the version named.
        publish(&second, "2.3.4", &to, true).run(&sh).unwrap();
        assert_eq!(fs::read(store.join("answer/2.3.4.wasm")).unwrap(), fs::read(&second).unwrap());
        let mut held: Vec<_> = fs::read_dir(store.join("answer"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        held.sort();
        assert_eq!(held, ["2.3.3.wasm", "2.3.4-rc.1+zzz.wasm", "2.3.4.wasm", "2.3.5+zzz.wasm"], "nothing else written");

        // A store that already holds two (written by hand) is not made worse, even by --force,
        // and the message names every one.
        fs::write(store.join("answer/2.3.5+aaa.wasm"), fs::read(&first).unwrap()).unwrap();
        let error = publish(&first, "2.3.5", &to, true).run(&sh).unwrap_err().to_string();
        assert!(error.contains("answer 2.3.5+aaa, 2.3.5+zzz, which differs"), "{error}");
    }

    #[test]
    fn refuses_a_plugin_that_breaks_the_abi_and_a_version_that_is_not_semver() {
        let sh = project_shell();
        let work = tempfile::tempdir().unwrap();
        let broken = work.path().join("broken.wasm");
        fs::write(
            &broken,
            wat::parse_str(r#"(module (func (export "init") (result i32) f32.const 1 drop i32.const 0))"#).unwrap(),
        )
        .unwrap();
        let to = format!("dir:{}", work.path().join("store").display());
        let error = publish(&broken, "1.0.0", &to, false).run(&sh).unwrap_err();
        assert!(error.to_string().contains("breaks the plugin ABI"), "{error:#}");
        assert!(!work.path().join("store/broken").exists(), "nothing was written");

        let good = plugin_file(work.path(), "good", 1);
        for bad in ["1.0", "v1.0.0", "latest", "01.0.0"] {
            let error = publish(&good, bad, &to, false).run(&sh).unwrap_err();
            assert!(error.to_string().contains("not a semantic version"), "{bad}: {error:#}");
        }
    }

    fn skopeo_inspect(registry: &crate::test_support::Registry, reference: &str, raw: bool) -> serde_json::Value {
        let sh = project_shell();
        // `--config` goes before the reference.
        let (config, reference) = match reference.strip_prefix("--config ") {
            Some(reference) => (Some("--config"), reference),
            None => (None, reference),
        };
        let target = format!("docker://{}/{reference}", registry.addr);
        let raw = if raw { Some("--raw") } else { None };
        let text = cmd!(sh, "skopeo inspect --tls-verify=false {config...} {raw...} {target}").quiet().read().unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// A v2 plugin with a 20-byte configuration buffer (16 bytes of configuration).
    fn configurable_plugin(dir: &Path) -> PathBuf {
        let wat = r#"(module (memory (export "memory") 1)
            (func (export "plugin_input_ptr") (result i32) i32.const 1024)
            (func (export "plugin_input_capacity") (result i32) i32.const 256)
            (func (export "plugin_output_ptr") (result i32) i32.const 2048)
            (func (export "plugin_output_capacity") (result i32) i32.const 256)
            (func (export "plugin_config_ptr") (result i32) i32.const 4096)
            (func (export "plugin_config_capacity") (result i32) i32.const 20)
            (func (export "init") (result i32) i32.const 0)
            (func (export "cleanup") (result i32) i32.const 0)
            (func (export "fn_echo") (param i32) (result i32) local.get 0)
            (@custom "wasm_plugin_abi" "\02\00\00\00"))"#;
        let path = dir.join("configured.wasm");
        fs::write(&path, wat::parse_str(wat).unwrap()).unwrap();
        path
    }

    /// `--config`: checked (JSON, within the buffer, a plugin that has one), then written beside
    /// the version in a folder and as the manifest's annotation in a registry; never printed.
    #[test]
    fn publishes_a_configuration_with_a_version() {
        let sh = project_shell();
        let work = tempfile::tempdir().unwrap();
        let plugin = configurable_plugin(work.path());
        let store = work.path().join("store");
        let to = format!("dir:{}", store.display());
        let config = work.path().join("c.json");
        let with_config =
            |path: &Path| Publish { config: Some(path.to_path_buf()), ..publish(&plugin, "1.0.0", &to, false) };

        fs::write(&config, r#"{"k": "s3cr3t" "#).unwrap();
        let error = format!("{:#}", with_config(&config).run(&sh).unwrap_err());
        assert!(error.contains("not well-formed JSON") && !error.contains("s3cr3t"), "{error}");
        fs::write(&config, r#"{"key": "0123456789"}"#).unwrap();
        let error = format!("{:#}", with_config(&config).run(&sh).unwrap_err());
        assert!(error.contains("over the plugin's configuration buffer, which holds 16"), "{error}");
        let v1 = plugin_file(work.path(), "answer", 1);
        fs::write(&config, r#"{"k": 1}"#).unwrap();
        let error = format!(
            "{:#}",
            Publish { config: Some(config.clone()), ..publish(&v1, "1.0.0", &to, false) }.run(&sh).unwrap_err()
        );
        assert!(error.contains("declares no configuration buffer"), "{error}");
        assert!(!store.exists(), "nothing was written");

        with_config(&config).run(&sh).unwrap();
        assert_eq!(fs::read_to_string(store.join("configured/1.0.0.config.json")).unwrap(), r#"{"k": 1}"#);
        assert!(store.join("configured/1.0.0.wasm").is_file());

        let registry = crate::test_support::Registry::start(None);
        let to = format!("{}/plugins", registry.addr);
        Publish { config: Some(config.clone()), ..publish(&plugin, "1.0.0", &to, false) }.run(&sh).unwrap();
        let manifest = skopeo_inspect(&registry, "plugins/configured:1.0.0", true);
        assert_eq!(manifest["annotations"][ANNOTATION_CONFIG], r#"{"k": 1}"#, "{manifest}");
    }

    /// What `publish` pushes is a CNCF Wasm artifact another standard tool reads, with its
    /// annotations; a second publish of the same version is refused unless forced.
    #[test]
    fn publishes_to_a_registry_in_the_cncf_layout_and_never_replaces_a_version_unless_forced() {
        let registry = crate::test_support::Registry::start(None);
        let sh = project_shell();
        let work = tempfile::tempdir().unwrap();
        let first = plugin_file(work.path(), "answer", 1);
        let to = format!("{}/plugins", registry.addr);
        publish(&first, "1.2.0", &to, false).run(&sh).unwrap();

        let manifest = skopeo_inspect(&registry, "plugins/answer:1.2.0", true);
        assert_eq!(manifest["config"]["mediaType"], WASM_CONFIG_MEDIA_TYPE);
        assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);
        assert_eq!(manifest["layers"][0]["mediaType"], WASM_LAYER_MEDIA_TYPE);
        let bytes = fs::read(&first).unwrap();
        assert_eq!(manifest["layers"][0]["size"], bytes.len());
        let annotations = &manifest["annotations"];
        assert_eq!(annotations[ANNOTATION_ABI_VERSION], "1");
        assert_eq!(annotations[ANNOTATION_FUNCTIONS], "init,process,cleanup");
        assert_eq!(annotations[ANNOTATION_VERSION], "1.2.0");
        assert!(annotations[ANNOTATION_REVISION].as_str().unwrap().len() >= 40, "{annotations}");
        assert_eq!(manifest["mediaType"], oci_client::manifest::OCI_IMAGE_MEDIA_TYPE);
        let config = skopeo_inspect(&registry, "--config plugins/answer:1.2.0", true);
        assert_eq!(config["architecture"], "wasm", "{config}");

        let second = plugin_file(&work.path().join("."), "answer", 2);
        let error = publish(&second, "1.2.0", &to, false).run(&sh).unwrap_err();
        assert!(error.to_string().contains("immutable"), "{error:#}");
        let unchanged = skopeo_inspect(&registry, "plugins/answer:1.2.0", true);
        assert_eq!(unchanged["layers"][0]["digest"], manifest["layers"][0]["digest"]);
        publish(&second, "1.2.0", &to, true).run(&sh).unwrap();
        let replaced = skopeo_inspect(&registry, "plugins/answer:1.2.0", true);
        assert_ne!(replaced["layers"][0]["digest"], manifest["layers"][0]["digest"], "--force replaces it");
    }

    /// The registry holds `1.2.0` as tag `1.2.0`; `1.2.0+build.7` (tag `1.2.0_build.7`) would
    /// be the same version to the host: refused, with and without `--force`, and nothing pushed.
    #[test]
    fn never_pushes_a_version_beside_one_that_differs_only_in_build_metadata() {
        let registry = crate::test_support::Registry::start(None);
        let sh = project_shell();
        let work = tempfile::tempdir().unwrap();
        let to = format!("{}/plugins", registry.addr);
        let first = plugin_file(work.path(), "answer", 1);
        publish(&first, "1.2.0+build.7", &to, false).run(&sh).unwrap();
        let second = plugin_file(&work.path().join("."), "answer", 2);
        for force in [false, true] {
            let error = publish(&second, "1.2.0", &to, force).run(&sh).unwrap_err().to_string();
            assert!(error.contains("plugins/answer holds answer 1.2.0+build.7, which differs from 1.2.0"), "{error}");
        }
        let tags = |sh: &Shell| {
            let target = format!("docker://{}/plugins/answer", registry.addr);
            let text = cmd!(sh, "skopeo list-tags --tls-verify=false {target}").quiet().read().unwrap();
            serde_json::from_str::<serde_json::Value>(&text).unwrap()["Tags"].clone()
        };
        assert_eq!(tags(&sh), serde_json::json!(["1.2.0_build.7"]), "nothing was pushed");
        publish(&second, "1.2.1", &to, false).run(&sh).unwrap();
        publish(&second, "1.2.0+build.7", &to, true).run(&sh).unwrap();
        let mut pushed: Vec<String> = serde_json::from_value(tags(&sh)).unwrap();
        pushed.sort();
        assert_eq!(pushed, ["1.2.0_build.7", "1.2.1"]);
    }

    /// The registry `cargo xtask registry` runs speaks plain HTTP: publishing without
    /// `--insecure` says so, instead of a TLS error about a corrupt message.
    #[test]
    fn publishing_to_a_plain_http_registry_without_insecure_says_to_pass_it() {
        let registry = crate::test_support::Registry::start(None);
        let sh = project_shell();
        let work = tempfile::tempdir().unwrap();
        let plugin = plugin_file(work.path(), "answer", 1);
        let mut secure = publish(&plugin, "1.0.0", &format!("{}/plugins", registry.addr), false);
        secure.insecure = false;
        let error = format!("{:#}", secure.run(&sh).unwrap_err());
        assert!(error.contains("pass --insecure"), "{error}");
        assert!(!error.contains("corrupt"), "{error}");
        // Nothing there at all is still a connection error, not advice about HTTP.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let mut nowhere = publish(&plugin, "1.0.0", &format!("{closed}/plugins"), false);
        nowhere.insecure = false;
        let error = format!("{:#}", nowhere.run(&sh).unwrap_err());
        assert!(!error.contains("--insecure"), "{error}");
    }

    #[test]
    fn publishes_with_credentials_to_a_registry_that_requires_them() {
        let registry = crate::test_support::Registry::start(Some(("alice", "s3cret")));
        let sh = project_shell();
        let work = tempfile::tempdir().unwrap();
        let plugin = plugin_file(work.path(), "answer", 1);
        let to = format!("{}/plugins", registry.addr);
        let error = publish(&plugin, "1.0.0", &to, false).run(&sh).unwrap_err();
        assert!(format!("{error:#}").to_lowercase().contains("auth"), "{error:#}");
        let mut with_credentials = publish(&plugin, "1.0.0", &to, false);
        with_credentials.username = Some("alice".into());
        with_credentials.password = Some("s3cret".into());
        with_credentials.run(&sh).unwrap();
    }
}
