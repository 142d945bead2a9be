#!/usr/bin/env python3
"""Generates tests/reference/surface.json: references for the distance-based metrics
(Hausdorff, HD95, ASSD, MASD, NSD), the exact Euclidean distance transform and the
distance-based losses (MONAI's HausdorffDTLoss, Kervadec et al.'s boundary loss maps, and
both losses in their multiclass softmax form with class-index targets).

Run by hand (scipy and medpy installed in the same virtualenv as the other generators):

    ~/venv-ref/bin/python tests/reference/generate_surface.py

It prints the largest MONAI-vs-MedPy and tool-vs-float64 differences, asserts the
cross-checks listed below, and rewrites surface.json. Inputs are deterministic
(`numpy.random.default_rng` with fixed seeds). No segloss code is involved.

JSON layout
===========
Non-finite numbers are written as the strings "nan", "inf", "-inf"; `null` marks a value
MedPy refuses to compute (it raises on empty masks). Arrays are flattened in C order.

- `generator`, `versions` (monai, medpy, scipy, numpy, torch).
- `cases`: metric cases, each with
  - `name`; `shape` [N, 1, S1, S2(, S3)]; `spacing` (one float per spatial axis, the
    physical size of a voxel along that array axis); `pred`, `target` (flat 0/1 ints);
  - `tolerance`: the NSD tolerance in spacing units (chosen so that no surface distance
    of the case lies within 1e-4 of it, so float32 and float64 counts agree);
  - `monai` (lists of length N, one value per image, float32 values as MONAI returns them):
    - `hd100`, `hd95`: `compute_hausdorff_distance(pred, target, include_background=True,
      percentile=None / 95, directed=False, spacing=spacing)`;
    - `hd100_pred_to_target`, `hd95_pred_to_target`: the same with `directed=True`,
      arguments (pred, target); `hd100_target_to_pred`, `hd95_target_to_pred`: `directed=True`,
      arguments (target, pred);
    - `assd`: `compute_average_surface_distance(pred, target, include_background=True,
      symmetric=True, spacing=spacing)`;
    - `asd_pred_to_target`, `asd_target_to_pred`: `symmetric=False`, both argument orders;
    - `nsd`: `compute_surface_dice(pred, target, class_thresholds=[tolerance],
      include_background=True, spacing=spacing)` (use_subvoxels=False: boundaries are
      counted in border voxels).
  - `medpy` (per image; null where MedPy raises): `medpy.metric.binary.hd`, `hd95`, `assd`,
    `asd(result=pred, reference=target)`, all with `voxelspacing=spacing, connectivity=1`.
  - `masd`: Metrics Reloaded's MASD = (mean directed pred->target + mean directed
    target->pred) / 2, computed in float64 from MONAI's two directed ASDs (`inf`/`nan`
    propagate from them).
  - `f64`: the same quantities computed here in float64 with scipy (border = mask XOR
    face-connected erosion; distances = `distance_transform_edt(~other_border,
    sampling=spacing)` read at the border voxels); null for an image where either mask is
    empty. Keys: `hd100`, `hd_pred_to_target`, `hd_target_to_pred` (directed maxima),
    `hd95_max_of_directed` (MONAI's hd95), `hd95_pooled` (MedPy's hd95),
    `hd95_pred_to_target`, `hd95_target_to_pred`, `assd_pooled` (MONAI's and MedPy's ASSD),
    `asd_pred_to_target`, `asd_target_to_pred`, `masd`, `nsd`, and `n_border_pred`,
    `n_border_target` (numbers of border voxels). Use these for tight float64 checks; MONAI's
    own values carry float32 rounding (relative error up to ~1e-6).
- `edt_cases`: `name`, `shape` [S1, S2(, S3)], `spacing`, `sites` (flat 0/1),
  `distance` (flat floats) = `scipy.ndimage.distance_transform_edt(~sites,
  sampling=spacing)`: the exact Euclidean distance from every voxel to the nearest site,
  in spacing units, 0 on the sites. Every case has at least one site.
- `closed_form`: hand-checkable cases (`statement` says why), `shape` [1, 1, ...],
  `spacing`, `pred`, `target`, and `exact` (values stated in closed form; asserted equal
  to MONAI within float32 rounding and to MedPy/float64 within 1e-12).
- `hausdorff_dt_loss`: MONAI `HausdorffDTLoss(alpha=2.0, include_background=True,
  sigmoid=True, reduction="mean")` on float64 logits (uniform in [-3, 3]) and 0/1 targets:
  `name`, `shape`, `alpha`, `logits`, `target`, `loss` (MONAI's value), `gradient`
  (d loss / d logits from MONAI's autograd, float64), and `distance` (the float64 weight
  field dp^2 + dt^2 per voxel, see below), `loss_exact_f64`, `gradient_exact_f64` (the same
  formula with float64 distance fields; MONAI casts its fields to float32).
- `boundary_loss`: `name`, `shape`, `spacing`, `mask` (flat 0/1), `kervadec_sdm` and
  `sdm_border` (flat floats), see below.
- `multiclass_hausdorff_dt_loss`: MONAI `HausdorffDTLoss(alpha=2.0, softmax=True,
  to_onehot_y=True, include_background=B, reduction="mean")`, B in {true, false}, on float64
  logits and class-index targets. Entries `2d_with_background`, `2d_without_background`
  (shape [2, 3, 12, 14]), `3d_with_background`, `3d_without_background` ([2, 4, 6, 7, 8]),
  each with `name`, `shape` (of the logits), `alpha`, `softmax`, `to_onehot_y`,
  `include_background`, `reduction`, `logits` (flat floats), `target` (flat class indices,
  shape [N, 1, spatial...]), `loss` and `gradient` (MONAI's value and autograd d loss /
  d logits, float64), `loss_exact_f64` and `gradient_exact_f64` (the same formula with
  float64 distance fields). See "Multiclass distance losses" below.
- `multiclass_boundary_loss`: Kervadec et al.'s boundary (surface) loss on softmax
  probabilities, float64 reimplementation; same four names and the same logits/targets as
  `multiclass_hausdorff_dt_loss`; each with `name`, `shape`, `spacing` ([1, 1] for 2d,
  [2.5, 0.8, 0.8] for 3d), `include_background`, `idc` (the class indices summed),
  `logits`, `target`, `loss`, `gradient` (float64 autograd through the softmax). See below.

Conventions confirmed in the installed sources (monai 1.6.1, medpy 0.5.2)
========================================================================
Borders. MONAI `get_mask_edges` (monai/metrics/utils.py:281-285) takes
`binary_erosion(mask) ^ mask` with scipy's default structure
(`generate_binary_structure(ndim, 1)`, face connectivity) when `spacing` is not passed to
it, which is the case here (`get_edge_surface_distance` passes `spacing=None` to it unless
`use_subvoxels`, utils.py:417-420). MedPy (medpy/metric/binary.py:1261, 1274-1277) uses
`result ^ binary_erosion(result, structure=generate_binary_structure(ndim, connectivity))`.
Image edges: scipy's `binary_erosion` has `border_value=0`, so voxels outside the image
count as background and a mask voxel on the image edge is a border voxel. MONAI first
crops to the bounding box of pred|target with margin 1 (`CropForegroundD(margin=1,
allow_smaller=False)`, utils.py:264-279), which zero-pads where the box leaves the image:
the same result. Checked here: an all-ones mask against itself gives HD 0, against the
all-ones mask minus its last column HD 1 in both tools (border = the image's outer ring).

Surface distances. MONAI `get_surface_distance` (utils.py:307-378): for each border voxel
of its first argument, the Euclidean distance (coordinates scaled by spacing) to the nearest
border voxel of its second argument, via a KD-tree on CPU (utils.py:356-366), returned as
float32. MedPy (binary.py:1282-1283) reads `distance_transform_edt(~reference_border,
sampling=voxelspacing)` at the result's border voxels (float64). Same distances.

MONAI directed mode. `compute_hausdorff_distance(y_pred, y, directed=True)` calls
`get_edge_surface_distance(..., symmetric=False)` (hausdorff_distance.py:214-222), which
measures only y_pred -> y: from each border voxel of the FIRST argument to the nearest
border voxel of the second (utils.py:451-457). Symmetric mode computes both directions and
`compute_hausdorff_distance` takes the maximum of the per-direction statistics
(hausdorff_distance.py:228-230): hd95 = max(P95(pred->target), P95(target->pred))
("max of directed").

Percentiles. MONAI: `torch.quantile(d, percentile / 100)` (hausdorff_distance.py:249),
default linear interpolation, on the float32 distances; `percentile=None` (or 0) gives the
maximum (hausdorff_distance.py:245-246). MedPy hd95: `numpy.percentile(numpy.hstack((d1,
d2)), 95)` (binary.py:413-415): ONE percentile of both directions' distances pooled,
default linear interpolation (the same definition as torch.quantile: position
q*(n-1) in the sorted list). Hence MONAI hd95 >= MedPy hd95 in general (they differ
here, see the printed differences), while hd100 agrees.

ASSD. MONAI `compute_average_surface_distance(symmetric=True)` takes
`torch.cat(distances).mean()` (surface_distance.py:214-217): the mean of the pooled
distances of both directions (float32). MedPy 0.5.2 `assd` also takes
`numpy.concatenate([d(result, ref), d(ref, result)]).mean()` (binary.py:470-475), pooled
(older MedPy versions averaged the two directed means). So MONAI's and MedPy's ASSD agree
(to float32 rounding) and both differ from Metrics Reloaded's MASD (mean of the two
directed means), recorded separately as `masd`. `asd` (MONAI symmetric=False; MedPy
`asd(result, reference)`, binary.py:584-585) is the mean of the result->reference
distances.

NSD. MONAI `compute_surface_dice` (surface_dice.py:290-312) with use_subvoxels=False:
(#{d_pred->target <= tol} + #{d_target->pred <= tol}) / (#pred border + #target border),
comparison `<=` in spacing units.

Empty masks. MONAI `get_surface_distance(a, b)` (utils.py:337-343): if b's border is empty,
one inf per border voxel of a; else if a's border is empty, one inf per border voxel of b
(it never reaches the KD-tree with an empty side); both empty: no distances at all.
Consequences, recorded in the `empty_masks` case (images: pred empty; both empty; target
empty; normal):
- exactly one mask empty (either one): every direction, directed or not, is a non-empty
  list of infs, so hd100 (and directed hd100) = inf, every hd95 = nan (torch.quantile of
  an all-inf tensor is nan: its linear interpolation computes inf - inf), assd = asd (both
  orders) = inf, masd = inf, NSD = 0 (no distance is <= tol);
- both empty: every value is nan (an empty list gives nan: hausdorff_distance.py:242-243,
  surface_distance.py:216, surface_dice.py:308-310).
MedPy raises RuntimeError("The first/second supplied array does not contain any binary
object.") when either mask is empty (binary.py:1264-1271): recorded as null.

MONAI warnings. Every call emits, per (image, class), a FutureWarning that
`get_mask_edges`' argument `always_return_as_numpy` is deprecated (MONAI passes it itself,
utils.py:197-200, 420), and for an empty mask a UserWarning "the ground truth of class c
is all 0, this may result in nan/inf distance." / "the prediction of class c is all 0,
..." (utils.py:438-449). The values are unaffected; this script silences and counts them.

MONAI-vs-MedPy agreement (printed when run): hd100 identical up to float32 rounding of
MONAI's distances; ASSD identical up to float32 rounding (pooled in both); ASD identical;
hd95 differs (max of directed percentiles vs one pooled percentile): on every image
here MONAI's hd95 >= MedPy's, by up to ~3.2 (spacing units); MASD differs from ASSD by
up to ~2.1 (the single-voxel-vs-disc image).

HausdorffDTLoss (monai/losses/hausdorff_loss.py)
================================================
With sigmoid=True (line 151-152) p = sigmoid(x); for each channel (here one) and each
image b (lines 183-197): the distance field of a mask m (lines 97-122) is computed from
`fg = m > 0.5` as `edt(fg) + edt(~fg)` with MONAI's channel-first
`distance_transform_edt` (scipy on CPU, NO spacing: unit voxels, monai/transforms/utils.py
line 2490 onwards); i.e. for a foreground voxel the distance to the nearest background
voxel, for a background voxel the distance to the nearest foreground voxel (both >= 1;
voxels outside the image do not count). If the image's mask is all background or all
foreground the field is 0 everywhere. The fields are computed under no_grad from the
detached prediction thresholded at p > 0.5 (dp) and from the target (dt), and cast to
float32 (line 186-187). Then
    loss = mean over (b, c) of [ mean over voxels of (p - y)^2 * (dp^alpha + dt^alpha) ]
(lines 189-200; `dp^alpha + dt^alpha` is evaluated in float32, the product in the input's
float64). With equal-sized images this is the mean over all B*C*voxels. The gradient flows
only through (p - y)^2: d loss/dx = 2 (p - y) p (1 - p) (dp^alpha + dt^alpha) / (B*C*V).

Boundary-loss maps (Kervadec et al., LIVIAETS/boundary-loss utils.py `one_hot2dist`)
===================================================================================
- `kervadec_sdm` = `edt(neg, sampling)*neg - (edt(pos, sampling) - 1)*pos` with pos = mask,
  neg = ~mask (scipy distance_transform_edt): outside, the distance to the nearest mask
  voxel; inside, minus (distance to the nearest background voxel - 1), so inner border
  voxels get 0 with unit spacing. The "- 1" is in voxel units regardless of spacing. An
  empty mask gives all zeros (their `if posmask.any()`).
- `sdm_border` = `edt(~mask, sampling)*~mask - edt(mask, sampling)*mask`: outside, + the
  distance to the nearest mask voxel; inside, - the distance to the nearest background
  voxel; never 0 on a non-empty, non-full mask. An empty mask: all zeros. Hence
  kervadec_sdm = sdm_border + mask (asserted). A full mask has no background voxel, the
  inner distance is undefined (scipy then returns meaningless values), so no full mask is
  included.

Multiclass distance losses (`multiclass_hausdorff_dt_loss`, `multiclass_boundary_loss`)
=====================================================================================
Inputs (`multiclass_inputs`, shared by both lists). `2d`: shape [2, 3, 12, 14], seed 7401;
`3d`: shape [2, 4, 6, 7, 8], seed 7402 (`numpy.random.default_rng`). Logits: uniform in
[-3, 3] (float64, drawn first, C order). Targets: per image a grid of random classes, one
class per block of 3x3 (2d) / 2x2x2 (3d) voxels, cropped to the spatial shape (the last
block row/column is partial where the size is not a multiple). Asserted: in `2d` image 0
contains all 3 classes and image 1 contains classes 0 and 2 only (class 1 ABSENT there);
in `3d` every image contains all 4 classes. No class covers a whole image. Targets are
flat int class indices of shape [N, 1, spatial...]; y = one_hot(target) has shape
[N, C, spatial...]. Both lists use the same softmax p = softmax(logits, axis=1).

`multiclass_hausdorff_dt_loss` reproduces monai/losses/hausdorff_loss.py (monai 1.6.1):
the target is passed as a float64 [N, 1, ...] tensor of class indices and one-hot encoded
by `monai.networks.one_hot` (lines 164-168; monai/networks/utils.py:167-217, float32 0/1
values, so p - y is evaluated in float64); softmax over channels (lines 155-159);
include_background=False drops channel 0 of p and y (lines 170-176). For every kept
channel c and image b (lines 183-197) the distance field of a mask m (`distance_field`,
lines 97-122) is
    field(m) = edt(m) + edt(~m),   m = (channel > 0.5)  (strict),
with `scipy.ndimage.distance_transform_edt` (unit voxels, no spacing; via MONAI's
channel-first wrapper monai/transforms/utils.py:2490 onwards); i.e. for a voxel in m the
distance to the nearest voxel outside m, for a voxel outside m the distance to the nearest
voxel in m (>= 1 everywhere). If m is all background OR all foreground (line 115) the field
is 0 everywhere (for all-foreground there is no background voxel to measure to). The
prediction field dp uses m = p[b, c] > 0.5 (the detached softmax probability; a class
whose probability never exceeds 0.5 gets a zero field), the target field dt uses
m = y[b, c] (a class absent from the image, here class 1 of `2d` image 1, gets dt = 0).
Then
    loss = mean over b, kept c and voxels v of (p - y)^2 * (dp^alpha + dt^alpha),  alpha = 2
(lines 189-200: per-(b, c) spatial mean, then the mean over b and c; all images have the
same size so this is the mean over N * C_kept * V elements; channels not kept contribute
nothing and are not counted). MONAI casts dp and dt to float32 (lines 186-187), so
dp^alpha + dt^alpha is a float32 value (its product with the float64 (p - y)^2 is float64):
`loss`/`gradient` carry that rounding (relative ~1e-7), `loss_exact_f64` /
`gradient_exact_f64` are the same formula with float64 fields, computed here
(`multiclass_hausdorff_dt_cases`, asserted equal to MONAI within 1e-6 relative). The
fields are constants (no_grad): d loss / d logits = softmax Jacobian applied to
2 (p - y) (dp^alpha + dt^alpha) / (N * C_kept * V) on kept channels, 0 on the others.

`multiclass_boundary_loss` reproduces LIVIAETS/boundary-loss (commit 171c32d8) `SurfaceLoss`
(losses.py:98-116) on softmax probabilities with distance maps from `one_hot2dist`
(utils.py:294-310), per image, from the one-hot target, with resolution = `spacing`:
    dist[b, k] = edt(neg, spacing) * neg - (edt(pos, spacing) - 1) * pos,
                 pos = (target[b] == k), neg = ~pos,
                 and dist[b, k] = 0 if class k is absent from image b;
    loss = mean over b, k in idc and voxels of p[b, k] * dist[b, k]
(`einsum("bkwh,bkwh->bkwh", probs[:, idc], dist[:, idc]).mean()`, i.e. divided by
N * |idc| * V, absent classes included in the count). Outside class k the map is + the
distance to the nearest voxel of k; inside, -(distance to the nearest non-k voxel - 1),
so inner-border voxels are 0 with unit spacing; the "- 1" is in voxel units even with
anisotropic spacing (a 3d inner-border voxel gets 1 - d with d its distance to the
nearest non-k voxel: 1 - 0.8 = 0.2 for a neighbour along axis 1 or 2, 1 - 2.5 = -1.5 when
the only neighbours outside k are along axis 0; not 0). idc = [0, ..., C-1] for `include_background: true`,
[1, ..., C-1] for false. Differences from upstream, all deliberate: float64 throughout
(upstream casts p and dist to float32, losses.py:108-109, and `one_hot2dist` with its
default dtype=None stores the map in the dtype of the one-hot input, the int32 of
`class2one_hot` in dataloader.py:127-133, truncating distances toward zero; here the maps
are real-valued float64); the 2-D einsum string is read as "elementwise product" so the
3-D case uses the same formula. No class covers a whole image (upstream's edt of an
all-true mask is meaningless). `gradient` is float64 autograd through the softmax,
asserted equal to the closed form d loss / d x_c = p_c (D_c - sum_k p_k D_k) / (N |idc| V)
with D_k = dist_k for k in idc and 0 otherwise.
"""
import json
import math
import pathlib
import warnings

