//! Collector benchmark (`cargo bench --bench collect`), bounded in time:
//!
//! 1. Parsing a 10,000-line Prometheus page (goal: under 5 ms), median of 50 runs.
//! 2. With 30 running containers (stand-ins from `tests/images/build.sh`) and a 1 s period,
//!    the containers and host collectors plus the hub run for 30 s in this process: its
//!    CPU time (goal: at most 2% of one core) and peak RSS (goal: at most 40 MB).

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use osmen::collect::prometheus::parse;
use osmen::commands::status::EngineSource;
use osmen::stack::engine::DockerEngine;

const CONTAINERS: usize = 30;
const RUN: Duration = Duration::from_secs(30);

fn page(lines: usize) -> String {
    let mut s = String::from(
        "# HELP osmen_requests_total Requests.\n# TYPE osmen_requests_total counter\n",
    );
    let mut n = 2;
    let mut i = 0;
    while n < lines {
        s.push_str(&format!(
            "osmen_requests_total{{agent=\"agent_{}\",status=\"success\",path=\"/api/v1/x,y=z\",msg=\"say \\\"hi\\\"\"}} {}\n",
            i,
            i * 7
        ));
        n += 1;
        i += 1;
    }
    s
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = stat.rsplit(')').next().unwrap();
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line (11 and 12 after the name).
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let text = page(10_000);
    let mut times = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let f = parse(&text).unwrap();
        times.push(t.elapsed());
        assert_eq!(f[0].samples.len(), 9_998);
    }
    times.sort();
    println!(
        "parse 10,000 lines ({} KiB): median {:.2} ms, max {:.2} ms",
        text.len() / 1024,
        times[25].as_secs_f64() * 1000.0,
        times[49].as_secs_f64() * 1000.0
    );

    if std::env::var_os("OSMEN_BENCH_PARSE_ONLY").is_some() {
        return;
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let ok = Command::new("bash")
        .arg(format!("{root}/tests/images/build.sh"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        println!("no Docker engine or images: the 30-container run is skipped");
        return;
    }
    let project = format!("osmen-bench-{}", std::process::id());
    for i in 0..CONTAINERS {
        let o = Command::new("docker")
            .args([
                "run",
                "-d",
                "--name",
                &format!("{project}-c{i}"),
                "--label",
                &format!("com.docker.compose.project={project}"),
                "--label",
                &format!("com.docker.compose.service=c{i}"),
                "--label",
                "com.docker.compose.oneoff=False",
                "--memory",
                "32m",
                "osmen-standin:test",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let result = rt.block_on(async {
        let engine = Arc::new(DockerEngine::connect().await.unwrap());
        let (tx, mut rx) = osmen::hub::spawn(&project, None, None);
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let src = Arc::new(EngineSource {
            engine,
            project: project.clone(),
        });
        tokio::spawn(osmen::collect::containers::run(
            src,
            osmen::collect::ticker::Ticker::fixed(Duration::from_secs(1)),
            tx.clone(),
            stop.clone(),
        ));
        tokio::spawn(osmen::collect::host::run(
            vec!["/".into()],
            osmen::collect::ticker::Ticker::fixed(Duration::from_secs(1)),
            tx,
            stop,
        ));
        // Warm-up: wait for the first full snapshot, then measure.
        let t0 = Instant::now();
        while rx
            .borrow()
            .services
            .iter()
            .filter(|s| s.cpu_percent.is_some())
            .count()
            < CONTAINERS
            && t0.elapsed() < Duration::from_secs(20)
        {
            let _ = tokio::time::timeout(Duration::from_secs(1), rx.changed()).await;
        }
        let c0 = cpu_seconds();
        let start = Instant::now();
        let mut snapshots = 0;
        while start.elapsed() < RUN {
            if tokio::time::timeout(Duration::from_secs(2), rx.changed())
                .await
                .is_ok()
            {
                snapshots += 1;
            }
        }
        let cpu = cpu_seconds() - c0;
        let wall = start.elapsed().as_secs_f64();
        let _ = stop_tx.send(true);
        let services = rx.borrow().services.len();
        (cpu, wall, snapshots, services)
    });
    let (cpu, wall, snapshots, services) = result;
    println!(
        "{CONTAINERS} containers, 1 s period, {wall:.0} s: collector CPU {:.2}% of one core ({cpu:.2} s), peak RSS {} KiB, {services} services per snapshot, {snapshots} snapshots",
        cpu / wall * 100.0,
        status_kib("VmHWM:")
    );
    for i in 0..CONTAINERS {
        let _ = Command::new("docker")
            .args(["rm", "-f", &format!("{project}-c{i}")])
            .output();
    }
}
