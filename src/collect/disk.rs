//! Free space of the file system that holds a path (statvfs).

use std::ffi::CString;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    pub total: u64,
    /// Available to unprivileged users.
    pub available: u64,
}

pub fn space(path: &str) -> std::io::Result<Space> {
    let c = CString::new(path).map_err(std::io::Error::other)?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated string and `s` a properly sized out-parameter.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let frag = s.f_frsize as u64;
    Ok(Space {
        total: s.f_blocks as u64 * frag,
        available: s.f_bavail as u64 * frag,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn root_has_space_and_bad_paths_fail() {
        let s = super::space("/").unwrap();
        assert!(s.total > 0 && s.available <= s.total);
        assert!(super::space("/nonexistent/dir").is_err());
    }
}
