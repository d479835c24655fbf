//! Screens as text: every view drawn into ratatui's `TestBackend` at 80x24 and 160x48,
//! from a fixed snapshot, with every source up and with the sources down; and a 1x1
//! terminal, which must not panic. Compared with insta snapshots under `snapshots/`.

mod fixtures;

use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::action::View;
use super::keymap::Keymap;
use super::state::{Mode, UiState};
use super::theme::{ColorMode, Theme};
use super::views;
use crate::model::console::{Command, EventLine};
use crate::model::snapshot::{ServiceStats, Snapshot, SourceHealth};
use fixtures::{T0, changed_stack, down, failing, full, inspection};

fn render(st: &mut UiState, s: &Snapshot, w: u16, h: u16) -> String {
    let theme = Theme {
        color: ColorMode::None,
        ascii: st.ascii,
    };
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| views::draw(f, st, s, &Keymap::default(), &theme))
        .unwrap();
    let buf = term.backend().buffer();
    let mut out = String::new();
    for y in 0..buf.area.height {
        let mut line = String::new();
        for x in 0..buf.area.width {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn slug(v: View) -> String {
    format!("{}_{}", v.index() + 1, v.title().to_lowercase())
}

#[test]
fn every_view_at_80x24_and_160x48_with_sources_up_and_down() {
    for (variant, snap) in [("up", full()), ("down", down())] {
        for (w, h) in [(80u16, 24u16), (160, 48)] {
            for v in View::ALL {
                let mut st = UiState::new(false, false);
                st.view = v;
                let text = render(&mut st, &snap, w, h);
                insta::assert_snapshot!(format!("{}_{w}x{h}_{variant}", slug(v)), text);
            }
        }
    }
}

#[test]
fn secrets_in_log_lines_are_masked_on_screen() {
    let mut st = UiState::new(false, false);
    st.view = View::Logs;
    let text = render(&mut st, &full(), 160, 48);
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("postgres://app:"), "{text}");
}

#[test]
fn help_confirm_ascii_and_dependency_screens() {
    let s = full();
    let mut st = UiState::new(false, false);
    st.view = View::Services;
    st.mode = Mode::Help;
    insta::assert_snapshot!("help_services_80x24", render(&mut st, &s, 80, 24));
    st.mode = Mode::Confirm(crate::model::console::Command::Restart("gateway".into()));
    insta::assert_snapshot!("confirm_restart_80x24", render(&mut st, &s, 80, 24));
    st.mode = Mode::Normal;
    st.show_dependencies = true;
    insta::assert_snapshot!("dependencies_80x24", render(&mut st, &s, 80, 24));
    let mut st = UiState::new(false, true);
    insta::assert_snapshot!("overview_ascii_80x24", render(&mut st, &s, 80, 24));
    let ascii = render(&mut st, &s, 80, 24);
    assert!(
        ascii.is_ascii(),
        "--ascii drew a non-ASCII character:\n{ascii}"
    );
}

#[test]
fn services_detail_pane_shows_the_selected_service_probe() {
    let s = full();
    let mut st = UiState::new(false, false);
    st.view = View::Services;
    for (i, name) in [(4usize, "postgres"), (5, "redis")] {
        st.selected[View::Services.index()] = i;
        let text = render(&mut st, &s, 160, 48);
        insta::assert_snapshot!(format!("services_probe_{name}_160x48"), text);
    }
    st.selected[View::Services.index()] = 4;
    let text = render(&mut st, &s, 160, 48);
    for want in [
        "1255/s",
        "14 of 100",
        "97.1%",
        "pg_sleep(2)",
        "INSERT INTO load",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
    st.selected[View::Services.index()] = 5;
    let text = render(&mut st, &s, 160, 48);
    for want in ["104/s", "allkeys-lru", "2MiB", "52.0%"] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
}

#[test]
fn a_provider_with_an_open_circuit_is_shown_failing() {
    let mut s = full();
    for a in &mut s.agents {
        a.providers_failing = Some(vec!["ollama".into()]);
        for m in a.models.iter_mut() {
            if m.provider == "ollama" {
                m.circuit = Some("open".into());
            }
        }
    }
    let mut st = UiState::new(false, false);
    st.view = View::Agents;
    let text = render(&mut st, &s, 160, 48);
    assert!(text.contains("FAILING: ollama (circuit open)"), "{text}");
    assert!(text.contains("[failing: circuit open]"), "{text}");
}

#[test]
fn an_unwritable_journal_is_on_the_overview() {
    let mut s = full();
    s.sources.insert(
        "journal".into(),
        SourceHealth {
            status: "error since 04:00:00 UTC: /srv/osmen/runtime: Not a directory (os error \
                     20); actions are refused until the journal can be written"
                .into(),
            last_error: None,
            last_sample: None,
            failing_since: Some(T0),
        },
    );
    let mut st = UiState::new(false, false);
    let text = render(&mut st, &s, 160, 48);
    assert!(
        text.contains("journal: error since 04:00:00 UTC: /srv"),
        "{text}"
    );
}

#[test]
fn tiny_terminals_get_a_message_not_a_panic() {
    for (w, h) in [(1, 1), (0, 0), (39, 24), (80, 9), (40, 10)] {
        for v in View::ALL {
            for snap in [full(), down()] {
                let mut st = UiState::new(false, false);
                st.view = v;
                st.mode = Mode::Help;
                let text = render(&mut st, &snap, w, h);
                if w < views::MIN_WIDTH || h < views::MIN_HEIGHT {
                    assert!(
                        w * h == 0 || text.contains("terminal") || text.len() < 4,
                        "{text}"
                    );
                }
            }
        }
    }
    let mut st = UiState::new(false, false);
    assert!(render(&mut st, &full(), 39, 24).starts_with("terminal too small: 39x24"));
}

#[test]
fn replica_rows_show_under_their_merged_row_on_demand() {
    let mut s = full();
    s.agents.push(
        serde_json::from_value::<crate::model::agent::AgentRow>(
            serde_json::json!({"agent": "gateway/daily_brief", "replicas": 2,
        "requests_per_s": 30.0, "p50_seconds": 0.05, "p95_seconds": 0.2, "p99_seconds": 0.4,
        "latency_source": "merged histogram buckets of 2 replica(s), histogram, last 60 s"}),
        )
        .unwrap(),
    );
    for (n, p99) in [(1, 0.35), (2, 0.47)] {
        s.replica_agents.push(
            serde_json::from_value::<crate::model::agent::AgentRow>(serde_json::json!({
            "agent": format!("gateway/daily_brief@osmen-gateway-{n}"),
            "group_agent": "gateway/daily_brief", "replica": format!("osmen-gateway-{n}"),
            "requests_per_s": 15.0, "p50_seconds": 0.05, "p95_seconds": 0.2, "p99_seconds": p99}))
            .unwrap(),
        );
    }
    let mut st = UiState::new(false, false);
    st.view = View::Agents;
    let text = render(&mut st, &s, 160, 48);
    assert!(text.contains("gateway/daily_brief"), "{text}");
    assert!(
        !text.contains("osmen-gateway-1 "),
        "replica rows shown unasked:\n{text}"
    );
    let _ = crate::tui::state::update(&mut st, &s, crate::tui::action::Action::Replicas);
    let text = render(&mut st, &s, 160, 48);
    let merged = text.find("gateway/daily_brief ").unwrap();
    let first = text.find("└ osmen-gateway-1").unwrap();
    let second = text.find("└ osmen-gateway-2").unwrap();
    assert!(merged < first && first < second, "{text}");
    assert!(
        text.contains("2 replica rows under the merged rows"),
        "{text}"
    );
}

#[test]
fn exited_oom_replica_and_not_created_rows() {
    for (w, h) in [(80u16, 24u16), (160, 48)] {
        let mut st = UiState::new(false, false);
        st.view = View::Services;
        let text = render(&mut st, &changed_stack(), w, h);
        insta::assert_snapshot!(format!("services_changed_{w}x{h}"), text);
        let row = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(&format!("│{name} ")))
                .unwrap_or_else(|| panic!("no row {name}:\n{text}"))
                .to_string()
        };
        let api = row("api");
        assert!(api.contains("exited (137)"), "{api}");
        assert!(!api.contains("healthy") && !api.contains("0B"), "{api}");
        assert!(row("worker").contains("oom (137)"));
        assert!(row("worker#2").contains("running"));
        assert!(row("burner").contains("not created"));
    }
}

