"""LeNet's stencil layers against PyTorch: max pooling and conv2d, forward and backward.

Shapes are LeNet's at batch 64 (``convnet.LeNet``): conv1 1->6 5x5 'same' on 28x28,
conv2 6->16 5x5 'valid' on 12x12, max pooling 2x2 on (64, 6, 28, 28).  Run through
``python -m benchmarks --only convnet``.  The whole network (a training epoch,
inference) is `benchmarks.bench_lenet`'s.
"""

from __future__ import annotations

import numpy as np

from convnet import functional as F
from convnet.layers import MaxPool2d

from ._harness import Implementation, Skipped, Workload, all_close, allclose

try:
    import torch
except ImportError:  # pragma: no cover - optional peer
    torch = None

NO_TORCH = "torch is not installed"
BATCH = 64
POOL_SHAPE = (BATCH, 6, 28, 28)
CONVS = {
    "conv1": dict(x=(BATCH, 1, 28, 28), w=(6, 1, 5, 5), padding=2),
    "conv2": dict(x=(BATCH, 6, 12, 12), w=(16, 6, 5, 5), padding=0),
}


def _pool_input():
    # Distinct values: no ties, so "the first maximum" is the only maximum.
    rng = np.random.default_rng(0)
    return rng.permutation(np.prod(POOL_SHAPE)).astype(np.float32).reshape(POOL_SHAPE)


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


def _pool_train_forward(quick):
    x = _pool_input()
    pool = MaxPool2d(2)
    impls = [Implementation("convnet MaxPool2d.forward, training (argmax-code stencil + gather)",
                            lambda: pool.forward(x), note="what a training step runs")]
    if torch is None:
        return impls + [Skipped("torch max_pool2d(return_indices=True)", NO_TORCH)]
    tx = torch.from_numpy(x)
    impls.append(Implementation(
        "torch max_pool2d(return_indices=True)",
        lambda: torch.nn.functional.max_pool2d(tx, 2, 2, return_indices=True)[0].numpy(),
        allclose(0, 0), "what torch's training step runs"))
    return impls


def _pool_backward(quick):
    x = _pool_input()
    dy = np.random.default_rng(1).standard_normal(
        (BATCH, 6, 14, 14)).astype(np.float32)
    argmax = F.max_pool2d_argmax(x, 2, 2)
    impls = [
        Implementation("convnet max_pool2d_scatter (saved argmax)",
                       lambda: F.max_pool2d_scatter(dy, argmax, x.shape, 2, 2),
                       note="what MaxPool2d.backward runs"),
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
             _pool_forward, group="convnet",
             bytes=lambda q: 4 * 1.25 * np.prod(POOL_SHAPE),
             ops=lambda q: 0.75 * np.prod(POOL_SHAPE)),
    Workload("maxpool-train-fwd", "the same pooling in training mode, keeping what backward "
             "needs (argmax codes / indices)", _pool_train_forward, group="convnet",
             bytes=lambda q: 4 * 1.5 * np.prod(POOL_SHAPE),
             ops=lambda q: 1.5 * np.prod(POOL_SHAPE)),
    Workload("maxpool-bwd", "its gradient (64, 6, 14, 14) -> (64, 6, 28, 28)", _pool_backward,
             group="convnet", bytes=lambda q: 4 * 1.5 * np.prod(POOL_SHAPE),
             ops=lambda q: 1.0 * np.prod(POOL_SHAPE)),
]
for _layer, _desc in (("conv1", "1->6, 5x5 'same' on (64, 1, 28, 28)"),
                      ("conv2", "6->16, 5x5 'valid' on (64, 6, 12, 12)")):
    _macs, _bytes = _conv_macs(_layer)
    WORKLOADS += [
        Workload(f"{_layer}-fwd", f"LeNet {_layer} forward, float32, {_desc}",
                 _conv_forward(_layer), group="convnet",
                 bytes=lambda q, b=_bytes: b, ops=lambda q, m=_macs: m),
        Workload(f"{_layer}-bwd", f"LeNet {_layer} backward (input, weight and bias "
                 f"gradients), float32, {_desc}", _conv_backward(_layer), group="convnet",
                 bytes=lambda q, b=_bytes: 2 * b, ops=lambda q, m=_macs: 2 * m),
    ]
