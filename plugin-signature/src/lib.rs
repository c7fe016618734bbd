//! The signature format of plugins, in one place for the host (which verifies) and xtask (which
//! signs): cosign's simple-signing payload, ECDSA P-256 signatures over it, and PEM keys.
//!
//! A registry signature follows cosign's specification (`specs/SIGNATURE_SPEC.md` in
//! sigstore/cosign): for the manifest `sha256:<hex>` in repository `R`, the OCI artifact tagged
//! `sha256-<hex>.sig` in `R` has a layer of media type [`PAYLOAD_MEDIA_TYPE`] holding the
//! [`Payload`], and that layer's annotation [`SIGNATURE_ANNOTATION`] holds the base64 ASN.1 DER
//! ECDSA P-256 signature of the payload's bytes (SHA-256). Public keys are PEM
//! SubjectPublicKeyInfo (what `cosign public-key` prints); private keys are PKCS#8 PEM
//! (unencrypted, or SEC1 `EC PRIVATE KEY`): cosign's own encrypted key format is not read.
//!
//! A plugin file in a folder carries a [`DetachedSignature`] beside it: the same payload, bound to
//! the plugin's name and the file's SHA-256, and its signature, as one JSON document.

use base64::{Engine, engine::general_purpose::STANDARD};
use p256::{
    ecdsa::{
        DerSignature, SigningKey, VerifyingKey,
        signature::{Signer, Verifier},
    },
    pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding},
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Media type of the payload layer of a cosign signature artifact.
pub const PAYLOAD_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation that holds the base64 signature of the payload.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// `critical.type` of every cosign signature payload.
pub const PAYLOAD_TYPE: &str = "cosign container image signature";
/// Media type of the (empty JSON) config of a signature artifact, as cosign writes it.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// The file name suffix of a detached signature: `hello.wasm.sig` beside `hello.wasm`.
pub const DETACHED_SUFFIX: &str = ".sig";

/// Why a signature, payload or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("the payload is not a cosign simple-signing payload: {0}")]
    MalformedPayload(String),
    #[error("the signature is not base64 of an ASN.1 DER ECDSA signature")]
    MalformedSignature,
    #[error("not a P-256 public key in PEM (SubjectPublicKeyInfo): {0}")]
    PublicKey(String),
    #[error("not a P-256 private key in PEM (PKCS#8 or SEC1; cosign's encrypted format is not read): {0}")]
    PrivateKey(String),
    #[error("the detached signature is not JSON with `signatures`, each a `payload` and a `signature`: {0}")]
    MalformedDetached(String),
}

/// The tag of the signature artifact of the manifest `sha256:<hex>`: `sha256-<hex>.sig`.
/// `None` for a digest that is not `sha256:` and 64 lowercase hex digits.
pub fn signature_tag(manifest_digest: &str) -> Option<String> {
    let hex = manifest_digest.strip_prefix("sha256:")?;
    is_sha256_hex(hex).then(|| format!("sha256-{hex}.sig"))
}

fn is_sha256_hex(hex: &str) -> bool {
    hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// What a signature vouches for: an identity (the repository, or a plugin's name) and a digest
/// (the manifest's, or a plugin file's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// `critical.identity.docker-reference`: `<registry>/<repository>` without tag, as cosign
    /// writes it, or the plugin's name for a detached signature.
    pub docker_reference: String,
    /// `critical.image.docker-manifest-digest`: `sha256:<hex>`.
    pub manifest_digest: String,
}

#[derive(Serialize, Deserialize)]
struct Document {
    critical: Critical,
    /// Free-form claims; kept `null` when signing, ignored when verifying.
    #[serde(default)]
    optional: Option<serde_json::Value>,
}

#[derive(Serialize, Deserialize)]
struct Critical {
    identity: Identity,
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Serialize, Deserialize)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Serialize, Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

impl Payload {
    pub fn new(docker_reference: impl Into<String>, manifest_digest: impl Into<String>) -> Self {
        Payload { docker_reference: docker_reference.into(), manifest_digest: manifest_digest.into() }
    }

    /// The payload's bytes, exactly as cosign writes them:
    /// `{"critical":{"identity":{"docker-reference":R},"image":{"docker-manifest-digest":D},"type":"cosign container image signature"},"optional":null}`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let document = Document {
            critical: Critical {
                identity: Identity { docker_reference: self.docker_reference.clone() },
                image: Image { docker_manifest_digest: self.manifest_digest.clone() },
                kind: PAYLOAD_TYPE.to_string(),
            },
            optional: None,
        };
        serde_json::to_vec(&document).expect("a payload always serializes")
    }

    /// Reads a payload some signer wrote (field order and `optional` claims do not matter);
    /// refuses one whose `critical.type` is not cosign's.
    pub fn parse(bytes: &[u8]) -> Result<Self, SignatureError> {
        let document: Document =
            serde_json::from_slice(bytes).map_err(|error| SignatureError::MalformedPayload(error.to_string()))?;
        if document.critical.kind != PAYLOAD_TYPE {
            return Err(SignatureError::MalformedPayload(format!(
                "`critical.type` is `{}`, not `{PAYLOAD_TYPE}`",
                document.critical.kind
            )));
        }
        Ok(Payload {
            docker_reference: document.critical.identity.docker_reference,
            manifest_digest: document.critical.image.docker_manifest_digest,
        })
    }
}

