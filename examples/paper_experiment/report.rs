//! The experiment's outputs: Table 1 (mean Dice and Jaccard per loss with significance
//! marks), per-image CSV, the Dice-vs-foreground-area plot of Fig. 1, and the summary of
//! which findings of the paper were reproduced.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::data::{Rng, Sample};
use crate::evaluate::{Scores, mean, paired_bootstrap, std_dev};
use crate::text::Glyphs;
use crate::train::Loss;

/// Significance level of the pairwise tests.
pub const ALPHA: f64 = 0.05;
const RESAMPLES: usize = 5000;

/// Pairwise two-sided bootstrap p-values, `p[i][j]` for losses `i` and `j` on one score.
pub fn p_values(per_loss: &[Vec<f64>], rng: &mut Rng) -> Vec<Vec<f64>> {
    let k = per_loss.len();
    let mut p = vec![vec![1.0; k]; k];
    for i in 0..k {
        for j in i + 1..k {
            let v = paired_bootstrap(&per_loss[i], &per_loss[j], RESAMPLES, rng);
            p[i][j] = v;
            p[j][i] = v;
        }
    }
    p
}

/// Table 1: mean ± standard deviation per loss, and the losses each one is significantly
/// better than (paired bootstrap, p < 0.05).
pub fn table(results: &[(Loss, Scores)], p_dice: &[Vec<f64>], p_jaccard: &[Vec<f64>]) -> String {
    let mut out = String::new();
    writeln!(out, "| loss | Dice | Jaccard | HD95 (px) | NSD (1 px) | significantly better than (Dice) | significantly better than (Jaccard) |").unwrap();
    writeln!(out, "|---|---:|---:|---:|---:|---|---|").unwrap();
    let better = |p: &[Vec<f64>], i: usize, pick: &dyn Fn(&Scores) -> &Vec<f64>| {
        let names: Vec<&str> = (0..results.len())
            .filter(|&j| {
                j != i && p[i][j] < ALPHA && mean(pick(&results[i].1)) > mean(pick(&results[j].1))
            })
            .map(|j| results[j].0.name())
            .collect();
        if names.is_empty() {
            "-".to_string()
        } else {
            names.join(", ")
        }
    };
    for (i, (loss, s)) in results.iter().enumerate() {
        writeln!(
            out,
            "| {} | {:.3} ± {:.3} | {:.3} ± {:.3} | {:.2} ± {:.2} | {:.3} ± {:.3} | {} | {} |",
            loss.name(),
            mean(&s.dice),
            std_dev(&s.dice),
            mean(&s.jaccard),
            std_dev(&s.jaccard),
            mean(&s.hd95),
            std_dev(&s.hd95),
            mean(&s.nsd),
            std_dev(&s.nsd),
            better(p_dice, i, &|s| &s.dice),
            better(p_jaccard, i, &|s| &s.jaccard),
        )
        .unwrap();
    }
    out
}

/// One row per (image, loss).
pub fn csv(results: &[(Loss, Scores)], test: &[Sample]) -> String {
    let mut out = String::from("image,fg_fraction,loss,dice,jaccard,hd95,nsd\n");
    for (loss, s) in results {
        for (i, sample) in test.iter().enumerate() {
            writeln!(
                out,
                "{i},{:.6},{},{:.6},{:.6},{:.6},{:.6}",
                sample.fg_fraction,
                loss.name(),
                s.dice[i],
                s.jaccard[i],
                s.hd95[i],
                s.nsd[i]
            )
            .unwrap();
        }
    }
    out
}

/// Test images split into deciles of relative foreground area: `(median area of the decile,
/// image indices)`.
pub fn deciles(test: &[Sample]) -> Vec<(f64, Vec<usize>)> {
    let mut order: Vec<usize> = (0..test.len()).collect();
    order.sort_by(|&a, &b| test[a].fg_fraction.total_cmp(&test[b].fg_fraction));
    (0..10)
        .map(|d| {
            let part: Vec<usize> = order[d * order.len() / 10..(d + 1) * order.len() / 10].to_vec();
            let median = part
                .get(part.len() / 2)
                .map_or(f64::NAN, |&i| test[i].fg_fraction);
            (median, part)
        })
        .filter(|(_, part)| !part.is_empty())
        .collect()
}

