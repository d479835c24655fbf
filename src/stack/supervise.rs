//! The supervisor: brings the stack up in dependency order (independent services in
//! parallel), takes it down in reverse, restarts what crashes with exponential backoff and
//! holds what crash-loops. Every action is journaled before it is carried out.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::compose::{Condition, HealthTest, Project, Restart, Service};
use super::engine::{
    Engine, EngineError, LABEL_HASH, LABEL_NETWORK, LABEL_OSMEN, LABEL_PROJECT, LABEL_VOLUME,
};
use super::journal::Journal;
use super::plan;
use super::provision;
use crate::model::config::SupervisorConfig;
use crate::model::container::{ContainerRow, Health};

/// Progress lines for the operator (stderr for the CLI, the event log for the console).
pub type Reporter = Arc<dyn Fn(&str) + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    // Not a `source`: the message already says it, and a chain would say it twice.
    #[error("cannot write the journal {path}: {error} (osmen does not act unrecorded)")]
    Journal { path: String, error: std::io::Error },
    #[error("{0}")]
    Plan(String),
    #[error("{}", .0.join("\n"))]
    Failed(Vec<String>),
}

type SResult<T> = Result<T, SuperviseError>;

#[derive(Debug, Clone, PartialEq)]
enum SvcState {
    Pending,
    Running,
    Healthy,
    /// Still starting; the text says why (health state, last check output).
    Starting(String),
    Exited(i64),
    Failed(String),
}

#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// Wait until every started service is healthy (or running, without a health check).
    pub wait: bool,
    /// Recreate containers even when their configuration is unchanged.
    pub force_recreate: bool,
    /// `--pull POLICY`: overrides every service's pull_policy.
    pub pull: Option<super::image::PullPolicy>,
}

/// What `up` did to each service.
#[derive(Debug, Clone, PartialEq)]
pub struct UpOutcome {
    pub service: String,
    /// created, recreated, started, unchanged, adopted.
    pub action: String,
    pub state: String,
}

pub struct Supervisor<E: Engine> {
    engine: Arc<E>,
    project: Arc<Project>,
    cfg: SupervisorConfig,
    journal: Arc<Journal>,
    report: Reporter,
    /// One balancer rewrite at a time: a target's and its balancer's tasks both rewrite,
    /// and an older list must not land after a newer one.
    balance: Arc<tokio::sync::Mutex<()>>,
}

/// Gives a recreated container the anonymous volumes of the one it replaces: a volume of
/// the old container that is none of the project's named volumes, at a path the new spec
/// mounts anonymously or not at all (an image `VOLUME`), is mounted there by name.
/// (docker-compose and compose v2 keep them the same way.)
fn inherit_anonymous_volumes(
    spec: &mut super::engine::ContainerSpec,
    project: &Project,
    old: &[(String, String)],
) {
    use super::compose::{Mount, MountKind};
    let named: BTreeSet<&str> = project.volumes.values().map(|v| v.name.as_str()).collect();
    for (volume, target) in old {
        if named.contains(volume.as_str()) {
            continue;
        }
        match spec.mounts.iter_mut().find(|m| m.target == *target) {
            Some(m) if m.kind == MountKind::Volume && m.source.is_none() => {
                m.source = Some(volume.clone())
            }
            Some(_) => {}
            // With volumes_from, a path the file does not mount may come from another
            // container: the engine gives it again.
            None if !spec.settings.volumes_from.is_empty() => {}
            None => spec.mounts.push(Mount::new(
                MountKind::Volume,
                Some(volume.clone()),
                target.clone(),
                false,
            )),
        }
    }
}

impl<E: Engine> Clone for Supervisor<E> {
    fn clone(&self) -> Self {
        Supervisor {
            engine: self.engine.clone(),
            project: self.project.clone(),
            cfg: self.cfg.clone(),
            journal: self.journal.clone(),
            report: self.report.clone(),
            balance: self.balance.clone(),
        }
    }
}

fn base_labels(project: &str) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_PROJECT.to_string(), project.to_string()),
        (LABEL_OSMEN.to_string(), "true".to_string()),
    ])
}

impl<E: Engine> Supervisor<E> {
    pub fn new(
        engine: Arc<E>,
        project: Arc<Project>,
        cfg: SupervisorConfig,
        journal: Arc<Journal>,
        report: Reporter,
    ) -> Self {
        Supervisor {
            engine,
            project,
            cfg,
            journal,
            report,
            balance: Default::default(),
        }
    }

    fn record(&self, service: &str, action: &str, reason: &str) -> SResult<()> {
        self.journal
            .record(service, action, reason)
            .map_err(|error| SuperviseError::Journal {
                path: self.journal.path().display().to_string(),
                error,
            })
    }

    /// Creates one container; each warning the engine gives (a limit the kernel cannot
    /// honour) goes to the operator and the journal, with the service's name, as
    /// `docker` prints them.
    async fn create(&self, service: &str, spec: &super::engine::ContainerSpec) -> SResult<String> {
        let created = self.engine.create(spec).await?;
        for w in &created.warnings {
            (self.report)(&format!("{service}: WARNING: {w}"));
            self.record(service, "warning", &format!("{}: {w}", spec.name))?;
        }
        Ok(created.id)
    }

