//! View 6: the advisor's suggestions. The advisor is a later piece of work; until it
//! exists this view says so and what it will show, rather than an empty box.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Wrap};

use super::block;
use crate::model::snapshot::Snapshot;
use crate::tui::state::UiState;
use crate::tui::theme::Theme;

pub fn render(f: &mut Frame, area: Rect, _st: &UiState, _s: &Snapshot, t: &Theme) {
    let text = vec![
        Line::from("No suggestions: the scaling advisor is not part of this build yet."),
        Line::from(""),
        Line::from(
            "When it is, this view lists each crossed threshold of the performance guide \
             (CPU over 70% of a limit, memory over 80%, P95/P99 latency rising, queues \
             growing) with the concrete change it suggests; Enter applies one after a \
             confirmation and y copies its command.",
        )
        .style(t.dim()),
    ];
    f.render_widget(
        Paragraph::new(text)
            .wrap(Wrap { trim: true })
            .block(block(t, "suggestions")),
        area,
    );
}
