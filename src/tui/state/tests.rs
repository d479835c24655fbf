use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::row_actions::HSCROLL_STEP;
use super::*;
use crate::model::console::{Command, LogLine};
use crate::model::snapshot::{ServiceStats, Snapshot};
use crate::tui::keymap::Keymap;

fn snap() -> Snapshot {
    let svc = |name: &str, n: u32| ServiceStats {
        service: name.into(),
        container: format!("p-{name}-{n}"),
        state: "running".into(),
        health: "healthy".into(),
        ..Default::default()
    };
    let mut s = Snapshot {
        project: "p".into(),
        services: vec![
            svc("api", 1),
            svc("db", 1),
            svc("worker", 1),
            svc("worker", 2),
        ],
        ..Default::default()
    };
    s.logs.push(
        [
            "boot",
            "ready",
            "GET /health 200",
            "error: boom",
            "GET /health 200",
        ]
        .iter()
        .map(|t| LogLine {
            time: 0.0,
            service: "api".into(),
            container: "p-api-1".into(),
            stderr: false,
            text: t.to_string(),
            replica: 1,
        })
        .collect(),
    );
    s
}

/// A CPU suggestion for `api` of the given action kind.
fn sug(id: &str, kind: &str) -> crate::model::advice::Suggestion {
    crate::model::advice::Suggestion {
        id: id.into(),
        service: "api".into(),
        rule: "cpu".into(),
        severity: "warning".into(),
        evidence: String::new(),
        since: 0.0,
        action: crate::model::advice::ScaleAction {
            kind: kind.into(),
            cpus: Some(1.0),
            memory: None,
            replicas: None,
            maxmemory: None,
            from: String::new(),
        },
        command: format!("docker update {id}"),
        compose_patch: String::new(),
    }
}

fn key(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

fn press(st: &mut UiState, s: &Snapshot, keys: &str) -> Vec<Command> {
    let km = Keymap::default();
    keys.chars()
        .filter_map(|c| on_key(st, &km, s, key(c)))
        .collect()
}

#[test]
fn number_keys_tab_and_quit() {
    let s = snap();
    let mut st = UiState::new(false, false);
    press(&mut st, &s, "5");
    assert_eq!(st.view, View::Logs);
    let km = Keymap::default();
    on_key(
        &mut st,
        &km,
        &s,
        KeyEvent::new(KeyCode::Tab, KeyModifiers::NONE),
    );
    assert_eq!(st.view, View::Suggestions);
    on_key(
        &mut st,
        &km,
        &s,
        KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT),
    );
    on_key(
        &mut st,
        &km,
        &s,
        KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT),
    );
    assert_eq!(st.view, View::Gpu);
    press(&mut st, &s, "q");
    assert!(st.quit);
}

#[test]
fn restart_asks_first_and_sends_on_yes_only() {
    let s = snap();
    let mut st = UiState::new(false, false);
    assert!(press(&mut st, &s, "2jr").is_empty());
    assert_eq!(st.mode, Mode::Confirm(Command::Restart("db".into())));
    assert!(press(&mut st, &s, "n").is_empty());
    assert_eq!(st.mode, Mode::Normal);
    assert_eq!(
        press(&mut st, &s, "ry"),
        vec![Command::Restart("db".into())]
    );
    // Start is not destructive: no question.
    assert_eq!(press(&mut st, &s, "s"), vec![Command::Start("db".into())]);
}

#[test]
fn scaling_counts_the_running_replicas() {
    let s = snap();
    let mut st = UiState::new(false, false);
    assert_eq!(
        press(&mut st, &s, "2G+y"),
        vec![Command::Scale("worker".into(), 3)]
    );
    assert_eq!(
        press(&mut st, &s, "-y"),
        vec![Command::Scale("worker".into(), 1)]
    );
    assert!(press(&mut st, &s, "gj-").is_empty());
    assert!(st.message.as_deref().unwrap().contains("stop it"));
}

