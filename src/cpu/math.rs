//! The float type of the host kernels and the elementary functions they need, written so that
//! the compiler can vectorise the loops that call them (no calls into libm for `f32`).

use core::ops::{Add, Div, Mul, Neg, Sub};

/// A float element the host kernels compute in: `f32` (the fast path: branch-free polynomial
/// `exp`/`ln` accurate to a few ulp, which the compiler vectorises) or `f64` (the standard
/// library's functions, for exact checks).
pub(crate) trait Real:
    Copy
    + Send
    + Sync
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + Into<f64>
    + burn::tensor::Element
    + 'static
{
    const ZERO: Self;
    const ONE: Self;
    /// `f32::MIN_POSITIVE` (1.2e-38) in this type: the device path clamps probabilities to it
    /// before `ln`, in f32 and f64 alike.
    const MIN_PROB: Self;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    /// `exp(x)` for `x <= 0` (the only exponentials the losses need: of `-|x|`).
    fn exp_nonpositive(self) -> Self;
    /// The standard library's `exp` (correctly rounded in practice; scalar).
    fn exp_std(self) -> Self;
    /// `ln(1 + t)` for `t` in `[0, 1]`, accurate for tiny `t`.
    fn ln_1p_unit(self) -> Self;
    /// `ln(x)` for a positive normal `x`.
    fn ln_positive(self) -> Self;
    fn abs(self) -> Self;
    /// IEEE total order (as `f32::total_cmp`).
    fn total_cmp_f(self, other: Self) -> core::cmp::Ordering;
    /// A bit pattern that sorts like the value, for a non-negative value, where a radix sort
    /// applies (f32); `None` to sort by comparison (f64, the checking path).
    fn radix_key(self) -> Option<u32>;
    /// The value of a radix key (f32; never called for f64, which has none).
    fn from_radix_key(key: u32) -> Self;
    /// `true` for NaN, the one value that is not equal to itself.
    #[inline(always)]
    #[allow(clippy::eq_op)]
    fn is_nan(self) -> bool {
        self != self
    }
    /// The larger of `self` and `other`, NaN when `self` is NaN (the order of the comparison
    /// matters: `if self > other` would drop a NaN `self`, turning a diverged input into a
    /// finite loss). Callers pass the possibly-NaN value as `self` and a constant as `other`.
    #[inline(always)]
    fn max(self, other: Self) -> Self {
        if other > self { other } else { self }
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const MIN_PROB: Self = f32::MIN_POSITIVE as f64;
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn exp_nonpositive(self) -> Self {
        self.exp()
    }
    #[inline(always)]
    fn exp_std(self) -> Self {
        self.exp()
    }
    #[inline(always)]
    fn ln_1p_unit(self) -> Self {
        self.ln_1p()
    }
    #[inline(always)]
    fn ln_positive(self) -> Self {
        self.ln()
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f64::abs(self)
    }
    #[inline(always)]
    fn total_cmp_f(self, other: Self) -> core::cmp::Ordering {
        self.total_cmp(&other)
    }
    #[inline(always)]
    fn radix_key(self) -> Option<u32> {
        None
    }
    fn from_radix_key(_: u32) -> Self {
        0.0
    }
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const MIN_PROB: Self = f32::MIN_POSITIVE;
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn exp_nonpositive(self) -> Self {
        exp_f32(self)
    }
    #[inline(always)]
    fn exp_std(self) -> Self {
        self.exp()
    }
    #[inline(always)]
    fn ln_1p_unit(self) -> Self {
        // Goldberg's trick: u = 1 + t rounds, but ln(u) * t / (u - 1) recovers ln(1 + t) to a
        // few ulp, and t itself where u rounds to 1. Both sides are computed and one selected,
        // so the loop stays branch-free and vectorises.
        let u = 1.0 + self;
        let d = u - 1.0;
        let general = ln_f32(u) * (self / d);
        if d == 0.0 { self } else { general }
    }
    #[inline(always)]
    fn ln_positive(self) -> Self {
        ln_f32(self)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f32::abs(self)
    }
    #[inline(always)]
    fn total_cmp_f(self, other: Self) -> core::cmp::Ordering {
        self.total_cmp(&other)
    }
    #[inline(always)]
    fn radix_key(self) -> Option<u32> {
        Some(self.to_bits())
    }
    #[inline(always)]
    fn from_radix_key(key: u32) -> Self {
        f32::from_bits(key)
    }
}

/// `1.5 * 2^23`: adding it to an `f32` of magnitude below `2^22` rounds it to an integer held in
/// the low mantissa bits (round to nearest), without a call to `roundf`.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// `exp(x)` for `x <= 0` in f32 (Cephes `expf`: `x = n ln 2 + r`, `|r| <= ln 2 / 2`, a
/// degree-6 polynomial for `exp(r)`, then `2^n` put into the exponent bits). Relative error
/// about 2 ulp. Inputs below -87 (where `exp` leaves the normal range, `-inf` included) give
/// `exp(-87)`, about 1.6e-38: the losses only add it to 1 or multiply it into terms that vanish
/// there. NaN gives NaN (the clamp keeps it, and every later step propagates it).
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    let x = if x < -87.0 { -87.0 } else { x };
    let t = x * core::f32::consts::LOG2_E + ROUND_MAGIC;
    let n = t - ROUND_MAGIC;
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5; // Cephes: 5.0000001201e-1, which rounds to 0.5 in f32
    let e = p * r * r + r + 1.0;
    // n in [-126, 0]: the biased exponent n + 127 is a normal exponent.
    let n_bits = t.to_bits().wrapping_sub(ROUND_MAGIC.to_bits()) as i32;
    e * f32::from_bits(((n_bits + 127) as u32) << 23)
}

