//! Redis' settings changed live: `CONFIG SET maxmemory`, what an applied redis-evicting
//! suggestion does beside raising the container's limit. The probe (`collect::probes::redis`)
//! only reads; writing to the service is the stack's side, like every other change it makes.

use std::time::Duration;

use crate::model::probe::Creds;

/// A connection to the Redis at `addr` (`host:port`), logged in with `creds`.
async fn connect(addr: &str, creds: &Creds) -> Result<redis::aio::MultiplexedConnection, String> {
    use redis::IntoConnectionInfo;
    let (host, port) = addr
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
        .ok_or_else(|| format!("bad address {addr}"))?;
    let mut info = redis::ConnectionAddr::Tcp(host, port)
        .into_connection_info()
        .map_err(|e| e.to_string())?;
    if let Some(pw) = &creds.password {
        info = info.set_redis_settings(redis::RedisConnectionInfo::default().set_password(pw));
    }
    let client = redis::Client::open(info).map_err(|e| e.to_string())?;
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(3)))
        .set_response_timeout(Some(Duration::from_secs(3)));
    client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))
}

/// `CONFIG SET maxmemory` (what an applied redis-evicting suggestion does live).
pub async fn set_maxmemory(addr: &str, creds: &Creds, bytes: u64) -> Result<(), String> {
    let mut c = connect(addr, creds).await?;
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(bytes)
        .query_async::<()>(&mut c)
        .await
        .map_err(|e| format!("CONFIG SET maxmemory: {e}"))
}