#[test]
fn read_only_refuses_every_mutating_key_of_every_view() {
    let mut s = snap();
    s.suggestions = vec![sug("cpu:api", "vertical")];
    let km = Keymap::default();
    // Services: start, stop, restart, scale up and down; anywhere: stack up and down;
    // Suggestions: apply. Each is refused, confirmed or not, and says why.
    for (view, keys) in [
        ("2", "s"),
        ("2", "x"),
        ("2", "r"),
        ("2", "+"),
        ("2", "jj-"),
        ("1", "U"),
        ("1", "D"),
        ("2", "U"),
        ("2", "D"),
    ] {
        let mut st = UiState::new(true, false);
        press(&mut st, &s, view);
        let mut sent = press(&mut st, &s, keys);
        sent.extend(press(&mut st, &s, "y"));
        assert!(sent.is_empty(), "{view}{keys}: sent {sent:?}");
        assert!(
            st.message
                .as_deref()
                .is_some_and(|m| m.starts_with("read-only console")),
            "{view}{keys}: {:?}",
            st.message
        );
    }
    let mut st = UiState::new(true, false);
    press(&mut st, &s, "6");
    let sent: Vec<Command> = on_key(&mut st, &km, &s, key('a')).into_iter().collect();
    assert!(sent.is_empty(), "apply: sent {sent:?}");
    assert_eq!(st.mode, Mode::Normal, "no confirmation is even asked");
    assert!(
        st.message
            .as_deref()
            .unwrap()
            .starts_with("read-only console")
    );
}

#[test]
fn read_only_refuses_and_says_so() {
    let s = snap();
    let mut st = UiState::new(true, false);
    assert!(press(&mut st, &s, "2ry").is_empty());
    assert!(
        st.message
            .as_deref()
            .unwrap()
            .starts_with("read-only console")
    );
    assert!(press(&mut st, &s, "D").is_empty());
    assert_eq!(st.mode, Mode::Normal);
    // The probe changes nothing: allowed.
    assert_eq!(press(&mut st, &s, "4p"), vec![Command::ProbeOllama(None)]);
}

#[test]
fn filter_narrows_the_list_and_esc_clears_it() {
    let s = snap();
    let mut st = UiState::new(false, false);
    press(&mut st, &s, "2/work");
    assert_eq!(st.mode, Mode::Filter);
    let km = Keymap::default();
    on_key(
        &mut st,
        &km,
        &s,
        KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE),
    );
    assert_eq!(service_rows(&s, st.filter(), st.sort).len(), 2);
    // While typing, letters are text, not keys: "q" did not quit.
    press(&mut st, &s, "/q");
    assert!(!st.quit);
    on_key(
        &mut st,
        &km,
        &s,
        KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE),
    );
    assert_eq!(service_rows(&s, st.filter(), st.sort).len(), 4);
}

#[test]
fn log_search_moves_between_matches_and_stops_following() {
    let s = snap();
    let mut st = UiState::new(false, false);
    let km = Keymap::default();
    press(&mut st, &s, "5/health");
    on_key(
        &mut st,
        &km,
        &s,
        KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE),
    );
    assert!(!st.logs.follow);
    let first = st.selected[View::Logs.index()];
    assert_eq!(first, 4);
    press(&mut st, &s, "n");
    assert_eq!(st.selected[View::Logs.index()], 2);
    press(&mut st, &s, "N");
    assert_eq!(st.selected[View::Logs.index()], 4);
    press(&mut st, &s, "y");
    assert_eq!(st.copy.as_deref(), Some("GET /health 200"));
    press(&mut st, &s, "wt");
    assert!(st.logs.wrap && st.logs.timestamps);
    press(&mut st, &s, "f");
    assert!(st.logs.follow);
}

#[test]
fn suggestions_apply_after_confirmation_and_copy_their_command() {
    let mut s = snap();
    s.suggestions = vec![sug("cpu:api", "vertical"), sug("host-cpu:host", "host")];
    let mut st = UiState::new(false, false);
    let km = Keymap::default();
    press(&mut st, &s, "6");
    let enter = KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE);
    // Enter opens the whole suggestion; `a` applies it.
    assert!(on_key(&mut st, &km, &s, enter).is_none());
    assert!(
        matches!(&st.mode, Mode::Detail(d) if d.lines.iter().any(|l| l.contains("a applies it")))
    );
    on_key(
        &mut st,
        &km,
        &s,
        KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE),
    );
    assert_eq!(st.mode, Mode::Normal);
    let apply = key('a');
    assert!(on_key(&mut st, &km, &s, apply).is_none());
    assert_eq!(
        st.mode,
        Mode::Confirm(Command::ApplySuggestion("cpu:api".into()))
    );
    assert_eq!(
        press(&mut st, &s, "y"),
        vec![Command::ApplySuggestion("cpu:api".into())]
    );
    press(&mut st, &s, "y");
    assert_eq!(st.copy.as_deref(), Some("docker update cpu:api"));
    // A host suggestion has nothing to apply.
    press(&mut st, &s, "j");
    assert!(on_key(&mut st, &km, &s, apply).is_none());
    assert_eq!(st.mode, Mode::Normal);
    assert!(st.message.as_deref().unwrap().contains("about the machine"));
    // Read-only refuses.
    let mut ro = UiState::new(true, false);
    press(&mut ro, &s, "6");
    assert!(on_key(&mut ro, &km, &s, apply).is_none());
    assert!(ro.message.as_deref().unwrap().starts_with("read-only"));
}

