//! Injected files: the archive `docker compose` copies into a created container for its
//! secrets and configs.

use super::*;

/// The archive `docker compose` copies into a container for its secrets and configs:
/// one entry per file at its absolute target, with its mode and owner.
pub(super) fn files_tar(container: &str, files: &[InjectedFile]) -> EResult<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    for f in files {
        let body = match &f.content {
            FileContent::Inline(v) => v.clone().into_bytes(),
            FileContent::Path(p) => std::fs::read(p).map_err(|e| {
                EngineError::Other(format!(
                    "{container}: cannot read {} for {}: {e}",
                    p.display(),
                    f.target
                ))
            })?,
        };
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(f.mode);
        h.set_uid(u64::from(f.uid));
        h.set_gid(u64::from(f.gid));
        h.set_mtime(now);
        h.set_entry_type(tar::EntryType::Regular);
        let path = f.target.trim_start_matches('/');
        tar.append_data(&mut h, path, body.as_slice())
            .map_err(|e| EngineError::Other(format!("cannot pack {}: {e}", f.target)))?;
    }
    tar.into_inner()
        .map_err(|e| EngineError::Other(format!("cannot pack the files of {container}: {e}")))
}
