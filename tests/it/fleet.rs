//! The fleet view on this engine: two projects, one reached on the engine's own socket
//! (named by a compose file) and one through a `tcp://` socat forward (named by
//! `project =`). `status --fleet --json` agrees with `docker ps`/`docker inspect`; once the
//! forward is cut the second host says since when it is unreachable and the first stays
//! right. The console's Overview shows a line per host.

use std::time::Duration;

use crate::console::Tmux;
use crate::remote::socat;
use crate::util::{docker, docker_ready, free_port, osmen, text};

/// Containers labelled as a compose project's (what osmen lists), removed when dropped.
struct Project {
    name: String,
    ids: Vec<String>,
}

impl Project {
    /// `running` standins that serve, plus one that has exited.
    fn start(tag: &str, running: usize) -> Project {
        Project::start_as(tag, "web", running)
    }

    /// The same, as replicas of `service`.
    fn start_as(tag: &str, service: &str, running: usize) -> Project {
        let name = format!("osmenit-fleet-{tag}-{}", std::process::id());
        let mut ids = Vec::new();
        for i in 0..=running {
            let cmd: &[&str] = if i < running { &["serve"] } else { &["true"] };
            let mut args = vec![
                "run".to_string(),
                "-d".into(),
                "--name".into(),
                format!("{name}-{service}-{}", i + 1),
                "--label".into(),
                format!("com.docker.compose.project={name}"),
                "--label".into(),
                format!("com.docker.compose.service={service}"),
                "--label".into(),
                format!("com.docker.compose.container-number={}", i + 1),
                "--label".into(),
                "com.docker.compose.oneoff=False".into(),
                "--memory".into(),
                "64m".into(),
                "osmen-standin:test".into(),
            ];
            args.extend(cmd.iter().map(|s| s.to_string()));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (ok, id) = docker(&args);
            assert!(ok, "docker run: {id}");
            ids.push(id.trim().to_string());
        }
        Project { name, ids }
    }

    /// `running/total` and the restart count, as `docker ps` and `docker inspect` say.
    fn engine_figures(&self) -> (String, i64) {
        let filter = format!("label=com.docker.compose.project={}", self.name);
        let (_, all) = docker(&["ps", "-aq", "--filter", &filter]);
        let (_, up) = docker(&["ps", "-q", "--filter", &filter]);
        let count = |s: &str| s.split_whitespace().count();
        let mut restarts = 0;
        for id in all.split_whitespace() {
            let (_, n) = docker(&["inspect", "-f", "{{.RestartCount}}", id]);
            restarts += n.trim().parse::<i64>().unwrap_or(0);
        }
        (format!("{}/{}", count(&up), count(&all)), restarts)
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = docker(&["rm", "-f", id]);
        }
    }
}

/// A settings file with the two hosts, in a fresh folder with a compose file naming `a`.
fn fleet_dir(tag: &str, a: &Project, b: &Project, port: u16) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("osmenit-fleet-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("config")).unwrap();
    let compose = format!(
        "name: {}\nservices:\n  web:\n    image: osmen-standin:test\n",
        a.name
    );
    std::fs::write(dir.join("docker-compose.yml"), &compose).unwrap();
    std::fs::write(dir.join("a.yml"), &compose).unwrap();
    let socket = std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(String::from))
        .unwrap_or_else(|| "/var/run/docker.sock".into());
    std::fs::write(
        dir.join("config/osmen.toml"),
        format!(
            "[[fleet]]\nname = \"direct\"\nhost = \"unix://{socket}\"\ncompose = \"../a.yml\"\n\n\
             [[fleet]]\nname = \"forwarded\"\nhost = \"tcp://127.0.0.1:{port}\"\n\
             project = \"{}\"\n",
            b.name
        ),
    )
    .unwrap();
    dir
}

/// The console on the fleet's settings in `dir`, watching (`--no-up`), in a 160x40 pane.
fn console(dir: &std::path::Path, tag: &str) -> Tmux {
    let bin = env!("CARGO_BIN_EXE_osmen");
    Tmux::start(
        format!("osmenit-{tag}-{}", std::process::id()),
        160,
        40,
        &format!(
            "cd {} && OSMEN_GATEWAY_LISTEN=127.0.0.1:{} {bin} --no-up; sleep 30",
            dir.display(),
            free_port()
        ),
    )
}

