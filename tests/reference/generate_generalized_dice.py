#!/usr/bin/env python3
"""Generates tests/reference/generalized_dice.json: reference values and gradients of the
generalized Dice loss (`generalized_dice`, Sudre et al. 2017), for `cargo test` to compare
against.

Run by hand (not by CI), in a virtualenv outside the repository:

    python3 -m venv ~/venv-ref && ~/venv-ref/bin/pip install torch monai
    ~/venv-ref/bin/python tests/reference/generate_generalized_dice.py

Definition (ours). Per image (aggregation "per_image") or once for the batch ("batch"), over
the kept classes c (class 0 dropped after the softmax when include_background is false):
I_c = sum p_c y_c, P_c = sum p_c, Y_c = sum y_c (pixels whose index equals ignore_index are
removed from every sum); w_c = 1/Y_c^2 ("square"), 1/Y_c ("simple") or 1 ("uniform"); a weight
that is infinite (Y_c = 0) is replaced by the largest finite weight of that image (of the batch
with "batch"), 0 if there is none; loss = 1 - (2 sum_c w_c I_c + smooth_nr) /
(sum_c w_c (P_c + Y_c) + smooth_dr). p = softmax over dim 1 ("softmax") or sigmoid
("multilabel") of the logits (from_logits true), else the input itself. The weights depend on
the targets only: they are constants for the gradient. Gradients are of mean(per_item) w.r.t.
the input.

Reference (no segloss code is involved): monai.losses.GeneralizedDiceLoss(softmax=True |
sigmoid=True (multilabel) | neither (from_logits false), to_onehot_y=(index targets),
include_background, w_type, smooth_nr, smooth_dr, batch, reduction="none"), MONAI 1.6.1.
What its source does (monai/losses/dice.py, GeneralizedDiceLoss.forward), and what is checked:
- tp, fp, fn from compute_tp_fp_fn (tp = sum p y, fp = sum p - tp, fn = sum y - tp);
  denominator = 2 (tp + fp/2 + fn/2) = P + Y.
- ground_o = sum(target) over the reduced axes; w = w_func(ground_o.float()): reciprocal of
  Y^2, of Y, or ones. `.float()` makes the weights float32; the reference runs with
  Tensor.float returning float64 (`float64_weights`), otherwise 1/Y^2 is rounded to float32
  (loss off by up to ~9e-10 on img2d; checked < 1e-7).
- infinite weights: `infs = isinf(w); w[infs] = 0; w = w + infs * max(w)` with the max taken
  per image over the classes (dim 1), or over everything with batch=True. So an infinite weight
  becomes the largest finite weight of its image (batch), and 0 if all are infinite (checked on
  the input "bg_only2d", whose image 0 is all background: with include_background false that
  image's loss is 1 - smooth_nr/smooth_dr = 0).
- autograd: the weights come from the target only and MONAI does not detach them; the target
  does not require grad, so no gradient flows through them (checked: the input gradient equals
  the closed form with the weights computed under no_grad). MONAI could not differentiate
  through them anyway: with a target that requires grad, backward raises "one of the variables
  needed for gradient computation has been modified by an inplace operation" (reciprocal saves
  its output, which `w[infs] = 0.0` then modifies) for "square" (checked).
- reduction="none" shape: [N, 1, 1...] per image; with batch=True [1, 1...] (one dim fewer:
  f has shape [1] and MONAI views it as f.shape[0:2] + [1] * spatial dims) (checked).
- include_background=False: softmax over all C channels, then channel 0 dropped from p and y.
- ignore_index is not a GeneralizedDiceLoss argument in MONAI 1.6.1. For the ignore_index cases
  the reference is MONAI's loss (softmax=False, to_onehot_y=False) on p * valid and
  one_hot(label) * valid, with p computed outside (softmax over all C, so the gradient flows
  through it) and ignored labels replaced by 0 before the one-hot: exactly "ignored pixels are
  removed from every sum".
- MONAI's one_hot (to_onehot_y) builds float32 targets; it is made to return float64 here.

Every per_item and gradient is also checked (1e-10) against a closed-form torch float64
implementation of the definition above (`closed_form`). Inputs are float32 (what the Rust tests
feed); every reference is computed in float64 from those exact float32 values.
"""
import json
import pathlib

import numpy as np
import torch
import monai
from fixture_common import (
    IGNORE,
    TOL,
    activate,
    assert_close,
    make_class_input,
    one_hot_f64,
    targets_and_valid,
    case_record,
    write_fixtures,
)

