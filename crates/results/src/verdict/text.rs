//! How the verdict writes its numbers: seconds, ratios, MiB, minutes, powers of ten.

use crate::summary::thousands;

pub(super) fn seconds(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.2} s")
    } else {
        format!("{s:.1} s")
    }
}

/// `a` as a multiple of `b`'s time ("0.93x").
pub(super) fn ratio(a: f64, b: f64) -> String {
    format!("{:.2}x", a / b)
}

pub(super) fn times_over(a: f64, b: f64) -> String {
    format!("{:.1}x", a / b)
}

pub(super) fn mib(bytes: u64) -> String {
    let m = bytes as f64 / (1024.0 * 1024.0);
    if m < 100.0 {
        format!("{m:.1}")
    } else {
        thousands(m.round() as usize)
    }
}

pub(super) fn minutes(s: f64) -> String {
    let s = s.round() as u64;
    format!("{}:{:02} min", s / 60, s % 60)
}

pub(super) fn sci(x: f64) -> String {
    let e = x.log10().floor() as i32;
    let m = x / 10f64.powi(e);
    if (m - 1.0).abs() < 1e-9 {
        format!("1e{e}")
    } else {
        format!("{m:.0}e{e}")
    }
}
