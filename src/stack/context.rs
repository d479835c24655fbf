//! Docker contexts, read as the Docker CLI reads them: which context is in use (`--context`,
//! then `DOCKER_HOST`, which means the default context, then `DOCKER_CONTEXT`, then
//! `currentContext` in `config.json`), and where a named context's engine is (its
//! `meta.json` in the context store, `contexts/meta/<sha256 of the name>/`, and its TLS
//! files in `contexts/tls/<sha256>/docker/`). The store is under `DOCKER_CONFIG`, else
//! `~/.docker`. The default context is the engine `DOCKER_HOST` names, or the local socket.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// Why the context in use cannot be read: each names the context, what chose it, the
/// file, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    #[error("{}: not JSON ({detail}); fix the file or point DOCKER_CONFIG elsewhere", path.display())]
    ConfigNotJson { path: PathBuf, detail: String },
    #[error("{}: {detail}", path.display())]
    Unreadable { path: PathBuf, detail: String },
    #[error(
        "context {name:?} ({chosen_by}): neither DOCKER_CONFIG nor HOME is set, so there is \
         no context store to read"
    )]
    NoStore {
        name: String,
        chosen_by: &'static str,
    },
    #[error(
        "context {name:?} ({chosen_by}): not found ({}: {detail}); list the contexts with \
         `docker context ls`, or create it with `docker context create {name} --docker \
         host=...`",
        meta.display()
    )]
    NotFound {
        name: String,
        chosen_by: &'static str,
        meta: PathBuf,
        detail: String,
    },
    #[error("context {name:?}: {} is not JSON: {detail}", meta.display())]
    MetaNotJson {
        name: String,
        meta: PathBuf,
        detail: String,
    },
    #[error(
        "context {name:?}: {} has no Endpoints.docker.Host; recreate it with `docker context \
         create {name} --docker host=...`",
        meta.display()
    )]
    NoHost { name: String, meta: PathBuf },
    #[error(
        "context {name:?}: SkipTLSVerify is set; osmen verifies the engine's certificate \
         always: give the context its CA (`docker context update {name} --docker \
         host={host},ca=...,cert=...,key=...`)"
    )]
    SkipTlsVerify { name: String, host: String },
}

/// The name the Docker CLI keeps for "no context": `DOCKER_HOST`, else the local socket.
pub const DEFAULT_CONTEXT: &str = "default";

/// `--context`, set once when the command line is read.
static FLAG: OnceLock<String> = OnceLock::new();

/// Records the `--context` flag for every later connection of this process.
pub fn set_flag(name: &str) {
    let _ = FLAG.set(name.to_string());
}

/// What decides the context, as the Docker CLI reads it.
#[derive(Debug, Clone, Default)]
pub struct ContextEnv {
    pub flag: Option<String>,
    pub docker_host: Option<String>,
    pub docker_context: Option<String>,
    /// `DOCKER_CONFIG`, else `$HOME/.docker`.
    pub config_dir: Option<PathBuf>,
}

impl ContextEnv {
    pub fn from_process() -> ContextEnv {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        ContextEnv {
            flag: FLAG.get().cloned(),
            docker_host: var("DOCKER_HOST"),
            docker_context: var("DOCKER_CONTEXT"),
            config_dir: var("DOCKER_CONFIG")
                .map(PathBuf::from)
                .or_else(|| var("HOME").map(|h| Path::new(&h).join(".docker"))),
        }
    }
}

/// The context in use and where its engine is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub name: String,
    /// What chose it: `--context`, `DOCKER_HOST`, `DOCKER_CONTEXT`, `config.json` or
    /// `default`.
    pub chosen_by: &'static str,
    /// The engine address of a named context (None for the default context).
    pub host: Option<String>,
    /// The folder holding the context's `ca.pem`, `cert.pem` and `key.pem`, when it has
    /// TLS material.
    pub tls_dir: Option<PathBuf>,
}

