//! Bounded history per series: one hour at collection resolution, then one-minute
//! averages for a day. Pure data: the hub persists it.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

pub const FINE_POINTS: usize = 3600;
pub const COARSE_POINTS: usize = 1440;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Series {
    /// (seconds since the epoch, value), oldest first.
    pub fine: VecDeque<(f64, f64)>,
    /// One-minute averages.
    pub coarse: VecDeque<(f64, f64)>,
    #[serde(skip)]
    bucket: Option<(f64, f64, u32)>,
}

impl Series {
    pub fn push(&mut self, t: f64, v: f64) {
        if !v.is_finite() {
            return;
        }
        self.fine.push_back((t, v));
        while self.fine.len() > FINE_POINTS {
            self.fine.pop_front();
        }
        let minute = (t / 60.0).floor() * 60.0;
        match &mut self.bucket {
            Some((m, sum, n)) if *m == minute => {
                *sum += v;
                *n += 1;
            }
            other => {
                if let Some((m, sum, n)) = other.take() {
                    self.coarse.push_back((m, sum / f64::from(n)));
                    while self.coarse.len() > COARSE_POINTS {
                        self.coarse.pop_front();
                    }
                }
                *other = Some((minute, v, 1));
            }
        }
    }

    pub fn last(&self) -> Option<f64> {
        self.fine.back().map(|x| x.1)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct History {
    pub series: BTreeMap<String, Series>,
}

impl History {
    pub fn push(&mut self, key: &str, t: f64, v: f64) {
        self.series.entry(key.to_string()).or_default().push(t, v);
    }

    /// Only the points newer than `since`, for persisting the recent past.
    pub fn recent(&self, since: f64) -> History {
        History {
            series: self
                .series
                .iter()
                .map(|(k, s)| {
                    (
                        k.clone(),
                        Series {
                            fine: s
                                .fine
                                .iter()
                                .filter(|(t, _)| *t >= since)
                                .copied()
                                .collect(),
                            coarse: s.coarse.clone(),
                            bucket: None,
                        },
                    )
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_with_minute_averages() {
        let mut s = Series::default();
        for i in 0..(FINE_POINTS + 500) {
            s.push(i as f64, (i % 60) as f64);
        }
        assert_eq!(s.fine.len(), FINE_POINTS);
        assert_eq!(s.fine.front().unwrap().0, 500.0);
        // Each full minute averages 0..59 = 29.5.
        assert!(s.coarse.iter().all(|(_, v)| (*v - 29.5).abs() < 1e-9));
        assert_eq!(
            s.coarse.len(),
            (FINE_POINTS + 500) / 60,
            "completed minutes only"
        );
        s.push(1e9, f64::NAN);
        assert_eq!(
            s.last(),
            Some(((FINE_POINTS + 499) % 60) as f64),
            "NaN is not stored"
        );
    }
}
