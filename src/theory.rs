//! The paper's theory (Bertels et al. 2019, Sect. 2): how Dice and Jaccard relate, and why
//! a weighted Hamming loss (what weighted cross-entropy optimises) cannot stand in for them.
//!
//! **Eq. 4.** On hard masks, `J = D / (2 - D)` and `D = 2J / (1 + J)`: the two scores are
//! monotone functions of each other, so they rank predictions of *one image* identically.
//!
//! **Prop. 1 (Dice and Jaccard approximate each other).** `J <= D <= 2J`, i.e. D approximates
//! J with relative error at most [`DICE_JACCARD_RELATIVE_ERROR`] (`(D - J) / J = 1 - D <= 1`),
//! and `0 <= D - J <= 3 - 2*sqrt(2) ≈ 0.172` ([`DICE_JACCARD_ABSOLUTE_ERROR`]), reached at
//! `D = 2 - sqrt(2)` ([`DICE_AT_LARGEST_GAP`]). For a user: since `1 - D <= 1 - J` per image,
//! the mean Jaccard loss bounds the mean Dice loss, and optimising either one controls the
//! other up to that factor and offset — pick the one you are evaluated on, the difference
//! between them is small.
//!
//! **Prop. 2 (weighted Hamming does not approximate Dice).** No weight `gamma` makes the
//! weighted Hamming similarity `H_gamma` of Eq. 3 a relative approximation of `D`. Take a
//! target of `a^2 d` pixels inside a prediction of `a^2 d + a d` pixels (`d` pixels in all):
//! `D = 2a / (2a + 1)` tends to 0 as `a -> 0` while every `H_gamma >= 1 - a / (1 - a^2)` tends
//! to 1 ([`prop2_family`]). For a user: on small objects a per-pixel loss — cross-entropy, and
//! even the class-balanced weighted cross-entropy — can be nearly perfect while the Dice score
//! is nearly zero, so train with a Dice or Jaccard loss (soft Dice, soft Jaccard, Lovász) when
//! objects are small and you are evaluated on Dice or Jaccard.

use crate::error::SegLossError;
use crate::metrics::Confusion;

/// Relative error of Dice as an approximation of Jaccard (Prop. 1): `D <= (1 + 1) J`.
pub const DICE_JACCARD_RELATIVE_ERROR: f64 = 1.0;

/// Largest absolute gap `D - J` over all masks (Prop. 1): `3 - 2*sqrt(2)`.
pub const DICE_JACCARD_ABSOLUTE_ERROR: f64 = 3.0 - 2.0 * std::f64::consts::SQRT_2;

/// The Dice score at which `D - J` is largest (Prop. 1): `2 - sqrt(2)`.
pub const DICE_AT_LARGEST_GAP: f64 = 2.0 - std::f64::consts::SQRT_2;

/// Jaccard from Dice on hard masks (Eq. 4): `J = D / (2 - D)`. Defined for `D` in `[0, 1]`.
pub fn jaccard_from_dice(dice: f64) -> f64 {
    dice / (2.0 - dice)
}

/// Dice from Jaccard on hard masks (Eq. 4): `D = 2J / (1 + J)`. Defined for `J` in `[0, 1]`.
pub fn dice_from_jaccard(jaccard: f64) -> f64 {
    2.0 * jaccard / (1.0 + jaccard)
}

/// The counts of Prop. 2's family for `d` pixels and a parameter `a` in `(0, a_max]`,
/// `a_max = (sqrt(5) - 1) / 2` (where `a + a^2 = 1`, all `d` pixels labelled): no false
/// negative (`|y \ y~| = 0`), `FP = |y~ \ y| = round(a d)`, `TP = |y n y~| = round(a^2 d)`,
/// the rest true negatives (`d - TP - FP`).
///
/// # Errors
/// [`SegLossError::InvalidParameter`] for `a` outside `(0, a_max]` (NaN included), and
/// [`SegLossError::InvalidParameter`] too when rounding takes `TP + FP` past `d` (at `a` just
/// below `a_max`): a member always has `TP + FP + TN = d`, counted without overflow.
pub fn prop2_family(a: f64, d: u64) -> Result<Confusion, SegLossError> {
    let a_max = (5.0_f64.sqrt() - 1.0) / 2.0;
    let out_of_domain = SegLossError::InvalidParameter {
        name: "a",
        value: a,
        allowed: "(0, (sqrt(5) - 1) / 2]: a + a^2 <= 1, the labelled share of the pixels",
    };
    if !(a > 0.0 && a <= a_max) {
        return Err(out_of_domain);
    }
    let fp = (a * d as f64).round() as u64;
    let tp = (a * a * d as f64).round() as u64;
    let Some(tn) = tp
        .checked_add(fp)
        .and_then(|labelled| d.checked_sub(labelled))
    else {
        return Err(out_of_domain);
    };
    let mut c = Confusion::default();
    c.push(tp, fp, 0, tn);
    Ok(c)
}
