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
        for level in order {
            let mut set = JoinSet::new();
            for svc in level {
                for r in rows.iter().filter(|r| r.service == svc) {
                    let grace = self.grace(p.services.get(&svc));
                    self.record(&svc, "stop", &format!("down: {}", r.name))?;
                    let e = self.engine.clone();
                    let id = r.id.clone();
                    set.spawn(async move { e.stop(&id, grace).await });
                }
            }
            while let Some(j) = set.join_next().await {
                if let Ok(Err(e)) = j {
                    (self.report)(&format!("stop: {e}"));
                }
            }
        }
        for r in &rows {
            self.record(&r.service, "remove", &format!("down: {}", r.name))?;
            self.engine.remove(&r.id).await?;
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
            self.engine.stop(&r.id, self.grace(svc)).await?;
            // A crash-loop hold set the policy to "no": give the file's back.
            if let Some(svc) = svc {
                self.engine.set_restart(&r.id, &svc.restart).await?;
            }
            self.engine.start(&r.id).await?;
        }
        Ok(rows.len())
    }
}
