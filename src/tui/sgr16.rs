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

/// `ESC[38;5;Nm` / `ESC[48;5;Nm` with N below 16 become the 16-colour SGR codes.
pub fn rewrite(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if let Some((code, len)) = indexed(&b[i..]) {
            out.extend_from_slice(format!("\x1b[{code}m").as_bytes());
            i += len;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// The 16-colour code for a 256-colour sequence of a colour below 16 at the start of
/// `b`, and the sequence's length.
fn indexed(b: &[u8]) -> Option<(u8, usize)> {
    let rest = b.strip_prefix(b"\x1b[")?;
    let (base, rest) = if let Some(r) = rest.strip_prefix(b"38;5;") {
        (30u8, r)
    } else if let Some(r) = rest.strip_prefix(b"48;5;") {
        (40u8, r)
    } else {
        return None;
    };
    let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || digits > 2 || rest.get(digits) != Some(&b'm') {
        return None;
    }
    let n: u8 = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    let code = match n {
        0..=7 => base + n,
        8..=15 => base + 60 + (n - 8),
        _ => return None,
    };
    Some((code, 2 + 5 + digits + 1))
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
    fn a_sequence_split_across_writes_is_rewritten_at_the_flush() {
        let mut w = Sgr16::new(Vec::new());
        w.write_all(b"a\x1b[38;").unwrap();
        w.write_all(b"5;2mgreen").unwrap();
        w.flush().unwrap();
        assert_eq!(w.inner, b"a\x1b[32mgreen");
    }
}
