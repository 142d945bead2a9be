"""PyTorch side of the benchmark comparison: the same losses, shapes and thread count as
`cargo bench --bench losses`, measured with torch, MONAI and segmentation_models_pytorch.

    python benches/torch_reference.py --threads 2 --json torch.json

Prints a table of median throughputs (million elements per second) for forward only (under
`torch.no_grad()`, as our forward benches run without autodiff) and forward+backward (the
gradient with respect to the logits), and optionally writes them as JSON for
`benches/report.py`. CI does not run it. Inputs match the Rust benches: logits uniform in
[-4, 4), targets 0/1 with 30% foreground, float32.

Implementations per loss (every one computes the crate's loss up to where its docs say):
- binary_cross_entropy: torch `binary_cross_entropy_with_logits`.
- weighted_cross_entropy: torch `binary_cross_entropy_with_logits(weight=...)` with the paper's
  weights 1/(2q), 1/(2-2q), q = foreground fraction of the batch (no library ships wCE).
- soft_dice: MONAI `DiceLoss(sigmoid=True)` (per image, as ours by default); smp
  `DiceLoss("binary")` (batch statistics, smooth=0, eps=1e-7).
- soft_jaccard: MONAI `DiceLoss(sigmoid=True, jaccard=True)` (per image); smp
  `JaccardLoss("binary")` (batch statistics).
- lovasz_sigmoid: smp's port of Berman's `lovasz_softmax(sigmoid(x), y, classes=[1],
  per_image=True)`.
- lovasz_hinge: smp `LovaszLoss("binary", per_image=True)` (Berman's `lovasz_hinge`).
- tversky (alpha 0.3, beta 0.7): MONAI `TverskyLoss(sigmoid=True)` (per image); smp
  `TverskyLoss("binary")` (batch statistics).
- focal (gamma 2): MONAI `FocalLoss(use_softmax=False)`; smp `FocalLoss("binary")`.
- compound (soft Dice + BCE): MONAI `DiceCELoss(sigmoid=True)`.
- cl_dice: MONAI `SoftclDiceLoss(sigmoid=True)` (3 iterations).
- mcc: smp `MCCLoss` on `sigmoid(x)` (batch counts).

Multiclass (softmax, class-index targets `[N, 1, ...]`, shapes `MULTICLASS_SHAPES`; throughput
counts logits, pixels x classes):
- multiclass_overlap: MONAI `DiceLoss(softmax=True, to_onehot_y=True)`; smp
  `DiceLoss("multiclass")` (batch statistics).
- generalized_dice: MONAI `GeneralizedDiceLoss(softmax=True, to_onehot_y=True)`.
- multiclass_focal (gamma 2): MONAI `FocalLoss(use_softmax=True, to_onehot_y=True)`; smp
  `FocalLoss("multiclass")`.
- multiclass_ce (focal with gamma 0): torch `cross_entropy`.
- multiclass_compound (Dice + CE): MONAI `DiceCELoss(softmax=True, to_onehot_y=True)`.
- lovasz_softmax: smp `LovaszLoss("multiclass")` (Berman's `lovasz_softmax`, batch).
- wasserstein_dice: MONAI `GeneralizedWassersteinDiceLoss` with the 0/1 distances (ours by
  default), `weighting_mode="default"`.
- dice_ce: MONAI `DiceCELoss(softmax=True, to_onehot_y=True)` (the preset `DiceCeConfig`).
- dice_focal: MONAI `DiceFocalLoss(softmax=True, to_onehot_y=True)` (the preset
  `DiceFocalConfig`).

With a 0/1 pixel mask (`masked_`, about 70% ones, made once outside the clock):
- masked_dice: MONAI `MaskedDiceLoss(sigmoid=True)` (`soft_dice` with `with_pixel_weights`).
- masked_bce: torch `binary_cross_entropy_with_logits(weight=mask)`.
- masked_dice_ce: MONAI `MaskedDiceLoss(softmax=True)` on one-hot targets plus
  `(cross_entropy(reduction="none") * mask).mean()` (`dice_ce` with `with_pixel_weights`).
"""

import argparse
import json
import platform
import statistics
import time

import torch
import torch.nn.functional as F
import monai
import segmentation_models_pytorch as smp
from segmentation_models_pytorch.losses.lovasz import _lovasz_softmax

SHAPES = [(8, 1, 256, 256), (16, 1, 512, 512), (2, 1, 64, 128, 128)]
MULTICLASS_SHAPES = [(8, 4, 256, 256), (2, 4, 64, 128, 128), (4, 14, 128, 128)]


