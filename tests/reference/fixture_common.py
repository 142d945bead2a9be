"""What the fixture generators in this folder share (imported by them; not run on its own).

- `assert_close`, `TOL`, `IGNORE`: the cross-checks and the ignore label of the multiclass
  fixtures;
- `float_is_double`: makes `Tensor.float()` return float64, so that reference code which
  casts with `.float()` (smp's and Berman's Lovász, MONAI's FocalLoss) runs in float64;
- `one_hot_f64`: MONAI's `one_hot` in float64 (MONAI builds one-hot targets in float32);
- `per_image_mean`: the mean over each image's pixels;
- the binary inputs (`make_binary_input`) and the binary fixture format (`binary_fixture_doc`);
- the multiclass inputs (`make_class_input`) and the closed form of `multiclass_overlap`
  (`overlap_closed_form`, from `activate`, `targets_and_valid`, `class_terms`,
  `class_scores`, `score_loss`, `class_mask`, `average_classes`; `LOG_CLAMP`);
- the multiclass fixture format (`case_record`, `write_fixtures`).
"""
import json

import numpy as np
import torch
import monai

TOL = 1e-10
IGNORE = 255
# The smallest score `-ln(score)` is taken of (the crate's `LOG_FLOOR`).
LOG_CLAMP = 1e-7


def assert_close(a, b, tol=TOL, what=""):
    err = (torch.as_tensor(a) - torch.as_tensor(b)).abs().max().item()
    assert err <= tol, f"{what}: max abs diff {err}"


class float_is_double:
    """Inside this context `Tensor.float()` returns float64."""

    def __enter__(self):
        self.saved = torch.Tensor.float
        torch.Tensor.float = lambda t, *a, **k: t.double()

    def __exit__(self, *exc):
        torch.Tensor.float = self.saved


def one_hot_f64(labels, num_classes, dtype=torch.float, dim=1):
    return monai.networks.utils.one_hot(labels, num_classes, dtype=torch.float64, dim=dim)


def per_image_mean(t):
    return t.reshape(t.shape[0], -1).mean(dim=1)


def binary_fixture_doc(generator, versions, inputs, losses, option_sets):
    """The binary fixture format (losses.json): for every input `(logits, targets)`, loss
    `fn = losses[name]` and option set of `option_sets(name, input)`, the per-item values of
    `fn(x, y, opts)` in float64 (from the float32 inputs; with `from_logits` false, `x` is the
    float32 sigmoid of the logits, stored in the case), their mean and sum, and the gradient of
    the mean with respect to `x`; the values and gradients must be finite."""
    cases = []
    for name, (logits, targets) in inputs.items():
        for loss, fn in losses.items():
            for opts in option_sets(loss, name):
                x = torch.from_numpy(logits.astype(np.float64))
                if not opts["from_logits"]:
                    x = torch.from_numpy(torch.sigmoid(torch.from_numpy(logits)).numpy().astype(np.float64))
                x.requires_grad_(True)
                y = torch.from_numpy(targets.astype(np.float64))
                per_item = fn(x, y, opts).double()
                assert bool(torch.isfinite(per_item).all()), (loss, opts)
                per_item.mean().backward()
                assert bool(torch.isfinite(x.grad).all()), (loss, opts)
                cases.append(
                    {
                        "input": name,
                        "loss": loss,
                        "options": opts,
                        "input_values": None if opts["from_logits"] else x.detach().reshape(-1).tolist(),
                        "per_item": per_item.detach().tolist(),
                        "mean": per_item.mean().item(),
                        "sum": per_item.sum().item(),
                        "grad_mean": x.grad.reshape(-1).tolist(),
                    }
                )
    return {
        "generator": generator,
        "versions": versions,
        "inputs": {
            k: {"shape": list(v[0].shape), "logits": v[0].reshape(-1).tolist(), "targets": v[1].reshape(-1).tolist()}
            for k, v in inputs.items()
        },
        "cases": cases,
    }


def make_binary_input(rng, shape, empty_first=False, full_last=False):
    """logits float32 (std normal * 3) and hard 0/1 targets, each image with its own
    foreground fraction in [0.05, 0.6); optionally the first image empty, the last full."""
    n = shape[0]
    logits = (rng.standard_normal(shape) * 3.0).astype(np.float32)
    targets = np.zeros(shape, dtype=np.float32)
    for i in range(n):
        frac = rng.uniform(0.05, 0.6)
        targets[i] = (rng.uniform(size=shape[1:]) < frac).astype(np.float32)
    if empty_first:
        targets[0] = 0.0
    if full_last:
        targets[-1] = 1.0
    return logits, targets


def make_class_input(rng, shape, missing=(), all_background=(), n_ignore_per_image=2, soft=True):
    """logits float32 (std normal * 3); indices [N,1,...] in 0..C; each (image, class) in
    `missing` is removed from that image; images in `all_background` are all class 0;
    indices_ignore = indices with `n_ignore_per_image` pixels per image set to IGNORE;
    per_class = one-hot of indices; with `soft`, per_class_soft = random soft targets summing
    to 1 over C (drawn last: without them the same seed gives the same other arrays)."""
    n, c = shape[0], shape[1]
    spatial = shape[2:]
    logits = (rng.standard_normal(shape) * 3.0).astype(np.float32)
    indices = rng.integers(0, c, size=(n, 1) + spatial).astype(np.int64)
    gone = {}
    for img, cls in missing:
        gone.setdefault(img, set()).add(cls)
    for img in all_background:
        gone[img] = set(range(1, c))
    for img, classes in gone.items():
        others = [k for k in range(c) if k not in classes]
        sel = np.isin(indices[img], list(classes))
        indices[img][sel] = rng.choice(others, size=int(sel.sum()))
    for i in range(n):
        present = set(np.unique(indices[i]).tolist())
        expect = set(range(c)) - gone.get(i, set())
        assert present == expect, f"image {i}: classes {present}, expected {expect}"
    ignore = indices.copy()
    for i in range(n):
        flat = ignore[i].reshape(-1)
        flat[rng.choice(flat.size, size=n_ignore_per_image, replace=False)] = IGNORE
    per_class = np.moveaxis(np.eye(c, dtype=np.float32)[indices[:, 0]], -1, 1)
    assert per_class.shape == shape
    inputs = {"logits": logits, "indices": indices, "indices_ignore": ignore, "per_class": per_class}
    if soft:
        s = rng.uniform(0.05, 1.0, size=shape)
        inputs["per_class_soft"] = (s / s.sum(axis=1, keepdims=True)).astype(np.float32)
    return inputs


