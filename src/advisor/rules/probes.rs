//! Rules on what the service probes measured: Redis evicting (raise its container's
//! memory limit and `maxmemory` together) and PostgreSQL near `max_connections` (pool
//! size or `max_connections`).

use std::collections::BTreeSet;

use crate::advisor::{
    Host, by_service, clock, hysteresis, severity, update_command, vertical_memory, window,
};
use crate::model::advice::{ScaleAction, Suggestion};
use crate::model::config::AdvisorConfig;
use crate::model::figures::{Postgres, Redis};
use crate::model::history::History;
use crate::model::probe::ProbeKind;
use crate::model::snapshot::{ServiceStats, Snapshot};
use crate::model::units::format_bytes;

use crate::advisor::AdvisorState;

/// Connections in use (of those not reserved for superusers) that count as near the
/// maximum.
pub const PG_CONNECTIONS_PERCENT: f64 = 80.0;

#[allow(clippy::too_many_arguments)]
pub(super) fn evaluate(
    h: &History,
    s: &Snapshot,
    cfg: &AdvisorConfig,
    state: &mut AdvisorState,
    now: f64,
    host: &Host,
    seen: &mut BTreeSet<String>,
    out: &mut Vec<Suggestion>,
) {
    for (svc, containers) in by_service(s) {
        let Some(probe) = containers.iter().find_map(|x| x.probe.as_ref()) else {
            continue;
        };
        let at = Probed {
            h,
            s,
            cfg,
            now,
            svc,
            containers: &containers,
        };
        // A probe without figures yet still marks its rule as seen (its state is kept).
        match probe.kind {
            ProbeKind::Redis => redis(&at, probe.redis(), state, host, seen, out),
            ProbeKind::Postgres => postgres(&at, probe.postgres(), state, seen, out),
            _ => {}
        }
    }
}

/// One probed service, as its rule reads it.
struct Probed<'a> {
    h: &'a History,
    s: &'a Snapshot,
    cfg: &'a AdvisorConfig,
    now: f64,
    svc: &'a str,
    containers: &'a [&'a ServiceStats],
}

/// Redis evicting: raise its `maxmemory`, and its container's memory limit with it.
fn redis(
    at: &Probed,
    fig: Option<&Redis>,
    state: &mut AdvisorState,
    host: &Host,
    seen: &mut BTreeSet<String>,
    out: &mut Vec<Suggestion>,
) {
    let Probed {
        h,
        s,
        cfg,
        now,
        svc,
        containers,
    } = *at;
    let win = cfg.window.as_secs_f64();
    let win_label = crate::model::units::format_duration(cfg.window);
    let id = format!("redis-evicting:{svc}");
    seen.insert(id.clone());
    // Any eviction counts; the rule clears once a whole window has none.
    let strict = AdvisorConfig {
        margin: 0.0,
        ..cfg.clone()
    };
    let w = h
        .series
        .get(&format!("probe:{svc}:evictions_per_s"))
        .and_then(|sr| window(sr, now, win, f64::MIN_POSITIVE));
    let (Some(since), Some(w)) = (
        hysteresis(state, &id, w, &strict, f64::MIN_POSITIVE, now),
        w,
    ) else {
        return;
    };
    let maxmemory = fig.and_then(|f| f.maxmemory_bytes).unwrap_or(0.0) as u64;
    let worst = containers.iter().max_by(|a, b| {
        a.memory_percent
            .unwrap_or(0.0)
            .total_cmp(&b.memory_percent.unwrap_or(0.0))
    });
    let limit = worst.and_then(|x| x.memory_limit);
    let pressed = worst
        .and_then(|x| x.memory_percent)
        .is_some_and(|p| p >= cfg.memory_percent);
    // maxmemory may grow inside the container's limit up to three quarters of it
    // (the rest is Redis' own overhead and fragmentation); beyond that, or when
    // the container itself is pressed, the limit grows too and maxmemory keeps
    // its share of it.
    let (new_limit, new_max) = redis_sizes(limit, maxmemory, pressed, svc, s, host);
    let evidence = format!(
        "evicting {:.1} keys/s now ({} since start); evictions in {} of {} samples of \
         the last {win_label}, since {}; {} used of maxmemory {} ({}){}",
        w.last,
        fig.map_or(0.0, |f| f.evicted_keys),
        w.over,
        w.samples,
        clock(since),
        format_bytes(fig.and_then(|f| f.memory_used_bytes).unwrap_or(0.0) as u64),
        format_bytes(maxmemory),
        fig.and_then(|f| f.maxmemory_policy.as_deref())
            .unwrap_or("?"),
        match (worst.and_then(|x| x.memory_percent), limit) {
            (Some(p), Some(l)) => format!(
                "; its container at {p:.0}% of its {} limit",
                format_bytes(l)
            ),
            _ => String::new(),
        }
    );
    let mut command = String::new();
    if let Some(n) = new_limit {
        command = update_command(containers, None, Some(n)) + " && ";
    }
    command.push_str(&format!(
        "redis-cli CONFIG SET maxmemory {new_max}  (AUTH first when requirepass is set)"
    ));
    // The limit under the file's own key, and the command with only its
    // --maxmemory changed.
    let form = s.compose_forms.get(svc);
    let mut patch = crate::advisor::patch::limits(svc, None, new_limit, form);
    let words = crate::advisor::patch::with_flag(
        form.and_then(|f| f.command.as_deref()),
        "redis-server",
        "--maxmemory",
        &format!("{}mb", new_max >> 20),
    );
    patch.push_str(&crate::advisor::patch::command_lines(&words));
    out.push(Suggestion {
        id,
        service: svc.to_string(),
        rule: "redis-evicting".into(),
        // Evicting while the container itself is near its limit: both must grow.
        severity: if pressed {
            "critical".into()
        } else {
            "warning".into()
        },
        evidence,
        since,
        action: ScaleAction {
            kind: "vertical".into(),
            cpus: None,
            memory: new_limit,
            replicas: None,
            maxmemory: Some(new_max),
            from: format!(
                "maxmemory {}{}",
                format_bytes(maxmemory),
                limit
                    .map(|l| format!(", memory {}", format_bytes(l)))
                    .unwrap_or_default()
            ),
        },
        command,
        compose_patch: patch,
    });
}