def wce(x, y):
    q = y.mean()
    w = y / (2 * q) + (1 - y) / (2 - 2 * q)
    return F.binary_cross_entropy_with_logits(x, y, weight=w)


def lovasz_sigmoid(x, y):
    n = x.shape[0]
    return _lovasz_softmax(torch.sigmoid(x).reshape(n, 1, 1, -1), y.reshape(n, 1, -1), classes=[1], per_image=True)


def implementations():
    monai_dice = monai.losses.DiceLoss(sigmoid=True)
    monai_jaccard = monai.losses.DiceLoss(sigmoid=True, jaccard=True)
    smp_dice = smp.losses.DiceLoss("binary")
    smp_jaccard = smp.losses.JaccardLoss("binary")
    smp_lovasz = smp.losses.LovaszLoss("binary", per_image=True)
    return [
        ("binary_cross_entropy", "torch BCEWithLogits", F.binary_cross_entropy_with_logits),
        ("weighted_cross_entropy", "torch BCEWithLogits(weight)", wce),
        ("soft_dice", "MONAI DiceLoss", monai_dice),
        ("soft_dice", "smp DiceLoss", smp_dice),
        ("soft_jaccard", "MONAI DiceLoss(jaccard)", monai_jaccard),
        ("soft_jaccard", "smp JaccardLoss", smp_jaccard),
        ("lovasz_sigmoid", "smp/Berman lovasz_softmax", lovasz_sigmoid),
        ("lovasz_hinge", "smp LovaszLoss", smp_lovasz),
        ("tversky", "MONAI TverskyLoss", monai.losses.TverskyLoss(sigmoid=True, alpha=0.3, beta=0.7)),
        ("tversky", "smp TverskyLoss", smp.losses.TverskyLoss("binary", alpha=0.3, beta=0.7)),
        ("focal", "MONAI FocalLoss", monai.losses.FocalLoss(use_softmax=False)),
        ("focal", "smp FocalLoss", smp.losses.FocalLoss("binary")),
        ("compound", "MONAI DiceCELoss", monai.losses.DiceCELoss(sigmoid=True)),
        ("cl_dice", "MONAI SoftclDiceLoss", monai.losses.SoftclDiceLoss(sigmoid=True)),
        ("mcc", "smp MCCLoss", lambda x, y, mcc=smp.losses.MCCLoss(): mcc(torch.sigmoid(x), y)),
        ("masked_dice", "MONAI MaskedDiceLoss", masked_dice),
        ("masked_bce", "torch BCE weight", masked_bce),
    ]


def pixel_mask(shape, device):
    """A 0/1 mask of `shape`, about 70% ones, cached per shape (as the Rust benches make it once,
    outside the clock; not the same draws)."""
    if shape not in MASKS:
        g = torch.Generator().manual_seed(0x3A5C)
        MASKS[shape] = (torch.rand(shape, generator=g) < 0.7).float().to(device)
    return MASKS[shape]


MASKS = {}


def masked_dice(x, y, loss=monai.losses.MaskedDiceLoss(sigmoid=True)):
    return loss(x, y, pixel_mask(tuple(y.shape), y.device))


def masked_bce(x, y):
    return F.binary_cross_entropy_with_logits(x, y, weight=pixel_mask(tuple(y.shape), y.device))


def masked_dice_ce(x, y, dice=monai.losses.MaskedDiceLoss(softmax=True)):
    """MONAI has no masked DiceCELoss: MaskedDiceLoss (one-hot targets: it masks index targets
    before one-hot encoding them) plus torch's cross-entropy times the mask, averaged."""
    mask = pixel_mask(tuple(y.shape), y.device)
    one_hot = F.one_hot(y[:, 0], x.shape[1]).movedim(-1, 1).float()
    ce = (F.cross_entropy(x, y[:, 0], reduction="none").unsqueeze(1) * mask).mean()
    return dice(x, one_hot, mask) + ce


