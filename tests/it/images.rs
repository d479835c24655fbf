//! Images against a real registry on loopback (Debian's docker-registry) and the engine's
//! builder: pull with progress, clear failures before anything is created, basic auth from
//! a Docker config file, builds that honour .dockerignore, and `osmen doctor`.

use std::process::Command;

use crate::util::{Registry, Stack, docker, docker_ready, inspect, osmen, root, text};

/// Pushes an image with a 24 MiB layer to the registry as `osmen/big:v1` and removes it
/// locally, so that only a pull can bring it back. DOCKER_CONFIG holds the login, if any.
fn push_big_image(reg: &Registry, docker_config: Option<&std::path::Path>) -> String {
    let work = reg.dir.join("img");
    std::fs::create_dir_all(&work).unwrap();
    let cid = docker(&["create", "osmen-standin:test"]).1;
    assert!(
        docker(&[
            "cp",
            &format!("{cid}:/standin"),
            work.join("standin").to_str().unwrap()
        ])
        .0
    );
    docker(&["rm", &cid]);
    // Incompressible bytes, so the registry really carries 24 MiB.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let blob: Vec<u8> = (0..24 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(work.join("blob.bin"), blob).unwrap();
    let local = format!("osmenit-big-{}:v1", std::process::id());
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar -C {} -c standin blob.bin | docker import -c 'ENTRYPOINT [\"/standin\"]' - {local}",
            work.display()
        ))
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let remote = format!("{}/osmen/big:v1", reg.addr);
    assert!(docker(&["tag", &local, &remote]).0);
    let mut push = Command::new("docker");
    if let Some(d) = docker_config {
        push.env("DOCKER_CONFIG", d);
    }
    let o = push.args(["push", &remote]).output().unwrap();
    assert!(
        o.status.success(),
        "push: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    docker(&["rmi", &local, &remote]);
    assert!(!docker(&["image", "inspect", &remote]).0);
    remote
}

fn app_compose(image: &str) -> String {
    format!("services:\n  app:\n    image: {image}\n    command: [\"serve\"]\n")
}

