#!/usr/bin/env python3
"""descent's L-BFGS against torch.optim.LBFGS on the lab's 2-D functions: descent path writes the point after every
step; torch's LBFGS runs on a float32 point whose closure evaluates f and its gradient in float64 at that point and
hands them back as float32, which is what the lab does. Prints both end points, their distance (which must be
below 1e-5) and the largest distance along the way (a line search may take another route to the same end).

Needs torch (not the test suite's business):
  python3 -m venv V && V/bin/pip install --find-links /opt/wheels torch==2.13.0+cpu
  V/bin/python launch/lbfgs_check.py [--descent .build/release/descent]
"""
import argparse
import csv
import os
import subprocess
import sys
import tempfile

import torch

FUNCTIONS = {
    "rosenbrock": (lambda x, y: ((1 - x) ** 2 + 100 * (y - x * x) ** 2, -2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)),
                   (-1.2, 1.0)),
    "bowl": (lambda x, y: (x * x / 20 + y * y, x / 10, 2 * y), (-7.0, 2.0)),
}

# (function, steps, descent's optimizer block, torch's arguments)
SETTINGS = [
    ("rosenbrock", 40, "{name: lbfgs, max_iter: 1, max_eval: 25, line_search_fn: strong_wolfe}",
     dict(max_iter=1, max_eval=25, line_search_fn="strong_wolfe")),
    ("rosenbrock", 40, "{name: lbfgs, max_iter: 1, lr: 0.05}", dict(max_iter=1, lr=0.05)),
    ("rosenbrock", 10, "{name: lbfgs, line_search_fn: strong_wolfe}", dict(line_search_fn="strong_wolfe")),
    ("bowl", 10, "{name: lbfgs, max_iter: 3, history_size: 2, lr: 0.5}", dict(max_iter=3, history_size=2, lr=0.5)),
]


def descent_path(binary, function, block, steps):
    start = FUNCTIONS[function][1]
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([binary, "path", "--preset", "sphere", "--set", f"function={function}", "--set", f"steps={steps}",
                        "--set", "start=" + str(list(start)), "--set", f"optimizers=[{block}]",
                        "--set", "name=check"], cwd=folder, check=True, capture_output=True)
        with open(os.path.join(folder, "runs", "check", "paths.csv")) as f:
            return [(float(r["x"]), float(r["y"])) for r in csv.DictReader(f)]


def torch_path(function, kwargs, steps):
    fg, start = FUNCTIONS[function]
    p = torch.tensor(start, dtype=torch.float32, requires_grad=True)
    opt = torch.optim.LBFGS([p], **kwargs)

    def closure():
        x, y = (float(v) for v in p.detach())
        f, gx, gy = fg(x, y)
        p.grad = torch.tensor([gx, gy], dtype=torch.float32)
        return torch.tensor(f, dtype=torch.float32)

    points = [tuple(p.tolist())]
    for _ in range(steps):
        opt.step(closure)
        points.append(tuple(p.tolist()))
    return points


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--descent", default=".build/release/descent")
    args = parser.parse_args()
    binary = os.path.abspath(args.descent)
    worst = 0.0
    print(f"torch {torch.__version__}")
    for function, steps, block, kwargs in SETTINGS:
        ours, theirs = descent_path(binary, function, block, steps), torch_path(function, kwargs, steps)
        along = max(max(abs(a - b) for a, b in zip(p, q)) for p, q in zip(ours, theirs))
        end = max(abs(a - b) for a, b in zip(ours[-1], theirs[-1]))
        worst = max(worst, end)
        print(f"  {function:<11} {steps:>3} steps {block:<72} end ({ours[-1][0]:.7g}, {ours[-1][1]:.7g}), "
              f"torch ({theirs[-1][0]:.7g}, {theirs[-1][1]:.7g}): |Δ| {end:.1e}; along the way {along:.1e}")
    print(f"largest distance between the end points: {worst:.1e} ({'within' if worst < 1e-5 else 'outside'} 1e-5)")
    sys.exit(0 if worst < 1e-5 else 1)


if __name__ == "__main__":
    main()
