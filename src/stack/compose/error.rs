//! Compose errors written for the person who has to fix the file: each one names the file,
//! the line and column, the key path and the bad value, and says what to write instead.

use std::fmt;
use std::path::PathBuf;

use super::yaml::Pos;

#[derive(Debug, Clone, PartialEq)]
pub struct ComposeError {
    pub file: PathBuf,
    pub pos: Option<Pos>,
    /// Dotted key path such as `services.redis.healthcheck.interval`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ComposeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(p) = self.pos {
            write!(f, ":{}:{}", p.line, p.col)?;
        }
        if self.path.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in one load; the stack is not touched unless this is empty.
#[derive(Debug, Clone, PartialEq)]
pub struct ComposeErrors(pub Vec<ComposeError>);

impl fmt::Display for ComposeErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        if n > 1 {
            write!(f, "\n{n} problems in the compose file")?;
        }
        Ok(())
    }
}

impl std::error::Error for ComposeErrors {}
