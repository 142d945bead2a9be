//! The losses a multiclass kernel computes from one pass over the logits ("heads"): each turns
//! the per-(image, class) statistics into its values, and into the coefficients of its
//! gradient with respect to the probabilities.

use std::cmp::Ordering;

use crate::kernels::overlap::{OverlapParams, Scored, focal_power, score};
use crate::options::{ClassAverage, Reduction};

/// Per-(image, class) statistics, indexed by these constants.
pub(crate) type Stats = [f64; STATS];
pub(crate) const STATS: usize = 6;
/// `sum(p y)`.
pub(crate) const PY: usize = 0;
/// `sum(p)`.
pub(crate) const P: usize = 1;
/// `sum(y)`.
pub(crate) const Y: usize = 2;
/// `sum(p^2)` (only when a head needs it).
pub(crate) const P2: usize = 3;
/// `sum(y^2)` (only when a head needs it).
pub(crate) const Y2: usize = 4;
/// `sum|p - y|` (only when a head needs it).
pub(crate) const ABS: usize = 5;

/// The weight of a class in the generalized Dice loss, from its target volume `Y_c`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VolumeWeight {
    /// `1 / Y_c^2`.
    Square,
    /// `1 / Y_c`.
    Simple,
    /// `1`.
    Uniform,
}

/// One loss computed by the kernel.
#[derive(Clone, Debug)]
pub(crate) enum HeadKind {
    /// Soft Dice, Jaccard or Tversky per class, averaged over the classes with `weights`
    /// (0 for a class left out) as `average` says, then raised to `params.gamma`.
    /// `params.batch`: one problem for the batch.
    Overlap {
        params: OverlapParams,
        weights: Vec<f64>,
        average: ClassAverage,
    },
    /// The generalized Dice loss over the classes from `first_class` on.
    GeneralizedDice {
        weight: VolumeWeight,
        first_class: usize,
        smooth_nr: f64,
        smooth_dr: f64,
        batch: bool,
    },
    /// The per-image mean over the counted pixels of `sum_c weights_c t_c`, `t_c` the focal
    /// term (softmax: of the true class; multilabel: the binary focal term per channel).
    Focal { gamma: f64, weights: Vec<f64> },
}

/// A head with its weight and reduction in a sum of losses (a lone loss: weight 1, no
/// reduction, the plan reducing instead).
#[derive(Clone, Debug)]
pub(crate) struct Head {
    pub weight: f64,
    pub reduction: Reduction,
    pub kind: HeadKind,
}

/// What the first pass must gather for a set of heads.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Needs {
    /// Any statistic at all (an overlap or generalized Dice head).
    pub statistics: bool,
    pub squares: bool,
    pub abs: bool,
    pub focal: bool,
}

impl Needs {
    pub fn of(heads: &[Head]) -> Self {
        let mut needs = Needs::default();
        for head in heads {
            match &head.kind {
                HeadKind::Overlap { params, .. } => {
                    needs.statistics = true;
                    needs.squares |= params.squared;
                    needs.abs |= params.soft_label;
                }
                HeadKind::GeneralizedDice { .. } => needs.statistics = true,
                HeadKind::Focal { .. } => needs.focal = true,
            }
        }
        needs
    }
}

impl HeadKind {
    /// One problem for the whole batch (`[1]`) rather than one per image.
    pub fn batch(&self) -> bool {
        match self {
            HeadKind::Overlap { params, .. } => params.batch,
            HeadKind::GeneralizedDice { batch, .. } => *batch,
            HeadKind::Focal { .. } => false,
        }
    }
}

/// What the first pass gathered: `stats[n * C + c]`, and per image the sum of the focal terms
/// of each focal head (`focal[h][n]`) and the number of pixels counted (not ignored).
pub(crate) struct Gathered {
    pub classes: usize,
    pub stats: Vec<Stats>,
    pub focal: Vec<Vec<f64>>,
    pub counted: Vec<f64>,
}

