//! NVIDIA GPUs through NVML. Without a driver NVML fails to load: that is an answer
//! ("GPU: n/a" and why), never a crash.

use nvml_wrapper::Nvml;

#[derive(Debug, Clone, PartialEq)]
pub struct GpuDevice {
    pub index: u32,
    pub name: String,
    pub memory_total: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GpuProbe {
    pub driver: String,
    pub devices: Vec<GpuDevice>,
}

/// Loads NVML and lists the devices; the error says why NVML is not usable.
pub fn probe() -> Result<GpuProbe, String> {
    let nvml = Nvml::init().map_err(|e| format!("NVML not available ({e})"))?;
    let driver = nvml
        .sys_driver_version()
        .map_err(|e| format!("NVML loaded but the driver did not answer: {e}"))?;
    let count = nvml
        .device_count()
        .map_err(|e| format!("NVML cannot count devices: {e}"))?;
    let mut devices = Vec::new();
    for index in 0..count {
        let d = nvml
            .device_by_index(index)
            .map_err(|e| format!("NVML device {index}: {e}"))?;
        devices.push(GpuDevice {
            index,
            name: d.name().unwrap_or_else(|_| "unknown".into()),
            memory_total: d.memory_info().map(|m| m.total).unwrap_or(0),
        });
    }
    Ok(GpuProbe { driver, devices })
}

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

use crate::model::snapshot::{GpuProcess, GpuStats};

/// Where GPU samples come from: NVML on a real machine, a fake in tests.
pub trait GpuSource: Send {
    fn sample(&mut self) -> Result<Vec<GpuStats>, String>;
}

/// NVML, loaded once and kept (calls block: run it on its own thread).
pub struct NvmlSource {
    nvml: Nvml,
}

impl NvmlSource {
    pub fn open() -> Result<NvmlSource, String> {
        Ok(NvmlSource {
            nvml: Nvml::init().map_err(|e| format!("NVML not available ({e})"))?,
        })
    }
}

impl GpuSource for NvmlSource {
    fn sample(&mut self) -> Result<Vec<GpuStats>, String> {
        use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
        use nvml_wrapper::enums::device::UsedGpuMemory;
        let n = self.nvml.device_count().map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for index in 0..n {
            let d = self
                .nvml
                .device_by_index(index)
                .map_err(|e| e.to_string())?;
            let mem = d.memory_info().map_err(|e| e.to_string())?;
            let util = d.utilization_rates().ok();
            let mut processes = Vec::new();
            for p in d
                .running_compute_processes()
                .unwrap_or_default()
                .into_iter()
                .chain(d.running_graphics_processes().unwrap_or_default())
            {
                let used = match p.used_gpu_memory {
                    UsedGpuMemory::Used(b) => b,
                    UsedGpuMemory::Unavailable => 0,
                };
                processes.push(GpuProcess {
                    pid: p.pid,
                    used_memory_bytes: used,
                    container: None,
                    service: None,
                    model_blob: None,
                });
            }
            out.push(GpuStats {
                index,
                name: d.name().unwrap_or_default(),
                uuid: d.uuid().unwrap_or_default(),
                memory_used_bytes: mem.used,
                memory_total_bytes: mem.total,
                gpu_util_percent: util.as_ref().map(|u| u.gpu),
                memory_util_percent: util.as_ref().map(|u| u.memory),
                temperature_c: d.temperature(TemperatureSensor::Gpu).ok(),
                power_w: d.power_usage().ok().map(|mw| f64::from(mw) / 1000.0),
                power_limit_w: d
                    .enforced_power_limit()
                    .ok()
                    .map(|mw| f64::from(mw) / 1000.0),
                fan_percent: d.fan_speed(0).ok(),
                processes,
            });
        }
        Ok(out)
    }
}

/// Maps each GPU process to its container and compose service: PID -> cgroup file ->
/// container id -> the project's container list. `read_cgroup` reads
/// `/proc/<pid>/cgroup` (a fixture in tests).
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

/// Samples GPUs each `period` on a thread of its own (NVML calls block). Without a
/// driver it reports "unavailable: <reason>" once and stops.
pub fn spawn(
    mut source: Result<Box<dyn GpuSource>, String>,
    period: std::time::Duration,
    tx: tokio::sync::mpsc::Sender<crate::hub::Update>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    use crate::hub::Update;
    std::thread::spawn(move || {
        let src = match &mut source {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.blocking_send(Update::Source("gpu", Err(format!("unavailable: {e}"))));
                return;
            }
        };
        while !*stop.borrow() {
            match src.sample() {
                Ok(g) => {
                    let _ = tx.blocking_send(Update::Gpus(g));
                    let _ = tx.blocking_send(Update::Source("gpu", Ok(())));
                }
                Err(e) => {
                    let _ = tx.blocking_send(Update::Source("gpu", Err(e)));
                }
            }
            std::thread::sleep(period);
        }
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn probe_answers_without_panicking() {
        // Without a driver (CI) this is an error naming NVML; with one, a device list.
        match super::probe() {
            Ok(p) => assert!(!p.driver.is_empty()),
            Err(e) => assert!(e.contains("NVML"), "{e}"),
        }
    }
}

#[cfg(test)]
mod mapping_tests {
    use super::*;

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

    struct Fake(Vec<GpuStats>);
    impl GpuSource for Fake {
        fn sample(&mut self) -> Result<Vec<GpuStats>, String> {
            Ok(self.0.clone())
        }
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
        let mut src = Fake(vec![GpuStats {
            name: "NVIDIA H200".into(),
            memory_total_bytes: 141 << 30,
            processes: vec![proc_(100, 8000), proc_(200, 500), proc_(300, 42)],
            ..Default::default()
        }]);
        let mut gpus = src.sample().unwrap();
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

    #[test]
    fn no_driver_is_one_clear_reason() {
        match NvmlSource::open() {
            Ok(mut s) => assert!(s.sample().is_ok()),
            Err(e) => assert!(e.starts_with("NVML not available"), "{e}"),
        }
    }
}
