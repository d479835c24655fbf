//! `osmen doctor`: everything a first run needs, one line per check with the fix for
//! each failure. It runs even when the compose file is broken or no engine answers.

use std::collections::BTreeSet;
use std::net::TcpListener;

use super::{Ctx, NO, OK, out};
use crate::cli::Global;
use crate::collect::gpu;
use crate::model::units::format_bytes;
use crate::stack::engine::{DockerEngine, Engine};
use crate::stack::provision::{self, ImageAction};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone)]
pub struct Check {
    pub status: Status,
    pub name: &'static str,
    pub detail: String,
}

fn check(status: Status, name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        status,
        name,
        detail: detail.into(),
    }
}

/// Free space below which pulling the stack's images is refused, and the level that
/// earns a warning when images still have to come.
const DISK_FAIL: u64 = 2 << 30;
const DISK_WARN: u64 = 20 << 30;

/// Every check, in the order they are shown: the compose file, the runtime directory,
/// the engine, the images, the ports, the disk and the GPU. Without an engine the checks
/// that need one say so; without a compose file they are left out.
pub async fn checks(global: &Global) -> Vec<Check> {
    let mut out = Vec::new();
    let ctx = compose_check(global, &mut out);
    if let Some(c) = &ctx {
        out.push(runtime_check(c));
    }
    let engine = match DockerEngine::connect().await {
        Ok(e) => e,
        Err(e) => {
            // A context that could not be read is the whole error: the default's
            // endpoint, which was not used, is not named beside it.
            let env = crate::stack::remote::HostEnv::from_process();
            let text = match env.context_error {
                Some(_) => e.to_string(),
                None => format!("{e} ({})", env.describe()),
            };
            out.push(check(Status::Fail, "engine", text));
            out.push(check(
                Status::Warn,
                "images",
                "not checked: no engine (osmen pulls or builds missing images on `up`)",
            ));
            gpu_check(&mut out, ctx.as_ref(), None);
            return out;
        }
    };
    let (engine_check, info) = engine_check(&engine).await;
    out.push(engine_check);
    let Some(c) = ctx else {
        return out;
    };
    let active = c.project.active_services(&c.global.profiles, &[]);
    let (images, to_fetch) = images_check(&engine, &c, &active).await;
    out.push(images);
    let ports = ports_check(&engine, &c, &active).await;
    out.push(gateway_port(&c.runtime_dir).await);
    out.push(ports);
    // Disk: the engine's data directory, when it is on this machine.
    if let Some(root) = info.as_ref().and_then(|i| i.root_dir.clone()) {
        out.push(disk_check(&root, to_fetch));
    }
    gpu_check(
        &mut out,
        Some(&c),
        info.as_ref().map(|i| i.runtimes.clone()),
    );
    out
}

