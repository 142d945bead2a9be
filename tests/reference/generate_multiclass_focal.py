#!/usr/bin/env python3
"""Generates tests/reference/multiclass_focal.json: reference values and gradients of the
multiclass focal loss (`multiclass_focal`: softmax focal over C channels, or multilabel sigmoid
focal), for `cargo test` to compare against.

Run by hand (not by CI), in a virtualenv outside the repository:

    python3 -m venv ~/venv-ref && ~/venv-ref/bin/pip install torch monai
    ~/venv-ref/bin/python tests/reference/generate_multiclass_focal.py

Definition (ours). Per image n, per pixel i: L_i = sum over the kept classes c of w_c t_ic with
- softmax: t_ic = -(max(1 - p_ic, m))^gamma y_ic log p_ic, p = softmax over all C classes, log p
  from log_softmax (from probabilities: log(max(p, m))), m = 1.1754943508222875e-38;
- multilabel: t_ic = exp(gamma logsigmoid(-x_ic (2 y_ic - 1))) BCEwithlogits(x_ic, y_ic) (from
  probabilities: max(p + y - 2py, m)^gamma (-(y log max(p, m) + (1 - y) log max(1 - p, m))));
- kept classes: all, or all but class 0 without background; w_c = class weight, 1 by default;
- pixels whose index equals ignore_index are dropped: per_item_n = sum over the valid pixels of
  L_i / (number of valid pixels), 0 if none.
Gradients are of mean(per_item) w.r.t. the input.

References (no segloss code is involved). Every from-logits case goes through MONAI 1.6.1:
monai.losses.FocalLoss(use_softmax=(mode == "softmax"), to_onehot_y=(index targets), gamma,
weight, include_background=True, ignore_index, reduction="none"), which returns the elementwise
terms [N, C, ...]; they are summed over C and averaged over the (valid) pixels of each image
here. Without ignore_index, ours = MONAI reduction="mean" x (number of channels MONAI keeps)
(checked); with ignore_index MONAI's "mean" divides by the number of valid pixels only (not x C),
so it equals the mean of our per_item directly when every image has the same number of ignored
pixels (checked; here 2 per image).
- MONAI's softmax focal term is -(1 - p_c)^gamma log p_c y_c for every channel c: with one-hot
  targets only the true class contributes (the (1-p)^gamma factor is that of the true class);
  with soft targets every class contributes with its own (1 - p_c)^gamma (checked on
  per_class_soft). No clamp on 1 - p (ours clamps at m; no 1 - p here is below 1e-12, checked).
- weight: MONAI multiplies the [N, C, ...] terms by weight[c] (checked); its length must equal
  the number of channels MONAI keeps: C with include_background=True, C - 1 without (length C
  then raises ValueError, checked).
- include_background=False: MONAI drops input channel 0 BEFORE the softmax (softmax over the
  remaining C - 1 channels; checked: differs from ours). Ours keeps the softmax over all C and
  drops class 0's term, so the reference is MONAI with include_background=True and weight
  w with w_0 = 0. For multilabel (elementwise sigmoid) MONAI's include_background=False equals
  the include_background=True terms without class 0 (checked).
- ignore_index: MONAI 1.6.1 FocalLoss takes ignore_index. With label targets an out-of-range
  value (255) is replaced by 0 before one-hot; input and target are multiplied by the mask
  (so ignored pixels get zero gradient) and the loss too. Checked against the closed form.
- gamma = 0: equals torch.nn.functional.cross_entropy (softmax) per-image mean (checked).
- from_logits false: closed form only (MONAI always applies softmax/sigmoid; feeding log p
  would renormalise p). The input is the float32 softmax of the logits (stored as
  input_values); the closed form is also compared loosely (1e-5) with MONAI on log(p).
- MONAI's FocalLoss casts input and target with .float(); the generator patches Tensor.float
  to return float64 inside the MONAI call (`float_is_double`).

Every per_item and gradient is also checked (1e-10) against a closed-form torch float64
implementation of the definition above (`closed_form`). Inputs are float32 (what the Rust tests
feed); every reference is computed in float64 from those exact float32 values.
"""
import pathlib

