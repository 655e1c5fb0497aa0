//! The two small statistics every benchmark here reports with.

/// The middle value (the mean of the two middle ones for an even count; NaN for
/// none). Benchmarks report medians of repeated or paired runs: one disturbed run
/// on a shared machine moves a mean, not a median.
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// `x` to three decimals, as ratios and seconds appear in the JSON reports.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_none() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(round3(0.123456), 0.123);
    }
}