/// The new (memory limit, maxmemory) of an evicting Redis.
fn redis_sizes(
    limit: Option<u64>,
    maxmemory: u64,
    pressed: bool,
    svc: &str,
    s: &Snapshot,
    host: &Host,
) -> (Option<u64>, u64) {
    let room = limit.map(|l| l / 4 * 3);
    if !pressed && room.is_none_or(|r| r >= maxmemory.saturating_add(1 << 20)) {
        let doubled = maxmemory.saturating_mul(2).max(1 << 20);
        (None, room.map_or(doubled, |r| doubled.min(r >> 20 << 20)))
    } else {
        let n = limit.map(|l| vertical_memory(l, svc, s, host));
        let m = match (limit, n) {
            (Some(l), Some(n)) if l > 0 => ((maxmemory as f64 * n as f64 / l as f64) as u64 >> 20
                << 20)
                .max(maxmemory.saturating_mul(2)),
            _ => maxmemory.saturating_mul(2),
        };
        (n, m.max(1 << 20))
    }
}

/// PostgreSQL near `max_connections`: a pool in front, or a higher maximum.
fn postgres(
    at: &Probed,
    fig: Option<&Postgres>,
    state: &mut AdvisorState,
    seen: &mut BTreeSet<String>,
    out: &mut Vec<Suggestion>,
) {
    let Probed {
        h,
        s,
        cfg,
        now,
        svc,
        ..
    } = *at;
    let win = cfg.window.as_secs_f64();
    let win_label = crate::model::units::format_duration(cfg.window);
    let id = format!("postgres-connections:{svc}");
    seen.insert(id.clone());
    let w = h
        .series
        .get(&format!("probe:{svc}:connections_percent"))
        .and_then(|sr| window(sr, now, win, PG_CONNECTIONS_PERCENT));
    let (Some(since), Some(w)) = (
        hysteresis(state, &id, w, cfg, PG_CONNECTIONS_PERCENT, now),
        w,
    ) else {
        return;
    };
    let c = fig.map(|f| &f.connections);
    let max = c.map_or(100, |c| c.max as u64);
    let used = c.map_or(0, |c| c.used as u64);
    let new_max = (max * 2).max(max + 20);
    out.push(Suggestion {
        id,
        service: svc.to_string(),
        rule: "postgres-connections".into(),
        severity: severity(w.last, PG_CONNECTIONS_PERCENT, 100.0),
        evidence: format!(
            "{used} of {max} connections in use ({} reserved for superusers), {:.0}% \
             of the usable now; over {PG_CONNECTIONS_PERCENT:.0}% in {} of {} \
             samples of the last {win_label}, since {}",
            c.map_or(0.0, |c| c.reserved as f64),
            w.last,
            w.over,
            w.samples,
            clock(since)
        ),
        since,
        action: ScaleAction::config(format!("max_connections {max}")),
        command: format!(
            "put a pool in front (PgBouncer, transaction mode; the guide's pool is 20 \
             connections per app) or lower the clients' pool sizes; or raise \
             max_connections to {new_max} (each connection costs work_mem; needs a \
             restart of {svc})"
        ),
        // The file's command, with only max_connections set.
        compose_patch: format!(
            "services:\n  {svc}:\n{}",
            crate::advisor::patch::command_lines(&crate::advisor::patch::with_pg_setting(
                s.compose_forms.get(svc).and_then(|f| f.command.as_deref()),
                "max_connections",
                &new_max.to_string(),
            ))
        ),
    });
}
