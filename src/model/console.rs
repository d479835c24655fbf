//! What the console and the engine side say to each other: the `Command`s a key asks for,
//! and the event, log and activity records the hub publishes in the snapshot. Plain data.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde::Serialize;

/// An action the console asks the engine side to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Start(String),
    Stop(String),
    Restart(String),
    /// Run this many replicas of the service (until the next `up` from the file).
    Scale(String, u32),
    Up,
    Down,
    /// A short Ollama generation: time to first token and tokens/s (of this model, or
    /// the first loaded one).
    ProbeOllama(Option<String>),
    /// Apply the suggestion with this id (from the advisor).
    ApplySuggestion(String),
    /// An interactive shell in this container (by name): the console hands the terminal
    /// over until the shell exits.
    Exec(String),
    /// Read this container's configuration and health-check log (answered in
    /// `Activity::inspect`).
    Inspect(String),
    /// Load, unload or pin a model on the stack's Ollama.
    Ollama(String, OllamaKeep),
    /// Sample every this many milliseconds (the console's own collectors).
    SetSampling(u64),
    /// Show this `[[fleet]]` host's stack (by its entry's name), read through its own
    /// engine; `None` is this machine's own stack again.
    Switch(Option<String>),
}

/// The sampling period (ms) the console steps to from `now_ms`: `[` shorter, `]` longer,
/// through 0.5, 1, 2, 5 and 10 s (None at either end).
pub fn sampling_step(now_ms: u64, longer: bool) -> Option<u64> {
    const STEPS_MS: [u64; 5] = [500, 1000, 2000, 5000, 10_000];
    if longer {
        STEPS_MS.iter().find(|s| **s > now_ms).copied()
    } else {
        STEPS_MS.iter().rev().find(|s| **s < now_ms).copied()
    }
}

/// What a model action asks of Ollama's keep-alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OllamaKeep {
    /// Load it with Ollama's configured keep-alive.
    Warm,
    /// Unload it now (keep-alive 0).
    Unload,
    /// Keep it loaded until Ollama stops (keep-alive -1).
    Pin,
}

impl Command {
    /// What the confirmation prompt and the events list call it.
    pub fn describe(&self) -> String {
        match self {
            Command::Start(s) => format!("start {s}"),
            Command::Stop(s) => format!("stop {s}"),
            Command::Restart(s) => format!("restart {s}"),
            Command::Scale(s, n) => format!("scale {s} to {n} replicas"),
            Command::Up => "bring the stack up".into(),
            Command::Down => "take the stack down (containers removed, volumes kept)".into(),
            Command::ProbeOllama(None) => "run the Ollama tokens/s probe".into(),
            Command::ProbeOllama(Some(m)) => format!("run the tokens/s probe of {m}"),
            Command::ApplySuggestion(id) => format!("apply suggestion {id}"),
            Command::Exec(c) => format!("open a shell in {c}"),
            Command::Inspect(c) => format!("inspect {c}"),
            Command::Ollama(m, OllamaKeep::Warm) => format!("warm {m} (Ollama's keep-alive)"),
            Command::Ollama(m, OllamaKeep::Unload) => format!("unload {m}"),
            Command::Ollama(m, OllamaKeep::Pin) => format!("pin {m} (keep it loaded)"),
            Command::SetSampling(ms) => format!(
                "sample every {}",
                crate::model::units::format_duration(std::time::Duration::from_millis(*ms))
            ),
            Command::Switch(Some(h)) => format!("switch to fleet host {h}"),
            Command::Switch(None) => "switch back to this machine's stack".into(),
        }
    }

    /// Whether the command changes the stack (refused under `--read-only`).
    pub fn changes_stack(&self) -> bool {
        // A shell can change anything in its container: refused under --read-only too.
        !matches!(
            self,
            Command::ProbeOllama(_)
                | Command::Inspect(_)
                | Command::SetSampling(_)
                | Command::Switch(_)
        )
    }

    /// Whether it is carried out from the compose file (refused on a fleet host whose
    /// entry names only a project).
    pub fn needs_compose(&self) -> bool {
        matches!(
            self,
            Command::Up | Command::Scale(..) | Command::ApplySuggestion(_)
        )
    }

    /// Whether the operator must confirm it first.
    pub fn destructive(&self) -> bool {
        matches!(
            self,
            Command::Stop(_)
                | Command::Restart(_)
                | Command::Scale(..)
                | Command::Down
                | Command::ApplySuggestion(_)
        )
    }
}

