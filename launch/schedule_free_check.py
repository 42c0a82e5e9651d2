#!/usr/bin/env python3
"""descent's Schedule-Free rules against the authors' code (PyPI `schedulefree`, torch in float64), on the lab's
2-D functions: descent path writes the model point x after every step; schedulefree's optimizers, switched to
eval mode, give theirs. Prints the largest difference per setting, relative to the path's largest |x|.

Needs torch and schedulefree (not the test suite's business):
  python3 -m venv V && V/bin/pip install --find-links /opt/wheels torch==2.13.0+cpu schedulefree
  V/bin/python launch/schedule_free_check.py [--descent .build/release/descent]
"""
import argparse
import csv
import importlib.metadata
import os
import subprocess
import sys
import tempfile

import schedulefree
import torch

FUNCTIONS = {
    "sphere": (lambda x, y: x * x + y * y, (-7.0, 2.0)),
    "rosenbrock": (lambda x, y: (1 - x) ** 2 + 100 * (y - x * x) ** 2, (-1.2, 1.0)),
    "beale": (lambda x, y: (1.5 - x + x * y) ** 2 + (2.25 - x + x * y * y) ** 2 + (2.625 - x + x * y ** 3) ** 2, (1.0, 1.5)),
}

# (function, descent's optimizer block, schedulefree's class and arguments)
SETTINGS = [
    ("sphere", "{name: schedule-free-sgd, lr: 0.1}", schedulefree.SGDScheduleFree, dict(lr=0.1)),
    ("sphere", "{name: schedule-free-sgd, lr: 0.2, momentum: 0.5, warmup_steps: 5, r: 1, weight_lr_power: 1, weight_decay: 0.1}",
     schedulefree.SGDScheduleFree, dict(lr=0.2, momentum=0.5, warmup_steps=5, r=1.0, weight_lr_power=1.0, weight_decay=0.1)),
    ("rosenbrock", "{name: schedule-free-sgd, lr: 0.0005}", schedulefree.SGDScheduleFree, dict(lr=0.0005)),
    ("sphere", "{name: schedule-free-adamw, lr: 0.5}", schedulefree.AdamWScheduleFree, dict(lr=0.5)),
    ("beale", "{name: schedule-free-adamw, lr: 0.05, betas: [0.95, 0.99], warmup_steps: 10, r: 0.5, weight_decay: 0.1}",
     schedulefree.AdamWScheduleFree, dict(lr=0.05, betas=(0.95, 0.99), warmup_steps=10, r=0.5, weight_decay=0.1)),
    ("rosenbrock", "{name: schedule-free-adamw, lr: 0.02, weight_lr_power: 0}", schedulefree.AdamWScheduleFree,
     dict(lr=0.02, weight_lr_power=0.0)),
]


def descent_path(binary, function, block, steps):
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([binary, "path", "--preset", "sphere", "--set", f"function={function}", "--set", f"steps={steps}",
                        "--set", "start=" + str(list(FUNCTIONS[function][1])), "--set", f"optimizers=[{block}]",
                        "--set", "name=check"], cwd=folder, check=True, capture_output=True)
        with open(os.path.join(folder, "runs", "check", "paths.csv")) as f:
            return [(float(r["x"]), float(r["y"])) for r in csv.DictReader(f)]


def reference_path(function, cls, kwargs, steps):
    f, start = FUNCTIONS[function]
    p = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    opt = cls([p], **kwargs)
    points = [tuple(p.tolist())]
    for _ in range(steps):
        opt.train()
        opt.zero_grad()
        f(p[0], p[1]).backward()
        opt.step()
        opt.eval()  # p holds x now
        points.append(tuple(p.tolist()))
    return points


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--descent", default=".build/release/descent")
    parser.add_argument("--steps", type=int, default=25)
    args = parser.parse_args()
    args.descent = os.path.abspath(args.descent)
    worst = 0.0
    print(f"schedulefree {importlib.metadata.version('schedulefree')}, torch {torch.__version__}, "
          f"{args.steps} steps, x after each step")
    for function, block, cls, kwargs in SETTINGS:
        ours = descent_path(args.descent, function, block, args.steps)
        theirs = reference_path(function, cls, kwargs, args.steps)
        scale = max(max(abs(v) for v in point) for point in theirs)
        diff = max(max(abs(a - b) for a, b in zip(p, q)) for p, q in zip(ours, theirs)) / scale
        worst = max(worst, diff)
        print(f"  {function:<11} {block:<112} max |Δx| / max |x| = {diff:.1e}")
    print(f"largest: {worst:.1e} ({'within' if worst < 1e-5 else 'outside'} 1e-5)")
    sys.exit(0 if worst < 1e-5 else 1)


if __name__ == "__main__":
    main()