/// The compose file loads (a first-run secret `up` creates is a warning).
fn compose_check(global: &Global, out: &mut Vec<Check>) -> Option<Ctx> {
    match Ctx::load_first_run(global, super::FirstRun::Preview) {
        Ok((c, pending)) => {
            let active = c.project.active_services(&global.profiles, &[]);
            out.push(check(
                Status::Ok,
                "compose",
                format!(
                    "{} is valid: project {}, {} active service(s): {}",
                    global
                        .compose_files()
                        .unwrap_or_default()
                        .iter()
                        .map(|f| f.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    c.project.name,
                    active.len(),
                    active.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
            // A fresh clone's missing database password: `up` creates it.
            if let Some(p) = pending {
                out.push(check(Status::Warn, "secrets", p));
            }
            Some(c)
        }
        Err(e) => {
            out.push(check(Status::Fail, "compose", format!("{e:#}")));
            None
        }
    }
}

/// The runtime directory takes the journal.
fn runtime_check(c: &Ctx) -> Check {
    let dir = &c.runtime_dir;
    let ok = std::fs::create_dir_all(dir).is_ok() && tempfile_probe(dir).is_ok();
    if ok {
        check(
            Status::Ok,
            "runtime",
            format!("{} is writable (journal)", dir.display()),
        )
    } else {
        check(
            Status::Fail,
            "runtime",
            format!(
                "{} is not writable: the supervisor journals every action there; fix \
                 its permissions or set OSMEN_RUNTIME_DIR",
                dir.display()
            ),
        )
    }
}

/// The engine answers and speaks a recent enough API; its info for the later checks.
async fn engine_check(engine: &DockerEngine) -> (Check, Option<crate::stack::engine::EngineInfo>) {
    match engine.info().await {
        Ok(i) => {
            let api: f64 = i.api_version.parse().unwrap_or(0.0);
            let c = if api >= 1.41 {
                check(
                    Status::Ok,
                    "engine",
                    format!(
                        "Docker {} (API {}) at {}; {}",
                        i.version,
                        i.api_version,
                        i.host,
                        crate::stack::remote::HostEnv::from_process().describe()
                    ),
                )
            } else {
                check(
                    Status::Fail,
                    "engine",
                    format!(
                        "Docker {} speaks API {}; osmen needs 1.41 or newer: upgrade the engine",
                        i.version, i.api_version
                    ),
                )
            };
            (c, Some(i))
        }
        Err(e) => (check(Status::Fail, "engine", e.to_string()), None),
    }
}

/// Every active service's image present, or to pull or build; with the count to fetch.
async fn images_check(engine: &DockerEngine, c: &Ctx, active: &BTreeSet<String>) -> (Check, usize) {
    let mut to_fetch = 0usize;
    let found = match provision::plan_images(engine, &c.project, active, None).await {
        Ok(plans) => {
            let list = |a: &ImageAction| -> Vec<String> {
                plans
                    .iter()
                    .filter(|p| &p.action == a)
                    .map(|p| format!("{} ({})", p.image, p.service))
                    .collect()
            };
            let (pull, build) = (list(&ImageAction::Pull), list(&ImageAction::Build));
            let refused: Vec<String> = plans
                .iter()
                .filter_map(|p| match &p.action {
                    ImageAction::Refused(w) => Some(format!("{}: {w}", p.service)),
                    _ => None,
                })
                .collect();
            to_fetch = pull.len() + build.len();
            let present = plans.len() - to_fetch - refused.len();
            if !refused.is_empty() {
                check(Status::Fail, "images", refused.join("; "))
            } else if to_fetch == 0 {
                check(Status::Ok, "images", format!("all {present} present"))
            } else {
                let mut d = format!("{present} present");
                if !pull.is_empty() {
                    d.push_str(&format!("; `osmen up` will pull {}", pull.join(", ")));
                }
                if !build.is_empty() {
                    d.push_str(&format!("; `osmen up` will build {}", build.join(", ")));
                }
                check(Status::Warn, "images", d)
            }
        }
        Err(e) => check(Status::Fail, "images", e.to_string()),
    };
    (found, to_fetch)
}

/// Ports: free, or held by this project's own containers.
async fn ports_check(engine: &DockerEngine, c: &Ctx, active: &BTreeSet<String>) -> Check {
    let rows = engine
        .list_containers(&c.project.name)
        .await
        .unwrap_or_default();
    let mut busy = Vec::new();
    let mut checked = 0;
    let mut seen = BTreeSet::new();
    for name in active {
        for p in &c.project.services[name].ports {
            // A range is the engine's to pick in: only a fixed port can be checked here.
            let (Some(port), true) = (p.host_port(), p.protocol == "tcp") else {
                continue;
            };
            let ip = p.host_ip.clone().unwrap_or_else(|| "0.0.0.0".into());
            if !seen.insert((ip.clone(), port)) {
                continue;
            }
            checked += 1;
            let addr = if ip.contains(':') {
                format!("[{ip}]:{port}")
            } else {
                format!("{ip}:{port}")
            };
            if TcpListener::bind(&addr).is_ok() {
                continue;
            }
            let ours = rows
                .iter()
                .any(|r| r.service == *name && r.ports.iter().any(|rp| rp.host_port == port));
            if !ours {
                busy.push(format!(
                    "{addr} ({name}) is in use by another program: stop it, or change the \
                     published port in {}",
                    c.project.file.display()
                ));
            }
        }
    }
    if busy.is_empty() {
        check(
            Status::Ok,
            "ports",
            format!("{checked} published port(s) free or held by the stack"),
        )
    } else {
        check(Status::Fail, "ports", busy.join("; "))
    }
}

/// Free space under the engine's data directory, against what is still to fetch.
fn disk_check(root: &str, to_fetch: usize) -> Check {
    match crate::sys::space(root) {
        Ok(s) if s.available < DISK_FAIL => check(
            Status::Fail,
            "disk",
            format!(
                "only {} free under {root}: free space (`docker system prune`) before \
                 pulling images",
                format_bytes(s.available)
            ),
        ),
        Ok(s) if s.available < DISK_WARN && to_fetch > 0 => check(
            Status::Warn,
            "disk",
            format!(
                "{} free under {root} and {to_fetch} image(s) to fetch; the stack's images \
                 take several GiB",
                format_bytes(s.available)
            ),
        ),
        Ok(s) => check(
            Status::Ok,
            "disk",
            format!(
                "{} free of {} under {root}",
                format_bytes(s.available),
                format_bytes(s.total)
            ),
        ),
        Err(_) => check(
            Status::Warn,
            "disk",
            format!("the engine's data directory {root} is not on this machine; not measured"),
        ),
    }
}

/// The console's embedded gateway port: free, or held by a running osmen console's
/// gateway (`runtime/gateway.addr` names it and it answers `/health`).
async fn gateway_port(runtime_dir: &std::path::Path) -> Check {
    let listen = std::env::var("OSMEN_GATEWAY_LISTEN")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| crate::gateway::addrfile::DEFAULT_LISTEN.to_string());
    let Ok(addr) = listen.parse::<std::net::SocketAddr>() else {
        return check(
            Status::Fail,
            "gateway",
            format!(
                "OSMEN_GATEWAY_LISTEN={listen:?} is not an address: write IP:PORT, such as \
                 127.0.0.1:8080"
            ),
        );
    };
    if TcpListener::bind(addr).is_ok() {
        return check(
            Status::Ok,
            "gateway",
            format!("{addr} is free for the console's gateway"),
        );
    }
    let recorded = crate::gateway::addrfile::read(runtime_dir);
    let client = crate::http::client(|b| b.timeout(std::time::Duration::from_secs(1)));
    let answers = match recorded {
        Some(r) if r.port() == addr.port() => client
            .get(format!("http://{r}/health"))
            .send()
            .await
            .is_ok_and(|x| x.status().is_success()),
        _ => false,
    };
    if answers {
        check(
            Status::Ok,
            "gateway",
            format!(
                "{addr} is held by a running osmen console's gateway ({} names it); a new \
                 console shows that one",
                crate::gateway::addrfile::path(runtime_dir).display()
            ),
        )
    } else {
        check(
            Status::Fail,
            "gateway",
            format!(
                "{addr} is in use by another program: stop it, or give the console's gateway \
                 another address with OSMEN_GATEWAY_LISTEN=127.0.0.1:PORT"
            ),
        )
    }
}

fn tempfile_probe(dir: &std::path::Path) -> std::io::Result<()> {
    let p = dir.join(".doctor-probe");
    std::fs::write(&p, b"ok")?;
    std::fs::remove_file(&p)
}

fn gpu_check(out: &mut Vec<Check>, ctx: Option<&Ctx>, runtimes: Option<Vec<String>>) {
    let wanting: Vec<String> = ctx
        .map(|c| {
            c.project
                .active_services(&c.global.profiles, &[])
                .into_iter()
                .filter(|s| !c.project.services[s].resources.gpus.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let probe = gpu::probe();
    if wanting.is_empty() {
        let d = match &probe {
            Ok(p) => format!(
                "driver {}, {} device(s); no active service reserves one",
                p.driver,
                p.devices.len()
            ),
            Err(e) => format!("none needed (no active service reserves a GPU); {e}"),
        };
        out.push(check(Status::Ok, "gpu", d));
        return;
    }
    let who = wanting.join(", ");
    match probe {
        Err(e) => out.push(check(
            Status::Fail,
            "gpu",
            format!(
                "{who} reserve(s) an NVIDIA GPU but {e}: install the NVIDIA driver, or run \
                 without the profile that enables {who}"
            ),
        )),
        Ok(p) => {
            let names: Vec<String> = p
                .devices
                .iter()
                .map(|d| format!("{} {}", d.index, d.name))
                .collect();
            out.push(check(
                Status::Ok,
                "gpu",
                format!("driver {}, devices: {}", p.driver, names.join(", ")),
            ));
            let hook = std::env::var_os("PATH").is_some_and(|path| {
                std::env::split_paths(&path).any(|d| d.join("nvidia-container-cli").is_file())
            });
            let runtime = runtimes
                .unwrap_or_default()
                .iter()
                .any(|r| r.contains("nvidia"));
            out.push(if hook || runtime {
                check(
                    Status::Ok,
                    "gpu-engine",
                    "the engine can hand GPUs to containers",
                )
            } else {
                check(
                    Status::Fail,
                    "gpu-engine",
                    format!(
                        "{who} need(s) GPUs in containers but the engine has no NVIDIA runtime \
                         and nvidia-container-cli is not installed: install the NVIDIA \
                         Container Toolkit and restart the engine"
                    ),
                )
            });
        }
    }
}

pub fn render(checks: &[Check]) -> String {
    let mut s = String::new();
    for c in checks {
        let tag = match c.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        s.push_str(&format!("{tag} {:<10} {}\n", c.name, c.detail));
    }
    s
}

/// What the bare `osmen` says before its help: what is missing and what `up` will do.
pub async fn first_run(global: &Global) -> String {
    let cs = checks(global).await;
    let relevant: Vec<Check> = cs
        .into_iter()
        .filter(|c| matches!(c.name, "compose" | "secrets" | "engine" | "images"))
        .collect();
    let mut s = render(&relevant);
    if relevant.iter().any(|c| c.status == Status::Fail) {
        s.push_str(
            "Fix the FAIL lines above, then run `osmen up`; `osmen doctor` checks more.\n\n",
        );
    } else if relevant.iter().any(|c| c.status == Status::Warn) {
        s.push_str("`osmen up` will fetch what is missing, then start the stack.\n\n");
    } else {
        match running_now(global).await {
            Some(line) => s.push_str(&line),
            None => s.push_str("Ready: `osmen up --wait` starts the stack.\n\n"),
        }
    }
    s
}

/// Where the stack stands when it has containers: `The stack is running: 4 of 4
/// containers running (4 healthy)`, and what to run next.
async fn running_now(global: &Global) -> Option<String> {
    let ctx = Ctx::load(global).ok()?;
    let engine = DockerEngine::connect().await.ok()?;
    let rows = engine.list_containers(&ctx.project.name).await.ok()?;
    if rows.is_empty() {
        return None;
    }
    let running = rows.iter().filter(|r| r.state == "running").count();
    let healthy = rows
        .iter()
        .filter(|r| r.state == "running" && r.health == crate::model::container::Health::Healthy)
        .count();
    let unhealthy = rows
        .iter()
        .filter(|r| r.state == "running" && r.health == crate::model::container::Health::Unhealthy)
        .count();
    let head = if running == rows.len() {
        "The stack is running"
    } else if running == 0 {
        "The stack is stopped"
    } else {
        "The stack is partly running"
    };
    let mut line = format!(
        "{head}: {running} of {} containers running ({healthy} healthy",
        rows.len()
    );
    if unhealthy > 0 {
        line.push_str(&format!(", {unhealthy} unhealthy"));
    }
    line.push_str(
        "). `osmen status` shows it now, `osmen` in a terminal opens the console; \
         `osmen up --wait` starts what is not running.\n\n",
    );
    Some(line)
}

pub async fn run(global: &Global) -> anyhow::Result<u8> {
    let cs = checks(global).await;
    out(&render(&cs))?;
    Ok(if cs.iter().any(|c| c.status == Status::Fail) {
        NO
    } else {
        OK
    })
}