torch.set_default_dtype(torch.float64)
OUT = pathlib.Path(__file__).with_name("generalized_dice.json")


monai.losses.dice.one_hot = one_hot_f64


class float64_weights:
    """MONAI computes w = w_func(ground_o.float()), i.e. in float32. Inside this context
    `Tensor.float()` returns float64, so the unmodified MONAI code runs in float64."""

    def __enter__(self):
        self.saved = torch.Tensor.float
        torch.Tensor.float = lambda t, *a, **k: t.double()

    def __exit__(self, *exc):
        torch.Tensor.float = self.saved


# ---- options ----


DEFAULTS = {
    "weight_type": "square",
    "mode": "softmax",
    "from_logits": True,
    "include_background": True,
    "ignore_index": None,
    "smooth_nr": 1e-5,
    "smooth_dr": 1e-5,
    "aggregation": "per_image",
}


def opts(**kw):
    assert set(kw) <= set(DEFAULTS), kw
    o = dict(DEFAULTS)
    o.update(kw)
    return o


def case_list(name):
    if name == "bg_only2d":
        return [
            ("indices", opts()),
            ("indices", opts(include_background=False)),
            ("indices", opts(include_background=False, weight_type="simple")),
            ("indices", opts(include_background=False, aggregation="batch")),
        ]
    return [
        ("indices", opts()),
        ("per_class", opts()),
        ("indices", opts(weight_type="simple")),
        ("indices", opts(weight_type="uniform")),
        ("indices", opts(include_background=False)),
        ("indices", opts(aggregation="batch")),
        ("indices", opts(aggregation="batch", weight_type="simple", include_background=False)),
        ("per_class", opts(mode="multilabel")),
        ("per_class", opts(mode="multilabel", weight_type="simple", aggregation="batch")),
        ("indices", opts(from_logits=False)),
        ("indices", opts(smooth_nr=0.5, smooth_dr=2.0)),
        ("indices_ignore", opts(ignore_index=IGNORE)),
        ("indices", opts(ignore_index=0, include_background=False)),
    ]


# ---- closed form (our definition), used only as a check ----


def closed_form(x, t, kind, o):
    n, c = x.shape[:2]
    p = activate(x, o)
    y, valid = targets_and_valid(t, c, kind, o)
    p, y = p * valid, y * valid
    if not o["include_background"]:
        p, y = p[:, 1:], y[:, 1:]
    k = p.shape[1]
    p, y = p.reshape(n, k, -1), y.reshape(n, k, -1)
    if o["aggregation"] == "batch":
        p, y = p.movedim(0, 1).reshape(1, k, -1), y.movedim(0, 1).reshape(1, k, -1)
    i, sp, sy = (p * y).sum(2), p.sum(2), y.sum(2)
    with torch.no_grad():
        ycount = sy.detach()
        w = torch.zeros_like(ycount)
        for r in range(ycount.shape[0]):
            for cc in range(k):
                yc = ycount[r, cc].item()
                if yc > 0:
                    w[r, cc] = {"square": 1.0 / (yc * yc), "simple": 1.0 / yc, "uniform": 1.0}[o["weight_type"]]
                elif o["weight_type"] == "uniform":
                    w[r, cc] = 1.0
            finite_max = max([w[r, cc].item() for cc in range(k) if ycount[r, cc] > 0 or o["weight_type"] == "uniform"], default=0.0)
            for cc in range(k):
                if ycount[r, cc] == 0 and o["weight_type"] != "uniform":
                    w[r, cc] = finite_max
    num = 2.0 * (w * i).sum(1) + o["smooth_nr"]
    den = (w * (sp + sy)).sum(1) + o["smooth_dr"]
    return 1.0 - num / den


# ---- reference: MONAI ----


def monai_loss(o, use_act, onehot):
    act = {}
    if use_act and o["from_logits"]:
        act = {"softmax": True} if o["mode"] == "softmax" else {"sigmoid": True}
    return monai.losses.GeneralizedDiceLoss(
        include_background=o["include_background"],
        to_onehot_y=onehot,
        w_type=o["weight_type"],
        smooth_nr=o["smooth_nr"],
        smooth_dr=o["smooth_dr"],
        batch=o["aggregation"] == "batch",
        reduction="none",
        **act,
    )


