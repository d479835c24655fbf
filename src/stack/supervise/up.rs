//! `up`: images, networks and volumes first, then every service in its own task, each
//! waiting on its dependencies, converging its replicas and observed until it is ready.

use super::*;

/// Why a dependency will not meet the condition a service waits for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DependencyError {
    #[error("{dep} failed: {why}")]
    Failed { dep: String, why: String },
    #[error("{dep} exited with code {code} before it was healthy")]
    ExitedBeforeHealthy { dep: String, code: i64 },
    #[error("{dep} exited with code {code}")]
    Exited { dep: String, code: i64 },
    #[error(
        "{dep} is running but has no health check, so it can never be \
         healthy: add a healthcheck to {dep} or depend on it with \
         condition service_started"
    )]
    NoHealthCheck { dep: String },
    /// Its task is done and its last state (as `ps` words it) did not satisfy the wait.
    #[error("{dep} ended as {state}")]
    Ended { dep: String, state: String },
}

impl<E: Engine> Supervisor<E> {
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
        let with_balancers = self.with_balancers(targets);
        let targets = &with_balancers;
        // A setting this engine would drop stops `up` before anything is pulled or made.
        for name in targets {
            if let Some(svc) = p.services.get(name) {
                self.engine
                    .check_spec(&crate::stack::plan::container_spec(p, svc, 1))?;
            }
        }
        // Model pulls (compose `models:`) report as image pulls do.
        self.models.lock().await.sink = Some(sink.clone());
        // Images first: a pull or build that fails stops `up` before anything is created.
        let plans = provision::plan_images(&*self.engine, p, targets, opts.pull).await?;
        provision::provision(self.engine.clone(), self.project.clone(), &plans, sink)
            .await
            .map_err(SuperviseError::Failed)?;
        self.ensure_networks(targets).await?;
        self.ensure_volumes(targets).await?;
        let existing = self.engine.list_containers(&p.name).await?;
        let (needs_health, needs_exit) = waited_on(p, targets);
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
    pub(super) async fn run_service(
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
        let refers = !svc.settings.service_refs().is_empty();
        let mut precreated = self.precreate(name, svc, &mine, refers).await?;
        self.wait_for_dependencies(name, svc, deps).await?;
        self.ensure_models(name, svc).await?;
        if svc.balance.is_some() && !precreated.is_empty() {
            // New balancer containers get their upstream list before nginx first starts.
            self.sync_balancers(name, &[]).await?;
        }
        let mut action = "unchanged";
        let hash = plan::config_hash(&self.project, svc);
        let mut ids = Vec::new();
        for n in 1..=svc.replicas {
            let current = mine.iter().find(|c| c.number == n);
            let replica = Replica {
                n,
                current,
                refers,
                force,
            };
            let id = self
                .converge(name, svc, replica, &hash, &mut precreated, &mut action)
                .await?;
            ids.push(id);
        }
        self.scale_down(name, svc, &mine).await?;
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

    /// Follows the service's containers until the state its dependents (or `--wait`)
    /// need is reached, publishing every change.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn observe(
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
    pub(super) async fn wait_for(
        &self,
        me: &str,
        dep: &str,
        cond: Condition,
        mut rx: watch::Receiver<SvcState>,
    ) -> Result<(), DependencyError> {
        let mut last_note = Instant::now();
        loop {
            let state = rx.borrow_and_update().clone();
            let verdict = match (&state, cond) {
                (SvcState::Failed(w), _) => Some(Err(DependencyError::Failed {
                    dep: dep.to_string(),
                    why: w.clone(),
                })),
                (SvcState::Running | SvcState::Healthy, Condition::ServiceStarted) => Some(Ok(())),
                // Running with its health check still pending is started (as in Compose).
                (SvcState::Starting(w), Condition::ServiceStarted) if w.starts_with("health:") => {
                    Some(Ok(()))
                }
                (SvcState::Exited(_), Condition::ServiceStarted) => Some(Ok(())),
                (SvcState::Healthy, Condition::ServiceHealthy) => Some(Ok(())),
                (SvcState::Exited(c), Condition::ServiceHealthy) => {
                    Some(Err(DependencyError::ExitedBeforeHealthy {
                        dep: dep.to_string(),
                        code: *c,
                    }))
                }
                (SvcState::Exited(0), Condition::ServiceCompletedSuccessfully) => Some(Ok(())),
                (SvcState::Exited(c), Condition::ServiceCompletedSuccessfully) => {
                    Some(Err(DependencyError::Exited {
                        dep: dep.to_string(),
                        code: *c,
                    }))
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
                    (Condition::ServiceHealthy, SvcState::Running) => {
                        DependencyError::NoHealthCheck {
                            dep: dep.to_string(),
                        }
                    }
                    _ => DependencyError::Ended {
                        dep: dep.to_string(),
                        state: state_word(&last),
                    },
                });
            }
        }
    }
    /// The targets and, for a target scaled out, the balancer in front of it
    /// (x-osmen-balance), whatever profile it is in.
    fn with_balancers(&self, targets: &BTreeSet<String>) -> BTreeSet<String> {
        let p = &self.project;
        let mut with_balancers = targets.clone();
        for (name, svc) in &p.services {
            if let Some(b) = &svc.balance
                && targets.contains(&b.service)
                && p.services.get(&b.service).is_some_and(|t| t.replicas > 1)
            {
                with_balancers.insert(name.clone());
            }
        }
        with_balancers
    }