import numpy as np
import torch
import torch.nn.functional as F
import monai
from fixture_common import (
    IGNORE,
    TOL,
    assert_close,
    float_is_double,
    make_class_input,
    targets_and_valid,
    case_record,
    write_fixtures,
)

torch.set_default_dtype(torch.float64)
OUT = pathlib.Path(__file__).with_name("multiclass_focal.json")
F32_MIN_POSITIVE = 1.1754943508222875e-38


# ---- inputs (same layout as generate_multiclass.py) ----


# ---- options ----


DEFAULTS = {
    "gamma": 2.0,
    "class_weights": None,
    "mode": "softmax",
    "include_background": True,
    "ignore_index": None,
    "from_logits": True,
}


def opts(**kw):
    assert set(kw) <= set(DEFAULTS), kw
    o = dict(DEFAULTS)
    o.update(kw)
    return o


def case_list(name, c):
    weights = [0.5, 1.0, 2.0, 1.0] if c == 4 else [0.5, 1.0, 2.0]
    return [
        ("indices", opts()),
        ("per_class", opts()),
        ("indices", opts(gamma=0.0)),
        ("indices", opts(gamma=0.5)),
        ("indices", opts(class_weights=weights)),
        ("indices", opts(include_background=False)),
        ("per_class", opts(mode="multilabel")),
        ("per_class_soft", opts(mode="multilabel")),
        ("indices_ignore", opts(ignore_index=IGNORE)),
        ("indices", opts(from_logits=False)),
    ]


# ---- closed form (our definition), used only as a check ----


def class_weights(c, o):
    w = torch.ones(c) if o["class_weights"] is None else torch.tensor(o["class_weights"])
    if not o["include_background"]:
        w = w.clone()
        w[0] = 0.0
    return w


def terms(x, y, o):
    """t_ic [N,C,...] of the definition."""
    m = F32_MIN_POSITIVE
    g = o["gamma"]
    if o["mode"] == "softmax":
        if o["from_logits"]:
            logp = torch.log_softmax(x, 1)
            p = logp.exp()
        else:
            p = x
            logp = torch.log(p.clamp_min(m))
        return -((1 - p).clamp_min(m) ** g) * y * logp
    if o["from_logits"]:
        bce = x.clamp_min(0) - x * y + torch.log1p(torch.exp(-x.abs()))
        return torch.exp(g * F.logsigmoid(-x * (2 * y - 1))) * bce
    p = x
    bce = -(y * torch.log(p.clamp_min(m)) + (1 - y) * torch.log((1 - p).clamp_min(m)))
    return (p + y - 2 * p * y).clamp_min(m) ** g * bce


def pixel_mean(l, valid):
    """l [N,C,...] (already zero where invalid), valid [N,1,...] -> per image sum / valid count."""
    n = l.shape[0]
    s = l.reshape(n, -1).sum(1)
    cnt = valid.reshape(n, -1).sum(1)
    return torch.where(cnt == 0, torch.zeros_like(s), s / cnt.clamp_min(1.0))


def closed_form(x, t, kind, o):
    c = x.shape[1]
    y, valid = targets_and_valid(t, c, kind, o)
    w = class_weights(c, o).view([1, c] + [1] * (x.dim() - 2))
    l = w * terms(x, y, o) * valid
    return pixel_mean(l, valid)


# ---- reference: MONAI elementwise terms, reduced here ----


def monai_focal(x, t, kind, o, include_background=True, weight=None, reduction="none"):
    f = monai.losses.FocalLoss(
        include_background=include_background,
        to_onehot_y=kind.startswith("indices"),
        gamma=o["gamma"],
        weight=weight,
        reduction=reduction,
        use_softmax=o["mode"] == "softmax",
        ignore_index=o["ignore_index"],
    )
    tt = t.double() if kind.startswith("indices") else t
    with float_is_double():
        l = f(x, tt)
    assert l.dtype == torch.float64
    if reduction == "none":
        k = x.shape[1] if include_background else x.shape[1] - 1
        expect = [x.shape[0], k] + list(x.shape[2:])
        assert list(l.shape) == expect, f"MONAI reduction='none' shape {list(l.shape)} != {expect}"
    return l


