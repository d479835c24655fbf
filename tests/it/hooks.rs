//! Lifecycle hooks against the real engine (issue 23): `post_start` runs in the started
//! container with its own user and environment over the container's, `pre_stop` runs
//! before the stop; a failing `post_start` stops the container and is the error, a
//! failing `pre_stop` aborts the stop (the Compose Specification's rules).

use crate::util::{Stack, docker_ready, inspect};

#[test]
fn lifecycle_hooks_run_in_the_container_as_the_spec_says() {
    if !docker_ready() {
        return;
    }
    let s = Stack::new("hooks", "hooks");
    std::fs::create_dir_all(s.path("out")).unwrap();
    // The hook's user (65534) writes there.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(s.path("out"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let (code, out, err) = s.run(&["up", "app"]);
    assert_eq!(code, 0, "{out}{err}");
    let started = std::fs::read_to_string(s.path("out/started")).unwrap_or_default();
    // The container's WHO, the hook's HOOK, the hook's user.
    assert_eq!(started.trim(), "ops post\n65534");
    assert!(s.journal().contains("post_start: 1 ran"), "{}", s.journal());

    let (code, out, err) = s.run(&["down"]);
    assert_eq!(code, 0, "{out}{err}");
    let stopped = std::fs::read_to_string(s.path("out/stopped")).unwrap_or_default();
    assert_eq!(stopped.trim(), "stopping", "pre_stop ran before the stop");

    let (code, out, err) = s.run(&["up", "bad"]);
    assert_ne!(code, 0, "{out}{err}");
    let want = "bad: post_start[0] `sh -c echo no-db-yet >&2; exit 3` failed (exit 3): \
                no-db-yet; the container was stopped";
    assert!(err.contains(want), "{err}");
    assert_eq!(inspect(&s.container("bad"), "{{.State.Running}}"), "false");

    let (code, out, err) = s.run(&["up", "stuck"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = s.run(&["down"]);
    assert_ne!(code, 0, "a failed pre_stop fails down: {out}{err}");
    assert!(
        err.contains("stuck: pre_stop[0] `sh -c echo still-busy; exit 4` failed (exit 4): still-busy; the container was not stopped"),
        "{err}"
    );
    assert_eq!(
        inspect(&s.container("stuck"), "{{.State.Running}}"),
        "true",
        "the stop was aborted"
    );
    // The Stack's drop removes it with `docker rm -f`.
}