/// The folder name the context store gives `name`.
fn store_id(name: &str) -> String {
    Sha256::digest(name.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The context name and what chose it, with the Docker CLI's precedence.
pub fn chosen(env: &ContextEnv) -> Result<(String, &'static str), ContextError> {
    if let Some(f) = &env.flag {
        return Ok((f.clone(), "--context"));
    }
    if env.docker_host.is_some() {
        return Ok((DEFAULT_CONTEXT.into(), "DOCKER_HOST"));
    }
    if let Some(c) = &env.docker_context {
        return Ok((c.clone(), "DOCKER_CONTEXT"));
    }
    if let Some(dir) = &env.config_dir {
        let path = dir.join("config.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let v: serde_json::Value =
                    serde_json::from_str(&text).map_err(|e| ContextError::ConfigNotJson {
                        path: path.clone(),
                        detail: e.to_string(),
                    })?;
                if let Some(c) = v["currentContext"].as_str().filter(|c| !c.is_empty()) {
                    return Ok((c.to_string(), "config.json"));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ContextError::Unreadable {
                    path,
                    detail: e.to_string(),
                });
            }
        }
    }
    Ok((DEFAULT_CONTEXT.into(), "default"))
}

/// The context in use (see [`chosen`]) and, for a named one, its engine from the store.
pub fn resolve(env: &ContextEnv) -> Result<Context, ContextError> {
    let (name, chosen_by) = chosen(env)?;
    if name == DEFAULT_CONTEXT {
        return Ok(Context {
            name,
            chosen_by,
            host: None,
            tls_dir: None,
        });
    }
    let Some(dir) = &env.config_dir else {
        return Err(ContextError::NoStore { name, chosen_by });
    };
    let id = store_id(&name);
    let meta = dir.join("contexts/meta").join(&id).join("meta.json");
    let text = match std::fs::read_to_string(&meta) {
        Ok(t) => t,
        Err(e) => {
            return Err(ContextError::NotFound {
                name,
                chosen_by,
                meta,
                detail: e.to_string(),
            });
        }
    };
    let v: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            return Err(ContextError::MetaNotJson {
                name,
                meta,
                detail: e.to_string(),
            });
        }
    };
    let ep = &v["Endpoints"]["docker"];
    let Some(host) = ep["Host"].as_str().filter(|h| !h.is_empty()) else {
        return Err(ContextError::NoHost { name, meta });
    };
    if ep["SkipTLSVerify"].as_bool() == Some(true) {
        return Err(ContextError::SkipTlsVerify {
            name,
            host: host.to_string(),
        });
    }
    let tls = dir.join("contexts/tls").join(&id).join("docker");
    let tls_dir = tls.join("ca.pem").is_file().then_some(tls);
    Ok(Context {
        name,
        chosen_by,
        host: Some(host.to_string()),
        tls_dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path, name: &str, meta: &str) {
        let d = dir.join("contexts/meta").join(store_id(name));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("meta.json"), meta).unwrap();
    }

    fn temp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("osmen-ctx-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn store_ids_are_the_docker_clis() {
        // `docker context create ctxa ...` made contexts/meta/f38a1edb.../ on this machine.
        assert_eq!(
            store_id("ctxa"),
            "f38a1edba91098e590dbe6b66a07c374fdc6ff074aaa890828f1c7926e8a9ebd"
        );
    }

    #[test]
    fn precedence_is_the_docker_clis() {
        let dir = temp("prec");
        std::fs::write(dir.join("config.json"), r#"{"currentContext":"cur"}"#).unwrap();
        let mut env = ContextEnv {
            config_dir: Some(dir.clone()),
            ..Default::default()
        };
        assert_eq!(chosen(&env).unwrap(), ("cur".into(), "config.json"));
        env.docker_context = Some("envctx".into());
        assert_eq!(chosen(&env).unwrap(), ("envctx".into(), "DOCKER_CONTEXT"));
        env.docker_host = Some("tcp://127.0.0.1:1".into());
        assert_eq!(chosen(&env).unwrap(), ("default".into(), "DOCKER_HOST"));
        env.flag = Some("flagged".into());
        assert_eq!(chosen(&env).unwrap(), ("flagged".into(), "--context"));
        std::fs::write(dir.join("config.json"), "{").unwrap();
        let e = chosen(&ContextEnv {
            config_dir: Some(dir.clone()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("config.json") && e.contains("not JSON"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_named_context_gives_its_host_and_tls_folder() {
        let dir = temp("named");
        store(
            &dir,
            "remote",
            r#"{"Name":"remote","Metadata":{},"Endpoints":{"docker":{"Host":"tcp://10.0.0.5:2376","SkipTLSVerify":false}}}"#,
        );
        let env = ContextEnv {
            docker_context: Some("remote".into()),
            config_dir: Some(dir.clone()),
            ..Default::default()
        };
        let c = resolve(&env).unwrap();
        assert_eq!(c.host.as_deref(), Some("tcp://10.0.0.5:2376"));
        assert_eq!(c.tls_dir, None);
        let tls = dir
            .join("contexts/tls")
            .join(store_id("remote"))
            .join("docker");
        std::fs::create_dir_all(&tls).unwrap();
        std::fs::write(tls.join("ca.pem"), "x").unwrap();
        assert_eq!(resolve(&env).unwrap().tls_dir, Some(tls));

        let missing = ContextEnv {
            flag: Some("nope".into()),
            config_dir: Some(dir.clone()),
            ..Default::default()
        };
        let e = resolve(&missing).unwrap_err().to_string();
        assert!(
            e.contains("\"nope\"") && e.contains("--context") && e.contains("docker context ls"),
            "{e}"
        );
        store(
            &dir,
            "skip",
            r#"{"Name":"skip","Endpoints":{"docker":{"Host":"tcp://h:2376","SkipTLSVerify":true}}}"#,
        );
        let e = resolve(&ContextEnv {
            flag: Some("skip".into()),
            config_dir: Some(dir.clone()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("SkipTLSVerify"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
