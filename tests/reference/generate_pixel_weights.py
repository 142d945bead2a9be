#!/usr/bin/env python3
"""Generates tests/reference/pixel_weights.json: reference values and gradients of every loss
with per-pixel weights (`.with_pixel_weights(w)`), for `cargo test` to compare against.

Run by hand (not by CI), in a virtualenv outside the repository:

    python3 -m venv ~/venv-ref && ~/venv-ref/bin/pip install torch monai segmentation-models-pytorch
    ~/venv-ref/bin/python tests/reference/generate_pixel_weights.py

Two weight maps per input, shape [N, 1, ...]: "mask" (0/1, about a third zeros) and "weights"
(uniform in [0, 3), a fifth of them exactly 0). The semantics (src/loss/pixel_weights.rs): a
pixel of weight w counts w times.

References (no segloss code is involved):
- soft_dice, multiclass_overlap, dice_ce's Dice: with the mask, MONAI's `MaskedDiceLoss`
  (prediction and target multiplied by the mask); with general weights, the closed form of
  weighted sums `sum(w p y)`, `sum(w p)`, `sum(w y)` (checked equal to MaskedDiceLoss on the
  mask). MaskedDiceLoss is given one-hot targets: it masks the targets before `to_onehot_y`,
  which would turn every masked pixel into a class-0 target.
- soft_jaccard: the closed form (smp's smoothing), checked equal to MONAI's
  `MaskedDiceLoss(jaccard=True)` on the mask without smoothing (MONAI smooths `2I` and `2U`).
- generalized_dice: with the mask, MONAI `GeneralizedDiceLoss` on `p * m`, `y * m`; with
  weights, the closed form (checked equal on the mask).
- tversky (focal, gamma), mcc, wasserstein_dice, cl_dice (MONAI's `soft_skel`), lovasz with
  general weights: the closed forms of weighted counts written out below.
- binary_cross_entropy, weighted_cross_entropy: torch `binary_cross_entropy_with_logits(weight=)`
  (wCE's prior `sum(w y) / sum(w)`), mean over each image's pixels.
- focal: MONAI `FocalLoss(reduction="none")` times w, mean over each image's pixels.
- multiclass_focal: torch `cross_entropy(reduction="none")` times w (gamma 0), MONAI
  `FocalLoss(use_softmax=True, reduction="none")` summed over classes times w (gamma 2).
- lovasz_sigmoid, lovasz_hinge, lovasz_softmax with the mask: smp's copies of Berman's code with
  the masked pixels given the ignore label (dropped).
- hausdorff_dt: MONAI `HausdorffDTLoss.distance_field` for the fields, `w (p - y)^2 (dp^2 +
  dy^2)` averaged over each image's pixels.

Inputs are float32 (what the Rust tests feed); every reference is computed in float64 from those
exact float32 values. Gradients are of the mean over items of per_item w.r.t. the input.
"""
import json
import pathlib

import numpy as np
import torch
import torch.nn.functional as F
import monai
import segmentation_models_pytorch as smp
from monai.losses import FocalLoss, GeneralizedDiceLoss, HausdorffDTLoss, MaskedDiceLoss
from monai.losses.cldice import soft_skel
from segmentation_models_pytorch.losses.lovasz import _lovasz_hinge, _lovasz_softmax
from fixture_common import IGNORE, assert_close, float_is_double, make_binary_input, one_hot_f64, per_image_mean

torch.set_default_dtype(torch.float64)
OUT = pathlib.Path(__file__).with_name("pixel_weights.json")
SMOOTH = 1e-5


def weight_maps(rng, shape):
    """The two weight maps of an input of `shape` ([N, C, ...]): [N, 1, ...] each."""
    wshape = (shape[0], 1) + tuple(shape[2:])
    mask = (rng.uniform(size=wshape) >= 0.35).astype(np.float32)
    weights = rng.uniform(0.0, 3.0, size=wshape).astype(np.float32)
    weights[rng.uniform(size=wshape) < 0.2] = 0.0
    return {"mask": mask, "weights": weights}


def rows(t):
    return t.reshape(t.shape[0], -1)


# ---- closed forms of weighted counts ----


def weighted_sums(p, y, w):
    """[sum(w p y), sum(w p), sum(w y)] per image: p, y [N, K, P], w [N, 1, P]."""
    return (w * p * y).sum((1, 2)), (w * p).sum((1, 2)), (w * y).sum((1, 2))


