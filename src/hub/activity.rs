//! The changes the console makes to `Activity` (what the stack is doing): one variant per
//! change, so an update can be printed, compared and tested.

use std::collections::BTreeMap;

use crate::model::console::{Activity, Inspection};

#[derive(Debug, Clone, PartialEq)]
pub enum ActivityChange {
    /// The console is up: whether it may change the stack, where its gateway listens (or
    /// why not), and what each service waits for.
    ConsoleStarted {
        read_only: bool,
        gateway: String,
        dependencies: BTreeMap<String, Vec<String>>,
    },
    /// The first run's note, shown on the status line (not counted as an answer).
    FirstRunNote(String),
    /// The supervisor said `service` waits for a dependency (`line` says which).
    Blocked { service: String, line: String },
    /// The supervisor reported on `service` otherwise: it no longer waits.
    Unblocked(String),
    /// `up` began: it runs, and the last `up`'s image failures are forgotten.
    UpStarted,
    /// `up` ended: nothing is blocked any more, its answer and the images that could not
    /// be had (service -> the registry's message).
    UpEnded {
        result: String,
        image_failures: BTreeMap<String, String>,
    },
    /// A console command is being carried out.
    Pending(String),
    /// A console command ended (`command` as `Pending` named it) with this answer.
    Done { command: String, result: String },
    /// An answer that ends no pending command (the engine is unavailable).
    Result(String),
    /// The container the operator inspected.
    Inspected(Box<Inspection>),
    /// When the embedded gateway last served an API client.
    GatewayLastClient(Option<f64>),
    /// The collectors sample this often now (seconds).
    Sampling(f64),
    /// The console shows this fleet host's stack (None: this machine's).
    Switched(Option<crate::model::console::SwitchedTo>),
}

impl ActivityChange {
    pub fn apply(self, a: &mut Activity) {
        match self {
            ActivityChange::ConsoleStarted {
                read_only,
                gateway,
                dependencies,
            } => {
                a.read_only = read_only;
                a.gateway = Some(gateway);
                a.dependencies = dependencies;
            }
            ActivityChange::FirstRunNote(n) => a.last_result = Some(n),
            ActivityChange::Blocked { service, line } => {
                a.blocked.insert(service, line);
            }
            ActivityChange::Unblocked(service) => {
                a.blocked.remove(&service);
            }
            ActivityChange::UpStarted => {
                a.running = Some("up".into());
                a.image_failures.clear();
            }
            ActivityChange::UpEnded {
                result,
                image_failures,
            } => {
                a.running = None;
                a.blocked.clear();
                a.set_result(result);
                a.image_failures = image_failures;
            }
            ActivityChange::Pending(w) => a.pending.push(w),
            ActivityChange::Done { command, result } => {
                if let Some(i) = a.pending.iter().position(|p| *p == command) {
                    a.pending.remove(i);
                }
                a.set_result(result);
            }
            ActivityChange::Result(msg) => a.set_result(msg),
            ActivityChange::Inspected(i) => a.inspect = Some(*i),
            ActivityChange::GatewayLastClient(t) => a.gateway_last_client = t,
            ActivityChange::Sampling(s) => a.sampling_s = Some(s),
            ActivityChange::Switched(to) => a.switched = to,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(a: &Activity, c: ActivityChange) -> Activity {
        let mut a = a.clone();
        c.apply(&mut a);
        a
    }

    fn map(k: &str, v: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(k.to_string(), v.to_string())])
    }

