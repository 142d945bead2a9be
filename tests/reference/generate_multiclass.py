#!/usr/bin/env python3
"""Generates tests/reference/multiclass.json: reference values and gradients of the multiclass
overlap loss (`multiclass_overlap`: Dice / Jaccard / Tversky over C channels, softmax or
multilabel sigmoid), for `cargo test` to compare against.

Run by hand (not by CI), in a virtualenv outside the repository:

    python3 -m venv ~/venv-ref && ~/venv-ref/bin/pip install torch monai
    ~/venv-ref/bin/python tests/reference/generate_multiclass.py

Definition (ours). Per image n and class c (aggregation "batch": once, summing over images and
pixels): y_c = one-hot of the indices (or the given per-class targets); pixels whose index equals
ignore_index are removed from every sum (p and y set to 0 there); I = sum p_c y_c (soft_label:
(sum p_c + sum y_c - sum |p_c - y_c|) / 2); P = sum p_c (squared: sum p_c^2); Y = sum y_c
(squared: sum y_c^2). Dice (2I + s_nr)/(P + Y + s_dr); Jaccard (I + s_nr)/(P + Y - I + s_dr);
Tversky (I + s_nr)/(I + alpha(P - I) + beta(Y - I) + s_dr); a zero denominator means score 1;
l = 1 - score, or with log_loss -ln(max(score, 1e-7)). l_n = sum_c m_c l_nc / sum_c m_c with
m_c = class weight (1 by default), 0 for c = 0 without background, and (average "present") 0
where Y_nc == 0; l_n = 0 if sum_c m_c == 0. Gradients are of mean(per_item) w.r.t. the input;
weights and the present-mask are constants.

References (no segloss code is involved). Every case goes through MONAI 1.6.1 for the per-class
losses; the class averaging (and log_loss) is done here on MONAI's per-class output:
- dice: monai.losses.DiceLoss(softmax=True | sigmoid=True (multilabel) | neither
  (from_logits false), to_onehot_y=(index targets), include_background, squared_pred, batch,
  smooth_nr, smooth_dr, soft_label, weight, ignore_index, reduction='none').
- jaccard: the same with jaccard=True and 2*smooth_nr, 2*smooth_dr: MONAI's Jaccard score is
  (2I + s_nr)/(2(P + Y - I) + s_dr).
- tversky: monai.losses.TverskyLoss(softmax/sigmoid, to_onehot_y, include_background, alpha, beta,
  smooth_nr, smooth_dr, batch, soft_label, ignore_index, reduction='none').
- reduction='none' shapes (checked): DiceLoss [N, K, 1, ...] per image and [K, 1, ...] with
  batch=True; TverskyLoss [N, K] and [K] (K = C, or C - 1 without background).
- class weights: MONAI multiplies the per-class loss by weight[c] and (reduction 'mean') then
  means over classes without dividing by sum(w) (checked). Ours = MONAI mean over the kept
  classes / mean(w over the kept classes) = sum_c w_c l_c / sum_c w_c. With
  include_background=False MONAI requires a weight of length C - 1 (no class 0; length C raises
  ValueError, checked; cf. MONAI issue #7729), so it is given class_weights[1:].
- include_background=False: MONAI applies softmax over all C channels, then drops channel 0
  (checked: its per-class losses equal the include_background=True ones without class 0).
- ignore_index: MONAI 1.6.1 DiceLoss/TverskyLoss take ignore_index. With label targets it
  masks p and y (all channels) where label == ignore_index; an out-of-range ignore value (255)
  is first replaced by 0 before one-hot. That is our definition (checked against the closed form).
- average "present": MONAI per-class losses, averaged here with m_c = 0 where Y_nc == 0.
- log_loss: score = 1 - MONAI per-class loss, l = -log(clamp_min(score, 1e-7)).
- from_logits false: the input is the float32 softmax of the logits (stored as input_values)
  and MONAI is called without an activation.
- MONAI's one_hot (to_onehot_y) builds float32 targets; with squared_pred the target norm is then
  computed in float32 (off by ~4e-8), so the generator makes MONAI's one_hot return float64.
- soft_label: MONAI's L1 form (checked: equal to the plain form on one-hot targets, different
  on soft targets).

Every per_item and gradient is also checked (1e-10) against a closed-form torch float64
implementation of the definition above (`overlap_closed_form`). Inputs are float32 (what the Rust tests
feed); every reference is computed in float64 from those exact float32 values.
"""
import json
import pathlib