def dice_closed(p, y, w):
    i, sp, sy = weighted_sums(p, y, w)
    return 1.0 - (2.0 * i + SMOOTH) / (sp + sy + SMOOTH)


def jaccard_closed(p, y, w):
    i, sp, sy = weighted_sums(p, y, w)
    return 1.0 - (i + SMOOTH) / (sp + sy - i + SMOOTH)


def lovasz_closed(errors, labels, w):
    """The Lovász extension of the Jaccard loss of weighted counts, one problem (1-D tensors):
    errors sorted descending (stable), G = sum(w g), J_k = 1 - (G - cumsum(w g)) / (G +
    cumsum(w (1 - g))), weights J_k - J_(k-1) (J = 0 where the union is 0)."""
    order = torch.from_numpy(np.argsort(-errors.detach().numpy(), kind="stable"))
    e, g, c = errors[order], labels[order], w[order]
    total = (c * g).sum()
    inter = total - torch.cumsum(c * g, 0)
    union = total + torch.cumsum(c * (1.0 - g), 0)
    jac = torch.where(union > 0, 1.0 - inter / torch.where(union > 0, union, torch.ones_like(union)), torch.zeros_like(union))
    grad = torch.cat([jac[:1], jac[1:] - jac[:-1]])
    return (e * grad.detach()).sum()


# ---- binary losses: fn(x, y, w, opts) -> per image [N] ----


def probs(x, o):
    return torch.sigmoid(x) if o["from_logits"] else x


def b3(t):
    return t.reshape(t.shape[0], 1, -1)


def soft_dice(x, y, w, o):
    p = probs(x, o)
    closed = dice_closed(b3(p), b3(y), b3(w))
    if o["weights"] == "mask":
        masked = MaskedDiceLoss(sigmoid=False, smooth_nr=SMOOTH, smooth_dr=SMOOTH, reduction="none")(b3(p), b3(y), b3(w))
        assert_close(masked.reshape(-1), closed, what="MaskedDiceLoss vs closed form")
        return masked.reshape(-1)
    return closed


def soft_jaccard(x, y, w, o):
    p = probs(x, o)
    closed = jaccard_closed(b3(p), b3(y), b3(w))
    if o["weights"] == "mask":
        # MONAI's Jaccard smooths `(2I + s) / (2U + s)` (smp's and ours: `(I + s) / (U + s)`):
        # the two agree without smoothing, where the check is made.
        masked = MaskedDiceLoss(sigmoid=False, jaccard=True, smooth_nr=0.0, smooth_dr=0.0, reduction="none")(
            b3(p), b3(y), b3(w)
        )
        i, sp, sy = weighted_sums(b3(p), b3(y), b3(w))
        assert_close(masked.reshape(-1), 1.0 - i / (sp + sy - i), what="MaskedDiceLoss(jaccard) vs closed form")
    return closed


def tversky(x, y, w, o):
    i, sp, sy = weighted_sums(b3(probs(x, o)), b3(y), b3(w))
    fp, fn = sp - i, sy - i
    ti = (i + SMOOTH) / (i + o["alpha"] * fp + o["beta"] * fn + SMOOTH)
    return (1.0 - ti) ** o["gamma"]


def bce(x, y, w, o):
    return per_image_mean(F.binary_cross_entropy_with_logits(x, y, weight=w.expand_as(x), reduction="none"))


def wce(x, y, w, o):
    w = w.expand_as(x)
    q = (w * y).sum() / w.sum()
    class_weight = y / (2.0 * q) + (1.0 - y) / (2.0 - 2.0 * q)
    return per_image_mean(F.binary_cross_entropy_with_logits(x, y, weight=w * class_weight, reduction="none"))


def focal(x, y, w, o):
    terms = FocalLoss(gamma=o["gamma"], reduction="none")(b3(x), b3(y))
    return per_image_mean(terms * b3(w))