#[test]
fn quitting_asks_while_the_gateway_has_recent_clients() {
    use crate::tui::action::Action;
    let mut s = full();
    s.taken_at = T0;
    s.activity.gateway_last_client = Some(T0 - 30.0);
    let mut st = UiState::new(false, false);
    let _ = crate::tui::state::update(&mut st, &s, Action::Quit);
    assert!(!st.quit, "a recent client: quitting asks first");
    assert!(matches!(st.mode, Mode::ConfirmQuit(_)));
    insta::assert_snapshot!("quit_asks_80x24", render(&mut st, &s, 80, 24));
    // Ctrl-C asks too, and a second one quits.
    let ctrl_c = crossterm::event::KeyEvent::new(
        crossterm::event::KeyCode::Char('c'),
        crossterm::event::KeyModifiers::CONTROL,
    );
    let mut st = UiState::new(false, false);
    let km = crate::tui::keymap::Keymap::default();
    let _ = crate::tui::state::on_key(&mut st, &km, &s, ctrl_c);
    assert!(!st.quit && matches!(st.mode, Mode::ConfirmQuit(_)));
    let _ = crate::tui::state::on_key(&mut st, &km, &s, ctrl_c);
    assert!(st.quit, "a second Ctrl-C quits");
    // Long enough ago, or never: it quits at once.
    s.activity.gateway_last_client = Some(T0 - 301.0);
    let mut st = UiState::new(false, false);
    let _ = crate::tui::state::update(&mut st, &s, Action::Quit);
    assert!(st.quit);
    s.activity.gateway_last_client = None;
    let mut st = UiState::new(false, false);
    let _ = crate::tui::state::update(&mut st, &s, Action::Quit);
    assert!(st.quit);
}