def multiclass_implementations():
    """(loss, implementation, fn(logits, indices [N, 1, ...] int64))."""
    squeeze = lambda fn: (lambda x, y: fn(x, y[:, 0]))
    return [
        ("multiclass_overlap", "MONAI DiceLoss", monai.losses.DiceLoss(softmax=True, to_onehot_y=True)),
        ("multiclass_overlap", "smp DiceLoss", squeeze(smp.losses.DiceLoss("multiclass"))),
        ("generalized_dice", "MONAI GeneralizedDiceLoss",
         monai.losses.GeneralizedDiceLoss(softmax=True, to_onehot_y=True)),
        ("multiclass_focal", "MONAI FocalLoss",
         monai.losses.FocalLoss(use_softmax=True, to_onehot_y=True, gamma=2.0)),
        ("multiclass_focal", "smp FocalLoss", squeeze(smp.losses.FocalLoss("multiclass"))),
        ("multiclass_ce", "torch cross_entropy", squeeze(F.cross_entropy)),
        ("multiclass_compound", "MONAI DiceCELoss",
         monai.losses.DiceCELoss(softmax=True, to_onehot_y=True)),
        ("lovasz_softmax", "smp LovaszLoss", squeeze(smp.losses.LovaszLoss("multiclass"))),
        ("wasserstein_dice", "MONAI GeneralizedWassersteinDiceLoss", wasserstein_dice),
        ("dice_ce", "MONAI DiceCELoss", monai.losses.DiceCELoss(softmax=True, to_onehot_y=True)),
        ("dice_focal", "MONAI DiceFocalLoss", monai.losses.DiceFocalLoss(softmax=True, to_onehot_y=True)),
        ("masked_dice_ce", "MONAI MaskedDiceLoss + torch CE * mask", masked_dice_ce),
    ]


def wasserstein_dice(x, y):
    """MONAI's loss with the 0/1 distances of the logits' class count (built once per count)."""
    classes = x.shape[1]
    if classes not in WASSERSTEIN:
        WASSERSTEIN[classes] = monai.losses.GeneralizedWassersteinDiceLoss(
            dist_matrix=1.0 - torch.eye(classes)
        )
    return WASSERSTEIN[classes](x, y)


WASSERSTEIN = {}


def multiclass_inputs(shape, device):
    """Logits uniform in [-4, 4) and indices floor(C u^2), u uniform (as the Rust benches)."""
    g = torch.Generator().manual_seed(0xC1A55)
    x = torch.rand(shape, generator=g) * 8 - 4
    classes = shape[1]
    index_shape = (shape[0], 1) + tuple(shape[2:])
    u = torch.rand(index_shape, generator=g, dtype=torch.float64)
    y = (classes * u * u).long().clamp_max(classes - 1)
    return x.to(device), y.to(device)


def inputs(shape, device):
    g = torch.Generator().manual_seed(0x5EED)
    x = torch.rand(shape, generator=g) * 8 - 4
    y = (torch.rand(shape, generator=g) < 0.3).float()
    return x.to(device), y.to(device)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def median_seconds(step, device, min_samples, min_seconds):
    step()  # warm-up
    step()
    sync(device)
    samples = []
    start = time.perf_counter()
    while len(samples) < min_samples or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        step()
        sync(device)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--min-samples", type=int, default=10)
    parser.add_argument("--min-seconds", type=float, default=3.0)
    parser.add_argument("--only", default="", help="substring filter on the loss name")
    parser.add_argument("--shape", default="", help="run only this shape, e.g. 16x1x512x512")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(
        f"torch {torch.__version__}, monai {monai.__version__}, smp {smp.__version__}, "
        f"{args.threads} threads, {device}, {platform.processor() or platform.machine()}"
    )
    print("| loss | implementation | shape | fwd Melem/s | fwd+bwd Melem/s |")
    print("|---|---|---|---:|---:|")
    results = []
    cases = [(shape, inputs, implementations) for shape in SHAPES] + [
        (shape, multiclass_inputs, multiclass_implementations) for shape in MULTICLASS_SHAPES
    ]
    for shape, make_inputs, make_implementations in cases:
        shape_id = "x".join(map(str, shape))
        if args.shape and args.shape != shape_id:
            continue
        x, y = make_inputs(shape, device)
        elements = x.numel()
        for loss, name, fn in make_implementations():
            if args.only not in loss:
                continue

            def forward():
                with torch.no_grad():
                    fn(x, y)

            xg = x.clone().requires_grad_(True)

            def forward_backward():
                xg.grad = None
                fn(xg, y).backward()

            fwd = median_seconds(forward, device, args.min_samples, args.min_seconds)
            bwd = median_seconds(forward_backward, device, args.min_samples, args.min_seconds)
            row = {
                "loss": loss,
                "implementation": name,
                "shape": shape_id,
                "fwd_melem_s": elements / fwd / 1e6,
                "fwd_bwd_melem_s": elements / bwd / 1e6,
            }
            results.append(row)
            print(
                f"| {loss} | {name} | {shape_id} | {row['fwd_melem_s']:.1f} | {row['fwd_bwd_melem_s']:.1f} |",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "device": str(device), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
