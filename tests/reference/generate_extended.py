#!/usr/bin/env python3
"""Generates tests/reference/losses_extended.json: reference values and gradients of the Tversky,
focal and compound losses, and of the soft_label / log_loss variants of soft Dice and soft
Jaccard, for `cargo test` to compare against. Same schema as losses.json (see generate.py).

Run by hand (not by CI), in a virtualenv outside the repository:

    python3 -m venv ~/venv-ref && ~/venv-ref/bin/pip install torch monai
    ~/venv-ref/bin/python tests/reference/generate_extended.py

References (no segloss code is involved):
- Tversky: monai.losses.TverskyLoss(sigmoid=from_logits, alpha, beta, smooth_nr, smooth_dr,
  batch=(aggregation == "batch"), soft_label, reduction='none'); MONAI's TverskyLoss accepts
  soft_label (L1 form I = (|p| + |y| - ||p - y||_1) / 2).
- soft Dice: monai.losses.DiceLoss(sigmoid=from_logits, smooth_nr, smooth_dr, batch, soft_label,
  reduction='none').
- soft Jaccard: monai.losses.DiceLoss(jaccard=True, ...). MONAI's Jaccard score is
  (2I + s_nr) / (2(|p| + |y| - I) + s_dr), so it is given 2*smooth_nr and 2*smooth_dr to equal
  ours, (I + smooth_nr) / (|p| + |y| - I + smooth_dr) (checked against the closed form below).
- log_loss (all three): score = 1 - MONAI loss, loss = -log(clamp_min(score, 1e-7)) in torch.
- focal, from_logits: monai.losses.FocalLoss(use_softmax=False, gamma, alpha, reduction='none'),
  mean per image. For soft targets MONAI's modulating factor is sigmoid(-x(2y-1))^gamma.
- focal, probabilities: no library has this definition; closed form in torch float64:
  b = p + y - 2py, (max(b, m))^gamma * -(y ln max(p, m) + (1-y) ln max(1-p, m)), m = f32::MIN_POSITIVE,
  times alpha*y + (1-alpha)(1-y) when alpha is given. gamma = 0 is checked against BCEWithLogits.
- compound soft_dice + binary_cross_entropy: monai.losses.DiceCELoss(sigmoid=True, lambda_dice,
  lambda_ce, smooth_nr, smooth_dr) gives the mean and the gradient (with one channel it uses
  torch BCEWithLogitsLoss on the raw logits); per_item = weighted DiceLoss(reduction='none') +
  per-image mean of BCEWithLogitsLoss(reduction='none').
- compound soft_dice + focal: monai.losses.DiceFocalLoss(sigmoid=True, gamma, lambda_dice,
  lambda_focal) likewise; per_item from DiceLoss and FocalLoss (reduction='none').

MONAI's FocalLoss casts input and target with `.float()` (float32); it runs inside
`float_is_double` so that it computes in float64. Inputs are float32 (what the Rust tests feed);
every reference is computed in float64 from those exact float32 values. Gradients are of the
mean over items of per_item w.r.t. the input.
"""
import json
import pathlib

import numpy as np
import torch
import monai
from fixture_common import LOG_CLAMP, binary_fixture_doc, float_is_double, make_binary_input, per_image_mean

torch.set_default_dtype(torch.float64)
OUT = pathlib.Path(__file__).with_name("losses_extended.json")
F32_MIN_POSITIVE = 1.1754943508222875e-38


def make_soft_input(rng, shape, n_zero=4, n_one=4):
    """Soft targets: float32 uniform in [0, 1), with n_zero exact 0.0 and n_one exact 1.0."""
    logits = (rng.standard_normal(shape) * 3.0).astype(np.float32)
    targets = rng.uniform(size=shape).astype(np.float32)
    flat = targets.reshape(-1)
    idx = rng.choice(flat.size, size=n_zero + n_one, replace=False)
    flat[idx[:n_zero]] = 0.0
    flat[idx[n_zero:]] = 1.0
    return logits, targets


def assert_close(a, b, tol=1e-12, what=""):
    err = (torch.as_tensor(a) - torch.as_tensor(b)).abs().max().item()
    assert err <= tol, f"{what}: max abs diff {err}"


# ---- closed forms (our definitions), used only as checks ----


def overlap_terms(p, y, opts):
    n = p.shape[0]
    dims = (0, 1) if opts["aggregation"] == "batch" else (1,)
    p, y = p.reshape(n, -1), y.reshape(n, -1)
    sp, sy = p.sum(dims), y.sum(dims)
    if opts["soft_label"]:
        i = (sp + sy - (p - y).abs().sum(dims)) / 2
    else:
        i = (p * y).sum(dims)
    return i, sp, sy


def closed_form_score(p, y, opts, kind):
    i, sp, sy = overlap_terms(p, y, opts)
    nr, dr = opts["smooth_nr"], opts["smooth_dr"]
    if kind == "tversky":
        return (i + nr) / (i + opts["alpha"] * (sp - i) + opts["beta"] * (sy - i) + dr)
    if kind == "soft_dice":
        return (2 * i + nr) / (sp + sy + dr)
    return (i + nr) / (sp + sy - i + dr)  # soft_jaccard