#[test]
fn a_failing_agent_is_marked_with_its_error_rate_and_last_error() {
    let s = failing();
    for (w, h) in [(80u16, 24u16), (160, 48)] {
        let mut st = UiState::new(false, false);
        st.view = View::Agents;
        let text = render(&mut st, &s, w, h);
        insta::assert_snapshot!(format!("agents_failing_{w}x{h}"), text);
        for want in [
            "FAILING: daily_brief (100% of requests)",
            "no provider",
            "100%",
        ] {
            assert!(text.contains(want), "{w}x{h}: {want} missing:\n{text}");
        }
    }
    let mut st = UiState::new(false, false);
    st.view = View::Agents;
    let text = render(&mut st, &s, 160, 48);
    for want in [
        "743 of 743 failed in the last minute",
        "FAILING",
        "no provider at 03:59:58 UTC, 2s ago: no LLM provider is configured",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
    let mut st = UiState::new(false, false);
    let text = render(&mut st, &s, 80, 24);
    insta::assert_snapshot!("overview_failing_80x24", text);
    let line = text
        .lines()
        .find(|l| l.contains("daily_brief"))
        .expect("the failing agent is listed first");
    assert!(
        line.contains("140.3/s") && line.contains("100%") && line.contains("FAILING"),
        "{line}"
    );
    // A healthy agent is not marked.
    let text = render(&mut UiState::new(false, false), &full(), 160, 48);
    assert!(!text.contains("FAILING"), "{text}");
}

/// The body rows of a Logs screen that hold a log line (between the borders).
fn log_body(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with('│'))
        .map(|l| l.trim_matches('│').trim_end().to_string())
        .collect()
}

#[test]
fn log_scrolling_shows_a_full_page_at_every_position_with_and_without_a_filter() {
    let s = full();
    for filter in ["", "GATEWAY", "gateway#2", "request 3"] {
        for wrap in [false, true] {
            let mut st = UiState::new(false, false);
            st.view = View::Logs;
            st.logs.filter = filter.into();
            st.logs.wrap = wrap;
            let rows = crate::tui::state::log_rows(&s, &st.logs);
            assert!(!rows.is_empty(), "{filter:?} matches nothing");
            let n = rows.len();
            let texts: Vec<String> = rows.iter().map(|l| l.text.clone()).collect();
            for (sel, line) in texts.iter().enumerate() {
                st.logs.follow = false;
                st.selected[View::Logs.index()] = sel;
                let text = render(&mut st, &s, 80, 24);
                let body = log_body(&text);
                // 24 rows: tab bar, two borders, status line; 20 for the lines.
                assert_eq!(body.len(), 20, "{filter:?} wrap {wrap} at {sel}:\n{text}");
                let filled = body.iter().filter(|l| !l.trim().is_empty()).count();
                let want = if wrap { 20.min(2 * n) } else { 20.min(n) };
                assert!(
                    filled >= want.min(20) - usize::from(wrap),
                    "{filter:?} wrap {wrap} at {sel} of {n}: {filled} of 20 rows drawn:\n{text}"
                );
                let head: String = line.chars().take(30).collect();
                assert!(
                    text.contains(&head),
                    "{filter:?} wrap {wrap}: selected line {sel} not shown:\n{text}"
                );
            }
        }
    }
}

