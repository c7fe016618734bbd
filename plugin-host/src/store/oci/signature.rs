//! Cosign signatures of registry plugins: finding them beside the manifest, and the verdict.
//!
//! For the manifest `sha256:<hex>` of `<prefix>/<name>`, the signatures are the layers of the
//! artifact tagged `sha256-<hex>.sig` in the same repository (cosign's tag-based discovery):
//! each layer of media type `application/vnd.dev.cosign.simplesigning.v1+json` is a payload,
//! and its annotation `dev.cosignproject.cosign/signature` the signature. The trust policy
//! judges them against the reference `<registry>/<prefix>/<name>` and the manifest digest.
//!
//! Verdicts are kept per manifest digest: in memory, and on disk when they let the version run
//! (a signature never stops verifying under the same policy), so a restart with the registry
//! down still serves verified versions. A refusal is asked again after `refresh` (a signature
//! pushed after the version is found); while the registry cannot answer, the last refusal
//! stands, and a version never judged is unavailable (503), never run.

use std::{sync::Arc, time::Instant};

use futures_util::StreamExt;
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use plugin_signature::{PAYLOAD_MEDIA_TYPE, SIGNATURE_ANNOTATION, signature_tag};
use sha2::{Digest, Sha256};

use super::{Inner, RegistryFailure, TagRecord, canonical_repository};
use crate::store::{
    PluginName, PluginRef, StoreError,
    trust::{Signature, Verdict},
};

/// Largest signature payload read (cosign's are a few hundred bytes).
const MAX_PAYLOAD_BYTES: i64 = 64 << 10;
/// Manifest types of a signature artifact: cosign writes OCI manifests, or Docker's with
/// `COSIGN_DOCKER_MEDIA_TYPES=1`; both have the same layers.
const SIGNATURE_MANIFEST_MEDIA_TYPES: &[&str] =
    &[oci_client::manifest::OCI_IMAGE_MEDIA_TYPE, oci_client::manifest::IMAGE_MANIFEST_MEDIA_TYPE];
/// Most signature layers looked at in one signature artifact.
const MAX_SIGNATURES: usize = 16;

impl Inner {
    /// `<registry>/<prefix>/<name>`, as cosign names the repository in `docker-reference`.
    fn signed_reference(&self, name: &PluginName) -> String {
        canonical_repository(&self.registry, &self.repository_of(name))
    }

    /// Refuses `plugin` unless the trust policy lets it run (no policy: everything runs).
    pub(super) fn check_trust(&self, plugin: &PluginRef, record: &TagRecord) -> Result<(), StoreError> {
        if self.settings.trust.is_none() {
            return Ok(());
        }
        match self.verdict(&plugin.name, record, true)? {
            Verdict::Refused { code, message } => {
                Err(StoreError::Untrusted { plugin: plugin.clone(), refusal: code, why: message })
            }
            _ => Ok(()),
        }
    }

