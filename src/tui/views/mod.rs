//! Drawing: the tab bar, the current view, the status line and the popups (help,
//! confirmation). Every function draws from `(&UiState, &Snapshot)` only.

pub mod agents;
pub mod events;
pub mod gpu;
pub mod logs;
pub mod overview;
pub mod services;
pub mod suggestions;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::action::{Action, View};
use super::keymap::Keymap;
use super::state::{Mode, UiState};
use super::theme::Theme;
use crate::model::snapshot::Snapshot;

/// Below this the console shows only a "terminal too small" message.
pub const MIN_WIDTH: u16 = 40;
pub const MIN_HEIGHT: u16 = 10;

pub fn draw(f: &mut Frame, st: &mut UiState, s: &Snapshot, keymap: &Keymap, t: &Theme) {
    let area = f.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let msg = format!(
            "terminal too small: {}x{}, osmen needs at least {MIN_WIDTH}x{MIN_HEIGHT}",
            area.width, area.height
        );
        f.render_widget(Paragraph::new(msg).wrap(Wrap { trim: true }), area);
        return;
    }
    let [top, body, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(area);
    f.render_widget(Paragraph::new(tab_bar(st, s, t, top.width)), top);
    st.page = body.height.saturating_sub(3).max(1) as usize;
    match st.view {
        View::Overview => overview::render(f, body, st, s, t),
        View::Services => services::render(f, body, st, s, t),
        View::Agents => agents::render(f, body, st, s, t),
        View::Gpu => gpu::render(f, body, st, s, t),
        View::Logs => logs::render(f, body, st, s, t),
        View::Suggestions => suggestions::render(f, body, st, s, t),
        View::Events => events::render(f, body, st, s, t),
    }
    f.render_widget(Paragraph::new(status_line(st, s, keymap, t)), bottom);
    match &st.mode {
        Mode::Help => help(f, body, st, keymap, t),
        Mode::Confirm(cmd) => {
            let text = format!(
                "{}?  y = yes, any other key = no",
                capitalise(&cmd.describe())
            );
            popup(f, body, t, "confirm", wrapped(&[text], body.width, 60), 60);
        }
        Mode::ConfirmQuit(why) => {
            popup(
                f,
                body,
                t,
                "quit",
                wrapped(std::slice::from_ref(why), body.width, 60),
                60,
            );
        }
        Mode::Detail(_) | Mode::Inspect { .. } => scrolled_popup(f, body, st, s, t),
        _ => {}
    }
}

/// `texts` word-wrapped to the inside of a popup `width` wide (at most the area's).
fn wrapped<'a>(texts: &[String], area_w: u16, width: u16) -> Vec<Line<'a>> {
    let inner = usize::from(width.min(area_w).saturating_sub(2)).max(1);
    texts
        .iter()
        .flat_map(|t| crate::tui::widgets::wrap(t, inner))
        .map(Line::from)
        .collect()
}

/// The whole text of a row, or the inspect pane: nearly the whole body, wrapped, from
/// the scroll position (clamped here to the last page).
fn scrolled_popup(f: &mut Frame, area: Rect, st: &mut UiState, s: &Snapshot, t: &Theme) {
    let (title, texts) = match &st.mode {
        Mode::Detail(d) => (d.title.clone(), d.lines.clone()),
        Mode::Inspect { container, .. } => {
            match s
                .activity
                .inspect
                .as_ref()
                .filter(|i| &i.container == container)
            {
                Some(i) => (format!("inspect {container}"), i.lines()),
                None => (
                    format!("inspect {container}"),
                    vec![format!("asking the engine about {container}…")],
                ),
            }
        }
        _ => return,
    };
    let w = area.width.saturating_sub(4).max(1);
    let inner_w = usize::from(w.saturating_sub(2)).max(1);
    let rows: Vec<String> = texts
        .iter()
        .flat_map(|l| crate::tui::widgets::wrap(l, inner_w))
        .collect();
    let h = (rows.len() as u16 + 2).min(area.height);
    let inner_h = usize::from(h.saturating_sub(2)).max(1);
    let last = rows.len().saturating_sub(inner_h);
    let scroll = match &mut st.mode {
        Mode::Detail(d) => &mut d.scroll,
        Mode::Inspect { scroll, .. } => scroll,
        _ => return,
    };
    *scroll = (*scroll).min(last);
    let top = *scroll;
    let shown: Vec<Line> = rows
        .into_iter()
        .skip(top)
        .take(inner_h)
        .map(Line::from)
        .collect();
    let more = if last > 0 {
        format!(
            "{title}  {}-{} of {}  j/k scroll, Esc closes",
            top + 1,
            top + shown.len(),
            last + inner_h
        )
    } else {
        format!("{title}  Esc closes")
    };
    let r = centered(area, w, h);
    f.render_widget(Clear, r);
    f.render_widget(Paragraph::new(shown).block(block(t, &more)), r);
}

