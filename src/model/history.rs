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
        // Each ring is allocated once at its full size and never moved: growing by
        // doubling left a trail of freed buffers that a 30-minute soak saw as resident,
        // fragmented heap. Pages not yet written are not resident.
        reserve_full(&mut self.fine, FINE_POINTS);
        while self.fine.len() >= FINE_POINTS {
            self.fine.pop_front();
        }
        self.fine.push_back((t, v));
        let minute = (t / 60.0).floor() * 60.0;
        match &mut self.bucket {
            Some((m, sum, n)) if *m == minute => {
                *sum += v;
                *n += 1;
            }
            other => {
                if let Some((m, sum, n)) = other.take() {
                    reserve_full(&mut self.coarse, COARSE_POINTS);
                    while self.coarse.len() >= COARSE_POINTS {
                        self.coarse.pop_front();
                    }
                    self.coarse.push_back((m, sum / f64::from(n)));
                }
                *other = Some((minute, v, 1));
            }
        }
    }

    pub fn last(&self) -> Option<f64> {
        self.fine.back().map(|x| x.1)
    }
}

fn reserve_full(ring: &mut VecDeque<(f64, f64)>, points: usize) {
    if ring.capacity() < points {
        ring.reserve_exact(points.saturating_sub(ring.len()));
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

/// The points newer than `since`, serialized as `History::recent(since)` would be, but
/// straight from the history: persisting copies nothing and builds no whole-file string.
pub struct RecentView<'a> {
    pub history: &'a History,
    pub since: f64,
}

impl Serialize for RecentView<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        struct Series_<'a>(&'a Series, f64);
        impl Serialize for Series_<'_> {
            fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
                struct Since<'a>(&'a VecDeque<(f64, f64)>, f64);
                impl Serialize for Since<'_> {
                    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
                        ser.collect_seq(self.0.iter().filter(|(t, _)| *t >= self.1))
                    }
                }
                let mut st = ser.serialize_struct("Series", 2)?;
                st.serialize_field("fine", &Since(&self.0.fine, self.1))?;
                st.serialize_field("coarse", &self.0.coarse)?;
                st.end()
            }
        }
        struct Map<'a>(&'a BTreeMap<String, Series>, f64);
        impl Serialize for Map<'_> {
            fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
                ser.collect_map(self.0.iter().map(|(k, s)| (k, Series_(s, self.1))))
            }
        }
        let mut st = ser.serialize_struct("History", 1)?;
        st.serialize_field("series", &Map(&self.history.series, self.since))?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_writes_what_recent_would() {
        let mut h = History::default();
        for i in 0..200 {
            h.push("a", i as f64 * 7.0, i as f64);
            if i % 3 == 0 {
                h.push("b", i as f64 * 7.0, -(i as f64));
            }
        }
        let since = 600.0;
        let view = serde_json::to_string(&RecentView { history: &h, since }).unwrap();
        assert_eq!(view, serde_json::to_string(&h.recent(since)).unwrap());
        let back: History = serde_json::from_str(&view).unwrap();
        assert_eq!(back.series["a"].fine.front().unwrap().0, 602.0);
        assert!(!back.series["a"].coarse.is_empty());
    }

    #[test]
    fn rings_are_allocated_once() {
        let mut s = Series::default();
        s.push(0.0, 1.0);
        let fine = s.fine.capacity();
        assert!(fine >= FINE_POINTS);
        for i in 1..(FINE_POINTS * 3) {
            s.push(i as f64, 1.0);
        }
        assert_eq!(s.fine.capacity(), fine, "the fine ring never moved");
        assert!(s.coarse.capacity() >= COARSE_POINTS);
        let coarse_now = s.coarse.capacity();
        for i in (FINE_POINTS * 3)..(FINE_POINTS * 3 + 60 * COARSE_POINTS * 2) {
            s.push(i as f64, 1.0);
        }
        assert_eq!(
            s.coarse.capacity(),
            coarse_now,
            "the coarse ring never moved"
        );
        assert_eq!(s.coarse.len(), COARSE_POINTS);
    }

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
