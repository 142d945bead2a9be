#!/usr/bin/env python3
"""Generates tests/reference/metrics.json: hard-metric references from smp and MONAI.

Run by hand in the same virtualenv as generate.py:

    ~/venv-ref/bin/python tests/reference/generate_metrics.py

References (no segloss code involved):
- counts: segmentation_models_pytorch.metrics.get_stats(mode="binary", threshold=0.5)
- per image, empty policy One: smp f1_score / iou_score / accuracy / balanced_accuracy with
  reduction=None (zero_division=1.0: both masks empty is a perfect score)
- micro: smp iou_score / f1_score with reduction="micro"
- empty policy Nan: MONAI DiceMetric / MeanIoU(include_background=True, ignore_empty=True,
  reduction="none") (empty target -> NaN)
- empty policy Zero: MONAI DiceMetric(ignore_empty=False) gives 1 for empty/empty, so the Zero
  policy is checked from counts in the Rust tests instead.
"""
import json
import pathlib

import numpy as np
import torch
import monai
import segmentation_models_pytorch as smp
from monai.metrics import DiceMetric, MeanIoU

OUT = pathlib.Path(__file__).with_name("metrics.json")


def main():
    rng = np.random.default_rng(2019)
    n, h, w = 8, 7, 9
    prob = rng.uniform(size=(n, 1, h, w)).astype(np.float32)
    target = np.zeros((n, 1, h, w), dtype=np.int64)
    for i in range(n):
        target[i] = rng.uniform(size=(1, h, w)) < rng.uniform(0.05, 0.6)
    prob[0] = 0.1; target[0] = 0          # both empty
    target[1] = 0                          # empty target, non-empty prediction
    prob[2] = 0.2                          # empty prediction, non-empty target
    target[3] = 1                          # full target

    out = torch.from_numpy(prob)
    tgt = torch.from_numpy(target)
    tp, fp, fn, tn = smp.metrics.get_stats(out, tgt, mode="binary", threshold=0.5)
    pred = (out > 0.5).long()

    def per_image(t):
        return t.reshape(-1).double().tolist()

    dice_nan = DiceMetric(include_background=True, reduction="none", ignore_empty=True)(pred, tgt)
    iou_nan = MeanIoU(include_background=True, reduction="none", ignore_empty=True)(pred, tgt)
    doc = {
        "generator": "tests/reference/generate_metrics.py",
        "versions": {"torch": torch.__version__, "monai": monai.__version__, "smp": smp.__version__},
        "shape": [n, 1, h, w],
        "probabilities": prob.reshape(-1).tolist(),
        "targets": target.reshape(-1).astype(float).tolist(),
        "tp": tp.reshape(-1).tolist(),
        "fp": fp.reshape(-1).tolist(),
        "fn": fn.reshape(-1).tolist(),
        "tn": tn.reshape(-1).tolist(),
        "dice_one": per_image(smp.metrics.f1_score(tp, fp, fn, tn, reduction=None)),
        "jaccard_one": per_image(smp.metrics.iou_score(tp, fp, fn, tn, reduction=None)),
        "hamming": per_image(smp.metrics.accuracy(tp, fp, fn, tn, reduction=None)),
        "balanced_accuracy_one": per_image(smp.metrics.balanced_accuracy(tp, fp, fn, tn, reduction=None)),
        "dice_micro": smp.metrics.f1_score(tp, fp, fn, tn, reduction="micro").item(),
        "jaccard_micro": smp.metrics.iou_score(tp, fp, fn, tn, reduction="micro").item(),
        # JSON has no NaN: null marks an image MONAI leaves out.
        "dice_nan": [None if np.isnan(v) else v for v in per_image(dice_nan)],
        "jaccard_nan": [None if np.isnan(v) else v for v in per_image(iou_nan)],
    }
    OUT.write_text(json.dumps(doc, indent=0))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
