//! NVIDIA GPUs through NVML. Without a driver NVML fails to load: that is an answer
//! ("GPU: n/a" and why), never a crash.

use nvml_wrapper::Nvml;
use nvml_wrapper::error::NvmlError;

/// Why NVML gave no answer; the texts are the ones `doctor` and the console show.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("NVML not available ({0})")]
    NotAvailable(NvmlError),
    #[error("NVML loaded but the driver did not answer: {0}")]
    Driver(NvmlError),
    #[error("NVML cannot count devices: {0}")]
    Count(NvmlError),
    #[error("NVML device {index}: {source}")]
    Device { index: u32, source: NvmlError },
    /// A call during a sample failed.
    #[error(transparent)]
    Sample(NvmlError),
}

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
pub fn probe() -> Result<GpuProbe, GpuError> {
    let nvml = Nvml::init().map_err(GpuError::NotAvailable)?;
    let driver = nvml.sys_driver_version().map_err(GpuError::Driver)?;
    let count = nvml.device_count().map_err(GpuError::Count)?;
    let mut devices = Vec::new();
    for index in 0..count {
        let d = nvml
            .device_by_index(index)
            .map_err(|source| GpuError::Device { index, source })?;
        devices.push(GpuDevice {
            index,
            name: d.name().unwrap_or_else(|_| "unknown".into()),
            memory_total: d.memory_info().map(|m| m.total).unwrap_or(0),
        });
    }
    Ok(GpuProbe { driver, devices })
}

use crate::hub::GpuSample;
use crate::model::snapshot::{GpuProcess, GpuStats};

/// Where GPU samples come from: NVML on a real machine, a fake in tests.
pub trait GpuSource: Send {
    fn sample(&mut self) -> Result<Vec<GpuStats>, GpuError>;
}

/// NVML, loaded once and kept (calls block: run it on its own thread).
pub struct NvmlSource {
    nvml: Nvml,
}

impl NvmlSource {
    pub fn open() -> Result<NvmlSource, GpuError> {
        Ok(NvmlSource {
            nvml: Nvml::init().map_err(GpuError::NotAvailable)?,
        })
    }
}

impl GpuSource for NvmlSource {
    fn sample(&mut self) -> Result<Vec<GpuStats>, GpuError> {
        use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
        use nvml_wrapper::enums::device::UsedGpuMemory;
        let n = self.nvml.device_count().map_err(GpuError::Sample)?;
        let mut out = Vec::new();
        for index in 0..n {
            let d = self.nvml.device_by_index(index).map_err(GpuError::Sample)?;
            let mem = d.memory_info().map_err(GpuError::Sample)?;
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

/// The sample with what the hub needs to attribute each process: the text of its
/// `/proc/PID/cgroup` (which container) and `/proc/PID/cmdline` (which model an Ollama
/// runner serves), read here beside NVML's process list so the hub reads no file.
pub fn with_proc_files(gpus: Vec<GpuStats>) -> GpuSample {
    let mut s = GpuSample {
        gpus,
        ..Default::default()
    };
    for p in s.gpus.iter().flat_map(|g| &g.processes) {
        if let Ok(t) = std::fs::read_to_string(format!("/proc/{}/cgroup", p.pid)) {
            s.cgroups.insert(p.pid, t);
        }
        if let Ok(t) = std::fs::read_to_string(format!("/proc/{}/cmdline", p.pid)) {
            s.cmdlines.insert(p.pid, t);
        }
    }
    s
}

/// Samples GPUs each `period` on a thread of its own (NVML calls block). Without a
/// driver it reports "unavailable: <reason>" once and stops.
pub fn spawn(
    mut source: Result<Box<dyn GpuSource>, GpuError>,
    period: super::ticker::Ticker,
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
                    let _ = tx.blocking_send(Update::Gpus(with_proc_files(g)));
                    let _ = tx.blocking_send(Update::Source("gpu", Ok(())));
                }
                Err(e) => {
                    let _ = tx.blocking_send(Update::Source("gpu", Err(e.to_string())));
                }
            }
            // NVML is blocking: this thread sleeps the period in force now.
            std::thread::sleep(period.every());
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
            Err(e) => assert!(e.to_string().contains("NVML"), "{e}"),
        }
    }

    #[test]
    fn no_driver_is_one_clear_reason() {
        use super::{GpuSource, NvmlSource};
        match NvmlSource::open() {
            Ok(mut s) => assert!(s.sample().is_ok()),
            Err(e) => assert!(e.to_string().starts_with("NVML not available"), "{e}"),
        }
    }

    #[test]
    fn a_sample_carries_each_process_s_cgroup_and_command_line() {
        use crate::model::snapshot::{GpuProcess, GpuStats};
        let me = std::process::id();
        let p = |pid| GpuProcess {
            pid,
            ..Default::default()
        };
        let s = super::with_proc_files(vec![GpuStats {
            processes: vec![p(me), p(u32::MAX)],
            ..Default::default()
        }]);
        assert!(s.cgroups[&me].contains(':'), "{:?}", s.cgroups);
        assert!(!s.cmdlines[&me].is_empty());
        assert_eq!(s.cgroups.len(), 1, "a process that is gone has no text");
        assert_eq!(s.gpus[0].processes.len(), 2, "NVML's list is kept whole");
    }
}