#[test]
fn logs_scroll_sideways_and_replicas_have_their_own_prefix() {
    let s = full();
    let mut st = UiState::new(false, false);
    st.view = View::Logs;
    st.logs.hscroll = 16;
    let text = render(&mut st, &s, 80, 24);
    assert!(text.contains("from column 17"), "{text}");
    assert!(text.contains("gateway#2 api/v1/agents"), "{text}");
    assert!(!text.contains("request 39"), "{text}");
}

#[test]
fn inspect_pane_masks_secrets_and_shows_mounts_labels_networks_and_health_log() {
    let mut s = full();
    let mut st = UiState::new(false, false);
    st.view = View::Services;
    st.mode = Mode::Inspect {
        container: "osmen-gateway-1".into(),
        scroll: 0,
    };
    let waiting = render(&mut st, &s, 80, 24);
    assert!(
        waiting.contains("asking the engine about osmen-gateway-1"),
        "{waiting}"
    );
    s.activity.inspect = Some(inspection());
    let text = render(&mut st, &s, 160, 48);
    insta::assert_snapshot!("inspect_160x48", text);
    for secret in ["sk-live", "hunter2", "tok-9f8e7d", "s3cret"] {
        assert!(!text.contains(secret), "{secret} shown:\n{text}");
    }
    for want in [
        "OPENAI_API_KEY=********",
        "postgresql://osmen:********@postgres",
        "volume osmen_gateway-data -> /data (rw)",
        "com.docker.compose.service=gateway",
        "osmen_default 172.18.0.5",
        "health checks: healthy (3)",
        "2026-11-29T03:59:52Z exit 0",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
    // At 80x24 it scrolls: the end is reached with G and nothing is cut on the way.
    let text = render(&mut st, &s, 80, 24);
    insta::assert_snapshot!("inspect_80x24", text);
    assert!(!text.contains("03:59:52Z"), "{text}");
    if let Mode::Inspect { scroll, .. } = &mut st.mode {
        *scroll = usize::MAX / 2;
    }
    let end = render(&mut st, &s, 80, 24);
    assert!(end.contains("2026-11-29T03:59:52Z exit 0"), "{end}");
}

#[test]
fn the_whole_text_popup_and_a_long_confirmation_wrap_instead_of_cutting() {
    let mut s = full();
    let long = "pull access denied for registry-1.docker.io/library/langflow, repository does \
                not exist or may require 'docker login': denied: requested access to the \
                resource is denied; fix: docker login, or build the image locally (END)";
    std::sync::Arc::make_mut(&mut s.events).push(EventLine {
        time: T0,
        source: "console".into(),
        service: "langflow".into(),
        text: long.into(),
    });
    let mut st = UiState::new(false, false);
    st.view = View::Events;
    let _ = crate::tui::state::update(&mut st, &s, crate::tui::action::Action::Open);
    let text = render(&mut st, &s, 80, 24);
    insta::assert_snapshot!("event_detail_80x24", text);
    assert!(text.contains("(END)"), "{text}");
    let joined: String = text.split_whitespace().collect();
    for word in long.split_whitespace() {
        assert!(joined.contains(word), "{word} cut:\n{text}");
    }
    let mut st = UiState::new(false, false);
    st.view = View::Suggestions;
    st.mode = Mode::Confirm(crate::model::console::Command::ApplySuggestion(
        "agent-errors:gateway/knowledge_management_with_a_long_name".into(),
    ));
    let text = render(&mut st, &s, 80, 24);
    insta::assert_snapshot!("confirm_long_80x24", text);
    assert!(
        text.contains("agent-errors:gateway/knowledge_management_with_a_long_name│"),
        "{text}"
    );
    assert!(text.contains("?  y = yes, any other key = no"), "{text}");
}

#[test]
fn agents_at_80_columns_keep_14_characters_of_names_and_the_units_of_figures() {
    let text = render(
        &mut UiState::new(false, false).tap_view(View::Agents),
        &full(),
        80,
        24,
    );
    let row = text
        .lines()
        .find(|l| l.contains("knowle"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains("knowle…agement "), "{row}");
    for unit in ["20.5GiB", "9.50s", "14.00s", "15.10s"] {
        assert!(row.contains(unit), "{unit} missing or cut: {row}");
    }
}

trait TapView {
    fn tap_view(self, v: View) -> Self;
}

impl TapView for UiState {
    fn tap_view(mut self, v: View) -> Self {
        self.view = v;
        self
    }
}

/// The tester's case: no registry answers, and every image of the stack fails to pull.
#[test]
fn every_failed_pull_shows_in_its_row_and_whole_in_the_detail_pane() {
    let mut s = changed_stack();
    s.services.push(ServiceStats::not_created("postgres"));
    let long = "cannot pull image postgres:15-alpine: Get \"https://registry-1.docker.io/v2/\": \
                dial tcp: lookup registry-1.docker.io on 127.0.0.53:53: server misbehaving\n\
                fix: the registry docker.io cannot be reached from the engine: check the \
                network, or use `--pull never` with images already on this engine";
    for svc in ["burner", "postgres"] {
        s.activity.image_failures.insert(
            svc.into(),
            long.replace("postgres:15-alpine", &format!("{svc}:1")),
        );
    }
    // A running service keeps its state even if an earlier pull of it failed.
    s.activity
        .image_failures
        .insert("redis".into(), "cannot pull image redis:7".into());
    for (w, h) in [(80u16, 24u16), (160, 48)] {
        let mut st = UiState::new(false, false);
        st.view = View::Services;
        let rows = crate::tui::state::service_rows(&s, "", crate::tui::state::ServiceSort::Name);
        let at = rows.iter().position(|x| x.service == "postgres").unwrap();
        st.selected[View::Services.index()] = at;
        let text = render(&mut st, &s, w, h);
        let row = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(&format!("│{name} ")))
                .unwrap_or_else(|| panic!("no row {name}:\n{text}"))
                .to_string()
        };
        assert!(row("postgres").contains("pull failed"), "{text}");
        assert!(row("burner").contains("pull failed"), "{text}");
        assert!(!row("redis").contains("pull failed"), "{text}");
        // The whole message and the fix, joined back from the wrapped detail pane.
        let flat: String = text
            .lines()
            .map(|l| l.trim_matches(|c| c == '│' || c == ' '))
            .collect::<Vec<_>>()
            .join(" ");
        for want in [
            "postgres  not created: its image could not be pulled",
            "server misbehaving",
            "use `--pull never` with images already on this engine",
        ] {
            assert!(flat.contains(want), "{want} missing at {w}x{h}:\n{text}");
        }
    }
}

