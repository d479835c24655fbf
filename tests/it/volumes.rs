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
