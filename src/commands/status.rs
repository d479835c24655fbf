//! `osmen status`: the snapshot without the console, from the same collectors and hub.
//! Works with no engine, no GPU and no Ollama, and says so in `sources`.

use std::time::Duration;

// Where these lived before the engine side had its own file.
use super::engine_side::EngineSide;
pub use super::engine_side::{
    COMPOSE_WATCH_EVERY, EngineSource, PERIOD, ollama_url, replica_groups, scrape_targets,
};
use super::{Ctx, OK, out};
use crate::cli::StatusArgs;
use crate::model::secret::mask_url_credentials;
use crate::model::snapshot::Snapshot;
use crate::model::units::format_bytes;

fn pct(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.1}%")).unwrap_or_else(|| "-".into())
}

pub fn render(s: &Snapshot) -> String {
    let mut o = format!("project {}\n", s.project);
    render_host(&mut o, s);
    let first_column = render_services(&mut o, s);
    // One probe line per service (the first container carries it).
    let mut probed = std::collections::BTreeSet::new();
    for x in &s.services {
        if let Some(p) = &x.probe
            && probed.insert(x.service.as_str())
        {
            o.push_str(&format!(
                "probe {:<w$} {}\n",
                x.service,
                crate::model::probe::show::summary(p),
                w = first_column
            ));
        }
    }
    o.push('\n');
    render_gpus_and_ollama(&mut o, s);
    render_scrapes(&mut o, s);
    for a in &s.agents {
        o.push_str(&agent_line(a));
    }
    o.push_str("sources: ");
    o.push_str(
        &s.sources
            .iter()
            .map(|(k, v)| format!("{k} {}", v.status))
            .collect::<Vec<_>>()
            .join("; "),
    );
    o.push('\n');
    mask_url_credentials(&o)
}

/// The host's line: CPU, memory, swap, load, network and osmen's own share.
fn render_host(o: &mut String, s: &Snapshot) {
    match &s.host {
        Some(h) => {
            o.push_str(&format!(
                "host     cpu {:.1}% ({} cores)  memory {} used, {} available of {}  swap {}/{}",
                h.cpu_percent,
                h.per_core_percent.len(),
                format_bytes(h.memory_used_bytes),
                format_bytes(h.memory_available_bytes),
                format_bytes(h.memory_total_bytes),
                format_bytes(h.swap_used_bytes),
                format_bytes(h.swap_total_bytes),
            ));
            if let Some(l) = h.load {
                o.push_str(&format!("  load {:.2} {:.2} {:.2}", l[0], l[1], l[2]));
            }
            o.push_str(&format!(
                "\n         net rx {}/s tx {}/s  osmen {:.1}% cpu, {}\n",
                format_bytes(h.net_rx_bytes_per_s as u64),
                format_bytes(h.net_tx_bytes_per_s as u64),
                h.osmen_cpu_percent,
                format_bytes(h.osmen_memory_bytes)
            ));
        }
        None => o.push_str("host     (no sample yet)\n"),
    }
}

