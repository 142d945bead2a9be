#!/usr/bin/env python3
"""Generates tests/reference/requested_multiclass.json: reference values and gradients of the
multiclass losses added on request (clDice, generalized Wasserstein Dice, focal Tversky with
smp's handling of absent classes), for `cargo test` (tests/multiclass.rs) to compare against.
Same schema as multiclass.json (fixture_common.write_fixtures), each case naming its loss.

Run by hand (not by CI), in a virtualenv outside the repository:

    python3 -m venv ~/venv-ref && ~/venv-ref/bin/pip install torch monai segmentation-models-pytorch
    ~/venv-ref/bin/python tests/reference/generate_requested_multiclass.py

References (no segloss code is involved):
- multiclass_cl_dice: monai.losses.SoftclDiceLoss(iter_, smooth_nr, smooth_dr, smooth,
  include_background, softmax=True, to_onehot_y=True) on class indices, or sigmoid=True on
  per-class targets (multilabel), reduction='none' (one value per image).
- wasserstein_dice: monai.losses.GeneralizedWassersteinDiceLoss(dist_matrix, weighting_mode,
  smooth_nr, smooth_dr, reduction='none') on class indices.
- multiclass_focal with gamma 0, label_smoothing and pixel_average 'torch_weighted':
  torch.nn.functional.cross_entropy(weight, ignore_index, label_smoothing), one value.
- dice_ce: monai.losses.DiceCELoss(softmax=True, to_onehot_y=True, include_background, weight,
  label_smoothing, lambda_dice, lambda_ce, smooth_nr, smooth_dr, squared_pred, batch), mean
  reduction (MONAI's only reduction where both terms are means: the case has no per_item).
- dice_focal: monai.losses.DiceFocalLoss(softmax=True, to_onehot_y=True, gamma, weight,
  lambda_dice, lambda_focal, ...), mean reduction, include_background=True.
- multiclass_overlap with the Tversky score and gamma: segmentation_models_pytorch.losses
  .TverskyLoss('multiclass' or 'multilabel', alpha, beta, gamma, smooth) (batch counts, L1
  intersection, absent classes scored 0 and counted: our aggregation 'batch', soft_label,
  average 'zero_absent'); one value for the batch. Class 2 is absent from the batch of the
  'absent2d' input.

Inputs are float32; every reference is computed in float64 from those exact values.
"""
import pathlib

import numpy as np
import torch
import torch.nn.functional as F
import monai
import segmentation_models_pytorch as smp
from segmentation_models_pytorch.losses import TverskyLoss
from fixture_common import case_record, make_class_input, write_fixtures

torch.set_default_dtype(torch.float64)
OUT = pathlib.Path(__file__).with_name("requested_multiclass.json")

# Not a metric: the distances need not be symmetric; the largest entry (2) is divided out.
DISTANCES = [[0.0, 2.0, 2.0], [2.0, 0.0, 0.6], [1.6, 1.0, 0.0]]


def cl_dice(x, inputs, kind, o):
    softmax = o["mode"] == "softmax"
    loss = monai.losses.SoftclDiceLoss(
        iter_=o["iterations"],
        smooth_nr=o["smooth_nr"],
        smooth_dr=o["smooth_dr"],
        smooth=o["smooth"],
        include_background=o["include_background"],
        softmax=softmax,
        sigmoid=not softmax,
        to_onehot_y=kind == "indices",
        reduction="none",
    )
    return loss(x, torch.from_numpy(inputs[kind]).to(torch.float64))


def wasserstein(x, inputs, kind, o):
    assert kind == "indices"
    loss = monai.losses.GeneralizedWassersteinDiceLoss(
        dist_matrix=torch.tensor(o["distances"]),
        weighting_mode="GDL" if o["weighting"] == "gdl" else "default",
        smooth_nr=o["smooth_nr"],
        smooth_dr=o["smooth_dr"],
        reduction="none",
    )
    return loss(x, torch.from_numpy(inputs[kind]))


def cross_entropy(x, inputs, kind, o):
    assert kind == "indices_ignore" and o["pixel_average"] == "torch_weighted" and o["gamma"] == 0.0
    w = torch.tensor(o["class_weights"]) if o["class_weights"] is not None else None
    y = torch.from_numpy(inputs[kind])[:, 0]
    return F.cross_entropy(x, y, weight=w, ignore_index=o["ignore_index"],
                           label_smoothing=o["label_smoothing"]).reshape(1)


def monai_preset(x, inputs, kind, o, focal):
    common = dict(
        softmax=True,
        to_onehot_y=True,
        include_background=o["include_background"],
        weight=torch.tensor(o["class_weights"]) if o["class_weights"] is not None else None,
        lambda_dice=o["lambda_dice"],
        smooth_nr=o["smooth_nr"],
        smooth_dr=o["smooth_dr"],
        squared_pred=o["squared"],
        batch=o["aggregation"] == "batch",
    )
    if focal:
        loss = monai.losses.DiceFocalLoss(gamma=o["gamma"], lambda_focal=o["lambda_focal"], **common)
    else:
        loss = monai.losses.DiceCELoss(label_smoothing=o["label_smoothing"], lambda_ce=o["lambda_ce"], **common)
    return loss(x, torch.from_numpy(inputs[kind])).reshape(1)


def focal_tversky(x, inputs, kind, o):
    mode = "multiclass" if o["mode"] == "softmax" else "multilabel"
    loss = TverskyLoss(mode, alpha=o["alpha"], beta=o["beta"], gamma=o["gamma"], smooth=o["smooth_nr"])
    target = torch.from_numpy(inputs[kind])
    if mode == "multiclass":
        target = target[:, 0]
    else:
        target = target.to(torch.float64)
    return loss(x, target).reshape(1)