/// A trusted P-256 public key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PublicKey").field(&self.id()).finish()
    }
}

impl PublicKey {
    /// Reads a PEM `PUBLIC KEY` (SubjectPublicKeyInfo), as `cosign public-key` and OpenSSL print it.
    pub fn from_pem(pem: &str) -> Result<Self, SignatureError> {
        VerifyingKey::from_public_key_pem(pem.trim())
            .map(|key| PublicKey { key })
            .map_err(|error| SignatureError::PublicKey(error.to_string()))
    }

    pub fn to_pem(&self) -> String {
        self.key.to_public_key_pem(LineEnding::LF).expect("a P-256 key always encodes")
    }

    /// A short name for logs and listings, not a secret: `sha256:` and the first 16 hex digits of
    /// the SHA-256 of the key's DER SubjectPublicKeyInfo.
    pub fn id(&self) -> String {
        let der = self.key.to_public_key_der().expect("a P-256 key always encodes");
        format!("sha256:{}", &hex(&Sha256::digest(der.as_bytes()))[..16])
    }

    /// Whether `signature` (base64 ASN.1 DER, as in the annotation) is this key's ECDSA P-256
    /// SHA-256 signature of `payload`. A malformed signature is an error, a valid one of
    /// another key or of other bytes is `false`.
    pub fn verify(&self, payload: &[u8], signature: &str) -> Result<bool, SignatureError> {
        let der = STANDARD.decode(signature.trim()).map_err(|_| SignatureError::MalformedSignature)?;
        let signature = DerSignature::from_bytes(&der).map_err(|_| SignatureError::MalformedSignature)?;
        Ok(self.key.verify(payload, &signature).is_ok())
    }
}

/// A P-256 private key that signs payloads. Its `Debug` shows only the public key's id.
#[derive(Clone)]
pub struct PrivateKey {
    key: SigningKey,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PrivateKey").field(&self.public_key().id()).finish()
    }
}

impl PrivateKey {
    /// A new random key, from the operating system's random source.
    pub fn generate() -> Self {
        PrivateKey { key: SigningKey::random(&mut rand_core::OsRng) }
    }

    /// Reads an unencrypted PEM `PRIVATE KEY` (PKCS#8) or `EC PRIVATE KEY` (SEC1).
    pub fn from_pem(pem: &str) -> Result<Self, SignatureError> {
        let pem = pem.trim();
        let key = if pem.starts_with("-----BEGIN EC PRIVATE KEY-----") {
            p256::SecretKey::from_sec1_pem(pem).map(SigningKey::from).map_err(|error| error.to_string())
        } else {
            SigningKey::from_pkcs8_pem(pem).map_err(|error| error.to_string())
        };
        key.map(|key| PrivateKey { key }).map_err(SignatureError::PrivateKey)
    }

    /// The key as unencrypted PKCS#8 PEM: write it to a file only its owner can read.
    pub fn to_pkcs8_pem(&self) -> String {
        self.key.to_pkcs8_pem(LineEnding::LF).expect("a P-256 key always encodes").to_string()
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey { key: *self.key.verifying_key() }
    }

    /// The base64 ASN.1 DER ECDSA P-256 SHA-256 signature of `payload` (deterministic, RFC 6979).
    pub fn sign(&self, payload: &[u8]) -> String {
        let signature: DerSignature = self.key.sign(payload);
        STANDARD.encode(signature.as_bytes())
    }
}

/// The signatures kept in a file beside a plugin file (`<file>.wasm.sig`): for each signer, a
/// cosign payload whose `docker-reference` is the plugin's name and whose digest is the file's
/// SHA-256, and the signature of that payload, both base64, in one JSON document:
/// `{"signatures": [{"payload": "<base64 payload>", "signature": "<base64 DER signature>"}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetachedSignature {
    pub signatures: Vec<SignedPayload>,
}

/// One signer's payload and signature in a [`DetachedSignature`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedPayload {
    /// The payload's bytes, base64: the bytes that were signed, verbatim.
    pub payload: String,
    /// The signature, base64 ASN.1 DER, as in a registry signature's annotation.
    pub signature: String,
}

impl DetachedSignature {
    /// Signs `file`'s content as plugin `name`, once per key.
    pub fn sign(keys: &[PrivateKey], name: &str, file: &[u8]) -> Self {
        let payload = Payload::new(name, sha256_digest(file)).to_bytes();
        let signatures = keys
            .iter()
            .map(|key| SignedPayload { signature: key.sign(&payload), payload: STANDARD.encode(&payload) })
            .collect();
        DetachedSignature { signatures }
    }