#[test]
fn leaving_follow_starts_from_the_newest_line_and_exited_replicas_do_not_count() {
    let mut s = snap();
    let mut st = UiState::new(false, false);
    press(&mut st, &s, "5k");
    assert!(!st.logs.follow);
    assert_eq!(
        st.selected[View::Logs.index()],
        3,
        "one above the newest of 5"
    );
    // One of worker's two replicas exited: + asks for 2, not 3.
    s.services[3].state = "exited".into();
    assert_eq!(
        press(&mut st, &s, "2G+y"),
        vec![Command::Scale("worker".into(), 2)]
    );
    // The list shrank under the selection: the action takes the highlighted row.
    s.services.truncate(2);
    assert_eq!(press(&mut st, &s, "s"), vec![Command::Start("db".into())]);
}

fn logs_of(lines: &[(&str, u32, &str)]) -> Snapshot {
    let mut s = snap();
    s.logs = Default::default();
    s.logs.push(
        lines
            .iter()
            .map(|(svc, n, t)| LogLine {
                time: 0.0,
                service: svc.to_string(),
                container: format!("p-{svc}-{n}"),
                stderr: false,
                text: t.to_string(),
                replica: *n,
            })
            .collect(),
    );
    s
}

#[test]
fn log_filter_ignores_case_and_matches_the_service_and_replica_prefix() {
    let s = logs_of(&[
        ("redis", 1, "Ready to accept connections"),
        ("worker", 1, "job 1 done"),
        ("worker", 2, "job 2 done"),
        ("api", 1, "GET /REDIS/keys 200"),
    ]);
    let mut st = UiState::new(false, false);
    press(&mut st, &s, "5&redis");
    let texts = |st: &UiState| -> Vec<String> {
        log_rows(&s, &st.logs)
            .iter()
            .map(|l| l.text.clone())
            .collect()
    };
    // The service prefix and, ignoring case, the text.
    assert_eq!(
        texts(&st),
        ["Ready to accept connections", "GET /REDIS/keys 200"]
    );
    st.logs.filter = "READY".into();
    assert_eq!(texts(&st), ["Ready to accept connections"]);
    // Replicas have their own prefix: worker#2 is the second one only.
    st.logs.filter = "worker#2".into();
    assert_eq!(texts(&st), ["job 2 done"]);
    let prefixes: Vec<String> = s.logs.iter().map(|l| l.source()).collect();
    assert_eq!(prefixes, ["redis", "worker", "worker#2", "api"]);
}

#[test]
fn sideways_scroll_moves_by_steps_and_wrap_refuses_it() {
    let s = snap();
    let mut st = UiState::new(false, false);
    press(&mut st, &s, "5lll");
    assert_eq!(st.logs.hscroll, 3 * HSCROLL_STEP);
    press(&mut st, &s, "hhhhh");
    assert_eq!(st.logs.hscroll, 0);
    press(&mut st, &s, "ll");
    press(&mut st, &s, "w");
    assert_eq!(st.logs.hscroll, 0, "wrap starts from the first column");
    press(&mut st, &s, "l");
    assert_eq!(st.logs.hscroll, 0);
    assert!(st.message.as_deref().unwrap().contains("w turns wrap off"));
}

