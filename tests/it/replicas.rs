//! Gateway replicas behind nginx on the real engine: three `osmen gateway` containers (an
//! image made here from this build's osmen binary) and a balancer from Debian's nginx
//! whose upstream osmen writes. Traffic reaches every replica through the balancer; the
//! percentiles merged from the replicas' histogram buckets are exactly those of all the
//! requests' own durations bucketed the same way; scaling down to two rewrites the
//! balancer first, so the load running meanwhile loses no request.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use osmen::collect::prometheus::{Family, histogram_quantile, merge, parse};

use crate::util::{Stack, docker, docker_ready, inspect};

const KEY: &str = "it-replica-key-5d1e";
const AGENT: &str = "content_creator";
static SEQ: AtomicUsize = AtomicUsize::new(0);

/// `osmen-gateway:test-<digest>`: this build's osmen binary and the libraries it loads
/// (ldd), in an otherwise empty image. Made once per binary.
pub fn gateway_image() -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_osmen"));
    let meta = std::fs::metadata(bin).unwrap();
    let stamp = format!(
        "{}-{}",
        meta.len(),
        meta.modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    );
    let digest: String = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        stamp.hash(&mut h);
        format!("{:016x}", h.finish())
    };
    let tag = format!("osmen-gateway:test-{}", &digest[..12]);
    if docker(&["image", "inspect", &tag]).0 {
        return tag;
    }
    let root = std::env::temp_dir().join(format!("osmen-gw-image-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/:/sbin/nologin\n").unwrap();
    std::fs::copy(bin, root.join("usr/bin/osmen")).unwrap();
    let ldd = Command::new("ldd").arg(bin).output().unwrap();
    for lib in String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
    {
        let dest = root.join(lib.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(lib, &dest).unwrap();
    }
    let tarball = root.with_extension("tar");
    let t = Command::new("tar")
        .args(["--owner=0", "--group=0", "-C"])
        .arg(&root)
        .arg("-cf")
        .arg(&tarball)
        .arg(".")
        .status()
        .unwrap();
    assert!(t.success());
    let (ok, out) = docker(&[
        "import",
        "-c",
        "ENV PATH=/usr/bin",
        "-c",
        "ENTRYPOINT [\"/usr/bin/osmen\"]",
        "-c",
        "EXPOSE 8080",
        tarball.to_str().unwrap(),
        &tag,
    ]);
    assert!(ok, "docker import: {out}");
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_file(&tarball);
    tag
}

fn address(container: &str) -> String {
    inspect(
        container,
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
    )
}

fn upstream_servers(lb: &str) -> Vec<String> {
    // The image has no shell tools: copy the file out.
    let to = std::env::temp_dir().join(format!("osmen-lb-{}.conf", std::process::id()));
    let (ok, out) = docker(&[
        "cp",
        &format!("{lb}:/etc/nginx/conf.d/default.conf"),
        to.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    let conf = std::fs::read_to_string(&to).unwrap();
    let _ = std::fs::remove_file(&to);
    conf.lines()
        .filter_map(|l| l.trim().strip_prefix("server "))
        .filter(|l| l.contains(":8080"))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect()
}

/// The buckets of the agent's duration histogram in one set of families.
fn agent_buckets(fams: &[Family]) -> Vec<(f64, f64)> {
    fams.iter()
        .find(|f| f.name == "osmen_agent_duration_seconds")
        .unwrap()
        .samples
        .iter()
        .filter(|s| s.name.ends_with("_bucket") && s.label("agent") == Some(AGENT))
        .map(|s| {
            let le = s.label("le").unwrap();
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            (le, s.value)
        })
        .collect()
}

fn requests_total(fams: &[Family]) -> f64 {
    fams.iter()
        .filter(|f| f.name == "osmen_requests_total")
        .flat_map(|f| &f.samples)
        .filter(|s| s.label("agent") == Some(AGENT) && s.label("status") == Some("success"))
        .map(|s| s.value)
        .sum()
}

/// Sends `n` requests through the balancer on `conc` connections; the durations the
/// gateways reported (seconds) and the number that failed.
async fn load(url: &str, n: usize, conc: usize) -> (Vec<f64>, usize) {
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (client, next, url) = (client.clone(), next.clone(), url.to_string());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (Vec::new(), 0usize);
            while next.fetch_add(1, Ordering::Relaxed) < n {
                match one(&client, &url).await {
                    Some(d) => ok.push(d),
                    None => failed += 1,
                }
            }
            (ok, failed)
        }));
    }
    let mut all = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let (ok, f) = t.await.unwrap();
        all.extend(ok);
        failed += f;
    }
    (all, failed)
}