import numpy as np
import scipy
import scipy.ndimage as ndi
import torch
import monai
import medpy
from importlib.metadata import version as pkg_version
from medpy.metric import binary as mb
from monai.losses import HausdorffDTLoss
from monai.metrics import (
    compute_average_surface_distance,
    compute_hausdorff_distance,
    compute_surface_dice,
)

OUT = pathlib.Path(__file__).with_name("surface.json")
WARN_COUNTS = {}


# ----------------------------------------------------------------------------- helpers


def fin(v):
    """A float, or the strings "nan" / "inf" / "-inf" for JSON."""
    if v is None:
        return None
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def fins(vs):
    return [fin(v) for v in vs]


def flat_int(a):
    return np.asarray(a).astype(np.int64).reshape(-1).tolist()


def flat_float(a):
    return fins(np.asarray(a, dtype=np.float64).reshape(-1).tolist())


def dumps(obj, level=0):
    """JSON with nested objects indented by one space and scalar lists on one line."""
    pad = " " * level
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f'{pad} {json.dumps(k)}: {dumps(v, level + 1)}' for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list):
        if all(not isinstance(v, (dict, list)) for v in obj):
            return "[" + ",".join(json.dumps(v, allow_nan=False) for v in obj) + "]"
        items = [pad + " " + dumps(v, level + 1) for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(obj, allow_nan=False)


def monai_call(fn, *args, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*args, **kw)
    for w in caught:
        key = (w.category.__name__, "deprecated always_return_as_numpy"
               if "always_return_as_numpy" in str(w.message) else str(w.message))
        WARN_COUNTS[key] = WARN_COUNTS.get(key, 0) + 1
    return out


def medpy_or_none(fn, *args, **kw):
    try:
        return float(fn(*args, **kw))
    except RuntimeError:
        return None


def border(mask):
    """Mask XOR its face-connected erosion; outside the image counts as background."""
    st = ndi.generate_binary_structure(mask.ndim, 1)
    return mask ^ ndi.binary_erosion(mask, structure=st, border_value=0)


def directed(a, b, spacing):
    """Distances from each border voxel of a to the nearest border voxel of b (float64)."""
    ba, bb = border(a), border(b)
    return ndi.distance_transform_edt(~bb, sampling=spacing)[ba]


def f64_metrics(p, t, spacing, tol):
    if not p.any() or not t.any():
        return None
    dpt, dtp = directed(p, t, spacing), directed(t, p, spacing)
    pooled = np.concatenate([dpt, dtp])
    return {
        "hd100": max(dpt.max(), dtp.max()),
        "hd_pred_to_target": dpt.max(),
        "hd_target_to_pred": dtp.max(),
        "hd95_max_of_directed": max(np.percentile(dpt, 95), np.percentile(dtp, 95)),
        "hd95_pooled": np.percentile(pooled, 95),
        "hd95_pred_to_target": np.percentile(dpt, 95),
        "hd95_target_to_pred": np.percentile(dtp, 95),
        "assd_pooled": pooled.mean(),
        "asd_pred_to_target": dpt.mean(),
        "asd_target_to_pred": dtp.mean(),
        "masd": (dpt.mean() + dtp.mean()) / 2,
        "nsd": ((dpt <= tol).sum() + (dtp <= tol).sum()) / (dpt.size + dtp.size),
        "n_border_pred": int(dpt.size),
        "n_border_target": int(dtp.size),
        "_all": pooled,
    }


def blobs(rng, shape, sigma, frac):
    """Random blobs: Gaussian-smoothed noise thresholded at its (1 - frac) quantile."""
    f = ndi.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return f > np.quantile(f, 1 - frac)


def correlated_pair(rng, shape, sigma, frac, wobble=0.6):
    """A target of blobs and a prediction from the same field plus extra smoothed noise."""
    base = ndi.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    extra = ndi.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    t = base > np.quantile(base, 1 - frac)
    pf = base + wobble * extra
    p = pf > np.quantile(pf, 1 - frac * rng.uniform(0.8, 1.2))
    return p, t


def ball(shape, centre, radius, spacing=None):
    spacing = spacing or [1.0] * len(shape)
    grids = np.indices(shape, dtype=np.float64)
    r2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, spacing))
    return r2 <= radius ** 2


