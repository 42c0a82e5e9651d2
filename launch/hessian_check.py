#!/usr/bin/env python3
"""descent's Hessian against torch's autograd: the largest eigenvalue of the Hessian of the mean cross-entropy of
an MLP run's model.safetensors over the same training samples `descent hessian` takes (the run's seed, stream
0xC0A7, a partial Fisher-Yates shuffle of xoshiro256**), by power iteration on double-backward Hessian-vector
products in float64. Prints torch's value, descent's (from <run>/hessian/hessian.json, which `descent hessian
--run RUN` writes) and their relative difference, which must be below 1e-4; exits 1 otherwise.

Needs torch and safetensors (not the test suite's business):
  python3 -m venv V && V/bin/pip install --find-links /opt/wheels torch==2.13.0+cpu safetensors
  V/bin/python launch/hessian_check.py RUN [--samples 5000] [--seed 1] [--data /usr/share/datasets/fashion-mnist]
"""
import argparse
import glob
import gzip
import json
import struct
import sys

import numpy as np
import torch
from safetensors.torch import load_file

MASK = (1 << 64) - 1


def split_mix(x):
    z = (x + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


class Xoshiro256:
    """descent's Numerics.Xoshiro256: xoshiro256** seeded through SplitMix64 from (seed, stream)."""

    def __init__(self, seed, stream):
        x = seed ^ split_mix((stream + 0x5EED) & MASK)
        self.s = []
        for _ in range(4):
            x = (x + 0x9E3779B97F4A7C15) & MASK
            self.s.append(split_mix(x))

    def next(self):
        rotl = lambda v, k: ((v << k) | (v >> (64 - k))) & MASK
        s = self.s
        result = (rotl((s[1] * 5) & MASK, 7) * 9) & MASK
        t = (s[1] << 17) & MASK
        s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 45)
        return result


def sample_indices(count, total, seed, stream):
    order, rng = list(range(total)), Xoshiro256(seed, stream)
    for i in range(count):
        j = i + rng.next() % (total - i)
        order[i], order[j] = order[j], order[i]
    return sorted(order[:count])


def idx(path):
    data = gzip.open(path, "rb").read() if path.endswith(".gz") else open(path, "rb").read()
    dims = struct.unpack(">" + "I" * data[3], data[4:4 + 4 * data[3]])
    return np.frombuffer(data[4 + 4 * data[3]:], dtype=np.uint8).reshape(dims)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run")
    p.add_argument("--samples", type=int, default=5000)
    p.add_argument("--seed", type=int, default=1, help="the run's seed (config.yaml's seed)")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    a = p.parse_args()
    images = idx(glob.glob(a.data + "/train-images*")[0]).reshape(-1, 784).astype(np.float64) / 255
    labels = idx(glob.glob(a.data + "/train-labels*")[0]).astype(np.int64)
    chosen = sample_indices(min(a.samples, len(labels)), len(labels), a.seed, 0xC0A7)
    x, y = torch.tensor(images[chosen]), torch.tensor(labels[chosen])
    tensors = load_file(a.run + "/model.safetensors")
    names = sorted(tensors, key=lambda k: (int(k.split(".")[0]), k.split(".")[1] != "weight"))
    params = [tensors[k].double().requires_grad_(True) for k in names]

    def loss():
        h = x
        for i in range(0, len(params), 2):
            h = h @ params[i].T + params[i + 1]
            if i < len(params) - 2:
                h = torch.relu(h)
        return torch.nn.functional.cross_entropy(h, y)

    gradient = torch.autograd.grad(loss(), params, create_graph=True)
    torch.manual_seed(0)
    v = [torch.randn_like(t) for t in params]
    value = 0.0
    for _ in range(300):
        norm = torch.sqrt(sum((t * t).sum() for t in v))
        v = [t / norm for t in v]
        hv = torch.autograd.grad(gradient, params, grad_outputs=v, retain_graph=True)
        value = sum((a * b).sum() for a, b in zip(hv, v)).item()
        v = [t.detach() for t in hv]
    descent = json.load(open(a.run + "/hessian/hessian.json"))["top_eigenvalues"][0]
    difference = abs(descent - value) / abs(value)
    print(f"largest Hessian eigenvalue over {len(chosen)} samples: torch {value:.6f}, descent {descent:.6f}, "
          f"relative difference {difference:.2e}")
    sys.exit(0 if difference < 1e-4 else 1)


if __name__ == "__main__":
    main()