/// The gradient of a head's values, as coefficients: per image and class, of the statistics'
/// derivatives (`d/dp` of `sum(p y)` is `y`, of `sum|p - y|` `sign(p - y)`, of `sum(p)` 1, of
/// `sum(p^2)` `2p`); per image and focal head, the factor of its per-pixel derivative.
pub(crate) struct Coefficients {
    /// `[n * C + c]`: `[d/d sum(p y), d/d sum|p - y|, d/d sum(p), d/d sum(p^2)]`.
    pub overlap: Vec<[f64; 4]>,
    /// `[h][n]`: the factor of focal head `h`'s pixel derivatives in image `n`.
    pub focal: Vec<Vec<f64>>,
}

/// The statistics-based heads' problems: each problem's value, and its derivatives with
/// respect to the statistics of every class `[C]` (`None` for a focal head).
fn scored_problems(head: &HeadKind, g: &Gathered) -> Option<Vec<(f64, Vec<[f64; 4]>)>> {
    match head {
        HeadKind::Overlap {
            params,
            weights,
            average,
        } => Some(
            problems(g, params.batch)
                .iter()
                .map(|s| overlap_problem(s, params, weights, *average))
                .collect(),
        ),
        HeadKind::GeneralizedDice {
            weight,
            first_class,
            smooth_nr,
            smooth_dr,
            batch,
        } => Some(
            problems(g, *batch)
                .iter()
                .map(|s| {
                    let (value, taken) =
                        generalized_dice(&s[*first_class..], *weight, *smooth_nr, *smooth_dr);
                    // The classes left out have no derivative.
                    let mut d = vec![[0.0; 4]; *first_class];
                    d.extend(taken);
                    (value, d)
                })
                .collect(),
        ),
        HeadKind::Focal { .. } => None,
    }
}

/// The focal heads' per-image means (0 for an image with no pixel counted), in head order.
fn focal_means(g: &Gathered) -> impl Iterator<Item = Vec<f64>> + '_ {
    g.focal.iter().map(|sums| {
        sums.iter()
            .zip(&g.counted)
            .map(|(&sum, &count)| if count > 0.0 { sum / count } else { 0.0 })
            .collect()
    })
}

/// The values of each head: per problem.
pub(crate) fn values(heads: &[Head], g: &Gathered) -> Vec<Vec<f64>> {
    let mut focal = focal_means(g);
    heads
        .iter()
        .map(|head| match scored_problems(&head.kind, g) {
            Some(scored) => scored.into_iter().map(|(value, _)| value).collect(),
            None => focal.next().unwrap_or_default(),
        })
        .collect()
}

/// The coefficients of `sum_h factor_h * values_h`, `factors[h]` being the derivative of the
/// kernel's output with respect to each of head `h`'s values.
pub(crate) fn coefficients(heads: &[Head], g: &Gathered, factors: &[f64]) -> Coefficients {
    let (classes, images) = (g.classes, g.counted.len());
    let mut overlap = vec![[0.0; 4]; images * classes];
    let mut focal = Vec::new();
    for (head, &factor) in heads.iter().zip(factors) {
        let Some(scored) = scored_problems(&head.kind, g) else {
            focal.push(
                g.counted
                    .iter()
                    .map(|&count| if count > 0.0 { factor / count } else { 0.0 })
                    .collect(),
            );
            continue;
        };
        let problem_derivatives: Vec<Vec<[f64; 4]>> = scored.into_iter().map(|(_, d)| d).collect();
        for n in 0..images {
            let d = &problem_derivatives[if head.kind.batch() { 0 } else { n }];
            for (c, dc) in d.iter().enumerate() {
                for k in 0..4 {
                    overlap[n * classes + c][k] += factor * dc[k];
                }
            }
        }
    }
    Coefficients { overlap, focal }
}

/// The statistics of each problem: per image, or summed over the batch.
fn problems(g: &Gathered, batch: bool) -> Vec<Vec<Stats>> {
    let per_image: Vec<Vec<Stats>> = g.stats.chunks(g.classes).map(<[Stats]>::to_vec).collect();
    if !batch {
        return per_image;
    }
    let mut total = vec![[0.0; STATS]; g.classes];
    for image in &per_image {
        for (t, s) in total.iter_mut().zip(image) {
            for k in 0..STATS {
                t[k] += s[k];
            }
        }
    }
    vec![total]
}

