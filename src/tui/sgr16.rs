//! The classic 16 colours for terminals that announce no more (`TERM=xterm`, the Linux
//! console, many serial and SSH clients): crossterm writes even the 16 named colours as
//! 256-colour sequences (`ESC[38;5;1m`), which such terminals draw wrongly or not at all.
//! This writer holds a frame's bytes until the flush and rewrites those sequences into
//! the original SGR codes: 30-37 and 90-97 for the foreground, 40-47 and 100-107 for the
//! background. Anything else passes through unchanged.

use std::io::{self, Write};

pub struct Sgr16<W: Write> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> Sgr16<W> {
    pub fn new(inner: W) -> Self {
        Sgr16 {
            inner,
            buf: Vec::with_capacity(16 << 10),
        }
    }
}

impl<W: Write> Write for Sgr16<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        // A frame is flushed whole; a very large one goes out in parts, cut only
        // outside an escape sequence.
        if self.buf.len() > 1 << 20 {
            let cut = self
                .buf
                .iter()
                .rposition(|&c| c == 0x1b)
                .unwrap_or(self.buf.len());
            let rest = self.buf.split_off(cut);
            self.inner.write_all(&rewrite(&self.buf))?;
            self.buf = rest;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.inner.write_all(&rewrite(&self.buf))?;
            self.buf.clear();
        }
        self.inner.flush()
    }
}

/// In every SGR sequence (`ESC[…m`), `38;5;N` and `48;5;N` with N below 16 become the
/// 16-colour codes; crossterm also writes them combined (`ESC[38;5;6;49m`).
pub fn rewrite(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if let Some((seq, len)) = sgr(&b[i..]) {
            out.extend_from_slice(&seq);
            i += len;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// The rewritten SGR sequence at the start of `b` and the length it replaces, when `b`
/// starts with one that holds a 256-colour index below 16.
fn sgr(b: &[u8]) -> Option<(Vec<u8>, usize)> {
    let body = b.strip_prefix(b"\x1b[")?;
    let n = body
        .iter()
        .take_while(|c| c.is_ascii_digit() || **c == b';')
        .count();
    if body.get(n) != Some(&b'm') || n == 0 {
        return None;
    }
    let params: Vec<&str> = std::str::from_utf8(&body[..n]).ok()?.split(';').collect();
    let mut out: Vec<String> = Vec::with_capacity(params.len());
    let mut changed = false;
    let mut i = 0;
    while i < params.len() {
        let p = params[i];
        if (p == "38" || p == "48") && params.get(i + 1) == Some(&"5") {
            let Some(idx) = params.get(i + 2).and_then(|v| v.parse::<u8>().ok()) else {
                out.push(p.to_string());
                i += 1;
                continue;
            };
            if idx < 16 {
                let base = if p == "38" { 30 } else { 40 };
                let code = if idx < 8 {
                    base + idx
                } else {
                    base + 60 + idx - 8
                };
                out.push(code.to_string());
                changed = true;
            } else {
                out.extend([p.to_string(), "5".into(), idx.to_string()]);
            }
            i += 3;
        } else if (p == "38" || p == "48") && params.get(i + 1) == Some(&"2") {
            // True colour: its three components pass through untouched.
            out.extend(
                params[i..(i + 5).min(params.len())]
                    .iter()
                    .map(|x| x.to_string()),
            );
            i += 5;
        } else {
            out.push(p.to_string());
            i += 1;
        }
    }
    if !changed {
        return None;
    }
    Some((format!("\x1b[{}m", out.join(";")).into_bytes(), 2 + n + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_colours_become_classic_sgr_codes() {
        // What crossterm writes for ratatui's Red, DarkGray, LightCyan and a Yellow
        // background, then a 256-colour index and true colour, which stay.
        let input = b"\x1b[38;5;1mred\x1b[38;5;8mdim\x1b[38;5;14mcyan\x1b[48;5;3mbg\
\x1b[38;5;203mkeep\x1b[38;2;1;2;3mrgb\x1b[0m";
        let out = String::from_utf8(rewrite(input)).unwrap();
        assert_eq!(
            out,
            "\x1b[31mred\x1b[90mdim\x1b[96mcyan\x1b[43mbg\x1b[38;5;203mkeep\
\x1b[38;2;1;2;3mrgb\x1b[0m"
        );
        assert!(!out.contains("38;5;1m"));
    }

    #[test]
    fn combined_sequences_as_crossterm_writes_them() {
        let out =
            String::from_utf8(rewrite(b"\x1b[38;5;6;49m osmen \x1b[1;38;5;8;48;5;11mx")).unwrap();
        assert_eq!(out, "\x1b[36;49m osmen \x1b[1;90;103mx");
        let keep = b"\x1b[38;2;1;5;3;49mrgb\x1b[38;5;200;49m";
        assert_eq!(rewrite(keep), keep.to_vec());
    }

    #[test]
    fn a_sequence_split_across_writes_is_rewritten_at_the_flush() {
        let mut w = Sgr16::new(Vec::new());
        w.write_all(b"a\x1b[38;").unwrap();
        w.write_all(b"5;2mgreen").unwrap();
        w.flush().unwrap();
        assert_eq!(w.inner, b"a\x1b[32mgreen");
    }
}
