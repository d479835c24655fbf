//! `benches/gpu-check.sh`, the comparison run on a lent GPU machine, checked here with a
//! stand-in `nvidia-smi` (printing the CSV the real one prints for those queries) and a
//! stand-in osmen (printing a `status --json`): figures within tolerance pass, a memory
//! figure 300 MiB off (NVML's reserved memory counted as used, say) fails with the table.

use std::path::Path;
use std::process::Command;

fn fake(dir: &Path, name: &str, body: &str) {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    Command::new("chmod").arg("+x").arg(&p).status().unwrap();
}

fn run(used_mib: u64) -> (i32, String) {
    let dir =
        std::env::temp_dir().join(format!("osmen-gpu-check-{}-{used_mib}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    fake(
        &dir,
        "nvidia-smi",
        r#"case "$*" in
  -L) echo "GPU 0: NVIDIA H200 (UUID: GPU-abc)";;
  *query-gpu=index,uuid*) echo "0, GPU-abc";;
  *query-gpu=*) echo "0, NVIDIA H200, 143771, 4521, 37, 41, 118.52";;
  *query-compute-apps=*) echo "GPU-abc, 4242, 4000";;
esac"#,
    );
    let mib = 1024 * 1024u64;
    let status = serde_json::json!({
        "gpus": [{
            "index": 0, "name": "NVIDIA H200", "uuid": "GPU-abc",
            "memory_used_bytes": used_mib * mib, "memory_total_bytes": 143771 * mib,
            "gpu_util_percent": 35, "temperature_c": 41, "power_w": 120.1,
            "processes": [{"pid": 4242, "used_memory_bytes": 4000 * mib}]
        }],
        "sources": {"gpu": {"status": "ok"}}
    });
    std::fs::write(dir.join("status.json"), status.to_string()).unwrap();
    fake(
        &dir,
        "osmen",
        &format!("cat {}", dir.join("status.json").display()),
    );
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap());
    let o = Command::new("bash")
        .arg(crate::util::root().join("benches/gpu-check.sh"))
        .env("PATH", path)
        .env("OSMEN", dir.join("osmen"))
        .output()
        .unwrap();
    let (out, err) = crate::util::text(&o);
    let _ = std::fs::remove_dir_all(&dir);
    (o.status.code().unwrap_or(-1), format!("{out}{err}"))
}

#[test]
fn gpu_check_passes_close_figures_and_fails_a_far_one() {
    let (code, out) = run(4521 + 40);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("7 of 7 figures agree"), "{out}");
    assert!(out.contains("gpu 0 pid 4242 used_memory MiB"), "{out}");
    let (code, out) = run(4521 + 300);
    assert_eq!(code, 1, "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("gpu 0 memory.used MiB"))
        .unwrap_or_default();
    assert!(
        line.contains("4521 / 4521") && line.contains("4821") && line.ends_with("OFF"),
        "{out}"
    );
}
