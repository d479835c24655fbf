//! HTTP clients that start on any machine. reqwest's `Client::new()` panics, and its
//! builder fails, where the system has no CA certificates (a scratch container such as
//! the gateway's image): verification of HTTPS cannot work there, but plain HTTP to the
//! stack and to loopback must. So a client that cannot load the system's roots trusts no
//! root instead: HTTPS then fails per request with a certificate error that says so.

/// `configure(Client::builder())` built, falling back to a client with no trusted roots.
pub fn client(
    configure: impl Fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
) -> reqwest::Client {
    configure(reqwest::Client::builder())
        .build()
        .or_else(|_| {
            configure(reqwest::Client::builder())
                .tls_certs_only(Vec::<reqwest::Certificate>::new())
                .build()
        })
        .unwrap_or_else(|_| {
            reqwest::Client::builder()
                .tls_certs_only(Vec::<reqwest::Certificate>::new())
                .build()
                .expect("a client that trusts no root needs nothing from the system")
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_client_without_roots_still_builds() {
        let c = super::client(|b| {
            b.tls_certs_only(Vec::<reqwest::Certificate>::new())
                .timeout(std::time::Duration::from_secs(1))
        });
        drop(c);
    }
}
