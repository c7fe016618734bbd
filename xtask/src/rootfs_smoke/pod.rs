//! What the rendered Kubernetes Deployment asks of its pod: environment, user, volumes.

use anyhow::{Context, bail, ensure};

use super::containerfile::RuntimeStage;

/// What the rendered Deployment asks of its pod.
#[derive(Debug)]
pub(super) struct Pod {
    pub(super) env: Vec<(String, String)>,
    pub(super) user: (u32, u32),
    pub(super) read_only_root: bool,
    /// Mount paths of emptyDir volumes.
    pub(super) empty_dirs: Vec<String>,
    /// Mount paths of Secret volumes (emulated by [`super::secrets`]).
    pub(super) secrets: Vec<String>,
    /// Mount path of a read-only PersistentVolumeClaim (the Fluid dataset), if any.
    pub(super) dataset: Option<String>,
}

impl Pod {
    pub(super) fn from_rendering(documents: &[serde_json::Value]) -> anyhow::Result<Self> {
        let deployment =
            documents.iter().find(|d| d["kind"] == "Deployment").context("the rendering has no Deployment")?;
        let spec = &deployment["spec"]["template"]["spec"];
        let container = spec["containers"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == "host"))
            .context("no container named host")?;
        let string = |v: &serde_json::Value| v.as_str().map(str::to_string);
        let env = container["env"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| Ok((string(&e["name"]).context("env name")?, string(&e["value"]).context("env value")?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let id = |key: &str| {
            container["securityContext"][key]
                .as_u64()
                .or(spec["securityContext"][key].as_u64())
                .and_then(|id| u32::try_from(id).ok())
                .with_context(|| format!("the pod sets no numeric {key}"))
        };
        let user = (id("runAsUser")?, id("runAsGroup")?);
        let volumes = spec["volumes"].as_array().cloned().unwrap_or_default();
        let volume =
            |name: &serde_json::Value| volumes.iter().find(|v| v["name"] == *name).cloned().unwrap_or_default();
        let mut empty_dirs = Vec::new();
        let mut secrets = Vec::new();
        let mut dataset = None;
        for mount in container["volumeMounts"].as_array().into_iter().flatten() {
            let path = string(&mount["mountPath"]).context("mountPath")?;
            ensure!(!path.contains(char::is_whitespace), "mount path {path:?} has whitespace");
            let volume = volume(&mount["name"]);
            if volume.get("emptyDir").is_some() {
                empty_dirs.push(path);
            } else if volume.get("persistentVolumeClaim").is_some() {
                dataset = Some(path);
            } else if volume.get("secret").is_some() && mount.get("subPath").is_none() {
                secrets.push(path);
            } else {
                bail!("rootfs-smoke cannot emulate the volume mounted at {path}");
            }
        }
        Ok(Pod {
            env,
            user,
            read_only_root: container["securityContext"]["readOnlyRootFilesystem"] == true,
            empty_dirs,
            secrets,
            dataset,
        })
    }

    /// The container's environment: the image's `ENV`, then the pod's (which wins), as the
    /// container runtime builds it.
    pub(super) fn environment(&self, stage: &RuntimeStage) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> =
            vec![("PATH".into(), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into())];
        for (key, value) in stage.env.iter().chain(&self.env) {
            env.retain(|(k, _)| k != key);
            env.push((key.clone(), value.clone()));
        }
        env
    }
}
