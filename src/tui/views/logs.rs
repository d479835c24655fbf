//! View 5: the containers' output, one service or all merged; follow, search with
//! highlight, a line filter, wrap and timestamps. The buffer is the snapshot's bounded
//! log ring.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::block;
use crate::model::console::LogLine;
use crate::model::secret::mask_url_credentials;
use crate::model::snapshot::Snapshot;
use crate::tui::action::View;
use crate::tui::state::{UiState, log_rows};
use crate::tui::theme::Theme;
use crate::tui::widgets::{clock, fit_middle};

pub fn render(f: &mut Frame, area: Rect, st: &UiState, s: &Snapshot, t: &Theme) {
    let rows = log_rows(s, &st.logs);
    let l = &st.logs;
    let mut title = format!(
        "logs: {} ({} lines{}{}{})",
        l.service.as_deref().unwrap_or("all services"),
        rows.len(),
        if l.follow { ", following" } else { "" },
        if l.filter.is_empty() {
            String::new()
        } else {
            format!(", only {:?}", l.filter)
        },
        if l.search.is_empty() {
            String::new()
        } else {
            format!(", search {:?}", l.search)
        },
    );
    if l.hscroll > 0 && !l.wrap {
        title.push_str(&format!(", from column {}", l.hscroll + 1));
    }
    if area.width < 60 {
        title = format!("logs ({})", rows.len());
    }
    let inner_h = area.height.saturating_sub(2) as usize;
    let inner_w = area.width.saturating_sub(2) as usize;
    if rows.is_empty() || inner_h == 0 || inner_w == 0 {
        let why = if s.logs.is_empty() {
            "no log lines yet: the console follows every running container of the stack"
        } else {
            "no line matches (Esc clears the filter; s chooses the service)"
        };
        f.render_widget(
            Paragraph::new(why).style(t.dim()).block(block(t, &title)),
            area,
        );
        return;
    }
    let sel = if l.follow {
        rows.len() - 1
    } else {
        st.selected[View::Logs.index()].min(rows.len() - 1)
    };
    let name_w = rows
        .iter()
        .map(|r| r.source().chars().count())
        .max()
        .unwrap_or(0)
        .min(14);
    let merged = l.service.is_none();
    let draw = |i: usize| {
        render_line(
            rows[i],
            st,
            t,
            merged,
            name_w,
            inner_w,
            i == sel && !l.follow,
        )
    };
    let out = window(rows.len(), sel, inner_h, draw);
    f.render_widget(Paragraph::new(out).block(block(t, &title)), area);
}

/// A full page around row `sel` of `n`: the rows up to `sel` from the bottom of the page
/// up, then, when the top is reached first (after `g`), the rows after it, so every
/// position shows `height` lines as long as there are that many.
fn window<'a>(
    n: usize,
    sel: usize,
    height: usize,
    draw: impl Fn(usize) -> Vec<Line<'a>>,
) -> Vec<Line<'a>> {
    let mut out: Vec<Line> = Vec::new();
    let mut i = sel.min(n.saturating_sub(1)) as isize;
    while i >= 0 && out.len() < height {
        let mut lines = draw(i as usize);
        while let Some(x) = lines.pop() {
            if out.len() < height {
                out.push(x);
            }
        }
        i -= 1;
    }
    out.reverse();
    let mut j = sel + 1;
    while j < n && out.len() < height {
        for x in draw(j) {
            if out.len() < height {
                out.push(x);
            }
        }
        j += 1;
    }
    out
}

fn render_line<'a>(
    r: &LogLine,
    st: &UiState,
    t: &Theme,
    merged: bool,
    name_w: usize,
    width: usize,
    selected: bool,
) -> Vec<Line<'a>> {
    let mut prefix = String::new();
    if st.logs.timestamps {
        prefix.push_str(&clock(r.time));
        prefix.push(' ');
    }
    if merged {
        // Replicas apart: `gateway`, `gateway#2`, as the Services view names them.
        prefix.push_str(&format!("{:<name_w$} ", fit_middle(t, &r.source(), name_w)));
    }
    let text = mask_url_credentials(&r.text.replace('\t', "    "));
    let text: String = text.chars().filter(|c| !c.is_control()).collect();
    let pw = prefix.chars().count();
    let room = width.saturating_sub(pw).max(1);
    let chars: Vec<char> = text.chars().collect();
    let pieces: Vec<String> = if st.logs.wrap {
        chars.chunks(room).map(|c| c.iter().collect()).collect()
    } else {
        vec![chars.iter().skip(st.logs.hscroll).take(room).collect()]
    };
    let pieces = if pieces.is_empty() {
        vec![String::new()]
    } else {
        pieces
    };
    let base = if r.stderr {
        t.warn()
    } else {
        ratatui::style::Style::default()
    };
    let base = if selected {
        base.patch(t.selected())
    } else {
        base
    };
    pieces
        .into_iter()
        .enumerate()
        .map(|(n, piece)| {
            let lead = if n == 0 {
                prefix.clone()
            } else {
                " ".repeat(pw)
            };
            let mut spans = vec![Span::styled(lead, t.dim())];
            spans.extend(highlight(&piece, &st.logs.search, base, t));
            Line::from(spans)
        })
        .collect()
}

/// Splits `text` into spans with every occurrence of `needle` highlighted.
fn highlight<'a>(
    text: &str,
    needle: &str,
    base: ratatui::style::Style,
    t: &Theme,
) -> Vec<Span<'a>> {
    if needle.is_empty() {
        return vec![Span::styled(text.to_string(), base)];
    }
    let mut spans = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(needle) {
        if i > 0 {
            spans.push(Span::styled(rest[..i].to_string(), base));
        }
        spans.push(Span::styled(
            rest[i..i + needle.len()].to_string(),
            t.highlight(),
        ));
        rest = &rest[i + needle.len()..];
    }
    if !rest.is_empty() {
        spans.push(Span::styled(rest.to_string(), base));
    }
    spans
}