async fn one(client: &reqwest::Client, url: &str) -> Option<f64> {
    let r = client
        .post(format!("{url}/api/v1/agents/{AGENT}/execute"))
        .header("X-API-Key", KEY)
        .header("content-type", "application/json")
        // A new input each time: the gateway's response cache must not answer.
        .body(format!(
            r#"{{"input":"one line on load balancing, take {}"}}"#,
            SEQ.fetch_add(1, Ordering::Relaxed)
        ))
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        let code = r.status();
        let body = r.text().await.unwrap_or_default();
        eprintln!(
            "failed: {code} {}",
            body.chars().take(200).collect::<String>()
        );
        return None;
    }
    let v: serde_json::Value = r.json().await.ok()?;
    v["duration_ms"].as_f64().map(|ms| ms / 1000.0)
}

async fn scrape(ip: &str) -> Vec<Family> {
    let t = reqwest::get(format!("http://{ip}:8080/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    parse(&t).unwrap()
}

fn exact(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_behind_nginx_merge_to_the_true_percentiles_and_scale_down_loses_nothing() {
    if !docker_ready() {
        return;
    }
    let image = tokio::task::spawn_blocking(gateway_image).await.unwrap();
    let st = Stack::new("replicas", "lb");
    let run = |args: &[&str]| {
        let o = st
            .cmd(args)
            .env("OSMEN_GATEWAY_IMAGE", &image)
            .output()
            .unwrap();
        let (so, se) = crate::util::text(&o);
        (o.status.code().unwrap_or(-1), so, se)
    };
    let (code, so, se) = run(&["up", "--wait"]);
    assert_eq!(code, 0, "{so}{se}");
    assert!(
        se.contains("gateway-lb: balancing 3 replica(s) of gateway"),
        "{se}"
    );
    let lb = st.container("gateway-lb");
    let replicas: Vec<String> = (1..=3)
        .map(|n| format!("{}-gateway-{n}", st.project))
        .collect();
    let ips: Vec<String> = replicas.iter().map(|c| address(c)).collect();
    let mut servers = upstream_servers(&lb);
    servers.sort();
    let mut want: Vec<String> = ips.iter().map(|ip| format!("{ip}:8080")).collect();
    want.sort();
    assert_eq!(
        servers, want,
        "the balancer's upstream is the three replicas"
    );
    let port = crate::util::published_port(&lb, "80/tcp");
    let url = format!("http://127.0.0.1:{port}");
    // nginx loaded osmen's file (a reload of a bad file would keep the placeholder's 503).
    let health = reqwest::get(format!("{url}/osmen-lb-health"))
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);

    const N: usize = 600;
    let (mut raw, failed) = load(&url, N, 8).await;
    assert_eq!(failed, 0, "requests failed through the balancer");
    assert_eq!(raw.len(), N);
    let per: Vec<Vec<Family>> =
        futures_util::future::join_all(ips.iter().map(|ip| scrape(ip))).await;
    let counts: Vec<f64> = per.iter().map(|f| requests_total(f)).collect();
    for (c, n) in replicas.iter().zip(&counts) {
        assert!(*n > 0.0, "{c} received no request: {counts:?}");
    }
    assert_eq!(counts.iter().sum::<f64>(), N as f64, "{counts:?}");

    // Merged from the replicas' buckets vs the same buckets filled from every request's
    // own duration: equal. Averaging the replicas' percentiles is shown for contrast.
    let merged = merge(&per);
    let mb = agent_buckets(&merged);
    let mut rb: Vec<(f64, f64)> = osmen::gateway::metrics::BUCKETS
        .iter()
        .map(|b| (*b, raw.iter().filter(|d| **d <= *b).count() as f64))
        .collect();
    rb.push((f64::INFINITY, raw.len() as f64));
    raw.sort_by(f64::total_cmp);
    let mut lines = Vec::new();
    for q in [0.5, 0.95, 0.99] {
        let m = histogram_quantile(q, &mb).unwrap();
        let r = histogram_quantile(q, &rb).unwrap();
        let avg = per
            .iter()
            .map(|f| histogram_quantile(q, &agent_buckets(f)).unwrap())
            .sum::<f64>()
            / per.len() as f64;
        lines.push(format!(
            "p{:<2} merged {:.3} ms, from all {N} raw durations {:.3} ms (exact order \
             statistic {:.3} ms), mean of the 3 replicas' p{} {:.3} ms",
            (q * 100.0) as u32,
            m * 1e3,
            r * 1e3,
            exact(&raw, q) * 1e3,
            (q * 100.0) as u32,
            avg * 1e3
        ));
        assert!(
            (m - r).abs() < 1e-9,
            "q{q}: merged {m} != raw {r}\nmerged {mb:?}\nraw {rb:?}"
        );
    }
    eprintln!("requests per replica {counts:?}\n{}", lines.join("\n"));

    // The console's merged row, through `status --json`: one row per replica, one merged
    // row, and the agent's figures summed over the replicas with the merged percentiles.
    let (code, so, se) = tokio::task::block_in_place(|| run(&["status", "--json"]));
    assert_eq!(code, 0, "{se}");
    let status: serde_json::Value = serde_json::from_str(&so).unwrap();
    let rows: Vec<&serde_json::Value> = status["scrapes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["replica_of"] == "gateway")
        .collect();
    assert_eq!(rows.len(), 4, "three replicas and the merged row: {rows:?}");
    assert!(
        rows.iter().any(|t| t["name"] == "merged (3 replicas)"),
        "{rows:?}"
    );
    let agent = status["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agent"] == format!("gateway/{AGENT}"))
        .unwrap_or_else(|| panic!("no merged agent row: {}", status["agents"]));
    assert_eq!(agent["requests_success"], N as f64, "{agent}");
    assert_eq!(agent["replicas"], 3, "{agent}");
    let p99 = histogram_quantile(0.99, &mb).unwrap();
    eprintln!("status --json: gateway/{AGENT} {agent}");
    assert!(
        (agent["p99_seconds"].as_f64().unwrap() - p99).abs() < 1e-9,
        "console p99 {} vs merged {p99}",
        agent["p99_seconds"]
    );

    // Scale down to two under load: the balancer forgets gateway-3 before it stops.
    let stop = Arc::new(AtomicBool::new(false));
    let (bg_ok, bg_failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut bg = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed, url) = (stop.clone(), bg_ok.clone(), bg_failed.clone(), url.clone());
        bg.push(tokio::spawn(async move {
            // A connection per request: nginx closes idle client keep-alive connections
            // when it reloads, and a POST written onto one as it closes fails at the
            // client, whatever the balancer does (HTTP/1.1 lets a server close an idle
            // connection; only the client can retry). What is measured here is whether
            // the balancer and the replicas lose a request.
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            while !stop.load(Ordering::Relaxed) {
                match one(&client, &url).await {
                    Some(_) => ok.fetch_add(1, Ordering::Relaxed),
                    None => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (code, so, se) = tokio::task::block_in_place(|| run(&["up", "--scale", "gateway=2"]));
    assert_eq!(code, 0, "{so}{se}");
    eprintln!("up --scale gateway=2:\n{so}{se}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for t in bg {
        t.await.unwrap();
    }
    let (ok, failed) = (
        bg_ok.load(Ordering::Relaxed),
        bg_failed.load(Ordering::Relaxed),
    );
    eprintln!("scale 3 -> 2 under load: {ok} requests answered, {failed} failed");
    assert!(ok > 0);
    assert_eq!(failed, 0, "requests failed while a replica was removed");
    let servers = upstream_servers(&lb);
    assert_eq!(servers.len(), 2, "{servers:?}");
    assert!(
        !servers.contains(&format!("{}:8080", ips[2])),
        "{servers:?}"
    );
    assert!(
        !docker(&["inspect", &replicas[2]]).0,
        "gateway-3 was not removed"
    );
    assert!(st.journal().contains("\"balance\""), "{}", st.journal());
}
