#!/usr/bin/env python3
"""Generates tests/reference/losses.json: reference values and gradients of the binary losses
from the public PyTorch implementations, for `cargo test` to compare against.

Run by hand (not by CI), in a virtualenv outside the repository:

    python3 -m venv ~/venv-ref && ~/venv-ref/bin/pip install torch monai segmentation-models-pytorch
    ~/venv-ref/bin/python tests/reference/generate.py

References (no segloss code is involved):
- CE:  torch.nn.BCEWithLogitsLoss / BCELoss (reduction='none', mean per image)
- wCE: torch.nn.BCEWithLogitsLoss(weight=w) with w = y/(2q) + (1-y)/(2-2q) per pixel
- soft Dice: monai.losses.DiceLoss(sigmoid=..., smooth_nr, smooth_dr, squared_pred, batch)
- soft Jaccard: segmentation_models_pytorch soft_jaccard_score (per image: dims=(1,),
  batch: dims=(0, 1)); smp puts one `smooth` on both sides, so smooth_nr = smooth_dr here
- Lovász hinge: smp `_lovasz_hinge` (a port of Berman's reference), per_image True/False
- Lovász-sigmoid: smp `_lovasz_softmax` (Berman's `lovasz_softmax`) on sigmoid probabilities
  with one channel and classes=[1]
  (both Lovász references run in float64: see `float_is_double`)

Inputs are float32 (what the Rust tests feed); every reference is computed in float64 from
those exact float32 values. Gradients are of the mean-reduced loss w.r.t. the input.
"""
import json
import pathlib

import numpy as np
import torch
import monai
import segmentation_models_pytorch as smp
from segmentation_models_pytorch.losses._functional import soft_jaccard_score
from segmentation_models_pytorch.losses.lovasz import _lovasz_hinge, _lovasz_softmax
from fixture_common import binary_fixture_doc, float_is_double, make_binary_input, per_image_mean

torch.set_default_dtype(torch.float64)
OUT = pathlib.Path(__file__).with_name("losses.json")


def bce(x, y, opts):
    if opts["from_logits"]:
        l = torch.nn.BCEWithLogitsLoss(reduction="none")(x, y)
    else:
        l = torch.nn.BCELoss(reduction="none")(x, y)
    return per_image_mean(l)


def wce(x, y, opts):
    prior = opts["prior"]
    q = y.mean() if prior == "batch" else torch.tensor(prior)
    w_fg = opts.get("fg_weight") or 1.0 / (2.0 * q)
    w_bg = opts.get("bg_weight") or 1.0 / (2.0 - 2.0 * q)
    w = y * w_fg + (1.0 - y) * w_bg
    if opts["from_logits"]:
        l = torch.nn.BCEWithLogitsLoss(weight=w, reduction="none")(x, y)
    else:
        l = torch.nn.BCELoss(weight=w, reduction="none")(x, y)
    return per_image_mean(l)


def dice(x, y, opts):
    # MONAI wants a channel dimension: [N, 1, ...].
    if x.dim() == 3:
        x, y = x.unsqueeze(1), y.unsqueeze(1)
    loss = monai.losses.DiceLoss(
        sigmoid=opts["from_logits"],
        smooth_nr=opts["smooth_nr"],
        smooth_dr=opts["smooth_dr"],
        squared_pred=opts["squared"],
        batch=opts["aggregation"] == "batch",
        reduction="none",
    )(x, y)
    return loss.reshape(-1)


def jaccard(x, y, opts):
    assert opts["smooth_nr"] == opts["smooth_dr"]
    p = torch.sigmoid(x) if opts["from_logits"] else x
    p, y = p.reshape(p.shape[0], -1), y.reshape(y.shape[0], -1)
    dims = (0, 1) if opts["aggregation"] == "batch" else (1,)
    score = soft_jaccard_score(p, y, smooth=opts["smooth_nr"], eps=0.0, dims=dims)
    return (1.0 - score).reshape(-1)


