//! The hub's own file: the recent hour of history under `runtime/`, read when a hub starts
//! and written once a minute, for whoever attaches later (`suggest` reads it too). The
//! only file the hub touches; what the sources measure reaches it as updates.

use std::path::Path;

use crate::model::history::{History, RecentView};

/// The history a previous hub wrote, if there is a readable one.
pub(super) fn load(p: &Path) -> Option<History> {
    std::fs::read_to_string(p)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
}

/// Writes `view` to `p` through a temporary file, so a reader never sees half of it.
pub(super) fn write(p: &Path, view: &RecentView) {
    let tmp = p.with_extension("json.tmp");
    let written = std::fs::create_dir_all(p.parent().unwrap_or(Path::new(".")))
        .and_then(|_| std::fs::File::create(&tmp))
        .and_then(|f| {
            use std::io::Write as _;
            let mut w = std::io::BufWriter::new(f);
            serde_json::to_writer(&mut w, view)?;
            w.flush()
        })
        .and_then(|_| std::fs::rename(&tmp, p));
    if written.is_err() {
        // History is a convenience; a full disk must not stop the console.
        let _ = std::fs::remove_file(&tmp);
    }
}