def lovasz(x, y, w, o):
    """Berman's code with the masked pixels ignored (mask), the closed form (weights)."""
    n = x.shape[0]
    xr, yr, wr = rows(x), rows(y), rows(w)
    if o["weights"] == "mask":
        labels = torch.where(wr > 0, yr, torch.full_like(yr, IGNORE))
        with float_is_double():
            if o["loss"] == "lovasz_hinge":
                ref = [_lovasz_hinge(xr[i : i + 1], labels[i : i + 1], per_image=False, ignore=IGNORE) for i in range(n)]
            else:
                p = torch.sigmoid(xr)
                ref = [
                    _lovasz_softmax(p[i].reshape(1, 1, 1, -1), labels[i].reshape(1, 1, -1), classes=[1], per_image=False, ignore=IGNORE)
                    for i in range(n)
                ]
        ref = torch.stack([torch.as_tensor(r) for r in ref])
    else:
        ref = None
    out = []
    for i in range(n):
        if o["loss"] == "lovasz_hinge":
            e = F.relu(1.0 - xr[i] * (2.0 * yr[i] - 1.0))
        else:
            e = (yr[i] - torch.sigmoid(xr[i])).abs()
        out.append(lovasz_closed(e, yr[i], wr[i]))
    closed = torch.stack(out)
    if ref is not None:
        assert_close(ref, closed, what="Berman ignore vs weighted closed form")
        return ref
    return closed


def mcc(x, y, w, o):
    """smp's MCCLoss formula of weighted counts, over the whole batch."""
    p, y, w = rows(probs(x, o)), rows(y), rows(w)
    eps = 1e-5
    tp = (w * p * y).sum() + eps
    tn = (w * (1 - p) * (1 - y)).sum() + eps
    fp = (w * p * (1 - y)).sum() + eps
    fn = (w * (1 - p) * y).sum() + eps
    num = tp * tn - fp * fn
    den = torch.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return (1.0 - num / den).reshape(1)


def cl_dice_terms(p, y, w, iterations=3):
    """MONAI SoftclDiceLoss's formula with weighted sums: p, y [N, K, ...], w [N, 1, ...]."""
    skel_p, skel_y = soft_skel(p, iterations), soft_skel(y, iterations)
    dims = tuple(range(1, p.dim()))
    tprec = ((skel_p * y * w).sum(dims) + 1.0) / ((skel_p * w).sum(dims) + 1.0)
    tsens = ((skel_y * p * w).sum(dims) + 1.0) / ((skel_y * w).sum(dims) + 1.0)
    return 1.0 - 2.0 * (tprec * tsens) / (tprec + tsens + 1e-4)


def cl_dice(x, y, w, o):
    return cl_dice_terms(probs(x, o), y, w)


def hausdorff_dt(x, y, w, o):
    loss = HausdorffDTLoss(alpha=2.0, include_background=True, sigmoid=True)
    p = torch.sigmoid(x)
    dp = loss.distance_field(p.detach()).double()
    dy = loss.distance_field(y.detach()).double()
    return per_image_mean(w * (p - y) ** 2 * (dp**2 + dy**2))


BINARY = {
    "soft_dice": (soft_dice, [{}, {"from_logits": False}]),
    "soft_jaccard": (soft_jaccard, [{}]),
    "tversky": (tversky, [{"alpha": 0.3, "beta": 0.7, "gamma": 1.0}, {"alpha": 0.3, "beta": 0.7, "gamma": 0.75}]),
    "binary_cross_entropy": (bce, [{}]),
    "weighted_cross_entropy": (wce, [{"prior": "batch"}]),
    "focal": (focal, [{"gamma": 2.0}]),
    "lovasz_sigmoid": (lovasz, [{"per_image": True}]),
    "lovasz_hinge": (lovasz, [{"per_image": True}]),
    "mcc": (mcc, [{"aggregation": "batch"}]),
    "cl_dice": (cl_dice, [{}]),
    "hausdorff_dt": (hausdorff_dt, [{}]),
}


# ---- multiclass losses: fn(x, labels, w, opts) -> per image [N] ----


def onehot(labels, c):
    return one_hot_f64(labels, c)


def multiclass_overlap(x, lab, w, o):
    c = x.shape[1]
    p = torch.softmax(x, 1)
    y = onehot(lab, c)
    pr, yr, wr = p.reshape(p.shape[0], c, -1), y.reshape(y.shape[0], c, -1), rows(w).unsqueeze(1)
    i, sp, sy = (wr * pr * yr).sum(2), (wr * pr).sum(2), (wr * yr).sum(2)
    closed = (1.0 - (2.0 * i + SMOOTH) / (sp + sy + SMOOTH)).mean(1)
    if o["weights"] == "mask":
        # One-hot targets: MaskedDiceLoss masks the targets before `to_onehot_y`, which would
        # make every masked pixel a class-0 target.
        masked = MaskedDiceLoss(softmax=True, smooth_nr=SMOOTH, smooth_dr=SMOOTH, reduction="none")(x, y, w)
        masked = masked.reshape(x.shape[0], c).mean(1)
        assert_close(masked, closed, what="MaskedDiceLoss softmax vs closed form")
        return masked
    return closed


