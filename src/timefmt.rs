//! UTC wall-clock formatting without a date crate.
//!
//! Used for `{ts}` snapshot names and the time stamped into synthetic frames.
//! The event loop itself runs on the monotonic clock; wall time is only
//! ever displayed.

use std::time::{SystemTime, UNIX_EPOCH};

/// A broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    /// Year, e.g. 2026.
    pub year: i64,
    /// 1..=12.
    pub month: u32,
    /// 1..=31.
    pub day: u32,
    /// 0..=23.
    pub hour: u32,
    /// 0..=59.
    pub minute: u32,
    /// 0..=59.
    pub second: u32,
    /// 0..=999.
    pub millisecond: u32,
}

impl UtcTime {
    /// The current time.
    pub fn now() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self::from_unix_millis(since_epoch.as_millis() as i64)
    }

    /// Converts milliseconds since the Unix epoch (Howard Hinnant's
    /// `civil_from_days`).
    pub fn from_unix_millis(millis: i64) -> Self {
        let seconds = millis.div_euclid(1000);
        let days = seconds.div_euclid(86_400);
        let second_of_day = seconds.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let day_of_era = z.rem_euclid(146_097);
        let year_of_era =
            (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let mp = (5 * day_of_year + 2) / 153;
        let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        UtcTime {
            year,
            month,
            day,
            hour: (second_of_day / 3600) as u32,
            minute: (second_of_day / 60 % 60) as u32,
            second: (second_of_day % 60) as u32,
            millisecond: millis.rem_euclid(1000) as u32,
        }
    }

    /// `20261127T064001.123Z`: sortable, and safe in file names (no colons).
    pub fn compact(&self) -> String {
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.millisecond
        )
    }

    /// `2026-11-27 06:40:01.123Z`, for display.
    pub fn display(&self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.millisecond
        )
    }
}

/// Microseconds since the Unix epoch as `seconds.micros`, always six digits
/// after the point: `1764620000123456` → `1764620000.123456`. This is how
/// `X-Timestamp` and the JPEG comment's `ts=` carry a grab time.
pub fn unix_micros_text(micros: u64) -> String {
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// Wall-clock time as microseconds since the Unix epoch (0 before it).
pub fn unix_micros(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_micros() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants_convert() {
        assert_eq!(
            UtcTime::from_unix_millis(0).compact(),
            "19700101T000000.000Z"
        );
        // 2024-02-29 12:34:56.789 UTC, a leap day.
        let leap = UtcTime::from_unix_millis(1_709_210_096_789);
        assert_eq!(leap.display(), "2024-02-29 12:34:56.789Z");
    }

    #[test]
    fn unix_micros_print_with_six_digits() {
        assert_eq!(unix_micros_text(1_764_620_000_123_456), "1764620000.123456");
        assert_eq!(unix_micros_text(1_764_620_000_000_007), "1764620000.000007");
        assert_eq!(unix_micros_text(0), "0.000000");
    }
}