/// One line of the Events view: a journal entry, an engine event or a console message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventLine {
    /// Seconds since the Unix epoch.
    pub time: f64,
    /// `journal`, `engine` or `console`.
    pub source: String,
    pub service: String,
    pub text: String,
}

/// One log line of a container.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogLine {
    /// Seconds since the Unix epoch, as the engine stamped the line (0 when it did not).
    pub time: f64,
    pub service: String,
    pub container: String,
    pub stderr: bool,
    pub text: String,
    /// The container's replica number (`com.docker.compose.container-number`).
    #[serde(default)]
    pub replica: u32,
}

impl LogLine {
    /// The line's prefix in the merged view: the service, with the replica number from
    /// the second replica on (`worker`, `worker#2`), as the Services view names rows.
    pub fn source(&self) -> String {
        if self.replica > 1 {
            format!("{}#{}", self.service, self.replica)
        } else {
            self.service.clone()
        }
    }
}

/// Bounded log buffer shared between snapshots: chunks behind `Arc`, so publishing a
/// snapshot copies a few pointers, not the lines.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogRing {
    chunks: VecDeque<Arc<Vec<LogLine>>>,
    len: usize,
    /// Lines ever pushed; a view that remembers it knows how many are new.
    pub pushed: u64,
}

impl LogRing {
    pub const MAX_LINES: usize = 5000;

    pub fn push(&mut self, lines: Vec<LogLine>) {
        if lines.is_empty() {
            return;
        }
        self.len += lines.len();
        self.pushed += lines.len() as u64;
        self.chunks.push_back(Arc::new(lines));
        while self.len > Self::MAX_LINES {
            let Some(first) = self.chunks.front() else {
                break;
            };
            let drop_n = (self.len - Self::MAX_LINES).min(first.len());
            if drop_n == first.len() {
                self.len -= first.len();
                self.chunks.pop_front();
            } else {
                let rest: Vec<LogLine> = first[drop_n..].to_vec();
                self.len -= drop_n;
                self.chunks[0] = Arc::new(rest);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &LogLine> {
        self.chunks.iter().flat_map(|c| c.iter())
    }
}

/// What the stack is doing right now, beyond the containers' own state.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Activity {
    /// `up` or `down` while one runs.
    pub running: Option<String>,
    /// Service -> why it is not started yet (while `up` waits on a dependency).
    pub blocked: BTreeMap<String, String>,
    /// Commands from the console still being carried out.
    pub pending: Vec<String>,
    /// The last answer to a console command ("restart api: done", or the error); set
    /// with `set_result`, which counts the answers.
    pub last_result: Option<String>,
    /// How many answers there have been: a console knows an answer is new even when its
    /// text equals the previous one.
    pub results: u64,
    /// The last container inspected (`Command::Inspect`), secrets masked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inspect: Option<Inspection>,
    /// Whether this console may change the stack.
    pub read_only: bool,
    /// Where the embedded gateway listens, or why it does not.
    pub gateway: Option<String>,
    /// Service -> what it waits for, `db (service_healthy)`, from the compose file.
    pub dependencies: BTreeMap<String, Vec<String>>,
    /// When the embedded gateway last served an API client (seconds since the epoch).
    pub gateway_last_client: Option<f64>,
    /// Service -> why its image could not be had at the last `up`: the registry's whole
    /// message and the fix (`cannot pull image x: ...\nfix: ...`).
    pub image_failures: BTreeMap<String, String>,
    /// How often the console's collectors sample now, in seconds (`[` and `]` change it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampling_s: Option<f64>,
    /// The `[[fleet]]` host whose stack the console shows (None: this machine's own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switched: Option<SwitchedTo>,
}

/// Where a switched console reads its stack: the fleet entry's name and its engine as
/// configured (`tcp://10.0.0.5:2375`, `context prod`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SwitchedTo {
    pub name: String,
    pub engine: String,
}

impl Activity {
    /// Records the answer to a command: the status line shows it in place of the message
    /// the key left ("apply suggestion…").
    pub fn set_result(&mut self, text: String) {
        self.last_result = Some(text);
        self.results += 1;
    }
}

/// One health-check run, as the engine keeps the last few.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HealthRun {
    /// RFC 3339, as the engine wrote it.
    pub start: String,
    pub exit_code: i64,
    pub output: String,
}

