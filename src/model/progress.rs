//! Image pull progress folded from the engine's per-layer events: bytes done and total
//! per layer, overall percent. Speed is bytes over the time the caller measured.

use std::collections::BTreeMap;

/// One progress message of a pull, as the engine sends it per layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerEvent {
    pub layer: String,
    pub status: String,
    pub current: Option<u64>,
    pub total: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Layer {
    current: u64,
    total: Option<u64>,
    done: bool,
    status: String,
}

/// The state of one image's pull.
#[derive(Debug, Clone, Default)]
pub struct PullTracker {
    layers: BTreeMap<String, Layer>,
}

impl PullTracker {
    pub fn apply(&mut self, ev: &LayerEvent) {
        // Messages without a layer id (`Pulling from ...`, `Digest: ...`) carry no bytes.
        if ev.layer.is_empty() || ev.status.starts_with("Pulling from") {
            return;
        }
        let l = self.layers.entry(ev.layer.clone()).or_default();
        l.status = ev.status.clone();
        match ev.status.as_str() {
            "Downloading" => {
                if let Some(c) = ev.current {
                    l.current = c;
                }
                if ev.total.is_some() {
                    l.total = ev.total;
                }
            }
            "Download complete" | "Verifying Checksum" | "Extracting" => {
                if let Some(t) = l.total {
                    l.current = t;
                }
            }
            "Pull complete" | "Already exists" => {
                l.done = true;
                if let Some(t) = l.total {
                    l.current = t;
                }
            }
            _ => {}
        }
    }

    pub fn layers(&self) -> usize {
        self.layers.len()
    }

    pub fn layers_done(&self) -> usize {
        self.layers.values().filter(|l| l.done).count()
    }

    /// Bytes downloaded so far over all layers.
    pub fn bytes_done(&self) -> u64 {
        self.layers.values().map(|l| l.current).sum()
    }

    /// Total bytes of the layers whose size is known.
    pub fn bytes_total(&self) -> u64 {
        self.layers.values().filter_map(|l| l.total).sum()
    }

    /// Overall percent (0-100) of known bytes; 100 once every layer is done.
    pub fn percent(&self) -> f64 {
        if !self.layers.is_empty() && self.layers.values().all(|l| l.done) {
            return 100.0;
        }
        let total = self.bytes_total();
        if total == 0 {
            0.0
        } else {
            (self.bytes_done() as f64 / total as f64 * 100.0).min(100.0)
        }
    }

    /// Per-layer lines: `id status done/total`.
    pub fn layer_lines(&self) -> Vec<(String, String, u64, Option<u64>)> {
        self.layers
            .iter()
            .map(|(id, l)| (id.clone(), l.status.clone(), l.current, l.total))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(layer: &str, status: &str, cur: Option<u64>, total: Option<u64>) -> LayerEvent {
        LayerEvent {
            layer: layer.into(),
            status: status.into(),
            current: cur,
            total,
        }
    }

    #[test]
    fn folds_layers_into_bytes_and_percent() {
        let mut t = PullTracker::default();
        t.apply(&ev("v1", "Pulling from osmen/standin", None, None));
        t.apply(&ev("a", "Pulling fs layer", None, None));
        t.apply(&ev("b", "Already exists", None, None));
        t.apply(&ev("a", "Downloading", Some(250), Some(1000)));
        assert_eq!((t.bytes_done(), t.bytes_total()), (250, 1000));
        assert_eq!(t.percent(), 25.0);
        t.apply(&ev("a", "Downloading", Some(1000), Some(1000)));
        t.apply(&ev("a", "Extracting", Some(10), Some(1000)));
        assert_eq!(t.bytes_done(), 1000);
        t.apply(&ev("a", "Pull complete", None, None));
        assert_eq!((t.layers(), t.layers_done()), (2, 2));
        assert_eq!(t.percent(), 100.0);
    }
}

/// What happens to the stack's images, for the CLI's progress display and the console.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageEvent {
    PullStarted {
        image: String,
        services: Vec<String>,
    },
    Layer {
        image: String,
        event: LayerEvent,
    },
    Pulled {
        image: String,
    },
    BuildStarted {
        service: String,
        image: String,
        files: usize,
        bytes: u64,
        excluded: usize,
    },
    BuildOutput {
        service: String,
        line: String,
    },
    Built {
        service: String,
        image: String,
    },
    /// Something the operator should know that is not an error (an unsupported
    /// credential helper, say).
    Note(String),
    /// A service's image cannot be pulled (or may not be): the registry's whole message
    /// and the fix, one event per service.
    PullFailed {
        service: String,
        image: String,
        message: String,
    },
}
