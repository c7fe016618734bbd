//! The bearer tokens file (`--tokens-file`): who may call, read as JSON, kept current while the
//! server runs.
//!
//! ```json
//! {"clients": [{"name": "billing", "token_sha256": "<64 hex digits>", "plugins": ["text*", "redact"],
//!               "listings": true, "metrics": false}]}
//! ```
//!
//! Tokens are stored as their SHA-256, never in clear. A fast hash is enough, and a slow one
//! (bcrypt, argon2) would be wrong here: those exist to protect passwords people chose, which
//! can be guessed, and they cost tens of milliseconds on purpose; a token is checked on every
//! request, and tokens are long random strings (32 random bytes, see the README), which nobody
//! can guess from their SHA-256. The presented token is hashed and the hashes are compared in
//! constant time, so the answer's timing says nothing about how close a guess was.
//!
//! The file is looked at (one `stat`, as the plugin stores do for plugin files) on every
//! authenticated request and read again when it changed: a rewrite, a rename over it, or a
//! Kubernetes Secret update, which swaps the mount's `..data` symlink to a new folder (the
//! path's target, and so its inode, changes). A file that cannot be read or parsed keeps the
//! last good set in force, with one warning per change of the file that names the path and the
//! line, never its contents.

use std::{
    collections::HashSet,
    fs,
    io::Read,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::Arc,
};

use globset::{Glob, GlobSet, GlobSetBuilder};
use parking_lot::RwLock;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Largest tokens file read: thousands of clients fit; a file much larger is a mistake.
pub const MAX_TOKENS_FILE_BYTES: u64 = 1 << 20;

/// The file's shape. Unknown fields are refused, so a misspelt permission is an error rather
/// than a permission silently not granted (or not taken away).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    clients: Vec<ClientEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientEntry {
    /// Who the client is: in logs and in the `client` label of the metrics.
    name: String,
    /// SHA-256 of the token, in hex.
    token_sha256: String,
    /// Glob patterns of the plugin names the client may call (`*`, `text*`, `sha?56`); none:
    /// no plugin.
    #[serde(default)]
    plugins: Vec<String>,
    /// Whether the client may read `GET /plugins...` (and `/openapi.json`).
    #[serde(default)]
    listings: bool,
    /// Whether the client may read `GET /metrics`.
    #[serde(default)]
    metrics: bool,
}

/// Never prints the hash.
impl std::fmt::Debug for ClientEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientEntry").field("name", &self.name).finish_non_exhaustive()
    }
}

/// One client a token identifies, and what it may do.
pub struct Client {
    name: Arc<str>,
    token_sha256: [u8; 32],
    plugins: GlobSet,
    listings: bool,
    metrics: bool,
}

/// Never prints the hash.
impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("name", &self.name)
            .field("listings", &self.listings)
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// The client's name, as the tokens file gives it.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Whether the client may call the plugin named `plugin`.
    pub fn may_call(&self, plugin: &str) -> bool {
        self.plugins.is_match(plugin)
    }

    /// Whether the client may read the listings (`/plugins...`, `/openapi.json`).
    pub fn may_list(&self) -> bool {
        self.listings
    }

    /// Whether the client may read `/metrics`.
    pub fn may_read_metrics(&self) -> bool {
        self.metrics
    }
}

/// The clients of one version of the tokens file.
#[derive(Debug, Default)]
pub struct TokenSet {
    clients: Vec<Arc<Client>>,
}

