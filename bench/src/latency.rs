//! Latency record: every verification's duration in microseconds, kept exactly (a few
//! hundred thousand `u32`s at most) and sorted once at the end. No bucketing, so the
//! percentiles are exact nearest-rank values.

use std::time::Duration;

/// One worker's raw samples, in completion order.
#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<u32>);

impl Samples {
    pub fn with_capacity(n: usize) -> Self {
        Samples(Vec::with_capacity(n))
    }

    pub fn record(&mut self, d: Duration) {
        self.0
            .push(u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
    }
}

/// All workers' samples merged and sorted.
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    sorted_us: Vec<u32>,
}

impl Latencies {
    pub fn merge(parts: impl IntoIterator<Item = Samples>) -> Self {
        let mut sorted_us: Vec<u32> = parts.into_iter().flat_map(|s| s.0).collect();
        sorted_us.sort_unstable();
        Latencies { sorted_us }
    }

    pub fn len(&self) -> usize {
        self.sorted_us.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sorted_us.is_empty()
    }

    /// Nearest-rank percentile (`p` in 0..=100) in milliseconds; `None` without samples.
    pub fn percentile_ms(&self, p: f64) -> Option<f64> {
        let n = self.sorted_us.len();
        if n == 0 {
            return None;
        }
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        let idx = rank.clamp(1, n) - 1;
        self.sorted_us.get(idx).map(|&us| f64::from(us) / 1000.0)
    }

    pub fn max_ms(&self) -> Option<f64> {
        self.sorted_us.last().map(|&us| f64::from(us) / 1000.0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn of(us: &[u32]) -> Samples {
        let mut s = Samples::default();
        for &u in us {
            s.record(Duration::from_micros(u.into()));
        }
        s
    }

    #[test]
    fn percentiles_are_nearest_rank_over_all_workers() {
        let l = Latencies::merge([of(&[5000, 1000, 3000]), of(&[2000, 4000]), of(&[])]);
        assert_eq!(l.len(), 5);
        assert_eq!(l.percentile_ms(50.0), Some(3.0));
        assert_eq!(l.percentile_ms(90.0), Some(5.0));
        assert_eq!(l.percentile_ms(0.0), Some(1.0));
        assert_eq!(l.max_ms(), Some(5.0));
    }

    #[test]
    fn no_samples_give_no_percentiles() {
        let l = Latencies::merge([Samples::default()]);
        assert!(l.is_empty());
        assert_eq!(l.percentile_ms(99.0), None);
        assert_eq!(l.max_ms(), None);
    }
}