/// `ln(x)` for a positive normal `x` in f32 (Cephes `logf`: `x = m 2^e` with `m` in
/// `[sqrt(1/2), sqrt(2))`, a degree-8 polynomial in `m - 1`). Relative error about 2 ulp.
/// `ln(+inf) = +inf` and `ln(NaN) = NaN`, as the standard library (the bit manipulation alone
/// would read both as a finite number near 88.7).
#[inline(always)]
fn ln_f32(x: f32) -> f32 {
    let bits = x.to_bits();
    let e = ((bits >> 23) & 0xff) as i32 - 127;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000); // [1, 2)
    // Selects, not a branch, so that loops calling this vectorise.
    let big = m > core::f32::consts::SQRT_2;
    let m = if big { m * 0.5 } else { m };
    let e = if big { e + 1 } else { e } as f32;
    let z = m - 1.0;
    let z2 = z * z;
    let p = 7.037_683_6e-2_f32;
    let p = p * z - 1.151_461e-1;
    let p = p * z + 1.167_699_9e-1;
    let p = p * z - 1.242_014_1e-1;
    let p = p * z + 1.424_932_3e-1;
    let p = p * z - 1.666_805_8e-1;
    let p = p * z + 2.000_071_4e-1;
    let p = p * z - 2.499_999_4e-1;
    let p = p * z + 0.333_333_3; // Cephes: 3.3333331174e-1, rounded to f32
    let y = z * z2 * p + e * -2.121_944_4e-4 - 0.5 * z2;
    let finite = z + y + e * 0.693_359_4;
    // Selects, not a branch: `x` itself is the answer for `+inf` and NaN.
    if x.is_finite() { finite } else { x }
}

/// `sigmoid(x)` from `e = exp(-|x|)`: `1 / (1 + e)` for `x >= 0`, `e / (1 + e)` otherwise
/// (never `exp` of a positive number, so no overflow).
#[inline(always)]
pub(crate) fn sigmoid_from<F: Real>(x: F, e: F) -> F {
    let s = F::ONE / (F::ONE + e);
    if x >= F::ZERO { s } else { e * s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_exp_and_ln_match_the_standard_library_to_a_few_ulp() {
        let mut worst_exp = 0.0_f64;
        let mut worst_ln = 0.0_f64;
        let mut worst_ln1p = 0.0_f64;
        for i in 0..=200_000 {
            let x = -87.0 * i as f32 / 200_000.0;
            let exact = f64::from(x).exp();
            worst_exp = worst_exp.max((f64::from(exp_f32(x)) - exact).abs() / exact);
            let t = (i as f32 / 200_000.0).powi(3);
            if t > 0.0 {
                let exact = f64::from(t).ln_1p();
                worst_ln1p = worst_ln1p.max((f64::from(t.ln_1p_unit()) - exact).abs() / exact);
            }
            let y = f32::MIN_POSITIVE * 1.37_f32.powi(i % 400) + i as f32;
            let exact = f64::from(y).ln();
            if exact.abs() > 1e-3 {
                worst_ln = worst_ln.max((f64::from(ln_f32(y)) - exact).abs() / exact.abs());
            }
        }
        assert!(worst_exp < 4.0 * f64::from(f32::EPSILON), "exp {worst_exp}");
        assert!(worst_ln < 4.0 * f64::from(f32::EPSILON), "ln {worst_ln}");
        assert!(
            worst_ln1p < 4.0 * f64::from(f32::EPSILON),
            "ln_1p {worst_ln1p}"
        );
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(ln_f32(1.0), 0.0);
    }
}
