//! `osmen probe URL`: a dependency-free HTTP health check, so the gateway image needs no
//! curl. Plain HTTP/1.1 GET; exit 0 on 200, 1 on any other answer, 2 on a bad URL.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, bail};

use super::{NO, OK};
use crate::cli::ProbeArgs;

pub fn run(args: &ProbeArgs) -> anyhow::Result<u8> {
    let Some(rest) = args.url.strip_prefix("http://") else {
        bail!("probe takes a plain http:// URL, got {:?}", args.url);
    };
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let host_port = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    let timeout = Duration::from_secs(args.timeout.max(1));
    let addr = host_port
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host_port}"))?
        .next()
        .with_context(|| format!("no address for {host_port}"))?;
    let answer = (|| -> std::io::Result<String> {
        let mut s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        // One write: a server may answer (and close) after the first segment it reads.
        let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes())?;
        let mut buf = Vec::new();
        s.take(64 * 1024).read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    })();
    match answer {
        Ok(resp) => {
            let status = resp.split_whitespace().nth(1).unwrap_or("?").to_string();
            println!("{}: {status}", args.url);
            Ok(if status == "200" { OK } else { NO })
        }
        Err(e) => {
            println!("{}: {e}", args.url);
            Ok(NO)
        }
    }
}