def lovasz_hinge(x, y, opts):
    with float_is_double():
        return _lovasz_hinge_ref(x, y, opts)


def _lovasz_hinge_ref(x, y, opts):
    n = x.shape[0]
    x3, y3 = x.reshape(n, 1, -1), y.reshape(n, 1, -1)  # smp flattens each [H, W] image
    if opts["per_image"]:
        return torch.stack([_lovasz_hinge(x3[i : i + 1], y3[i : i + 1], per_image=False) for i in range(n)])
    return _lovasz_hinge(x3, y3, per_image=False).reshape(1)


def lovasz_sigmoid(x, y, opts):
    with float_is_double():
        return _lovasz_sigmoid_ref(x, y, opts)


def _lovasz_sigmoid_ref(x, y, opts):
    n = x.shape[0]
    p = torch.sigmoid(x) if opts["from_logits"] else x
    p4, y3 = p.reshape(n, 1, 1, -1), y.reshape(n, 1, -1)
    if opts["per_image"]:
        return torch.stack(
            [_lovasz_softmax(p4[i : i + 1], y3[i : i + 1], classes=[1], per_image=False) for i in range(n)]
        )
    return _lovasz_softmax(p4, y3, classes=[1], per_image=False).reshape(1)


LOSSES = {
    "binary_cross_entropy": bce,
    "weighted_cross_entropy": wce,
    "soft_dice": dice,
    "soft_jaccard": jaccard,
    "lovasz_hinge": lovasz_hinge,
    "lovasz_sigmoid": lovasz_sigmoid,
}


def option_sets(loss):
    base = [{"from_logits": True}, {"from_logits": False}]
    if loss == "binary_cross_entropy":
        return base
    if loss == "weighted_cross_entropy":
        return [
            {"from_logits": True, "prior": "batch"},
            {"from_logits": False, "prior": "batch"},
            {"from_logits": True, "prior": 0.1},
            {"from_logits": True, "prior": "batch", "fg_weight": 3.0},
            {"from_logits": True, "prior": 0.3, "fg_weight": 2.0, "bg_weight": 0.5},
        ]
    if loss in ("soft_dice", "soft_jaccard"):
        sets = []
        for agg in ("per_image", "batch"):
            for s in (1e-5, 1.0, 0.0):
                sets.append({"from_logits": True, "smooth_nr": s, "smooth_dr": s, "squared": False, "aggregation": agg})
        sets.append({"from_logits": False, "smooth_nr": 1e-5, "smooth_dr": 1e-5, "squared": False, "aggregation": "per_image"})
        if loss == "soft_dice":
            for agg in ("per_image", "batch"):
                sets.append({"from_logits": True, "smooth_nr": 1e-5, "smooth_dr": 1e-5, "squared": True, "aggregation": agg})
            sets.append({"from_logits": True, "smooth_nr": 0.5, "smooth_dr": 2.0, "squared": False, "aggregation": "per_image"})
        return sets
    if loss == "lovasz_hinge":
        return [{"from_logits": True, "per_image": True}, {"from_logits": True, "per_image": False}]
    if loss == "lovasz_sigmoid":
        return [
            {"from_logits": True, "per_image": True},
            {"from_logits": True, "per_image": False},
            {"from_logits": False, "per_image": True},
        ]
    raise KeyError(loss)


def main():
    rng = np.random.default_rng(20191013)
    inputs = {
        "batch2d": make_binary_input(rng, (4, 1, 12, 10), empty_first=True, full_last=True),
        "plain2d": make_binary_input(rng, (3, 9, 7)),
        "volume3d": make_binary_input(rng, (2, 1, 3, 5, 6)),
    }
    doc = binary_fixture_doc(
        "tests/reference/generate.py",
        {"torch": torch.__version__, "monai": monai.__version__, "smp": smp.__version__},
        inputs,
        LOSSES,
        lambda loss, _input: option_sets(loss),
    )
    cases = doc["cases"]
    OUT.write_text(json.dumps(doc))
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
