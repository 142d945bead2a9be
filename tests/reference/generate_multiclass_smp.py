#!/usr/bin/env python3
"""Generates tests/reference/multiclass_smp.json: reference values and gradients of the multiclass
overlap loss (`multiclass_overlap`) from segmentation_models_pytorch (smp) 0.6.0's DiceLoss,
JaccardLoss and TverskyLoss, for `cargo test` to compare against. Same schema as multiclass.json.

Run by hand (not by CI), in a virtualenv outside the repository:

    python3 -m venv ~/venv-ref && ~/venv-ref/bin/pip install torch segmentation-models-pytorch
    ~/venv-ref/bin/python tests/reference/generate_multiclass_smp.py

Definition (ours): see generate_multiclass.py (the closed form below is the same code).

smp 0.6.0 behaviour, each checked below (`check_smp_behaviour` and the per-case asserts):
- Aggregation: smp sums over dims=(0, 2) of [N, C, H*W...] (batch and pixels together), i.e.
  our aggregation "batch" (per_item has length 1). smp flattens all spatial dims itself
  (reshape(bs, C, -1)), so the 3D input is passed as is (checked equal to the pre-flattened call).
- Score: every smp score is soft_tversky_score with the L1 intersection
  TP = (sum p + sum y - sum|p - y|) / 2, FP = sum p - TP, FN = sum y - TP,
  score = (TP + s) / clamp_min(TP + alpha FP + beta FN + s, eps); Dice is alpha = beta = 0.5,
  Jaccard alpha = beta = 1. Hence:
  * Dice: (TP + s) / ((P + Y)/2 + s) = (2 TP + 2s) / (P + Y + 2s): smp's smooth s is our
    smooth_nr = smooth_dr = 2s (NOT s; older smp had (2I + s)/(P + Y + s)). Checked: s = 1 matches
    ours with 2 and not with 1.
  * Jaccard: (TP + s) / (P + Y - TP + s): smooth_nr = smooth_dr = s.
  * Tversky: (TP + s) / (TP + alpha(P - TP) + beta(Y - TP) + s): smooth_nr = smooth_dr = s.
  * The intersection is always the L1 form, so every case records soft_label = true. On one-hot
    targets it equals sum p y in value and gradient (checked: the closed form with soft_label
    false agrees to 1e-10); on soft targets (the multilabel per_class_soft case) it differs
    (checked), i.e. smp 0.6.0 has the L1 soft-label form (PR #927).
- eps: smp's default 1e-7 is kept; the denominator clamp is inactive (denominators >= 1e-3,
  checked, and eps = 0 gives the same values to 1e-15). log_loss is -log(clamp_min(score, eps))
  = ours -ln(max(score, 1e-7)); the scores stay far above 1e-7 (checked).
- Absent classes: smp multiplies the loss of each class with sum_batch(y_c) == 0 by 0 but keeps
  it in the mean over C (checked on a sub-batch: smp = sum over present classes / C, which
  matches neither our average "all" nor "present"). Our loss does not do that, so every input
  has EVERY class present in the batch (asserted; single images may miss a class), where the
  two definitions coincide.
- ignore_index (multiclass): smp masks p on all channels (p * mask) and y (one-hot of
  label * mask, i.e. the ignored label mapped to 0, then * mask), i.e. both p and y are zero at
  ignored pixels = our definition (checked). Used with 255 on indices_ignore.
- TverskyLoss returns mean(loss)^gamma; gamma = 1 (default) is used (gamma = 2 checked to be the
  square of the gamma = 1 value).
- mode "multilabel" is a sigmoid per channel (logsigmoid().exp()), our mode "multilabel";
  "multiclass" is softmax (log_softmax().exp()), our "softmax". from_logits = True, classes = None,
  class_weights = None everywhere.
- dtype: smp keeps float64 (Jaccard's `mask.float()` is promoted in the in-place product);
  checked that the output is float64, so no Tensor.float patch is needed.

Every per_item and gradient is also checked (1e-10) against the closed form of our definition in
torch float64. Inputs are float32 (what the Rust tests feed); references are float64 from those
exact float32 values.
"""
import pathlib

import numpy as np
import torch
import segmentation_models_pytorch as smp
from segmentation_models_pytorch.losses import DiceLoss, JaccardLoss, TverskyLoss
from fixture_common import (
    IGNORE,
    TOL,
    activate,
    assert_close,
    class_scores,
    make_class_input,
    overlap_closed_form,
    score_loss,
    targets_and_valid,
    case_record,
    write_fixtures,
)

torch.set_default_dtype(torch.float64)
OUT = pathlib.Path(__file__).with_name("multiclass_smp.json")
SMP_EPS = 1e-7


# ---- inputs ----


def make_input(rng, shape, missing=()):
    """The multiclass inputs (`make_class_input`), with every class present in the batch
    (asserted), also in indices_ignore: smp zeroes the classes absent from the batch."""
    inputs = make_class_input(rng, shape, missing=missing)
    for lab in (inputs["indices"], inputs["indices_ignore"]):
        assert set(np.unique(lab[lab != IGNORE]).tolist()) == set(range(shape[1])), "a class absent from the batch"
    return inputs


