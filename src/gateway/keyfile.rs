//! The gateway's generated API key in `runtime/gateway.key`: made once, then reused by
//! every start (console or headless), so a client that read the file keeps working. The
//! file is a regular file of mode 0600 owned by osmen's user; a symlink in its place is
//! refused rather than followed, and a looser mode is tightened on every start.

use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why the key file could not be read or made; each text names the file and says what
/// to do.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error(
        "{} is a symbolic link: osmen does not follow it for its API key (a link \
         can point the key at a file others read); remove it and start again, or set \
         OSMEN_API_KEYS",
        path.display()
    )]
    Symlink { path: PathBuf },
    #[error(
        "{} is not a regular file: remove it and start again, or set OSMEN_API_KEYS",
        path.display()
    )]
    NotFile { path: PathBuf },
    #[error(
        "{} does not hold one API key (one line of printable ASCII): remove it to \
         have a new one made, or set OSMEN_API_KEYS",
        path.display()
    )]
    NotAKey { path: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot set mode 0600 on {}: {source}", path.display())]
    Mode {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create {}: {source}", dir.display())]
    CreateDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make an API key: {0}")]
    Random(std::io::Error),
}

/// The constructor for the I/O variants that name the file.
fn io(
    path: &Path,
    kind: fn(PathBuf, std::io::Error) -> KeyFileError,
) -> impl FnOnce(std::io::Error) -> KeyFileError + '_ {
    move |e| kind(path.to_path_buf(), e)
}

/// The key in `path`, made (and written with mode 0600) when there is none. Returns the
/// key and whether it was made now.
pub fn load_or_create(path: &Path) -> Result<(String, bool), KeyFileError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(KeyFileError::Symlink { path: path.into() }),
        Ok(m) if !m.is_file() => Err(KeyFileError::NotFile { path: path.into() }),
        Ok(_) => read_existing(path).map(|k| (k, false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path).map(|k| (k, true)),
        Err(e) => Err(io(path, |path, source| KeyFileError::Read { path, source })(e)),
    }
}

/// Opens without following a link (a swap between the check and the open fails here),
/// restores mode 0600 and reads the key; an empty file gets a new key.
fn read_existing(path: &Path) -> Result<String, KeyFileError> {
    // Read-only (a key file of mode 0400 is fine), not following a link, and not
    // waiting on a pipe swapped in after the check.
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(io(path, |path, source| KeyFileError::Open { path, source }))?;
    let meta = f
        .metadata()
        .map_err(io(path, |path, source| KeyFileError::Read { path, source }))?;
    if !meta.is_file() {
        return Err(KeyFileError::NotFile { path: path.into() });
    }
    let mode = meta.permissions().mode();
    if mode & 0o777 != 0o600 {
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io(path, |path, source| KeyFileError::Mode { path, source }))?;
    }
    let mut text = String::new();
    // A key is a line of 52 characters: anything much larger is not one.
    (&mut f)
        .take(4096)
        .read_to_string(&mut text)
        .map_err(io(path, |path, source| KeyFileError::Read { path, source }))?;
    let mut key = text.trim().to_string();
    // Another start may have just created it and not yet written its key.
    for _ in 0..20 {
        if !key.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        key = std::fs::read_to_string(path)
            .map(|t| t.trim().to_string())
            .unwrap_or_default();
    }
    let key = key.as_str();
    if key.is_empty() {
        let key = super::random_key().map_err(KeyFileError::Random)?;
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(io(path, |path, source| KeyFileError::Write {
                path,
                source,
            }))?;
        w.write_all(format!("{key}\n").as_bytes())
            .map_err(io(path, |path, source| KeyFileError::Write {
                path,
                source,
            }))?;
        return Ok(key);
    }
    if key.contains(char::is_whitespace) || !key.is_ascii() {
        return Err(KeyFileError::NotAKey { path: path.into() });
    }
    Ok(key.to_string())
}

fn create(path: &Path) -> Result<String, KeyFileError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir, |dir, source| KeyFileError::CreateDir {
            dir,
            source,
        }))?;
    }
    let key = super::random_key().map_err(KeyFileError::Random)?;
    // create_new: another start that made it meanwhile wins, and its key is read.
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(mut f) => {
            f.write_all(format!("{key}\n").as_bytes())
                .map_err(io(path, |path, source| KeyFileError::Write {
                    path,
                    source,
                }))?;
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            load_or_create(path).map(|r| r.0)
        }
        Err(e) => Err(io(path, |path, source| KeyFileError::Write {
            path,
            source,
        })(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("osmen-key-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_key_is_made_once_and_reused() {
        let d = dir("reuse");
        let p = d.join("runtime/gateway.key");
        let (k1, made) = load_or_create(&p).unwrap();
        assert!(made);
        assert!(k1.starts_with("osm_") && k1.len() == 52, "{k1}");
        assert_eq!(mode(&p), 0o600);
        let (k2, made) = load_or_create(&p).unwrap();
        assert!(!made);
        assert_eq!(
            k1, k2,
            "a second start must reuse the key clients already read"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_loose_mode_is_tightened_and_a_user_key_kept() {
        let d = dir("mode");
        let p = d.join("gateway.key");
        std::fs::write(&p, "my-own-key\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (k, made) = load_or_create(&p).unwrap();
        assert_eq!((k.as_str(), made), ("my-own-key", false));
        assert_eq!(mode(&p), 0o600);
        // An empty file gets a key, written into it.
        std::fs::write(&p, "").unwrap();
        let (k, _) = load_or_create(&p).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap().trim(), k);
        // Two words are not a key.
        std::fs::write(&p, "two words\n").unwrap();
        let e = load_or_create(&p).unwrap_err().to_string();
        assert!(e.contains("does not hold one API key"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_symlink_is_refused_and_its_target_untouched() {
        let d = dir("link");
        let target = d.join("elsewhere");
        std::fs::write(&target, "secret-of-someone-else\n").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        let p = d.join("gateway.key");
        std::os::unix::fs::symlink(&target, &p).unwrap();
        let e = load_or_create(&p).unwrap_err().to_string();
        assert!(
            e.contains("is a symbolic link") && e.contains("gateway.key"),
            "{e}"
        );
        assert_eq!(
            mode(&target),
            0o644,
            "the link's target must not be touched"
        );
        // A dangling link too: it would otherwise create the key where the link points.
        std::fs::remove_file(&target).unwrap();
        assert!(
            load_or_create(&p)
                .unwrap_err()
                .to_string()
                .contains("symbolic link")
        );
        assert!(!target.exists());
        let _ = std::fs::remove_dir_all(&d);
    }
}
