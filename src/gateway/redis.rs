//! A minimal Redis client (RESP2 over TCP) for the gateway's shared response cache when
//! `REDIS_URL` is set: AUTH, GET and SET with an expiry, one connection re-opened on error.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

/// The largest value osmen reads back (cached completions are far smaller).
const MAX_BULK: i64 = 64 << 20;
/// How long one command may take, connect included.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Redis {
    addr: String,
    password: Option<String>,
    conn: Mutex<Option<BufReader<TcpStream>>>,
}

/// Why a Redis command or the `REDIS_URL` failed; the texts are the ones the health
/// endpoint shows.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("REDIS_URL {url:?} must start with redis://")]
    Scheme { url: String },
    #[error("REDIS_URL {url:?} has no host")]
    NoHost { url: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// An error reply: the connection stays in step.
    #[error("redis: {message}")]
    Server { message: String },
    #[error("bad integer {body:?}")]
    BadInteger { body: String },
    #[error("bad length {body:?}")]
    BadLength { body: String },
    #[error("redis reply of {bytes} bytes is larger than osmen accepts")]
    TooLarge { bytes: i64 },
    #[error("redis closed the connection")]
    Closed,
    #[error("unexpected redis reply type {tag:?}")]
    ReplyType { tag: String },
    #[error("redis at {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("redis at {addr}: no answer")]
    NoAnswer { addr: String },
    #[error("redis at {addr}: no answer within 2s")]
    Timeout { addr: String },
}

#[derive(Debug, PartialEq)]
enum Reply {
    Ok,
    Nil,
    Bulk(Vec<u8>),
    Int(i64),
}

/// `redis://[:password@]host:port[/db]` → (host:port, password).
pub fn parse_url(url: &str) -> Result<(String, Option<String>), RedisError> {
    let rest = url
        .strip_prefix("redis://")
        .ok_or_else(|| RedisError::Scheme { url: url.into() })?;
    let rest = rest.split('/').next().unwrap_or("");
    let (auth, host) = match rest.rsplit_once('@') {
        Some((a, h)) => (Some(a), h),
        None => (None, rest),
    };
    let password = auth.map(|a| a.split_once(':').map(|(_, p)| p).unwrap_or(a).to_string());
    let host = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:6379")
    };
    if host.starts_with(':') {
        return Err(RedisError::NoHost { url: url.into() });
    }
    Ok((host, password.filter(|p| !p.is_empty())))
}

fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

async fn read_reply(r: &mut BufReader<TcpStream>) -> Result<Reply, RedisError> {
    let mut line = String::new();
    r.read_line(&mut line).await?;
    let line = line.trim_end();
    // The type byte is ASCII in every valid reply; anything else is not Redis.
    let (tag, body) = match line.char_indices().nth(1) {
        Some((i, _)) => line.split_at(i),
        None => (line, ""),
    };
    match tag {
        "+" => Ok(Reply::Ok),
        "-" => Err(RedisError::Server {
            message: body.into(),
        }),
        ":" => body
            .parse()
            .map(Reply::Int)
            .map_err(|_| RedisError::BadInteger { body: body.into() }),
        "$" => {
            let n: i64 = body
                .parse()
                .map_err(|_| RedisError::BadLength { body: body.into() })?;
            if n < 0 {
                return Ok(Reply::Nil);
            }
            if n > MAX_BULK {
                return Err(RedisError::TooLarge { bytes: n });
            }
            let mut buf = vec![0u8; n as usize + 2];
            r.read_exact(&mut buf).await?;
            buf.truncate(n as usize);
            Ok(Reply::Bulk(buf))
        }
        "" => Err(RedisError::Closed),
        other => Err(RedisError::ReplyType { tag: other.into() }),
    }
}

impl Redis {
    pub fn new(url: &str) -> Result<Redis, RedisError> {
        let (addr, password) = parse_url(url)?;
        Ok(Redis {
            addr,
            password,
            conn: Mutex::new(None),
        })
    }

    async fn connect(&self) -> Result<BufReader<TcpStream>, RedisError> {
        let s = TcpStream::connect(&self.addr)
            .await
            .map_err(|source| RedisError::Connect {
                addr: self.addr.clone(),
                source,
            })?;
        let mut r = BufReader::new(s);
        if let Some(p) = &self.password {
            r.get_mut()
                .write_all(&command(&[b"AUTH", p.as_bytes()]))
                .await?;
            read_reply(&mut r).await?;
        }
        Ok(r)
    }

    /// One command on the shared connection. The connection is taken out while the
    /// command is in flight and put back only after its whole reply was read, so a caller
    /// that gives up half-way can never leave a reply for the next one.
    async fn call(&self, args: &[&[u8]]) -> Result<Reply, RedisError> {
        let mut guard = self.conn.lock().await;
        let attempt = async {
            for retry in 0..2 {
                let mut conn = match guard.take() {
                    Some(c) => c,
                    None => self.connect().await?,
                };
                let sent = conn.get_mut().write_all(&command(args)).await;
                let reply = match sent {
                    Ok(()) => read_reply(&mut conn).await,
                    Err(e) => Err(RedisError::Io(e)),
                };
                match reply {
                    Ok(r) => {
                        *guard = Some(conn);
                        return Ok(r);
                    }
                    // An error reply leaves the connection in step.
                    Err(e @ RedisError::Server { .. }) => {
                        *guard = Some(conn);
                        return Err(e);
                    }
                    // A dropped connection: open a new one once.
                    Err(_) if retry == 0 => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(RedisError::NoAnswer {
                addr: self.addr.clone(),
            })
        };
        tokio::time::timeout(CALL_TIMEOUT, attempt)
            .await
            .unwrap_or_else(|_| {
                Err(RedisError::Timeout {
                    addr: self.addr.clone(),
                })
            })
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, RedisError> {
        match self.call(&[b"GET", key.as_bytes()]).await? {
            Reply::Bulk(b) => Ok(Some(b)),
            _ => Ok(None),
        }
    }

    pub async fn set_ex(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), RedisError> {
        let secs = ttl.as_secs().max(1).to_string();
        self.call(&[b"SET", key.as_bytes(), value, b"EX", secs.as_bytes()])
            .await
            .map(|_| ())
    }

    pub async fn ping(&self) -> Result<(), RedisError> {
        self.call(&[b"PING"]).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_commands() {
        assert_eq!(
            parse_url("redis://redis:6379/0").unwrap(),
            ("redis:6379".into(), None)
        );
        assert_eq!(
            parse_url("redis://:s3cret@127.0.0.1:7000").unwrap(),
            ("127.0.0.1:7000".into(), Some("s3cret".into()))
        );
        assert_eq!(parse_url("redis://cache").unwrap().0, "cache:6379");
        assert_eq!(
            parse_url("http://x").unwrap_err().to_string(),
            "REDIS_URL \"http://x\" must start with redis://"
        );
        assert_eq!(
            parse_url("redis://:6379").unwrap_err().to_string(),
            "REDIS_URL \"redis://:6379\" has no host"
        );
        assert_eq!(command(&[b"GET", b"k"]), b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    }
}