/// What `i` shows of a container: the configuration an operator reaches for in
/// `docker inspect`. Environment values whose names look secret, and URL passwords
/// anywhere, are masked when it is built (`masked`) and again when it is shown.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Inspection {
    pub container: String,
    pub image: String,
    pub command: String,
    pub state: String,
    pub created: String,
    /// `NAME=value`.
    pub env: Vec<String>,
    /// `volume osmen_data -> /data (rw)`.
    pub mounts: Vec<String>,
    pub labels: Vec<(String, String)>,
    /// `osmen_default 172.18.0.3 (aliases redis)`.
    pub networks: Vec<String>,
    pub health_status: String,
    pub health_log: Vec<HealthRun>,
}

impl Inspection {
    /// The same inspection with every secret masked.
    pub fn masked(mut self) -> Inspection {
        use super::secret::{mask_assignment, mask_url_credentials, shown};
        self.command = mask_url_credentials(&self.command);
        self.env = self.env.iter().map(|e| mask_assignment(e)).collect();
        self.mounts = self
            .mounts
            .iter()
            .map(|m| mask_url_credentials(m))
            .collect();
        for (k, v) in &mut self.labels {
            *v = shown(k, v);
        }
        for h in &mut self.health_log {
            h.output = mask_url_credentials(&h.output);
        }
        self
    }

    /// The pane's text, one entry a line, secrets masked.
    pub fn lines(&self) -> Vec<String> {
        let me = self.clone().masked();
        let mut v = vec![
            format!("container  {}", me.container),
            format!("image      {}", me.image),
            format!("command    {}", me.command),
            format!("state      {}  created {}", me.state, me.created),
        ];
        let mut section = |title: &str, items: Vec<String>| {
            v.push(String::new());
            v.push(format!("{title} ({})", items.len()));
            if items.is_empty() {
                v.push("  none".into());
            }
            v.extend(items.into_iter().map(|i| format!("  {i}")));
        };
        section("environment", me.env.clone());
        section("mounts", me.mounts.clone());
        section(
            "labels",
            me.labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        );
        section("networks", me.networks.clone());
        let status = if me.health_status.is_empty() {
            "no health check".to_string()
        } else {
            me.health_status.clone()
        };
        section(
            &format!("health checks: {status}"),
            me.health_log
                .iter()
                .map(|h| {
                    let out = h.output.trim().replace('\n', " | ");
                    format!("{} exit {}: {out}", h.start, h.exit_code)
                })
                .collect(),
        );
        v
    }
}

/// Quitting within this many seconds of the gateway's last API client asks first.
pub const QUIT_ASKS_WITHIN_S: f64 = 300.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_steps_run_from_half_a_second_to_ten() {
        assert_eq!(sampling_step(1000, true), Some(2000));
        assert_eq!(sampling_step(1000, false), Some(500));
        assert_eq!(sampling_step(500, false), None);
        assert_eq!(sampling_step(10_000, true), None);
        assert_eq!(sampling_step(3000, true), Some(5000));
        assert_eq!(sampling_step(3000, false), Some(2000));
    }

    fn line(i: usize) -> LogLine {
        LogLine {
            time: 0.0,
            service: "s".into(),
            container: "c".into(),
            stderr: false,
            text: i.to_string(),
            replica: 1,
        }
    }

    #[test]
    fn log_ring_is_bounded_and_keeps_the_newest() {
        let mut r = LogRing::default();
        for c in 0..30 {
            r.push((c * 300..(c + 1) * 300).map(line).collect());
        }
        assert_eq!(r.len(), LogRing::MAX_LINES);
        assert_eq!(r.iter().count(), LogRing::MAX_LINES);
        assert_eq!(r.iter().next().unwrap().text, (9000 - 5000).to_string());
        assert_eq!(r.iter().last().unwrap().text, "8999");
        assert_eq!(r.pushed, 9000);
    }

    #[test]
    fn destructive_commands_are_confirmed_and_probe_is_read_only() {
        assert!(Command::Down.destructive());
        assert!(!Command::Start("a".into()).destructive());
        assert!(!Command::ProbeOllama(None).changes_stack());
        assert!(Command::Up.changes_stack());
        assert!(!Command::Switch(Some("b".into())).changes_stack());
        assert!(Command::Up.needs_compose() && !Command::Restart("a".into()).needs_compose());
    }
}