impl TokenSet {
    /// Parses and checks a tokens file. The error never quotes the file: it may hold a token
    /// pasted into the wrong field.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: TokensFile = serde_json::from_str(text).map_err(|error| {
            let what = match error.classify() {
                serde_json::error::Category::Data => "does not have the expected fields and types",
                serde_json::error::Category::Eof => "ends too early",
                _ => "is not valid JSON",
            };
            format!("{what} (line {}, column {})", error.line(), error.column())
        })?;
        let mut names = HashSet::new();
        let mut hashes = HashSet::new();
        let mut clients = Vec::with_capacity(file.clients.len());
        for (index, entry) in file.clients.into_iter().enumerate() {
            let number = index + 1;
            if !is_valid_client_name(&entry.name) {
                return Err(format!(
                    "client #{number}: its name must be 1 to 64 of A-Z a-z 0-9 `_` `.` `-`, starting with a letter or digit"
                ));
            }
            let name = entry.name;
            if !names.insert(name.clone()) {
                return Err(format!("client #{number} (`{name}`): another client has the same name"));
            }
            let token_sha256 = parse_sha256(&entry.token_sha256)
                .ok_or_else(|| format!("client #{number} (`{name}`): `token_sha256` is not 64 hex digits"))?;
            if !hashes.insert(token_sha256) {
                return Err(format!("client #{number} (`{name}`): another client has the same token"));
            }
            let mut plugins = GlobSetBuilder::new();
            for (p, pattern) in entry.plugins.iter().enumerate() {
                let glob = Glob::new(pattern)
                    .map_err(|_| format!("client #{number} (`{name}`): plugin pattern #{} is not a glob", p + 1))?;
                plugins.add(glob);
            }
            let plugins = plugins
                .build()
                .map_err(|_| format!("client #{number} (`{name}`): its plugin patterns do not build"))?;
            clients.push(Arc::new(Client {
                name: name.into(),
                token_sha256,
                plugins,
                listings: entry.listings,
                metrics: entry.metrics,
            }));
        }
        Ok(TokenSet { clients })
    }

    /// The client whose token this is. Every client's hash is compared, in constant time,
    /// whatever matches: the time taken depends on the number of clients only.
    pub fn find(&self, token: &[u8]) -> Option<Arc<Client>> {
        let presented: [u8; 32] = Sha256::digest(token).into();
        let mut found = None;
        for client in &self.clients {
            if bool::from(client.token_sha256.ct_eq(&presented)) {
                found = Some(Arc::clone(client));
            }
        }
        found
    }

    /// How many clients there are.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether there are none (then every request but the probes is refused).
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

/// Client names become metric label values and log fields: short and plain.
fn is_valid_client_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=64).contains(&bytes.len())
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(b))
}

fn parse_sha256(text: &str) -> Option<[u8; 32]> {
    let mut hash = [0; 32];
    hex::decode_to_slice(text, &mut hash).ok()?;
    Some(hash)
}