fn status_fleet(dir: &std::path::Path) -> (i32, serde_json::Value, String) {
    let o = osmen()
        .current_dir(dir)
        .args(["status", "--fleet", "--json"])
        .output()
        .unwrap();
    let (so, se) = text(&o);
    let v = serde_json::from_str(&so).unwrap_or_else(|e| panic!("{e}: {so}{se}"));
    (o.status.code().unwrap_or(-1), v, se)
}

#[test]
fn fleet_hosts_match_the_engine_and_a_cut_forward_says_since_when() {
    if !docker_ready() {
        return;
    }
    let a = Project::start("a", 2);
    let b = Project::start("b", 1);
    let (forward, port) = socat(format!("TCP-LISTEN:{},fork,reuseaddr", free_port()));
    let dir = fleet_dir("cut", &a, &b, port);
    let (code, v, se) = status_fleet(&dir);
    assert_eq!(code, 0, "{v}{se}");
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{v}");
    for (row, p, name) in [(&rows[0], &a, "direct"), (&rows[1], &b, "forwarded")] {
        let (running_of_total, restarts) = p.engine_figures();
        assert_eq!(row["name"], name);
        assert_eq!(row["project"], p.name.as_str(), "{row}");
        assert_eq!(
            format!("{}/{}", row["running"], row["total"]),
            running_of_total,
            "{row}"
        );
        assert_eq!(row["restarts"], restarts);
        assert_eq!(row["unhealthy"], 0);
        assert!(row["error"].is_null(), "{row}");
        assert!(row["host_cpus"].as_u64().unwrap() >= 1, "{row}");
        assert!(
            row["host_memory_total_bytes"].as_u64().unwrap() > 0,
            "{row}"
        );
        assert!(row["memory_used_bytes"].as_u64().unwrap() > 0, "{row}");
        assert!(row["cpu_percent"].as_f64().is_some(), "{row}");
        // Its containers, by the names the engine gives them.
        let filter = format!("label=com.docker.compose.project={}", p.name);
        let (_, names) = docker(&["ps", "-a", "--format", "{{.Names}}", "--filter", &filter]);
        let mut names: Vec<&str> = names.split_whitespace().collect();
        names.sort();
        let listed: Vec<&str> = row["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["container"].as_str().unwrap())
            .collect();
        assert_eq!(listed, names, "{row}");
    }
    assert_eq!(rows[0]["local"], true);

    // The table says the same.
    let o = osmen()
        .current_dir(&dir)
        .args(["status", "--fleet"])
        .output()
        .unwrap();
    let (table, _) = text(&o);
    assert!(table.starts_with("HOST"), "{table}");
    assert!(table.contains(&format!("direct     {}", a.name)), "{table}");

    drop(forward);
    let (code, v, se) = status_fleet(&dir);
    assert_eq!(code, 1, "{v}{se}");
    let rows = v.as_array().unwrap();
    assert!(rows[0]["error"].is_null(), "{v}");
    assert_eq!(
        format!("{}/{}", rows[0]["running"], rows[0]["total"]),
        a.engine_figures().0
    );
    assert!(rows[1]["error"].is_string(), "{v}");
    assert!(rows[1]["unreachable_since"].as_f64().is_some(), "{v}");
    let o = osmen()
        .current_dir(&dir)
        .args(["status", "--fleet"])
        .output()
        .unwrap();
    let (table, _) = text(&o);
    assert!(table.contains("forwarded  unreachable since "), "{table}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fleet_errors_name_the_file_the_entry_and_the_key() {
    let dir = std::env::temp_dir().join(format!("osmenit-fleet-bad-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("config")).unwrap();
    std::fs::write(
        dir.join("docker-compose.yml"),
        "services:\n  web:\n    image: osmen-standin:test\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("config/osmen.toml"),
        "[[fleet]]\nname = \"gpu-box\"\nhost = \"gpu-box:2375\"\nproject = \"p\"\n",
    )
    .unwrap();
    let o = osmen()
        .current_dir(&dir)
        .args(["status", "--fleet"])
        .output()
        .unwrap();
    let (_, se) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{se}");
    assert!(
        se.contains("config/osmen.toml: fleet entry \"gpu-box\": host: \"gpu-box:2375\""),
        "{se}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn console_overview_lists_the_fleet_hosts_and_a_host_recovers() {
    if !docker_ready() {
        return;
    }
    let a = Project::start("ta", 1);
    let b = Project::start("tb", 1);
    let listen = format!("TCP-LISTEN:{},fork,reuseaddr", free_port());
    let (forward, port) = socat(listen.clone());
    let dir = fleet_dir("tui", &a, &b, port);
    let t = console(&dir, "fleet");
    t.wait_for("forwarded", Duration::from_secs(30));
    let line = fleet_line;
    let mut screen = String::new();
    let both = crate::util::wait_until(Duration::from_secs(20), || {
        screen = t.screen();
        line(&screen, "direct").contains("1/2") && line(&screen, "forwarded").contains("1/2")
    });
    assert!(both, "{screen}");
    assert!(line(&screen, "direct").contains(&a.name), "{screen}");
    assert!(line(&screen, "forwarded").contains(&b.name), "{screen}");

    // This machine's stack first; `i` on the next host lists its containers, read-only.
    assert!(line(&screen, "here").contains(&a.name), "{screen}");
    t.keys(&["j", "i"]);
    let s = t.wait_for("its containers", Duration::from_secs(5));
    assert!(s.contains(&format!("{}-web-1", a.name)), "{s}");
    assert!(s.contains("DOCKER_HOST=unix://"), "{s}");
    t.keys(&["Escape"]);

    // Cut: the forwarded host says since when; the direct one stays.
    drop(forward);
    let s = t.wait_for("unreachable since", Duration::from_secs(20));
    assert!(line(&s, "forwarded").contains("unreachable since"), "{s}");
    assert!(line(&s, "direct").contains("1/2"), "{s}");
    // `i` on the selected host (the third line) opens its whole line.
    t.keys(&["j", "i"]);
    let s = t.wait_for("fleet host forwarded", Duration::from_secs(5));
    assert!(s.contains(&format!("tcp://127.0.0.1:{port}")), "{s}");
    t.keys(&["Escape"]);
    // Enter on it: not switched, with the reason and since when.
    t.keys(&["Enter"]);
    let s = t.wait_for(
        "forwarded: not switched: unreachable since",
        Duration::from_secs(5),
    );
    assert!(
        !s.lines().next().unwrap_or("").contains(" on forwarded"),
        "{s}"
    );

    // The forward again: the host recovers on its own.
    let (_forward, _) = socat(listen);
    let mut screen = String::new();
    let back = crate::util::wait_until(Duration::from_secs(20), || {
        screen = t.screen();
        line(&screen, "forwarded").contains("1/2")
    });
    assert!(back, "{screen}");
    t.keys(&["q"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fleet line of the Overview by its host's name (marked `▶` when it is the stack the
/// console shows); empty when there is none.
fn fleet_line(screen: &str, host: &str) -> String {
    screen
        .lines()
        .find(|l| l.contains(&format!("│  {host} ")) || l.contains(&format!("│▶ {host} ")))
        .unwrap_or_default()
        .to_string()
}

/// The names `docker ps -a` gives a project's containers, sorted.
fn container_names(project: &str) -> Vec<String> {
    let filter = format!("label=com.docker.compose.project={project}");
    let (_, names) = docker(&["ps", "-a", "--format", "{{.Names}}", "--filter", &filter]);
    let mut names: Vec<String> = names.split_whitespace().map(String::from).collect();
    names.sort();
    names
}

/// Enter on the forwarded host switches the whole console to its project through its
/// `tcp://` engine: the bar names it, Services lists its containers (and not this
/// machine's), a container killed there shows exited, an action that needs a compose
/// file is refused; when B's engine goes away its line says since when, and Enter on
/// `here` comes back to this machine's stack.
#[test]
fn console_switches_to_a_fleet_host_and_back() {
    if !docker_ready() {
        return;
    }
    let a = Project::start("sa", 1);
    let b = Project::start_as("sb", "api", 2);
    let (forward, port) = socat(format!("TCP-LISTEN:{},fork,reuseaddr", free_port()));
    let dir = fleet_dir("switch", &a, &b, port);
    let t = console(&dir, "fleet-switch");
    let mut screen = String::new();
    let listed = crate::util::wait_until(Duration::from_secs(30), || {
        screen = t.screen();
        fleet_line(&screen, "forwarded").contains("2/3")
            && fleet_line(&screen, "here").contains("1/2")
    });
    assert!(listed, "{screen}");
    assert!(
        fleet_line(&screen, "here").starts_with("│▶ here"),
        "{screen}"
    );

    // Enter on the third line (here, direct, forwarded).
    t.keys(&["j", "j", "Enter"]);
    let bar = format!("{} on forwarded tcp://127.0.0.1:{port}", b.name);
    let s = t.wait_for(&bar, Duration::from_secs(10));
    assert!(s.lines().next().unwrap_or("").contains(&bar), "{s}");
    let marked = crate::util::wait_until(Duration::from_secs(5), || {
        screen = t.screen();
        fleet_line(&screen, "forwarded").starts_with("│▶ forwarded")
            && fleet_line(&screen, "here").starts_with("│  here")
    });
    assert!(marked, "{screen}");
    println!("switched Overview:\n{screen}");
    // The sampling period is the console's: `]` steps it on the host shown, and it holds
    // across the switch home.
    t.keys(&["]"]);
    let s = t.wait_for("every 2s", Duration::from_secs(5));
    assert!(s.lines().next().unwrap_or("").contains(&bar), "{s}");

    // Services: B's containers, by the engine's names, one row each; none of A's.
    t.keys(&["2"]);
    let names = container_names(&b.name);
    assert_eq!(names.len(), 3, "{names:?}");
    let rows = crate::util::wait_until(Duration::from_secs(10), || {
        screen = t.screen();
        screen.contains("api#3")
    });
    assert!(rows, "{screen}");
    assert!(
        !screen.contains(&a.name) && !screen.contains("│web"),
        "{screen}"
    );
    t.keys(&["g"]);
    for n in &names {
        let s = t.wait_for(n, Duration::from_secs(5));
        assert!(!s.contains(&a.name), "{s}");
        t.keys(&["j"]);
    }

    // Killed on B: the switched console shows it exited within seconds.
    let first = &names[0];
    let (ok, out) = docker(&["kill", first]);
    assert!(ok, "docker kill: {out}");
    t.keys(&["g"]);
    let exited = crate::util::wait_until(Duration::from_secs(8), || {
        screen = t.screen();
        screen
            .lines()
            .any(|l| l.contains(&format!("{first}  exited")))
    });
    assert!(exited, "{screen}");

    // B is named by its project only: `up` needs a compose file, and says so.
    t.keys(&["U"]);
    t.wait_for("names only the project", Duration::from_secs(5));
    println!("switched console:\n{}", t.screen());

    // B's engine goes away while shown: its line says since when, the console answers.
    drop(forward);
    t.keys(&["1"]);
    let cut = crate::util::wait_until(Duration::from_secs(15), || {
        screen = t.screen();
        fleet_line(&screen, "forwarded").contains("unreachable since")
    });
    assert!(cut, "{screen}");
    println!("switched to a host that went away:\n{screen}");

    // Home: Enter on the first line; A's rows come back, B's are gone.
    t.keys(&["g", "Enter"]);
    let home = crate::util::wait_until(Duration::from_secs(10), || {
        screen = t.screen();
        let top = screen.lines().next().unwrap_or("");
        top.contains(&a.name) && !top.contains(" on forwarded")
    });
    assert!(home, "{screen}");
    assert!(
        screen.lines().next().unwrap_or("").contains("every 2s"),
        "{screen}"
    );
    let here = crate::util::wait_until(Duration::from_secs(5), || {
        screen = t.screen();
        fleet_line(&screen, "here").starts_with("│▶ here")
    });
    assert!(here, "{screen}");
    t.keys(&["2", "g"]);
    let s = t.wait_for(&format!("{}-web-1", a.name), Duration::from_secs(10));
    assert!(!s.contains(&b.name) && !s.contains("api#"), "{s}");
    t.keys(&["q"]);
    let _ = std::fs::remove_dir_all(&dir);
}
