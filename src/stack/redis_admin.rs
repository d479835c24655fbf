//! Redis' settings changed live: `CONFIG SET maxmemory`, what an applied redis-evicting
//! suggestion does beside raising the container's limit. The probe (`collect::probes::redis`)
//! only reads; writing to the service is the stack's side, like every other change it makes.

use crate::model::probe::Creds;

/// Why Redis' setting was not changed; the texts name the address or the command.
#[derive(Debug, thiserror::Error)]
pub enum RedisAdminError {
    #[error(transparent)]
    Connect(#[from] crate::redis_conn::ConnectError),
    #[error("CONFIG SET maxmemory: {0}")]
    ConfigSet(#[source] redis::RedisError),
}

/// `CONFIG SET maxmemory` (what an applied redis-evicting suggestion does live).
pub async fn set_maxmemory(addr: &str, creds: &Creds, bytes: u64) -> Result<(), RedisAdminError> {
    let mut c = crate::redis_conn::connect(addr, creds.password.as_deref()).await?;
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(bytes)
        .query_async::<()>(&mut c)
        .await
        .map_err(RedisAdminError::ConfigSet)
}
