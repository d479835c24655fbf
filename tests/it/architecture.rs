//! The house rules that keep the layers apart, checked on the source tree.

use std::path::Path;

use crate::util::root;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Lines of `src` that name one of `forbidden` outside comments.
fn offending(src: &str, forbidden: &[&str]) -> Vec<String> {
    src.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .filter(|l| forbidden.iter().any(|f| l.contains(f)))
        .map(|l| l.trim().to_string())
        .collect()
}

fn check(dir: &str, forbidden: &[&str]) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&root().join(dir), &mut files);
    files
        .iter()
        .flat_map(|f| {
            let src = std::fs::read_to_string(f).unwrap();
            offending(&src, forbidden)
                .into_iter()
                .map(move |l| format!("{}: {l}", f.display()))
        })
        .collect()
}

const ENGINE_SIDE: &[&str] = &[
    "crate::stack",
    "crate::gateway",
    "crate::collect",
    "bollard",
];

#[test]
fn the_scanner_catches_what_it_must() {
    assert_eq!(
        offending("use crate::stack::engine;\n// crate::stack\n", ENGINE_SIDE).len(),
        1
    );
    assert!(offending("use crate::model::Snapshot;\n", ENGINE_SIDE).is_empty());
}

#[test]
fn tui_sees_only_model_types() {
    let mut forbidden = ENGINE_SIDE.to_vec();
    forbidden.extend(["crate::hub", "crate::commands"]);
    let bad = check("src/tui", &forbidden);
    assert!(
        bad.is_empty(),
        "src/tui imports engine-side code:\n{}",
        bad.join("\n")
    );
}

#[test]
fn model_is_plain_data() {
    let mut files = Vec::new();
    rust_files(&root().join("src/model"), &mut files);
    assert!(
        files.len() >= 3,
        "src/model should hold the shared data types"
    );
    let bad = check(
        "src/model",
        &[
            "tokio",
            "bollard",
            "ratatui",
            "crossterm",
            "std::fs",
            "crate::stack",
            "reqwest",
        ],
    );
    assert!(
        bad.is_empty(),
        "src/model must stay plain data:\n{}",
        bad.join("\n")
    );
}

/// Ways a program starts another one. osmen starts none: no user string can reach a shell.
const SPAWNING: &[&str] = &[
    "process::Command",
    "Command::new(",
    "tokio::process",
    "libc::exec",
    "libc::system",
    "libc::fork",
    "posix_spawn",
    "\"/bin/sh\"",
    "\"sh\", \"-c\"",
];

#[test]
fn osmen_starts_only_its_ssh_tunnel_so_no_string_reaches_a_shell() {
    assert_eq!(
        offending("let c = std::process::Command::new(\"sh\");\n", SPAWNING).len(),
        1,
        "the scanner must catch a spawn"
    );
    let mut bad = check("src", SPAWNING);
    // The Kubernetes exporter writes `/bin/sh -c` into a manifest's probe (run by the
    // kubelet, never by osmen); that file is held to the spawning calls alone.
    let exporter = "src/stack/k8s.rs: ";
    bad.retain(|l| !(l.contains(exporter) && offending(l, &SPAWNING[..7]).is_empty()));
    // The console's `e` names the shell the engine runs inside the container (an exec
    // through the Engine API, `/bin/sh` then `sh`, fixed argument vectors); osmen starts
    // nothing itself there, so that file too is held to the spawning calls alone.
    let container_shell = "src/commands/console_shell.rs: ";
    bad.retain(|l| !(l.contains(container_shell) && offending(l, &SPAWNING[..7]).is_empty()));
    // The masking tables hold compose commands (`sh -c "mysql -p..."`) as data to mask;
    // that file too is held to the spawning calls alone.
    let masking = "src/model/secret.rs: ";
    bad.retain(|l| !(l.contains(masking) && offending(l, &SPAWNING[..7]).is_empty()));
    // The one process osmen starts: the ssh tunnel to a remote engine, the fixed program
    // `ssh`, its argument vector built from a parsed and checked ssh:// address (tested
    // there: a host that is an ssh option is refused) and closed by `--`.
    let tunnel = "src/stack/remote.rs: ";
    let allowed = [
        "let mut cmd = tokio::process::Command::new(\"ssh\");",
        "fn spawn_ssh(args: &[String], stderr: bool) -> std::io::Result<tokio::process::Child> {",
    ];
    bad.retain(|l| !(l.contains(tunnel) && allowed.iter().any(|a| l.ends_with(a))));
    assert!(
        bad.is_empty(),
        "osmen's source starts a process; if one is ever needed it takes a fixed program \
         and an argument vector, never a shell, and this list names it:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_gateway_never_reaches_the_engine() {
    let bad = check(
        "src/gateway",
        &["bollard", "crate::stack", "docker.sock", "DOCKER_HOST"],
    );
    assert!(
        bad.is_empty(),
        "the gateway must not touch the Docker engine (it would proxy it):\n{}",
        bad.join("\n")
    );
}
