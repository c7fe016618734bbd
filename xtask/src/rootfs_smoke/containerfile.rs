//! The runtime stage of `Containerfile`, read into what it puts into the image; anything it
//! cannot reproduce is an error.

use anyhow::{Context, bail, ensure};

/// What the Containerfile's last stage puts into the image.
#[derive(Debug, Default, PartialEq)]
pub(super) struct RuntimeStage {
    pub(super) suite: String,
    pub(super) packages: Vec<String>,
    /// `COPY --from=builder <source> <destination>`, sources as the builder sees them.
    pub(super) copies: Vec<(String, String)>,
    /// `install -d -o UID -g GID -m MODE PATH`.
    pub(super) dirs: Vec<ImageDir>,
    pub(super) env: Vec<(String, String)>,
    pub(super) user: (u32, u32),
    pub(super) entrypoint: Vec<String>,
}

#[derive(Debug, PartialEq)]
pub(super) struct ImageDir {
    pub(super) path: String,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) mode: u32,
}

impl RuntimeStage {
    pub(super) fn parse(containerfile: &str) -> anyhow::Result<Self> {
        // Instructions, with continuation lines joined and comments dropped.
        let mut instructions = Vec::new();
        let mut current = String::new();
        for line in containerfile.lines() {
            let line = line.trim();
            if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
                continue;
            }
            match line.strip_suffix('\\') {
                Some(part) => {
                    current.push_str(part);
                    current.push(' ');
                }
                None => {
                    current.push_str(line);
                    if !current.trim().is_empty() {
                        instructions.push(std::mem::take(&mut current));
                    }
                    current.clear();
                }
            }
        }
        let last_from =
            instructions.iter().rposition(|i| i.starts_with("FROM ")).context("the Containerfile has no FROM")?;
        let mut stage = RuntimeStage::default();
        for instruction in &instructions[last_from..] {
            let (keyword, rest) = instruction.split_once(' ').unwrap_or((instruction, ""));
            let words: Vec<&str> = rest.split_whitespace().collect();
            match keyword {
                "FROM" => {
                    let image = words.first().context("FROM without an image")?;
                    let tag =
                        image.strip_prefix("debian:").context("the runtime stage must be FROM debian:<suite>-slim")?;
                    stage.suite = tag.strip_suffix("-slim").unwrap_or(tag).to_string();
                }
                "RUN" => {
                    for command in rest.split("&&").map(str::trim) {
                        let words: Vec<&str> = command.split_whitespace().collect();
                        match words.as_slice() {
                            ["apt-get", "install", args @ ..] => stage
                                .packages
                                .extend(args.iter().filter(|a| !a.starts_with('-')).map(|a| a.to_string())),
                            ["install", "-d", args @ ..] => stage.dirs.push(parse_install_dir(args)?),
                            ["apt-get", "update" | "clean"] | ["rm", "-rf", "/var/lib/apt/lists/*"] => {}
                            _ => bail!("rootfs-smoke does not know what `RUN {command}` does to the image"),
                        }
                    }
                }
                "COPY" => match words.as_slice() {
                    [from, source, destination] if from.starts_with("--from=") => {
                        stage.copies.push((source.to_string(), destination.to_string()))
                    }
                    _ => bail!(
                        "rootfs-smoke only knows `COPY --from=<stage> <source> <destination>`, not `{instruction}`"
                    ),
                },
                "ENV" => {
                    for pair in &words {
                        let (key, value) =
                            pair.split_once('=').with_context(|| format!("ENV {pair}: not KEY=VALUE"))?;
                        stage.env.push((key.to_string(), value.to_string()));
                    }
                }
                "USER" => {
                    let (uid, gid) = rest.trim().split_once(':').context("USER must be numeric UID:GID")?;
                    stage.user = (uid.parse().context("USER's UID")?, gid.parse().context("USER's GID")?);
                }
                "ENTRYPOINT" => {
                    stage.entrypoint = serde_json::from_str(rest).context("ENTRYPOINT must be in exec form")?;
                }
                "EXPOSE" | "LABEL" | "STOPSIGNAL" => {}
                _ => bail!("rootfs-smoke does not know what `{keyword}` does to the image"),
            }
        }
        ensure!(!stage.packages.is_empty(), "the runtime stage installs no packages");
        ensure!(!stage.entrypoint.is_empty(), "the runtime stage has no ENTRYPOINT");
        Ok(stage)
    }
}

pub(super) fn parse_install_dir(args: &[&str]) -> anyhow::Result<ImageDir> {
    let mut dir = ImageDir { path: String::new(), uid: 0, gid: 0, mode: 0o755 };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("install {arg} needs a value"));
        match *arg {
            "-o" => dir.uid = value()?.parse()?,
            "-g" => dir.gid = value()?.parse()?,
            "-m" => dir.mode = u32::from_str_radix(value()?, 8)?,
            path if !path.starts_with('-') => dir.path = path.to_string(),
            other => bail!("install -d: unknown option {other}"),
        }
    }
    ensure!(dir.path.starts_with('/'), "install -d needs an absolute path");
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn reads_the_runtime_stage_of_the_containerfile() {
        let text = fs::read_to_string(crate::project_root().join("Containerfile")).unwrap();
        let stage = RuntimeStage::parse(&text).unwrap();
        // The suite that has WasmEdge 0.17, and nothing installed but its library.
        assert_eq!(stage.suite, "forky");
        assert_eq!(stage.packages, ["libwasmedge0"]);
        assert_eq!(stage.user, (65532, 65532));
        assert_eq!(stage.entrypoint, ["/usr/local/bin/plugin-host"]);
        assert!(stage.copies.iter().any(|(s, d)| s.ends_with("target/release/host") && d == &stage.entrypoint[0]));
        assert_eq!(
            stage.dirs,
            [ImageDir { path: "/var/cache/plugin-host".into(), uid: 65532, gid: 65532, mode: 0o700 }]
        );
        let listen = stage.env.iter().find(|(k, _)| k == "LISTEN_ADDR").map(|(_, v)| v.as_str());
        assert_eq!(listen, Some("0.0.0.0:8080"), "a container must not listen on its own loopback only");
    }

    #[test]
    fn refuses_instructions_it_cannot_reproduce() {
        let base = "FROM debian:forky-slim\nRUN apt-get install -y libwasmedge0\nENTRYPOINT [\"/x\"]\n";
        assert!(RuntimeStage::parse(base).is_ok());
        for extra in ["RUN curl -o /x http://example.com/x", "ADD x /x", "COPY x /x", "VOLUME /data"] {
            let text = format!("{base}{extra}\n");
            assert!(RuntimeStage::parse(&text).is_err(), "{extra} was accepted");
        }
        let builder_only =
            "FROM debian:forky AS b\nRUN make\nFROM debian:forky-slim\nRUN apt-get install x\nENTRYPOINT [\"/x\"]\n";
        assert_eq!(RuntimeStage::parse(builder_only).unwrap().packages, ["x"], "only the last stage counts");
    }
}