#[test]
fn the_status_line_message_gives_way_to_the_answer_even_an_identical_one() {
    let mut s = snap();
    s.suggestions = vec![sug("cpu:api", "vertical")];
    let mut st = UiState::new(false, false);
    assert_eq!(
        press(&mut st, &s, "6ay"),
        vec![Command::ApplySuggestion("cpu:api".into())]
    );
    let status = |st: &UiState, s: &Snapshot| super::detail::status_text(st, s);
    assert_eq!(
        status(&st, &s).as_deref(),
        Some("apply suggestion cpu:api…")
    );
    s.activity
        .set_result("apply suggestion cpu:api: failed: boom".into());
    assert_eq!(
        status(&st, &s).as_deref(),
        Some("apply suggestion cpu:api: failed: boom")
    );
    // A key afterwards does not bring the old message back.
    press(&mut st, &s, "j");
    assert_eq!(
        status(&st, &s).as_deref(),
        Some("apply suggestion cpu:api: failed: boom")
    );
    // The same action again, answered with the same words: still replaced.
    press(&mut st, &s, "kay");
    assert_eq!(
        status(&st, &s).as_deref(),
        Some("apply suggestion cpu:api…")
    );
    s.activity
        .set_result("apply suggestion cpu:api: failed: boom".into());
    assert_eq!(
        status(&st, &s).as_deref(),
        Some("apply suggestion cpu:api: failed: boom")
    );
}

#[test]
fn events_are_newest_first_in_strict_time_order() {
    let mut s = snap();
    let ev = |t: f64, text: &str| crate::model::console::EventLine {
        time: t,
        source: "engine".into(),
        service: "api".into(),
        text: text.into(),
    };
    // Appended out of order: a journal line stamped before an engine line it followed.
    s.events = std::sync::Arc::new(vec![
        ev(10.0, "a"),
        ev(30.0, "c"),
        ev(20.0, "b"),
        ev(30.0, "d"),
    ]);
    let order: Vec<&str> = event_rows(&s, "").iter().map(|e| e.text.as_str()).collect();
    assert_eq!(order, ["d", "c", "b", "a"]);
}

#[test]
fn enter_opens_the_whole_text_and_the_popup_scrolls_and_closes() {
    let mut s = snap();
    let long = "x ".repeat(400);
    s.events = std::sync::Arc::new(vec![crate::model::console::EventLine {
        time: 0.0,
        source: "console".into(),
        service: "api".into(),
        text: format!("up failed: {long}END"),
    }]);
    let km = Keymap::default();
    let enter = KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE);
    let mut st = UiState::new(false, false);
    press(&mut st, &s, "7");
    on_key(&mut st, &km, &s, enter);
    let Mode::Detail(d) = &st.mode else {
        panic!("{:?}", st.mode)
    };
    assert!(d.lines.iter().any(|l| l.ends_with("END")));
    press(&mut st, &s, "jjj");
    assert!(matches!(&st.mode, Mode::Detail(d) if d.scroll == 3));
    press(&mut st, &s, "k");
    assert!(matches!(&st.mode, Mode::Detail(d) if d.scroll == 2));
    // q closes the popup, it does not quit.
    press(&mut st, &s, "q");
    assert_eq!(st.mode, Mode::Normal);
    assert!(!st.quit);
    // Overview has no rows: Enter opens the status line.
    st.message = Some("read-only console: a long refusal".into());
    press(&mut st, &s, "1");
    on_key(&mut st, &km, &s, enter);
    assert!(matches!(&st.mode, Mode::Detail(d) if d.lines[0].contains("a long refusal")));
    on_key(
        &mut st,
        &km,
        &s,
        KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE),
    );
    press(&mut st, &s, "m");
    assert!(matches!(&st.mode, Mode::Detail(_)));
}

#[test]
fn services_sort_by_cpu_memory_and_name_and_l_opens_the_service_logs() {
    let mut s = snap();
    for (x, (cpu, mem)) in
        s.services
            .iter_mut()
            .zip([(5.0, 300u64), (80.0, 100), (20.0, 900), (1.0, 50)])
    {
        x.cpu_percent = Some(cpu);
        x.memory_bytes = Some(mem);
    }
    s.services[3].number = 2;
    let names = |st: &UiState| -> Vec<String> {
        service_rows(&s, st.filter(), st.sort)
            .iter()
            .map(|x| x.display_name())
            .collect()
    };
    let mut st = UiState::new(false, false);
    press(&mut st, &s, "2");
    assert_eq!(names(&st), ["api", "db", "worker", "worker#2"]);
    press(&mut st, &s, "o");
    assert_eq!(st.sort, ServiceSort::Cpu);
    assert_eq!(names(&st), ["db", "worker", "api", "worker#2"]);
    press(&mut st, &s, "o");
    assert_eq!(names(&st), ["worker", "api", "db", "worker#2"]);
    press(&mut st, &s, "o");
    assert_eq!(st.sort, ServiceSort::Name);
    press(&mut st, &s, "jl");
    assert_eq!(st.view, View::Logs);
    assert_eq!(st.logs.service.as_deref(), Some("db"));
    assert!(st.logs.follow);
}

