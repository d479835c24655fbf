//! One connection to a Redis of the stack, shared by the probe (`collect::probes::redis`,
//! which reads `INFO`) and the stack's actuator (`stack::redis_admin`, which writes
//! `CONFIG SET`): the `host:port` parsed, the password given, and every step bounded in
//! time (3 s to connect, 3 s for each answer). Names no other room.

use std::time::Duration;

/// Why no connection was made; the texts are the ones the console and `suggest` show.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("bad address {0}")]
    Address(String),
    /// The address or the client could not be made.
    #[error(transparent)]
    Client(redis::RedisError),
    #[error("connect {addr}: {source}")]
    Connect {
        addr: String,
        source: redis::RedisError,
    },
}

/// A connection to the Redis at `addr` (`host:port`), logged in with `password`.
pub async fn connect(
    addr: &str,
    password: Option<&str>,
) -> Result<redis::aio::MultiplexedConnection, ConnectError> {
    use redis::IntoConnectionInfo;
    let (host, port) = addr
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
        .ok_or_else(|| ConnectError::Address(addr.to_string()))?;
    let mut info = redis::ConnectionAddr::Tcp(host, port)
        .into_connection_info()
        .map_err(ConnectError::Client)?;
    if let Some(pw) = password {
        info = info.set_redis_settings(redis::RedisConnectionInfo::default().set_password(pw));
    }
    let client = redis::Client::open(info).map_err(ConnectError::Client)?;
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(3)))
        .set_response_timeout(Some(Duration::from_secs(3)));
    client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .map_err(|source| ConnectError::Connect {
            addr: addr.to_string(),
            source,
        })
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_bad_address_and_a_closed_port_say_which() {
        let e = super::connect("no-port", None).await.unwrap_err();
        assert_eq!(e.to_string(), "bad address no-port");
        // Port 1 on loopback: nothing listens there, the connection is refused at once.
        let e = super::connect("127.0.0.1:1", None).await.unwrap_err();
        assert!(e.to_string().starts_with("connect 127.0.0.1:1: "), "{e}");
    }
}
