//! Balancers in front of scaled services: their upstream rewritten and reloaded.

use super::*;

impl<E: Engine> Supervisor<E> {
    /// Rewrites and reloads every balancer in front of `service` (or `service` itself when
    /// it is one): its upstream is the running replicas of its target but `leaving`.
    /// Journaled before each write. True when a balancer was rewritten.
    pub async fn sync_balancers(&self, service: &str, leaving: &[&str]) -> SResult<bool> {
        let p = &self.project;
        let balancers: Vec<(&String, &crate::stack::compose::Balance)> = p
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
            let conf = crate::stack::balance::nginx_conf(lb, b, &servers);
            for c in rows.iter().filter(|r| &r.service == lb) {
                self.record(
                    lb,
                    "balance",
                    &format!(
                        "{}: upstream {} = {}",
                        c.name,
                        crate::stack::balance::upstream_name(&b.service),
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
                        crate::stack::balance::CONF_DIR,
                        crate::stack::balance::CONF_FILE,
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
}