def generalized_dice(x, lab, w, o):
    c = x.shape[1]
    p = torch.softmax(x, 1)
    y = onehot(lab, c)
    pr, yr, wr = p.reshape(p.shape[0], c, -1), y.reshape(y.shape[0], c, -1), rows(w).unsqueeze(1)
    i, sp, sy = (wr * pr * yr).sum(2), (wr * pr).sum(2), (wr * yr).sum(2)
    cw = 1.0 / (sy * sy)
    inf = torch.isinf(cw)
    cw = torch.where(inf, torch.zeros_like(cw), cw)
    cw = torch.where(inf, cw.max(1, keepdim=True).values.expand_as(cw), cw)
    closed = 1.0 - (2.0 * (cw * i).sum(1) + SMOOTH) / ((cw * (sp + sy)).sum(1) + SMOOTH)
    if o["weights"] == "mask":
        ref = GeneralizedDiceLoss(smooth_nr=SMOOTH, smooth_dr=SMOOTH, reduction="none")(p * w, y * w)
        ref = ref.reshape(-1)
        # MONAI computes the class weights in float32 (1e-9 apart).
        assert_close(ref, closed, tol=1e-8, what="GeneralizedDiceLoss masked vs closed form")
        return ref
    return closed


def multiclass_focal(x, lab, w, o):
    if o["gamma"] == 0.0:
        terms = F.cross_entropy(x, lab[:, 0], reduction="none").unsqueeze(1)
    else:
        terms = FocalLoss(gamma=o["gamma"], use_softmax=True, to_onehot_y=True, reduction="none")(x, lab).sum(1, keepdim=True)
    return per_image_mean(terms * w)


def lovasz_softmax(x, lab, w, o):
    n, c = x.shape[:2]
    p = torch.softmax(x, 1)
    pr, lr, wr = p.reshape(n, c, -1), rows(lab), rows(w)
    out = []
    for i in range(n):
        losses = []
        for k in range(c):
            fg = (lr[i] == k).double()
            if (wr[i] * fg).sum() > 0:
                losses.append(lovasz_closed((fg - pr[i, k]).abs(), fg, wr[i]))
        out.append(torch.stack(losses).mean())
    closed = torch.stack(out)
    if o["weights"] == "mask":
        labels = torch.where(wr > 0, lr, torch.full_like(lr, IGNORE))
        with float_is_double():
            ref = torch.stack(
                [
                    torch.as_tensor(_lovasz_softmax(pr[i].reshape(1, c, 1, -1), labels[i].reshape(1, 1, -1), per_image=False, ignore=IGNORE))
                    for i in range(n)
                ]
            )
        assert_close(ref, closed, what="Berman lovasz_softmax ignore vs weighted closed form")
        return ref
    return closed


def wasserstein_dice(x, lab, w, o):
    """MONAI GeneralizedWassersteinDiceLoss's formula (default weighting, M = 1 - I) with every
    pixel sum weighted."""
    n, c = x.shape[:2]
    p = torch.softmax(x, 1).reshape(n, c, -1)
    y = onehot(lab, c).reshape(n, c, -1)
    m = 1.0 - torch.eye(c)
    wr = rows(w)
    dist = torch.einsum("nkp,kc,ncp->np", y, m, p)
    alpha = torch.ones(c)
    alpha[0] = 0.0
    a = torch.einsum("nkp,k->np", y, alpha)
    tp = (wr * a * (1.0 - dist)).sum(1)
    den = 2.0 * tp + (wr * dist).sum(1)
    return 1.0 - (2.0 * tp + SMOOTH) / (den + SMOOTH)


def multiclass_cl_dice(x, lab, w, o):
    c = x.shape[1]
    return cl_dice_terms(torch.softmax(x, 1), onehot(lab, c), w)


def dice_ce(x, lab, w, o):
    c = x.shape[1]
    # One-hot targets, as in `multiclass_overlap`.
    dice = MaskedDiceLoss(softmax=True, smooth_nr=SMOOTH, smooth_dr=SMOOTH, reduction="mean")(x, onehot(lab, c), w)
    ce = (F.cross_entropy(x, lab[:, 0], reduction="none").unsqueeze(1) * w).mean()
    # MONAI's preset means over the batch: one value, [1].
    return (dice + ce).reshape(1)