/// The services' table; returns the width of its first column (the probe lines align
/// with it).
fn render_services(o: &mut String, s: &Snapshot) -> usize {
    let head = [
        "SERVICE",
        "CONTAINER",
        "STATE",
        "UP",
        "HEALTH",
        "CPU",
        "CPU/LIMIT",
        "MEMORY",
        "MEM%",
        "RESTARTS",
        "VRAM",
    ];
    let rows: Vec<[String; 11]> = s
        .services
        .iter()
        .map(|x| {
            [
                x.display_name(),
                if x.container.is_empty() {
                    "-".into()
                } else {
                    x.container.clone()
                },
                x.state_label(),
                x.uptime_s
                    .map(|u| crate::model::units::format_duration(Duration::from_secs(u as u64)))
                    .unwrap_or_else(|| "-".into()),
                if x.health.is_empty() {
                    "-".into()
                } else {
                    x.health.clone()
                },
                pct(x.cpu_percent),
                pct(x.cpu_limit_percent),
                match (x.memory_bytes, x.memory_limit_bytes) {
                    (Some(m), Some(l)) => format!("{} / {}", format_bytes(m), format_bytes(l)),
                    (Some(m), None) => format_bytes(m),
                    _ => "-".into(),
                },
                pct(x.memory_percent),
                x.restarts.to_string(),
                x.gpu_memory_bytes
                    .map(format_bytes)
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let mut w = head.map(str::len);
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = w[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
            + "\n"
    };
    o.push('\n');
    o.push_str(&line(head.to_vec()));
    for r in &rows {
        o.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    if s.services.is_empty() {
        o.push_str("(no containers)\n");
    }
    w[0]
}

/// One line per GPU, and Ollama's.
fn render_gpus_and_ollama(o: &mut String, s: &Snapshot) {
    for g in &s.gpus {
        o.push_str(&format!(
            "gpu {} {}  vram {} / {}  util {}%  {}°C\n",
            g.index,
            g.name,
            format_bytes(g.memory_used_bytes),
            format_bytes(g.memory_total_bytes),
            g.gpu_util_percent
                .map(|u| u.to_string())
                .unwrap_or_else(|| "-".into()),
            g.temperature_c
                .map(|t| t.to_string())
                .unwrap_or_else(|| "-".into()),
        ));
    }
    if let Some(ol) = &s.ollama {
        o.push_str(&format!(
            "ollama {} at {}: {} installed, {} loaded\n",
            // As JSON: quoted, or `null` without a version.
            serde_json::json!(ol.version),
            serde_json::json!(ol.url),
            ol.installed.len(),
            ol.loaded.len()
        ));
        for m in &ol.loaded {
            if let Some(d) = vram_disagreement_text(m) {
                o.push_str(&format!("  model {}: VRAM {d}\n", m.name));
            }
        }
        if let Some(q) = &ol.queue {
            o.push_str(&queue_line(q, s.taken_at));
        }
    }
}

/// `NVML 4.8GiB vs Ollama 4.0GiB (+20%)` when the two disagree by more than a tenth.
fn vram_disagreement_text(m: &crate::model::ollama::LoadedModel) -> Option<String> {
    let (nvml, said) = m.vram_disagreement()?;
    let pct = (nvml as f64 - said as f64) / said as f64 * 100.0;
    Some(format!(
        "NVML {} vs Ollama {} ({pct:+.0}%)",
        format_bytes(nvml),
        format_bytes(said)
    ))
}

/// `ollama queue: 6 in flight, serves 4 at once (OLLAMA_NUM_PARALLEL), waiting for 1m12s`.
fn queue_line(q: &crate::model::ollama::OllamaQueue, now: f64) -> String {
    let waiting = q
        .waiting_since
        .map(|w| {
            let d = Duration::from_secs((now - w).max(0.0) as u64);
            format!(", waiting for {}", crate::model::units::format_duration(d))
        })
        .unwrap_or_default();
    format!(
        "ollama queue: {} in flight, serves {} at once ({}){waiting}\n",
        q.in_flight, q.parallel, q.parallel_from
    )
}

/// In `status --json`, per loaded model whose NVML and Ollama VRAM disagree by more than
/// a tenth: `vram_disagreement: {nvml_bytes, ollama_bytes}`.
fn mark_vram_disagreements(s: &Snapshot, v: &mut serde_json::Value) {
    let Some(ol) = &s.ollama else {
        return;
    };
    let Some(rows) = v
        .pointer_mut("/ollama/loaded")
        .and_then(|x| x.as_array_mut())
    else {
        return;
    };
    for (m, row) in ol.loaded.iter().zip(rows) {
        if let Some((nvml, said)) = m.vram_disagreement() {
            row["vram_disagreement"] =
                serde_json::json!({"nvml_bytes": nvml, "ollama_bytes": said});
        }
    }
}

/// Latency percentiles of every scraped target that answered (the gateway's own are
/// the agent lines).
fn render_scrapes(o: &mut String, s: &Snapshot) {
    for t in &s.scrapes {
        if !t.up {
            continue;
        }
        let label = match (&t.replica_of, &t.name) {
            (Some(svc), Some(n)) if t.url.starts_with("merged:") => format!("{svc} {n}"),
            (Some(svc), Some(n)) => format!("{svc} replica {n} {}", t.url),
            _ => t.url.clone(),
        };
        for l in &t.latencies {
            // The gateway's own families are the agent lines below (one P99 each); a
            // series with no observation has nothing to say.
            if l.family.starts_with("osmen_") || (l.p50, l.p95, l.p99) == (None, None, None) {
                continue;
            }
            let f = |v: Option<f64>| {
                v.map(|x| scrape_figure(&l.family, x))
                    .unwrap_or_else(|| "-".into())
            };
            o.push_str(&format!(
                "scrape {} {}{{{}}} p50 {} p95 {} p99 {} ({})\n",
                label,
                l.family,
                l.labels,
                f(l.p50),
                f(l.p95),
                f(l.p99),
                l.source
            ));
        }
    }
}

/// One agent's line: percentiles, model and GPU state, economics, errors.
fn agent_line(a: &crate::model::agent::AgentRow) -> String {
    let ms = |v: Option<f64>| {
        v.map(|v| format!("{:.0}ms", v * 1000.0))
            .unwrap_or_else(|| "-".into())
    };
    let g = a.gpu.as_ref();
    let model = match (a.provider.as_deref(), a.model.as_deref()) {
        (Some(p), Some(m)) => {
            let mut t = format!(" model {p}/{m}");
            match g.map(|g| g.state.as_str()) {
                Some("remote") | None => {}
                Some(st @ ("loaded" | "offloaded" | "cpu")) => t.push_str(&format!(
                    " {st} {}",
                    g.and_then(|g| g.vram_bytes)
                        .map(crate::model::units::format_bytes)
                        .unwrap_or_default()
                )),
                Some(st) => t.push_str(&format!(" {st}")),
            }
            if g.and_then(|g| g.shared_with.as_ref())
                .is_some_and(|x| !x.is_empty())
            {
                t.push_str(" shared");
            }
            t
        }
        _ => String::new(),
    };
    let tps = a
        .tokens_per_second_p50
        .flatten()
        .map(|v| format!(" {v:.1} tok/s"))
        .unwrap_or_default();
    let cost = a
        .cost_per_request_dollars
        .map(|v| format!(" ${v:.5}/req"))
        .unwrap_or_default();
    let mut errs = match (a.window_errors, a.window_requests) {
        (Some(e), Some(n)) if e > 0.0 => format!(
            " errors {e:.0} of {n:.0} requests in the last minute{}",
            if a.is_failing() { " FAILING" } else { "" }
        ),
        _ => String::new(),
    };
    if let Some(k) = a.last_error_kind.as_deref() {
        let kind = crate::model::agent_error::ErrorKind::from_label(k).map_or(k, |k| k.describe());
        errs.push_str(&format!(
            "; last error ({kind}): {}",
            a.last_error.as_deref().unwrap_or("-")
        ));
    }
    let name = a.agent.as_str();
    if a.p99_seconds.flatten().is_none() && errs.is_empty() {
        let served: f64 = a.requests_total();
        let what = if served > 0.0 {
            format!("no requests in the last minute ({served:.0} since start)")
        } else {
            "no requests yet".to_string()
        };
        return format!("agent {name:<22} {what}{model}\n");
    }
    let source = a
        .latency_source
        .as_deref()
        .unwrap_or("the gateway's summary osmen_request_duration_seconds");
    let ttft = a
        .ttft_p50_seconds
        .flatten()
        .map(|v| format!(" ttft p50 {}", ms(Some(v))))
        .unwrap_or_default();
    let wait = a
        .wait_p95_seconds
        .map(|v| format!(" wait p95 {}", ms(Some(v))))
        .unwrap_or_default();
    format!(
        "agent {name:<22} p50 {} p95 {} p99 {} ({source}){wait}{ttft}{tps}{cost}{model}{errs}\n",
        ms(a.p50_seconds.flatten()),
        ms(a.p95_seconds.flatten()),
        ms(a.p99_seconds.flatten()),
    )
}

/// A scraped quantile in the unit its family's name gives it (Prometheus naming:
/// `_seconds`, `_bytes`, `_per_second`, `_ratio`), never seconds by default.
fn scrape_figure(family: &str, v: f64) -> String {
    let base = family
        .trim_end_matches("_bucket")
        .trim_end_matches("_total");
    if base.ends_with("_seconds") {
        crate::model::units::format_latency(v)
    } else if base.ends_with("_bytes") {
        format_bytes(v.max(0.0) as u64)
    } else if base.ends_with("_per_second") {
        format!("{v:.1}/s")
    } else if base.ends_with("_ratio") {
        format!("{:.1}%", v * 100.0)
    } else {
        format!("{v:.3}")
    }
}

fn ready(s: &Snapshot) -> bool {
    let containers_done = s
        .sources
        .get("containers")
        .is_some_and(|h| h.status != "ok")
        || (s.sources.contains_key("containers")
            && s.services
                .iter()
                .filter(|x| x.state == "running")
                .all(|x| x.cpu_percent.is_some()));
    let host_done = s.host.as_ref().is_some_and(|h| h.cpu_percent > 0.0)
        || s.sources.get("host").is_some_and(|h| h.status != "ok");
    containers_done
        && host_done
        && s.sources.contains_key("gpu")
        && s.sources.contains_key("ollama")
        && s.sources.contains_key("scrape")
        && s.sources.contains_key("probes")
}

pub async fn run(ctx: &Ctx, args: &StatusArgs) -> anyhow::Result<u8> {
    if args.fleet {
        return fleet(ctx, args.json).await;
    }
    let side = EngineSide::start(ctx).await;
    let (mut rx, stop) = (side.snapshots, side.stop);
    // `--probe-ollama`'s answer shows as `ollama.probe`.
    let json = |s: &Snapshot, probe: Option<&serde_json::Value>| -> anyhow::Result<String> {
        let mut v = serde_json::to_value(s)?;
        mark_vram_disagreements(s, &mut v);
        if let Some(p) = probe {
            if !v["ollama"].is_object() {
                v["ollama"] = serde_json::json!({});
            }
            v["ollama"]["probe"] = p.clone();
        }
        if let Some(services) = v.get_mut("services").and_then(|x| x.as_array_mut()) {
            for svc in services {
                if let Some(h) = svc
                    .get_mut("health_output")
                    .and_then(|x| x.as_str().map(mask_url_credentials))
                {
                    svc["health_output"] = serde_json::Value::String(h);
                }
            }
        }
        Ok(serde_json::to_string_pretty(&v)? + "\n")
    };
    // Wait for rates (two samples) or for every source to have answered, at most 5 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if ready(&rx.borrow()) {
            break;
        }
        if tokio::time::timeout_at(deadline, rx.changed())
            .await
            .is_err()
        {
            break;
        }
    }
    let probe = if args.probe_ollama {
        let client = crate::http::client(|b| b.timeout(Duration::from_secs(120)));
        Some(match ollama_url(ctx) {
            Some(u) => crate::collect::ollama::probe_generation(&client, &u, None)
                .await
                .unwrap_or_else(|e| serde_json::json!({"error": e.to_string()})),
            None => {
                serde_json::json!({"error": "OLLAMA_URL is not set and the stack has no ollama port"})
            }
        })
    } else {
        None
    };
    loop {
        let snap = (*rx.borrow().clone()).clone();
        let mut text = if args.json {
            json(&snap, probe.as_ref())?
        } else {
            render(&snap)
        };
        if let (Some(p), false) = (&probe, args.json) {
            text.push_str(&format!("ollama probe: {p}\n"));
        }
        if args.watch && !args.json {
            out(&format!("\x1b[H\x1b[2J{text}"))?;
        } else {
            out(&text)?;
        }
        if !args.watch {
            break;
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tokio::time::sleep(PERIOD) => {}
        }
    }
    let _ = stop.send(true);
    Ok(OK)
}

/// `status --fleet`: every `[[fleet]]` host's line once each has answered twice (its CPU
/// needs two samples) or failed, at most `FLEET_WAIT`; exit 1 when one is unreachable.
async fn fleet(ctx: &Ctx, json: bool) -> anyhow::Result<u8> {
    if ctx.config.fleet.is_empty() {
        anyhow::bail!(
            "the settings file has no [[fleet]] entries; add one per host (see the example \
             in config/osmen.toml)"
        );
    }
    let side = EngineSide::start(ctx).await;
    let (mut rx, stop) = (side.snapshots, side.stop);
    let deadline = tokio::time::Instant::now() + FLEET_WAIT;
    let settled = |s: &Snapshot| {
        !s.fleet.is_empty()
            && s.fleet
                .iter()
                .all(|r| r.error.is_some() || r.cpu_percent.is_some() || r.total == 0)
    };
    while !settled(&rx.borrow())
        && tokio::time::timeout_at(deadline, rx.changed())
            .await
            .is_ok()
    {}
    let rows = rx.borrow().fleet.clone();
    let _ = stop.send(true);
    let text = if json {
        serde_json::to_string_pretty(&rows)? + "\n"
    } else {
        fleet_table(&rows)
    };
    out(&mask_url_credentials(&text))?;
    Ok(if rows.iter().any(|r| r.error.is_some()) {
        super::NO
    } else {
        OK
    })
}

/// How long `status --fleet` waits for the hosts' answers.
const FLEET_WAIT: Duration = Duration::from_secs(8);

/// The fleet's table: a line per host, or the host's name and why it cannot be reached.
pub fn fleet_table(rows: &[crate::model::fleet::FleetRow]) -> String {
    let mut o = crate::model::fleet::table_lines(rows).join("\n");
    o.push('\n');
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two loaded models, one whose runner holds a fifth more VRAM than Ollama says, and
    /// six calls in flight to an Ollama that serves four, for 72 s.
    fn ollama_snapshot() -> Snapshot {
        use crate::model::ollama::{LoadedModel, Ollama, OllamaQueue};
        let mib = 1u64 << 20;
        let model = |name: &str, said: u64, measured: u64| LoadedModel {
            name: name.into(),
            size_bytes: said,
            size_vram_bytes: said,
            vram_measured_bytes: Some(measured),
            ..Default::default()
        };
        Snapshot {
            taken_at: 1000.0,
            ollama: Some(Ollama {
                url: "http://127.0.0.1:11434".into(),
                loaded: vec![
                    model("llama3.2", 4096 * mib, 4915 * mib),
                    model("qwen3", 2048 * mib, 2100 * mib),
                ],
                queue: Some(OllamaQueue {
                    in_flight: 6,
                    parallel: 4,
                    parallel_from: "OLLAMA_NUM_PARALLEL".into(),
                    waiting_since: Some(928.0),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn vram_disagreement_and_the_queue_show_both_figures_in_text() {
        let mut s = ollama_snapshot();
        let mut o = String::new();
        render_gpus_and_ollama(&mut o, &s);
        assert_eq!(
            o,
            "ollama null at \"http://127.0.0.1:11434\": 0 installed, 2 loaded\n  \
             model llama3.2: VRAM NVML 4.8GiB vs Ollama 4GiB (+20%)\n\
             ollama queue: 6 in flight, serves 4 at once (OLLAMA_NUM_PARALLEL), waiting for \
             1m12s\n"
        );
        // The queue cleared: no wait; no queue figures: no line.
        let q = s.ollama.as_mut().unwrap().queue.as_mut().unwrap();
        (q.in_flight, q.waiting_since) = (3, None);
        let mut o = String::new();
        render_gpus_and_ollama(&mut o, &s);
        assert!(
            o.ends_with("ollama queue: 3 in flight, serves 4 at once (OLLAMA_NUM_PARALLEL)\n"),
            "{o}"
        );
        s.ollama.as_mut().unwrap().queue = None;
        let mut o = String::new();
        render_gpus_and_ollama(&mut o, &s);
        assert!(!o.contains("queue"), "{o}");
    }

    #[test]
    fn vram_disagreement_is_a_json_field_only_where_flagged() {
        let s = ollama_snapshot();
        let mut v = serde_json::to_value(&s).unwrap();
        mark_vram_disagreements(&s, &mut v);
        let loaded = v["ollama"]["loaded"].as_array().unwrap();
        assert_eq!(
            loaded[0]["vram_disagreement"],
            serde_json::json!({"nvml_bytes": 4915u64 << 20, "ollama_bytes": 4096u64 << 20})
        );
        assert!(
            loaded[1].get("vram_disagreement").is_none(),
            "{}",
            loaded[1]
        );
        assert_eq!(v["ollama"]["queue"]["in_flight"], 6);
        assert_eq!(v["ollama"]["queue"]["waiting_since"], 928.0);
    }

    #[test]
    fn scraped_figures_carry_their_families_units() {
        assert_eq!(scrape_figure("osmen_tokens_per_second", 80.063), "80.1/s");
        assert_eq!(scrape_figure("grpc_duration_seconds", 0.0123), "12.3ms");
        assert_eq!(
            scrape_figure("qdrant_rest_responses_duration_seconds", 2.5),
            "2.50s"
        );
        assert_eq!(
            scrape_figure("process_resident_memory_bytes", 1536.0),
            "1.5KiB"
        );
        assert_eq!(scrape_figure("cache_hit_ratio", 0.5), "50.0%");
    }

    #[test]
    fn agents_without_requests_say_so_instead_of_dashes() {
        let s = Snapshot {
            agents: vec![
                serde_json::from_value::<crate::model::agent::AgentRow>(
                    serde_json::json!({"agent": "idle_agent"}),
                )
                .unwrap(),
                serde_json::from_value::<crate::model::agent::AgentRow>(
                    serde_json::json!({"agent": "busy", "p50_seconds": 0.01, "p95_seconds": 0.02,
                    "p99_seconds": 0.05}),
                )
                .unwrap(),
            ],
            scrapes: vec![crate::model::snapshot::ScrapeTarget {
                url: "http://127.0.0.1:8080/metrics".into(),
                replica_of: None,
                name: None,
                up: true,
                error: None,
                families: 3,
                samples: 9,
                latencies: vec![
                    crate::model::snapshot::LatencySeries {
                        family: "osmen_tokens_per_second".into(),
                        labels: "agent=busy".into(),
                        p50: Some(80.0),
                        p95: None,
                        p99: None,
                        source: "histogram".into(),
                    },
                    crate::model::snapshot::LatencySeries {
                        family: "qdrant_duration_seconds".into(),
                        labels: "".into(),
                        p50: None,
                        p95: None,
                        p99: None,
                        source: "histogram".into(),
                    },
                ],
            }],
            ..Default::default()
        };
        let text = render(&s);
        assert!(text.contains("agent idle_agent"), "{text}");
        assert!(text.contains("no requests yet"), "{text}");
        assert!(!text.contains("p50 - p95 - p99 -"), "{text}");
        let busy = text.lines().find(|l| l.starts_with("agent busy")).unwrap();
        assert_eq!(busy.matches("p99").count(), 1, "one P99 per agent: {busy}");
        assert!(
            busy.contains("(the gateway's summary"),
            "its source: {busy}"
        );
        assert!(
            !text.contains("80000.0ms") && !text.contains("scrape "),
            "{text}"
        );
    }
}