# ----------------------------------------------------------------------------- metric cases

MAX_DIFF = {}


def note(key, a, b):
    """Tracks the largest |a - b| over finite pairs."""
    if a is None or b is None:
        return
    a, b = float(a), float(b)
    if math.isfinite(a) and math.isfinite(b):
        MAX_DIFF[key] = max(MAX_DIFF.get(key, 0.0), abs(a - b))


def metric_case(name, pred, target, spacing, tolerance):
    pred = np.asarray(pred, dtype=bool)
    target = np.asarray(target, dtype=bool)
    assert pred.shape == target.shape and pred.shape[1] == 1
    n = pred.shape[0]
    sp = [float(s) for s in spacing]
    P = torch.from_numpy(pred.astype(np.float32))
    T = torch.from_numpy(target.astype(np.float32))

    def hd(a, b, pct, dirn):
        return monai_call(compute_hausdorff_distance, a, b, include_background=True,
                          percentile=pct, directed=dirn, spacing=sp)[:, 0].tolist()

    def asd(a, b, sym):
        return monai_call(compute_average_surface_distance, a, b, include_background=True,
                          symmetric=sym, spacing=sp)[:, 0].tolist()

    mo = {
        "hd100": hd(P, T, None, False),
        "hd95": hd(P, T, 95, False),
        "hd100_pred_to_target": hd(P, T, None, True),
        "hd100_target_to_pred": hd(T, P, None, True),
        "hd95_pred_to_target": hd(P, T, 95, True),
        "hd95_target_to_pred": hd(T, P, 95, True),
        "assd": asd(P, T, True),
        "asd_pred_to_target": asd(P, T, False),
        "asd_target_to_pred": asd(T, P, False),
        "nsd": monai_call(compute_surface_dice, P, T, class_thresholds=[tolerance],
                          include_background=True, spacing=sp)[:, 0].tolist(),
    }
    md = {"hd": [], "hd95": [], "assd": [], "asd": []}
    f64 = []
    for i in range(n):
        p, t = pred[i, 0], target[i, 0]
        md["hd"].append(medpy_or_none(mb.hd, p, t, voxelspacing=sp, connectivity=1))
        md["hd95"].append(medpy_or_none(mb.hd95, p, t, voxelspacing=sp, connectivity=1))
        md["assd"].append(medpy_or_none(mb.assd, p, t, voxelspacing=sp, connectivity=1))
        md["asd"].append(medpy_or_none(mb.asd, p, t, voxelspacing=sp, connectivity=1))
        r = f64_metrics(p, t, sp, tolerance)
        if r is not None:
            gap = np.abs(r.pop("_all") - tolerance).min()
            assert gap > 1e-4, f"{name}[{i}]: a surface distance is {gap} from the tolerance"
            # MONAI (float32) against float64.
            for mk, fk in [("hd100", "hd100"), ("hd95", "hd95_max_of_directed"),
                           ("hd100_pred_to_target", "hd_pred_to_target"),
                           ("hd100_target_to_pred", "hd_target_to_pred"),
                           ("hd95_pred_to_target", "hd95_pred_to_target"),
                           ("hd95_target_to_pred", "hd95_target_to_pred"),
                           ("assd", "assd_pooled"), ("asd_pred_to_target", "asd_pred_to_target"),
                           ("asd_target_to_pred", "asd_target_to_pred"), ("nsd", "nsd")]:
                a, b = mo[mk][i], r[fk]
                assert abs(a - b) <= 2e-6 * max(1.0, abs(b)), f"{name}[{i}] monai {mk}: {a} vs {b}"
                note(f"monai {mk} vs f64 {fk}", a, b)
            # MedPy (float64) against float64.
            for mk, fk in [("hd", "hd100"), ("hd95", "hd95_pooled"), ("assd", "assd_pooled"),
                           ("asd", "asd_pred_to_target")]:
                assert abs(md[mk][i] - r[fk]) <= 1e-12, f"{name}[{i}] medpy {mk}"
                note(f"medpy {mk} vs f64 {fk}", md[mk][i], r[fk])
            r = {k: (v if isinstance(v, int) else float(v)) for k, v in r.items()}
        else:
            assert all(md[k][i] is None for k in md)
        f64.append(r)
        note("monai hd100 vs medpy hd", mo["hd100"][i], md["hd"][i])
        note("monai hd95 vs medpy hd95", mo["hd95"][i], md["hd95"][i])
        note("monai assd vs medpy assd", mo["assd"][i], md["assd"][i])
        note("monai asd_pred_to_target vs medpy asd", mo["asd_pred_to_target"][i], md["asd"][i])
        if r is not None:
            note("masd vs assd (f64)", r["masd"], r["assd_pooled"])
    masd = [(a + b) / 2 for a, b in zip(mo["asd_pred_to_target"], mo["asd_target_to_pred"])]
    return {
        "name": name,
        "shape": list(pred.shape),
        "spacing": sp,
        "pred": flat_int(pred),
        "target": flat_int(target),
        "tolerance": float(tolerance),
        "monai": {k: fins(v) for k, v in mo.items()},
        "medpy": {k: fins(v) for k, v in md.items()},
        "masd": fins(masd),
        "f64": [None if r is None else {k: fin(v) if not isinstance(v, int) else v for k, v in r.items()}
                for r in f64],
    }