    /// The policy's verdict on the manifest `record` names (without a policy, everything is
    /// [`Verdict::UnsignedAllowed`]). Without
    /// `lookup`, a verdict that is not known yet is [`Verdict::Unchecked`] instead of asking
    /// the registry.
    pub(super) fn verdict(&self, name: &PluginName, record: &TagRecord, lookup: bool) -> Result<Verdict, StoreError> {
        let Some(policy) = &self.settings.trust else { return Ok(Verdict::UnsignedAllowed) };
        let reference = self.signed_reference(name);
        if policy.allows_unsigned(&reference) {
            return Ok(Verdict::UnsignedAllowed);
        }
        let digest = &record.manifest_digest;
        let key = (reference.clone(), digest.clone());
        let known = self.verdicts.lock().get(&key).cloned();
        if let Some((verdict, checked)) = &known
            && (verdict.allows() || checked.elapsed() < self.settings.refresh || !lookup)
        {
            return Ok(verdict.clone());
        }
        if known.is_none()
            && let Some(verdict) = self.cache.verdict(name, digest, policy.fingerprint())
        {
            self.verdicts.lock().put(key, (verdict.clone(), Instant::now()));
            return Ok(verdict);
        }
        if !lookup {
            return Ok(Verdict::Unchecked);
        }
        let plugin = PluginRef::from(name);
        let found = self.verdict_flights.run(&key, || self.signatures(name, digest));
        let signatures = match found {
            Ok(signatures) => signatures,
            // The registry cannot answer: the last refusal stands; nothing else may run.
            Err(RegistryFailure::Unreachable(_)) if known.is_some() => {
                return Ok(known.map(|(verdict, _)| verdict).expect("checked"));
            }
            Err(failure) => return Err(self.store_error(&plugin, failure)),
        };
        let verdict = policy.judge(&reference, digest, &signatures);
        let changed = known.as_ref().is_none_or(|(before, _)| *before != verdict);
        match &verdict {
            // Judged again every refresh while refused: logged when the verdict changes.
            Verdict::Refused { code, message } if changed => {
                tracing::warn!(plugin = %name, manifest = %digest, code = code.kind().code(), why = %message, "plugin version refused by the trust policy");
            }
            Verdict::Verified { signers } => {
                tracing::info!(plugin = %name, manifest = %digest, ?signers, "plugin version signature verified");
                if let Err(error) = self.cache.put_verdict(name, digest, policy.fingerprint(), &verdict)
                    && self.cache_failures_logged.allow(&error.kind()).is_some()
                {
                    tracing::warn!(plugin = %name, %error, "could not keep the signature verdict in the cache folder");
                }
            }
            Verdict::Refused { .. } | Verdict::UnsignedAllowed | Verdict::Unchecked => {}
        }
        self.verdicts.lock().put(key, (verdict.clone(), Instant::now()));
        Ok(verdict)
    }

    /// The signatures stored for the manifest `digest` of `name` (none when its `.sig` tag is
    /// not there). Each payload is checked against the digest its layer names.
    fn signatures(&self, name: &PluginName, digest: &str) -> Result<Arc<Vec<Signature>>, RegistryFailure> {
        let Some(tag) = signature_tag(digest) else {
            return Ok(Arc::default());
        };
        let reference = self.reference(name, &tag);
        let raw = match self.request(
            self.settings.timeout,
            self.client.pull_manifest_raw(&reference, &self.auth, SIGNATURE_MANIFEST_MEDIA_TYPES),
        ) {
            Ok((raw, _)) => raw,
            Err(RegistryFailure::NotFound) => return Ok(Arc::default()),
            Err(failure) => return Err(failure),
        };
        // Not an image manifest: no signature this host can read, as if there were none.
        let Ok(manifest) = serde_json::from_slice::<OciImageManifest>(&raw) else {
            tracing::warn!(plugin = %name, tag, "the signature artifact is not an OCI image manifest; ignored");
            return Ok(Arc::default());
        };
        let mut signatures = Vec::new();
        for layer in manifest.layers.iter().filter(|layer| layer.media_type == PAYLOAD_MEDIA_TYPE).take(MAX_SIGNATURES)
        {
            let Some(signature) = layer.annotations.as_ref().and_then(|a| a.get(SIGNATURE_ANNOTATION)) else {
                continue;
            };
            if layer.size > MAX_PAYLOAD_BYTES {
                continue;
            }
            let payload = self.request(self.settings.timeout, self.payload(&reference, layer))?;
            // A payload that is not what its layer names signs nothing.
            if format!("sha256:{}", hex::encode(Sha256::digest(&payload))) != layer.digest {
                tracing::warn!(plugin = %name, tag, "a signature payload does not match its digest; ignored");
                continue;
            }
            signatures.push(Signature { payload, signature: signature.clone() });
        }
        Ok(Arc::new(signatures))
    }

    async fn payload(
        &self,
        reference: &oci_client::Reference,
        layer: &OciDescriptor,
    ) -> Result<Vec<u8>, oci_client::errors::OciDistributionError> {
        let mut stream = self.client.pull_blob_stream(reference, layer).await?;
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            bytes.extend_from_slice(&chunk?);
            if bytes.len() as i64 > MAX_PAYLOAD_BYTES {
                break;
            }
        }
        Ok(bytes)
    }
}