# ---- options ----


DEFAULTS = {
    "score": "dice",
    "alpha": 0.5,
    "beta": 0.5,
    "mode": "softmax",
    "from_logits": True,
    "include_background": True,
    "class_weights": None,
    "ignore_index": None,
    "average": "all",
    "smooth_nr": 0.0,
    "smooth_dr": 0.0,
    "squared": False,
    "soft_label": True,  # smp's intersection is always the L1 form
    "log_loss": False,
    "aggregation": "batch",  # smp dims=(0, 2)
}


def opts(**kw):
    assert set(kw) <= set(DEFAULTS), kw
    o = dict(DEFAULTS)
    o.update(kw)
    return o


# (targets, smp class, smp kwargs, our options)
CASES = [
    ("indices", DiceLoss, dict(mode="multiclass", smooth=0.0), opts()),
    ("indices", DiceLoss, dict(mode="multiclass", smooth=1.0), opts(smooth_nr=2.0, smooth_dr=2.0)),
    ("indices", JaccardLoss, dict(mode="multiclass", smooth=0.0), opts(score="jaccard")),
    (
        "indices",
        TverskyLoss,
        dict(mode="multiclass", smooth=0.0, alpha=0.3, beta=0.7, gamma=1.0),
        opts(score="tversky", alpha=0.3, beta=0.7),
    ),
    ("indices", DiceLoss, dict(mode="multiclass", smooth=0.0, log_loss=True), opts(log_loss=True)),
    ("per_class", DiceLoss, dict(mode="multilabel", smooth=0.0), opts(mode="multilabel")),
    ("per_class", JaccardLoss, dict(mode="multilabel", smooth=0.0), opts(mode="multilabel", score="jaccard")),
    ("per_class_soft", DiceLoss, dict(mode="multilabel", smooth=0.0), opts(mode="multilabel")),
    (
        "indices_ignore",
        DiceLoss,
        dict(mode="multiclass", smooth=0.0, ignore_index=IGNORE),
        opts(ignore_index=IGNORE),
    ),
]


# ---- closed form (our definition; as in generate_multiclass.py), used only as a check ----


def closed_form_per_class(x, t, kind, o):
    return score_loss(class_scores(x, t, kind, o)[0], o)


# ---- reference: smp ----


def smp_targets(t, kind):
    """smp multiclass wants label maps [N, ...spatial] (channel squeezed); multilabel [N, C, ...]."""
    return t[:, 0] if kind.startswith("indices") else t


def smp_loss(cls, kw, x, t, kind, eps=SMP_EPS):
    f = cls(from_logits=True, classes=None, eps=eps, **kw)
    out = f(x, smp_targets(t, kind))
    assert out.dtype == torch.float64 and out.dim() == 0
    return out


def check_case(cls, kw, x, t, kind, o, value):
    """The eps / log clamps are inactive, 3D flattening is transparent, all classes present."""
    c = x.shape[1]
    xd = x.detach()
    score, den, sy = class_scores(xd, t, kind, o)
    assert bool((sy > 0).all()), "a class absent from the batch: smp would zero it"
    assert den.min().item() >= 1e-3, "smp denominator clamp could be active"
    assert score.min().item() >= 1e-3, "score near the log clamp"
    # smp's denominator is TP + alpha FP + beta FN + s; with its Dice alpha = beta = 0.5 it is
    # half of ours (plus s vs 2s) -- positive either way. eps = 0 changes nothing:
    assert_close(smp_loss(cls, kw, xd, t, kind, eps=0.0), value, 1e-15, "eps = 0")
    if xd.dim() > 4:
        n = xd.shape[0]
        tf = t.reshape(n, t.shape[1], -1)
        assert_close(smp_loss(cls, kw, xd.reshape(n, c, -1), tf, kind), value, 1e-15, "3D vs flattened")
    if o["ignore_index"] is not None:
        # smp masks p as well as y: masking y alone gives a different value
        assert o["score"] == "dice" and o["smooth_nr"] == 0.0 and not o["log_loss"]
        y_, valid_ = targets_and_valid(t, c, kind, o)
        pm = activate(xd, o).reshape(xd.shape[0], c, -1)
        ym = (y_ * valid_).reshape(xd.shape[0], c, -1)
        i = (pm.sum((0, 2)) + ym.sum((0, 2)) - (pm - ym).abs().sum((0, 2))) / 2
        y_only = (1 - 2 * i / (pm.sum((0, 2)) + ym.sum((0, 2)))).mean()
        assert (y_only - value).abs().item() > 1e-4, "ignore: masking y alone indistinguishable"
    # no subgradient ambiguity in |p - y| at valid pixels
    p = activate(xd, o)
    y, valid = targets_and_valid(t, c, kind, o)
    assert not bool(((p == y) & (valid > 0)).any()), "p == y at a valid pixel"
    # the L1 intersection equals the plain one on one-hot targets, not on soft ones
    plain = overlap_closed_form(xd, t, kind, dict(o, soft_label=False))
    if kind == "per_class_soft":
        assert (plain - value).abs().item() > 1e-3, "soft targets: L1 form should differ from sum p y"
    else:
        assert_close(plain, value, TOL, "one-hot targets: L1 form = sum p y")


