//! The bollard adapter: the [`Engine`] trait carried out on the Docker Engine API.

use super::*;

impl DockerEngine {
    /// Creates and runs an exec, collecting its output, and returns its exit code.
    async fn exec_collect(
        &self,
        id: &str,
        opts: bollard::exec::CreateExecOptions<String>,
    ) -> EResult<(Option<i64>, String)> {
        use bollard::exec::StartExecResults;
        let e = self.docker.create_exec(id, opts).await?;
        let mut text = String::new();
        if let StartExecResults::Attached { mut output, .. } =
            self.docker.start_exec(&e.id, None).await?
        {
            while let Some(chunk) = output.next().await {
                text.push_str(&String::from_utf8_lossy(&chunk?.into_bytes()));
            }
        }
        let code = self.exec_exit_code(&e.id).await?;
        Ok((code, text))
    }
}

impl Engine for DockerEngine {
    fn machine(&self) -> Option<String> {
        self.remote_host()
    }
    async fn inspection(&self, id: &str) -> EResult<Inspection> {
        let c = self.docker.inspect_container(id, None).await?;
        Ok(inspection_from(c))
    }

    async fn exec_output(&self, id: &str, cmd: &[&str]) -> EResult<(Option<i64>, String)> {
        let opts = bollard::exec::CreateExecOptions {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(cmd.iter().map(|c| c.to_string()).collect()),
            ..Default::default()
        };
        self.exec_collect(id, opts).await
    }

    async fn exec_hook(
        &self,
        id: &str,
        hook: &crate::stack::compose::hooks::Hook,
    ) -> EResult<(Option<i64>, String)> {
        let env: Vec<String> = hook
            .environment
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let opts = bollard::exec::CreateExecOptions {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(hook.command.clone()),
            user: hook.user.clone(),
            privileged: Some(hook.privileged),
            working_dir: hook.working_dir.clone(),
            env: (!env.is_empty()).then_some(env),
            ..Default::default()
        };
        self.exec_collect(id, opts).await
    }

    async fn exec_tty(&self, id: &str, cmd: &[&str], size: (u16, u16)) -> EResult<TtyExec> {
        use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
        let term = std::env::var("TERM").unwrap_or_else(|_| "xterm".into());
        let e = self
            .docker
            .create_exec(
                id,
                CreateExecOptions {
                    attach_stdin: Some(true),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(true),
                    env: Some(vec![format!("TERM={term}")]),
                    cmd: Some(cmd.iter().map(|c| c.to_string()).collect()),
                    ..Default::default()
                },
            )
            .await?;
        let opts = StartExecOptions {
            detach: false,
            tty: true,
            output_capacity: None,
        };
        match self.docker.start_exec(&e.id, Some(opts)).await? {
            StartExecResults::Attached { output, input } => {
                // The engine may refuse a size before the process runs: best effort, the
                // caller sizes it again.
                let _ = self.resize_exec(&e.id, size).await;
                Ok(TtyExec {
                    id: e.id,
                    output: Box::pin(output.map(|r| {
                        r.map(|o| o.into_bytes().to_vec())
                            .map_err(EngineError::from)
                    })),
                    input,
                })
            }
            StartExecResults::Detached => Err(EngineError::Other(
                "the engine started the exec detached: no terminal to attach".into(),
            )),
        }
    }

    async fn resize_exec(&self, exec_id: &str, size: (u16, u16)) -> EResult<()> {
        let opts = bollard::exec::ResizeExecOptions {
            width: size.0,
            height: size.1,
        };
        Ok(self.docker.resize_exec(exec_id, opts).await?)
    }

    async fn exec_exit_code(&self, exec_id: &str) -> EResult<Option<i64>> {
        Ok(self.docker.inspect_exec(exec_id).await?.exit_code)
    }

