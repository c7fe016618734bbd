//! Whose plugins run: the trust policy (which keys must have signed what) and its verdicts.
//!
//! The policy is a JSON file (`--trust-policy`) of rules, each for a prefix of a plugin's
//! reference: for the OCI store `<registry>/<repository>` (`127.0.0.1:5000/plugins/hello`), for
//! the folder and Fluid stores the plugin's name. The longest matching prefix decides (a
//! prefix matches whole path segments: `a/b` covers `a/b` and `a/b/c`, not `a/bc`; `""` covers
//! everything). A rule either names trusted public keys (PEM files, relative to the policy
//! file) and whether `any` of them or `all` of them must have signed, or allows unsigned
//! plugins. A reference no rule covers is refused: a policy says what runs.
//!
//! The signature format itself (payloads, ECDSA, keys) is `plugin_signature`'s; this module
//! only decides. It never logs or returns key material, only key ids.

use std::{fs, path::Path};

use plugin_signature::{Payload, PublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::failure::FailureKind;

/// The trust policy: rules by reference prefix. See the module documentation.
#[derive(Debug, Clone)]
pub struct TrustPolicy {
    /// Longest prefix first.
    rules: Vec<Rule>,
    /// Changes whenever a rule or a key changes: verdicts kept on disk are only reused under the
    /// policy that made them.
    fingerprint: String,
}

#[derive(Debug, Clone)]
struct Rule {
    prefix: String,
    requirement: Requirement,
}

#[derive(Debug, Clone)]
enum Requirement {
    AllowUnsigned,
    Keys { keys: Vec<PublicKey>, all: bool },
}

/// The policy file's form.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    rules: Vec<RuleFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    prefix: String,
    /// PEM files (relative to the policy file) or PEM text.
    #[serde(default)]
    keys: Vec<String>,
    /// `any` (default) or `all`.
    #[serde(default)]
    require: Option<Quorum>,
    #[serde(default)]
    allow_unsigned: bool,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Quorum {
    Any,
    All,
}

/// Why a plugin version is refused; each is a failure kind with a stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The policy requires a signature and there is none.
    SignatureMissing,
    /// There are signatures, but none is well-formed and for this very plugin and digest (a
    /// payload of another repository or digest, a replayed signature, garbage).
    SignatureInvalid,
    /// Signatures for this plugin and digest exist, but not by the keys the policy trusts (or
    /// not by all of them), or the signed bytes were altered; also a plugin no rule covers.
    UntrustedSigner,
}

impl Refusal {
    pub fn kind(self) -> FailureKind {
        match self {
            Refusal::SignatureMissing => FailureKind::SignatureMissing,
            Refusal::SignatureInvalid => FailureKind::SignatureInvalid,
            Refusal::UntrustedSigner => FailureKind::UntrustedSigner,
        }
    }
}

/// The policy's answer about one plugin version, as listings show it (`"signature"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Signed by trusted keys: `signers` are their ids.
    Verified { signers: Vec<String> },
    /// The policy allows this reference unsigned; no signature was looked at.
    UnsignedAllowed,
    /// Refused: never compiled or run. `code` is the failure's stable code.
    Refused { code: Refusal, message: String },
    /// Not checked yet (a listing that did not ask the registry); a call checks it first.
    Unchecked,
}

impl Verdict {
    fn refused(code: Refusal, message: impl Into<String>) -> Self {
        Verdict::Refused { code, message: message.into() }
    }

    /// Whether the plugin may run.
    pub fn allows(&self) -> bool {
        matches!(self, Verdict::Verified { .. } | Verdict::UnsignedAllowed)
    }
}

/// One signature found for a plugin version: the payload's bytes and the base64 signature.
#[derive(Debug, Clone)]
pub struct Signature {
    pub payload: Vec<u8>,
    pub signature: String,
}

