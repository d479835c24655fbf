//! Getting the stack's images onto the engine before anything is created: decide per
//! service (pull, build, use what is there, or refuse), pull in parallel (bounded) with
//! per-layer progress, build from `.dockerignore`-filtered contexts, and turn failures
//! into messages that name the service, the image, the registry's words and the fix.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use futures_util::StreamExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::compose::{Project, Service};
use super::engine::{BuildEvent, BuildRequest, EResult, Engine, EngineError};
use super::image::{
    CredentialLookup, ImageRef, PullPolicy, context_tar, docker_config_path, lookup_credentials,
};
use super::plan;
use crate::model::progress::ImageEvent;

pub type ImageSink = Arc<dyn Fn(ImageEvent) + Send + Sync>;

/// Pulls at once, at most.
pub const PARALLEL_PULLS: usize = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageAction {
    Present,
    Pull,
    Build,
    /// Missing and not allowed to be fetched (pull_policy never); the reason says so.
    Refused(String),
}

#[derive(Debug, Clone)]
pub struct ImagePlan {
    pub service: String,
    pub image: String,
    pub action: ImageAction,
}

/// The image a service runs (its `image:`, or `<project>-<service>` when only built).
pub fn service_image(project: &Project, svc: &Service) -> String {
    plan::container_spec(project, svc, 1).image
}

/// Decides, per service, what to do about its image.
pub async fn plan_images<E: Engine>(
    engine: &E,
    project: &Project,
    targets: &BTreeSet<String>,
    policy_override: Option<PullPolicy>,
) -> EResult<Vec<ImagePlan>> {
    let mut out = Vec::new();
    for name in targets {
        let svc = &project.services[name];
        let image = service_image(project, svc);
        let policy = policy_override
            .or_else(|| {
                svc.pull_policy
                    .as_deref()
                    .and_then(|p| PullPolicy::parse(p).ok())
            })
            .unwrap_or(PullPolicy::Missing);
        let tagged = engine.image_tagged_at(&image).await?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let action = decide(policy, svc, &image, tagged.map(|t| (now - t).max(0.0)));
        out.push(ImagePlan {
            service: name.clone(),
            image,
            action,
        });
    }
    Ok(out)
}

/// What to do about one service's image under its policy, given how long ago the
/// engine's copy was tagged (None: the engine has none).
fn decide(policy: PullPolicy, svc: &Service, image: &str, age_s: Option<f64>) -> ImageAction {
    let exists = age_s.is_some();
    let stale = matches!((policy, age_s), (PullPolicy::Refresh(d), Some(a)) if a > d.as_secs_f64());
    let has_build = svc.build.is_some();
    if policy == PullPolicy::Build {
        if has_build {
            ImageAction::Build
        } else {
            ImageAction::Refused("pull_policy build needs a `build:` section".to_string())
        }
    } else if (policy == PullPolicy::Always || stale) && svc.image.is_some() {
        ImageAction::Pull
    } else if exists {
        ImageAction::Present
    } else if has_build && (svc.image.is_none() || policy == PullPolicy::Never) {
        ImageAction::Build
    } else if policy == PullPolicy::Never {
        ImageAction::Refused(format!(
            "image {image:?} is not on this engine and its pull policy is `never`: load \
             or build it first, or allow pulling (`--pull missing`)"
        ))
    } else {
        // With both `image:` and `build:`, Compose pulls first; a failed pull builds.
        ImageAction::Pull
    }
}

/// Advice for a failed pull, chosen from the registry's own message.
pub fn pull_advice(message: &str, image: &ImageRef) -> String {
    let m = message.to_ascii_lowercase();
    let reg = &image.registry;
    if m.contains("unauthorized")
        || m.contains("authentication required")
        || m.contains("denied")
        || m.contains("basic auth")
        || m.contains("credentials")
    {
        format!(
            "log in first (`docker login {reg}`, which osmen reads from the Docker config \
             file), or check that this account may read the repository"
        )
    } else if m.contains("toomanyrequests") || m.contains("rate limit") {
        format!("the registry is rate-limiting pulls: log in (`docker login {reg}`) or retry later")
    } else if m.contains("not found") || m.contains("manifest unknown") || m.contains("unknown") {
        "check the image name and tag; with a local image use `--pull never`".to_string()
    } else if m.contains("connection refused")
        || m.contains("no such host")
        || m.contains("timeout")
        || m.contains("network is unreachable")
        || m.contains("dial tcp")
    {
        format!(
            "the registry {reg} cannot be reached from the engine: check the network, or \
             use `--pull never` with images already on this engine"
        )
    } else {
        "check the image reference, or use `--pull never` with a local image".to_string()
    }
}

