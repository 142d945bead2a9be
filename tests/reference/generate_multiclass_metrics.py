#!/usr/bin/env python3
"""Generates tests/reference/multiclass_metrics.json: per-image, per-class confusion counts and
hard Dice / Jaccard scores of multiclass index maps, for `cargo test` to compare against.

Run by hand (not by CI), in a virtualenv outside the repository:

    python3 -m venv ~/venv-ref && ~/venv-ref/bin/pip install torch torchmetrics
    ~/venv-ref/bin/python tests/reference/generate_multiclass_metrics.py

Definition (ours). For image n and class c, over the valid pixels (target != ignore_index; all
pixels when ignore_index is null): tp = #[pred = c, target = c], fp = #[pred = c, target != c],
fn = #[pred != c, target = c], tn = #[pred != c, target != c] (ignored pixels are in none of
the four). dice = 2tp/(2tp+fp+fn), jaccard = tp/(tp+fp+fn), null when 0/0. macro (per image) =
mean over the classes whose score is defined, null if none; micro (per image) = the score of
the sums of tp, fp, fn over the classes, null when 0/0.

Cases per input: no ignore_index; ignore_index 255 on target_ignore (a few pixels per image;
img2d image 3 entirely ignored, so all its counts are 0 and every score is null); ignore_index 0
(an in-range class) on target. img2d: image 0 has class 3 in neither prediction nor target,
image 1 predicts class 2 which its target lacks, image 2 never predicts class 1 of its target;
vol3d: image 0 lacks class 2 in both, image 1 predicts class 0 which its target lacks.

The counts, scores and averages are computed here with numpy, then cross-checked against
torchmetrics 1.9.0 (the run prints every comparison). Asserted:
- multiclass_stat_scores(average=None, multidim_average="samplewise", ignore_index) gives
  exactly our tp, fp, tn, fn (ignored pixels, 255 or an in-range class, in none of the four).
Observed (printed, not asserted):
- multiclass_f1_score(samplewise, ignore_index): average=None = our per-class dice where
  defined, 0 for 0/0; "macro" = our nanmean macro dice (a class with tp+fp+fn = 0 gets weight
  0), "micro" = our micro dice, in all three ignore settings; an image with no valid pixel
  gives 0 (ours null).
- multiclass_jaccard_index, run per image (it has no samplewise mode): average=None = our
  per-class jaccard where defined, 0 for 0/0; "macro" and "micro" match without ignore_index
  and with ignore_index 255 (a fully ignored image: macro NaN, micro 0). With an in-range
  ignore_index (0) they differ: torchmetrics also drops class 0 itself from the macro average
  and subtracts its tp+fp+fn from the micro denominator (ours keeps class 0, whose remaining
  false positives count).
- segmentation.dice_score(include_background=True, input_format="index"; no ignore_index
  argument): average="none" = our per-class dice with NaN for 0/0, "macro" = our macro
  (nanmean), "micro" = our micro.
- segmentation.generalized_dice_score(weight_type="linear", per_class=False) = our micro dice
  (linear = unit weights).
- segmentation.mean_iou: per_class=True = our per-class jaccard, -1 for 0/0; per_class=False
  = our macro jaccard (classes with union 0 left out).
"""
import json
import pathlib

import numpy as np
import torch
import torchmetrics
from torchmetrics.functional.classification import (
    multiclass_f1_score,
    multiclass_jaccard_index,
    multiclass_stat_scores,
)

OUT = pathlib.Path(__file__).with_name("multiclass_metrics.json")
IGNORE = 255
RESULTS = {}


# ---- inputs ----


def noisy(rng, target, c, p_wrong=0.35):
    pred = target.copy()
    flip = rng.uniform(size=target.shape) < p_wrong
    pred[flip] = rng.integers(0, c, size=int(flip.sum()))
    return pred


def replace(rng, arr, cls, c):
    """arr (one image) with class `cls` replaced by random other classes."""
    sel = arr == cls
    arr[sel] = rng.choice([k for k in range(c) if k != cls], size=int(sel.sum()))


def make_img2d(rng):
    n, c, shape = 4, 4, (4, 1, 9, 8)
    target = rng.integers(0, c, size=shape).astype(np.int64)
    pred = noisy(rng, target, c)
    # image 0: class 3 absent from both prediction and target
    replace(rng, target[0], 3, c)
    replace(rng, pred[0], 3, c)
    # image 1: class 2 predicted but absent from the target
    replace(rng, target[1], 2, c)
    # image 2: class 1 in the target but never predicted
    replace(rng, pred[2], 1, c)
    assert not (target[0] == 3).any() and not (pred[0] == 3).any()
    assert not (target[1] == 2).any() and (pred[1] == 2).any()
    assert (target[2] == 1).any() and not (pred[2] == 1).any()
    ignore = target.copy()
    for i in range(n):
        flat = ignore[i].reshape(-1)
        flat[rng.choice(flat.size, size=6, replace=False)] = IGNORE
    # image 3 of the ignore variant: every pixel ignored (all counts 0, every score null)
    ignore[3] = IGNORE
    return {"num_classes": c, "preds": pred, "target": target, "target_ignore": ignore}