MULTICLASS = {
    "multiclass_overlap": (multiclass_overlap, [{}], ["mask", "weights"]),
    "generalized_dice": (generalized_dice, [{}], ["mask", "weights"]),
    "multiclass_focal": (multiclass_focal, [{"gamma": 0.0}, {"gamma": 2.0}], ["mask", "weights"]),
    "lovasz_softmax": (lovasz_softmax, [{"per_image": True}], ["mask", "weights"]),
    "wasserstein_dice": (wasserstein_dice, [{}], ["mask", "weights"]),
    "multiclass_cl_dice": (
        multiclass_cl_dice,
        [{"iterations": 3, "smooth_nr": 1.0, "smooth_dr": 1.0, "smooth": 1e-4}],
        ["mask", "weights"],
    ),
    "dice_ce": (dice_ce, [{"lambda_dice": 1.0, "lambda_ce": 1.0, "label_smoothing": 0.0}], ["mask"]),
}


def run_case(fn, x32, y, w, opts):
    x = torch.from_numpy(x32.astype(np.float64))
    if not opts["from_logits"]:
        x = torch.sigmoid(torch.from_numpy(x32)).double()
    x.requires_grad_(True)
    per_item = fn(x, y, w, opts).double()
    assert bool(torch.isfinite(per_item).all()), opts
    per_item.mean().backward()
    assert bool(torch.isfinite(x.grad).all()), opts
    return {
        "options": {k: v for k, v in opts.items() if k not in ("loss",)},
        "input_values": None if opts["from_logits"] else x.detach().reshape(-1).tolist(),
        "per_item": per_item.detach().tolist(),
        "mean": per_item.mean().item(),
        "sum": per_item.sum().item(),
        "grad_mean": x.grad.reshape(-1).tolist(),
    }


def main():
    rng = np.random.default_rng(20261205)
    inputs, cases = {}, []
    for name, shape in [("batch2d", (4, 1, 12, 10)), ("volume3d", (2, 1, 6, 7, 8))]:
        logits, targets = make_binary_input(rng, shape)
        maps = weight_maps(rng, shape)
        inputs[name] = {"shape": list(shape), "logits": logits.reshape(-1).tolist(), "targets": targets.reshape(-1).tolist()}
        inputs[name].update({k: v.reshape(-1).tolist() for k, v in maps.items()})
        y = torch.from_numpy(targets.astype(np.float64))
        for loss, (fn, option_sets) in BINARY.items():
            for extra in option_sets:
                for weights in ["mask", "weights"]:
                    opts = {"from_logits": True, **extra, "weights": weights, "loss": loss}
                    w = torch.from_numpy(maps[weights].astype(np.float64))
                    case = run_case(fn, logits, y, w, opts)
                    cases.append({"input": name, "loss": loss, "kind": "binary", **case})
    for name, shape in [("classes2d", (2, 3, 10, 12)), ("classes3d", (2, 3, 5, 6, 7))]:
        logits = (rng.standard_normal(shape) * 3.0).astype(np.float32)
        labels = rng.integers(0, shape[1], size=(shape[0], 1) + shape[2:]).astype(np.int64)
        maps = weight_maps(rng, shape)
        inputs[name] = {"shape": list(shape), "logits": logits.reshape(-1).tolist(), "indices": labels.reshape(-1).tolist()}
        inputs[name].update({k: v.reshape(-1).tolist() for k, v in maps.items()})
        lab = torch.from_numpy(labels)
        for loss, (fn, option_sets, weight_sets) in MULTICLASS.items():
            for extra in option_sets:
                for weights in weight_sets:
                    opts = {"from_logits": True, **extra, "weights": weights, "loss": loss}
                    w = torch.from_numpy(maps[weights].astype(np.float64))
                    case = run_case(fn, logits, lab, w, opts)
                    if loss == "dice_ce":
                        # MONAI's preset has its batch mean alone.
                        case.update({"per_item": None, "sum": None})
                    cases.append({"input": name, "loss": loss, "kind": "multiclass", "targets": "indices", **case})
    doc = {
        "generator": "tests/reference/generate_pixel_weights.py",
        "versions": {"torch": torch.__version__, "monai": monai.__version__, "smp": smp.__version__},
        "inputs": inputs,
        "cases": cases,
    }
    OUT.write_text(json.dumps(doc))
    print(f"wrote {len(cases)} cases to {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
