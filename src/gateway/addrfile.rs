//! `runtime/gateway.addr`: where the console's embedded gateway listens, so that
//! `status`, `plan`, `suggest`, `bench` and a second console on the same project find it
//! when `OSMEN_GATEWAY_LISTEN` is not set (the console may have been started with it, or
//! on another port). Written when the gateway listens, removed when it stops.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The default address of the gateway.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

pub fn path(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join("gateway.addr")
}

/// Records `addr` (written whole: a reader never sees half an address).
pub fn write(runtime_dir: &Path, addr: SocketAddr) -> std::io::Result<()> {
    std::fs::create_dir_all(runtime_dir)?;
    let tmp = runtime_dir.join(format!(".gateway.addr.{}", std::process::id()));
    std::fs::write(&tmp, format!("{addr}\n"))?;
    std::fs::rename(&tmp, path(runtime_dir))
}

/// The recorded address, when the file holds one.
pub fn read(runtime_dir: &Path) -> Option<SocketAddr> {
    let p = path(runtime_dir);
    // Not through a link, and never more than an address's worth.
    let m = std::fs::symlink_metadata(&p).ok()?;
    if !m.is_file() || m.len() > 128 {
        return None;
    }
    std::fs::read_to_string(&p).ok()?.trim().parse().ok()
}

/// Removes the file if it still names `addr` (another console may have written its own).
pub fn remove_if(runtime_dir: &Path, addr: SocketAddr) {
    if read(runtime_dir) == Some(addr) {
        let _ = std::fs::remove_file(path(runtime_dir));
    }
}

/// The address clients should use: `OSMEN_GATEWAY_LISTEN`, else the running console's
/// recorded address when something listens there (a console killed with SIGKILL leaves
/// its file behind), else the default.
pub fn listen(runtime_dir: &Path) -> String {
    std::env::var("OSMEN_GATEWAY_LISTEN")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .or_else(|| {
            read(runtime_dir)
                .filter(|a| {
                    std::net::TcpStream::connect_timeout(a, std::time::Duration::from_millis(300))
                        .is_ok()
                })
                .map(|a| a.to_string())
        })
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_read_and_removed_only_by_its_owner() {
        let d = std::env::temp_dir().join(format!("osmen-addr-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        assert_eq!(read(&d), None);
        let a: SocketAddr = "127.0.0.1:18081".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:18082".parse().unwrap();
        write(&d, a).unwrap();
        assert_eq!(read(&d), Some(a));
        remove_if(&d, b);
        assert_eq!(read(&d), Some(a), "another console's address stays");
        remove_if(&d, a);
        assert_eq!(read(&d), None);
        std::fs::write(path(&d), "not an address").unwrap();
        assert_eq!(read(&d), None);
        let _ = std::fs::remove_dir_all(&d);
    }
}
