//! Fidelity of the collectors against the engine's own `docker stats`, measured in the
//! same window on the real engine.

use serde_json::Value;

use crate::util::{Stack, docker_ready, text};

fn parse_size(s: &str) -> f64 {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len()));
    let n: f64 = num.parse().unwrap();
    n * match unit {
        "B" => 1.0,
        "KiB" | "kB" => 1024.0,
        "MiB" | "MB" => 1024.0 * 1024.0,
        "GiB" | "GB" => 1024.0 * 1024.0 * 1024.0,
        other => panic!("unit {other}"),
    }
}

#[test]
fn status_matches_docker_stats() {
    if !docker_ready() {
        return;
    }
    let st = Stack::new("load", "fidelity");
    let (code, _, err) = st.run(&["up"]);
    assert_eq!(code, 0, "{err}");
    // Let the burner reach its limit and the hog fill its memory.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let names = [st.container("burner"), st.container("hog")];
    let docker = std::thread::spawn({
        let names = names.clone();
        move || {
            let o = std::process::Command::new("docker")
                .args(["stats", "--no-stream", "--format", "{{json .}}"])
                .args(&names)
                .output()
                .unwrap();
            String::from_utf8_lossy(&o.stdout).into_owned()
        }
    });
    let o = st.cmd(&["status", "--json"]).output().unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let ds = docker.join().unwrap();
    let snap: Value = serde_json::from_str(&out).unwrap();
    let svc = |name: &str| {
        snap["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["service"] == name)
            .cloned()
            .unwrap()
    };
    let dstat = |name: &str| -> Value {
        ds.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|v| v["Name"] == name)
            .unwrap()
    };
    let burner = svc("burner");
    let d = dstat(&names[0]);
    let docker_cpu: f64 = d["CPUPerc"]
        .as_str()
        .unwrap()
        .trim_end_matches('%')
        .parse()
        .unwrap();
    let cpu = burner["cpu_percent"].as_f64().unwrap();
    eprintln!("burner: osmen {cpu:.2}% vs docker stats {docker_cpu:.2}%");
    assert!(
        (cpu - docker_cpu).abs() <= 5.0,
        "osmen {cpu} vs docker {docker_cpu}"
    );
    // Of its 0.5 CPU limit: exactly twice its share of a core, and about all of it (a
    // short window on a loaded machine reads up to ~120%, docker stats the same; a share
    // taken of a core instead would read about 50).
    let lim = burner["cpu_limit_percent"].as_f64().unwrap();
    eprintln!("burner cpu_limit_percent {lim:.1}");
    assert_eq!(burner["cpu_limit"].as_f64(), Some(0.5), "{burner}");
    assert!(
        (lim - cpu / 0.5).abs() < 1e-6,
        "cpu_limit_percent {lim} vs {cpu}% of a core"
    );
    assert!((70.0..=140.0).contains(&lim), "cpu_limit_percent {lim}");

    let hog = svc("hog");
    let d = dstat(&names[1]);
    let used = parse_size(d["MemUsage"].as_str().unwrap().split('/').next().unwrap());
    let mem = hog["memory_bytes"].as_f64().unwrap();
    eprintln!("hog: osmen {mem} B vs docker stats {used} B");
    assert!(
        (mem - used).abs() / used <= 0.02,
        "osmen {mem} vs docker {used}"
    );
    assert!(mem >= 96.0 * 1024.0 * 1024.0, "the held 96 MiB shows");
    assert_eq!(hog["memory_limit_bytes"].as_u64(), Some(256 << 20));
    assert!(
        snap["sources"]["gpu"]["status"]
            .as_str()
            .unwrap()
            .starts_with(if crate::util::nvml_absent() {
                "unavailable"
            } else {
                "ok"
            })
    );
    assert!(snap["host"]["memory_total_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn status_without_an_engine_says_so() {
    let f = crate::util::root().join("tests/fixtures/stacks/basic/docker-compose.yml");
    let o = crate::util::osmen()
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .env(
            "OSMEN_RUNTIME_DIR",
            std::env::temp_dir().join("osmen-status-noengine"),
        )
        .arg("-f")
        .arg(&f)
        .args(["status", "--json"])
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let c = v["sources"]["containers"]["status"].as_str().unwrap();
    assert!(
        c.starts_with("unavailable: cannot reach the Docker engine"),
        "{c}"
    );
    assert_eq!(v["services"].as_array().unwrap().len(), 0);
    assert!(v["host"]["cpu_percent"].is_number());
    for k in ["host", "services", "gpus", "ollama", "agents", "sources"] {
        assert!(v.get(k).is_some(), "{k}");
    }
}

#[tokio::test]
async fn ollama_models_offload_and_generation_probe() {
    let llm = crate::llm_standin::start().await;
    let client = reqwest::Client::new();
    let v = osmen::collect::ollama::sample(&client, &llm.url)
        .await
        .unwrap();
    assert_eq!(v.version.as_deref(), Some("0.5.0"));
    assert_eq!(v.installed.len(), 2);
    let m = &v.loaded[0];
    assert!(m.partly_on_cpu);
    assert!((m.gpu_percent - 66.666).abs() < 0.01);
    let p = osmen::collect::ollama::probe_generation(&client, &llm.url, None)
        .await
        .unwrap();
    assert_eq!(p["model"], "llama3.2:latest", "the loaded model is probed");
    assert_eq!(p["tokens_per_second"].as_f64(), Some(40.0));
    let ttft = p["time_to_first_token_ms"].as_f64().unwrap();
    assert!((25.0..500.0).contains(&ttft), "{ttft}");
    assert!(
        osmen::collect::ollama::sample(&client, "http://127.0.0.1:1")
            .await
            .is_err()
    );
}

#[test]
fn status_scrapes_configured_targets() {
    use std::io::{Read, Write};
    let corpus =
        std::fs::read_to_string(crate::util::root().join("tests/fixtures/prometheus/corpus.txt"))
            .unwrap();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().take(20) {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{corpus}",
                corpus.len()
            );
            let _ = s.write_all(resp.as_bytes());
        }
    });
    let dir = std::env::temp_dir().join(format!("osmen-scrape-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("osmen.toml");
    std::fs::write(
        &cfg,
        format!("[collect]\nscrape = [\"http://127.0.0.1:{port}/metrics\"]\n"),
    )
    .unwrap();
    let f = crate::util::root().join("tests/fixtures/stacks/basic/docker-compose.yml");
    let o = crate::util::osmen()
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .env("OSMEN_RUNTIME_DIR", &dir)
        .arg("-f")
        .arg(&f)
        .arg("--config")
        .arg(&cfg)
        .args(["status", "--json"])
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let t = v["scrapes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["url"].as_str().unwrap().contains(&port.to_string()))
        .unwrap()
        .clone();
    assert_eq!(t["up"], true);
    assert_eq!(t["families"], 8);
    let lat = t["latencies"].as_array().unwrap();
    let summary = lat
        .iter()
        .find(|l| l["family"] == "osmen_request_duration_seconds")
        .unwrap();
    assert_eq!(
        (summary["p50"].as_f64(), summary["p99"].as_f64()),
        (Some(2.4), Some(12.3))
    );
    let hist = lat
        .iter()
        .find(|l| l["family"] == "rpc_latency_seconds")
        .unwrap();
    assert!((hist["p50"].as_f64().unwrap() - 0.3).abs() < 1e-9, "{hist}");
    let _ = std::fs::remove_dir_all(&dir);
}
