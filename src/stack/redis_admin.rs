//! Redis' settings changed live: `CONFIG SET maxmemory`, what an applied redis-evicting
//! suggestion does beside raising the container's limit. The probe (`collect::probes::redis`)
//! only reads; writing to the service is the stack's side, like every other change it makes.

use std::time::Duration;

use crate::model::probe::Creds;

/// Why Redis' setting was not changed; the texts name the address or the command.
#[derive(Debug, thiserror::Error)]
pub enum RedisAdminError {
    #[error("bad address {0}")]
    BadAddress(String),
    #[error("{0}")]
    Settings(#[source] redis::RedisError),
    #[error("connect {addr}: {source}")]
    Connect {
        addr: String,
        source: redis::RedisError,
    },
    #[error("CONFIG SET maxmemory: {0}")]
    ConfigSet(#[source] redis::RedisError),
}

/// A connection to the Redis at `addr` (`host:port`), logged in with `creds`.
async fn connect(
    addr: &str,
    creds: &Creds,
) -> Result<redis::aio::MultiplexedConnection, RedisAdminError> {
    use redis::IntoConnectionInfo;
    let (host, port) = addr
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
        .ok_or_else(|| RedisAdminError::BadAddress(addr.to_string()))?;
    let mut info = redis::ConnectionAddr::Tcp(host, port)
        .into_connection_info()
        .map_err(RedisAdminError::Settings)?;
    if let Some(pw) = &creds.password {
        info = info.set_redis_settings(redis::RedisConnectionInfo::default().set_password(pw));
    }
    let client = redis::Client::open(info).map_err(RedisAdminError::Settings)?;
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(3)))
        .set_response_timeout(Some(Duration::from_secs(3)));
    client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .map_err(|source| RedisAdminError::Connect {
            addr: addr.to_string(),
            source,
        })
}

/// `CONFIG SET maxmemory` (what an applied redis-evicting suggestion does live).
pub async fn set_maxmemory(addr: &str, creds: &Creds, bytes: u64) -> Result<(), RedisAdminError> {
    let mut c = connect(addr, creds).await?;
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(bytes)
        .query_async::<()>(&mut c)
        .await
        .map_err(RedisAdminError::ConfigSet)
}