fn credentials_for(image: &ImageRef, sink: &ImageSink) -> Option<super::image::Credentials> {
    let path = docker_config_path()?;
    let text = std::fs::read_to_string(&path).ok()?;
    match lookup_credentials(&text, &image.registry) {
        Ok(CredentialLookup::Found(c)) => Some(c),
        Ok(CredentialLookup::None) => None,
        Ok(CredentialLookup::Helper(h)) => {
            sink(ImageEvent::Note(format!(
                "{}: the Docker config names credential helper docker-credential-{h} for \
                 {}; osmen does not run credential helpers, so it pulls anonymously (add an \
                 `auths` entry to use credentials)",
                path.display(),
                image.registry
            )));
            None
        }
        Err(e) => {
            sink(ImageEvent::Note(format!(
                "{}: {e}; pulling anonymously",
                path.display()
            )));
            None
        }
    }
}

/// Why an image could not be pulled or built.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The registry or the engine refused the pull, in its own words.
    #[error("{message}")]
    PullRefused { image: String, message: String },
    #[error(transparent)]
    Engine(EngineError),
    #[error("service {service} has no `build:` section")]
    NoBuild { service: String },
    #[error(
        "build context {} has no {dockerfile}: create it or set build.dockerfile",
        context.display()
    )]
    NoDockerfile {
        context: std::path::PathBuf,
        dockerfile: String,
    },
    /// The task reading the build context ended without an answer.
    #[error("{0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("cannot read the build context {}: {source}", context.display())]
    Context {
        context: std::path::PathBuf,
        source: std::io::Error,
    },
    /// The builder's error, the step it failed at and the last lines that step printed.
    #[error("build failed{}: {error}{}", at_step(step), step_output(output))]
    BuildFailed {
        step: String,
        error: EngineError,
        output: Vec<String>,
    },
    #[error("the builder ended without producing {image}")]
    NotProduced { image: String },
}

fn at_step(step: &str) -> String {
    if step.is_empty() {
        String::new()
    } else {
        format!(" at {step}")
    }
}

fn step_output(lines: &[String]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!(
            "\n    output of that step:\n      {}",
            lines.join("\n      ")
        )
    }
}

/// Pulls one image to the end, forwarding progress. Returns the registry's message on
/// failure.
pub async fn pull_one<E: Engine>(
    engine: &E,
    image: &str,
    sink: &ImageSink,
) -> Result<(), ProvisionError> {
    let r = ImageRef::parse(image);
    let creds = credentials_for(&r, sink);
    let mut stream = engine.pull(&r, creds);
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(event) => sink(ImageEvent::Layer {
                image: image.to_string(),
                event,
            }),
            Err(EngineError::Image(message)) => {
                return Err(ProvisionError::PullRefused {
                    image: image.to_string(),
                    message,
                });
            }
            Err(e) => return Err(ProvisionError::Engine(e)),
        }
    }
    sink(ImageEvent::Pulled {
        image: image.to_string(),
    });
    Ok(())
}

/// Builds one service's image. On failure: the failing step and its output.
pub async fn build_one<E: Engine>(
    engine: &E,
    project: &Project,
    svc: &Service,
    sink: &ImageSink,
) -> Result<String, ProvisionError> {
    let Some(build) = &svc.build else {
        return Err(ProvisionError::NoBuild {
            service: svc.name.clone(),
        });
    };
    let image = service_image(project, svc);
    let dockerfile = build
        .dockerfile
        .clone()
        .unwrap_or_else(|| "Dockerfile".into());
    let ctx_dir = build.context.clone();
    if !ctx_dir.join(&dockerfile).is_file() {
        return Err(ProvisionError::NoDockerfile {
            context: ctx_dir,
            dockerfile,
        });
    }
    let df = dockerfile.clone();
    let (tar, summary) = tokio::task::spawn_blocking(move || context_tar(&ctx_dir, &df))
        .await?
        .map_err(|source| ProvisionError::Context {
            context: build.context.clone(),
            source,
        })?;
    sink(ImageEvent::BuildStarted {
        service: svc.name.clone(),
        image: image.clone(),
        files: summary.files,
        bytes: summary.bytes,
        excluded: summary.excluded.len(),
    });
    let mut labels: HashMap<String, String> = build
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert("com.docker.compose.project".into(), project.name.clone());
    labels.insert("com.docker.compose.service".into(), svc.name.clone());
    let req = BuildRequest {
        tag: image.clone(),
        dockerfile,
        args: build
            .args
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        target: build.target.clone(),
        labels,
    };
    let mut stream = engine.build(req, tar);
    let mut step = String::new();
    let mut since_step: Vec<String> = Vec::new();
    let mut built = false;
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(BuildEvent::Output(text)) => {
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    if line.starts_with("Step ") {
                        step = line.to_string();
                        since_step.clear();
                    } else {
                        since_step.push(line.to_string());
                        if since_step.len() > 20 {
                            since_step.remove(0);
                        }
                    }
                    sink(ImageEvent::BuildOutput {
                        service: svc.name.clone(),
                        line: line.to_string(),
                    });
                }
            }
            Ok(BuildEvent::Built(_)) => built = true,
            Err(error) => {
                return Err(ProvisionError::BuildFailed {
                    step,
                    error,
                    output: since_step,
                });
            }
        }
    }
    if !built && !engine.image_exists(&image).await.unwrap_or(false) {
        return Err(ProvisionError::NotProduced { image });
    }
    sink(ImageEvent::Built {
        service: svc.name.clone(),
        image: image.clone(),
    });
    Ok(image)
}