import numpy as np
import torch
import monai
from fixture_common import (
    IGNORE,
    LOG_CLAMP,
    TOL,
    activate,
    assert_close,
    average_classes,
    class_mask,
    class_terms,
    make_class_input,
    one_hot_f64,
    overlap_closed_form,
    targets_and_valid,
    case_record,
    write_fixtures,
)

torch.set_default_dtype(torch.float64)
OUT = pathlib.Path(__file__).with_name("multiclass.json")


# ---- inputs ----


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
    "smooth_nr": 1e-5,
    "smooth_dr": 1e-5,
    "squared": False,
    "soft_label": False,
    "log_loss": False,
    "aggregation": "per_image",
}


def opts(**kw):
    assert set(kw) <= set(DEFAULTS), kw
    o = dict(DEFAULTS)
    o.update(kw)
    return o


def case_list(name, c):
    weights = [0.5, 1.0, 2.0, 1.0][:c] if c == 4 else [0.5, 1.0, 2.0]
    return [
        ("indices", opts()),
        ("per_class", opts()),
        ("indices", opts(include_background=False)),
        ("indices", opts(class_weights=weights)),
        ("indices", opts(class_weights=weights, include_background=False)),
        ("indices", opts(score="jaccard")),
        ("indices", opts(score="tversky", alpha=0.3, beta=0.7)),
        ("per_class", opts(mode="multilabel")),
        ("per_class_soft", opts(mode="multilabel", soft_label=True)),
        ("indices", opts(squared=True)),
        ("indices", opts(aggregation="batch")),
        ("indices", opts(average="present")),
        ("indices_ignore", opts(ignore_index=IGNORE)),
        ("indices", opts(ignore_index=0)),
        ("indices", opts(log_loss=True)),
        ("indices", opts(from_logits=False)),
    ]


# ---- closed form (our definition), used only as a check ----


# ---- reference: MONAI per-class losses, averaged here ----


# MONAI's one_hot defaults to float32; with squared_pred its ||y||^2 (vector_norm, then pow) is
# then computed in float32 (errors ~1e-8). One-hot targets are built in float64 instead.
monai.losses.dice.one_hot = one_hot_f64
monai.losses.tversky.one_hot = one_hot_f64


def monai_fn(o, kind, include_background, weight):
    act = {}
    if o["from_logits"]:
        act = {"softmax": True} if o["mode"] == "softmax" else {"sigmoid": True}
    common = dict(
        include_background=include_background,
        to_onehot_y=kind.startswith("indices"),
        batch=o["aggregation"] == "batch",
        soft_label=o["soft_label"],
        ignore_index=o["ignore_index"],
        reduction="none",
        **act,
    )
    nr, dr = o["smooth_nr"], o["smooth_dr"]
    if o["score"] == "tversky":
        assert not o["squared"] and weight is None
        return monai.losses.TverskyLoss(alpha=o["alpha"], beta=o["beta"], smooth_nr=nr, smooth_dr=dr, **common)
    if o["score"] == "jaccard":
        nr, dr = 2 * nr, 2 * dr
    return monai.losses.DiceLoss(
        jaccard=o["score"] == "jaccard", squared_pred=o["squared"], smooth_nr=nr, smooth_dr=dr, weight=weight, **common
    )


def monai_per_class(x, t, kind, o, include_background, weight=None):
    """MONAI's per-class losses as [N, K] (or [1, K] with batch=True)."""
    n, c = x.shape[:2]
    k = c if include_background else c - 1
    f = monai_fn(o, kind, include_background, weight)(x, t.double() if kind.startswith("indices") else t)
    spatial1 = [1] * (x.dim() - 2)
    if o["aggregation"] == "batch":
        expect = [k] if o["score"] == "tversky" else [k] + spatial1
    else:
        expect = [n, k] if o["score"] == "tversky" else [n, k] + spatial1
    assert list(f.shape) == expect, f"MONAI reduction='none' shape {list(f.shape)} != {expect}"
    return f.reshape(-1, k)