#[test]
fn shell_and_inspect_ask_for_the_selected_container_and_read_only_refuses_the_shell() {
    let mut s = snap();
    s.services.push(ServiceStats {
        service: "old".into(),
        container: "p-old-1".into(),
        state: "exited".into(),
        ..Default::default()
    });
    let mut st = UiState::new(false, false);
    assert_eq!(
        press(&mut st, &s, "2e"),
        vec![Command::Exec("p-api-1".into())]
    );
    assert_eq!(
        press(&mut st, &s, "i"),
        vec![Command::Inspect("p-api-1".into())]
    );
    assert!(matches!(&st.mode, Mode::Inspect { container, .. } if container == "p-api-1"));
    press(&mut st, &s, "q");
    assert_eq!(st.mode, Mode::Normal);
    // Not running: no shell, and it says why.
    assert!(press(&mut st, &s, "jje").is_empty());
    assert!(
        st.message
            .as_deref()
            .unwrap()
            .contains("needs a running container")
    );
    // Read-only: the shell is refused with a message; inspecting changes nothing.
    let mut ro = UiState::new(true, false);
    assert!(press(&mut ro, &s, "2e").is_empty());
    assert!(
        ro.message
            .as_deref()
            .unwrap()
            .starts_with("read-only console")
    );
    assert_eq!(
        press(&mut ro, &s, "i"),
        vec![Command::Inspect("p-api-1".into())]
    );
}

#[test]
fn keys_on_an_empty_snapshot_do_not_panic() {
    let s = Snapshot::default();
    let mut st = UiState::new(false, false);
    for v in "1234567".chars() {
        press(&mut st, &s, &format!("{v}jkgGnNyrsx+-dpfwtohlaeim"));
        st.mode = Mode::Normal;
    }
}

#[test]
fn model_actions_act_on_the_selected_model_and_respect_read_only() {
    use crate::model::console::OllamaKeep;
    use crate::model::ollama::{LoadedModel, Ollama};
    let mut s = snap();
    s.ollama = Some(Ollama {
        installed: vec!["a:1b".into(), "b:7b".into()],
        loaded: vec![LoadedModel {
            name: "a:1b".into(),
            ..Default::default()
        }],
        ..Default::default()
    });
    let mut st = UiState::new(false, false);
    assert_eq!(
        press(&mut st, &s, "4w"),
        vec![Command::Ollama("a:1b".into(), OllamaKeep::Warm)]
    );
    // The second row is the installed model that is not loaded.
    assert_eq!(
        press(&mut st, &s, "jP"),
        vec![Command::Ollama("b:7b".into(), OllamaKeep::Pin)]
    );
    assert_eq!(
        press(&mut st, &s, "ku"),
        vec![Command::Ollama("a:1b".into(), OllamaKeep::Unload)]
    );
    let mut ro = UiState::new(true, false);
    assert!(press(&mut ro, &s, "4P").is_empty());
    assert!(
        ro.message
            .as_deref()
            .unwrap()
            .starts_with("read-only console")
    );
    // No model: said, nothing sent.
    s.ollama.as_mut().unwrap().loaded.clear();
    s.ollama.as_mut().unwrap().installed.clear();
    let mut st = UiState::new(false, false);
    assert!(press(&mut st, &s, "4w").is_empty());
    assert!(st.message.as_deref().unwrap().contains("no model selected"));
    // Ollama not reached: the reason, not "no model".
    s.ollama = None;
    s.sources.insert(
        "ollama".into(),
        crate::model::snapshot::SourceHealth {
            status: "error since 10:00:00: connection refused".into(),
            last_error: None,
            last_sample: None,
            failing_since: None,
        },
    );
    let mut st = UiState::new(false, false);
    assert!(press(&mut st, &s, "4w").is_empty());
    assert_eq!(
        st.message.as_deref(),
        Some("Ollama cannot be reached: error since 10:00:00: connection refused")
    );
}
