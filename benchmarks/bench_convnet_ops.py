"""LeNet's stencil layers against PyTorch: max pooling and conv2d, forward and backward.

Shapes are LeNet's at batch 64 (``convnet.LeNet``): conv1 1->6 5x5 'same' on 28x28,
conv2 6->16 5x5 'valid' on 14x14, max pooling 2x2 on (64, 6, 28, 28) (pool1) and
(64, 16, 10, 10) (pool2).  The ``*-stencil`` rows time the max and argmax-code
stencils alone against a plain Numba loop of the same semantics (issue 10's
"small trailing axes" target: within 2x), and on tier 0, the interpreter (its
target: within 3x of the stencil's own kernel).  Run through ``python -m benchmarks
--only convnet``.  The whole network (a training epoch, inference) is
`benchmarks.bench_lenet`'s.
"""

from __future__ import annotations

import numba
import numpy as np

from convnet import functional as F
from convnet.layers import MaxPool2d
import stencils as st

from ._harness import Implementation, Skipped, Workload, all_close, allclose

try:
    import torch
except ImportError:  # pragma: no cover - optional peer
    torch = None

NO_TORCH = "torch is not installed"
# Each sample is the mean of 100 consecutive calls after 20 untimed ones, as a
# training loop makes them: the implementations alternate between samples, and
# each one's thread pool settles first (torch's OpenMP threads spin for
# milliseconds after its calls, ours for 0.3 ms, each taking the other's cores),
# after 20 ms idle, as a loop of one library starts with the other's threads asleep.
_LOOP = dict(number=100, settle=20, repeats=9, pause=0.02)
BATCH = 64
POOLS = {"pool1": (BATCH, 6, 28, 28), "pool2": (BATCH, 16, 10, 10)}
POOL_SHAPE = POOLS["pool1"]
CONVS = {
    "conv1": dict(x=(BATCH, 1, 28, 28), w=(6, 1, 5, 5), padding=2),
    "conv2": dict(x=(BATCH, 6, 14, 14), w=(16, 6, 5, 5), padding=0),
}


def _pool_input(shape=POOL_SHAPE):
    # Distinct values: no ties, so "the first maximum" is the only maximum.
    rng = np.random.default_rng(0)
    return rng.permutation(np.prod(shape)).astype(np.float32).reshape(shape)


def _pool_forward(quick):
    x = _pool_input()
    impls = [Implementation("convnet max_pool2d (max stencil, stride 2)",
                            lambda: F.max_pool2d(x, 2, 2))]
    if torch is None:
        return impls + [Skipped("torch.nn.functional.max_pool2d", NO_TORCH)]
    tx = torch.from_numpy(x)
    impls.append(Implementation("torch max_pool2d", lambda: torch.nn.functional.max_pool2d(
        tx, 2, 2).numpy(), allclose(0, 0)))
    return impls


def _pool_train_forward(layer):
    def setup(quick):
        x = _pool_input(POOLS[layer])
        pool = MaxPool2d(2)
        impls = [Implementation("convnet MaxPool2d.forward, training (argmax-code and max "
                                "stencils)", lambda: pool.forward(x),
                                note="what a training step runs")]
        if torch is None:
            return impls + [Skipped("torch max_pool2d(return_indices=True)", NO_TORCH)]
        tx = torch.from_numpy(x)
        impls.append(Implementation(
            "torch max_pool2d(return_indices=True)",
            lambda: torch.nn.functional.max_pool2d(tx, 2, 2, return_indices=True)[0].numpy(),
            allclose(0, 0), "what torch's training step runs"))
        return impls
    return setup


