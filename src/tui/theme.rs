//! Every colour and glyph the console uses, in one place. `NO_COLOR` turns colour off
//! (emphasis stays: bold, reverse), a terminal that does not announce 256 colours or
//! truecolor gets the 16 ANSI colours, `--ascii` replaces braille, blocks and box drawing.

use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::border;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorMode {
    None,
    Ansi16,
    Full,
}

impl ColorMode {
    /// From the environment: NO_COLOR (any value) wins; then COLORTERM/TERM.
    pub fn detect(no_color: Option<&str>, term: Option<&str>, colorterm: Option<&str>) -> Self {
        if no_color.is_some_and(|v| !v.is_empty()) {
            return ColorMode::None;
        }
        let ct = colorterm.unwrap_or("");
        let t = term.unwrap_or("");
        if ct.contains("truecolor") || ct.contains("24bit") || t.contains("256color") {
            ColorMode::Full
        } else if t == "dumb" {
            ColorMode::None
        } else {
            ColorMode::Ansi16
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    pub color: ColorMode,
    pub ascii: bool,
}

impl Theme {
    fn fg(&self, full: Color, ansi: Color) -> Style {
        match self.color {
            ColorMode::None => Style::default(),
            ColorMode::Ansi16 => Style::default().fg(ansi),
            ColorMode::Full => Style::default().fg(full),
        }
    }
    pub fn ok(&self) -> Style {
        self.fg(Color::Indexed(114), Color::Green)
    }
    pub fn warn(&self) -> Style {
        self.fg(Color::Indexed(221), Color::Yellow)
    }
    pub fn bad(&self) -> Style {
        self.fg(Color::Indexed(203), Color::Red)
            .add_modifier(Modifier::BOLD)
    }
    pub fn dim(&self) -> Style {
        match self.color {
            ColorMode::None => Style::default(),
            _ => self.fg(Color::Indexed(245), Color::DarkGray),
        }
    }
    pub fn accent(&self) -> Style {
        self.fg(Color::Indexed(75), Color::Cyan)
    }
    pub fn title(&self) -> Style {
        self.accent().add_modifier(Modifier::BOLD)
    }
    pub fn header(&self) -> Style {
        Style::default().add_modifier(Modifier::BOLD)
    }
    pub fn selected(&self) -> Style {
        Style::default().add_modifier(Modifier::REVERSED)
    }
    pub fn tab_active(&self) -> Style {
        Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD)
    }
    pub fn highlight(&self) -> Style {
        match self.color {
            ColorMode::None => Style::default().add_modifier(Modifier::UNDERLINED | Modifier::BOLD),
            _ => self.fg(Color::Black, Color::Black).bg(match self.color {
                ColorMode::Full => Color::Indexed(221),
                _ => Color::Yellow,
            }),
        }
    }
    /// Green, yellow or red by how close `percent` is to a limit.
    pub fn level(&self, percent: f64) -> Style {
        if percent >= 90.0 {
            self.bad()
        } else if percent >= 70.0 {
            self.warn()
        } else {
            self.ok()
        }
    }
    /// A suggestion's severity: critical in red, the rest as warnings.
    pub fn severity(&self, severity: &str) -> Style {
        if severity == "critical" {
            self.bad()
        } else {
            self.warn()
        }
    }
    /// Container state/health colour.
    pub fn health(&self, state: &str, health: &str) -> Style {
        match (state, health) {
            (_, "unhealthy") => self.bad(),
            ("running", "starting") => self.warn(),
            ("running", _) => self.ok(),
            ("exited" | "dead", _) => self.bad(),
            _ => self.warn(),
        }
    }
    pub fn border(&self) -> border::Set<'static> {
        if self.ascii {
            border::Set {
                top_left: "+",
                top_right: "+",
                bottom_left: "+",
                bottom_right: "+",
                vertical_left: "|",
                vertical_right: "|",
                horizontal_top: "-",
                horizontal_bottom: "-",
            }
        } else {
            border::PLAIN
        }
    }
    /// Sparkline levels, lowest first.
    pub fn spark_levels(&self) -> &'static [&'static str] {
        if self.ascii {
            &["_", ".", "-", "~", "=", "+", "*", "#"]
        } else {
            &["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"]
        }
    }
    pub fn gauge_chars(&self) -> (&'static str, &'static str) {
        if self.ascii {
            ("#", "-")
        } else {
            ("█", "░")
        }
    }
    pub fn degrees(&self) -> &'static str {
        if self.ascii { "C" } else { "°C" }
    }
    /// A key label as this terminal can show it (arrows spelled out in ASCII).
    pub fn key_label(&self, label: &str) -> String {
        if self.ascii {
            label
                .replace('↑', "Up")
                .replace('↓', "Down")
                .replace('←', "Left")
                .replace('→', "Right")
        } else {
            label.to_string()
        }
    }
    pub fn separator(&self) -> &'static str {
        if self.ascii { "|" } else { "│" }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_detection() {
        assert_eq!(
            ColorMode::detect(Some("1"), Some("xterm-256color"), None),
            ColorMode::None
        );
        assert_eq!(
            ColorMode::detect(Some(""), Some("xterm-256color"), None),
            ColorMode::Full
        );
        assert_eq!(
            ColorMode::detect(None, Some("xterm"), None),
            ColorMode::Ansi16
        );
        assert_eq!(
            ColorMode::detect(None, Some("screen"), Some("truecolor")),
            ColorMode::Full
        );
        assert_eq!(ColorMode::detect(None, Some("dumb"), None), ColorMode::None);
    }
}