    /// Starts a container, then runs its service's `post_start` hooks in it; a failing
    /// hook stops the container again and is the error (the Compose Specification's rule).
    pub async fn start_container(&self, service: &str, id: &str) -> SResult<()> {
        self.engine.start(id).await?;
        let Some(svc) = self.project.services.get(service) else {
            return Ok(());
        };
        match super::hooks::post_start(&*self.engine, svc, id).await {
            Ok(0) => Ok(()),
            Ok(n) => self.record(service, "hook", &format!("post_start: {n} ran")),
            Err(why) => {
                self.record(service, "hook", &why)?;
                let _ = self.engine.stop(id, self.grace(Some(svc))).await;
                // `up` names the service in front of its failure.
                Err(SuperviseError::Failed(vec![format!(
                    "{why}; the container was stopped"
                )]))
            }
        }
    }

    /// Runs the service's `pre_stop` hooks in a running container, then stops it; a
    /// failing hook aborts the stop and is the error (the Compose Specification's rule).
    pub async fn stop_container(&self, service: &str, id: &str) -> SResult<()> {
        let svc = self.project.services.get(service);
        if let Some(s) = svc {
            match super::hooks::pre_stop(&*self.engine, s, id).await {
                Ok(0) => {}
                Ok(n) => self.record(service, "hook", &format!("pre_stop: {n} ran"))?,
                Err(why) => {
                    self.record(service, "hook", &why)?;
                    return Err(SuperviseError::Failed(vec![format!(
                        "{service}: {why}; the container was not stopped"
                    )]));
                }
            }
        }
        self.engine.stop(id, self.grace(svc)).await?;
        Ok(())
    }

    /// A container's volumes that are none of the project's named ones.
    async fn anonymous_volumes(&self, id: &str) -> SResult<Vec<String>> {
        let named: BTreeSet<&str> = self
            .project
            .volumes
            .values()
            .map(|v| v.name.as_str())
            .collect();
        Ok(self
            .engine
            .volume_mounts(id)
            .await?
            .into_iter()
            .map(|(name, _)| name)
            .filter(|n| !named.contains(n.as_str()))
            .collect())
    }

    fn grace(&self, svc: Option<&Service>) -> i64 {
        svc.and_then(|s| s.stop_grace_period)
            .unwrap_or(self.cfg.stop_grace)
            .as_secs() as i64
    }

