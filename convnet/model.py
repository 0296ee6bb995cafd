"""The seed's LeNet: two stencil convolutions with max pooling, three linear layers."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .errors import ConvNetValueError
from .layers import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential

__all__ = ["LeNet"]


class LeNet(Sequential):
    """LeNet as in the seed (Day 5 of "10 Days of Grad").

    conv1 6x1x5x5 'same', relu, max pool 2, conv2 16x6x5x5 'valid', relu,
    max pool 2, flatten to 400, fc1 120, relu, fc2 84, relu, fc3 10 (logits).

    Parameters
    ----------
    conv_bias : bool, optional
        The seed's convolutions have no bias (61,684 parameters); with biases
        (the default, chosen by results, see docs/convnet.md) 61,706.
    in_channels, num_classes : int, optional
        1 and 10 for MNIST.
    rng : numpy.random.Generator or int, optional
        Source of the initial weights (PyTorch's default initialisation).
    dtype : numpy dtype, optional
        float32 (default) for training; float64 for gradient checks.

    Examples
    --------
    >>> import numpy as np
    >>> net = LeNet(conv_bias=False, rng=0)
    >>> net.num_parameters()
    61684
    >>> net(np.zeros((2, 1, 28, 28), np.float32)).shape
    (2, 10)
    """

    def __init__(self, *, conv_bias=True, in_channels=1, num_classes=10, rng=None,
                 dtype=np.float32):
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng)
        self.conv_bias = bool(conv_bias)
        layers = OrderedDict([
            ("conv1", Conv2d(in_channels, 6, 5, padding="same", bias=conv_bias, rng=rng,
                             dtype=dtype)),
            ("relu1", ReLU(inplace=True)),
            ("pool1", MaxPool2d(2)),
            ("conv2", Conv2d(6, 16, 5, padding="valid", bias=conv_bias, rng=rng, dtype=dtype)),
            ("relu2", ReLU(inplace=True)),
            ("pool2", MaxPool2d(2)),
            ("flatten", Flatten()),
            ("fc1", Linear(400, 120, rng=rng, dtype=dtype)),
            ("relu3", ReLU()),
            ("fc2", Linear(120, 84, rng=rng, dtype=dtype)),
            ("relu4", ReLU()),
            ("fc3", Linear(84, num_classes, rng=rng, dtype=dtype)),
        ])
        super().__init__(layers)
        self.in_channels = in_channels
        self.num_classes = num_classes

    def config(self):
        """Arguments that rebuild this architecture (stored in checkpoints)."""
        return {"conv_bias": self.conv_bias, "in_channels": self.in_channels,
                "num_classes": self.num_classes}

    def forward(self, x):
        x = np.asarray(x)
        if x.ndim != 4 or x.shape[1:] != (self.in_channels, 28, 28):
            raise ConvNetValueError(
                f"x has shape {x.shape}; expected (N, {self.in_channels}, 28, 28)",
                param="x", value=x.shape, expected=(None, self.in_channels, 28, 28))
        return super().forward(x)

    def predict_proba(self, x, batch_size=1000):
        """Class probabilities (softmax of the logits), computed in eval mode in batches."""
        was_training = self.training
        self.eval()
        try:
            out = []
            for start in range(0, len(x), batch_size):
                logits = self.forward(x[start:start + batch_size])
                logits = logits - logits.max(axis=1, keepdims=True)
                exp = np.exp(logits)
                out.append(exp / exp.sum(axis=1, keepdims=True))
        finally:
            self.train(was_training)
        return np.concatenate(out) if out else np.zeros((0, self.num_classes), np.float32)
