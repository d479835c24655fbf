//! GPU processes to compose services: PID -> cgroup text (read by the collector) ->
//! container id -> the project's container list, and the VRAM each service holds.

use crate::model::snapshot::GpuStats;

/// The container id in a `/proc/<pid>/cgroup` file: Docker and containerd paths, cgroup
/// v1 (`12:memory:/docker/<id>`) and v2 (`0::/system.slice/docker-<id>.scope`,
/// `.../cri-containerd-<id>.scope`, `/kubepods/.../<id>`).
pub fn container_id_from_cgroup(text: &str) -> Option<String> {
    for line in text.lines() {
        let path = line.splitn(3, ':').nth(2).unwrap_or("");
        for seg in path.split('/').rev() {
            let seg = seg.trim_end_matches(".scope");
            let id = seg.rsplit_once('-').map(|(_, id)| id).unwrap_or(seg);
            if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Some(id.to_string());
            }
        }
    }
    None
}

/// Maps each GPU process to its container and compose service: PID -> cgroup file ->
/// container id -> the project's container list. `read_cgroup` gives the text of
/// `/proc/<pid>/cgroup` as the collector read it (a fixture in tests).
pub fn attribute(
    gpus: &mut [GpuStats],
    containers: &[(String, String, String)],
    read_cgroup: impl Fn(u32) -> Option<String>,
) {
    for g in gpus.iter_mut() {
        for p in g.processes.iter_mut() {
            let Some(id) = read_cgroup(p.pid).and_then(|t| container_id_from_cgroup(&t)) else {
                continue;
            };
            if let Some((_, name, service)) = containers.iter().find(|(cid, _, _)| *cid == id) {
                p.container = Some(name.clone());
                p.service = Some(service.clone());
            }
        }
    }
}

/// VRAM per compose service, summed over devices and processes.
pub fn vram_by_service(gpus: &[GpuStats]) -> std::collections::BTreeMap<String, u64> {
    let mut m = std::collections::BTreeMap::new();
    for g in gpus {
        for p in &g.processes {
            if let Some(s) = &p.service {
                *m.entry(s.clone()).or_insert(0) += p.used_memory_bytes;
            }
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::snapshot::GpuProcess;

    const ID: &str = "3f2a9c4b1e7d8f60a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2";

    #[test]
    fn cgroup_path_forms() {
        let fixtures = [
            format!("12:memory:/docker/{ID}\n11:cpu,cpuacct:/docker/{ID}\n"),
            format!("0::/system.slice/docker-{ID}.scope\n"),
            format!("0::/system.slice/containerd.service/cri-containerd-{ID}.scope\n"),
            format!(
                "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-{ID}.scope\n"
            ),
            format!("1:name=systemd:/kubepods/burstable/pod0c1/{ID}\n"),
        ];
        for f in &fixtures {
            assert_eq!(container_id_from_cgroup(f).as_deref(), Some(ID), "{f}");
        }
        assert_eq!(
            container_id_from_cgroup("0::/user.slice/user-1000.slice/session-2.scope\n"),
            None
        );
        assert_eq!(container_id_from_cgroup(""), None);
    }

    #[test]
    fn vram_is_attributed_to_services() {
        let proc_ = |pid, mb: u64| GpuProcess {
            pid,
            used_memory_bytes: mb << 20,
            container: None,
            service: None,
            model_blob: None,
        };
        let mut gpus = vec![GpuStats {
            name: "NVIDIA H200".into(),
            memory_total_bytes: 141 << 30,
            processes: vec![proc_(100, 8000), proc_(200, 500), proc_(300, 42)],
            ..Default::default()
        }];
        let containers = vec![(
            ID.to_string(),
            "osmen-ollama".to_string(),
            "ollama".to_string(),
        )];
        attribute(&mut gpus, &containers, |pid| match pid {
            100 | 200 => Some(format!("0::/system.slice/docker-{ID}.scope\n")),
            _ => Some("0::/user.slice/session-1.scope\n".into()),
        });
        assert_eq!(gpus[0].processes[0].service.as_deref(), Some("ollama"));
        assert_eq!(
            gpus[0].processes[2].service, None,
            "a host process stays unattributed"
        );
        assert_eq!(vram_by_service(&gpus)["ollama"], 8500 << 20);
    }
}
