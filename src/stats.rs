//! Counters and timing histograms shared by the control `stats` reply,
//! `/state` and `/metrics`.
//!
//! Plain integers owned by the event loop (it is the only thread), so no
//! atomics and no locks. Nothing here does I/O.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Longest duration a histogram records; longer samples are clamped. A
/// camera call that blocks the loop for a minute is already a disaster, the
/// exact figure no longer matters.
const MAX_RECORDED_MICROS: u64 = 60_000_000;

/// Event counters, monotonic since start.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    /// Bytes read from all client sockets.
    pub bytes_in: u64,
    /// Bytes written to all client sockets.
    pub bytes_out: u64,
    /// Control requests and HTTP requests handled.
    pub requests: u64,
    /// Requests answered with an error, and connections dropped for cause.
    pub errors: u64,
    /// Snapshot files written.
    pub snapshots: u64,
    /// Snapshot writes that failed.
    pub snapshot_errors: u64,
    /// Connections accepted on every listener.
    pub connections_accepted: u64,
    /// Connections refused because `--max-clients` was reached.
    pub connections_refused: u64,
    /// The most clients connected at once.
    pub clients_peak: u64,
    /// Frames written to stream viewers.
    pub frames_sent: u64,
    /// Frames a stream viewer skipped because its socket was still busy.
    pub frames_dropped: u64,
    /// Stream viewers dropped after --stream-stall-timeout without write progress.
    pub viewers_dropped: u64,
    /// Other clients dropped: no write progress for --output-stall-timeout, or over the hard cap.
    pub clients_dropped: u64,
    /// Failed `auth` attempts and HTTP requests with a wrong token.
    pub auth_failures: u64,
}

/// A latency histogram in microseconds.
pub struct TimingHistogram {
    histogram: Histogram<u64>,
    sum_micros: u64,
}

impl Default for TimingHistogram {
    fn default() -> Self {
        TimingHistogram {
            // Two significant digits: plenty for p50/p99, and a few KiB.
            histogram: Histogram::new_with_bounds(1, MAX_RECORDED_MICROS, 2)
                .expect("constant histogram bounds are valid"),
            sum_micros: 0,
        }
    }
}

impl TimingHistogram {
    /// Records one sample.
    pub fn record(&mut self, elapsed: Duration) {
        let micros = (elapsed.as_micros() as u64).clamp(1, MAX_RECORDED_MICROS);
        self.histogram.saturating_record(micros);
        self.sum_micros += micros;
    }

    /// Records `count` samples of the same value.
    pub fn record_n(&mut self, elapsed: Duration, count: u64) {
        let micros = (elapsed.as_micros() as u64).clamp(1, MAX_RECORDED_MICROS);
        self.histogram.saturating_record_n(micros, count);
        self.sum_micros += micros * count;
    }

    /// The value at `quantile` (0.0..=1.0) in µs, 0 when empty.
    pub fn quantile_micros(&self, quantile: f64) -> u64 {
        if self.histogram.is_empty() {
            0
        } else {
            self.histogram.value_at_quantile(quantile)
        }
    }

    /// The largest sample in µs, 0 when empty.
    pub fn max_micros(&self) -> u64 {
        self.histogram.max()
    }

    /// The underlying histogram.
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.histogram
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// Sum of all samples in µs.
    pub fn sum_micros(&self) -> u64 {
        self.sum_micros
    }

    /// Cumulative counts at the given upper bounds (µs, ascending), for a
    /// Prometheus histogram: how many samples were `<= bound`. One pass over
    /// the recorded values, whatever the number of bounds.
    pub fn cumulative_counts(&self, bounds_micros: &[u64]) -> Vec<(u64, u64)> {
        let mut counts = vec![0u64; bounds_micros.len()];
        for value in self.histogram.iter_recorded() {
            let at = value.value_iterated_to();
            // The first bound this value falls under, and every later one.
            if let Some(first) = bounds_micros.iter().position(|&bound| at <= bound) {
                counts[first] += value.count_at_value();
            }
        }
        let mut running = 0;
        bounds_micros
            .iter()
            .zip(counts)
            .map(|(&bound, count)| {
                running += count;
                (bound, running)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_follow_the_samples() {
        let mut histogram = TimingHistogram::default();
        assert_eq!(histogram.quantile_micros(0.5), 0);
        for micros in 1..=100 {
            histogram.record(Duration::from_micros(micros));
        }
        assert_eq!(histogram.count(), 100);
        assert!((49..=51).contains(&histogram.quantile_micros(0.5)));
        assert!(histogram.quantile_micros(0.99) >= 98);
        assert_eq!(histogram.max_micros(), 100);
        assert_eq!(
            histogram.cumulative_counts(&[10, 1000]),
            vec![(10, 10), (1000, 100)]
        );
    }
}