    /// Every network the targets join, created when missing (external ones left alone).
    async fn ensure_networks(&self, targets: &BTreeSet<String>) -> SResult<()> {
        let p = &self.project;
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
        Ok(())
    }

    /// Every named volume the targets mount, created when missing; an external one must
    /// exist.
    async fn ensure_volumes(&self, targets: &BTreeSet<String>) -> SResult<()> {
        let p = &self.project;
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
        Ok(())
    }

    /// New containers are created at once, while dependencies are still coming up, so
    /// that only `start` remains on the critical path. A container that joins or links to
    /// another service's (`refers`) is created once that one's exists.
    async fn precreate(
        &self,
        name: &str,
        svc: &Service,
        mine: &[ContainerRow],
        refers: bool,
    ) -> SResult<BTreeMap<u32, String>> {
        let mut precreated: BTreeMap<u32, String> = BTreeMap::new();
        for n in 1..=svc.replicas {
            if !refers && !mine.iter().any(|c| c.number == n) {
                let spec = plan::container_spec(&self.project, svc, n);
                self.record(name, "create", &format!("{name}#{n}: no container yet"))?;
                precreated.insert(n, self.create(name, &spec).await?);
            }
        }
        Ok(precreated)
    }

    /// Waits for each dependency's condition; a required one that fails stops the service.
    async fn wait_for_dependencies(
        &self,
        name: &str,
        svc: &Service,
        deps: &BTreeMap<String, watch::Receiver<SvcState>>,
    ) -> SResult<()> {
        for (dep, d) in &svc.depends_on {
            let Some(rx) = deps.get(dep) else { continue };
            if let Err(why) = self.wait_for(name, dep, d.condition, rx.clone()).await {
                if d.required {
                    return Err(SuperviseError::Plan(why.to_string()));
                }
                (self.report)(&format!(
                    "{name}: optional dependency {why}; starting anyway"
                ));
            }
        }
        Ok(())
    }

    /// One replica brought to the file's configuration: kept (started if stopped),
    /// recreated, or created. Returns its container's id; `action` says what was done.
    async fn converge(
        &self,
        name: &str,
        svc: &Service,
        replica: Replica<'_>,
        hash: &str,
        precreated: &mut BTreeMap<u32, String>,
        action: &mut &'static str,
    ) -> SResult<String> {
        let Replica {
            n,
            current,
            refers,
            force,
        } = replica;
        let mut spec = plan::container_spec(&self.project, svc, n);
        let mut hash = hash.to_string();
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
                    *action = "adopted";
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
                    *action = "started";
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
                super::inherit_anonymous_volumes(&mut spec, &self.project, &kept);
                let id = self.create(name, &spec).await?;
                self.start_container(name, &id).await?;
                *action = "recreated";
                id
            }
            None => {
                let id = match precreated.remove(&n) {
                    Some(id) => id,
                    None => self.create(name, &spec).await?,
                };
                self.record(name, "start", &format!("{label} created"))?;
                self.start_container(name, &id).await?;
                if *action == "unchanged" {
                    *action = "created";
                }
                id
            }
        };
        Ok(id)
    }

    /// Containers numbered past the file's replicas: balancers forget them first, then
    /// they are stopped and removed.
    async fn scale_down(&self, name: &str, svc: &Service, mine: &[ContainerRow]) -> SResult<()> {
        // Balancers learn the new replicas, and forget those about to go, before they go.
        let leaving: Vec<&str> = mine
            .iter()
            .filter(|c| c.number > svc.replicas)
            .map(|c| c.id.as_str())
            .collect();
        if self.sync_balancers(name, &leaving).await? && !leaving.is_empty() {
            // SIGHUP returns before nginx's new workers take over; a replica stopped at
            // once could still be handed a request on an old worker's connection.
            tokio::time::sleep(crate::stack::balance::DRAIN).await;
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
        Ok(())
    }
}

/// One replica of a service as `converge` takes it.
struct Replica<'a> {
    n: u32,
    current: Option<&'a ContainerRow>,
    /// Joins or links to another service's container (its references resolved now).
    refers: bool,
    force: bool,
}

/// The services a target waits on to be healthy, and those it waits on to exit.
fn waited_on(p: &Project, targets: &BTreeSet<String>) -> (BTreeSet<String>, BTreeSet<String>) {
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
    (needs_health, needs_exit)
}
