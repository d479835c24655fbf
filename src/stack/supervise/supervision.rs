//! Supervision: the engine's events followed, a failed container restarted with
//! exponential backoff, a crash loop held.

use super::*;

impl<E: Engine> Supervisor<E> {
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
                        tracing::warn!(project = %self.project.name, error = %e, "events stream lost; reconnecting");
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

    pub(super) async fn on_failure(
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
            Verdict::CrashLoop(n) => return self.hold(id, service, &row, &why, n).await,
            Verdict::Restart(attempt) => {
                let failure = Failure {
                    id,
                    service,
                    why: &why,
                    unhealthy,
                };
                self.restart_after_backoff(failure, &svc, &row, attempt, key, tracker)?;
            }
        }
        Ok(())
    }
    /// A crash loop: journaled, said, and held (the engine's own restarts turned off).
    async fn hold(
        &self,
        id: &str,
        service: &str,
        row: &ContainerRow,
        why: &str,
        n: u32,
    ) -> SResult<()> {
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
        Ok(())
    }

    /// A failure the engine restarts itself (its restart policy) is only journaled; any
    /// other is restarted after the backoff for this attempt (skipped when the container
    /// is held or running again by then).
    fn restart_after_backoff(
        &self,
        failure: Failure,
        svc: &Service,
        row: &ContainerRow,
        attempt: u32,
        key: String,
        tracker: &Arc<tokio::sync::Mutex<RestartTracker>>,
    ) -> SResult<()> {
        let Failure {
            id,
            service,
            why,
            unhealthy,
        } = failure;
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
        Ok(())
    }
}

/// A container that failed, as `restart_after_backoff` takes it.
struct Failure<'a> {
    id: &'a str,
    service: &'a str,
    why: &'a str,
    /// Turned unhealthy (still running) rather than exited.
    unhealthy: bool,
}
