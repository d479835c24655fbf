//! Small text widgets that survive any width, 0 included: sparklines, gauges, and the
//! formatting of figures that may be missing (a missing figure is "-", never a zero).

use super::theme::Theme;

/// A sparkline of `values` in `width` cells, scaled to `max` (or the series' own max).
pub fn spark(theme: &Theme, values: &[f64], width: usize, max: Option<f64>) -> String {
    if width == 0 || values.is_empty() {
        return String::new();
    }
    let levels = theme.spark_levels();
    let tail = &values[values.len().saturating_sub(width)..];
    let top = max
        .unwrap_or_else(|| tail.iter().cloned().fold(0.0, f64::max))
        .max(f64::EPSILON);
    tail.iter()
        .map(|v| {
            let i = ((v.max(0.0) / top) * (levels.len() - 1) as f64).round() as usize;
            levels[i.min(levels.len() - 1)]
        })
        .collect()
}

/// `[#####-----]`-style bar of `percent` in `width` cells (brackets included in ASCII).
pub fn gauge(theme: &Theme, percent: f64, width: usize) -> String {
    if width == 0 {
        return String::new();
    }
    let (full, empty) = theme.gauge_chars();
    let inner = if theme.ascii {
        width.saturating_sub(2)
    } else {
        width
    };
    let filled = ((percent.clamp(0.0, 100.0) / 100.0) * inner as f64).round() as usize;
    let bar = full.repeat(filled) + &empty.repeat(inner - filled.min(inner));
    if theme.ascii && width >= 2 {
        format!("[{bar}]")
    } else {
        bar
    }
}

pub fn pct(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.1}%")).unwrap_or_else(|| "-".into())
}

pub fn ms(seconds: Option<f64>) -> String {
    match seconds {
        Some(s) if s.is_finite() && s < 1.0 => format!("{:.0}ms", s * 1000.0),
        // At most six characters below 100 s, and whole seconds beyond.
        Some(s) if s.is_finite() && s < 99.995 => format!("{s:.2}s"),
        Some(s) if s.is_finite() => format!("{s:.0}s"),
        _ => "-".into(),
    }
}

pub fn bytes(v: Option<u64>) -> String {
    v.map(crate::model::units::format_bytes)
        .unwrap_or_else(|| "-".into())
}

pub fn uptime(seconds: Option<f64>) -> String {
    seconds
        .map(|u| crate::model::units::format_duration(std::time::Duration::from_secs(u as u64)))
        .unwrap_or_else(|| "-".into())
}

/// `HH:MM:SS` (UTC) of an epoch time; "--:--:--" when unknown.
pub fn clock(epoch: f64) -> String {
    if epoch <= 0.0 {
        return "--:--:--".into();
    }
    let s = epoch as u64 % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Cuts `s` to `width` characters, marking the cut with `…` (or `~` in ASCII).
pub fn fit(theme: &Theme, s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mark = if theme.ascii { "~" } else { "…" };
    s.chars().take(width - 1).collect::<String>() + mark
}

/// Cuts `s` to `width` characters in the middle, so both ends stay readable:
/// `knowledge_management` in 14 is `knowle…gement` (`~` in ASCII).
pub fn fit_middle(theme: &Theme, s: &str, width: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= width {
        return s.to_string();
    }
    if width < 3 {
        return chars.iter().take(width).collect();
    }
    let mark = if theme.ascii { "~" } else { "…" };
    let head = (width - 1) / 2;
    let tail = width - 1 - head;
    let mut out: String = chars[..head].iter().collect();
    out.push_str(mark);
    out.extend(&chars[chars.len() - tail..]);
    out
}

/// Word-wraps `text` into rows of at most `width` characters; a word longer than a row
/// is broken. An empty text is one empty row; nothing is ever dropped.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut rows = Vec::new();
    for para in text.split('\n') {
        // A leading indent is kept on the first row (the inspect pane's lists).
        let body = para.trim_start_matches(' ');
        let indent = (para.len() - body.len()).min(width - 1);
        let mut row = " ".repeat(indent);
        let mut n = indent;
        let mut fresh = true;
        for word in body.split(' ') {
            let w: Vec<char> = word.chars().collect();
            if !fresh && n + 1 + w.len() > width {
                rows.push(std::mem::take(&mut row));
                n = 0;
            } else if !fresh {
                row.push(' ');
                n += 1;
            }
            let mut rest = &w[..];
            while n + rest.len() > width {
                let take = width - n;
                row.extend(&rest[..take]);
                rows.push(std::mem::take(&mut row));
                n = 0;
                rest = &rest[take..];
            }
            row.extend(rest);
            n += rest.len();
            fresh = false;
        }
        rows.push(row);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::theme::ColorMode;

    const T: Theme = Theme {
        color: ColorMode::None,
        ascii: true,
    };

    #[test]
    fn spark_and_gauge_fit_any_width() {
        assert_eq!(spark(&T, &[0.0, 50.0, 100.0], 3, Some(100.0)), "_=#");
        assert_eq!(spark(&T, &[1.0, 2.0], 0, None), "");
        assert_eq!(spark(&T, &[], 5, None), "");
        assert_eq!(gauge(&T, 50.0, 12), "[#####-----]");
        assert_eq!(gauge(&T, 250.0, 4), "[##]");
        assert_eq!(gauge(&T, 10.0, 1), "");
        assert_eq!(gauge(&T, 10.0, 0), "");
        assert_eq!(fit(&T, "abcdef", 4), "abc~");
        assert_eq!(clock(1_795_924_800.5), "04:00:00");
        assert_eq!(ms(Some(0.0123)), "12ms");
        assert_eq!(ms(None), "-");
    }

    #[test]
    fn middle_cut_keeps_both_ends_and_wrap_drops_nothing() {
        let u = Theme {
            color: ColorMode::None,
            ascii: false,
        };
        assert_eq!(fit_middle(&u, "knowledge_management", 14), "knowle…agement");
        assert_eq!(
            fit_middle(&u, "knowledge_management", 14).chars().count(),
            14
        );
        assert_eq!(fit_middle(&T, "daily_brief", 14), "daily_brief");
        assert_eq!(fit_middle(&T, "abcdef", 2), "ab");
        let text = "Apply suggestion cpu:gateway: scale gateway from 2 to 3 replicas \
                    averyveryverylongwordthatdoesnotfit";
        let rows = wrap(text, 20);
        assert!(rows.iter().all(|r| r.chars().count() <= 20), "{rows:?}");
        assert_eq!(
            rows.join(" ").split_whitespace().collect::<String>(),
            text.split_whitespace().collect::<String>()
        );
        assert_eq!(wrap("", 5), vec![String::new()]);
        assert_eq!(wrap("a\nb", 5), vec!["a", "b"]);
        assert_eq!(wrap("  ab cd", 5), vec!["  ab", "cd"]);
    }
}