    /// Creates networks and volumes, then converges every service in `targets`, each as
    /// soon as its dependencies meet their conditions.
    pub async fn up(
        &self,
        targets: &BTreeSet<String>,
        opts: &UpOptions,
        sink: provision::ImageSink,
    ) -> SResult<Vec<UpOutcome>> {
        let p = &self.project;
        // Scaling a service out starts the balancer in front of it (x-osmen-balance),
        // whatever profile it is in.
        let mut with_balancers = targets.clone();
        for (name, svc) in &p.services {
            if let Some(b) = &svc.balance
                && targets.contains(&b.service)
                && p.services.get(&b.service).is_some_and(|t| t.replicas > 1)
            {
                with_balancers.insert(name.clone());
            }
        }
        let targets = &with_balancers;
        // Images first: a pull or build that fails stops `up` before anything is created.
        let plans = provision::plan_images(&*self.engine, p, targets, opts.pull).await?;
        provision::provision(self.engine.clone(), self.project.clone(), &plans, sink)
            .await
            .map_err(SuperviseError::Failed)?;
        let nets: BTreeSet<String> = targets
            .iter()
            .flat_map(|s| {
                let svc = &p.services[s];
                if svc.networks.is_empty() {
                    vec!["default".to_string()]
                } else {
                    svc.networks.keys().cloned().collect()
                }
            })
            .collect();
        for key in nets {
            let def = &p.networks[&key];
            if def.external {
                continue;
            }
            let mut labels = base_labels(&p.name);
            labels.insert(LABEL_NETWORK.into(), key.clone());
            self.record("", "network", &format!("ensure network {}", def.name))?;
            if self.engine.ensure_network(def, labels).await? {
                (self.report)(&format!("network {} created", def.name));
            }
        }
        let vols: BTreeSet<String> = targets
            .iter()
            .flat_map(|s| {
                p.services[s]
                    .volumes
                    .iter()
                    .filter_map(|m| m.source.clone())
            })
            .filter(|v| p.volumes.contains_key(v))
            .collect();
        for key in vols {
            let def = &p.volumes[&key];
            if def.external {
                if !self.engine.volume_exists(&def.name).await? {
                    return Err(SuperviseError::Plan(format!(
                        "external volume {} does not exist: create it with `docker volume \
                         create {}`",
                        def.name, def.name
                    )));
                }
                continue;
            }
            let mut labels = base_labels(&p.name);
            labels.insert(LABEL_VOLUME.into(), key.clone());
            self.record("", "volume", &format!("ensure volume {}", def.name))?;
            if self.engine.ensure_volume(def, labels).await? {
                (self.report)(&format!("volume {} created", def.name));
            }
        }

        let existing = self.engine.list_containers(&p.name).await?;
        // Who must watch a service until it is healthy or has exited?
        let mut needs_health: BTreeSet<String> = BTreeSet::new();
        let mut needs_exit: BTreeSet<String> = BTreeSet::new();
        for t in targets {
            for (dep, d) in &p.services[t].depends_on {
                match d.condition {
                    Condition::ServiceHealthy => needs_health.insert(dep.clone()),
                    Condition::ServiceCompletedSuccessfully => needs_exit.insert(dep.clone()),
                    Condition::ServiceStarted => false,
                };
            }
        }
        let mut senders = BTreeMap::new();
        let mut receivers = BTreeMap::new();
        for t in targets {
            let (tx, rx) = watch::channel(SvcState::Pending);
            senders.insert(t.clone(), tx);
            receivers.insert(t.clone(), rx);
        }
        let receivers = Arc::new(receivers);
        // Engine events wake the observers at once (start, health_status, die); a slow
        // poll stays as a fallback for events missed while the stream connects.
        let (wake_tx, _) = tokio::sync::broadcast::channel::<String>(1024);
        let mut events = self.engine.events(&p.name);
        let wake = wake_tx.clone();
        let event_task = tokio::spawn(async move {
            while let Some(Ok(ev)) = events.next().await {
                let _ = wake.send(ev.container_id);
            }
        });
        let mut set = JoinSet::new();
        for t in targets {
            let wake = wake_tx.subscribe();
            let me = self.clone();
            let tx = senders.remove(t).expect("one sender per target");
            let rx = receivers.clone();
            let mine: Vec<ContainerRow> = existing
                .iter()
                .filter(|c| &c.service == t)
                .cloned()
                .collect();
            let watch_health = opts.wait || needs_health.contains(t);
            let watch_exit = needs_exit.contains(t);
            let force = opts.force_recreate;
            let name = t.clone();
            set.spawn(async move {
                let r = me
                    .run_service(&name, mine, &rx, &tx, wake, watch_health, watch_exit, force)
                    .await;
                if let Err(e) = &r {
                    tx.send_replace(SvcState::Failed(e.to_string()));
                }
                (name, r)
            });
        }
        let mut outcomes = Vec::new();
        let mut failures = Vec::new();
        while let Some(j) = set.join_next().await {
            match j {
                Ok((_, Ok(o))) => outcomes.push(o),
                Ok((name, Err(e))) => failures.push(format!("{name}: {e}")),
                Err(e) => failures.push(format!("a service task failed: {e}")),
            }
        }
        event_task.abort();
        outcomes.sort_by(|a, b| a.service.cmp(&b.service));
        if failures.is_empty() {
            Ok(outcomes)
        } else {
            failures.sort();
            Err(SuperviseError::Failed(failures))
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_service(
        &self,
        name: &str,
        mine: Vec<ContainerRow>,
        deps: &BTreeMap<String, watch::Receiver<SvcState>>,
        tx: &watch::Sender<SvcState>,
        wake: tokio::sync::broadcast::Receiver<String>,
        watch_health: bool,
        watch_exit: bool,
        force: bool,
    ) -> SResult<UpOutcome> {
        let svc = &self.project.services[name];
        // New containers are created at once, while dependencies are still coming up, so
        // that only `start` remains on the critical path.
        let mut precreated: BTreeMap<u32, String> = BTreeMap::new();
        // A container that joins or links to another service's is created once that
        // one's exists (after the dependency wait below).
        let refers = !svc.settings.service_refs().is_empty();
        for n in 1..=svc.replicas {
            if !refers && !mine.iter().any(|c| c.number == n) {
                let spec = plan::container_spec(&self.project, svc, n);
                self.record(name, "create", &format!("{name}#{n}: no container yet"))?;
                precreated.insert(n, self.create(name, &spec).await?);
            }
        }
        for (dep, d) in &svc.depends_on {
            let Some(rx) = deps.get(dep) else { continue };
            if let Err(why) = self.wait_for(name, dep, d.condition, rx.clone()).await {
                if d.required {
                    return Err(SuperviseError::Plan(why));
                }
                (self.report)(&format!(
                    "{name}: optional dependency {why}; starting anyway"
                ));
            }
        }
        if svc.balance.is_some() && !precreated.is_empty() {
            // New balancer containers get their upstream list before nginx first starts.
            self.sync_balancers(name, &[]).await?;
        }
        let mut action = "unchanged";
        let hash = plan::config_hash(&self.project, svc);
        let mut ids = Vec::new();
        for n in 1..=svc.replicas {
            let current = mine.iter().find(|c| c.number == n);
            let mut spec = plan::container_spec(&self.project, svc, n);
            let mut hash = hash.clone();
            if refers {
                let rows = self.engine.list_containers(&self.project.name).await?;
                plan::resolve_refs(&self.project, &mut spec, &rows)
                    .map_err(|why| SuperviseError::Plan(format!("{name}: {why}")))?;
                // A container joined to another's namespaces or volumes is current only
                // while that one is: a recreated `db` recreates what joins it.
                hash = plan::refs_hash(&hash, &spec);
                spec.labels.insert(LABEL_HASH.into(), hash.clone());
            }
            let label = format!("{name}#{n}");
            let id = match current {
                Some(c) if !force && (c.config_hash == hash || !is_osmen(c)) => {
                    if !is_osmen(c) && c.config_hash != hash {
                        action = "adopted";
                        self.record(
                            name,
                            "adopt",
                            &format!("{} was created by Compose; kept as it is", c.name),
                        )?;
                    }
                    if c.state != "running" && c.state != "restarting" {
                        self.record(name, "start", &format!("{label} was {}", c.state))?;
                        // A crash-loop hold set the policy to "no": give the file's back.
                        self.engine.set_restart(&c.id, &svc.restart).await?;
                        self.start_container(name, &c.id).await?;
                        action = "started";
                    }
                    c.id.clone()
                }
                Some(c) => {
                    let why = if force {
                        "--force-recreate"
                    } else {
                        "configuration changed"
                    };
                    self.record(name, "recreate", &format!("{label}: {why}"))?;
                    // The old container's anonymous volumes go to the new one, as
                    // `docker compose` keeps them: its data survives the recreate.
                    let kept = self.engine.volume_mounts(&c.id).await?;
                    self.stop_container(name, &c.id).await?;
                    self.engine.remove(&c.id).await?;
                    let mut spec = spec.clone();
                    inherit_anonymous_volumes(&mut spec, &self.project, &kept);
                    let id = self.create(name, &spec).await?;
                    self.start_container(name, &id).await?;
                    action = "recreated";
                    id
                }
                None => {
                    let id = match precreated.remove(&n) {
                        Some(id) => id,
                        None => self.create(name, &spec).await?,
                    };
                    self.record(name, "start", &format!("{label} created"))?;
                    self.start_container(name, &id).await?;
                    if action == "unchanged" {
                        action = "created";
                    }
                    id
                }
            };
            ids.push(id);
        }
        // Balancers learn the new replicas, and forget those about to go, before they go.
        let leaving: Vec<&str> = mine
            .iter()
            .filter(|c| c.number > svc.replicas)
            .map(|c| c.id.as_str())
            .collect();
        if self.sync_balancers(name, &leaving).await? && !leaving.is_empty() {
            // SIGHUP returns before nginx's new workers take over; a replica stopped at
            // once could still be handed a request on an old worker's connection.
            tokio::time::sleep(super::balance::DRAIN).await;
        }
        for extra in mine.iter().filter(|c| c.number > svc.replicas) {
            self.record(
                name,
                "remove",
                &format!("{}: scaled down to {} replicas", extra.name, svc.replicas),
            )?;
            self.stop_container(name, &extra.id).await?;
            self.engine.remove(&extra.id).await?;
        }
        if action != "unchanged" {
            (self.report)(&format!("{name}: {action}"));
        }
        let has_check = svc
            .healthcheck
            .as_ref()
            .is_some_and(|h| !matches!(h.test, Some(HealthTest::Disabled)));
        let state = self
            .observe(name, &ids, tx, wake, watch_health, watch_exit, has_check)
            .await?;
        Ok(UpOutcome {
            service: name.to_string(),
            action: action.to_string(),
            state,
        })
    }

    /// Rewrites and reloads every balancer in front of `service` (or `service` itself when
    /// it is one): its upstream is the running replicas of its target but `leaving`.
    /// Journaled before each write. True when a balancer was rewritten.
    pub async fn sync_balancers(&self, service: &str, leaving: &[&str]) -> SResult<bool> {
        let p = &self.project;
        let balancers: Vec<(&String, &super::compose::Balance)> = p
            .services
            .iter()
            .filter_map(|(n, s)| s.balance.as_ref().map(|b| (n, b)))
            .filter(|(n, b)| b.service == service || n.as_str() == service)
            .collect();
        if balancers.is_empty() {
            return Ok(false);
        }
        let _one = self.balance.lock().await;
        let rows = self.engine.list_containers(&p.name).await?;
        for (lb, b) in balancers {
            let mut replicas: Vec<&ContainerRow> = rows
                .iter()
                .filter(|r| {
                    r.service == b.service
                        && r.state == "running"
                        && !leaving.contains(&r.id.as_str())
                })
                .collect();
            replicas.sort_by_key(|r| r.number);
            let mut servers = Vec::new();
            for r in replicas {
                // The list's rows may predate a start: ask for the address when missing.
                let addr = match r.addresses.first() {
                    Some(a) => Some(a.clone()),
                    None => self.engine.inspect(&r.id).await?.addresses.first().cloned(),
                };
                if let Some(a) = addr {
                    servers.push(format!("{a}:{}", b.port));
                }
            }
            let conf = super::balance::nginx_conf(lb, b, &servers);
            for c in rows.iter().filter(|r| &r.service == lb) {
                self.record(
                    lb,
                    "balance",
                    &format!(
                        "{}: upstream {} = {}",
                        c.name,
                        super::balance::upstream_name(&b.service),
                        if servers.is_empty() {
                            "none".to_string()
                        } else {
                            servers.join(" ")
                        }
                    ),
                )?;
                self.engine
                    .write_file(
                        &c.id,
                        super::balance::CONF_DIR,
                        super::balance::CONF_FILE,
                        conf.as_bytes(),
                    )
                    .await?;
                if c.state == "running" {
                    self.engine.signal(&c.id, "HUP").await?;
                }
            }
            (self.report)(&format!(
                "{lb}: balancing {} replica(s) of {}",
                servers.len(),
                b.service
            ));
        }
        Ok(true)
    }

    /// Follows the service's containers until the state its dependents (or `--wait`)
    /// need is reached, publishing every change.
    #[allow(clippy::too_many_arguments)]
    async fn observe(
        &self,
        name: &str,
        ids: &[String],
        tx: &watch::Sender<SvcState>,
        mut wake: tokio::sync::broadcast::Receiver<String>,
        watch_health: bool,
        watch_exit: bool,
        has_check: bool,
    ) -> SResult<String> {
        let deadline = Instant::now() + self.cfg.health_timeout;
        loop {
            let mut rows = Vec::new();
            for id in ids {
                rows.push(self.engine.inspect(id).await?);
            }
            // A health check the image defines counts as much as one in the compose file.
            let has_check = has_check || rows.iter().any(|r| r.health != Health::None);
            let exited = rows
                .iter()
                .find(|r| r.state == "exited" || r.state == "dead");
            let state = if let Some(r) = exited {
                SvcState::Exited(r.exit_code.unwrap_or(0))
            } else if rows.iter().any(|r| r.health == Health::Unhealthy) {
                let r = rows.iter().find(|r| r.health == Health::Unhealthy);
                SvcState::Failed(format!(
                    "unhealthy; last check: {}",
                    r.map(|r| r.health_output.as_str()).unwrap_or("")
                ))
            } else if has_check && rows.iter().all(|r| r.health == Health::Healthy) {
                SvcState::Healthy
            } else if has_check {
                let r = rows.iter().find(|r| r.health != Health::Healthy);
                let out = r.map(|r| r.health_output.as_str()).unwrap_or("");
                SvcState::Starting(if out.is_empty() {
                    "health: starting (no check has finished yet)".to_string()
                } else {
                    format!("health: starting; last check said {out:?}")
                })
            } else if rows.iter().all(|r| r.state == "running") {
                SvcState::Running
            } else {
                SvcState::Starting(format!(
                    "state: {}",
                    rows.first().map(|r| r.state.as_str()).unwrap_or("?")
                ))
            };
            tx.send_replace(state.clone());
            let done = match &state {
                SvcState::Exited(_) | SvcState::Failed(_) | SvcState::Healthy => true,
                SvcState::Running => !watch_exit,
                SvcState::Starting(_) => !watch_health && !watch_exit && !has_check,
                SvcState::Pending => false,
            } || (!watch_health && !watch_exit);
            if done {
                return match state {
                    SvcState::Failed(why) if watch_health => Err(SuperviseError::Plan(why)),
                    SvcState::Exited(code) if watch_health && !watch_exit => {
                        Err(SuperviseError::Plan(format!("exited with code {code}")))
                    }
                    s => Ok(state_word(&s)),
                };
            }
            if Instant::now() >= deadline {
                let why = match state {
                    SvcState::Starting(w) => w,
                    other => state_word(&other),
                };
                let msg = format!(
                    "{name} did not become ready within {}: {why}",
                    crate::model::units::format_duration(self.cfg.health_timeout)
                );
                tx.send_replace(SvcState::Failed(msg.clone()));
                return Err(SuperviseError::Plan(msg));
            }
            let until = tokio::time::Instant::now() + Duration::from_millis(500);
            loop {
                match tokio::time::timeout_at(until, wake.recv()).await {
                    Ok(Ok(id)) if ids.contains(&id) => break,
                    Ok(Ok(_)) => continue,
                    // Missed some events: inspect now.
                    Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => break,
                    // No events any more: fall back to the poll period.
                    Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => {
                        tokio::time::sleep_until(until).await;
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
    }

    /// Waits for `dep` to meet `cond`, telling the operator every few seconds what blocks.
    async fn wait_for(
        &self,
        me: &str,
        dep: &str,
        cond: Condition,
        mut rx: watch::Receiver<SvcState>,
    ) -> Result<(), String> {
        let mut last_note = Instant::now();
        loop {
            let state = rx.borrow_and_update().clone();
            let verdict = match (&state, cond) {
                (SvcState::Failed(w), _) => Some(Err(format!("{dep} failed: {w}"))),
                (SvcState::Running | SvcState::Healthy, Condition::ServiceStarted) => Some(Ok(())),
                // Running with its health check still pending is started (as in Compose).
                (SvcState::Starting(w), Condition::ServiceStarted) if w.starts_with("health:") => {
                    Some(Ok(()))
                }
                (SvcState::Exited(_), Condition::ServiceStarted) => Some(Ok(())),
                (SvcState::Healthy, Condition::ServiceHealthy) => Some(Ok(())),
                (SvcState::Exited(c), Condition::ServiceHealthy) => Some(Err(format!(
                    "{dep} exited with code {c} before it was healthy"
                ))),
                (SvcState::Exited(0), Condition::ServiceCompletedSuccessfully) => Some(Ok(())),
                (SvcState::Exited(c), Condition::ServiceCompletedSuccessfully) => {
                    Some(Err(format!("{dep} exited with code {c}")))
                }
                _ => None,
            };
            if let Some(v) = verdict {
                return v;
            }
            if last_note.elapsed() >= Duration::from_secs(3) {
                let why = match &state {
                    SvcState::Starting(w) => w.clone(),
                    SvcState::Pending => "not started yet".to_string(),
                    other => state_word(other),
                };
                (self.report)(&format!("{me} waits for {dep} ({}): {why}", cond.as_str()));
                last_note = Instant::now();
            }
            // The dependency's task is done and its last state did not satisfy us.
            if let Ok(Err(_)) = tokio::time::timeout(Duration::from_secs(1), rx.changed()).await {
                let last = rx.borrow().clone();
                return Err(match (cond, &last) {
                    (Condition::ServiceHealthy, SvcState::Running) => format!(
                        "{dep} is running but has no health check, so it can never be \
                         healthy: add a healthcheck to {dep} or depend on it with \
                         condition service_started"
                    ),
                    _ => format!("{dep} ended as {}", state_word(&last)),
                });
            }
        }
    }

    /// Stops every container of the project in reverse dependency order, removes them
    /// and the project's networks; named volumes stay unless `volumes` is set.
    pub async fn down(&self, volumes: bool) -> SResult<usize> {
        let p = &self.project;
        let rows = self.engine.list_containers(&p.name).await?;
        let known: BTreeSet<String> = rows
            .iter()
            .map(|r| r.service.clone())
            .filter(|s| p.services.contains_key(s))
            .collect();
        let mut order: Vec<Vec<String>> = plan::levels(p, &known);
        order.reverse();
        // Containers of services no longer in the file go first.
        let orphans: Vec<String> = rows
            .iter()
            .map(|r| r.service.clone())
            .filter(|s| !p.services.contains_key(s))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        order.insert(0, orphans);
        let mut kept: Vec<(String, String)> = Vec::new();
        for level in order {
            let mut set = JoinSet::new();
            for svc in level {
                for r in rows.iter().filter(|r| r.service == svc) {
                    self.record(&svc, "stop", &format!("down: {}", r.name))?;
                    let me = self.clone();
                    let (id, service) = (r.id.clone(), svc.clone());
                    set.spawn(async move {
                        let r = me.stop_container(&service, &id).await;
                        (id, r)
                    });
                }
            }
            while let Some(j) = set.join_next().await {
                match j {
                    // A failing pre_stop hook aborts that stop: the container stays.
                    Ok((id, Err(e @ SuperviseError::Failed(_)))) => {
                        (self.report)(&format!("stop: {e}"));
                        kept.push((id, e.to_string()));
                    }
                    Ok((_, Err(e))) => (self.report)(&format!("stop: {e}")),
                    _ => {}
                }
            }
        }
        for r in rows
            .iter()
            .filter(|r| !kept.iter().any(|(id, _)| *id == r.id))
        {
            self.record(&r.service, "remove", &format!("down: {}", r.name))?;
            if volumes {
                // Its anonymous volumes too, as `docker compose down -v` removes them;
                // one a recreate handed on by name is not the engine's to remove with
                // the container, so it is removed after it.
                let anonymous = self.anonymous_volumes(&r.id).await?;
                self.engine.remove_with_volumes(&r.id).await?;
                for v in anonymous {
                    self.record(&r.service, "remove-volume", &format!("down --volumes: {v}"))?;
                    if let Err(e) = self.engine.remove_volume(&v).await {
                        (self.report)(&format!("volume {v} kept: {e}"));
                    }
                }
            } else {
                self.engine.remove(&r.id).await?;
            }
        }
        for net in self.engine.project_networks(&p.name).await? {
            self.record("", "remove-network", &net)?;
            if let Err(e) = self.engine.remove_network(&net).await {
                (self.report)(&format!("network {net} kept: {e}"));
            }
        }
        if volumes {
            for def in p.volumes.values().filter(|v| !v.external) {
                self.record(
                    "",
                    "remove-volume",
                    &format!("down --volumes: {}", def.name),
                )?;
                self.engine.remove_volume(&def.name).await?;
            }
        }
        if !kept.is_empty() {
            return Err(SuperviseError::Failed(
                kept.into_iter().map(|(_, why)| why).collect(),
            ));
        }
        Ok(rows.len())
    }

    /// Restarts every container of `service` (stop with its grace period, then start).
    pub async fn restart(&self, service: &str) -> SResult<usize> {
        let rows: Vec<ContainerRow> = self
            .engine
            .list_containers(&self.project.name)
            .await?
            .into_iter()
            .filter(|r| r.service == service)
            .collect();
        if rows.is_empty() {
            return Err(SuperviseError::Plan(format!(
                "service {service} has no container: run `osmen up {service}` first"
            )));
        }
        for r in &rows {
            self.record(service, "restart", &format!("operator asked: {}", r.name))?;
            let svc = self.project.services.get(service);
            self.stop_container(service, &r.id).await?;
            // A crash-loop hold set the policy to "no": give the file's back.
            if let Some(svc) = svc {
                self.engine.set_restart(&r.id, &svc.restart).await?;
            }
            self.start_container(service, &r.id).await?;
        }
        Ok(rows.len())
    }

    /// Follows the engine's events until `stop` turns true: restarts containers that exit
    /// unexpectedly or turn unhealthy, with exponential backoff, and holds crash loops.
    pub async fn watch(&self, mut stop: watch::Receiver<bool>) -> SResult<()> {
        let tracker = Arc::new(tokio::sync::Mutex::new(RestartTracker::new(
            self.cfg.crash_loop_restarts,
            self.cfg.crash_loop_window,
        )));
        // Containers the engine was asked to stop or kill: their `die` is intended.
        let mut intended: HashMap<String, Instant> = HashMap::new();
        (self.report)(&format!(
            "supervising project {} (crash loop: {} restarts in {})",
            self.project.name,
            self.cfg.crash_loop_restarts,
            crate::model::units::format_duration(self.cfg.crash_loop_window)
        ));
        loop {
            let mut events = self.engine.events(&self.project.name);
            loop {
                let ev = tokio::select! {
                    _ = stop.changed() => return Ok(()),
                    ev = events.next() => ev,
                };
                let ev = match ev {
                    None => break,
                    Some(Err(e)) => {
                        (self.report)(&format!("events stream: {e}; reconnecting"));
                        break;
                    }
                    Some(Ok(ev)) => ev,
                };
                intended.retain(|_, t| t.elapsed() < Duration::from_secs(120));
                match ev.action.as_str() {
                    "kill" | "stop" => {
                        intended.insert(ev.container_id.clone(), Instant::now());
                    }
                    "start" => {
                        intended.remove(&ev.container_id);
                        // osmen never starts a held container itself: this start is the
                        // operator's (`restart`, `up`), which lifts the hold.
                        if let Ok(row) = self.engine.inspect(&ev.container_id).await {
                            let key = format!("{}#{}", row.service, row.number);
                            if tracker.lock().await.release(&key) {
                                self.record(
                                    &row.service,
                                    "release",
                                    &format!("{}: started by the operator; hold lifted", row.name),
                                )?;
                            }
                        }
                    }
                    "die" if intended.contains_key(&ev.container_id) => {}
                    "die" => {
                        let why = format!(
                            "exited unexpectedly with code {}",
                            ev.exit_code.unwrap_or(-1)
                        );
                        self.on_failure(&ev.container_id, &ev.service, why, false, &tracker)
                            .await?;
                    }
                    "health_status: unhealthy" => {
                        let out = match self.engine.inspect(&ev.container_id).await {
                            Ok(r) => r.health_output,
                            Err(_) => String::new(),
                        };
                        self.on_failure(
                            &ev.container_id,
                            &ev.service,
                            format!("turned unhealthy; last check said {out:?}"),
                            true,
                            &tracker,
                        )
                        .await?;
                    }
                    _ => {}
                }
            }
            tokio::select! {
                _ = stop.changed() => return Ok(()),
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    async fn on_failure(
        &self,
        id: &str,
        service: &str,
        why: String,
        unhealthy: bool,
        tracker: &Arc<tokio::sync::Mutex<RestartTracker>>,
    ) -> SResult<()> {
        let Some(svc) = self.project.services.get(service).cloned() else {
            return Ok(());
        };
        let row = match self.engine.inspect(id).await {
            Ok(r) => r,
            Err(EngineError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let key = format!("{service}#{}", row.number);
        // A clean exit of a service that is not meant to run forever is a completion.
        if !unhealthy
            && row.exit_code == Some(0)
            && matches!(svc.restart, Restart::No | Restart::OnFailure(_))
        {
            self.record(
                service,
                "completed",
                &format!("{} exited with code 0", row.name),
            )?;
            return Ok(());
        }
        let verdict = tracker.lock().await.failure(&key, Instant::now());
        match verdict {
            Verdict::Held => return Ok(()),
            Verdict::CrashLoop(n) => {
                self.record(
                    service,
                    "crash-loop",
                    &format!(
                        "{}: {why}; {n} failures within {}: holding (no more restarts until \
                         `osmen restart {service}` or `osmen up`)",
                        row.name,
                        crate::model::units::format_duration(self.cfg.crash_loop_window)
                    ),
                )?;
                (self.report)(&format!(
                    "{service}: CRASH LOOP ({n} failures); holding {}",
                    row.name
                ));
                // Keep the engine from restarting it behind our back.
                self.engine.set_restart(id, &Restart::No).await?;
                if row.state == "running" || row.state == "restarting" {
                    self.engine.stop(id, 1).await?;
                }
                return Ok(());
            }
            Verdict::Restart(attempt) => {
                let engine_restarts = !unhealthy
                    && match &svc.restart {
                        Restart::Always | Restart::UnlessStopped => true,
                        Restart::OnFailure(max) => {
                            row.exit_code.unwrap_or(0) != 0
                                && max.is_none_or(|m| row.restart_count < i64::from(m))
                        }
                        Restart::No => false,
                    };
                if engine_restarts {
                    self.record(
                        service,
                        "observe",
                        &format!(
                            "{}: {why}; the engine restarts it (restart: {})",
                            row.name,
                            svc.restart.as_compose()
                        ),
                    )?;
                    return Ok(());
                }
                let delay = backoff(self.cfg.backoff_initial, self.cfg.backoff_max, attempt);
                self.record(
                    service,
                    "schedule-restart",
                    &format!(
                        "{}: {why}; restart {attempt} in {}",
                        row.name,
                        crate::model::units::format_duration(delay)
                    ),
                )?;
                (self.report)(&format!(
                    "{service}: {why}; restarting in {}",
                    crate::model::units::format_duration(delay)
                ));
                let me = self.clone();
                let id = id.to_string();
                let service = service.to_string();
                let tracker = tracker.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    if tracker.lock().await.is_held(&key) {
                        return;
                    }
                    let Ok(row) = me.engine.inspect(&id).await else {
                        return;
                    };
                    if row.state == "running" && !unhealthy {
                        return;
                    }
                    if me
                        .record(&service, "restart", &format!("{}: after backoff", row.name))
                        .is_err()
                    {
                        return;
                    }
                    if unhealthy {
                        let _ = me.stop_container(&service, &id).await;
                    }
                    if let Err(e) = me.start_container(&service, &id).await {
                        (me.report)(&format!("{service}: restart failed: {e}"));
                    }
                });
            }
        }
        Ok(())
    }
}

fn is_osmen(c: &ContainerRow) -> bool {
    c.managed
}

fn state_word(s: &SvcState) -> String {
    match s {
        SvcState::Pending => "pending".into(),
        SvcState::Running => "running".into(),
        SvcState::Healthy => "healthy".into(),
        SvcState::Starting(w) => format!("starting ({w})"),
        SvcState::Exited(c) => format!("exited({c})"),
        SvcState::Failed(w) => format!("failed: {w}"),
    }
}

/// The delay before restart number `attempt` (1-based): initial, 2x, 4x... up to `max`.
pub fn backoff(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
    initial.saturating_mul(factor).min(max)
}

#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Restart it; this is attempt N inside the window.
    Restart(u32),
    /// N failures inside the window: hold it.
    CrashLoop(u32),
    /// Already held.
    Held,
}

/// Counts failures per container inside a sliding window. Pure, so it is tested alone.
#[derive(Debug)]
pub struct RestartTracker {
    limit: u32,
    window: Duration,
    failures: HashMap<String, VecDeque<Instant>>,
    held: BTreeSet<String>,
}

impl RestartTracker {
    pub fn new(limit: u32, window: Duration) -> Self {
        RestartTracker {
            limit: limit.max(1),
            window,
            failures: HashMap::new(),
            held: BTreeSet::new(),
        }
    }

    pub fn failure(&mut self, key: &str, now: Instant) -> Verdict {
        if self.held.contains(key) {
            return Verdict::Held;
        }
        let q = self.failures.entry(key.to_string()).or_default();
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.window)
        {
            q.pop_front();
        }
        q.push_back(now);
        let n = q.len() as u32;
        if n >= self.limit {
            self.held.insert(key.to_string());
            Verdict::CrashLoop(n)
        } else {
            Verdict::Restart(n)
        }
    }

    pub fn is_held(&self, key: &str) -> bool {
        self.held.contains(key)
    }

    /// Lifts a hold and forgets the failures; true if the key was held.
    pub fn release(&mut self, key: &str) -> bool {
        let held = self.held.remove(key);
        if held {
            self.failures.remove(key);
        }
        held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let s = Duration::from_secs;
        assert_eq!(backoff(s(1), s(60), 1), s(1));
        assert_eq!(backoff(s(1), s(60), 2), s(2));
        assert_eq!(backoff(s(1), s(60), 4), s(8));
        assert_eq!(backoff(s(1), s(60), 10), s(60));
        assert_eq!(backoff(s(1), s(60), 1000), s(60));
    }

    #[test]
    fn crash_loop_inside_window_only() {
        let t0 = Instant::now();
        let mut t = RestartTracker::new(3, Duration::from_secs(60));
        assert_eq!(t.failure("a#1", t0), Verdict::Restart(1));
        assert_eq!(
            t.failure("a#1", t0 + Duration::from_secs(30)),
            Verdict::Restart(2)
        );
        // The first failure leaves the window: still only two inside it.
        assert_eq!(
            t.failure("a#1", t0 + Duration::from_secs(61)),
            Verdict::Restart(2)
        );
        assert_eq!(t.failure("b#1", t0), Verdict::Restart(1));
        assert_eq!(
            t.failure("a#1", t0 + Duration::from_secs(62)),
            Verdict::CrashLoop(3)
        );
        assert_eq!(
            t.failure("a#1", t0 + Duration::from_secs(64)),
            Verdict::Held
        );
        assert!(t.is_held("a#1") && !t.is_held("b#1"));
        // Only a held key is released; the failures of others are kept.
        assert!(!t.release("b#1"));
        assert_eq!(
            t.failure("b#1", t0 + Duration::from_secs(1)),
            Verdict::Restart(2)
        );
        assert!(t.release("a#1"));
        assert_eq!(
            t.failure("a#1", t0 + Duration::from_secs(65)),
            Verdict::Restart(1)
        );
    }
}