/// The Overview with `[[fleet]]` hosts: this machine's stack (`here`), one elsewhere, one
/// cut off.
fn fleet_snapshot() -> Snapshot {
    use crate::model::fleet::FleetRow;
    let mut s = full();
    let host = |name: &str, engine: &str| FleetRow {
        name: name.into(),
        engine: engine.into(),
        project: "osmen".into(),
        running: 5,
        total: 6,
        unhealthy: 1,
        restarts: 2,
        host_cpus: Some(16),
        host_memory_total_bytes: Some(64 << 30),
        cpu_percent: Some(37.5),
        memory_used_bytes: Some(6 << 30),
        last_ok: Some(T0),
        ..FleetRow::default()
    };
    s.fleet = vec![
        FleetRow {
            local: true,
            home: true,
            gpu_memory_used_bytes: Some(10 << 30),
            gpu_memory_total_bytes: Some(24 << 30),
            agents_failing: Some(1),
            advice: Some(2),
            ..host("here", "unix:///var/run/docker.sock")
        },
        host("gpu-box", "ssh://ops@gpu-box"),
        FleetRow {
            error: Some("cannot reach the Docker engine at tcp://10.0.0.9:2375".into()),
            unreachable_since: Some(T0 - 90.0),
            ..host("staging", "tcp://10.0.0.9:2375")
        },
    ];
    s
}

fn key(c: crossterm::event::KeyCode) -> crossterm::event::KeyEvent {
    crossterm::event::KeyEvent::new(c, crossterm::event::KeyModifiers::NONE)
}