def reference(x, t, kind, o):
    """From logits only: MONAI terms (include_background=True, weight with w_0 = 0 for our
    include_background=False), summed over C and averaged over the valid pixels per image."""
    assert o["from_logits"]
    c = x.shape[1]
    y, valid = targets_and_valid(t, c, kind, o)
    w = class_weights(c, o)
    weight = None if (o["class_weights"] is None and o["include_background"]) else w.tolist()
    l = monai_focal(x, t, kind, o, True, weight)
    per_item = pixel_mean(l, valid)
    with torch.no_grad():
        xd = x.detach()
        plain = monai_focal(xd, t, kind, o)
        if weight is not None:
            # MONAI weight multiplies the elementwise terms per class
            assert_close(l.detach(), plain * w.view([1, c] + [1] * (x.dim() - 2)), 1e-14, "MONAI weight")
        # MONAI reduction "mean"
        mean = monai_focal(xd, t, kind, o, True, weight, reduction="mean")
        if o["ignore_index"] is None:
            assert_close(mean * c, per_item.mean(), 1e-13, "MONAI mean x C")
        else:
            cnt = valid.reshape(x.shape[0], -1).sum(1)
            assert bool((cnt == cnt[0]).all())
            assert_close(mean, per_item.mean(), 1e-13, "MONAI mean (ignore) = mean per_item")
        if not o["include_background"]:
            mb = monai_focal(xd, t, kind, o, False)
            if o["mode"] == "softmax":
                # MONAI: softmax over channels 1.. only
                d = (mb - plain[:, 1:]).abs().max().item()
                assert d > 1e-3, f"MONAI include_background=False unexpectedly equal ({d})"
                xs = xd[:, 1:]
                ys = y[:, 1:]
                expect = -((1 - torch.softmax(xs, 1)) ** o["gamma"]) * ys * torch.log_softmax(xs, 1)
                assert_close(mb, expect, 1e-13, "MONAI include_background=False = softmax over C-1")
                print(f"  MONAI include_background=False (softmax over C-1) differs from ours by up to {d:.3g}")
            else:
                assert_close(mb, plain[:, 1:], 1e-14, "MONAI multilabel include_background=False")
            # MONAI weight length must be C - 1 without background
            try:
                monai_focal(xd, t, kind, o, False, [1.0] * c)
                raise AssertionError("MONAI accepted C weights with include_background=False")
            except ValueError:
                pass
            monai_focal(xd, t, kind, o, False, [1.0] * (c - 1))
        if o["class_weights"] is not None and o["include_background"]:
            try:
                monai_focal(xd, t, kind, o, True, [1.0] * (c - 1))
                raise AssertionError("MONAI accepted C-1 weights with include_background=True")
            except ValueError:
                pass
        if o["mode"] == "softmax":
            p = torch.softmax(xd, 1)
            assert (1 - p).min().item() > 1e-12, "1 - p near 0: clamp would matter"
        if o["gamma"] == 0.0 and o["mode"] == "softmax" and kind == "indices":
            ce = F.cross_entropy(xd, t[:, 0], reduction="none")
            assert_close(per_item, ce.reshape(x.shape[0], -1).mean(1), 1e-13, "gamma 0 vs cross_entropy")
    return per_item


def check_soft_softmax(inp):
    """MONAI softmax focal on soft targets: every class contributes with its own (1 - p_c)^gamma."""
    x = torch.from_numpy(inp["logits"].astype(np.float64))
    y = torch.from_numpy(inp["per_class_soft"].astype(np.float64))
    o = opts()
    l = monai_focal(x, y, "per_class_soft", o)
    logp = torch.log_softmax(x, 1)
    assert_close(l, -((1 - logp.exp()) ** 2) * y * logp, 1e-14, "MONAI softmax focal on soft targets")
    # and not the true-class-only form (1 - sum_c y_c p_c)^gamma
    pt = (logp.exp() * y).sum(1, keepdim=True)
    alt = -((1 - pt) ** 2) * y * logp
    assert (l - alt).abs().max().item() > 1e-3