#[test]
fn up_pulls_a_missing_image_with_progress_and_pull_pulls_again() {
    if !docker_ready() {
        return;
    }
    let Some(reg) = Registry::start("pull", None) else {
        return;
    };
    let image = push_big_image(&reg, None);
    let st = Stack::new("basic", "pull");
    std::fs::write(st.path("docker-compose.yml"), app_compose(&image)).unwrap();
    let (code, out, err) = st.run(&["up"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(err.contains(&format!("pulling {image} (for app)")), "{err}");
    assert!(
        err.contains(&format!("{image}: pulled 24")),
        "size in the summary: {err}"
    );
    assert!(
        err.contains("MiB/s") || err.contains("KiB/s"),
        "speed shown: {err}"
    );
    assert_eq!(
        inspect(&st.container("app"), "{{.State.Status}}"),
        "running"
    );
    let (code, out, err) = st.run(&["pull"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("pulled 1 image(s)"), "{out}");
    // Time-based policies: an image tagged just now is fresh for `daily`, and stale for
    // `every_1s` a few seconds later (the engine's LastTagTime; this engine records no
    // pull's time, so the test tags it).
    docker(&["tag", &image, &image]);
    let (code, out, err) = st.run(&["up", "--pull", "daily"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(!err.contains("pulling"), "daily: the image is fresh: {err}");
    std::thread::sleep(std::time::Duration::from_secs(2));
    let (code, out, err) = st.run(&["up", "--pull", "every_1s"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        err.contains(&format!("pulling {image} (for app)")),
        "every_1s: the image is stale: {err}"
    );
    docker(&["rmi", "-f", &image]);
}

#[test]
fn a_bad_image_stops_up_before_anything_is_created() {
    if !docker_ready() {
        return;
    }
    let Some(reg) = Registry::start("badtag", None) else {
        return;
    };
    let image = format!("{}/osmen/nothing:nope", reg.addr);
    let st = Stack::new("basic", "badtag");
    std::fs::write(
        st.path("docker-compose.yml"),
        format!(
            "services:\n  redis:\n    image: osmen-redis:test\n  app:\n    image: {image}\n    \
             depends_on: [redis]\n"
        ),
    )
    .unwrap();
    let (code, _, err) = st.run(&["up"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("app: cannot pull image {image}")),
        "{err}"
    );
    assert!(
        err.contains("manifest unknown") || err.contains("not found"),
        "registry's words: {err}"
    );
    assert!(err.contains("fix: check the image name and tag"), "{err}");
    let filter = format!("label=com.docker.compose.project={}", st.project);
    assert_eq!(
        docker(&["ps", "-aq", "--filter", &filter]).1,
        "",
        "nothing created"
    );
    assert!(!docker(&["network", "inspect", &format!("{}_default", st.project)]).0);

    let (code, _, err) = st.run(&["up", "--pull", "never"]);
    assert_eq!(code, 1);
    assert!(err.contains("pull policy is `never`"), "{err}");
}

#[test]
fn basic_auth_registry_uses_the_docker_config_and_fails_clearly_without() {
    if !docker_ready() {
        return;
    }
    let Some(reg) = Registry::start("auth", Some(("osmen", "s3cret-pw"))) else {
        return;
    };
    let cfg = reg.docker_config("osmen", "s3cret-pw");
    let image = push_big_image(&reg, Some(&cfg));
    let st = Stack::new("basic", "auth");
    std::fs::write(st.path("docker-compose.yml"), app_compose(&image)).unwrap();

    let empty = reg.dir.join("no-credentials");
    std::fs::create_dir_all(&empty).unwrap();
    let o = st
        .cmd(&["up"])
        .env("DOCKER_CONFIG", &empty)
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("app: cannot pull image"), "{err}");
    assert!(err.contains("fix: log in first"), "{err}");
    assert!(!err.contains("s3cret-pw"));

    let o = st.cmd(&["up"]).env("DOCKER_CONFIG", &cfg).output().unwrap();
    let (_, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains(&format!("{image}: pulled")), "{err}");
    assert!(!err.contains("s3cret-pw"), "a secret leaked: {err}");
    docker(&["rmi", "-f", &image]);
}

fn build_context(st: &Stack, failing: bool) -> std::path::PathBuf {
    let ctx = st.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let src = root().join("tests/fixtures/build");
    for f in ["Dockerfile", ".dockerignore", "hello.txt"] {
        std::fs::copy(src.join(f), ctx.join(f)).unwrap();
    }
    if failing {
        std::fs::write(
            ctx.join("Dockerfile.fail"),
            std::fs::read_to_string(src.join("Dockerfile.fail")).unwrap(),
        )
        .unwrap();
    }
    let cid = docker(&["create", "osmen-standin:test"]).1;
    assert!(
        docker(&[
            "cp",
            &format!("{cid}:/standin"),
            ctx.join("standin").to_str().unwrap()
        ])
        .0
    );
    docker(&["rm", &cid]);
    std::fs::write(ctx.join("big.bin"), vec![7u8; 8 << 20]).unwrap();
    std::fs::write(ctx.join("debug.log"), "noise").unwrap();
    ctx
}

#[test]
fn build_sections_are_built_with_dockerignore_and_tagged_like_compose() {
    if !docker_ready() {
        return;
    }
    let st = Stack::new("basic", "build");
    build_context(&st, false);
    std::fs::write(
        st.path("docker-compose.yml"),
        "services:\n  web:\n    build:\n      context: ./ctx\n      args: {GREETING: hello}\n      \
         labels: {io.osmen.test: built}\n",
    )
    .unwrap();
    let (code, out, err) = st.run(&["up"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let tag = format!("{}-web", st.project);
    assert!(err.contains(&format!("building {tag} for web")), "{err}");
    assert!(err.contains("(2 excluded by .dockerignore)"), "{err}");
    assert!(err.contains("Step 1/"), "build output streamed: {err}");
    // The 8 MiB file stayed out of the context: the image (which copies the whole
    // context) is far smaller than it.
    let size: u64 = inspect(&tag, "{{.Size}}").parse().unwrap();
    assert!(size < 4 << 20, "image is {size} bytes: big.bin was sent");
    assert_eq!(
        inspect(&tag, "{{index .Config.Labels \"io.osmen.test\"}}"),
        "built"
    );
    assert_eq!(
        inspect(&st.container("web"), "{{.State.Status}}"),
        "running"
    );
    let (code, out, err) = st.run(&["build"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("built 1 image(s)"), "{out}");
    docker(&["rmi", "-f", &tag]);
}

#[test]
fn a_failed_build_shows_the_failing_step_and_its_output() {
    if !docker_ready() {
        return;
    }
    let st = Stack::new("basic", "buildfail");
    build_context(&st, true);
    std::fs::write(
        st.path("docker-compose.yml"),
        "services:\n  web:\n    build: {context: ./ctx, dockerfile: Dockerfile.fail}\n",
    )
    .unwrap();
    let (code, _, err) = st.run(&["build", "web"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("web: build failed at Step 3/") && err.contains(" : RUN [\"/standin\""),
        "{err}"
    );
    assert!(err.contains("returned a non-zero code"), "{err}");
    assert!(
        err.contains("probe http://127.0.0.1:1/: Connection refused"),
        "step output: {err}"
    );
}

#[test]
fn doctor_here_and_with_a_dead_engine() {
    if !docker_ready() {
        return;
    }
    let f = root().join("tests/fixtures/stacks/basic/docker-compose.yml");
    let o = osmen().arg("-f").arg(&f).arg("doctor").output().unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    for name in [
        "compose", "runtime", "engine", "images", "ports", "disk", "gpu",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with("ok") && l.contains(name)),
            "{name}: {out}"
        );
    }
    let o = osmen()
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .arg("-f")
        .arg(&f)
        .arg("doctor")
        .output()
        .unwrap();
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("FAIL engine     cannot reach the Docker engine"),
        "{out}"
    );
    assert!(out.contains("ok   compose"), "{out}");
    // A GPU service on a machine without the driver: the gpu line fails with the fix.
    let gpu = root().join("tests/fixtures/compose/valid/full.yml");
    let o = osmen()
        .env("POSTGRES_PASSWORD", "x")
        .arg("-f")
        .arg(&gpu)
        .args(["--profile", "ollama", "doctor"])
        .output()
        .unwrap();
    let (out, _) = text(&o);
    if crate::util::nvml_absent() {
        assert!(
            out.contains("FAIL gpu        ollama reserve(s) an NVIDIA GPU but NVML not available"),
            "{out}"
        );
    }
}
