#!/usr/bin/env python3
"""Generates tests/reference/lovasz_softmax.json: reference values and gradients of the
Lovász-softmax loss (`lovasz_softmax`), for `cargo test` to compare against.

Run by hand (not by CI), in a virtualenv outside the repository:

    python3 -m venv ~/venv-ref && ~/venv-ref/bin/pip install torch segmentation-models-pytorch
    ~/venv-ref/bin/python tests/reference/generate_lovasz_softmax.py

Definition (ours = Berman's `lovasz_softmax`). A problem is the whole batch flattened
(per_image false) or one image (per_image true); pixels whose label equals ignore_index are
removed from it. For each class c considered ("present": the classes with at least one
(non-ignored) pixel of c in the problem; "all": 0..C; a list: those classes, present or not):
fg = [label == c], e = |fg - p_c|, e sorted descending, loss_c = dot(e_sorted,
lovasz_grad(fg_sorted)); the problem's loss is the mean of loss_c over the considered classes,
0 if there is none. p = softmax(logits) over dim 1 (from_logits true), else the input itself.
per_item: one value per image (per_image true) or a single value (per_image false).
Gradients are of mean(per_item) w.r.t. the input (logits, or probabilities when from_logits is
false); ignored pixels get a zero gradient.

Reference (no segloss code is involved): segmentation_models_pytorch.losses.lovasz
`_lovasz_softmax(probas [N, C, 1, P], labels [N, 1, P], classes, per_image, ignore)`, smp's
verbatim copy of Berman's code, run in float64 (smp casts labels with `.float()`; inside
`float_is_double` that returns float64). Behaviours checked here:
- classes="present" skips a class with no pixel in the problem (after ignored pixels are
  removed); "all" and a list do not, and an absent class then scores max_i p_ic
  (lovasz_grad of an all-zero fg is [1, 0, ...]) (checked).
- per_image=True returns the mean over images of the per-image flat losses; per_item is each
  image run alone (per_image=False on [1, C, ...]) and their mean equals the per_image=True
  value and gives the same gradient (checked).
- ignore: `_flatten_probas` drops pixels whose label == ignore before anything else (checked:
  equal to running on the non-ignored pixels only).
- N-D inputs: `_flatten_probas` moves channels last and flattens, so [N, C, D, H, W] equals
  the [N, C, 1, D*H*W] layout used here (checked).
- ties: Berman sorts with torch.sort(descending=True), whose tie order is unspecified; the
  generator asserts that no two errors of one (problem, class) are equal, so ties cannot
  matter.

Every per_item and gradient is also checked (1e-10) against an independent closed form
(`closed_form`: the Lovász extension written as sum_k (e_(k) - e_(k+1)) J_k with
J_k = 1 - |fg \\ top-k| / |fg U top-k|, a stable numpy argsort and explicit per-problem loops).
Inputs are float32 (what the Rust tests feed); every reference is computed in float64 from
those exact float32 values.
"""
import json
import pathlib

import numpy as np
import torch
import segmentation_models_pytorch as smp
from segmentation_models_pytorch.losses.lovasz import _lovasz_softmax
from fixture_common import IGNORE, TOL, assert_close, case_record, float_is_double, make_class_input, write_fixtures

torch.set_default_dtype(torch.float64)
OUT = pathlib.Path(__file__).with_name("lovasz_softmax.json")


# ---- options ----


DEFAULTS = {"from_logits": True, "classes": "present", "per_image": False, "ignore_index": None}


def opts(**kw):
    assert set(kw) <= set(DEFAULTS), kw
    o = dict(DEFAULTS)
    o.update(kw)
    return o


def case_list(c):
    return [
        ("indices", opts()),
        ("indices", opts(classes="all")),
        ("indices", opts(classes=[1, 2])),
        ("indices", opts(per_image=True)),
        ("indices", opts(per_image=True, classes="all")),
        ("indices", opts(per_image=True, classes=[1, 2])),
        ("indices_ignore", opts(ignore_index=IGNORE)),
        ("indices_ignore", opts(ignore_index=IGNORE, per_image=True)),
        ("indices", opts(ignore_index=0)),
        ("indices", opts(from_logits=False)),
        ("indices", opts(from_logits=False, per_image=True, classes="all")),
    ]


