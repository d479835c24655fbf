//! A compose health check as readiness, liveness and startup probes.

use super::*;

/// A compose health check as a probe handler; secrets in it are read from the pod's
/// environment through a shell, since exec probes are not expanded by the kubelet.
pub(super) fn probe_handler(test: &HealthTest, scan: &SecretScan) -> Option<Value> {
    let holds_secret = |s: &str| {
        scan.literals
            .iter()
            .any(|(lit, _)| s.contains(lit.as_str()))
    };
    let unexpand = |s: &str| {
        let mut s = s.to_string();
        for (lit, var) in &scan.literals {
            s = s.replace(lit.as_str(), &format!("${{{var}}}"));
        }
        s
    };
    let command: Vec<String> = match test {
        HealthTest::Disabled => return None,
        HealthTest::Exec(words) if words.iter().any(|w| holds_secret(w)) => {
            let line: Vec<String> = words
                .iter()
                .map(|w| {
                    if holds_secret(w) {
                        format!("\"{}\"", unexpand(w))
                    } else {
                        sh_word(w)
                    }
                })
                .collect();
            vec!["/bin/sh".into(), "-c".into(), line.join(" ")]
        }
        HealthTest::Exec(words) => words.clone(),
        HealthTest::Shell(line) => vec!["/bin/sh".into(), "-c".into(), unexpand(line)],
    };
    Some(json!({ "exec": { "command": command } }))
}

/// Readiness and liveness probes from the health check, and a startup probe that holds
/// liveness off for the start period (compose's `start_period`).
pub(super) fn probes(hc: &Healthcheck, scan: &SecretScan, c: &mut Map<String, Value>) {
    let Some(handler) = hc.test.as_ref().and_then(|t| probe_handler(t, scan)) else {
        return;
    };
    let period = hc.interval.map(secs).unwrap_or(30);
    let timeout = hc.timeout.map(secs).unwrap_or(30);
    let failures = hc.retries.unwrap_or(3).max(1);
    let mut probe = handler.as_object().cloned().unwrap_or_default();
    probe.insert("periodSeconds".into(), json!(period));
    probe.insert("timeoutSeconds".into(), json!(timeout));
    probe.insert("failureThreshold".into(), json!(failures));
    c.insert("readinessProbe".into(), Value::Object(probe.clone()));
    c.insert("livenessProbe".into(), Value::Object(probe.clone()));
    if let Some(start) = hc.start_period.filter(|d| !d.is_zero()) {
        let mut startup = probe;
        let tries = secs(start).div_ceil(period).max(1) as u32 + failures;
        startup.insert("failureThreshold".into(), json!(tries));
        c.insert("startupProbe".into(), Value::Object(startup));
    }
}