/// A `w` x `h` rectangle in the middle of `area` (both already at most its size).
fn centered(area: Rect, w: u16, h: u16) -> Rect {
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn tab_bar<'a>(st: &UiState, s: &Snapshot, t: &Theme, width: u16) -> Line<'a> {
    let mut spans = vec![Span::styled(" osmen ", t.title())];
    // First, so that no narrow terminal or long host name cuts it off.
    if st.read_only {
        spans.push(Span::styled(" read-only ", t.warn()));
    }
    let short = width < 100;
    for (i, v) in View::ALL.iter().enumerate() {
        let label = if short {
            format!(" {}{} ", i + 1, &v.title()[..1])
        } else {
            format!(" {} {} ", i + 1, v.title())
        };
        let style = if *v == st.view {
            t.tab_active()
        } else {
            t.dim()
        };
        spans.push(Span::styled(label, style));
    }
    spans.push(Span::raw(format!(" {} ", t.separator())));
    spans.push(Span::styled(s.project.clone(), t.accent()));
    if let Some(to) = &s.activity.switched {
        // A narrow bar names the host; its engine is on its fleet line.
        let on = if short {
            format!(" on {}", to.name)
        } else {
            format!(" on {} {}", to.name, to.engine)
        };
        spans.push(Span::styled(on, t.warn()));
    }
    if let Some(p) = s.activity.sampling_s {
        spans.push(Span::styled(format!("  every {p}s"), t.dim()));
    }
    Line::from(spans)
}

fn status_line<'a>(st: &UiState, s: &Snapshot, keymap: &Keymap, t: &Theme) -> Line<'a> {
    let typing = |label: &str, text: &str| {
        Line::from(vec![
            Span::styled(label.to_string(), t.accent()),
            Span::raw(text.to_string()),
            Span::styled("_", t.dim()),
        ])
    };
    match st.mode {
        Mode::Filter => return typing("filter: ", st.filter()),
        Mode::Search => return typing("search: ", &st.logs.search),
        Mode::LogFilter => return typing("only lines containing: ", &st.logs.filter),
        _ => {}
    }
    if let Some(m) = &st.message
        && s.activity.results == st.result_seen
    {
        return Line::from(Span::styled(m.clone(), t.warn()));
    }
    if !s.activity.pending.is_empty() {
        return Line::from(Span::styled(
            format!("running: {}", s.activity.pending.join(", ")),
            t.warn(),
        ));
    }
    if let Some(r) = &s.activity.last_result {
        let style = if r.contains("failed") {
            t.bad()
        } else {
            t.dim()
        };
        return Line::from(Span::styled(r.clone(), style));
    }
    let k = |a: Action| keymap.key_for(st.view, a).unwrap_or_else(|| "?".into());
    let mut hint = format!(
        "{} help  {} quit  {} filter",
        k(Action::Help),
        k(Action::Quit),
        k(Action::Filter)
    );
    if let Some(p) = s.activity.sampling_s {
        hint.push_str(&format!(
            "  sampling {p}s ({}/{})",
            k(Action::SampleFaster),
            k(Action::SampleSlower)
        ));
    }
    if !st.filter().is_empty() {
        hint.push_str(&format!("  [filter: {}]", st.filter()));
    }
    Line::from(Span::styled(hint, t.dim()))
}

fn popup(f: &mut Frame, area: Rect, t: &Theme, title: &str, lines: Vec<Line>, width: u16) {
    let w = width.min(area.width);
    // Wrapped text needs a row per width's worth of characters (words may push a little
    // more onto the next row: one spare row each).
    let inner = usize::from(w.saturating_sub(2)).max(1);
    let rows: usize = lines
        .iter()
        .map(|l| {
            let n = l.width();
            if n <= inner { 1 } else { n.div_ceil(inner) + 1 }
        })
        .sum();
    let h = (rows as u16 + 2).min(area.height);
    let r = centered(area, w, h);
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block(t, title)),
        r,
    );
}

fn help(f: &mut Frame, area: Rect, st: &UiState, keymap: &Keymap, t: &Theme) {
    let mut entries: Vec<(String, &str)> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let views = View::ALL.len();
    entries.push((format!("1-{views}"), "switch view"));
    for b in keymap
        .bindings
        .iter()
        .filter(|b| b.view.is_none() || b.view == Some(st.view))
        .filter(|b| !matches!(b.action, Action::Goto(_)))
    {
        // One entry per action and view: `j` and `↓` share "move down".
        let label = keymap
            .bindings
            .iter()
            .filter(|o| o.action == b.action && o.view == b.view)
            .map(|o| t.key_label(&o.chord.label()))
            .collect::<Vec<_>>()
            .join("/");
        if seen.insert(label.clone()) {
            entries.push((label, b.description));
        }
    }
    // As many columns as the height needs, each as wide as its widest entry.
    let rows = (area.height.saturating_sub(3) as usize).max(1);
    let columns = entries.len().div_ceil(rows);
    let width = if columns > 1 {
        area.width
    } else {
        64.min(area.width)
    };
    let col_w = (width.saturating_sub(2) as usize / columns.max(1)).max(1);
    let per_col = entries.len().div_ceil(columns.max(1));
    let mut lines: Vec<Line> = Vec::new();
    for r in 0..per_col {
        let mut spans = Vec::new();
        for c in 0..columns {
            if let Some((k, d)) = entries.get(c * per_col + r) {
                let k = crate::tui::widgets::fit(t, k, 9);
                let d = crate::tui::widgets::fit(t, d, col_w.saturating_sub(12));
                spans.push(Span::styled(format!("{k:>9}  "), t.accent()));
                if c + 1 < columns {
                    spans.push(Span::raw(format!("{d:<w$} ", w = col_w.saturating_sub(12))));
                } else {
                    spans.push(Span::raw(d));
                }
            }
        }
        lines.push(Line::from(spans));
    }
    lines.push(Line::from(Span::styled(
        "any key closes this help",
        t.dim(),
    )));
    let title = format!("keys: {}", st.view.title());
    popup(f, area, t, &title, lines, width);
}

pub fn block<'a>(t: &Theme, title: &str) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_set(t.border())
        .border_style(t.dim())
        .title(Span::styled(format!(" {title} "), t.title()))
}

/// The reason a source is down, or None when it is fine.
pub fn source_down(s: &Snapshot, name: &str) -> Option<String> {
    s.sources
        .get(name)
        .filter(|h| h.status != "ok")
        .map(|h| h.status.clone())
}