def stack(pairs):
    p = np.stack([a for a, _ in pairs])[:, None]
    t = np.stack([b for _, b in pairs])[:, None]
    return p, t


def nonempty(pairs):
    for a, b in pairs:
        assert a.any() and b.any() and not a.all() and not b.all()
    return pairs


def metric_cases():
    cases = []
    rng = np.random.default_rng(7001)
    s = (24, 28)
    pairs = [correlated_pair(rng, s, 2.5, 0.3) for _ in range(3)]
    # image 1: the prediction is a disc with a 3x3 hole, the target random blobs
    hole = ball(s, (12, 14), 8.0)
    hole[11:14, 13:16] = False
    pairs[1] = (hole, pairs[1][1])
    cases.append(metric_case("2d_isotropic", *stack(nonempty(pairs)), [1.0, 1.0], 1.5))

    rng = np.random.default_rng(7002)
    pairs = [correlated_pair(rng, s, 2.0, 0.35) for _ in range(3)]
    cases.append(metric_case("2d_anisotropic", *stack(nonempty(pairs)), [0.7, 1.3], 1.5))

    rng = np.random.default_rng(7003)
    s3 = (12, 14, 16)
    pairs = [correlated_pair(rng, s3, 2.0, 0.3) for _ in range(2)]
    cases.append(metric_case("3d_isotropic", *stack(nonempty(pairs)), [1.0, 1.0, 1.0], 1.5))

    rng = np.random.default_rng(7004)
    pairs = [correlated_pair(rng, s3, 2.0, 0.3) for _ in range(2)]
    cases.append(metric_case("3d_anisotropic", *stack(nonempty(pairs)), [2.5, 0.8, 0.8], 2.0))

    # masks touching the image edges
    rng = np.random.default_rng(7005)
    s = (20, 22)
    a = np.zeros(s, bool); a[:9, :] = True            # top rows, full width
    b = np.zeros(s, bool); b[:11, 3:] = True          # top rows, touching right edge
    c = ball(s, (0, 0), 9.0)                          # quarter disc in a corner
    d = ball(s, (19, 21), 7.0) | ball(s, (0, 0), 3.0)
    e = np.ones(s, bool); e[:, -1] = False            # all but the last column
    f = np.zeros(s, bool); f[2:, :] = True            # all but the first two rows
    p, t = correlated_pair(rng, s, 2.0, 0.6)          # large random blobs (wrap mode: edges)
    cases.append(metric_case("edge_touching", *stack(nonempty([(a, b), (c, d), (e, f), (p, t)])),
                             [1.0, 1.0], 1.5))

    # single voxels
    s = (15, 17)
    v1 = np.zeros(s, bool); v1[4, 5] = True
    v2 = np.zeros(s, bool); v2[9, 11] = True
    v3 = np.zeros(s, bool); v3[0, 16] = True
    blob = ball(s, (7, 8), 4.0)
    cases.append(metric_case("single_voxel", *stack([(v1, v2), (v3, blob), (v1, v1.copy())]),
                             [0.7, 1.3], 1.5))

    # empty masks: pred empty; both empty; target empty; a normal image
    rng = np.random.default_rng(7006)
    s = (16, 18)
    z = np.zeros(s, bool)
    p, t = correlated_pair(rng, s, 2.0, 0.3)
    cases.append(metric_case("empty_masks", *stack([(z, t), (z, z.copy()), (p, z), (p, t)]),
                             [1.0, 1.0], 1.5))

    # several disconnected components
    s = (32, 36)
    p1 = ball(s, (6, 6), 4.0) | ball(s, (20, 25), 5.0) | ball(s, (27, 6), 3.0)
    t1 = ball(s, (7, 7), 4.0) | ball(s, (19, 27), 5.5) | ball(s, (5, 30), 2.0)
    p2 = np.zeros(s, bool); p2[2:6, 2:8] = True; p2[10:14, 20:33] = True; p2[25:30, 4:9] = True
    t2 = np.zeros(s, bool); t2[3:7, 2:8] = True; t2[11:14, 21:30] = True
    t2[24:31, 3:10] = True; t2[26:28, 5:7] = False      # ring component
    cases.append(metric_case("components_2d", *stack([(p1, t1), (p2, t2)]), [1.0, 1.0], 1.5))
    s3 = (10, 12, 14)
    p3 = ball(s3, (3, 3, 3), 2.5) | ball(s3, (6, 8, 10), 3.0)
    t3 = ball(s3, (3, 4, 3), 2.5) | ball(s3, (6, 8, 9), 2.5) | ball(s3, (8, 2, 12), 1.5)
    cases.append(metric_case("components_3d", p3[None, None], t3[None, None], [1.5, 1.0, 1.0], 1.6))
    return cases