    pub fn parse(json: &[u8]) -> Result<Self, SignatureError> {
        serde_json::from_slice(json).map_err(|error| SignatureError::MalformedDetached(error.to_string()))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a detached signature always serializes") + "\n"
    }

    /// Each payload's bytes (what its signature is over) with its base64 signature.
    pub fn entries(&self) -> Result<Vec<(Vec<u8>, String)>, SignatureError> {
        self.signatures
            .iter()
            .map(|entry| {
                let payload = STANDARD
                    .decode(entry.payload.trim())
                    .map_err(|error| SignatureError::MalformedDetached(error.to_string()))?;
                Ok((payload, entry.signature.clone()))
            })
            .collect()
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:97fc222cee7991b5b061d4d4afdb5f3428fcb0c9054e1690313786befa1e4e36";

    #[test]
    fn the_payload_is_byte_for_byte_what_cosign_writes() {
        let payload = Payload::new("127.0.0.1:5000/plugins/hello", DIGEST);
        let expected = format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"127.0.0.1:5000/plugins/hello"}},"image":{{"docker-manifest-digest":"{DIGEST}"}},"type":"cosign container image signature"}},"optional":null}}"#
        );
        assert_eq!(String::from_utf8(payload.to_bytes()).unwrap(), expected);
        assert_eq!(Payload::parse(expected.as_bytes()).unwrap(), payload);
    }

    #[test]
    fn parses_payloads_of_other_signers_and_refuses_other_types() {
        let reordered = format!(
            r#"{{"optional":{{"creator":"x"}},"critical":{{"type":"cosign container image signature","image":{{"docker-manifest-digest":"{DIGEST}"}},"identity":{{"docker-reference":"r/h"}}}}}}"#
        );
        assert_eq!(Payload::parse(reordered.as_bytes()).unwrap(), Payload::new("r/h", DIGEST));
        let atomic = reordered.replace("cosign container image signature", "atomic container signature");
        assert!(matches!(Payload::parse(atomic.as_bytes()), Err(SignatureError::MalformedPayload(_))));
        assert!(Payload::parse(b"not json").is_err());
    }

    #[test]
    fn maps_a_digest_to_its_signature_tag() {
        assert_eq!(
            signature_tag(DIGEST).unwrap(),
            "sha256-97fc222cee7991b5b061d4d4afdb5f3428fcb0c9054e1690313786befa1e4e36.sig"
        );
        assert_eq!(signature_tag("sha512:abcd"), None);
        assert_eq!(signature_tag("sha256:ABCD"), None);
    }

    #[test]
    fn signs_and_verifies_and_refuses_other_keys_and_other_bytes() {
        let key = PrivateKey::generate();
        let other = PrivateKey::generate();
        let payload = Payload::new("r/hello", DIGEST).to_bytes();
        let signature = key.sign(&payload);
        assert!(key.public_key().verify(&payload, &signature).unwrap());
        assert!(!other.public_key().verify(&payload, &signature).unwrap());
        let mut tampered = payload.clone();
        tampered[20] ^= 1;
        assert!(!key.public_key().verify(&tampered, &signature).unwrap());
        assert!(matches!(key.public_key().verify(&payload, "not base64!"), Err(SignatureError::MalformedSignature)));
        assert!(matches!(key.public_key().verify(&payload, "AAAA"), Err(SignatureError::MalformedSignature)));
    }

    #[test]
    fn keys_round_trip_through_pem_and_keep_their_id() {
        let key = PrivateKey::generate();
        let pem = key.to_pkcs8_pem();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let again = PrivateKey::from_pem(&pem).unwrap();
        let public = PublicKey::from_pem(&key.public_key().to_pem()).unwrap();
        assert_eq!(again.public_key(), public);
        assert_eq!(public.id(), key.public_key().id());
        assert!(public.id().starts_with("sha256:") && public.id().len() == 23);
        assert!(!format!("{key:?}").contains(pem.lines().nth(1).unwrap()), "Debug shows no key material");
        assert!(PublicKey::from_pem(&pem).is_err(), "a private key is not a public key");
        assert!(PrivateKey::from_pem("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n...").is_err());
    }

    #[test]
    fn a_detached_signature_binds_the_name_and_the_file() {
        let key = PrivateKey::generate();
        let other = PrivateKey::generate();
        let detached = DetachedSignature::sign(&[key.clone(), other.clone()], "hello", b"\0asm");
        let parsed = DetachedSignature::parse(detached.to_json().as_bytes()).unwrap();
        let entries = parsed.entries().unwrap();
        assert_eq!(entries.len(), 2);
        for ((payload_bytes, signature), key) in entries.iter().zip([&key, &other]) {
            let payload = Payload::parse(payload_bytes).unwrap();
            assert_eq!(payload, Payload::new("hello", sha256_digest(b"\0asm")));
            assert!(key.public_key().verify(payload_bytes, signature).unwrap());
        }
        assert!(DetachedSignature::parse(b"{\"payload\":\"\"}").is_err());
    }
}