/// What tells one version of the file from another without reading it (following symlinks,
/// so a Secret's `..data` swap is a new file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    device: u64,
    inode: u64,
    size: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl FileIdentity {
    fn of(meta: &fs::Metadata) -> Self {
        FileIdentity {
            device: meta.dev(),
            inode: meta.ino(),
            size: meta.len(),
            modified: (meta.mtime(), meta.mtime_nsec()),
            changed: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// The tokens in force, read from a file and read again when it changes.
#[derive(Debug)]
pub struct Tokens {
    path: PathBuf,
    loaded: RwLock<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    /// The file as last looked at (`None`: it could not be looked at); the set below is from
    /// this version, or from the last good one if this one is broken.
    seen: Option<FileIdentity>,
    set: Arc<TokenSet>,
}

impl Tokens {
    /// Reads the tokens file; at start-up it must be there and valid.
    pub fn load(path: impl Into<PathBuf>) -> Result<Self, String> {
        let path = path.into();
        let (identity, set) = read(&path)?;
        tracing::info!(path = %path.display(), clients = set.len(), "bearer tokens on");
        warn_if_empty(&set);
        Ok(Tokens { path, loaded: RwLock::new(Loaded { seen: Some(identity), set: Arc::new(set) }) })
    }

    /// The set in force: the file's current version when it is valid, else the last good one.
    pub fn current(&self) -> Arc<TokenSet> {
        let now = fs::metadata(&self.path).ok().map(|meta| FileIdentity::of(&meta));
        {
            let loaded = self.loaded.read();
            if loaded.seen == now {
                return Arc::clone(&loaded.set);
            }
        }
        let mut loaded = self.loaded.write();
        // Another request may have read this version meanwhile.
        if loaded.seen == now {
            return Arc::clone(&loaded.set);
        }
        let path = self.path.display();
        match read(&self.path) {
            Ok((identity, set)) => {
                tracing::info!(%path, clients = set.len(), "bearer tokens reloaded");
                warn_if_empty(&set);
                loaded.seen = Some(identity);
                loaded.set = Arc::new(set);
            }
            Err(error) => {
                tracing::warn!(%path, %error, "the tokens file is not usable; the last good tokens stay in force");
                // Looked at, so that this version is reported once, not on every request.
                loaded.seen = now;
            }
        }
        Arc::clone(&loaded.set)
    }
}

/// A file without clients is valid (the deploy/ base ships one), but nobody can call.
fn warn_if_empty(set: &TokenSet) {
    if set.is_empty() {
        tracing::warn!("the tokens file has no clients: every request but /healthz and /readyz is refused");
    }
}

/// Reads and parses the file, with the identity of exactly the version read.
fn read(path: &Path) -> Result<(FileIdentity, TokenSet), String> {
    let file = fs::File::open(path).map_err(|error| format!("cannot open it: {error}"))?;
    let meta = file.metadata().map_err(|error| format!("cannot stat it: {error}"))?;
    if !meta.is_file() {
        return Err("it is not a regular file".into());
    }
    if meta.len() > MAX_TOKENS_FILE_BYTES {
        return Err(format!("it is over {MAX_TOKENS_FILE_BYTES} bytes"));
    }
    let mut text = String::new();
    file.take(MAX_TOKENS_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|error| format!("cannot read it as UTF-8 text: {error}"))?;
    let set = TokenSet::parse(&text)?;
    Ok((FileIdentity::of(&meta), set))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(token: &str) -> String {
        hex::encode(Sha256::digest(token.as_bytes()))
    }

    #[test]
    fn a_token_finds_its_client_and_its_permissions() {
        let text = serde_json::json!({"clients": [
            {"name": "billing", "token_sha256": hash("tok-a"), "plugins": ["text*", "redact"], "listings": true},
            {"name": "prometheus", "token_sha256": hash("tok-b").to_uppercase(), "metrics": true},
        ]})
        .to_string();
        let set = TokenSet::parse(&text).unwrap();
        let billing = set.find(b"tok-a").unwrap();
        assert_eq!(&**billing.name(), "billing");
        assert!(billing.may_call("text") && billing.may_call("text_zig") && billing.may_call("redact"));
        assert!(!billing.may_call("sha256") && !billing.may_call("redacted"));
        assert!(billing.may_list() && !billing.may_read_metrics());
        let prometheus = set.find(b"tok-b").unwrap();
        assert!(!prometheus.may_call("hello") && !prometheus.may_list() && prometheus.may_read_metrics());
        assert!(set.find(b"tok-c").is_none() && set.find(b"").is_none());
    }

    #[test]
    fn a_broken_file_is_refused_without_quoting_it() {
        let secret = "s3cr3t-t0ken-value";
        let cases = [
            (format!(r#"{{"clients": [{{"name": "a", "token_sha256": "{secret}"}}]}}"#), "not 64 hex digits"),
            (format!(r#"{{"clients": [{{"name": "a", "token": "{secret}"}}]}}"#), "expected fields"),
            (format!(r#"{{"clients": [{{"name": "a", "listings": "{secret}"}}]}}"#), "expected fields"),
            (format!(r#"{{"clients": [{secret}"#), "not valid JSON"),
            (format!(r#"{{"clients": [{{"name": "{secret} x", "token_sha256": "{}"}}]}}"#, hash("t")), "name must"),
            (
                format!(
                    r#"{{"clients": [{{"name": "a", "token_sha256": "{0}"}}, {{"name": "b", "token_sha256": "{0}"}}]}}"#,
                    hash(secret)
                ),
                "same token",
            ),
            (
                format!(
                    r#"{{"clients": [{{"name": "a", "token_sha256": "{}", "plugins": ["[{secret}"]}}]}}"#,
                    hash("t")
                ),
                "not a glob",
            ),
        ];
        for (text, expected) in cases {
            let error = TokenSet::parse(&text).unwrap_err();
            assert!(error.contains(expected), "{error:?} for {text}");
            assert!(!error.contains("s3cr3t") && !error.contains(&hash(secret)), "{error:?} quotes the file");
        }
    }
}