def activate(x, o):
    if not o["from_logits"]:
        return x
    return torch.softmax(x, 1) if o["mode"] == "softmax" else torch.sigmoid(x)


def targets_and_valid(t, c, kind, o):
    """Returns y [N,C,...] and the valid-pixel mask [N,1,...] (float64)."""
    if kind.startswith("indices"):
        lab = t
        valid = torch.ones_like(lab, dtype=torch.float64)
        if o["ignore_index"] is not None:
            valid = (lab != o["ignore_index"]).double()
            lab = torch.where(lab == o["ignore_index"], torch.zeros_like(lab), lab)
        assert int(lab.min()) >= 0 and int(lab.max()) < c
        y = torch.nn.functional.one_hot(lab[:, 0], c).movedim(-1, 1).double()
        return y, valid
    assert o["ignore_index"] is None
    return t, torch.ones_like(t[:, :1])


def class_terms(p, y, o):
    """I, P, Y of shape [N, C] (per image) or [1, C] (batch)."""
    n, c = p.shape[:2]
    p, y = p.reshape(n, c, -1), y.reshape(n, c, -1)
    dims = (0, 2) if o["aggregation"] == "batch" else (2,)
    keep = o["aggregation"] == "batch"
    s = lambda t: t.sum(dims, keepdim=keep).reshape(-1, c)
    if o["soft_label"]:
        i = (s(p) + s(y) - s((p - y).abs())) / 2
    else:
        i = s(p * y)
    if o["squared"]:
        return i, s(p * p), s(y * y)
    return i, s(p), s(y)


def class_mask(y_sum, c, o):
    m = torch.ones(c) if o["class_weights"] is None else torch.tensor(o["class_weights"])
    if not o["include_background"]:
        m = m.clone()
        m[0] = 0.0
    m = m.expand_as(y_sum).clone()
    if o["average"] == "present":
        m = m * (y_sum > 0).double()
    return m


def average_classes(l, m):
    den = m.sum(1)
    return torch.where(den == 0, torch.zeros_like(den), (m * l).sum(1) / torch.where(den == 0, 1.0, den))


def class_scores(x, t, kind, o):
    """The per-class score of `multiclass_overlap` (our definition), its denominator and the
    target sums Y, each [N, C] (per image) or [1, C] (batch)."""
    c = x.shape[1]
    p = activate(x, o)
    y, valid = targets_and_valid(t, c, kind, o)
    p, y = p * valid, y * valid
    i, sp, sy = class_terms(p, y, o)
    nr, dr = o["smooth_nr"], o["smooth_dr"]
    if o["score"] == "dice":
        num, den = 2 * i + nr, sp + sy + dr
    elif o["score"] == "jaccard":
        num, den = i + nr, sp + sy - i + dr
    else:
        num, den = i + nr, i + o["alpha"] * (sp - i) + o["beta"] * (sy - i) + dr
    score = torch.where(den == 0, torch.ones_like(den), num / torch.where(den == 0, 1.0, den))
    return score, den, sy


def score_loss(score, o):
    """The loss of a score: `-ln(max(score, LOG_CLAMP))` with `log_loss`, else `1 - score`."""
    return -torch.log(score.clamp_min(LOG_CLAMP)) if o["log_loss"] else 1.0 - score


def overlap_closed_form(x, t, kind, o):
    """`multiclass_overlap` in closed form: per-class losses averaged over the weighted (and,
    with `average = present`, present) classes."""
    score, _, sy = class_scores(x, t, kind, o)
    return average_classes(score_loss(score, o), class_mask(sy.detach(), x.shape[1], o))


def case_record(name, kind, o, x, per_item):
    """One case of a multiclass fixture: input, target kind, options, the probabilities fed
    when `from_logits` is false, per-item values, their mean and sum, and the gradient of the
    mean (already in `x.grad`)."""
    return {
        "input": name,
        "targets": kind,
        "options": o,
        "input_values": None if o["from_logits"] else x.detach().reshape(-1).tolist(),
        "per_item": per_item.detach().tolist(),
        "mean": per_item.mean().item(),
        "sum": per_item.sum().item(),
        "grad_mean": x.grad.reshape(-1).tolist(),
    }


def write_fixtures(out, generator, versions, inputs, keys, cases):
    """Writes a fixture file: the inputs (shape, then the arrays named in `keys`, flattened)
    and the cases."""
    doc = {
        "generator": generator,
        "versions": versions,
        "inputs": {
            k: {"shape": list(v["logits"].shape), **{key: v[key].reshape(-1).tolist() for key in keys}}
            for k, v in inputs.items()
        },
        "cases": cases,
    }
    out.write_text(json.dumps(doc))
    print(f"wrote {len(cases)} cases to {out} ({out.stat().st_size} bytes)")