/// The fleet on the Overview, the second line selected and the first (this machine's
/// stack, shown now) marked; `i` opens the selected host's whole line, Enter asks for the
/// switch to it.
#[test]
fn overview_lists_the_fleet_with_the_selected_and_the_unreachable_host() {
    use crossterm::event::KeyCode;
    let s = fleet_snapshot();
    let mut st = UiState::new(false, false);
    let km = Keymap::default();
    super::state::on_key(&mut st, &km, &s, key(KeyCode::Char('j')));
    for (w, h) in [(80, 24), (200, 50)] {
        insta::assert_snapshot!(format!("overview_fleet_{w}x{h}"), render(&mut st, &s, w, h));
    }
    render(&mut st, &s, 1, 1);
    super::state::on_key(&mut st, &km, &s, key(KeyCode::Char('i')));
    assert!(
        matches!(&st.mode, Mode::Detail(d) if d.title == "fleet host gpu-box"
            && d.lines.iter().any(|l| l.contains("DOCKER_HOST=ssh://ops@gpu-box osmen -p osmen"))),
        "{:?}",
        st.mode
    );
    super::state::on_key(&mut st, &km, &s, key(KeyCode::Esc));
    let cmd = super::state::on_key(&mut st, &km, &s, key(KeyCode::Enter));
    assert_eq!(cmd, Some(Command::Switch(Some("gpu-box".into()))));
}

/// Switched to gpu-box: the top bar names the host and its engine, the fleet list marks
/// gpu-box and not here; Enter on here asks to go back, on gpu-box says it is shown
/// already, on the cut-off host refuses with its reason and since when.
#[test]
fn a_switched_console_names_the_host_and_marks_its_line() {
    use crossterm::event::KeyCode;
    let mut s = fleet_snapshot();
    s.project = "shop".into();
    s.activity.switched = Some(crate::model::console::SwitchedTo {
        name: "gpu-box".into(),
        engine: "ssh://ops@gpu-box".into(),
    });
    let mut st = UiState::new(true, false);
    let km = Keymap::default();
    super::state::on_key(&mut st, &km, &s, key(KeyCode::Char('j')));
    let text = render(&mut st, &s, 80, 24);
    insta::assert_snapshot!("overview_fleet_switched_80x24", text);
    let first = text.lines().next().unwrap_or_default();
    // At 80 columns: read-only first, the host by name (its engine is on its line).
    assert!(
        first.contains("read-only") && first.contains("shop on gpu-box"),
        "{first}"
    );
    let wide = render(&mut st, &s, 160, 24);
    let first = wide.lines().next().unwrap_or_default();
    assert!(
        first.contains("shop on gpu-box ssh://ops@gpu-box"),
        "{first}"
    );
    let marked: Vec<&str> = text.lines().filter(|l| l.contains("▶")).collect();
    assert_eq!(marked.len(), 1, "{text}");
    assert!(marked[0].contains("▶ gpu-box"), "{text}");
    // Shown already: nothing sent.
    assert_eq!(
        super::state::on_key(&mut st, &km, &s, key(KeyCode::Enter)),
        None
    );
    assert!(
        st.message
            .as_deref()
            .unwrap_or("")
            .contains("already shows gpu-box")
    );
    // Cut off: refused with the reason and since when.
    super::state::on_key(&mut st, &km, &s, key(KeyCode::Char('j')));
    assert_eq!(
        super::state::on_key(&mut st, &km, &s, key(KeyCode::Enter)),
        None
    );
    let m = st.message.clone().unwrap_or_default();
    assert!(
        m.starts_with("staging: not switched: unreachable since ") && m.contains("10.0.0.9"),
        "{m}"
    );
    // Home, even in a read-only console (a switch changes no stack).
    super::state::on_key(&mut st, &km, &s, key(KeyCode::Char('g')));
    let cmd = super::state::on_key(&mut st, &km, &s, key(KeyCode::Enter));
    assert_eq!(cmd, Some(Command::Switch(None)), "{:?}", st.message);
    assert_eq!(
        st.message.as_deref(),
        Some("switch back to this machine's stack…")
    );
}

#[test]
fn services_the_engine_no_longer_answers_for_are_marked_not_current() {
    let mut s = full();
    let listed = s.taken_at - 42.0;
    s.sources.insert(
        "containers".into(),
        crate::model::snapshot::SourceHealth {
            status: "error since 10:00:00: engine unreachable: connection reset".into(),
            last_error: Some("engine unreachable: connection reset".into()),
            last_sample: Some(listed),
            failing_since: Some(listed + 1.0),
        },
    );
    for (w, h) in [(80u16, 24u16), (160, 48)] {
        let mut st = UiState::new(false, false);
        st.view = View::Services;
        let text = render(&mut st, &s, w, h);
        // No figure is shown as current: no CPU, memory or uptime, every state marked.
        assert!(text.contains("NOT CURRENT"), "{text}");
        assert!(text.contains("running?"), "{text}");
        assert!(
            !text.contains("% core") && !text.contains("% lim"),
            "{text}"
        );
        insta::assert_snapshot!(format!("services_not_current_{w}x{h}"), text);
    }
}