def make_vol3d(rng):
    n, c, shape = 2, 3, (2, 1, 3, 5, 6)
    target = rng.integers(0, c, size=shape).astype(np.int64)
    pred = noisy(rng, target, c)
    # image 0: class 2 absent from both; image 1: class 0 predicted but absent from the target
    replace(rng, target[0], 2, c)
    replace(rng, pred[0], 2, c)
    replace(rng, target[1], 0, c)
    assert not (target[0] == 2).any() and not (pred[0] == 2).any()
    assert not (target[1] == 0).any() and (pred[1] == 0).any()
    ignore = target.copy()
    for i in range(n):
        flat = ignore[i].reshape(-1)
        flat[rng.choice(flat.size, size=5, replace=False)] = IGNORE
    return {"num_classes": c, "preds": pred, "target": target, "target_ignore": ignore}


# ---- ours (numpy) ----


def counts(pred, target, c, ignore_index):
    n = pred.shape[0]
    p, t = pred.reshape(n, -1), target.reshape(n, -1)
    valid = np.ones_like(t, dtype=bool) if ignore_index is None else t != ignore_index
    out = {k: np.zeros((n, c), dtype=np.int64) for k in ("tp", "fp", "fn", "tn")}
    for k in range(c):
        pk, tk = (p == k) & valid, (t == k) & valid
        out["tp"][:, k] = (pk & tk).sum(1)
        out["fp"][:, k] = (pk & ~tk & valid).sum(1)
        out["fn"][:, k] = (~(p == k) & tk).sum(1)
        out["tn"][:, k] = (~(p == k) & ~(t == k) & valid).sum(1)
    assert (out["tp"] + out["fp"] + out["fn"] + out["tn"] == valid.sum(1, keepdims=True)).all()
    return out


