#!/usr/bin/env python3
"""Generates tests/reference/multiclass_compound.json: reference values and gradients of the
multiclass Dice + cross-entropy (nnU-Net's loss) from MONAI, for `multiclass_compound`.

Run by hand (not by CI), in the virtualenv of generate.py:

    ~/venv-ref/bin/python tests/reference/generate_multiclass_compound.py

Inputs are those of multiclass.json (generate_multiclass.py), index targets. Reference:
monai.losses.DiceCELoss(softmax=True, to_onehot_y=True, lambda_dice, lambda_ce) for the
mean value and its gradient; per_item = lambda_dice * DiceLoss(softmax=True,
to_onehot_y=True, reduction="none") averaged over classes + lambda_ce * the per-image mean of
torch cross_entropy, asserted to average to DiceCELoss's value. float64 throughout.
"""
import json
import pathlib

import numpy as np
import torch
import torch.nn.functional as F
import monai

torch.set_default_dtype(torch.float64)
HERE = pathlib.Path(__file__).parent
OUT = HERE / "multiclass_compound.json"


def main():
    inputs = json.loads((HERE / "multiclass.json").read_text())["inputs"]
    cases = []
    for name, inp in inputs.items():
        shape = inp["shape"]
        index_shape = [shape[0], 1] + shape[2:]
        logits = np.array(inp["logits"], dtype=np.float32).reshape(shape)
        labels = torch.tensor(inp["indices"], dtype=torch.int64).reshape(index_shape)
        for lambda_dice, lambda_ce in [(1.0, 1.0), (0.7, 1.3)]:
            x = torch.from_numpy(logits.astype(np.float64)).requires_grad_(True)
            dice = monai.losses.DiceLoss(softmax=True, to_onehot_y=True, reduction="none")(x, labels)
            dice = dice.reshape(shape[0], shape[1]).mean(dim=1)
            ce = F.cross_entropy(x, labels[:, 0], reduction="none").reshape(shape[0], -1).mean(dim=1)
            per_item = lambda_dice * dice + lambda_ce * ce
            reference = monai.losses.DiceCELoss(
                softmax=True, to_onehot_y=True, lambda_dice=lambda_dice, lambda_ce=lambda_ce
            )(x, labels)
            assert abs(per_item.mean().item() - reference.item()) < 1e-12
            (grad,) = torch.autograd.grad(reference, x)
            cases.append(
                {
                    "input": name,
                    "targets": "indices",
                    "options": {
                        "terms": [
                            {"weight": lambda_dice, "loss": "multiclass_overlap"},
                            {"weight": lambda_ce, "loss": "multiclass_focal", "options": {"gamma": 0.0}},
                        ]
                    },
                    "input_values": None,
                    "per_item": per_item.detach().tolist(),
                    "mean": per_item.mean().item(),
                    "sum": per_item.sum().item(),
                    "grad_mean": grad.reshape(-1).tolist(),
                }
            )
    doc = {
        "generator": "tests/reference/generate_multiclass_compound.py",
        "versions": {"torch": torch.__version__, "monai": monai.__version__},
        "inputs": "those of multiclass.json",
        "cases": cases,
    }
    OUT.write_text(json.dumps(doc))
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