impl TrustPolicy {
    /// Reads the policy file; key files are relative to its folder. Errors name the file and
    /// the rule, never key material.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = fs::read_to_string(path).map_err(|error| format!("{}: {error}", path.display()))?;
        Self::parse(&text, path.parent().unwrap_or(Path::new(".")))
            .map_err(|error| format!("{}: {error}", path.display()))
    }

    /// A policy from its JSON text; key paths are relative to `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, String> {
        let file: PolicyFile = serde_json::from_str(text).map_err(|error| error.to_string())?;
        let mut rules = Vec::new();
        for rule in file.rules {
            let prefix = rule.prefix.trim_end_matches('/').to_string();
            let requirement = match (rule.allow_unsigned, rule.keys.is_empty(), rule.require) {
                (true, true, None) => Requirement::AllowUnsigned,
                (true, _, _) => {
                    return Err(format!("rule `{prefix}`: `allow_unsigned` takes no `keys` or `require`"));
                }
                (false, true, _) => return Err(format!("rule `{prefix}`: no `keys` (or `allow_unsigned: true`)")),
                (false, false, quorum) => {
                    let mut keys: Vec<PublicKey> = Vec::new();
                    for key in &rule.keys {
                        let key = load_key(key, base).map_err(|error| format!("rule `{prefix}`: {error}"))?;
                        // The same key named twice is one signer (`all` must stay satisfiable).
                        if !keys.contains(&key) {
                            keys.push(key);
                        }
                    }
                    Requirement::Keys { keys, all: matches!(quorum, Some(Quorum::All)) }
                }
            };
            if rules.iter().any(|r: &Rule| r.prefix == prefix) {
                return Err(format!("two rules for the prefix `{prefix}`"));
            }
            rules.push(Rule { prefix, requirement });
        }
        rules.sort_by_key(|rule| std::cmp::Reverse(rule.prefix.len()));
        let mut hasher = Sha256::new();
        for rule in &rules {
            hasher.update(format!("{}\0", rule.prefix));
            match &rule.requirement {
                Requirement::AllowUnsigned => hasher.update("unsigned\0"),
                Requirement::Keys { keys, all } => {
                    hasher.update(if *all { "all\0" } else { "any\0" });
                    for key in keys {
                        hasher.update(key.to_pem());
                    }
                }
            }
        }
        Ok(TrustPolicy { rules, fingerprint: hex::encode(&hasher.finalize()[..8]) })
    }

    /// Identifies the policy's rules and keys (not secret: a hash).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    fn rule_for(&self, reference: &str) -> Option<&Rule> {
        self.rules.iter().find(|rule| {
            rule.prefix.is_empty()
                || reference == rule.prefix
                || reference.strip_prefix(&rule.prefix).is_some_and(|rest| rest.starts_with('/'))
        })
    }

    /// Whether `reference` may run unsigned, so that its signatures need not even be fetched.
    pub fn allows_unsigned(&self, reference: &str) -> bool {
        matches!(self.rule_for(reference), Some(Rule { requirement: Requirement::AllowUnsigned, .. }))
    }

    /// The verdict on the content with digest `digest` (`sha256:<hex>`) of `reference`, given
    /// the signatures found for it. Only a signature whose payload names exactly this
    /// reference and digest counts: one made for another digest or repository (replayed)
    /// verifies nothing here, whoever signed it.
    pub fn judge(&self, reference: &str, digest: &str, signatures: &[Signature]) -> Verdict {
        let Some(rule) = self.rule_for(reference) else {
            return Verdict::refused(Refusal::UntrustedSigner, "no rule of the trust policy covers it");
        };
        let (keys, all) = match &rule.requirement {
            Requirement::AllowUnsigned => return Verdict::UnsignedAllowed,
            Requirement::Keys { keys, all } => (keys, *all),
        };
        if signatures.is_empty() {
            return Verdict::refused(
                Refusal::SignatureMissing,
                "it is not signed, and the trust policy requires a signature",
            );
        }
        let mut bound = 0;
        let mut invalid = None;
        let mut signers: Vec<&PublicKey> = Vec::new();
        for signature in signatures {
            let payload = match Payload::parse(&signature.payload) {
                Ok(payload) => payload,
                Err(error) => {
                    invalid.get_or_insert_with(|| error.to_string());
                    continue;
                }
            };
            if payload.manifest_digest != digest {
                invalid.get_or_insert_with(|| {
                    format!("its signature is for {}, not for {digest}", payload.manifest_digest)
                });
                continue;
            }
            if payload.docker_reference != reference {
                invalid.get_or_insert_with(|| {
                    format!("its signature is for `{}`, not for `{reference}`", payload.docker_reference)
                });
                continue;
            }
            bound += 1;
            for key in keys {
                match key.verify(&signature.payload, &signature.signature) {
                    Ok(true) if !signers.contains(&key) => signers.push(key),
                    Ok(_) => {}
                    Err(error) => {
                        invalid.get_or_insert_with(|| error.to_string());
                    }
                }
            }
        }
        if bound == 0 {
            let why = invalid.unwrap_or_else(|| "no signature names it".to_string());
            return Verdict::refused(Refusal::SignatureInvalid, why);
        }
        let ids = |keys: &[&PublicKey]| keys.iter().map(|key| key.id()).collect::<Vec<_>>();
        if signers.is_empty() {
            return Verdict::refused(
                Refusal::UntrustedSigner,
                "no trusted key verifies its signature (signed by another key, or altered after signing)",
            );
        }
        if all && signers.len() < keys.len() {
            let missing: Vec<&PublicKey> = keys.iter().filter(|key| !signers.contains(key)).collect();
            return Verdict::refused(
                Refusal::UntrustedSigner,
                format!(
                    "the trust policy requires all of its {} keys; not signed by {}",
                    keys.len(),
                    ids(&missing).join(", ")
                ),
            );
        }
        Verdict::Verified { signers: ids(&signers) }
    }
}

