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