/// Carries out the plans: pulls in parallel (at most PARALLEL_PULLS), then builds one at
/// a time. Every failure is collected; nothing is created by this step.
pub async fn provision<E: Engine>(
    engine: Arc<E>,
    project: Arc<Project>,
    plans: &[ImagePlan],
    sink: ImageSink,
) -> Result<(), Vec<String>> {
    let mut failures: Vec<String> = Vec::new();
    for p in plans {
        if let ImageAction::Refused(why) = &p.action {
            sink(ImageEvent::PullFailed {
                service: p.service.clone(),
                image: p.image.clone(),
                message: why.clone(),
            });
            failures.push(format!("{}: {why}", p.service));
        }
    }
    // One pull per image, however many services share it.
    let mut pulls: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in plans.iter().filter(|p| p.action == ImageAction::Pull) {
        pulls
            .entry(p.image.clone())
            .or_default()
            .push(p.service.clone());
    }
    let sem = Arc::new(Semaphore::new(PARALLEL_PULLS));
    let mut set = JoinSet::new();
    for (image, services) in pulls {
        let engine = engine.clone();
        let sink = sink.clone();
        let sem = sem.clone();
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            sink(ImageEvent::PullStarted {
                image: image.clone(),
                services: services.clone(),
            });
            let r = pull_one(&*engine, &image, &sink).await;
            (image, services, r)
        });
    }
    let mut build_after_pull: Vec<String> = Vec::new();
    while let Some(j) = set.join_next().await {
        let Ok((image, services, r)) = j else {
            failures.push("a pull task failed".into());
            continue;
        };
        if let Err(msg) = r {
            let msg = msg.to_string();
            for s in &services {
                if project.services[s].build.is_some() {
                    sink(ImageEvent::Note(format!(
                        "{s}: pulling {image} failed ({msg}); building it instead"
                    )));
                    build_after_pull.push(s.clone());
                } else {
                    let advice = pull_advice(&msg, &ImageRef::parse(&image));
                    let message =
                        format!("cannot pull image {image}: {}\nfix: {advice}", msg.trim());
                    sink(ImageEvent::PullFailed {
                        service: s.clone(),
                        image: image.clone(),
                        message: message.clone(),
                    });
                    failures.push(format!("{s}: {}", message.replace('\n', "\n    ")));
                }
            }
        }
    }
    let builds: BTreeSet<String> = plans
        .iter()
        .filter(|p| p.action == ImageAction::Build)
        .map(|p| p.service.clone())
        .chain(build_after_pull)
        .collect();
    let mut built_images: BTreeSet<String> = BTreeSet::new();
    for s in builds {
        let svc = &project.services[&s];
        if !built_images.insert(service_image(&project, svc)) {
            continue;
        }
        if let Err(msg) = build_one(&*engine, &project, svc, &sink).await {
            failures.push(format!("{s}: {msg}"));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        failures.sort();
        Err(failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::compose::{LoadOptions, load_str};

    fn svc(extra: &str) -> Service {
        let src = format!("services:\n  a:\n    image: r.example/a:1\n{extra}");
        let opts = LoadOptions {
            project_name: Some("p".into()),
            ..Default::default()
        };
        let p = load_str(&src, std::path::Path::new("/x/compose.yml"), &opts).unwrap();
        p.services["a"].clone()
    }

    /// `daily`, `weekly` and `every_<d>` pull an image the engine tagged longer ago than
    /// that, and use a fresher one; a missing image is pulled as with `missing`.
    #[test]
    fn time_based_policies_pull_only_a_stale_or_missing_image() {
        let s = svc("");
        let daily = PullPolicy::parse("daily").unwrap();
        let hour = 3_600.0;
        assert_eq!(decide(daily, &s, "a", Some(25.0 * hour)), ImageAction::Pull);
        assert_eq!(
            decide(daily, &s, "a", Some(23.0 * hour)),
            ImageAction::Present
        );
        assert_eq!(decide(daily, &s, "a", None), ImageAction::Pull);
        let every = PullPolicy::parse("every_90m").unwrap();
        assert_eq!(decide(every, &s, "a", Some(5_401.0)), ImageAction::Pull);
        assert_eq!(decide(every, &s, "a", Some(5_399.0)), ImageAction::Present);
        // The other policies are untouched by age.
        assert_eq!(
            decide(PullPolicy::Missing, &s, "a", Some(1e9)),
            ImageAction::Present
        );
        assert_eq!(
            decide(PullPolicy::Always, &s, "a", Some(1.0)),
            ImageAction::Pull
        );
        let built = svc("    build: .\n");
        assert_eq!(decide(daily, &built, "a", None), ImageAction::Pull);
    }
}
