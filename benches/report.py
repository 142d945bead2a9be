"""Turns a `cargo bench --bench losses` run (criterion's JSON under <target>/criterion) and,
optionally, the JSON of `benches/torch_reference.py` into the README's benchmark tables.

    python3 benches/report.py [--target target] [--torch torch.json]

Medians only (criterion's `median.point_estimate`), in million elements per second.

1. Per shape: every loss and variant, forward and forward+backward.
2. [16,1,512,512] forward+backward side by side with the fastest PyTorch implementation
   (`--torch`), the ratio of our faster CPU backend (flex or ndarray) to it, and the memory traffic of the flex
   host path (12 bytes per element: read logits and targets, write the gradient) as a fraction
   of the copy bandwidth measured in the same run (`memory/copy`).
"""

import argparse
import json
import os
import pathlib

LOSSES = [
    "binary_cross_entropy",
    "weighted_cross_entropy",
    "soft_dice",
    "soft_jaccard",
    "lovasz_sigmoid",
    "lovasz_hinge",
    "tversky",
    "focal",
    "compound",
    "multiclass_overlap",
    "generalized_dice",
    "lovasz_softmax",
    "multiclass_focal",
]
MAIN_SHAPE = "16x1x512x512"
VARIANT_ORDER = ["flex", "ndarray", "wgpu", "flex-device", "ndarray-device"]


def load(target):
    """({(loss, mode, shape, variant): Melem/s}, copy GB/s or None) from criterion's JSON."""
    losses, copy = {}, None
    for bench in pathlib.Path(target, "criterion").glob("**/new/benchmark.json"):
        meta = json.loads(bench.read_text())
        estimates = json.loads(bench.with_name("estimates.json").read_text())
        seconds = estimates["median"]["point_estimate"] * 1e-9
        group = meta["group_id"].split("/")
        if group == ["memory", "copy"]:
            copy = meta["throughput"]["Bytes"] / seconds / 1e9
        elif len(group) == 3:
            loss, mode, shape = group
            losses[(loss, mode, shape, meta["function_id"])] = meta["throughput"]["Elements"] / seconds / 1e6
    return losses, copy


def cell(v):
    return "-" if v is None else f"{v:.1f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default=os.environ.get("CARGO_TARGET_DIR", "target"))
    parser.add_argument("--torch", help="JSON written by torch_reference.py")
    args = parser.parse_args()
    ours, copy = load(args.target)
    variants = sorted({k[3] for k in ours}, key=lambda v: VARIANT_ORDER.index(v) if v in VARIANT_ORDER else 99)
    shapes = sorted({k[2] for k in ours}, key=lambda s: [int(d) for d in s.split("x")])

    for shape in shapes:
        present = [v for v in variants if any((l, m, shape, v) in ours for l in LOSSES for m in ("fwd", "fwd_bwd"))]
        print(f"\n{shape}, Melem/s (median)\n")
        header = ["loss"] + [f"{v} fwd" for v in present] + [f"{v} fwd+bwd" for v in present]
        print("| " + " | ".join(header) + " |")
        print("|---|" + "---:|" * (len(header) - 1))
        for loss in LOSSES:
            values = [ours.get((loss, m, shape, v)) for m in ("fwd", "fwd_bwd") for v in present]
            if all(v is None for v in values):
                continue
            print("| " + " | ".join([loss] + [cell(v) for v in values]) + " |")

    torch = {}
    if args.torch:
        for row in json.loads(pathlib.Path(args.torch).read_text())["results"]:
            key = (row["loss"], row["shape"])
            if row["fwd_bwd_melem_s"] > torch.get(key, (0.0, ""))[0]:
                torch[key] = (row["fwd_bwd_melem_s"], row["implementation"])
    print(f"\n{MAIN_SHAPE}, forward+backward, Melem/s (median)" + (f"; copy bandwidth {copy:.1f} GB/s" if copy else "") + "\n")
    present = [v for v in variants if any((l, "fwd_bwd", MAIN_SHAPE, v) in ours for l in LOSSES)]
    header = ["loss"] + present + ["fastest PyTorch", "ours / PyTorch", "flex traffic / copy bandwidth"]
    print("| " + " | ".join(header) + " |")
    print("|---|" + "---:|" * len(present) + "---|---:|---:|")
    for loss in LOSSES:
        values = [ours.get((loss, "fwd_bwd", MAIN_SHAPE, v)) for v in present]
        if all(v is None for v in values):
            continue
        # The ratio compares the CPU-native paths (wgpu on lavapipe is excluded).
        cpu = [ours.get((loss, "fwd_bwd", MAIN_SHAPE, v)) for v in ("flex", "ndarray")]
        best = max((v for v in cpu if v is not None), default=None)
        ref = torch.get((loss, MAIN_SHAPE))
        flex = ours.get((loss, "fwd_bwd", MAIN_SHAPE, "flex"))
        row = [loss] + [cell(v) for v in values]
        row.append(f"{ref[0]:.1f} ({ref[1]})" if ref else "-")
        row.append(f"{best / ref[0]:.2f}x" if ref and best else "-")
        row.append(f"{flex * 1e6 * 12 / (copy * 1e9):.0%}" if flex and copy else "-")
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
