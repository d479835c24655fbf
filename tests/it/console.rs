//! The console as an operator meets it: the real binary in tmux against a running test
//! stack (a real Redis and five stand-ins). Views show the services and their health,
//! help opens, a confirmed restart really restarts, a tiny window gets a message instead
//! of a crash, `q` exits 0, and the stack keeps running afterwards.

use std::process::Command;
use std::time::Duration;

use crate::util::{Stack, docker_ready, free_port, inspect, wait_until};

pub struct Tmux {
    pub name: String,
}

impl Tmux {
    /// A detached session of `w` x `h` running `script` in a shell.
    pub fn start(name: String, w: u16, h: u16, script: &str) -> Tmux {
        let t = Tmux { name };
        t.tmux(&[
            "new-session",
            "-d",
            "-s",
            &t.name,
            "-x",
            &w.to_string(),
            "-y",
            &h.to_string(),
            script,
        ]);
        t
    }

    pub fn tmux(&self, args: &[&str]) -> String {
        let o = Command::new("tmux")
            .args(args)
            .output()
            .expect("tmux is installed (.ci/run installs it)");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
    pub fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.tmux(&["send-keys", "-t", &self.name, k]);
            std::thread::sleep(Duration::from_millis(150));
        }
    }
    /// "1" while the pane shows the alternate screen (a full-screen program is up).
    fn alternate_screen(&self) -> String {
        self.tmux(&["display", "-p", "-t", &self.name, "#{alternate_on}"])
            .trim()
            .to_string()
    }
    pub fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", &self.name])
    }
    pub fn wait_for(&self, what: &str, limit: Duration) -> String {
        let mut last = String::new();
        let seen = wait_until(limit, || {
            last = self.screen();
            last.contains(what)
        });
        assert!(seen, "the console never showed {what:?}; screen:\n{last}");
        last
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.tmux(&["kill-session", "-t", &self.name]);
    }
}

#[test]
fn console_in_tmux_shows_the_stack_restarts_on_confirmation_and_quits_cleanly() {
    if !docker_ready() {
        return;
    }
    let stack = Stack::new("console", "tui");
    let (code, _, err) = stack.run(&["up", "--wait"]);
    assert_eq!(code, 0, "{err}");
    let redis = stack.container("redis");
    let started = inspect(&redis, "{{.State.StartedAt}}");

    let exit_file = stack.path("console.exit");
    let script = format!(
        "cd {dir} && OSMEN_GATEWAY_LISTEN=127.0.0.1:{port} {bin} -p {project}; echo $? > {exit}; sleep 60",
        dir = stack.dir.display(),
        port = free_port(),
        bin = env!("CARGO_BIN_EXE_osmen"),
        project = stack.project,
        exit = exit_file.display(),
    );
    let t = Tmux::start(format!("osmen-it-{}", std::process::id()), 120, 40, &script);

    // Overview: all six containers running and healthy, adopted (not recreated).
    let s = t.wait_for("6 running  6 healthy", Duration::from_secs(60));
    assert!(s.contains("1 Overview") && s.contains("stack"), "{s}");

    // Services: every service with its health.
    t.keys(&["2"]);
    let s = t.wait_for("services (6,", Duration::from_secs(10));
    for svc in ["redis", "postgres", "qdrant", "gateway", "n8n"] {
        assert!(
            s.lines().any(|l| l.contains(svc) && l.contains("healthy")),
            "{svc} is not shown healthy:\n{s}"
        );
    }

    // Help, generated from the keymap.
    t.keys(&["?"]);
    let s = t.wait_for("keys: Services", Duration::from_secs(5));
    assert!(s.contains("restart the service (asks)"), "{s}");
    t.keys(&["Escape"]);

    // Restart redis: filter to it, r, confirm with y; the engine shows a new start.
    t.keys(&["/", "r", "e", "d", "i", "s", "Enter", "r"]);
    t.wait_for("Restart redis?", Duration::from_secs(5));
    t.keys(&["y"]);
    assert!(
        wait_until(Duration::from_secs(30), || inspect(
            &redis,
            "{{.State.StartedAt}}"
        ) != started),
        "redis was not restarted; screen:\n{}",
        t.screen()
    );
    t.wait_for(
        "restart redis: restarted 1 container(s)",
        Duration::from_secs(20),
    );
    assert!(stack.journal().contains("\"action\":\"restart\""));

    // Logs and events views draw the feeds.
    t.keys(&["Escape", "5"]);
    t.wait_for("logs: all services", Duration::from_secs(5));
    t.wait_for("tick", Duration::from_secs(15));
    t.keys(&["7"]);
    t.wait_for("operator asked: restart redis", Duration::from_secs(5));

    // A tiny window: a message, not a crash; back to a normal size: the view again.
    t.tmux(&["resize-window", "-t", &t.name, "-x", "20", "-y", "5"]);
    t.wait_for("too small", Duration::from_secs(5));
    t.tmux(&["resize-window", "-t", &t.name, "-x", "100", "-y", "30"]);
    t.wait_for("events (", Duration::from_secs(5));

    // q quits with status 0, gives the terminal back and leaves the stack running.
    assert_eq!(t.alternate_screen(), "1");
    t.keys(&["q"]);
    assert!(
        wait_until(Duration::from_secs(10), || exit_file.exists()),
        "the console did not exit on q; screen:\n{}",
        t.screen()
    );
    assert_eq!(std::fs::read_to_string(&exit_file).unwrap().trim(), "0");
    assert_eq!(t.alternate_screen(), "0", "the terminal was not restored");
    for svc in ["redis", "postgres", "n8n"] {
        assert_eq!(
            inspect(&stack.container(svc), "{{.State.Status}}"),
            "running"
        );
    }

    // SIGTERM and SIGHUP (a dropped SSH link) end a watching console the same way.
    for signal in ["TERM", "HUP"] {
        let _ = std::fs::remove_file(&exit_file);
        let script = script.replace(" -p ", " --no-up -p ");
        let t = Tmux::start(
            format!("osmen-it-{}-{signal}", std::process::id()),
            100,
            30,
            &script,
        );
        t.wait_for("6 running", Duration::from_secs(30));
        let shell = t.tmux(&["display", "-p", "-t", &t.name, "#{pane_pid}"]);
        let pid = Command::new("pgrep")
            .args(["-P", shell.trim()])
            .output()
            .unwrap();
        let pid = String::from_utf8_lossy(&pid.stdout).trim().to_string();
        assert!(!pid.is_empty(), "no console process under the pane's shell");
        Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        assert!(
            wait_until(Duration::from_secs(10), || exit_file.exists()),
            "SIG{signal} did not end the console; screen:\n{}",
            t.screen()
        );
        assert_eq!(std::fs::read_to_string(&exit_file).unwrap().trim(), "0");
        assert_eq!(
            t.alternate_screen(),
            "0",
            "SIG{signal}: terminal not restored"
        );
    }
    assert_eq!(inspect(&redis, "{{.State.Status}}"), "running");

    // The next start adopts everything a signalled console left: zero recreations.
    let ids = |stack: &Stack| -> Vec<String> {
        ["redis", "postgres", "qdrant", "n8n"]
            .iter()
            .map(|s| inspect(&stack.container(s), "{{.Id}}"))
            .collect()
    };
    let before = ids(&stack);
    let journal_before = stack.journal().lines().count();
    let _ = std::fs::remove_file(&exit_file);
    let t = Tmux::start(
        format!("osmen-it-{}-again", std::process::id()),
        120,
        40,
        &script,
    );
    t.wait_for("6 running  6 healthy", Duration::from_secs(60));
    t.wait_for("converged", Duration::from_secs(30));
    t.keys(&["q"]);
    assert!(wait_until(Duration::from_secs(10), || exit_file.exists()));
    assert_eq!(ids(&stack), before, "a container was recreated");
    let created: Vec<String> = stack
        .journal()
        .lines()
        .skip(journal_before)
        .filter(|l| l.contains("\"action\":\"create\"") || l.contains("\"action\":\"recreate\""))
        .map(String::from)
        .collect();
    assert!(
        created.is_empty(),
        "recreations after the restart: {created:?}"
    );
}