def main():
    rng = np.random.default_rng(20240617)
    inputs = {
        "img2d": make_class_input(rng, (3, 4, 7, 6), missing=[(0, 2)]),
        "vol3d": make_class_input(rng, (2, 3, 2, 4, 5)),
    }
    cases = []
    for name, inp in inputs.items():
        check_soft_softmax(inp)
        c = inp["logits"].shape[1]
        for kind, o in case_list(name, c):
            x = torch.from_numpy(inp["logits"].astype(np.float64))
            if not o["from_logits"]:
                # probabilities: the float32 softmax (sigmoid) of the logits, stored as the input
                l32 = torch.from_numpy(inp["logits"])
                p32 = torch.softmax(l32, 1) if o["mode"] == "softmax" else torch.sigmoid(l32)
                assert p32.dtype == torch.float32
                x = torch.from_numpy(p32.numpy().astype(np.float64))
            t = torch.from_numpy(inp[kind].astype(np.int64 if kind.startswith("indices") else np.float64))
            x.requires_grad_(True)
            if o["from_logits"]:
                per_item = reference(x, t, kind, o)
            else:
                per_item = closed_form(x, t, kind, o)
                # loose sanity check: MONAI on log p (renormalises p, so not exact)
                with torch.no_grad():
                    lp = torch.log(x.detach().clamp_min(F32_MIN_POSITIVE))
                    ml = monai_focal(lp, t, kind, dict(o, from_logits=True))
                    y, valid = targets_and_valid(t, c, kind, o)
                    assert_close(per_item.detach(), pixel_mean(ml, valid), 1e-5, "from_logits false vs MONAI on log p")
            assert per_item.dtype == torch.float64 and bool(torch.isfinite(per_item).all())
            assert per_item.shape[0] == x.shape[0]
            per_item.mean().backward()
            assert bool(torch.isfinite(x.grad).all())
            if o["ignore_index"] is not None:
                _, valid = targets_and_valid(t, c, kind, o)
                assert bool(((x.grad * (1 - valid)) == 0).all()), "ignored pixels have gradient"
            x2 = x.detach().clone().requires_grad_(True)
            cf = closed_form(x2, t, kind, o)
            cf.mean().backward()
            assert_close(per_item, cf, TOL, f"{name} {kind} {o}: closed form value")
            assert_close(x.grad, x2.grad, TOL, f"{name} {kind} {o}: closed form grad")
            cases.append(case_record(name, kind, o, x, per_item))
    # the options must matter: every case differs from the defaults case on the same input
    # (except per_class one-hot targets and from_logits false)
    for name in inputs:
        d = next(c for c in cases if c["input"] == name and c["targets"] == "indices" and c["options"] == opts())
        # per_class one-hot targets equal the index targets
        pc = next(c for c in cases if c["input"] == name and c["targets"] == "per_class" and c["options"] == opts())
        for c in cases:
            # (from_logits false: same value up to float32 rounding of p; its gradient is w.r.t. p)
            if c["input"] == name and c is not d and c is not pc and c["options"]["from_logits"]:
                assert abs(c["mean"] - d["mean"]) > 1e-6, f"{name} {c['targets']} {c['options']} equals defaults"
        assert max(abs(a - b) for a, b in zip(pc["per_item"], d["per_item"])) < 1e-14
    write_fixtures(
        OUT,
        "tests/reference/generate_multiclass_focal.py",
        {"torch": torch.__version__, "monai": monai.__version__},
        inputs,
        ("logits", "indices", "indices_ignore", "per_class", "per_class_soft"),
        cases,
    )


if __name__ == "__main__":
    main()