    async fn info(&self) -> EResult<EngineInfo> {
        let v = self.docker.version().await?;
        let i = self.docker.info().await?;
        let mut runtimes: Vec<String> = i.runtimes.unwrap_or_default().into_keys().collect();
        runtimes.sort();
        Ok(EngineInfo {
            version: v.version.unwrap_or_default(),
            api_version: v.api_version.unwrap_or_default(),
            host: self.host.clone(),
            root_dir: i.docker_root_dir,
            runtimes,
        })
    }

    async fn list_containers(&self, project: &str) -> EResult<Vec<ContainerRow>> {
        let mut filters = project_filter(project);
        if let Some(v) = filters.get_mut("label") {
            v.push(format!("{LABEL_ONEOFF}=False"));
        }
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list = self.docker.list_containers(Some(opts)).await?;
        let mut rows = Vec::new();
        for c in list {
            let Some(id) = c.id else { continue };
            match self.inspect(&id).await {
                Ok(r) => rows.push(r),
                // Removed between the list and the inspect: nothing to show.
                Err(EngineError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        rows.sort_by(|a, b| (&a.service, a.number).cmp(&(&b.service, b.number)));
        Ok(rows)
    }

    async fn inspect(&self, id: &str) -> EResult<ContainerRow> {
        let c = self.docker.inspect_container(id, None).await?;
        Ok(row_from_inspect(c))
    }

    async fn image_exists(&self, image: &str) -> EResult<bool> {
        absent_ok(self.docker.inspect_image(image).await.map(|_| true), false)
    }

    async fn image_tagged_at(&self, image: &str) -> EResult<Option<f64>> {
        let i = absent_ok(self.docker.inspect_image(image).await.map(Some), None)?;
        Ok(i.map(|i| {
            let tagged = i.metadata.and_then(|m| m.last_tag_time);
            // A pulled image on engines before 23 has LastTagTime 0001-01-01: unknown.
            tagged
                .iter()
                .chain(i.created.iter())
                .filter_map(|t| crate::model::units::parse_rfc3339_utc(t))
                .find(|t| *t > 0.0)
                .unwrap_or(0.0)
        }))
    }

    async fn ensure_network(
        &self,
        def: &NetworkDef,
        labels: HashMap<String, String>,
    ) -> EResult<bool> {
        match self.docker.inspect_network(&def.name, None).await {
            Ok(n) => return drift_error("network", &def.name, network_drift(def, &labels, &n)),
            Err(e) => match EngineError::from(e) {
                EngineError::NotFound(_) => {}
                other => return Err(other),
            },
        }
        self.docker
            .create_network(network_request(def, labels))
            .await?;
        Ok(true)
    }

    async fn project_networks(&self, project: &str) -> EResult<Vec<String>> {
        let opts = ListNetworksOptionsBuilder::default()
            .filters(&project_filter(project))
            .build();
        let nets = self.docker.list_networks(Some(opts)).await?;
        Ok(nets.into_iter().filter_map(|n| n.name).collect())
    }

    async fn remove_network(&self, name: &str) -> EResult<()> {
        absent_ok(self.docker.remove_network(name).await, ())
    }

    async fn ensure_volume(
        &self,
        def: &VolumeDef,
        labels: HashMap<String, String>,
    ) -> EResult<bool> {
        match self.docker.inspect_volume(&def.name).await {
            Ok(v) => return drift_error("volume", &def.name, volume_drift(def, &labels, &v)),
            Err(e) => match EngineError::from(e) {
                EngineError::NotFound(_) => {}
                other => return Err(other),
            },
        }
        self.docker
            .create_volume(VolumeCreateRequest {
                name: Some(def.name.clone()),
                driver: def.driver.clone(),
                driver_opts: hash_map(&def.driver_opts),
                labels: Some(with_labels(labels, &def.labels)),
                ..Default::default()
            })
            .await?;
        Ok(true)
    }

    async fn volume_exists(&self, name: &str) -> EResult<bool> {
        absent_ok(self.docker.inspect_volume(name).await.map(|_| true), false)
    }

    async fn remove_volume(&self, name: &str) -> EResult<()> {
        let opts = None::<bollard::query_parameters::RemoveVolumeOptions>;
        absent_ok(self.docker.remove_volume(name, opts).await, ())
    }

    async fn write_file(&self, id: &str, dir: &str, name: &str, body: &[u8]) -> EResult<()> {
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        );
        h.set_cksum();
        tar.append_data(&mut h, name, body)
            .map_err(|e| EngineError::Other(format!("cannot pack {name}: {e}")))?;
        let bytes = tar
            .into_inner()
            .map_err(|e| EngineError::Other(format!("cannot pack {name}: {e}")))?;
        let opts = bollard::query_parameters::UploadToContainerOptions {
            path: dir.to_string(),
            ..Default::default()
        };
        Ok(self
            .docker
            .upload_to_container(id, Some(opts), bollard::body_full(bytes.into()))
            .await?)
    }

    async fn signal(&self, id: &str, signal: &str) -> EResult<()> {
        let opts = bollard::query_parameters::KillContainerOptionsBuilder::default()
            .signal(signal)
            .build();
        Ok(self.docker.kill_container(id, Some(opts)).await?)
    }

    fn check_spec(&self, spec: &ContainerSpec) -> EResult<()> {
        let v = self.docker.client_version();
        check_api(spec, (v.major_version as u16, v.minor_version as u16))
    }

    async fn create(&self, spec: &ContainerSpec) -> EResult<Created> {
        let v = self.docker.client_version();
        check_api(spec, (v.major_version as u16, v.minor_version as u16))?;
        let mut opts = CreateContainerOptionsBuilder::default().name(&spec.name);
        if let Some(p) = &spec.settings.platform {
            opts = opts.platform(p);
        }
        let opts = opts.build();
        let resp = self
            .docker
            .create_container(Some(opts), create_body(spec))
            .await?;
        // Further networks are connected after creation, as Compose does; with a
        // network_mode there are none.
        let further = if spec.settings.network_mode.is_some() {
            &[][..]
        } else {
            spec.networks.get(1..).unwrap_or(&[])
        };
        for a in further {
            let mut ep = endpoint(a);
            ep.mac_address = a.mac_address.clone();
            // Links on every network the container joins, as docker-compose writes them.
            ep.links = non_empty(&spec.links);
            self.docker
                .connect_network(
                    &a.network,
                    bollard::models::NetworkConnectRequest {
                        container: resp.id.clone(),
                        endpoint_config: Some(ep),
                    },
                )
                .await?;
        }
        if !spec.files.is_empty() {
            // Secrets and configs land before the first start, as `docker compose` copies
            // them: the process never sees the container without them.
            let tar = files_tar(&spec.name, &spec.files)?;
            let opts = bollard::query_parameters::UploadToContainerOptions {
                path: "/".to_string(),
                ..Default::default()
            };
            self.docker
                .upload_to_container(&resp.id, Some(opts), bollard::body_full(tar.into()))
                .await?;
        }
        Ok(Created {
            id: resp.id,
            warnings: resp.warnings,
        })
    }

    async fn start(&self, id: &str) -> EResult<()> {
        Ok(self.docker.start_container(id, None).await?)
    }

    async fn stop(&self, id: &str, grace_s: i64) -> EResult<()> {
        let opts = StopContainerOptionsBuilder::default()
            .t(grace_s as i32)
            .build();
        // The engine answers only once the container stopped: wait past the grace period.
        let wait =
            std::time::Duration::from_secs(grace_s.max(0) as u64 + 30).max(self.docker.timeout());
        let docker = self.docker.clone().with_timeout(wait);
        match docker.stop_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            // 304: already stopped.
            Err(BollardError::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => {
                let e = EngineError::from(e);
                if matches!(e, EngineError::NotFound(_)) {
                    return Ok(());
                }
                // The stop timed out on the client side: kill, as the grace period is over.
                let kill = KillContainerOptionsBuilder::default()
                    .signal("SIGKILL")
                    .build();
                self.docker.kill_container(id, Some(kill)).await.ok();
                Err(e)
            }
        }
    }

    async fn remove(&self, id: &str) -> EResult<()> {
        let opts = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(false)
            .build();
        absent_ok(self.docker.remove_container(id, Some(opts)).await, ())
    }

    async fn remove_with_volumes(&self, id: &str) -> EResult<()> {
        let opts = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        absent_ok(self.docker.remove_container(id, Some(opts)).await, ())
    }

    async fn volume_mounts(&self, id: &str) -> EResult<Vec<(String, String)>> {
        let c = self.docker.inspect_container(id, None).await?;
        Ok(c.mounts
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.typ.as_deref() == Some("volume"))
            .filter_map(|m| Some((m.name?, m.destination?)))
            .collect())
    }

    async fn set_restart(&self, id: &str, restart: &Restart) -> EResult<()> {
        Ok(self
            .docker
            .update_container(
                id,
                ContainerUpdateBody {
                    restart_policy: Some(restart_policy(restart)),
                    ..Default::default()
                },
            )
            .await?)
    }

    fn logs(&self, id: &str, follow: bool, tail: Option<u64>) -> BoxStream<EResult<LogChunk>> {
        let tail = tail.map(|t| t.to_string()).unwrap_or_else(|| "all".into());
        let opts = LogsOptionsBuilder::default()
            .follow(follow)
            .stdout(true)
            .stderr(true)
            .tail(&tail)
            .build();
        Box::pin(
            self.docker
                .logs(id, Some(opts))
                .map(|r| r.map_err(EngineError::from).map(log_chunk)),
        )
    }

    fn pull(&self, image: &ImageRef, creds: Option<Credentials>) -> BoxStream<EResult<LayerEvent>> {
        use bollard::auth::DockerCredentials;
        use bollard::query_parameters::CreateImageOptionsBuilder;
        let opts = CreateImageOptionsBuilder::default()
            .from_image(&image.repository)
            .tag(&image.tag)
            .build();
        let creds = creds.map(|c| DockerCredentials {
            username: Some(c.username),
            password: Some(c.password),
            serveraddress: Some(c.server),
            ..Default::default()
        });
        Box::pin(
            self.docker
                .create_image(Some(opts), None, creds)
                .map(|r| match r {
                    Err(e) => Err(image_error(e)),
                    Ok(info) => {
                        if let Some(err) = info.error_detail.and_then(|d| d.message) {
                            return Err(EngineError::Image(err));
                        }
                        let pd = info.progress_detail.unwrap_or_default();
                        Ok(LayerEvent {
                            layer: info.id.unwrap_or_default(),
                            status: info.status.unwrap_or_default(),
                            current: pd.current.map(|c| c.max(0) as u64),
                            total: pd.total.filter(|t| *t > 0).map(|t| t as u64),
                        })
                    }
                }),
        )
    }

    fn build(&self, req: BuildRequest, context: Vec<u8>) -> BoxStream<EResult<BuildEvent>> {
        use bollard::query_parameters::{BuildImageOptionsBuilder, BuilderVersion};
        let mut b = BuildImageOptionsBuilder::default()
            .t(&req.tag)
            .dockerfile(&req.dockerfile)
            .buildargs(&req.args)
            .labels(&req.labels)
            .rm(true)
            .forcerm(true)
            .version(BuilderVersion::BuilderV1);
        if let Some(t) = &req.target {
            b = b.target(t);
        }
        let opts = b.build();
        let body = bollard::body_full(context.into());
        // The engine's build stream borrows the client: drive it in a task that owns a
        // clone and hand the events over a channel.
        let docker = self.docker.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            let mut stream = docker.build_image(opts, None, Some(body));
            while let Some(r) = stream.next().await {
                let ev = match r {
                    Err(e) => Err(image_error(e)),
                    Ok(info) => {
                        if let Some(err) = info.error_detail.and_then(|d| d.message) {
                            Err(EngineError::Image(err))
                        } else if let Some(id) = info.aux.and_then(|a| a.id) {
                            Ok(BuildEvent::Built(id))
                        } else {
                            Ok(BuildEvent::Output(
                                info.stream.or(info.status).unwrap_or_default(),
                            ))
                        }
                    }
                };
                if tx.send(ev).await.is_err() {
                    break;
                }
            }
        });
        Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|ev| (ev, rx))
        }))
    }

    async fn stats_once(&self, id: &str) -> EResult<RawStats> {
        use bollard::query_parameters::StatsOptionsBuilder;
        let opts = StatsOptionsBuilder::default()
            .stream(false)
            .one_shot(true)
            .build();
        let mut stream = self.docker.stats(id, Some(opts));
        let s = stream
            .next()
            .await
            .ok_or_else(|| EngineError::Other(format!("no stats for {id}")))??;
        let cpu = s.cpu_stats.unwrap_or_default();
        let mem = s.memory_stats.unwrap_or_default();
        // A container that is not running answers with an empty sample (no memory usage,
        // no CPUs online): that is "not running", not a container using 0 B.
        if mem.usage.is_none() && cpu.online_cpus.unwrap_or(0) == 0 {
            return Err(EngineError::NotRunning(id.to_string()));
        }
        let mstats = mem.stats.unwrap_or_default();
        let (mut rx, mut tx) = (0, 0);
        for n in s.networks.unwrap_or_default().values() {
            rx += n.rx_bytes.unwrap_or(0);
            tx += n.tx_bytes.unwrap_or(0);
        }
        let (mut rd, mut wr) = (0, 0);
        for e in s
            .blkio_stats
            .and_then(|b| b.io_service_bytes_recursive)
            .unwrap_or_default()
        {
            match e.op.as_deref().map(str::to_ascii_lowercase).as_deref() {
                Some("read") => rd += e.value.unwrap_or(0),
                Some("write") => wr += e.value.unwrap_or(0),
                _ => {}
            }
        }
        Ok(RawStats {
            cpu_total_ns: cpu.cpu_usage.and_then(|u| u.total_usage).unwrap_or(0),
            system_ns: cpu.system_cpu_usage.unwrap_or(0),
            online_cpus: cpu.online_cpus.unwrap_or(0),
            mem_usage: mem.usage.unwrap_or(0),
            mem_inactive_file: mstats
                .get("total_inactive_file")
                .or_else(|| mstats.get("inactive_file"))
                .copied(),
            mem_limit: mem.limit.unwrap_or(0),
            net_rx: rx,
            net_tx: tx,
            blk_read: rd,
            blk_write: wr,
            pids: s.pids_stats.and_then(|p| p.current).unwrap_or(0),
        })
    }

    fn events(&self, project: &str) -> BoxStream<EResult<EngineEvent>> {
        let mut filters = project_filter(project);
        filters.insert("type".into(), vec!["container".into()]);
        // Only lifecycle actions: without this the engine sends every health check's
        // exec_create/exec_start/exec_die (three a check, one check a second per service),
        // which every subscriber must read and drop. `health_status` matches its
        // `health_status: healthy|unhealthy` forms (the engine's fuzzy match).
        filters.insert(
            "event".into(),
            LIFECYCLE_EVENTS.iter().map(|e| e.to_string()).collect(),
        );
        let opts = EventsOptionsBuilder::default().filters(&filters).build();
        Box::pin(self.docker.events(Some(opts)).filter_map(|r| async move {
            match r {
                Err(e) => Some(Err(EngineError::from(e))),
                Ok(ev) => {
                    let action = ev.action.unwrap_or_default();
                    // Health checks run as execs: they are noise to an operator.
                    if action.starts_with("exec_") {
                        return None;
                    }
                    let actor = ev.actor.unwrap_or_default();
                    let attrs = actor.attributes.unwrap_or_default();
                    Some(Ok(EngineEvent {
                        container_id: actor.id.unwrap_or_default(),
                        service: attrs.get(LABEL_SERVICE).cloned().unwrap_or_default(),
                        exit_code: attrs.get("exitCode").and_then(|c| c.parse().ok()),
                        action,
                    }))
                }
            }
        }))
    }
}