@numba.njit(nogil=True)
def _plain_pool(x, out, argmax):
    """2x2 stride-2 max pooling of (N, C, H, W): the maximum (NaN wins), or the row-major
    code of the first maximum when `argmax`; one serial loop nest."""
    n, c, ho, wo = out.shape
    for a in range(n):
        for b in range(c):
            for i in range(ho):
                for j in range(wo):
                    v0, v1 = x[a, b, 2 * i, 2 * j], x[a, b, 2 * i, 2 * j + 1]
                    v2, v3 = x[a, b, 2 * i + 1, 2 * j], x[a, b, 2 * i + 1, 2 * j + 1]
                    peak = max(max(v0, v1), max(v2, v3))
                    if np.isnan(v0) or np.isnan(v1) or np.isnan(v2) or np.isnan(v3):
                        peak = np.nan
                    if not argmax:
                        out[a, b, i, j] = peak
                    elif v0 == peak or v0 != v0:
                        out[a, b, i, j] = 0
                    elif v1 == peak or v1 != v1:
                        out[a, b, i, j] = 1
                    elif v2 == peak or v2 != v2:
                        out[a, b, i, j] = 2
                    else:
                        out[a, b, i, j] = 3


def _pool_stencil(layer, argmax):
    def setup(quick):
        x = _pool_input(POOLS[layer])
        n, c, h, w = x.shape
        out = np.empty((n, c, h // 2, w // 2), np.float32)
        stencil = F._argmax_stencil(2, 2) if argmax else F._max_stencil(2, 2)
        what = "argmax-code" if argmax else "max"

        def on_tier0():
            with st.config(engine="interpreter"):
                return F._pooled(stencil, x, 2, 2)

        return [Implementation(f"stencils: the {what} stencil, computed with stride 2",
                               lambda: F._pooled(stencil, x, 2, 2)),
                Implementation("a plain serial Numba loop", lambda: _plain_pool(x, out, argmax)
                               or out, allclose(0, 0)),
                Implementation("the same stencil on tier 0 (the interpreter)", on_tier0,
                               allclose(0, 0), "issue 10: within 3x of the stencil's own kernel")]
    return setup


def _pool_backward(quick):
    x = _pool_input()
    dy = np.random.default_rng(1).standard_normal(
        (BATCH, 6, 14, 14)).astype(np.float32)
    pool = MaxPool2d(2)
    pool.forward(x)  # training mode: keeps the argmax codes of the stencil pass
    impls = [
        Implementation("convnet MaxPool2d.backward (max_pool2d_scatter of the saved codes)",
                       lambda: pool.backward(dy), note="what a training step runs"),
        Implementation("convnet max_pool2d_backward (recomputes argmax)",
                       lambda: F.max_pool2d_backward(dy, x, 2, 2), allclose(0, 0)),
    ]
    if torch is None:
        return impls + [Skipped("torch max_pool2d backward", NO_TORCH)]
    tx, tdy = torch.from_numpy(x), torch.from_numpy(dy)
    _, idx = torch.nn.functional.max_pool2d(tx, 2, 2, return_indices=True)
    kernel = torch.ops.aten.max_pool2d_with_indices_backward

    def torch_bwd():
        return kernel(tdy, tx, [2, 2], [2, 2], [0, 0], [1, 1], False, idx).numpy()

    impls.append(Implementation("torch max_pool2d_with_indices_backward (saved indices)",
                                torch_bwd, allclose(0, 0), "one element per window"))
    return impls


def _conv_arrays(layer):
    spec = CONVS[layer]
    rng = np.random.default_rng(2)
    x = rng.standard_normal(spec["x"]).astype(np.float32)
    w = (rng.standard_normal(spec["w"]) * 0.2).astype(np.float32)
    b = rng.standard_normal(spec["w"][0]).astype(np.float32)
    return x, w, b, spec["padding"]


def _conv_forward(layer):
    def setup(quick):
        x, w, b, p = _conv_arrays(layer)
        impls = [Implementation("convnet conv2d (correlate_channels)",
                                lambda: F.conv2d(x, w, b, padding=p))]
        if torch is None:
            return impls + [Skipped("torch conv2d", NO_TORCH)]
        tx, tw, tb = map(torch.from_numpy, (x, w, b))
        impls.append(Implementation("torch conv2d", lambda: torch.nn.functional.conv2d(
            tx, tw, tb, padding=p).numpy(), allclose(1e-4, 1e-4)))
        return impls
    return setup


def _conv_backward(layer):
    def setup(quick):
        x, w, b, p = _conv_arrays(layer)
        y = F.conv2d(x, w, b, padding=p)
        dy = np.random.default_rng(3).standard_normal(y.shape).astype(np.float32)
        impls = [Implementation("convnet conv2d_backward (dx, dw, db)",
                                lambda: F.conv2d_backward(dy, x, w, padding=p))]
        if torch is None:
            return impls + [Skipped("torch convolution_backward", NO_TORCH)]
        tx, tw, tdy = map(torch.from_numpy, (x, w, dy))
        kernel = torch.ops.aten.convolution_backward

        def torch_bwd():
            dx, dw, db = kernel(tdy, tx, tw, [w.shape[0]], [1, 1], [p, p], [1, 1], False,
                                [0, 0], 1, [True, True, True])
            return dx.numpy(), dw.numpy(), db.numpy()

        impls.append(Implementation("torch convolution_backward (dx, dw, db)", torch_bwd,
                                    all_close(1e-3, 1e-3)))
        return impls
    return setup


def _conv_macs(layer):
    spec = CONVS[layer]
    n, c, h, wd = spec["x"]
    o, _, kh, kw = spec["w"]
    p = spec["padding"]
    ho, wo = h + 2 * p - kh + 1, wd + 2 * p - kw + 1
    return n * o * c * kh * kw * ho * wo, 4 * (n * c * h * wd + o * c * kh * kw + n * o * ho * wo)


WORKLOADS = [
    Workload("maxpool-fwd", "2x2 max pooling, stride 2, of (64, 6, 28, 28) float32",
             _pool_forward, group="convnet", **_LOOP,
             bytes=lambda q: 4 * 1.25 * np.prod(POOL_SHAPE),
             ops=lambda q: 0.75 * np.prod(POOL_SHAPE)),
    Workload("maxpool-bwd", "its gradient (64, 6, 14, 14) -> (64, 6, 28, 28)", _pool_backward,
             group="convnet", **_LOOP, bytes=lambda q: 4 * 1.5 * np.prod(POOL_SHAPE),
             ops=lambda q: 1.0 * np.prod(POOL_SHAPE)),
]
for _layer, _suffix in (("pool1", ""), ("pool2", "2")):
    _shape, _size = POOLS[_layer], int(np.prod(POOLS[_layer]))
    WORKLOADS.append(Workload(
        f"maxpool{_suffix}-train-fwd", f"2x2 max pooling of {_shape} float32 in training "
        f"mode, keeping what backward needs (argmax codes / indices)",
        _pool_train_forward(_layer), group="convnet", **_LOOP,
        bytes=lambda q, m=_size: 4 * 1.5 * m, ops=lambda q, m=_size: 1.5 * m))
    for _argmax, _what in ((False, "max"), (True, "argmax")):
        WORKLOADS.append(Workload(
            f"{_what}{_suffix}-stencil", f"the {_what} stencil of LeNet's {_layer} alone, "
            f"{_shape} float32, stride 2, against a plain Numba loop (target: within 2x) and "
            f"on tier 0 (target: within 3x)",
            _pool_stencil(_layer, _argmax), group="convnet", **_LOOP,
            bytes=lambda q, m=_size: 4 * 1.25 * m, ops=lambda q, m=_size: 0.75 * m))
for _layer, _desc in (("conv1", "1->6, 5x5 'same' on (64, 1, 28, 28)"),
                      ("conv2", "6->16, 5x5 'valid' on (64, 6, 14, 14)")):
    _macs, _bytes = _conv_macs(_layer)
    WORKLOADS += [
        Workload(f"{_layer}-fwd", f"LeNet {_layer} forward, float32, {_desc}",
                 _conv_forward(_layer), group="convnet", **_LOOP,
                 bytes=lambda q, b=_bytes: b, ops=lambda q, m=_macs: m),
        Workload(f"{_layer}-bwd", f"LeNet {_layer} backward (input, weight and bias "
                 f"gradients), float32, {_desc}", _conv_backward(_layer), group="convnet", **_LOOP,
                 bytes=lambda q, b=_bytes: 2 * b, ops=lambda q, m=_macs: 2 * m),
    ]