# ----------------------------------------------------------------------------- closed form


def closed_form_cases():
    out = []

    def add(name, statement, p, t, spacing, exact):
        sp = [float(v) for v in spacing]
        P = torch.from_numpy(p.astype(np.float32))[None, None]
        T = torch.from_numpy(t.astype(np.float32))[None, None]
        got = {
            "hd100": monai_call(compute_hausdorff_distance, P, T, include_background=True, spacing=sp).item(),
            "hd_pred_to_target": monai_call(compute_hausdorff_distance, P, T, include_background=True,
                                            directed=True, spacing=sp).item(),
            "hd_target_to_pred": monai_call(compute_hausdorff_distance, T, P, include_background=True,
                                            directed=True, spacing=sp).item(),
            "hd95": monai_call(compute_hausdorff_distance, P, T, include_background=True,
                               percentile=95, spacing=sp).item(),
            "assd": monai_call(compute_average_surface_distance, P, T, include_background=True,
                               symmetric=True, spacing=sp).item(),
            "nsd_tol_1": monai_call(compute_surface_dice, P, T, [1.0], include_background=True,
                                    spacing=sp).item(),
        }
        r = f64_metrics(p, t, sp, 1.0)
        f = {"hd100": r["hd100"], "hd_pred_to_target": r["hd_pred_to_target"],
             "hd_target_to_pred": r["hd_target_to_pred"], "hd95": r["hd95_max_of_directed"],
             "assd": r["assd_pooled"], "masd": r["masd"], "nsd_tol_1": r["nsd"]}
        for k, v in exact.items():
            if k in got:
                assert abs(got[k] - v) <= 1e-6 * max(1.0, v), f"{name} monai {k}: {got[k]} vs {v}"
            assert abs(f[k] - v) <= 1e-12, f"{name} f64 {k}: {f[k]} vs {v}"
        assert abs(mb.hd(p, t, voxelspacing=sp) - exact["hd100"]) <= 1e-12
        out.append({"name": name, "statement": statement, "shape": [1, 1, *p.shape], "spacing": sp,
                    "pred": flat_int(p), "target": flat_int(t), "exact": {k: float(v) for k, v in exact.items()}})

    s = (20, 24)
    for k in (1, 3):
        p = np.zeros(s, bool); p[6:14, 4:12] = True
        t = np.zeros(s, bool); t[6:14, 4 + k:12 + k] = True
        out_stmt = (f"8x8 square shifted by {k} pixel(s) along axis 1: every border voxel is within "
                    f"{k} of the other border, the left/right edge midpoints exactly {k}")
        add(f"square_shift_{k}", out_stmt, p, t, [1.0, 1.0],
            {"hd100": float(k), "hd_pred_to_target": float(k), "hd_target_to_pred": float(k)})
    p = np.zeros(s, bool); p[5:15, 7:17] = True
    t = np.zeros(s, bool); t[7:13, 9:15] = True
    add("nested_squares", "10x10 square around a concentric 6x6 square (inset 2): pred corner to "
        "target corner 2*sqrt(2); every target border voxel is 2 from the pred border",
        p, t, [1.0, 1.0],
        {"hd100": 2 * math.sqrt(2), "hd_pred_to_target": 2 * math.sqrt(2), "hd_target_to_pred": 2.0,
         "hd95": 2 * math.sqrt(2), "nsd_tol_1": 0.0})
    p = np.zeros((9, 11), bool); p[1, 2] = True
    t = np.zeros((9, 11), bool); t[4, 6] = True
    d = math.hypot(3 * 0.7, 4 * 1.3)
    add("two_voxels_anisotropic", "single voxels at (1,2) and (4,6), spacing [0.7, 1.3]: every "
        "metric is the distance hypot(3*0.7, 4*1.3)", p, t, [0.7, 1.3],
        {"hd100": d, "hd_pred_to_target": d, "hd_target_to_pred": d, "hd95": d, "assd": d, "masd": d,
         "nsd_tol_1": 0.0})
    p = np.zeros((10, 8, 8), bool); p[2:5, 2:6, 2:6] = True
    t = np.zeros((10, 8, 8), bool); t[4:7, 2:6, 2:6] = True
    add("cuboid_shift_3d", "3x4x4 cuboid shifted by 2 voxels along axis 0 with spacing 2.5: "
        "HD = 2 * 2.5", p, t, [2.5, 0.8, 0.8],
        {"hd100": 5.0, "hd_pred_to_target": 5.0, "hd_target_to_pred": 5.0})
    p = ball((16, 16), (7, 8), 5.0)
    add("identical", "identical masks: all distances 0, NSD 1", p, p.copy(), [1.3, 0.6],
        {"hd100": 0.0, "hd95": 0.0, "assd": 0.0, "masd": 0.0, "nsd_tol_1": 1.0})
    return out