def probabilities(x, o):
    return torch.softmax(x, 1) if o["from_logits"] else x


# ---- reference: smp / Berman ----


def reference(x, lab, o):
    """x [N, C, ...] (requires grad), lab [N, 1, ...] int64. Returns (per_item, library_value)
    where library_value is what `_lovasz_softmax` itself returns for these options (per_image
    True: the mean over images)."""
    n, c = x.shape[:2]
    p = probabilities(x, o)
    p4 = p.reshape(n, c, 1, -1)
    l3 = lab.reshape(n, 1, -1)
    kw = dict(classes=o["classes"], ignore=o["ignore_index"])
    with float_is_double():
        if o["per_image"]:
            lib = _lovasz_softmax(p4, l3, per_image=True, **kw)
            per_item = torch.stack(
                [torch.as_tensor(_lovasz_softmax(p4[i : i + 1], l3[i : i + 1], per_image=False, **kw)) for i in range(n)]
            )
        else:
            lib = _lovasz_softmax(p4, l3, per_image=False, **kw)
            per_item = torch.as_tensor(lib).reshape(1)
    return per_item, lib


# ---- closed form (independent implementation), used only as a check ----


def closed_form(x, lab, o):
    """Per problem and class: sort errors with a stable numpy argsort (descending), then
    loss_c = sum_k (e_(k) - e_(k+1)) J_k, J_k = 1 - |fg minus top-k| / |fg union top-k|
    (the Lovász extension of the Jaccard loss by Abel summation; e_(P+1) = 0)."""
    n, c = x.shape[:2]
    p = probabilities(x, o).reshape(n, c, -1)
    labf = lab.reshape(n, -1).numpy()
    problems = [[i] for i in range(n)] if o["per_image"] else [list(range(n))]
    out = []
    for imgs in problems:
        pp = torch.cat([p[i] for i in imgs], dim=1)  # [C, P]
        ll = np.concatenate([labf[i] for i in imgs])
        keep = np.ones_like(ll, dtype=bool) if o["ignore_index"] is None else ll != o["ignore_index"]
        pp, ll = pp[:, torch.from_numpy(np.nonzero(keep)[0])], ll[keep]
        if o["classes"] == "present":
            cls = [k for k in range(c) if (ll == k).any()]
        elif o["classes"] == "all":
            cls = list(range(c))
        else:
            cls = list(o["classes"])
        losses = []
        for k in cls:
            fg = (ll == k).astype(np.float64)
            e = (torch.from_numpy(fg) - pp[k]).abs()
            en = e.detach().numpy()
            assert len(np.unique(en)) == len(en), "tied errors: the sort order would matter"
            order = np.argsort(-en, kind="stable")
            es = e[torch.from_numpy(order)]
            g = fg[order]
            gts = g.sum()
            inter = gts - np.cumsum(g)  # |fg minus top-k|
            union = gts + np.cumsum(1.0 - g)  # |fg union top-k|
            jac = torch.from_numpy(1.0 - inter / union)
            nxt = torch.cat([es[1:], es.new_zeros(1)])
            losses.append(((es - nxt) * jac).sum())
        out.append(torch.stack(losses).mean() if losses else p.sum() * 0.0)
    return torch.stack(out)


def check_library_behaviour(x, lab, c):
    """One-off checks of smp/Berman behaviour stated in the docstring."""
    n = x.shape[0]
    p = torch.softmax(x, 1)
    with float_is_double():
        # N-D layout: [N, C, D, H, W] directly equals the [N, C, 1, P] layout.
        a = _lovasz_softmax(p, lab[:, 0], classes="all", per_image=False)
        b = _lovasz_softmax(p.reshape(n, c, 1, -1), lab.reshape(n, 1, -1), classes="all", per_image=False)
        assert_close(a, b, 1e-14, "N-D layout")
        # an absent class under 'all' / a list scores max_i p_ic
        for i in range(n):
            absent = [k for k in range(c) if not bool((lab[i] == k).any())]
            for k in absent:
                v = _lovasz_softmax(p[i : i + 1].reshape(1, c, 1, -1), lab[i : i + 1].reshape(1, 1, -1), classes=[k])
                assert_close(v, p[i, k].max(), 1e-14, "absent class under a list = max p_c")


