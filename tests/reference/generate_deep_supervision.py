#!/usr/bin/env python3
"""Generates tests/reference/deep_supervision.json: the value of MONAI's DeepSupervisionLoss and
its gradient with respect to every head, for `cargo test` (tests/deep_supervision.rs).

Run by hand (not by CI), in a virtualenv outside the repository:

    python3 -m venv ~/venv-ref && ~/venv-ref/bin/pip install torch monai
    ~/venv-ref/bin/python tests/reference/generate_deep_supervision.py

Reference (no segloss code is involved): monai.losses.DeepSupervisionLoss(DiceCELoss(softmax=True,
to_onehot_y=True), weight_mode, weights) on a list of heads (float32 logits, computed in float64)
and class indices at the first head's size, which MONAI resizes to each head by
interpolate(mode='nearest-exact'). Some heads have sizes that do not divide the full size, so
that the nearest-exact rule itself is exercised.
"""
import json
import pathlib

import numpy as np
import torch
import monai

torch.set_default_dtype(torch.float64)
OUT = pathlib.Path(__file__).with_name("deep_supervision.json")

CASES = [
    # (name, full shape, head spatial sizes, weight_mode, weights)
    ("exp2d", (2, 3, 16, 12), [(16, 12), (8, 6), (4, 3)], "exp", None),
    ("odd2d", (2, 3, 16, 12), [(16, 12), (7, 5), (3, 4)], "two", None),
    ("same3d", (2, 3, 8, 8, 6), [(8, 8, 6), (4, 4, 3), (3, 2, 2)], "same", None),
    ("explicit2d", (2, 4, 10, 10), [(10, 10), (5, 5), (20, 20)], "exp", [1.0, 0.3, 0.2]),
    ("many2d", (1, 3, 16, 16), [(16, 16), (8, 8), (4, 4), (2, 2), (2, 2), (1, 1)], "exp", None),
]


def main():
    rng = np.random.default_rng(20261205)
    cases = []
    for name, shape, sizes, mode, weights in CASES:
        n, c = shape[:2]
        heads = [(rng.standard_normal((n, c) + s) * 3.0).astype(np.float32) for s in sizes]
        classes = rng.integers(0, c, size=(n, 1) + shape[2:]).astype(np.int64)
        xs = [torch.from_numpy(h.astype(np.float64)).requires_grad_(True) for h in heads]
        loss = monai.losses.DeepSupervisionLoss(
            monai.losses.DiceCELoss(softmax=True, to_onehot_y=True), weight_mode=mode, weights=weights
        )
        value = loss(xs, torch.from_numpy(classes).to(torch.float64))
        value.backward()
        cases.append(
            {
                "name": name,
                "weight_mode": mode,
                "weights": weights,
                "heads": [{"shape": list(h.shape), "logits": h.reshape(-1).tolist()} for h in heads],
                "targets": {"shape": list(classes.shape), "indices": classes.reshape(-1).tolist()},
                "value": value.item(),
                "grads": [x.grad.reshape(-1).tolist() for x in xs],
            }
        )
    doc = {
        "generator": "tests/reference/generate_deep_supervision.py",
        "versions": {"torch": torch.__version__, "monai": monai.__version__},
        "cases": cases,
    }
    OUT.write_text(json.dumps(doc))
    print(f"wrote {len(cases)} cases to {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