# ----------------------------------------------------------------------------- EDT


def edt_cases():
    out = []

    def add(name, sites, spacing):
        assert sites.any()
        sp = [float(v) for v in spacing]
        d = ndi.distance_transform_edt(~sites, sampling=sp)
        # brute-force check on small inputs
        if sites.size <= 4000:
            idx = np.argwhere(sites) * np.asarray(sp)
            grid = np.indices(sites.shape).reshape(sites.ndim, -1).T * np.asarray(sp)
            brute = np.sqrt(((grid[:, None, :] - idx[None, :, :]) ** 2).sum(-1)).min(1)
            assert np.abs(brute - d.reshape(-1)).max() <= 1e-12, name
        out.append({"name": name, "shape": list(sites.shape), "spacing": sp,
                    "sites": flat_int(sites), "distance": flat_float(d)})

    rng = np.random.default_rng(7101)
    add("2d_isotropic_random", rng.uniform(size=(24, 28)) < 0.03, [1.0, 1.0])
    add("2d_anisotropic_random", rng.uniform(size=(24, 28)) < 0.03, [0.7, 1.3])
    one = np.zeros((9, 11), bool); one[0, 0] = True
    add("2d_single_corner_site", one, [1.0, 2.0])
    thin = np.zeros((1, 17), bool); thin[0, 3] = thin[0, 12] = True
    add("2d_single_row", thin, [1.0, 0.5])
    add("2d_blob_border", border(blobs(rng, (20, 23), 2.0, 0.4)), [1.0, 1.0])
    add("3d_isotropic_random", rng.uniform(size=(12, 14, 16)) < 0.01, [1.0, 1.0, 1.0])
    add("3d_anisotropic_random", rng.uniform(size=(12, 14, 16)) < 0.01, [2.5, 0.8, 0.8])
    s = np.zeros((7, 9, 11), bool); s[6, 8, 10] = True; s[0, 4, 0] = True
    add("3d_two_sites", s, [1.2, 0.9, 1.0])
    return out


# ----------------------------------------------------------------------------- losses