fn load_key(key: &str, base: &Path) -> Result<PublicKey, String> {
    if key.trim_start().starts_with("-----BEGIN") {
        return PublicKey::from_pem(key).map_err(|error| error.to_string());
    }
    let path = base.join(key);
    let pem = fs::read_to_string(&path).map_err(|error| format!("key {}: {error}", path.display()))?;
    PublicKey::from_pem(&pem).map_err(|error| format!("key {}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use plugin_signature::PrivateKey;

    use super::*;

    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const OTHER: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn policy(rules: &str, keys: &[(&str, &PrivateKey)]) -> (TrustPolicy, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        for (name, key) in keys {
            fs::write(dir.path().join(name), key.public_key().to_pem()).unwrap();
        }
        let path = dir.path().join("policy.json");
        fs::write(&path, rules).unwrap();
        (TrustPolicy::from_file(&path).unwrap(), dir)
    }

    fn signed(key: &PrivateKey, reference: &str, digest: &str) -> Signature {
        let payload = Payload::new(reference, digest).to_bytes();
        Signature { signature: key.sign(&payload), payload }
    }

    fn code(verdict: Verdict) -> Option<Refusal> {
        match verdict {
            Verdict::Refused { code, .. } => Some(code),
            _ => None,
        }
    }

    #[test]
    fn judges_by_the_longest_prefix_and_binds_reference_and_digest() {
        let (a, b) = (PrivateKey::generate(), PrivateKey::generate());
        let rules = r#"{"rules": [
            {"prefix": "r/plugins", "keys": ["a.pub"]},
            {"prefix": "r/plugins/team/", "keys": ["a.pub", "b.pub"], "require": "all"},
            {"prefix": "r/plugins/dev", "allow_unsigned": true}
        ]}"#;
        let (policy, _dir) = policy(rules, &[("a.pub", &a), ("b.pub", &b)]);
        let hello = "r/plugins/hello";
        assert!(policy.judge(hello, DIGEST, &[signed(&a, hello, DIGEST)]).allows());
        assert_eq!(code(policy.judge(hello, DIGEST, &[])), Some(Refusal::SignatureMissing));
        assert_eq!(code(policy.judge(hello, DIGEST, &[signed(&b, hello, DIGEST)])), Some(Refusal::UntrustedSigner));
        // A trusted signature of another digest or repository, replayed here.
        assert_eq!(code(policy.judge(hello, DIGEST, &[signed(&a, hello, OTHER)])), Some(Refusal::SignatureInvalid));
        assert_eq!(
            code(policy.judge(hello, DIGEST, &[signed(&a, "r/plugins/x", DIGEST)])),
            Some(Refusal::SignatureInvalid)
        );
        // Altered payload bytes, same signature.
        let mut altered = signed(&a, hello, DIGEST);
        altered.payload = Payload::new(hello, DIGEST).to_bytes().into_iter().chain(*b" ").collect();
        assert_eq!(code(policy.judge(hello, DIGEST, &[altered])), Some(Refusal::UntrustedSigner));

        let team = "r/plugins/team/x";
        assert_eq!(code(policy.judge(team, DIGEST, &[signed(&a, team, DIGEST)])), Some(Refusal::UntrustedSigner));
        let both = [signed(&a, team, DIGEST), signed(&b, team, DIGEST)];
        assert_eq!(
            policy.judge(team, DIGEST, &both),
            Verdict::Verified { signers: vec![a.public_key().id(), b.public_key().id()] }
        );
        assert_eq!(policy.judge("r/plugins/dev/x", DIGEST, &[]), Verdict::UnsignedAllowed);
        assert_eq!(code(policy.judge("r/pluginsx/y", DIGEST, &[])), Some(Refusal::UntrustedSigner), "no rule");
    }

    #[test]
    fn refuses_policies_that_say_nothing_or_too_much() {
        let dir = tempfile::tempdir().unwrap();
        for bad in [
            r#"{"rules": [{"prefix": "a"}]}"#,
            r#"{"rules": [{"prefix": "a", "allow_unsigned": true, "keys": ["k"]}]}"#,
            r#"{"rules": [{"prefix": "a", "keys": ["missing.pub"]}]}"#,
            r#"{"rules": [{"prefix": "a", "allow_unsigned": true}, {"prefix": "a/", "allow_unsigned": true}]}"#,
            r#"{"rules": [], "extra": 1}"#,
        ] {
            assert!(TrustPolicy::parse(bad, dir.path()).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_fingerprint_follows_the_keys() {
        let (a, b) = (PrivateKey::generate(), PrivateKey::generate());
        let rules = r#"{"rules": [{"prefix": "", "keys": ["k.pub"]}]}"#;
        let (first, _d1) = policy(rules, &[("k.pub", &a)]);
        let (same, _d2) = policy(rules, &[("k.pub", &a)]);
        let (other, _d3) = policy(rules, &[("k.pub", &b)]);
        assert_eq!(first.fingerprint(), same.fingerprint());
        assert_ne!(first.fingerprint(), other.fingerprint());
    }
}