/// The overlap loss of one problem, `(sum_c m_c l_c / sum_c m_c)^gamma`, and its derivatives
/// with respect to each class's statistics (an absent class: `m_c = 0` under
/// [`ClassAverage::Present`], `l_c = 0` under [`ClassAverage::ZeroAbsent`]).
fn overlap_problem(
    stats: &[Stats],
    params: &OverlapParams,
    weights: &[f64],
    average: ClassAverage,
) -> (f64, Vec<[f64; 4]>) {
    // `<= 0`: a NaN volume (a NaN target or pixel weight) is present, so the NaN reaches the
    // loss (the device path's `loss::classes::present` does the same).
    let absent = |s: &Stats| s[Y] <= 0.0;
    let masks: Vec<f64> = stats
        .iter()
        .zip(weights)
        .map(|(s, &w)| {
            if average == ClassAverage::Present && absent(s) {
                0.0
            } else {
                w
            }
        })
        .collect();
    let total: f64 = masks.iter().sum();
    let mut derivatives = vec![[0.0; 4]; stats.len()];
    if total.partial_cmp(&0.0) != Some(Ordering::Greater) {
        // Nothing to score: 0, with zero gradient (as the device path's weighted mean).
        return (0.0, derivatives);
    }
    let mut value = 0.0;
    for ((s, &m), d) in stats.iter().zip(&masks).zip(&mut derivatives) {
        if m == 0.0 || (average == ClassAverage::ZeroAbsent && absent(s)) {
            continue;
        }
        let first = if params.soft_label { s[ABS] } else { s[PY] };
        let (predicted, target) = if params.squared {
            (s[P2], s[Y2])
        } else {
            (s[P], s[Y])
        };
        let Scored {
            loss,
            d_first,
            d_predicted,
        } = score(&[first, predicted, target], params);
        let share = m / total;
        value += share * loss;
        let first_slot = if params.soft_label { 1 } else { 0 };
        let size_slot = if params.squared { 3 } else { 2 };
        d[first_slot] += share * d_first;
        d[size_slot] += share * d_predicted;
    }
    let (value, factor) = focal_power(value, params.gamma);
    if factor != 1.0 {
        for d in &mut derivatives {
            d.iter_mut().for_each(|v| *v *= factor);
        }
    }
    (value, derivatives)
}

/// The generalized Dice loss of one problem over `stats` (the classes taken), and its
/// derivatives with respect to each class's `sum(p y)` and `sum(p)`:
/// `1 - (2 sum_c w_c I_c + s_nr) / (sum_c w_c (P_c + Y_c) + s_dr)`, `w_c` from the target
/// volumes, an absent class (volume 0, or a weight past the f32 range) taking the largest
/// weight of the others (0 if none), as MONAI does.
fn generalized_dice(
    stats: &[Stats],
    weight: VolumeWeight,
    smooth_nr: f64,
    smooth_dr: f64,
) -> (f64, Vec<[f64; 4]>) {
    let raw: Vec<Option<f64>> = stats
        .iter()
        .map(|s| {
            let volume = s[Y];
            let w = match weight {
                VolumeWeight::Uniform => return Some(1.0),
                _ if volume.partial_cmp(&0.0) != Some(Ordering::Greater) => return None,
                VolumeWeight::Square => 1.0 / (volume * volume),
                VolumeWeight::Simple => 1.0 / volume,
            };
            // The device path computes the weight in the input's float type; past f32's
            // range it is infinite there, and treated as absent.
            (w <= f64::from(f32::MAX)).then_some(w)
        })
        .collect();
    let largest = raw.iter().flatten().fold(0.0_f64, |a, &b| a.max(b));
    let w: Vec<f64> = raw.iter().map(|w| w.unwrap_or(largest)).collect();
    let numerator = 2.0 * stats.iter().zip(&w).map(|(s, w)| w * s[PY]).sum::<f64>() + smooth_nr;
    let denominator = stats
        .iter()
        .zip(&w)
        .map(|(s, w)| w * (s[P] + s[Y]))
        .sum::<f64>()
        + smooth_dr;
    if denominator <= 0.0 {
        // Both empty: a perfect match, loss 0 with zero gradient.
        return (0.0, vec![[0.0; 4]; stats.len()]);
    }
    let d2 = denominator * denominator;
    let derivatives = w
        .iter()
        .map(|&wc| [-2.0 * wc / denominator, 0.0, numerator * wc / d2, 0.0])
        .collect();
    (1.0 - numerator / denominator, derivatives)
}