def hd_field_f64(m):
    """MONAI's HausdorffDTLoss distance field of one image (float64)."""
    fg = m > 0.5
    if not fg.any() or fg.all():
        return np.zeros(m.shape)
    return ndi.distance_transform_edt(fg) + ndi.distance_transform_edt(~fg)


def hausdorff_dt_cases():
    out = []
    rng = np.random.default_rng(7201)
    specs = [("2d", (2, 1, 12, 14), None), ("3d", (2, 1, 6, 7, 8), None),
             ("2d_empty_target_image", (2, 1, 12, 14), 1)]
    for name, shape, empty in specs:
        x = rng.uniform(-3.0, 3.0, size=shape)
        y = np.stack([blobs(rng, shape[2:], 1.5, 0.35) for _ in range(shape[0])])[:, None].astype(np.float64)
        if empty is not None:
            y[empty] = 0.0
        X = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        Y = torch.tensor(y, dtype=torch.float64)
        loss_fn = HausdorffDTLoss(alpha=2.0, include_background=True, sigmoid=True, reduction="mean")
        loss = loss_fn(X, Y)
        loss.backward()
        # float64 closed form
        p = 1.0 / (1.0 + np.exp(-x))
        dist = np.zeros(shape)
        for b in range(shape[0]):
            dist[b, 0] = hd_field_f64(p[b, 0]) ** 2 + hd_field_f64(y[b, 0]) ** 2
        n_el = float(np.prod(shape))
        loss64 = float(((p - y) ** 2 * dist).sum() / n_el)
        grad64 = 2 * (p - y) * p * (1 - p) * dist / n_el
        assert abs(loss.item() - loss64) <= 1e-6 * max(1.0, loss64), (name, loss.item(), loss64)
        assert np.abs(X.grad.numpy() - grad64).max() <= 1e-6 * max(1e-3, np.abs(grad64).max()), name
        MAX_DIFF[f"HausdorffDTLoss {name}: |MONAI - exact f64| loss"] = abs(loss.item() - loss64)
        out.append({"name": name, "shape": list(shape), "alpha": 2.0, "sigmoid": True,
                    "include_background": True, "reduction": "mean",
                    "logits": flat_float(x), "target": flat_int(y), "loss": fin(loss.item()),
                    "gradient": flat_float(X.grad.numpy()), "distance": flat_float(dist),
                    "loss_exact_f64": loss64, "gradient_exact_f64": flat_float(grad64)})
    return out


def boundary_loss_cases():
    out = []
    edt = ndi.distance_transform_edt

    def add(name, mask, spacing):
        sp = [float(v) for v in spacing]
        pos = mask.astype(bool)
        assert not pos.all()
        if pos.any():
            neg = ~pos
            kerv = edt(neg, sampling=sp) * neg - (edt(pos, sampling=sp) - 1) * pos
            sdm = edt(neg, sampling=sp) * neg - edt(pos, sampling=sp) * pos
        else:
            kerv = np.zeros(mask.shape)
            sdm = np.zeros(mask.shape)
        assert np.abs(kerv - (sdm + pos)).max() <= 1e-12 or not pos.any()
        out.append({"name": name, "shape": list(mask.shape), "spacing": sp, "mask": flat_int(pos),
                    "kervadec_sdm": flat_float(kerv), "sdm_border": flat_float(sdm)})

    rng = np.random.default_rng(7301)
    add("2d_blobs_isotropic", blobs(rng, (16, 18), 2.0, 0.35), [1.0, 1.0])
    add("2d_disc_anisotropic", ball((16, 18), (7, 9), 5.0), [0.7, 1.3])
    edge = np.zeros((12, 13), bool); edge[:5, 4:] = True
    add("2d_touching_edge", edge, [1.0, 1.0])
    sv = np.zeros((9, 10), bool); sv[4, 6] = True
    add("2d_single_voxel", sv, [1.0, 2.0])
    add("2d_empty", np.zeros((6, 7), bool), [1.0, 1.0])
    add("3d_blobs_anisotropic", blobs(rng, (8, 10, 12), 1.5, 0.3), [2.5, 0.8, 0.8])
    add("3d_ball_isotropic", ball((9, 10, 11), (4, 5, 5), 3.2), [1.0, 1.0, 1.0])
    return out


# ----------------------------------------------------------------------------- multiclass losses