#[test]
fn console_shell_in_a_container_and_the_inspect_pane_in_tmux() {
    if !docker_ready() {
        return;
    }
    let stack = Stack::new("shell", "sh");
    let (code, _, err) = stack.run(&["up", "--wait"]);
    assert_eq!(code, 0, "{err}");
    let shell = stack.container("shell");
    let script = format!(
        "cd {dir} && OSMEN_GATEWAY_LISTEN=127.0.0.1:{port} {bin} --no-up -p {project}; sleep 60",
        dir = stack.dir.display(),
        port = free_port(),
        bin = env!("CARGO_BIN_EXE_osmen"),
        project = stack.project,
    );
    let t = Tmux::start(
        format!("osmen-it-sh-{}", std::process::id()),
        120,
        40,
        &script,
    );
    t.wait_for("2 running", Duration::from_secs(60));
    t.keys(&["2"]);
    t.wait_for("services (2, by name)", Duration::from_secs(10));

    // e on the shell row: the console leaves its screen, the container's shell answers a
    // command typed into it, and exit brings the console back.
    t.keys(&["/", "s", "h", "e", "l", "l", "Enter", "e"]);
    t.wait_for(
        &format!("osmen: /bin/sh in {shell}"),
        Duration::from_secs(15),
    );
    assert_eq!(
        t.alternate_screen(),
        "0",
        "the shell runs on the main screen"
    );
    t.keys(&["echo osmen-$((6*7))", "Enter"]);
    t.wait_for("osmen-42", Duration::from_secs(10));
    t.keys(&["exit", "Enter"]);
    t.wait_for("services (1, by name", Duration::from_secs(10));
    assert_eq!(
        t.alternate_screen(),
        "1",
        "the console took its screen back"
    );
    t.wait_for(
        &format!("open a shell in {shell}: /bin/sh exited (0)"),
        Duration::from_secs(10),
    );
    // Keys reach the console again.
    t.keys(&["?"]);
    t.wait_for("keys: Services", Duration::from_secs(5));
    t.keys(&["Escape"]);

    // i: the inspect pane, the secret masked, the rest shown.
    t.keys(&["i"]);
    let s = t.wait_for(&format!("inspect {shell}"), Duration::from_secs(10));
    let s = if s.contains("SHELL_TEST_TOKEN") {
        s
    } else {
        t.wait_for("SHELL_TEST_TOKEN", Duration::from_secs(10))
    };
    assert!(s.contains("SHELL_TEST_TOKEN=********"), "{s}");
    assert!(!s.contains("tok-do-not-show"), "{s}");
    assert!(s.contains("SHELL_TEST_MODE=plain-value-shown"), "{s}");
    t.keys(&["G"]);
    let s = t.wait_for("health checks: healthy", Duration::from_secs(10));
    assert!(s.contains("exit 0: alive"), "{s}");
    t.keys(&["Escape"]);

    // The stand-in is built from scratch: no shell, said plainly, the console stays.
    t.keys(&["Escape", "/", "s", "t", "a", "n", "d", "Enter", "e"]);
    t.wait_for("has no shell", Duration::from_secs(15));
    assert_eq!(t.alternate_screen(), "1");
    assert_eq!(inspect(&shell, "{{.State.Status}}"), "running");
}