def ratio(num, den):
    """num/den as float, NaN where den == 0."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den == 0, np.nan, num / np.where(den == 0, 1.0, den))


def scores(k):
    tp, fp, fn = k["tp"], k["fp"], k["fn"]
    dice = ratio(2 * tp, 2 * tp + fp + fn)
    jac = ratio(tp, tp + fp + fn)
    st, sf, sn = tp.sum(1), fp.sum(1), fn.sum(1)

    def nanmean_rows(a):
        return np.array([np.nan if np.isnan(r).all() else np.nanmean(r) for r in a])

    return {
        "dice": dice,
        "jaccard": jac,
        "dice_macro": nanmean_rows(dice),
        "jaccard_macro": nanmean_rows(jac),
        "dice_micro": ratio(2 * st, 2 * st + sf + sn),
        "jaccard_micro": ratio(st, st + sf + sn),
    }


def nan_to_none(a):
    if isinstance(a, np.ndarray):
        return [nan_to_none(v) for v in a]
    return None if np.isnan(a) else float(a)


# ---- torchmetrics cross-checks ----


def compare(label, tag, ours, theirs, undefined=None):
    """Records whether torchmetrics' `theirs` equals `ours` (NaN = 0/0) where ours is defined,
    and what it gives where ours is undefined."""
    ours = np.asarray(ours, dtype=np.float64)
    theirs = np.asarray(theirs, dtype=np.float64).reshape(ours.shape)
    nan = np.isnan(ours)
    ok = bool(np.allclose(ours[~nan], theirs[~nan], rtol=0, atol=1e-6))
    und = sorted({("nan" if np.isnan(v) else float(v)) for v in theirs[nan]}, key=str)
    RESULTS.setdefault(label, []).append((tag, ok, und))
    return ok


def check_torchmetrics(pred, target, c, ii, k, s, name):
    n = pred.shape[0]
    P = torch.from_numpy(pred.reshape(n, -1))
    T = torch.from_numpy(target.reshape(n, -1))
    tag = f"{name} ignore_index={ii}"
    # 1. counts (asserted): multiclass_stat_scores samplewise, average=None -> [N, C, 5] = tp, fp, tn, fn, support
    st = multiclass_stat_scores(P, T, num_classes=c, average=None, multidim_average="samplewise", ignore_index=ii)
    assert tuple(st.shape) == (n, c, 5), st.shape
    for j, key in enumerate(("tp", "fp", "tn", "fn")):
        assert (st[..., j].numpy() == k[key]).all(), f"{tag}: stat_scores {key}"
    assert (st[..., 4].numpy() == k["tp"] + k["fn"]).all()
    RESULTS.setdefault("multiclass_stat_scores(average=None, multidim_average='samplewise', ignore_index) "
                       "tp/fp/tn/fn (asserted)", []).append((tag, True, []))

    # 2. F1 = Dice per class, macro, micro (samplewise, with ignore_index)
    sw = dict(num_classes=c, multidim_average="samplewise", ignore_index=ii)
    compare("multiclass_f1_score(average=None, samplewise) vs per-class dice", tag,
            s["dice"], multiclass_f1_score(P, T, average=None, **sw).numpy())
    compare("multiclass_f1_score(average='macro', samplewise) vs macro dice", tag,
            s["dice_macro"], multiclass_f1_score(P, T, average="macro", **sw).numpy())
    compare("multiclass_f1_score(average='micro', samplewise) vs micro dice", tag,
            s["dice_micro"], multiclass_f1_score(P, T, average="micro", **sw).numpy())

    # 3. Jaccard: multiclass_jaccard_index has no samplewise mode; run per image
    for avg, key in ((None, "jaccard"), ("macro", "jaccard_macro"), ("micro", "jaccard_micro")):
        vals = []
        for i in range(n):
            v = multiclass_jaccard_index(P[i], T[i], num_classes=c, average=avg, ignore_index=ii).numpy()
            vals.append(v)
        compare(f"multiclass_jaccard_index(average={avg!r}) per image vs {key}", tag, s[key], np.stack(vals))

    # 4. segmentation metrics (no ignore_index argument): only without ignore_index
    if ii is not None:
        return
    from torchmetrics.functional.segmentation import dice_score, generalized_dice_score, mean_iou

    Pi = torch.from_numpy(pred[:, 0])
    Ti = torch.from_numpy(target[:, 0])
    kw = dict(num_classes=c, include_background=True, input_format="index")
    for avg, key in (("none", "dice"), ("macro", "dice_macro"), ("micro", "dice_micro")):
        compare(f"segmentation.dice_score(average={avg!r}, include_background=True) vs {key}", tag,
                s[key], dice_score(Pi, Ti, average=avg, **kw).numpy())
    compare("segmentation.generalized_dice_score(weight_type='linear', per_class=False) vs micro dice", tag,
            s["dice_micro"], generalized_dice_score(Pi, Ti, weight_type="linear", per_class=False, **kw).numpy())
    compare("segmentation.mean_iou(per_class=True) vs per-class jaccard", tag,
            s["jaccard"], mean_iou(Pi, Ti, per_class=True, **kw).numpy())
    compare("segmentation.mean_iou(per_class=False) vs macro jaccard", tag,
            s["jaccard_macro"], mean_iou(Pi, Ti, per_class=False, **kw).numpy())


def main():
    rng = np.random.default_rng(20260822)
    inputs = {"img2d": make_img2d(rng), "vol3d": make_vol3d(rng)}
    cases = []
    for name, inp in inputs.items():
        c = inp["num_classes"]
        for kind, ii in (("target", None), ("target_ignore", IGNORE), ("target", 0)):
            k = counts(inp["preds"], inp[kind], c, ii)
            s = scores(k)
            check_torchmetrics(inp["preds"], inp[kind], c, ii, k, s, name)
            cases.append(
                {
                    "input": name,
                    "targets": kind,
                    "ignore_index": ii,
                    **{key: k[key].tolist() for key in ("tp", "fp", "fn", "tn")},
                    **{key: nan_to_none(v) for key, v in s.items()},
                }
            )
    # the edge cases the inputs promise
    d = cases[0]
    assert d["dice"][0][3] is None and d["jaccard"][0][3] is None  # img2d image 0, class 3 absent from both
    assert d["dice"][1][2] == 0.0 and d["tp"][1][2] == 0 and d["fp"][1][2] > 0  # predicted, not in target
    ig = cases[1]
    assert ig["dice_macro"][3] is None and ig["dice_micro"][3] is None and ig["jaccard_macro"][3] is None
    doc = {
        "generator": "tests/reference/generate_multiclass_metrics.py",
        "versions": {"torch": torch.__version__, "torchmetrics": torchmetrics.__version__},
        "inputs": {
            k: {
                "shape": list(v["preds"].shape),
                "num_classes": v["num_classes"],
                "preds": v["preds"].reshape(-1).tolist(),
                "target": v["target"].reshape(-1).tolist(),
                "target_ignore": v["target_ignore"].reshape(-1).tolist(),
            }
            for k, v in inputs.items()
        },
        "cases": cases,
    }
    OUT.write_text(json.dumps(doc))
    print(f"wrote {len(cases)} cases to {OUT} ({OUT.stat().st_size} bytes)")
    print("LIBRARY_CHECKS (label: [tag, match where ours defined, their values where ours is 0/0]):")
    for label, rows in RESULTS.items():
        print(" -", label)
        for r in rows:
            print("     ", r)


if __name__ == "__main__":
    main()