def from_score(score, opts):
    if opts["log_loss"]:
        return -torch.log(score.clamp_min(LOG_CLAMP))
    return 1.0 - score


# ---- references ----


def monai_overlap(x, y, opts, kind):
    batch = opts["aggregation"] == "batch"
    common = dict(sigmoid=opts["from_logits"], batch=batch, soft_label=opts["soft_label"], reduction="none")
    nr, dr = opts["smooth_nr"], opts["smooth_dr"]
    if kind == "tversky":
        fn = monai.losses.TverskyLoss(alpha=opts["alpha"], beta=opts["beta"], smooth_nr=nr, smooth_dr=dr, **common)
    elif kind == "soft_dice":
        fn = monai.losses.DiceLoss(smooth_nr=nr, smooth_dr=dr, **common)
    else:
        fn = monai.losses.DiceLoss(jaccard=True, smooth_nr=2 * nr, smooth_dr=2 * dr, **common)
    score = 1.0 - fn(x, y).reshape(-1)
    assert score.shape[0] == (1 if batch else x.shape[0])
    p = torch.sigmoid(x) if opts["from_logits"] else x
    if opts["soft_label"]:
        # ||p - y||_1 has a kink at p == y; keep the fixtures away from it.
        assert not bool((p == y).any()), "p == y somewhere: L1 subgradient ambiguous"
    assert_close(score, closed_form_score(p.detach(), y, opts, kind), 1e-12, f"{kind} closed form {opts}")
    if opts["log_loss"]:
        # keep away from the clamp so float32 and float64 agree on which side they are
        assert score.min().item() > 1.2 * LOG_CLAMP, f"{kind} score {score.min().item()} near the log clamp"
    return from_score(score, opts)


def tversky(x, y, opts):
    return monai_overlap(x, y, opts, "tversky")


def soft_dice(x, y, opts):
    return monai_overlap(x, y, opts, "soft_dice")


def soft_jaccard(x, y, opts):
    return monai_overlap(x, y, opts, "soft_jaccard")


def monai_focal_pixels(x, y, gamma, alpha):
    with float_is_double():
        l = monai.losses.FocalLoss(use_softmax=False, gamma=gamma, alpha=alpha, reduction="none")(x, y)
    assert l.shape == x.shape and l.dtype == torch.float64
    return l


def focal(x, y, opts):
    gamma, alpha = opts["gamma"], opts["alpha"]
    if opts["from_logits"]:
        l = monai_focal_pixels(x, y, gamma, alpha)
        if gamma == 0.0 and alpha is None:
            bce = torch.nn.BCEWithLogitsLoss(reduction="none")(x, y)
            assert_close(l, bce, 1e-12, "focal gamma=0 vs BCEWithLogits")
        return per_image_mean(l)
    m = F32_MIN_POSITIVE
    p = x
    b = p + y - 2.0 * p * y
    factor = b.clamp_min(m) ** gamma
    ce = -(y * torch.log(p.clamp_min(m)) + (1.0 - y) * torch.log((1.0 - p).clamp_min(m)))
    l = factor * ce
    if alpha is not None:
        l = l * (alpha * y + (1.0 - alpha) * (1.0 - y))
    if gamma == 0.0 and alpha is None:
        assert_close(l, torch.nn.BCELoss(reduction="none")(p, y), 1e-12, "focal gamma=0 vs BCE")
    return per_image_mean(l)


def compound_term(x, y, term):
    loss, o = term["loss"], term["options"]
    if loss == "soft_dice":
        l = monai.losses.DiceLoss(sigmoid=True, smooth_nr=o["smooth_nr"], smooth_dr=o["smooth_dr"], reduction="none")
        return l(x, y).reshape(-1)
    if loss == "binary_cross_entropy":
        return per_image_mean(torch.nn.BCEWithLogitsLoss(reduction="none")(x, y))
    if loss == "focal":
        return per_image_mean(monai_focal_pixels(x, y, o["gamma"], o["alpha"]))
    raise KeyError(loss)


def compound_library_mean(terms):
    """The MONAI combined loss (reduction='mean') that the terms describe."""
    w = {t["loss"]: t["weight"] for t in terms}
    dice_opts = next(t["options"] for t in terms if t["loss"] == "soft_dice")
    s = dict(smooth_nr=dice_opts.get("smooth_nr", 1e-5), smooth_dr=dice_opts.get("smooth_dr", 1e-5))
    if "binary_cross_entropy" in w:
        fn = monai.losses.DiceCELoss(sigmoid=True, lambda_dice=w["soft_dice"], lambda_ce=w["binary_cross_entropy"], **s)
    else:
        f = next(t["options"] for t in terms if t["loss"] == "focal")
        fn = monai.losses.DiceFocalLoss(
            sigmoid=True, gamma=f["gamma"], alpha=f["alpha"], lambda_dice=w["soft_dice"], lambda_focal=w["focal"], **s
        )
    return fn