def cases_of(name):
    cl = {"iterations": 3, "smooth_nr": 1.0, "smooth_dr": 1.0, "smooth": 1e-4, "include_background": True,
          "mode": "softmax"}
    wd = {"distances": DISTANCES, "weighting": "default", "smooth_nr": 1e-5, "smooth_dr": 1e-5}
    ft = {"score": "tversky", "alpha": 0.3, "beta": 0.7, "gamma": 0.75, "smooth_nr": 1e-5, "smooth_dr": 1e-5,
          "soft_label": True, "aggregation": "batch", "average": "zero_absent", "mode": "softmax"}
    out = [
        ("multiclass_cl_dice", cl_dice, "indices", cl),
        ("multiclass_cl_dice", cl_dice, "indices", {**cl, "include_background": False, "iterations": 2}),
        ("multiclass_cl_dice", cl_dice, "per_class", {**cl, "mode": "multilabel"}),
        ("wasserstein_dice", wasserstein, "indices", wd),
        ("wasserstein_dice", wasserstein, "indices", {**wd, "weighting": "gdl"}),
        ("wasserstein_dice", wasserstein, "indices", {**wd, "distances": None}),
        ("multiclass_overlap", focal_tversky, "indices", ft),
        ("multiclass_overlap", focal_tversky, "indices", {**ft, "gamma": 2.0}),
        ("multiclass_overlap", focal_tversky, "per_class", {**ft, "mode": "multilabel", "gamma": 4.0 / 3.0}),
    ]
    ce = {"gamma": 0.0, "class_weights": [0.5, 2.0, 1.0], "ignore_index": 255, "label_smoothing": 0.1,
          "pixel_average": "torch_weighted", "mode": "softmax"}
    preset = {"include_background": True, "class_weights": None, "lambda_dice": 1.0, "smooth_nr": 1e-5,
              "smooth_dr": 1e-5, "squared": False, "aggregation": "per_image", "mode": "softmax"}
    dce = {**preset, "lambda_ce": 1.0, "label_smoothing": 0.0}
    dfl = {**preset, "lambda_focal": 1.0, "gamma": 2.0}
    preset_fn = lambda focal: (lambda x, inputs, kind, o: monai_preset(x, inputs, kind, o, focal))
    out += [
        ("multiclass_focal", cross_entropy, "indices_ignore", ce),
        ("multiclass_focal", cross_entropy, "indices_ignore", {**ce, "class_weights": None, "label_smoothing": 0.2}),
        ("dice_ce", preset_fn(False), "indices", dce),
        ("dice_ce", preset_fn(False), "indices",
         {**dce, "class_weights": [0.5, 2.0, 1.0], "label_smoothing": 0.1, "lambda_dice": 0.7, "lambda_ce": 1.3}),
        ("dice_ce", preset_fn(False), "indices",
         {**dce, "include_background": False, "class_weights": [0.5, 2.0, 1.0], "aggregation": "batch",
          "squared": True}),
        ("dice_focal", preset_fn(True), "indices", dfl),
        ("dice_focal", preset_fn(True), "indices",
         {**dfl, "class_weights": [0.5, 2.0, 1.0], "gamma": 1.5, "lambda_dice": 0.6, "lambda_focal": 2.0}),
    ]
    if name == "volume3d":
        out = [c for c in out if c[0] != "multiclass_overlap"] + [out[6]]
    return out


def main():
    rng = np.random.default_rng(20261205)
    inputs = {
        "batch2d": make_class_input(rng, (3, 3, 10, 12), n_ignore_per_image=3, soft=False),
        "volume3d": make_class_input(rng, (2, 3, 5, 6, 7), n_ignore_per_image=3, soft=False),
        # Class 2 absent from both images: smp scores it 0 and still counts it in the mean.
        "absent2d": make_class_input(rng, (2, 3, 9, 8), missing=[(0, 2), (1, 2)], n_ignore_per_image=0,
                                     soft=False),
    }
    cases = []
    for name, inp in inputs.items():
        todo = cases_of(name) if name != "absent2d" else [c for c in cases_of(name) if c[0] == "multiclass_overlap"]
        for loss, fn, kind, o in todo:
            o = {**o, "from_logits": True}
            if loss == "wasserstein_dice" and o["distances"] is None:
                # Our default: 0 on the diagonal, 1 elsewhere.
                fn_o = {**o, "distances": (1.0 - np.eye(3)).tolist()}
            else:
                fn_o = o
            x = torch.from_numpy(inp["logits"].astype(np.float64)).requires_grad_(True)
            per_item = fn(x, inp, kind, fn_o)
            assert per_item.dtype == torch.float64 and bool(torch.isfinite(per_item).all()), loss
            per_item.mean().backward()
            assert bool(torch.isfinite(x.grad).all())
            record = case_record(name, kind, o, x, per_item)
            record["loss"] = loss
            if loss in ("dice_ce", "dice_focal"):
                # MONAI's value under its mean reduction only (see the docstring).
                record["per_item"] = None
                record["sum"] = None
            cases.append(record)
    versions = {"torch": torch.__version__, "monai": monai.__version__, "smp": smp.__version__}
    write_fixtures(OUT, "tests/reference/generate_requested_multiclass.py", versions, inputs,
                   ["logits", "indices", "indices_ignore", "per_class"], cases)


if __name__ == "__main__":
    main()
