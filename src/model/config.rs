//! osmen's own settings (`--config FILE`, default `config/osmen.toml` beside the compose
//! file): how patiently the supervisor waits and how it restarts. Every key is optional.

use std::time::Duration;

use serde::Deserialize;

use super::units::parse_duration;

#[derive(Debug, Clone, PartialEq)]
pub struct SupervisorConfig {
    /// How long `up` waits for a `service_healthy` dependency before giving up.
    pub health_timeout: Duration,
    /// Grace period between SIGTERM and SIGKILL when a service sets none.
    pub stop_grace: Duration,
    /// First delay before restarting a crashed container; doubles on each restart.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// This many restarts inside `crash_loop_window` is a crash loop: osmen holds.
    pub crash_loop_restarts: u32,
    pub crash_loop_window: Duration,
    /// Entries kept in the journal before the oldest file is rotated away.
    pub journal_max_entries: usize,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            health_timeout: Duration::from_secs(180),
            stop_grace: Duration::from_secs(10),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            crash_loop_restarts: 5,
            crash_loop_window: Duration::from_secs(300),
            journal_max_entries: 10_000,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    pub supervisor: SupervisorConfig,
    /// Extra Prometheus targets for `status` and the console.
    pub scrape: Vec<String>,
    pub console: ConsoleConfig,
}

/// `[console]`: mouse capture (off, so the terminal's own selection works) and key
/// overrides, `action = "key"` (the console checks the names when it starts).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConsoleConfig {
    pub mouse: bool,
    pub keys: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConsole {
    #[serde(default)]
    mouse: bool,
    #[serde(default)]
    keys: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    supervisor: RawSupervisor,
    #[serde(default)]
    collect: RawCollect,
    #[serde(default)]
    console: RawConsole,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCollect {
    #[serde(default)]
    scrape: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSupervisor {
    health_timeout: Option<String>,
    stop_grace: Option<String>,
    backoff_initial: Option<String>,
    backoff_max: Option<String>,
    crash_loop_restarts: Option<u32>,
    crash_loop_window: Option<String>,
    journal_max_entries: Option<usize>,
}

impl Config {
    /// Parses the TOML text of `file` (named in messages).
    pub fn parse(text: &str, file: &str) -> Result<Config, String> {
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| {
                    let line = text[..s.start].matches('\n').count() + 1;
                    format!(":{line}")
                })
                .unwrap_or_default();
            format!("{file}{at}: {}", e.message())
        })?;
        let mut c = Config::default();
        let s = &mut c.supervisor;
        let r = raw.supervisor;
        let dur = |key: &str, v: Option<String>, slot: &mut Duration| -> Result<(), String> {
            if let Some(v) = v {
                *slot = parse_duration(&v).map_err(|m| format!("{file}: supervisor.{key}: {m}"))?;
            }
            Ok(())
        };
        dur("health_timeout", r.health_timeout, &mut s.health_timeout)?;
        dur("stop_grace", r.stop_grace, &mut s.stop_grace)?;
        dur("backoff_initial", r.backoff_initial, &mut s.backoff_initial)?;
        dur("backoff_max", r.backoff_max, &mut s.backoff_max)?;
        dur(
            "crash_loop_window",
            r.crash_loop_window,
            &mut s.crash_loop_window,
        )?;
        if let Some(n) = r.crash_loop_restarts {
            if n == 0 {
                return Err(format!(
                    "{file}: supervisor.crash_loop_restarts: must be at least 1"
                ));
            }
            s.crash_loop_restarts = n;
        }
        if let Some(n) = r.journal_max_entries {
            s.journal_max_entries = n.max(10);
        }
        for u in &raw.collect.scrape {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(format!(
                    "{file}: collect.scrape: {u:?} is not an http(s) URL"
                ));
            }
        }
        c.scrape = raw.collect.scrape;
        c.console = ConsoleConfig {
            mouse: raw.console.mouse,
            keys: raw.console.keys,
        };
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = Config::parse("[supervisor]\nbackoff_initial = \"200ms\"\n", "x.toml").unwrap();
        assert_eq!(c.supervisor.backoff_initial, Duration::from_millis(200));
        assert_eq!(c.supervisor.crash_loop_restarts, 5);
    }

    #[test]
    fn console_section_and_the_shipped_file_parse() {
        let c = Config::parse(
            "[console]\nmouse = true\n[console.keys]\nrestart = \"R\"\n",
            "x.toml",
        )
        .unwrap();
        assert!(c.console.mouse);
        assert_eq!(c.console.keys["restart"], "R");
        let shipped = include_str!("../../config/osmen.toml");
        let c = Config::parse(shipped, "config/osmen.toml").unwrap();
        assert!(!c.console.mouse && c.console.keys.is_empty());
        let e = Config::parse("[console]\nmouse = \"yes\"\n", "osmen.toml").unwrap_err();
        assert!(e.starts_with("osmen.toml:2:"), "{e}");
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = Config::parse("[supervisor]\nbackof_initial = \"1s\"\n", "osmen.toml").unwrap_err();
        assert!(e.starts_with("osmen.toml:2:"), "{e}");
        assert!(e.contains("backof_initial"), "{e}");
        let e = Config::parse("[supervisor]\nstop_grace = \"10\"\n", "osmen.toml").unwrap_err();
        assert!(
            e.contains("supervisor.stop_grace") && e.contains("missing unit"),
            "{e}"
        );
    }
}