def compound(x, y, opts):
    """per_item = sum of weight * term per item. The value and gradient are checked against the
    MONAI combined loss on a separate copy of the input."""
    assert opts["from_logits"]
    per_item = sum(t["weight"] * compound_term(x, y, t) for t in opts["terms"])
    x2 = x.detach().clone().requires_grad_(True)
    fn = compound_library_mean(opts["terms"])
    with float_is_double():
        lib = fn(x2, y)
    lib.backward()
    x3 = x.detach().clone().requires_grad_(True)
    ours = sum(t["weight"] * compound_term(x3, y, t) for t in opts["terms"]).mean()
    ours.backward()
    assert lib.dtype == torch.float64
    assert_close(ours, lib, 1e-12, f"compound mean vs {type(fn).__name__}")
    assert_close(x3.grad, x2.grad, 1e-12, f"compound grad vs {type(fn).__name__}")
    return per_item


LOSSES = {
    "tversky": tversky,
    "soft_dice": soft_dice,
    "soft_jaccard": soft_jaccard,
    "focal": focal,
    "compound": compound,
}


def tversky_opts(alpha, beta, smooth=1e-5, aggregation="per_image", log_loss=False, soft_label=False, from_logits=True):
    return {
        "from_logits": from_logits,
        "alpha": alpha,
        "beta": beta,
        "smooth_nr": smooth,
        "smooth_dr": smooth,
        "aggregation": aggregation,
        "log_loss": log_loss,
        "soft_label": soft_label,
    }


def overlap_opts(aggregation="per_image", log_loss=False, soft_label=False, from_logits=True):
    return {
        "from_logits": from_logits,
        "smooth_nr": 1e-5,
        "smooth_dr": 1e-5,
        "squared": False,
        "aggregation": aggregation,
        "log_loss": log_loss,
        "soft_label": soft_label,
    }


DICE_TERM = {"loss": "soft_dice", "options": {"smooth_nr": 1e-5, "smooth_dr": 1e-5}}


def option_sets(loss, input_name):
    if loss == "tversky":
        return [
            tversky_opts(0.5, 0.5),
            tversky_opts(0.3, 0.7),
            tversky_opts(1.0, 1.0),
            tversky_opts(0.3, 0.7, smooth=0.0),
            tversky_opts(0.3, 0.7, smooth=1.0),
            tversky_opts(0.3, 0.7, aggregation="batch"),
            tversky_opts(0.7, 0.3, log_loss=True),
            tversky_opts(0.3, 0.7, soft_label=True),
            tversky_opts(0.3, 0.7, from_logits=False),
        ]
    if loss in ("soft_dice", "soft_jaccard"):
        return [
            overlap_opts(soft_label=True),
            overlap_opts(log_loss=True),
            overlap_opts(soft_label=True, log_loss=True, aggregation="batch"),
            overlap_opts(soft_label=True, from_logits=False),
        ]
    if loss == "focal":
        return [
            {"from_logits": True, "gamma": 2.0, "alpha": None},
            {"from_logits": True, "gamma": 2.0, "alpha": 0.25},
            {"from_logits": True, "gamma": 0.0, "alpha": None},
            {"from_logits": True, "gamma": 0.5, "alpha": 0.75},
            {"from_logits": False, "gamma": 2.0, "alpha": None},
        ]
    if loss == "compound":
        if input_name == "soft2d":
            return []
        return [
            {"from_logits": True, "terms": [dict(weight=1.0, **DICE_TERM), {"weight": 1.0, "loss": "binary_cross_entropy", "options": {}}]},
            {"from_logits": True, "terms": [dict(weight=0.7, **DICE_TERM), {"weight": 1.3, "loss": "binary_cross_entropy", "options": {}}]},
            {"from_logits": True, "terms": [dict(weight=1.0, **DICE_TERM), {"weight": 1.0, "loss": "focal", "options": {"gamma": 2.0, "alpha": None}}]},
        ]
    raise KeyError(loss)


def main():
    rng = np.random.default_rng(20240607)
    inputs = {
        "batch2d": make_binary_input(rng, (4, 1, 12, 10), empty_first=True, full_last=True),
        "volume3d": make_binary_input(rng, (2, 1, 3, 5, 6)),
        "soft2d": make_soft_input(rng, (3, 1, 8, 9)),
    }
    doc = binary_fixture_doc(
        "tests/reference/generate_extended.py",
        {"torch": torch.__version__, "monai": monai.__version__},
        inputs,
        LOSSES,
        option_sets,
    )
    cases = doc["cases"]
    OUT.write_text(json.dumps(doc))
    counts = {}
    for c in cases:
        counts[c["loss"]] = counts.get(c["loss"], 0) + 1
    print(f"wrote {len(cases)} cases to {OUT}: {counts}")


if __name__ == "__main__":
    main()
