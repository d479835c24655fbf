//! Load balancers osmen keeps in step with the replicas behind them: a service with
//! `x-osmen-balance: gateway:8080` is an nginx whose upstream list osmen writes (the
//! guide's `least_conn` block) and reloads (SIGHUP: old workers finish what they hold)
//! whenever the replicas change: after they start, and before one is removed, so that a
//! scale-down loses no request beyond those in flight on the removed replica.
//!
//! The file goes through the engine's archive API into `/etc/nginx/conf.d/default.conf`
//! (the official nginx images and Debian's both include `conf.d/*.conf`), so it works on a
//! remote engine too.

use super::compose::Balance;

/// How long a replica leaving the upstream keeps serving after nginx was told to reload.
pub const DRAIN: std::time::Duration = std::time::Duration::from_secs(1);
pub const CONF_DIR: &str = "/etc/nginx/conf.d";
pub const CONF_FILE: &str = "default.conf";

/// The upstream block's name: the guide's `gateway_backend` for the gateway.
pub fn upstream_name(service: &str) -> String {
    let s: String = service
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{s}_backend")
}

/// nginx's configuration for a balancer in front of `servers` (`address:port`).
pub fn nginx_conf(balancer: &str, b: &Balance, servers: &[String]) -> String {
    let up = upstream_name(&b.service);
    let mut s = format!(
        "# Written by osmen for {balancer}: the running replicas of {}, rewritten and\n\
         # reloaded whenever they change. Edits here are lost.\n\
         upstream {up} {{\n    least_conn;\n",
        b.service
    );
    if servers.is_empty() {
        // An upstream needs a server; with no replica running, answer 502 at once.
        s.push_str("    server 127.0.0.1:9 down;  # no replica is running\n");
    }
    for srv in servers {
        s.push_str(&format!("    server {srv} max_fails=1 fail_timeout=5s;\n"));
    }
    s.push_str(&format!(
        "    keepalive 32;\n}}\n\n\
         server {{\n    listen {listen};\n\n\
         \x20   location = /osmen-lb-health {{\n        access_log off;\n\
         \x20       return 200 \"ok\\n\";\n    }}\n\n    location / {{\n        proxy_pass http://{up};\n\
         \x20       proxy_http_version 1.1;\n        proxy_set_header Connection \"\";\n\
         \x20       proxy_set_header Host $host;\n\
         \x20       proxy_set_header X-Real-IP $remote_addr;\n\
         \x20       proxy_next_upstream error timeout;\n    }}\n}}\n",
        listen = b.listen
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_lists_the_replicas_with_least_conn() {
        let b = Balance {
            service: "gateway".into(),
            port: 8080,
            listen: 80,
        };
        let c = nginx_conf(
            "gateway-lb",
            &b,
            &["172.18.0.5:8080".into(), "172.18.0.6:8080".into()],
        );
        assert!(
            c.contains("upstream gateway_backend {\n    least_conn;\n"),
            "{c}"
        );
        assert!(c.contains("server 172.18.0.5:8080 max_fails=1"), "{c}");
        assert!(c.contains("server 172.18.0.6:8080 max_fails=1"), "{c}");
        assert!(c.contains("listen 80;"), "{c}");
        assert!(c.contains("proxy_pass http://gateway_backend;"), "{c}");
        let empty = nginx_conf("gateway-lb", &b, &[]);
        assert!(empty.contains("server 127.0.0.1:9 down;"), "{empty}");
        assert_eq!(upstream_name("my-api.v2"), "my_api_v2_backend");
    }
}
