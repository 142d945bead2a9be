#!/usr/bin/env python3
"""Generates tests/reference/requested_binary.json: reference values and gradients of the binary
losses added on request (clDice, MCC, focal Tversky), for `cargo test` to compare against. Same
schema as losses.json (see generate.py).

Run by hand (not by CI), in a virtualenv outside the repository:

    python3 -m venv ~/venv-ref && ~/venv-ref/bin/pip install torch monai segmentation-models-pytorch
    ~/venv-ref/bin/python tests/reference/generate_requested_binary.py

References (no segloss code is involved):
- cl_dice: monai.losses.SoftclDiceLoss(iter_, smooth_nr, smooth_dr, smooth, sigmoid=from_logits,
  reduction='none') (MONAI 1.6: one value per image, sums over channels and pixels).
- mcc: segmentation_models_pytorch.losses.MCCLoss(eps) on sigmoid(x) (or the probabilities), over
  the whole batch (one value); with aggregation 'per_image', MCCLoss of each image alone.
- tversky with gamma: segmentation_models_pytorch.losses.TverskyLoss('binary', alpha, beta,
  gamma, smooth, from_logits) (counts over the batch, one value; its intersection is the L1 form,
  our soft_label); with aggregation 'per_image', TverskyLoss of each image alone.

Inputs are float32 (what the Rust tests feed); every reference is computed in float64 from those
exact float32 values. Gradients are of the mean over items of per_item w.r.t. the input.
"""
import json
import pathlib

import numpy as np
import torch
import monai
import segmentation_models_pytorch as smp
from segmentation_models_pytorch.losses import MCCLoss, TverskyLoss
from fixture_common import binary_fixture_doc, make_binary_input

torch.set_default_dtype(torch.float64)
OUT = pathlib.Path(__file__).with_name("requested_binary.json")


def cl_dice(x, y, o):
    loss = monai.losses.SoftclDiceLoss(
        iter_=o["iterations"],
        smooth_nr=o["smooth_nr"],
        smooth_dr=o["smooth_dr"],
        smooth=o["smooth"],
        sigmoid=o["from_logits"],
        reduction="none",
    )
    return loss(x, y)


def per_image_or_batch(fn, x, y, o):
    """`fn` of the whole batch ([1]) or of each image alone ([N])."""
    if o["aggregation"] == "batch":
        return fn(x, y).reshape(1)
    return torch.stack([fn(x[i : i + 1], y[i : i + 1]) for i in range(x.shape[0])])


def mcc(x, y, o):
    loss = MCCLoss(eps=o["eps"])
    return per_image_or_batch(lambda a, b: loss(torch.sigmoid(a) if o["from_logits"] else a, b), x, y, o)


def tversky(x, y, o):
    assert o["soft_label"], "smp's Tversky intersection is the L1 form"
    loss = TverskyLoss(
        "binary",
        alpha=o["alpha"],
        beta=o["beta"],
        gamma=o["gamma"],
        smooth=o["smooth_nr"],
        from_logits=o["from_logits"],
    )
    assert o["smooth_nr"] == o["smooth_dr"]
    return per_image_or_batch(loss, x, y, o)


LOSSES = {"cl_dice": cl_dice, "mcc": mcc, "tversky": tversky}


def option_sets(loss, name):
    if loss == "cl_dice":
        base = {"iterations": 3, "smooth_nr": 1.0, "smooth_dr": 1.0, "smooth": 1e-4, "from_logits": True}
        sets = [base, {**base, "iterations": 1}, {**base, "from_logits": False}]
        if name == "batch2d":
            sets += [{**base, "iterations": 0}, {**base, "smooth_nr": 0.0, "smooth_dr": 0.5, "smooth": 0.01}]
        return sets
    if loss == "mcc":
        base = {"eps": 1e-5, "aggregation": "batch", "from_logits": True}
        return [base, {**base, "aggregation": "per_image"}, {**base, "from_logits": False, "eps": 1e-3}]
    base = {
        "alpha": 0.3,
        "beta": 0.7,
        "gamma": 0.75,
        "smooth_nr": 1e-5,
        "smooth_dr": 1e-5,
        "soft_label": True,
        "aggregation": "batch",
        "from_logits": True,
    }
    return [base, {**base, "gamma": 2.0}, {**base, "aggregation": "per_image", "gamma": 4.0 / 3.0}]


def main():
    rng = np.random.default_rng(20261205)
    inputs = {
        "batch2d": make_binary_input(rng, (4, 1, 12, 10)),
        "volume3d": make_binary_input(rng, (2, 1, 6, 7, 8)),
    }
    doc = binary_fixture_doc(
        "tests/reference/generate_requested_binary.py",
        {"torch": torch.__version__, "monai": monai.__version__, "smp": smp.__version__},
        inputs,
        LOSSES,
        option_sets,
    )
    cases = doc["cases"]
    OUT.write_text(json.dumps(doc))
    print(f"wrote {len(cases)} cases to {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