    #[test]
    fn console_started_sets_mode_gateway_and_dependencies() {
        let deps = BTreeMap::from([("api".to_string(), vec!["db (service_healthy)".into()])]);
        let a = after(
            &Activity::default(),
            ActivityChange::ConsoleStarted {
                read_only: true,
                gateway: "127.0.0.1:8080".into(),
                dependencies: deps.clone(),
            },
        );
        assert!(a.read_only);
        assert_eq!(a.gateway.as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(a.dependencies, deps);
    }

    #[test]
    fn the_first_run_note_is_shown_but_not_counted() {
        let a = after(
            &Activity::default(),
            ActivityChange::FirstRunNote("n".into()),
        );
        assert_eq!((a.last_result.as_deref(), a.results), (Some("n"), 0));
    }

    #[test]
    fn blocked_then_unblocked() {
        let line = "api waits for db (service_healthy)".to_string();
        let a = after(
            &Activity::default(),
            ActivityChange::Blocked {
                service: "api".into(),
                line: line.clone(),
            },
        );
        assert_eq!(a.blocked, map("api", &line));
        let a = after(&a, ActivityChange::Unblocked("db".into()));
        assert_eq!(
            a.blocked.len(),
            1,
            "another service's report leaves api blocked"
        );
        let a = after(&a, ActivityChange::Unblocked("api".into()));
        assert!(a.blocked.is_empty());
    }

    #[test]
    fn up_started_runs_and_forgets_the_last_image_failures() {
        let before = Activity {
            image_failures: map("api", "cannot pull image x"),
            ..Default::default()
        };
        let a = after(&before, ActivityChange::UpStarted);
        assert_eq!(a.running.as_deref(), Some("up"));
        assert!(a.image_failures.is_empty());
    }

    #[test]
    fn up_ended_clears_running_and_blocked_and_answers() {
        let before = Activity {
            running: Some("up".into()),
            blocked: map("api", "api waits for db"),
            ..Default::default()
        };
        let a = after(
            &before,
            ActivityChange::UpEnded {
                result: "up failed: x".into(),
                image_failures: map("api", "cannot pull image x"),
            },
        );
        assert_eq!(a.running, None);
        assert!(a.blocked.is_empty());
        assert_eq!(
            (a.last_result.as_deref(), a.results),
            (Some("up failed: x"), 1)
        );
        assert_eq!(a.image_failures, map("api", "cannot pull image x"));
    }

    #[test]
    fn pending_then_done_removes_one_and_answers() {
        let mut a = after(
            &Activity::default(),
            ActivityChange::Pending("restart api".into()),
        );
        a = after(&a, ActivityChange::Pending("restart api".into()));
        assert_eq!(a.pending, ["restart api", "restart api"]);
        a = after(
            &a,
            ActivityChange::Done {
                command: "restart api".into(),
                result: "restart api: done".into(),
            },
        );
        assert_eq!(a.pending, ["restart api"], "one of the two ended");
        assert_eq!(
            (a.last_result.as_deref(), a.results),
            (Some("restart api: done"), 1)
        );
    }

    #[test]
    fn a_result_is_counted() {
        let a = after(&Activity::default(), ActivityChange::Result("x".into()));
        let a = after(&a, ActivityChange::Result("x".into()));
        assert_eq!((a.last_result.as_deref(), a.results), (Some("x"), 2));
    }

    #[test]
    fn inspected_keeps_the_inspection() {
        let i = Inspection {
            container: "p-api-1".into(),
            ..Default::default()
        };
        let a = after(
            &Activity::default(),
            ActivityChange::Inspected(Box::new(i.clone())),
        );
        assert_eq!(a.inspect, Some(i));
    }

    #[test]
    fn gateway_last_client_is_set_and_cleared() {
        let a = after(
            &Activity::default(),
            ActivityChange::GatewayLastClient(Some(5.0)),
        );
        assert_eq!(a.gateway_last_client, Some(5.0));
        let a = after(&a, ActivityChange::GatewayLastClient(None));
        assert_eq!(a.gateway_last_client, None);
    }

    #[test]
    fn the_sampling_period_is_recorded() {
        let a = after(&Activity::default(), ActivityChange::Sampling(2.0));
        assert_eq!(a.sampling_s, Some(2.0));
    }

    #[test]
    fn a_change_prints() {
        assert_eq!(format!("{:?}", ActivityChange::UpStarted), "UpStarted");
    }
}