def reference(x, t, kind, o):
    c = x.shape[1]
    inc = o["include_background"]
    kept = slice(0, c) if inc else slice(1, c)
    l = monai_per_class(x, t, kind, o, inc)  # unweighted, [N or 1, K]
    if not inc:
        # softmax over all C, then channel 0 dropped: same as the with-background losses [:, 1:]
        full = monai_per_class(x, t, kind, o, True)
        assert_close(l, full[:, 1:], 1e-14, "MONAI include_background=False vs [:, 1:]")
    w = None
    if o["class_weights"] is not None:
        w = torch.tensor(o["class_weights"])[kept]
        fw = monai_per_class(x, t, kind, o, inc, weight=w.tolist())
        assert_close(fw, l * w, 1e-14, "MONAI weight multiplies the per-class loss")
        # MONAI 'mean' does not normalise by the weights; ours = MONAI mean / mean(w)
        mean = monai_fn(o, kind, inc, w.tolist())
        mean.reduction = "mean"
        tt = t.double() if kind.startswith("indices") else t
        assert_close(mean(x, tt), fw.mean(), 1e-14, "MONAI weighted mean = plain mean of w*l")
        if not inc:
            try:
                monai_fn(o, kind, False, o["class_weights"])(x, tt)
                raise AssertionError("MONAI accepted C weights with include_background=False")
            except ValueError:
                pass
        ours = fw.mean(1) / w.mean()
    if o["log_loss"]:
        score = 1.0 - l
        assert score.min().item() > 1.2 * LOG_CLAMP, "score near the log clamp"
        l = -torch.log(score.clamp_min(LOG_CLAMP))
    # class mask from the (masked) targets; constants
    y, valid = targets_and_valid(t, c, kind, o)
    _, _, sy = class_terms(y * valid, y * valid, o)
    m = class_mask(sy, c, o)[:, kept]
    per_item = average_classes(l, m)
    if o["class_weights"] is not None and o["average"] == "all" and not o["log_loss"]:
        assert_close(per_item, ours, 1e-14, "weighted: MONAI mean / mean(w)")
    return per_item


def check_soft_label(inp):
    """MONAI soft_label: the L1 form equals the plain one on one-hot targets and differs on soft."""
    xs = torch.from_numpy(inp["logits"].astype(np.float64))
    for key, same in (("per_class", True), ("per_class_soft", False)):
        y = torch.from_numpy(inp[key].astype(np.float64))
        a = monai.losses.DiceLoss(sigmoid=True, soft_label=True, reduction="none")(xs, y)
        b = monai.losses.DiceLoss(sigmoid=True, soft_label=False, reduction="none")(xs, y)
        diff = (a - b).abs().max().item()
        assert (diff < 1e-12) == same, f"soft_label on {key}: diff {diff}"


def main():
    rng = np.random.default_rng(20240611)
    inputs = {
        "img2d": make_class_input(rng, (3, 4, 7, 6), missing=[(0, 2)]),
        "vol3d": make_class_input(rng, (2, 3, 2, 4, 5)),
    }
    cases = []
    for name, inp in inputs.items():
        check_soft_label(inp)
        c = inp["logits"].shape[1]
        for kind, o in case_list(name, c):
            x = torch.from_numpy(inp["logits"].astype(np.float64))
            if not o["from_logits"]:
                # probabilities: the float32 softmax (sigmoid) of the logits, stored as the input
                p32 = activate(torch.from_numpy(inp["logits"]), dict(o, from_logits=True))
                assert p32.dtype == torch.float32
                x = torch.from_numpy(p32.numpy().astype(np.float64))
            t = torch.from_numpy(inp[kind].astype(np.int64 if kind.startswith("indices") else np.float64))
            if o["soft_label"]:
                p = activate(x, o)
                assert not bool((p == t).any()), "p == y somewhere: L1 subgradient ambiguous"
            x.requires_grad_(True)
            per_item = reference(x, t, kind, o)
            assert per_item.dtype == torch.float64 and bool(torch.isfinite(per_item).all())
            assert per_item.shape[0] == (1 if o["aggregation"] == "batch" else x.shape[0])
            per_item.mean().backward()
            assert bool(torch.isfinite(x.grad).all())
            x2 = x.detach().clone().requires_grad_(True)
            cf = overlap_closed_form(x2, t, kind, o)
            cf.mean().backward()
            assert_close(per_item, cf, TOL, f"{name} {kind} {o}: closed form value")
            assert_close(x.grad, x2.grad, TOL, f"{name} {kind} {o}: closed form grad")
            cases.append(case_record(name, kind, o, x, per_item))
    # average "present" must show the missing class on img2d (image 0 lacks class 2)
    by = {(c["input"], c["targets"], json.dumps(c["options"], sort_keys=True)): c for c in cases}
    d = by[("img2d", "indices", json.dumps(opts(), sort_keys=True))]
    pr = by[("img2d", "indices", json.dumps(opts(average="present"), sort_keys=True))]
    assert abs(d["per_item"][0] - pr["per_item"][0]) > 1e-3 and abs(d["per_item"][1] - pr["per_item"][1]) < 1e-15
    write_fixtures(
        OUT,
        "tests/reference/generate_multiclass.py",
        {"torch": torch.__version__, "monai": monai.__version__},
        inputs,
        ("logits", "indices", "indices_ignore", "per_class", "per_class_soft"),
        cases,
    )


if __name__ == "__main__":
    main()
