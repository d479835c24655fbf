//! Taking the stack down in reverse dependency order, and restarting one service.

use super::*;

impl<E: Engine> Supervisor<E> {
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
}
