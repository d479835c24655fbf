//! Anonymous volumes as Compose keeps them (issue 23): a recreated container gets the
//! anonymous volumes of the one it replaces, so its data survives `up --force-recreate`
//! or a changed setting; `down --volumes` removes them with the containers.

use crate::util::{Stack, docker, docker_ready};

#[test]
fn anonymous_volumes_survive_a_recreate_and_go_with_down_volumes() {
    if !docker_ready() {
        return;
    }
    let s = Stack::new("hooks", "anonvol");
    std::fs::write(
        s.path("docker-compose.yml"),
        "services:\n  app:\n    image: osmen-shell:test\n    command: [sleep, infinity]\n    \
         stop_grace_period: 1s\n    volumes: [/anon]\n",
    )
    .unwrap();
    let (code, out, err) = s.run(&["up"]);
    assert_eq!(code, 0, "{out}{err}");
    let c = s.container("app");
    let (ok, out) = docker(&["exec", &c, "sh", "-c", "echo keep > /anon/f"]);
    assert!(ok, "{out}");
    let volume = |c: &str| {
        docker(&["inspect", "-f", "{{range .Mounts}}{{.Name}}{{end}}", c])
            .1
            .trim()
            .to_string()
    };
    let before = volume(&c);
    let (code, out, err) = s.run(&["up", "--force-recreate"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        volume(&c),
        before,
        "the new container mounts the old anonymous volume"
    );
    let (ok, kept) = docker(&["exec", &c, "cat", "/anon/f"]);
    assert!(
        ok && kept.trim() == "keep",
        "data kept across the recreate: {kept}"
    );

    let (code, out, err) = s.run(&["down", "--volumes"]);
    assert_eq!(code, 0, "{out}{err}");
    let (exists, _) = docker(&["volume", "inspect", &before]);
    assert!(
        !exists,
        "down --volumes removes the anonymous volume {before}"
    );
}

/// `-p NAME down` where there is no compose file takes down the project's containers and
/// networks by their label, as `docker compose -p NAME down` does.
#[test]
fn down_by_project_name_needs_no_compose_file() {
    if !docker_ready() {
        return;
    }
    let s = Stack::new("hooks", "downbyname");
    std::fs::write(
        s.path("docker-compose.yml"),
        "services:\n  app:\n    image: osmen-shell:test\n    command: [sleep, infinity]\n    \
         stop_grace_period: 1s\n",
    )
    .unwrap();
    let (code, out, err) = s.run(&["up"]);
    assert_eq!(code, 0, "{out}{err}");
    // Not under the stack's directory: discovery walks up to a parent's file.
    let empty = std::env::temp_dir().join(format!("osmen-nofile-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let o = crate::util::osmen()
        .current_dir(&empty)
        .env_remove("COMPOSE_FILE")
        .env_remove("OSMEN_COMPOSE_FILE")
        .args(["-p", &s.project, "down"])
        .output()
        .unwrap();
    let (out, err) = crate::util::text(&o);
    let _ = std::fs::remove_dir_all(&empty);
    assert!(o.status.success(), "{out}{err}");
    assert!(err.contains("no compose file: took down"), "{err}");
    let filter = format!("label=com.docker.compose.project={}", s.project);
    let (_, ids) = docker(&["ps", "-aq", "--filter", &filter]);
    assert!(ids.trim().is_empty(), "containers left: {ids}");
    let (_, nets) = docker(&["network", "ls", "-q", "--filter", &filter]);
    assert!(nets.trim().is_empty(), "networks left: {nets}");
}
