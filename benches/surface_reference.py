#!/usr/bin/env python3
"""Python side of the distance-metric speed comparison: scipy's exact Euclidean distance
transform, MONAI's HD95 and NSD, and MedPy's hd95 on fixed synthetic volumes.

    ~/venv-ref/bin/python benches/surface_reference.py --threads 2 [--repeat 7] [--json out.json]

Needs torch, monai, scipy, medpy (the reference virtualenv). CI does not run it. Prints the
median wall time in milliseconds over `--repeat` timed runs (after one untimed warm-up run)
of each benchmark. `--threads N` sets OMP/MKL/OpenBLAS/numexpr thread counts in the
environment before numpy/torch are imported, and `torch.set_num_threads(N)`; scipy's
`distance_transform_edt`, `binary_erosion` and KD-tree construction are single-threaded
whatever N is.

Inputs (built once, outside the timings; a ball is (z-cz)^2 + (y-cy)^2 + (x-cx)^2 <= r^2
with the axes in array order):
- edt_256cubed: `scipy.ndimage.distance_transform_edt(~sites)` (unit spacing, float64
  distances), sites = a 256^3 bool volume: the union of the ball of radius 60 centred
  (128, 128, 128) and the ball of radius 40 centred (60, 70, 80). Timed: the call alone
  (the `~sites` inversion is done beforehand).
- edt_2048sq: the same on a 2048^2 image: discs of radius 500 at (1024, 1024) and of radius
  300 at (500, 600).
- hd95_160cubed: MONAI `compute_hausdorff_distance(pred, target, include_background=True,
  percentile=95)` on [1, 1, 160, 160, 160] float32 CPU tensors, pred = ball of radius 50
  centred (80, 80, 80), target = ball of radius 45 centred (85, 78, 80). Timed: the whole
  call (foreground crop, erosion-based borders, KD-tree distances in both directions,
  torch.quantile).
- nsd_160cubed: MONAI `compute_surface_dice(pred, target, class_thresholds=[1.0],
  include_background=True)` on the same tensors (whole call).
- medpy_hd95_160cubed: `medpy.metric.binary.hd95(pred, target)` on the same masks as numpy
  bool arrays (two erosions and two full-volume EDTs, then numpy.percentile).
- hd95_160cubed_stray: hd95_160cubed with pred also holding a ball of radius 3 centred
  (12, 12, 12) (a stray blob far from the target).
- hd95_160cubed_apart: MONAI's HD95 of balls of radius 30 centred (50, 50, 50) and
  (110, 110, 110).
MONAI's warnings (a FutureWarning per call about `always_return_as_numpy`) are silenced.
"""

import argparse
import os
import sys


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--only", nargs="*", help="run only these benchmarks (names as printed)")
    ap.add_argument("--json", help="also write the medians (ms) to this JSON file")
    return ap.parse_args()


ARGS = parse()
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)

import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import scipy  # noqa: E402
import scipy.ndimage as ndi  # noqa: E402
import torch  # noqa: E402
import monai  # noqa: E402
from importlib.metadata import version as pkg_version  # noqa: E402
from medpy.metric import binary as mb  # noqa: E402
from monai.metrics import compute_hausdorff_distance, compute_surface_dice  # noqa: E402

torch.set_num_threads(ARGS.threads)
warnings.filterwarnings("ignore", module="monai")
warnings.filterwarnings("ignore", category=FutureWarning)


def ball(shape, centre, radius):
    """Bool array: sum over axes of (index - centre)^2 <= radius^2 (open grids, low memory)."""
    grids = np.ogrid[tuple(slice(0, s) for s in shape)]
    r2 = sum((g.astype(np.int64) - c) ** 2 for g, c in zip(grids, centre))
    return r2 <= radius * radius


def time_ms(fn, repeat):
    fn()  # warm-up
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(out), min(out), max(out)


def main():
    want = set(ARGS.only) if ARGS.only else None
    run = lambda name: want is None or name in want  # noqa: E731
    benches = []

    if run("edt_256cubed"):
        s = (256, 256, 256)
        inv = ~(ball(s, (128, 128, 128), 60) | ball(s, (60, 70, 80), 40))
        benches.append(("edt_256cubed", lambda: ndi.distance_transform_edt(inv)))
    if run("edt_2048sq"):
        s = (2048, 2048)
        inv2 = ~(ball(s, (1024, 1024), 500) | ball(s, (500, 600), 300))
        benches.append(("edt_2048sq", lambda: ndi.distance_transform_edt(inv2)))
    if any(run(n) for n in ("hd95_160cubed", "nsd_160cubed", "medpy_hd95_160cubed")):
        s = (160, 160, 160)
        p_np = ball(s, (80, 80, 80), 50)
        t_np = ball(s, (85, 78, 80), 45)
        P = torch.from_numpy(p_np.astype(np.float32))[None, None]
        T = torch.from_numpy(t_np.astype(np.float32))[None, None]
        if run("hd95_160cubed"):
            benches.append(("hd95_160cubed", lambda: compute_hausdorff_distance(
                P, T, include_background=True, percentile=95)))
        if run("nsd_160cubed"):
            benches.append(("nsd_160cubed", lambda: compute_surface_dice(
                P, T, class_thresholds=[1.0], include_background=True)))
        if run("medpy_hd95_160cubed"):
            benches.append(("medpy_hd95_160cubed", lambda: mb.hd95(p_np, t_np)))
    if run("hd95_160cubed_stray"):
        s = (160, 160, 160)
        stray = ball(s, (80, 80, 80), 50) | ball(s, (12, 12, 12), 3)
        Ps = torch.from_numpy(stray.astype(np.float32))[None, None]
        Ts = torch.from_numpy(ball(s, (85, 78, 80), 45).astype(np.float32))[None, None]
        benches.append(("hd95_160cubed_stray", lambda: compute_hausdorff_distance(
            Ps, Ts, include_background=True, percentile=95)))
    if run("hd95_160cubed_apart"):
        s = (160, 160, 160)
        Pa = torch.from_numpy(ball(s, (50, 50, 50), 30).astype(np.float32))[None, None]
        Ta = torch.from_numpy(ball(s, (110, 110, 110), 30).astype(np.float32))[None, None]
        benches.append(("hd95_160cubed_apart", lambda: compute_hausdorff_distance(
            Pa, Ta, include_background=True, percentile=95)))

    print(f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
          f"torch {torch.__version__}, monai {monai.__version__}, medpy {pkg_version('medpy')}; "
          f"threads {ARGS.threads}, repeat {ARGS.repeat}; {platform.processor() or platform.machine()}")
    print(f"{'benchmark':<22}{'median ms':>12}{'min ms':>12}{'max ms':>12}")
    results = {}
    for name, fn in benches:
        med, lo, hi = time_ms(fn, ARGS.repeat)
        results[name] = med
        print(f"{name:<22}{med:>12.1f}{lo:>12.1f}{hi:>12.1f}", flush=True)
    if ARGS.json:
        with open(ARGS.json, "w") as f:
            json.dump({"threads": ARGS.threads, "repeat": ARGS.repeat, "median_ms": results,
                       "versions": {"numpy": np.__version__, "scipy": scipy.__version__,
                                    "torch": torch.__version__, "monai": monai.__version__,
                                    "medpy": pkg_version("medpy")}}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
