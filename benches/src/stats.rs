//! Medians and percentiles of samples, and the ratio of two paired series.

/// Median and spread of a series of samples.
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    pub p10: f64,
    pub median: f64,
    pub p90: f64,
    pub n: usize,
}

/// The `q` quantile (0..=1) of sorted samples, linearly interpolated.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

pub fn sorted(xs: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v
}

pub fn summarize(xs: &[f64]) -> Summary {
    let s = sorted(xs);
    Summary {
        p10: quantile(&s, 0.10),
        median: quantile(&s, 0.5),
        p90: quantile(&s, 0.90),
        n: s.len(),
    }
}

/// Per-round ratios `a[i] / b[i]` of two series measured side by side.
pub fn ratios(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x / y).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_quantile_odd_count_median_is_middle() {
        assert_eq!(quantile(&[1.0, 2.0, 9.0], 0.5), 2.0);
    }

    #[test]
    fn test_quantile_between_samples_interpolates() {
        assert_eq!(quantile(&[0.0, 10.0], 0.9), 9.0);
    }

    #[test]
    fn test_summarize_unsorted_input_sorts_first() {
        let s = summarize(&[5.0, 1.0, 3.0]);
        assert_eq!((s.p10, s.median, s.n), (1.4, 3.0, 3));
    }
}