def reference(x, t, kind, o, f64=True):
    n, c = x.shape[:2]
    if o["ignore_index"] is None:
        args = (x, t.double() if kind.startswith("indices") else t)
        fn = monai_loss(o, True, kind.startswith("indices"))
    else:
        # MONAI's GDL has no ignore_index: masked probabilities and one-hot targets instead
        y, valid = targets_and_valid(t, c, kind, o)
        args = (activate(x, o) * valid, y * valid)
        fn = monai_loss(o, False, False)
    if f64:
        with float64_weights():
            f = fn(*args)
    else:
        f = fn(*args)
    spatial1 = [1] * (x.dim() - 2)
    expect = [1] + spatial1 if o["aggregation"] == "batch" else [n, 1] + spatial1
    assert list(f.shape) == expect, f"MONAI reduction='none' shape {list(f.shape)} != {expect}"
    return f.reshape(-1)


def check_autograd_through_weights(inp):
    """MONAI does not detach w. Returns what happens when the target requires grad (square
    weights: reciprocal saves its output, which `w[infs] = 0` then modifies in place)."""
    x = torch.from_numpy(inp["logits"].astype(np.float64))
    y = torch.from_numpy(inp["per_class"].astype(np.float64)).requires_grad_(True)
    with float64_weights():
        f = monai.losses.GeneralizedDiceLoss(softmax=True, reduction="none")(x, y)
    try:
        f.sum().backward()
    except RuntimeError as e:
        assert "modified by an inplace operation" in str(e), e
        return "backward raises (in-place w[infs] = 0 on reciprocal's saved output)"
    raise AssertionError("MONAI GDL backward through a target requiring grad succeeded")


def main():
    rng = np.random.default_rng(20170714)
    inputs = {
        "img2d": make_class_input(rng, (3, 4, 7, 6), missing=[(0, 2), (1, 3)], n_ignore_per_image=3, soft=False),
        "vol3d": make_class_input(rng, (2, 3, 2, 4, 5), missing=[(1, 1)], n_ignore_per_image=3, soft=False),
        "bg_only2d": make_class_input(
            rng, (2, 3, 5, 4), missing=[(1, 2)], all_background=[0], n_ignore_per_image=3, soft=False
        ),
    }
    cases = []
    for name, inp in inputs.items():
        print(name, "target requiring grad:", check_autograd_through_weights(inp))
        for kind, o in case_list(name):
            x = torch.from_numpy(inp["logits"].astype(np.float64))
            if not o["from_logits"]:
                # probabilities: the float32 softmax (sigmoid) of the logits, stored as the input
                p32 = activate(torch.from_numpy(inp["logits"]), dict(o, from_logits=True))
                assert p32.dtype == torch.float32
                x = torch.from_numpy(p32.numpy().astype(np.float64))
            t = torch.from_numpy(inp[kind].astype(np.int64 if kind.startswith("indices") else np.float64))
            x.requires_grad_(True)
            per_item = reference(x, t, kind, o)
            assert per_item.dtype == torch.float64 and bool(torch.isfinite(per_item).all())
            assert per_item.shape[0] == (1 if o["aggregation"] == "batch" else x.shape[0])
            per_item.mean().backward()
            assert bool(torch.isfinite(x.grad).all())
            # unpatched MONAI (float32 weights) is close but not 1e-10 exact
            with torch.no_grad():
                f32w = reference(x.detach(), t, kind, o, f64=False)
            assert_close(per_item, f32w, 1e-7, f"{name} {o}: float32 weights")
            x2 = x.detach().clone().requires_grad_(True)
            cf = closed_form(x2, t, kind, o)
            cf.mean().backward()
            assert_close(per_item, cf, TOL, f"{name} {kind} {o}: closed form value")
            assert_close(x.grad, x2.grad, TOL, f"{name} {kind} {o}: closed form grad")
            cases.append(case_record(name, kind, o, x, per_item))
    by = {(c["input"], c["targets"], json.dumps(c["options"], sort_keys=True)): c for c in cases}
    # bg_only2d image 0 without background: every weight infinite -> 0 -> 1 - s_nr/s_dr = 0
    v = by[("bg_only2d", "indices", json.dumps(opts(include_background=False), sort_keys=True))]["per_item"]
    assert abs(v[0]) < 1e-15, v
    # per_class targets give the same values as index targets
    a = by[("img2d", "indices", json.dumps(opts(), sort_keys=True))]
    b = by[("img2d", "per_class", json.dumps(opts(), sort_keys=True))]
    assert_close(a["per_item"], b["per_item"], 1e-14, "indices vs per_class")
    write_fixtures(
        OUT,
        "tests/reference/generate_generalized_dice.py",
        {"torch": torch.__version__, "monai": monai.__version__},
        inputs,
        ("logits", "indices", "indices_ignore", "per_class"),
        cases,
    )


if __name__ == "__main__":
    main()
