#!/usr/bin/env python3
"""Generates tests/reference/nonfinite.json: what the PyTorch references give for logits that
hold a NaN or an infinity, for `tests/nonfinite.rs` to compare both execution paths against.

Run by hand (not by CI), in the virtualenv of generate.py:

    ~/venv-ref/bin/python tests/reference/generate_nonfinite.py

The batch is the one `tests/nonfinite.rs` builds ([2, 1, 4, 4], logits ((7i mod 32) - 15.3) / 5,
targets 1 where i mod 3 = 0), with
- `nan`: a NaN logit at pixel 5;
- `right`: +inf at pixel 0 (foreground) and -inf at pixel 1 (background): confident and
  right, so the limit of every loss is finite;
- `wrong`: -inf at pixel 3 (foreground) and +inf at pixel 4 (background): confident and
  wrong.
The references are generate.py's (torch BCEWithLogitsLoss, MONAI DiceLoss, smp
soft_jaccard_score and Lovász), run in float64 on the float32 values; the value is the mean
of the per-image losses. JSON has no NaN or infinity, so those are written as strings.
"""
import json
import math
import pathlib

import monai
import numpy as np
import segmentation_models_pytorch as smp
import torch

from generate import LOSSES

OUT = pathlib.Path(__file__).with_name("nonfinite.json")
SHAPE = (2, 1, 4, 4)
PIXELS = 32

OPTIONS = {
    "binary_cross_entropy": {"from_logits": True},
    "weighted_cross_entropy": {"from_logits": True, "prior": "batch"},
    "soft_dice": {"from_logits": True, "smooth_nr": 1e-5, "smooth_dr": 1e-5, "squared": False, "aggregation": "per_image"},
    "soft_jaccard": {"from_logits": True, "smooth_nr": 1e-5, "smooth_dr": 1e-5, "squared": False, "aggregation": "per_image"},
    "lovasz_hinge": {"from_logits": True, "per_image": True},
    "lovasz_sigmoid": {"from_logits": True, "per_image": True},
}


def encode(v):
    return v if math.isfinite(v) else str(v)


def main():
    base = np.array([((i * 7 % 32) - 15.3) / 5.0 for i in range(PIXELS)], dtype=np.float32)
    targets = np.array([float(i % 3 == 0) for i in range(PIXELS)], dtype=np.float32)
    variants = {"nan": {5: np.nan}, "right": {0: np.inf, 1: -np.inf}, "wrong": {3: -np.inf, 4: np.inf}}
    cases = []
    for name, changes in variants.items():
        logits = base.copy()
        for i, v in changes.items():
            logits[i] = v
        for loss, fn in LOSSES.items():
            x = torch.from_numpy(logits.astype(np.float64)).reshape(SHAPE)
            y = torch.from_numpy(targets.astype(np.float64)).reshape(SHAPE)
            value = fn(x, y, OPTIONS[loss]).double().mean().item()
            cases.append(
                {
                    "name": name,
                    "loss": loss,
                    "options": OPTIONS[loss],
                    "shape": list(SHAPE),
                    "logits": [encode(float(v)) for v in logits],
                    "targets": targets.tolist(),
                    "value": [encode(value)],
                }
            )
            print(f"{name:6} {loss:24} {value}")
    doc = {
        "generator": "tests/reference/generate_nonfinite.py",
        "versions": {"torch": torch.__version__, "monai": monai.__version__, "smp": smp.__version__},
        "cases": cases,
    }
    OUT.write_text(json.dumps(doc, indent=1))
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