def check_smp_behaviour(inp, name):
    x = torch.from_numpy(inp["logits"].astype(np.float64))
    t = torch.from_numpy(inp["indices"])
    c = x.shape[1]
    # batch aggregation: smp != mean of per-image losses
    v = smp_loss(DiceLoss, dict(mode="multiclass"), x, t, "indices")
    per_img = overlap_closed_form(x, t, "indices", opts(aggregation="per_image")).mean()
    assert (v - per_img).abs().item() > 1e-3, f"{name}: batch vs per image indistinguishable"
    # smooth placement: Dice s = 1 is ours with 2 (not 1); Jaccard / Tversky with s
    v1 = smp_loss(DiceLoss, dict(mode="multiclass", smooth=1.0), x, t, "indices")
    assert_close(v1, overlap_closed_form(x, t, "indices", opts(smooth_nr=2.0, smooth_dr=2.0)), TOL, "dice s=1 -> 2")
    assert (v1 - overlap_closed_form(x, t, "indices", opts(smooth_nr=1.0, smooth_dr=1.0))).abs().item() > 1e-6
    for cls, kw, o in (
        (JaccardLoss, dict(mode="multiclass", smooth=1.0), opts(score="jaccard", smooth_nr=1.0, smooth_dr=1.0)),
        (
            TverskyLoss,
            dict(mode="multiclass", smooth=1.0, alpha=0.3, beta=0.7),
            opts(score="tversky", alpha=0.3, beta=0.7, smooth_nr=1.0, smooth_dr=1.0),
        ),
    ):
        assert_close(smp_loss(cls, kw, x, t, "indices"), overlap_closed_form(x, t, "indices", o), TOL, f"{cls.__name__} s=1")
    # gamma: TverskyLoss returns mean^gamma
    kw = dict(mode="multiclass", alpha=0.3, beta=0.7)
    g1 = smp_loss(TverskyLoss, dict(kw, gamma=1.0), x, t, "indices")
    g2 = smp_loss(TverskyLoss, dict(kw, gamma=2.0), x, t, "indices")
    assert_close(g2, g1**2, 1e-15, "tversky gamma")
    # absent classes: a sub-batch missing a class -> smp zeroes it but divides by C
    for sub in range(x.shape[0]):
        ts = t[sub : sub + 1]
        present = torch.tensor([bool((ts == k).any()) for k in range(c)])
        if bool(present.all()):
            continue
        xs = x[sub : sub + 1]
        for cls, kw, o in (
            (DiceLoss, dict(mode="multiclass"), opts()),
            (JaccardLoss, dict(mode="multiclass"), opts(score="jaccard")),
        ):
            vs = smp_loss(cls, kw, xs, ts, "indices")
            l = closed_form_per_class(xs, ts, "indices", o)[0]
            assert_close(vs, (l * present).sum() / c, TOL, f"{name} image {sub}: smp absent-class zeroing")
            ours_all = overlap_closed_form(xs, ts, "indices", o)[0]
            ours_present = overlap_closed_form(xs, ts, "indices", dict(o, average="present"))[0]
            assert (vs - ours_all).abs().item() > 1e-3 and (vs - ours_present).abs().item() > 1e-3
        return True
    return False


def main():
    rng = np.random.default_rng(20240927)
    inputs = {
        "img2d": make_input(rng, (3, 4, 7, 6), missing=((0, 2), (2, 0))),
        "vol3d": make_input(rng, (2, 3, 2, 4, 5), missing=((1, 1),)),
    }
    cases = []
    for name, inp in inputs.items():
        assert check_smp_behaviour(inp, name), f"{name}: no image misses a class"
        for kind, cls, kw, o in CASES:
            x = torch.from_numpy(inp["logits"].astype(np.float64)).requires_grad_(True)
            t = torch.from_numpy(inp[kind].astype(np.int64 if kind.startswith("indices") else np.float64))
            value = smp_loss(cls, kw, x, t, kind)
            value.backward()
            per_item = value.detach().reshape(1)
            assert bool(torch.isfinite(per_item).all()) and bool(torch.isfinite(x.grad).all())
            check_case(cls, kw, x, t, kind, o, value.detach())
            x2 = x.detach().clone().requires_grad_(True)
            cf = overlap_closed_form(x2, t, kind, o)
            assert cf.shape == (1,)
            cf.mean().backward()
            assert_close(per_item, cf.detach(), TOL, f"{name} {kind} {o}: closed form value")
            assert_close(x.grad, x2.grad, TOL, f"{name} {kind} {o}: closed form grad")
            assert o["from_logits"]
            cases.append(case_record(name, kind, o, x, per_item))
    write_fixtures(
        OUT,
        "tests/reference/generate_multiclass_smp.py",
        {"torch": torch.__version__, "segmentation_models_pytorch": smp.__version__},
        inputs,
        ("logits", "indices", "indices_ignore", "per_class", "per_class_soft"),
        cases,
    )


if __name__ == "__main__":
    main()