/// Fig. 1: mean Dice per decile of relative foreground area, one line per loss, as PNG.
pub fn plot(
    results: &[(Loss, Scores)],
    test: &[Sample],
    path: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    // A bundled DejaVu Sans Mono, so the plot needs no system fonts: registered with plotters,
    // which lays the text out with it, and drawn by `Glyphs` (plotters' own drawing of it put
    // the glyphs off their places: "0. 1" for 0.1).
    const FONT: &[u8] = include_bytes!("DejaVuSansMono.ttf");
    register_font("sans-serif", FontStyle::Normal, FONT).map_err(|_| "invalid bundled font")?;
    let groups = deciles(test);
    let root = Glyphs::new(BitMapBackend::new(path, (900, 560)), FONT)?.into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Dice per decile of relative foreground area (test set)",
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(56)
        .build_cartesian_2d(0.5f64..(groups.len() as f64 + 0.5), 0.0f64..1.0)?;
    let labels: Vec<String> = groups
        .iter()
        .map(|(m, _)| format!("{:.1}%", 100.0 * m))
        .collect();
    chart
        .configure_mesh()
        .x_desc("decile of foreground area (label: median area of the decile)")
        .y_desc("mean Dice")
        .x_labels(groups.len())
        .x_label_formatter(&|x| {
            let k = x.round() as usize;
            if (1..=labels.len()).contains(&k) && (x - k as f64).abs() < 1e-6 {
                labels[k - 1].clone()
            } else {
                String::new()
            }
        })
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .draw()?;
    // Colours far apart, readable on white.
    let palette = [
        RGBColor(213, 94, 0),
        RGBColor(0, 158, 115),
        RGBColor(0, 114, 178),
        RGBColor(204, 121, 167),
        RGBColor(0, 0, 0),
    ];
    for (index, (loss, s)) in results.iter().enumerate() {
        let color = palette[index % palette.len()].to_rgba();
        let points: Vec<(f64, f64)> = groups
            .iter()
            .enumerate()
            .map(|(d, (_, part))| {
                (
                    (d + 1) as f64,
                    part.iter().map(|&i| s.dice[i]).sum::<f64>() / part.len() as f64,
                )
            })
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(loss.name())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()?;
    root.present()?;
    Ok(())
}

/// Which of the paper's findings appear in these results, stated from the numbers.
pub fn summary(
    results: &[(Loss, Scores)],
    p_dice: &[Vec<f64>],
    p_jaccard: &[Vec<f64>],
    test: &[Sample],
) -> String {
    let index = |l: Loss| {
        results
            .iter()
            .position(|(k, _)| *k == l)
            .expect("every loss was run")
    };
    let m = |l: Loss, jaccard: bool| {
        let s = &results[index(l)].1;
        mean(if jaccard { &s.jaccard } else { &s.dice })
    };
    let significantly_better = |a: Loss, b: Loss, jaccard: bool| {
        let p = if jaccard { p_jaccard } else { p_dice };
        p[index(a)][index(b)] < ALPHA && m(a, jaccard) > m(b, jaccard)
    };
    let metric_losses = [Loss::SoftDice, Loss::SoftJaccard, Loss::LovaszSigmoid];
    let pixel_losses = [Loss::CrossEntropy, Loss::WeightedCrossEntropy];
    let mut out = String::new();

    // 1. Metric-sensitive losses beat the pixel-wise ones (Table 1).
    let mut wins = 0;
    let mut total = 0;
    for a in metric_losses {
        for b in pixel_losses {
            for jaccard in [false, true] {
                total += 1;
                wins += usize::from(significantly_better(a, b, jaccard));
            }
        }
    }
    writeln!(
        out,
        "1. Metric-sensitive losses (soft Dice, soft Jaccard, Lovasz) significantly better than CE and wCE: {wins} of {total} comparisons (3 losses x 2 baselines x Dice/Jaccard) -> {}.",
        verdict(wins == total, wins * 2 >= total)
    )
    .unwrap();

    // 2. Soft Dice and soft Jaccard are interchangeable (Prop. 1).
    let (d, j) = (index(Loss::SoftDice), index(Loss::SoftJaccard));
    let same = p_dice[d][j] >= ALPHA && p_jaccard[d][j] >= ALPHA;
    writeln!(
        out,
        "2. Soft Dice and soft Jaccard not significantly different: p = {:.3} (Dice), {:.3} (Jaccard) -> {}.",
        p_dice[d][j],
        p_jaccard[d][j],
        verdict(same, false)
    )
    .unwrap();

    // 3. No significant difference among the metric-sensitive losses.
    let mut differing = Vec::new();
    for (k, &a) in metric_losses.iter().enumerate() {
        for &b in &metric_losses[k + 1..] {
            for (jaccard, p) in [(false, p_dice), (true, p_jaccard)] {
                if p[index(a)][index(b)] < ALPHA {
                    differing.push(format!(
                        "{} vs {} ({})",
                        a.name(),
                        b.name(),
                        if jaccard { "Jaccard" } else { "Dice" }
                    ));
                }
            }
        }
    }
    writeln!(
        out,
        "3. No significant difference among soft Dice, soft Jaccard and Lovasz: {} -> {}.",
        if differing.is_empty() {
            "none of the 6 comparisons differs".to_string()
        } else {
            format!("differ: {}", differing.join("; "))
        },
        verdict(differing.is_empty(), differing.len() <= 2)
    )
    .unwrap();
    writeln!(
        out,
        "   (For reference, wCE vs CE on Dice: {:.3} vs {:.3}, p = {:.3}.)",
        m(Loss::WeightedCrossEntropy, false),
        m(Loss::CrossEntropy, false),
        p_dice[index(Loss::WeightedCrossEntropy)][index(Loss::CrossEntropy)],
    )
    .unwrap();

    // 4. Where the gain is (the Fig. 1 view): small against large objects.
    let groups = deciles(test);
    let gap = |part: &[usize]| {
        let best_metric = metric_losses
            .iter()
            .map(|&l| {
                part.iter()
                    .map(|&i| results[index(l)].1.dice[i])
                    .sum::<f64>()
                    / part.len() as f64
            })
            .fold(f64::MIN, f64::max);
        let ce = part
            .iter()
            .map(|&i| results[index(Loss::CrossEntropy)].1.dice[i])
            .sum::<f64>()
            / part.len() as f64;
        best_metric - ce
    };
    let (small, large) = (gap(&groups[0].1), gap(&groups[groups.len() - 1].1));
    writeln!(
        out,
        "4. Observation (Fig. 1): Dice gain of the best metric-sensitive loss over CE on the smallest vs the largest objects (first vs last decile of area): {small:+.3} vs {large:+.3}{}.",
        if small > large { " (larger for small objects)" } else { " (not larger for small objects)" }
    )
    .unwrap();
    out
}

fn verdict(reproduced: bool, partly: bool) -> &'static str {
    if reproduced {
        "reproduced"
    } else if partly {
        "partly reproduced"
    } else {
        "not reproduced"
    }
}
