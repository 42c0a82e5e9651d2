"""The same data-parallel MLP training in numpy + mpi4py, for launch/bench-numpy (not a test).

Every rank computes the summed gradient of its half of each global batch with numpy's matmuls (numpy's own
OpenBLAS), one in-place MPI Allreduce adds the ranks' flat gradient buffers, and every rank takes the same Adam or
SGD step, as descent does. Prints one JSON line on rank 0: samples/s over all steps, the first included (as
descent's summary.json counts them), the slowest rank's time.
  mpirun -np 2 python numpy_mlp.py --hidden 100,100,100,100 --optimizer adam --batch 128 --steps 400
"""
import argparse
import gzip
import json
import time

import numpy as np
from mpi4py import MPI


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--hidden", default="100,100,100,100")
    p.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--batch", default="128")
    p.add_argument("--steps", type=int, default=400)
    a = p.parse_args()
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    x = (idx(f"{a.data}/train-images-idx3-ubyte.gz").reshape(60000, 784).astype(np.float32) / 255)
    y = idx(f"{a.data}/train-labels-idx1-ubyte.gz").astype(np.int64)
    n = x.shape[0]
    batch = n if a.batch == "full" else int(a.batch)
    sizes = [784] + [int(h) for h in a.hidden.split(",")] + [10]

    # One flat parameter buffer and one flat gradient buffer, with a view per tensor (as descent keeps them).
    counts = [s for i, o in zip(sizes, sizes[1:]) for s in (i * o, o)]
    theta, grad = np.zeros(sum(counts), np.float32), np.zeros(sum(counts), np.float32)
    def views(buf):
        out, at = [], 0
        for i, o in zip(sizes, sizes[1:]):
            out.append((buf[at:at + i * o].reshape(i, o), buf[at + i * o:at + i * o + o]))
            at += i * o + o
        return out
    params, grads = views(theta), views(grad)
    rng = np.random.default_rng(1)
    for (w, _), i in zip(params, sizes):
        w[...] = rng.standard_normal(w.shape).astype(np.float32) * np.float32(np.sqrt(2 / i))
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    b1, b2, eps = 0.9, 0.999, 1e-8

    order = rng.permutation(n)
    lo, hi = rank * batch // size, (rank + 1) * batch // size
    times = []
    for step in range(a.steps):
        start = time.perf_counter()
        at = (step * batch) % n
        idx_ = order[at:at + batch] if at + batch <= n else np.concatenate([order[at:], order[:at + batch - n]])
        xb, yb = x[idx_[lo:hi]], y[idx_[lo:hi]]
        acts = [xb]
        for l, (w, b) in enumerate(params):
            z = acts[-1] @ w + b
            acts.append(np.maximum(z, 0) if l < len(params) - 1 else z)
        z = acts[-1]
        e = np.exp(z - z.max(axis=1, keepdims=True))
        dz = e / e.sum(axis=1, keepdims=True)
        dz[np.arange(len(yb)), yb] -= 1
        for l in range(len(params) - 1, -1, -1):
            gw, gb = grads[l]
            np.matmul(acts[l].T, dz, out=gw)
            np.sum(dz, axis=0, out=gb)
            if l > 0:
                dz = (dz @ params[l][0].T) * (acts[l] > 0)
        comm.Allreduce(MPI.IN_PLACE, grad, op=MPI.SUM)
        grad /= np.float32(batch)
        if a.optimizer == "adam":
            t = step + 1
            m *= b1; m += (1 - b1) * grad
            v *= b2; v += (1 - b2) * grad * grad
            theta -= np.float32(a.lr / (1 - b1 ** t)) * m / (np.sqrt(v / np.float32(1 - b2 ** t)) + np.float32(eps))
        else:
            theta -= np.float32(a.lr) * grad
        times.append(time.perf_counter() - start)
    seconds = comm.allreduce(sum(times), op=MPI.MAX)
    if rank == 0:
        print(json.dumps({"samples_per_second": batch * a.steps / seconds, "steps": a.steps}))


if __name__ == "__main__":
    main()