def main():
    rng = np.random.default_rng(20180618)
    inputs = {
        "img2d": make_class_input(rng, (3, 4, 7, 6), missing=[(0, 2), (1, 3)], n_ignore_per_image=3, soft=False),
        "vol3d": make_class_input(rng, (2, 3, 2, 4, 5), missing=[(1, 0)], n_ignore_per_image=3, soft=False),
    }
    cases = []
    for name, inp in inputs.items():
        c = inp["logits"].shape[1]
        x64 = torch.from_numpy(inp["logits"].astype(np.float64))
        check_library_behaviour(x64, torch.from_numpy(inp["indices"]), c)
        # ignore: equal to running on the non-ignored pixels only
        lab_i = torch.from_numpy(inp["indices_ignore"])
        keep = (lab_i.reshape(-1) != IGNORE)
        pf = torch.softmax(x64, 1).movedim(1, -1).reshape(-1, c)
        with float_is_double():
            a = _lovasz_softmax(torch.softmax(x64, 1).reshape(x64.shape[0], c, 1, -1), lab_i.reshape(x64.shape[0], 1, -1), ignore=IGNORE)
            b = _lovasz_softmax(pf[keep].t().reshape(1, c, 1, -1), lab_i.reshape(-1)[keep].reshape(1, 1, -1))
        assert_close(a, b, 1e-14, "ignore = dropping the pixels")
        for kind, o in case_list(c):
            x = x64.clone()
            if not o["from_logits"]:
                # probabilities: the float32 softmax of the logits, stored as the input
                p32 = torch.softmax(torch.from_numpy(inp["logits"]), 1)
                assert p32.dtype == torch.float32
                x = torch.from_numpy(p32.numpy().astype(np.float64))
            lab = torch.from_numpy(inp[kind])
            x.requires_grad_(True)
            per_item, lib = reference(x, lab, o)
            assert per_item.dtype == torch.float64 and bool(torch.isfinite(per_item).all())
            assert per_item.shape[0] == (x.shape[0] if o["per_image"] else 1)
            # the library's own per_image mean equals the mean of the per-image runs
            assert_close(lib, per_item.mean(), 1e-14, f"{name} {o}: library value vs mean(per_item)")
            g_lib = torch.autograd.grad(lib, x, retain_graph=True)[0]
            per_item.mean().backward()
            assert_close(g_lib, x.grad, 1e-14, f"{name} {o}: library grad vs grad of mean(per_item)")
            assert bool(torch.isfinite(x.grad).all())
            if o["ignore_index"] is not None:
                ign = (lab == o["ignore_index"]).expand_as(x)
                assert bool((x.grad[ign] == 0).all()), "ignored pixels must get zero gradient"
            x2 = x.detach().clone().requires_grad_(True)
            cf = closed_form(x2, lab, o)
            cf.mean().backward()
            assert_close(per_item, cf, TOL, f"{name} {kind} {o}: closed form value")
            assert_close(x.grad, x2.grad, TOL, f"{name} {kind} {o}: closed form grad")
            cases.append(case_record(name, kind, o, x, per_item))
    # 'present' must differ from 'all' on img2d per image (images 0 and 1 miss a class),
    # and agree on image 2 (all classes present)
    by = {(c["input"], c["targets"], json.dumps(c["options"], sort_keys=True)): c for c in cases}
    pr = by[("img2d", "indices", json.dumps(opts(per_image=True), sort_keys=True))]["per_item"]
    al = by[("img2d", "indices", json.dumps(opts(per_image=True, classes="all"), sort_keys=True))]["per_item"]
    assert abs(pr[0] - al[0]) > 1e-3 and abs(pr[1] - al[1]) > 1e-3 and abs(pr[2] - al[2]) < 1e-15
    write_fixtures(
        OUT,
        "tests/reference/generate_lovasz_softmax.py",
        {"torch": torch.__version__, "smp": smp.__version__},
        inputs,
        ("logits", "indices", "indices_ignore"),
        cases,
    )


if __name__ == "__main__":
    main()
