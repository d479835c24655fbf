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

/// A failed request's whole chain of causes (`error sending request for url (...)` alone
/// does not say "connection refused").
pub fn why(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(x) = src {
        let t = x.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = x.source();
    }
    s
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_refused_request_says_so() {
        let c = super::client(|b| b.timeout(std::time::Duration::from_secs(2)));
        let e = c.get("http://127.0.0.1:1/").send().await.unwrap_err();
        let why = super::why(&e);
        assert!(why.to_lowercase().contains("connection refused"), "{why}");
    }

    #[test]
    fn a_client_without_roots_still_builds() {
        let c = super::client(|b| {
            b.tls_certs_only(Vec::<reqwest::Certificate>::new())
                .timeout(std::time::Duration::from_secs(1))
        });
        drop(c);
    }
}
