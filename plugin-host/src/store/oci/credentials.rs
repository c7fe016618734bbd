//! Registry credentials: given explicitly, or read from a Docker `config.json`.

use std::{
    fs,
    path::{Path, PathBuf},
};

use base64::Engine as _;

/// How the store signs in to its registry.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    /// No credentials (a public or local registry). The default.
    #[default]
    Anonymous,
    /// HTTP Basic credentials (the registry may exchange them for a bearer token).
    Basic { username: String, password: String },
}

/// Never prints the password.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <password>)"),
        }
    }
}

impl Credentials {
    pub(super) fn to_registry_auth(&self) -> oci_client::secrets::RegistryAuth {
        match self {
            Credentials::Anonymous => oci_client::secrets::RegistryAuth::Anonymous,
            Credentials::Basic { username, password } => {
                oci_client::secrets::RegistryAuth::Basic(username.clone(), password.clone())
            }
        }
    }

    /// Where Docker (and podman, skopeo with `--authfile`, ...) keep credentials:
    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    pub fn docker_config_path() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
            return Some(Path::new(&dir).join("config.json"));
        }
        std::env::var_os("HOME").map(|home| Path::new(&home).join(".docker/config.json"))
    }

    /// The credentials a Docker `config.json` holds for `registry` (`host[:port]`), from its
    /// `auths` section (`auth`, base64 of `user:password`, or `username` and `password`).
    /// Credential helpers (`credsStore`, `credHelpers`) are not run. A file that is absent
    /// means no credentials; one that cannot be read or parsed is an error.
    pub fn from_docker_config(path: &Path, registry: &str) -> Result<Option<Credentials>, String> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(format!("reading {}: {error}", path.display())),
        };
        let config: serde_json::Value =
            serde_json::from_str(&text).map_err(|error| format!("parsing {}: {error}", path.display()))?;
        let Some(auths) = config.get("auths").and_then(|auths| auths.as_object()) else {
            return Ok(None);
        };
        // Docker writes keys as `host:port` or as a URL (`https://host:port/v1/`).
        let entry = auths.iter().find(|(key, _)| {
            let key = key.trim_start_matches("https://").trim_start_matches("http://");
            key.split('/').next() == Some(registry)
        });
        let Some((_, entry)) = entry else {
            return Ok(None);
        };
        let text = |field: &str| entry.get(field).and_then(|v| v.as_str()).filter(|v| !v.is_empty());
        if let Some(encoded) = text("auth") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|error| format!("{}: the `auth` of {registry} is not base64: {error}", path.display()))?;
            let decoded = String::from_utf8(decoded)
                .map_err(|_| format!("{}: the `auth` of {registry} is not UTF-8", path.display()))?;
            let (username, password) = decoded
                .split_once(':')
                .ok_or_else(|| format!("{}: the `auth` of {registry} is not `user:password`", path.display()))?;
            return Ok(Some(Credentials::Basic { username: username.into(), password: password.into() }));
        }
        match (text("username"), text("password")) {
            (Some(username), Some(password)) => {
                Ok(Some(Credentials::Basic { username: username.into(), password: password.into() }))
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_forms_of_docker_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret:with-colon");
        let config = serde_json::json!({"auths": {
            "127.0.0.1:5000": {"auth": auth},
            "https://registry.example:443/v1/": {"username": "bob", "password": "pw"},
        }});
        fs::write(&path, config.to_string()).unwrap();
        let basic = |u: &str, p: &str| Some(Credentials::Basic { username: u.into(), password: p.into() });
        assert_eq!(
            Credentials::from_docker_config(&path, "127.0.0.1:5000").unwrap(),
            basic("alice", "s3cret:with-colon")
        );
        assert_eq!(Credentials::from_docker_config(&path, "registry.example:443").unwrap(), basic("bob", "pw"));
        assert_eq!(Credentials::from_docker_config(&path, "elsewhere:5000").unwrap(), None);
        assert_eq!(Credentials::from_docker_config(&dir.path().join("absent.json"), "x").unwrap(), None);
        fs::write(&path, "{not json").unwrap();
        assert!(Credentials::from_docker_config(&path, "x").is_err());
        assert!(!format!("{:?}", basic("alice", "s3cret").unwrap()).contains("s3cret"));
    }
}