def multiclass_inputs(shape, seed, block, absent=None):
    """Logits uniform in [-3, 3] and blocky class-index targets (one class per block of
    `block` voxels per axis, cropped to the spatial shape). `absent` = (image, class): that
    image draws its blocks from the other classes only."""
    rng = np.random.default_rng(seed)
    n, c, *sp = shape
    x = rng.uniform(-3.0, 3.0, size=shape)
    t = np.empty((n, *sp), dtype=np.int64)
    for b in range(n):
        classes = np.arange(c)
        if absent is not None and absent[0] == b:
            classes = classes[classes != absent[1]]
        grid = rng.choice(classes, size=[-(-s // block) for s in sp])
        for ax in range(len(sp)):
            grid = np.repeat(grid, block, axis=ax)
        t[b] = grid[tuple(slice(0, s) for s in sp)]
    for b in range(n):
        present = set(np.unique(t[b]).tolist())
        want = set(range(c)) - ({absent[1]} if absent is not None and absent[0] == b else set())
        assert present == want, (shape, b, present, want)
    return x, t


MULTICLASS_SPECS = [
    # name, shape [N, C, spatial...], seed, block, (image, absent class), boundary-loss spacing
    ("2d", (2, 3, 12, 14), 7401, 3, (1, 1), [1.0, 1.0]),
    ("3d", (2, 4, 6, 7, 8), 7402, 2, None, [2.5, 0.8, 0.8]),
]


def one_hot_f64(t, c):
    """[N, spatial...] class indices -> [N, C, spatial...] float64 one-hot."""
    return (t[:, None] == np.arange(c).reshape((1, c) + (1,) * (t.ndim - 1))).astype(np.float64)


def multiclass_hausdorff_dt_cases():
    out = []
    alpha = 2.0
    for name, shape, seed, block, absent, _ in MULTICLASS_SPECS:
        x, t = multiclass_inputs(shape, seed, block, absent)
        n, c = shape[:2]
        for include_bg in (True, False):
            X = torch.tensor(x, dtype=torch.float64, requires_grad=True)
            Y = torch.tensor(t[:, None], dtype=torch.float64)
            loss_fn = HausdorffDTLoss(alpha=alpha, include_background=include_bg, to_onehot_y=True,
                                      softmax=True, reduction="mean")
            loss = monai_call(loss_fn, X, Y)
            assert loss.dtype == torch.float64
            loss.backward()
            assert X.grad.dtype == torch.float64
            # float64 reimplementation of the same formula
            X2 = torch.tensor(x, dtype=torch.float64, requires_grad=True)
            p = torch.softmax(X2, 1)
            y = one_hot_f64(t, c)
            keep = list(range(c)) if include_bg else list(range(1, c))
            pn = p.detach().numpy()
            w = np.zeros((n, len(keep), *shape[2:]))
            for b in range(n):
                for j, k in enumerate(keep):
                    w[b, j] = hd_field_f64(pn[b, k]) ** alpha + hd_field_f64(y[b, k]) ** alpha
            loss64_t = ((p[:, keep] - torch.from_numpy(y[:, keep])) ** 2 * torch.from_numpy(w)).mean()
            loss64_t.backward()
            loss64 = loss64_t.item()
            grad64 = X2.grad.numpy()
            assert abs(loss.item() - loss64) <= 1e-6 * max(1.0, loss64), (name, loss.item(), loss64)
            assert np.abs(X.grad.numpy() - grad64).max() <= 1e-6 * max(1e-3, np.abs(grad64).max()), name
            tag = f"{name}_{'with' if include_bg else 'without'}_background"
            MAX_DIFF[f"multiclass HausdorffDTLoss {tag}: |MONAI - exact f64| loss"] = abs(loss.item() - loss64)
            MAX_DIFF[f"multiclass HausdorffDTLoss {tag}: |MONAI - exact f64| gradient (max)"] = \
                float(np.abs(X.grad.numpy() - grad64).max())
            out.append({"name": tag, "shape": list(shape), "alpha": alpha, "softmax": True,
                        "to_onehot_y": True, "include_background": include_bg, "reduction": "mean",
                        "logits": flat_float(x), "target": flat_int(t), "loss": fin(loss.item()),
                        "gradient": flat_float(X.grad.numpy()), "loss_exact_f64": fin(loss64),
                        "gradient_exact_f64": flat_float(grad64)})
    return out


def one_hot2dist_f64(seg, resolution):
    """LIVIAETS/boundary-loss utils.py `one_hot2dist` (lines 294-310) with a float64 result."""
    edt = ndi.distance_transform_edt
    res = np.zeros(seg.shape, dtype=np.float64)
    for k in range(len(seg)):
        pos = seg[k].astype(bool)
        if pos.any():
            assert not pos.all()  # not exercised: scipy's edt of an all-True mask is meaningless
            neg = ~pos
            res[k] = edt(neg, sampling=resolution) * neg - (edt(pos, sampling=resolution) - 1) * pos
    return res


def multiclass_boundary_loss_cases():
    out = []
    for name, shape, seed, block, absent, spacing in MULTICLASS_SPECS:
        x, t = multiclass_inputs(shape, seed, block, absent)
        n, c = shape[:2]
        sp = [float(v) for v in spacing]
        dist = np.stack([one_hot2dist_f64(one_hot_f64(t[b:b + 1], c)[0], sp) for b in range(n)])
        for include_bg in (True, False):
            idc = list(range(c)) if include_bg else list(range(1, c))
            X = torch.tensor(x, dtype=torch.float64, requires_grad=True)
            probs = torch.softmax(X, 1)
            loss = (probs[:, idc] * torch.from_numpy(dist[:, idc])).mean()
            loss.backward()
            # closed-form gradient: p_c * (D~_c - sum_k p_k D~_k) / M, D~ = dist on idc, 0 elsewhere
            pn = probs.detach().numpy()
            dm = np.zeros_like(dist)
            dm[:, idc] = dist[:, idc]
            m = n * len(idc) * int(np.prod(shape[2:]))
            g = pn * (dm - (pn * dm).sum(1, keepdims=True)) / m
            assert np.abs(X.grad.numpy() - g).max() <= 1e-15, name
            assert abs(loss.item() - float((pn[:, idc] * dist[:, idc]).sum() / m)) <= 1e-14
            tag = f"{name}_{'with' if include_bg else 'without'}_background"
            out.append({"name": tag, "shape": list(shape), "spacing": sp, "include_background": include_bg,
                        "idc": idc, "logits": flat_float(x), "target": flat_int(t),
                        "loss": fin(loss.item()), "gradient": flat_float(X.grad.numpy())})
    return out


# ----------------------------------------------------------------------------- main


def main():
    torch.manual_seed(0)
    cases = metric_cases()
    doc = {
        "generator": "tests/reference/generate_surface.py",
        "versions": {"monai": monai.__version__, "medpy": pkg_version("medpy"), "scipy": scipy.__version__,
                     "numpy": np.__version__, "torch": torch.__version__},
        "cases": cases,
        "edt_cases": edt_cases(),
        "closed_form": closed_form_cases(),
        "hausdorff_dt_loss": hausdorff_dt_cases(),
        "boundary_loss": boundary_loss_cases(),
        "multiclass_hausdorff_dt_loss": multiclass_hausdorff_dt_cases(),
        "multiclass_boundary_loss": multiclass_boundary_loss_cases(),
    }
    # The documented empty-mask behaviour (images: pred empty, both empty, target empty).
    em = next(c for c in cases if c["name"] == "empty_masks")
    for k, v in em["monai"].items():
        want = ["nan"] * 3 if "hd95" in k else (["inf", "nan", "inf"] if k != "nsd" else [0.0, "nan", 0.0])
        assert v[:3] == want, (k, v)
    assert em["masd"][:3] == ["inf", "nan", "inf"]
    # The documented edge behaviour: border voxels on the image edge.
    full = np.ones((6, 7), bool)
    cut = full.copy(); cut[:, -1] = False
    F_ = torch.from_numpy(full.astype(np.float32))[None, None]
    C_ = torch.from_numpy(cut.astype(np.float32))[None, None]
    assert monai_call(compute_hausdorff_distance, F_, F_, include_background=True).item() == 0.0
    assert monai_call(compute_hausdorff_distance, F_, C_, include_background=True).item() == 1.0
    assert mb.hd(full, cut) == 1.0

    OUT.write_text(dumps(doc) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes): {len(cases)} metric cases, "
          f"{len(doc['edt_cases'])} EDT, {len(doc['closed_form'])} closed-form, "
          f"{len(doc['hausdorff_dt_loss'])} HausdorffDTLoss, {len(doc['boundary_loss'])} boundary-loss, "
          f"{len(doc['multiclass_hausdorff_dt_loss'])} multiclass HausdorffDTLoss, "
          f"{len(doc['multiclass_boundary_loss'])} multiclass boundary-loss")
    print("largest differences (finite pairs):")
    for k, v in sorted(MAX_DIFF.items()):
        print(f"  {k}: {v:.3g}")
    print("MONAI warnings (silenced):")
    for (cat, msg), c in sorted(WARN_COUNTS.items()):
        print(f"  {c:5d} x {cat}: {msg}")


if __name__ == "__main__":
    main()
