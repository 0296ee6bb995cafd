"""Layers with PyTorch's names and keywords, each with a hand-written backward.

A layer's ``forward`` keeps what its ``backward`` needs; ``backward(dy)``
returns the gradient with respect to the layer's input and *overwrites* (does
not accumulate into) the ``grad`` of each of its parameters, so no
``zero_grad`` is needed between steps.  ``backward(dy, input_grad=False)``
skips the input gradient (returns None) where nobody needs it: the first
layer of a network (the seed's laziness never computed it for conv1 either).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

from stencils.validation import is_int

from . import functional as F
from ._threads import one_blas_thread
from .errors import ConvNetTypeError, ConvNetValueError

__all__ = ["Parameter", "Module", "Conv2d", "MaxPool2d", "ReLU", "Flatten", "Linear",
           "Sequential"]


class Parameter:
    """A trainable array and its gradient (same shape and dtype).

    Examples
    --------
    >>> import numpy as np
    >>> p = Parameter(np.ones(3, np.float32))
    >>> p.grad
    array([0., 0., 0.], dtype=float32)
    """

    __slots__ = ("data", "grad")

    def __init__(self, data):
        self.data = np.ascontiguousarray(data)
        self.grad = np.zeros_like(self.data)

    def __repr__(self):
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class Module:
    """Base class: parameters by name, train/eval mode, state dicts."""

    training = True

    def forward(self, x):
        raise NotImplementedError

    def backward(self, dy, input_grad=True):
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)

    def _own_parameters(self):
        # Layers keep theirs as `weight` and `bias` (None when a layer has no bias).
        return [(name, getattr(self, name)) for name in ("weight", "bias")
                if getattr(self, name, None) is not None]

    def children(self):
        """Named sub-layers, in order."""
        return ()

    def named_parameters(self, prefix=""):
        """Yield ``(name, Parameter)`` pairs, PyTorch-style dotted names."""
        for name, param in self._own_parameters():
            yield prefix + name, param
        for name, child in self.children():
            yield from child.named_parameters(f"{prefix}{name}.")

    def parameters(self):
        """List of the trainable parameters."""
        return [param for _, param in self.named_parameters()]

    def train(self, mode=True):
        """Training mode (layers keep what backward needs); returns self."""
        self.training = mode
        for _, child in self.children():
            child.train(mode)
        return self

    def eval(self):
        """Inference mode; returns self."""
        return self.train(False)

    def state_dict(self):
        """Copies of the parameter arrays by name."""
        return OrderedDict((name, p.data.copy()) for name, p in self.named_parameters())

    def load_state_dict(self, state):
        """Set the parameters from a mapping name -> array of the same shape."""
        params = dict(self.named_parameters())
        missing = sorted(set(params) - set(state))
        unexpected = sorted(set(state) - set(params))
        if missing or unexpected:
            raise ConvNetValueError(
                f"state has parameters that do not fit this model: missing {missing}, "
                f"unexpected {unexpected}", param="state", value=sorted(state),
                expected=sorted(params))
        for name, param in params.items():
            value = np.asarray(state[name])
            if value.shape != param.data.shape:
                raise ConvNetValueError(
                    f"state[{name!r}] has shape {value.shape}; expected {param.data.shape}",
                    param=f"state[{name!r}]", value=value.shape, expected=param.data.shape)
            param.data[...] = value

    def num_parameters(self):
        """Total number of trainable scalars."""
        return sum(p.data.size for p in self.parameters())


def _rng(rng):
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _positive_int(value, param):
    if not is_int(value) or value < 1:
        raise ConvNetValueError(f"{param}={value!r} must be a positive int",
                                param=param, value=value, expected="int >= 1")
    return int(value)


def _uniform(rng, bound, shape, dtype):
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


class Conv2d(Module):
    """2-D convolution layer, ``torch.nn.Conv2d``'s arguments and initialisation.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (int, int)
    padding : int, (int, int), 'same' or 'valid', optional
    stride : int or (int, int), optional
    bias : bool, optional
    rng : numpy.random.Generator or int, optional
        Source of the initial weights: uniform in +-1/sqrt(fan_in), as PyTorch.
    dtype : numpy dtype, optional
        Default float32.

    Examples
    --------
    >>> import numpy as np
    >>> conv = Conv2d(1, 6, 5, padding="same", rng=0)
    >>> conv(np.zeros((2, 1, 28, 28), np.float32)).shape
    (2, 6, 28, 28)
    >>> [name for name, _ in conv.named_parameters()]
    ['weight', 'bias']
    """

    def __init__(self, in_channels, out_channels, kernel_size, padding=0, stride=1, bias=True,
                 *, rng=None, dtype=np.float32):
        in_channels = _positive_int(in_channels, "in_channels")
        out_channels = _positive_int(out_channels, "out_channels")
        self.kernel_size = F._pair(kernel_size, "kernel_size")
        self.stride = F._pair(stride, "stride")
        self.padding = padding
        F.conv_padding(padding, self.kernel_size, self.stride)  # validate now, not at first use
        rng = _rng(rng)
        bound = 1 / math.sqrt(in_channels * self.kernel_size[0] * self.kernel_size[1])
        self.weight = Parameter(_uniform(rng, bound, (out_channels, in_channels)
                                         + self.kernel_size, dtype))
        self.bias = Parameter(_uniform(rng, bound, (out_channels,), dtype)) if bias else None
        self._x = None

    def forward(self, x):
        if self.training:
            self._x = x
        return F.conv2d(x, self.weight.data, None if self.bias is None else self.bias.data,
                        self.padding, self.stride)

    def backward(self, dy, input_grad=True):
        dx, dw, db = F.conv2d_backward(dy, self._x, self.weight.data, self.padding, self.stride,
                                       bias=self.bias is not None, input_grad=input_grad)
        self.weight.grad[...] = dw
        if self.bias is not None:
            self.bias.grad[...] = db
        return dx

    def __repr__(self):
        out_c, in_c = self.weight.data.shape[:2]
        return (f"Conv2d({in_c}, {out_c}, kernel_size={self.kernel_size}, "
                f"padding={self.padding!r}, stride={self.stride}, bias={self.bias is not None})")


class MaxPool2d(Module):
    """Max pooling layer (``torch.nn.MaxPool2d``'s `kernel_size` and `stride`).

    In training mode the forward pass also computes the argmax-code stencil,
    which the backward pass reuses.

    Examples
    --------
    >>> import numpy as np
    >>> pool = MaxPool2d(2)
    >>> pool(np.arange(16.0).reshape(1, 1, 4, 4))
    array([[[[ 5.,  7.],
             [13., 15.]]]])
    >>> pool.backward(np.ones((1, 1, 2, 2)))[0, 0]
    array([[0., 0., 0., 0.],
           [0., 1., 0., 1.],
           [0., 0., 0., 0.],
           [0., 1., 0., 1.]])
    """

    def __init__(self, kernel_size, stride=None):
        kh, kw, sh, sw = F._pool_window(kernel_size, stride)
        self.kernel_size, self.stride = (kh, kw), (sh, sw)
        self._shape = self._argmax = None

    def forward(self, x):
        if not self.training:
            return F.max_pool2d(x, self.kernel_size, self.stride)
        x, kh, kw, sh, sw = F._check_pool(x, self.kernel_size, self.stride)
        self._shape = x.shape
        self._argmax = F._pooled(F._argmax_stencil(kh, kw), x, sh, sw)
        # A second stencil pass costs less than reading the maxima at the codes
        # (max_pool2d_gather): 0.47 against 0.64 ms for both on (64, 6, 28, 28),
        # 0.20 against 0.24 ms on (64, 16, 8, 8), one thread.
        return F._pooled(F._max_stencil(kh, kw), x, sh, sw)

    def backward(self, dy, input_grad=True):
        return F._scatter_to_codes(dy, self._argmax, self._shape, *self.kernel_size, *self.stride)

    def __repr__(self):
        return f"MaxPool2d(kernel_size={self.kernel_size}, stride={self.stride})"


class ReLU(Module):
    """Rectified linear unit.

    Parameters
    ----------
    inplace : bool, optional
        Overwrite the input with the output (and, in backward, the incoming
        gradient with the outgoing one), as ``torch.nn.ReLU(inplace=True)``:
        saves two full-size temporaries per step.  Only for arrays nobody else
        needs, such as a convolution's fresh output.

    Examples
    --------
    >>> import numpy as np
    >>> ReLU()(np.array([-2.0, 3.0]))
    array([0., 3.])
    """

    def __init__(self, inplace=False):
        self.inplace = bool(inplace)
        self._y = None

    def forward(self, x):
        y = np.maximum(x, 0, out=x) if self.inplace else F.relu(x)
        if self.training:
            self._y = y  # y > 0 exactly where x > 0
        return y

    def backward(self, dy, input_grad=True):
        if self.inplace:
            return np.multiply(dy, self._y > 0, out=dy)
        return F.relu_backward(dy, self._y)

    def __repr__(self):
        return f"ReLU(inplace={self.inplace})" if self.inplace else "ReLU()"


class Flatten(Module):
    """Flatten all axes after the first, row-major (as ``torch.flatten(x, 1)`` on NCHW).

    Examples
    --------
    >>> import numpy as np
    >>> Flatten()(np.zeros((2, 16, 5, 5))).shape
    (2, 400)
    """

    def __init__(self):
        self._shape = None

    def forward(self, x):
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy, input_grad=True):
        return dy.reshape(self._shape)

    def __repr__(self):
        return "Flatten()"


class Linear(Module):
    """Fully connected layer, ``torch.nn.Linear``'s arguments and initialisation.

    Examples
    --------
    >>> import numpy as np
    >>> fc = Linear(400, 120, rng=0)
    >>> fc.weight.data.shape, fc(np.zeros((3, 400), np.float32)).shape
    ((120, 400), (3, 120))
    """

    def __init__(self, in_features, out_features, bias=True, *, rng=None, dtype=np.float32):
        in_features = _positive_int(in_features, "in_features")
        out_features = _positive_int(out_features, "out_features")
        rng = _rng(rng)
        bound = 1 / math.sqrt(in_features)
        self.weight = Parameter(_uniform(rng, bound, (out_features, in_features), dtype))
        self.bias = Parameter(_uniform(rng, bound, (out_features,), dtype)) if bias else None
        self._x = None

    def forward(self, x):
        if self.training:
            self._x = x
        return F.linear(x, self.weight.data, None if self.bias is None else self.bias.data)

    def backward(self, dy, input_grad=True):
        dx, dw, db = F.linear_backward(dy, self._x, self.weight.data, input_grad=input_grad)
        self.weight.grad[...] = dw
        if self.bias is not None:
            self.bias.grad[...] = db
        return dx

    def __repr__(self):
        out_f, in_f = self.weight.data.shape
        return f"Linear({in_f}, {out_f}, bias={self.bias is not None})"


def _commuted(named):
    """The layers in the order a pass runs them: a ReLU followed by a MaxPool2d
    runs after it instead.

    They commute: max(relu(x)) == relu(max(x)), and where the two orders pick
    different argmax positions (a window with no positive value) the ReLU's
    gradient is zero for the whole window either way.  After the pooling the
    ReLU touches a quarter of the elements (2x2 windows), forward and backward.
    """
    order = [layer for _, layer in named]
    for i in range(len(order) - 1):
        if type(order[i]) is ReLU and type(order[i + 1]) is MaxPool2d:
            order[i], order[i + 1] = order[i + 1], order[i]
    return order


class Sequential(Module):
    """Layers applied in order; backward runs them in reverse.

    Takes layers (named "0", "1", ...) or one mapping name -> layer, as PyTorch.
    BLAS runs on one thread during a pass (`convnet._threads`): the layers'
    products are small, and the convolutions already run on Numba's threads.
    A ReLU directly followed by a MaxPool2d runs after it (they commute; the
    ReLU then sees a quarter of the elements).

    Examples
    --------
    >>> import numpy as np
    >>> net = Sequential(Linear(3, 2, rng=0), ReLU())
    >>> net(np.ones((4, 3), np.float32)).shape
    (4, 2)
    >>> [name for name, _ in net.named_parameters()]
    ['0.weight', '0.bias']
    """

    def __init__(self, *layers):
        if len(layers) == 1 and isinstance(layers[0], dict):
            named = list(layers[0].items())
        else:
            named = [(str(i), layer) for i, layer in enumerate(layers)]
        for name, layer in named:
            if not isinstance(layer, Module):
                raise ConvNetTypeError(
                    f"layer {name!r} is a {type(layer).__name__}; expected a convnet Module",
                    param="layers", value=type(layer), expected="Module")
        self._layers = named
        self._order = _commuted(named)

    def children(self):
        return list(self._layers)

    def __getitem__(self, key):
        if isinstance(key, str):
            return dict(self._layers)[key]
        return self._layers[key][1]

    def __len__(self):
        return len(self._layers)

    def forward(self, x):
        with one_blas_thread():
            for layer in self._order:
                x = layer.forward(x)
        return x

    def backward(self, dy, input_grad=True):
        last = len(self._order) - 1
        with one_blas_thread():
            for i, layer in enumerate(reversed(self._order)):
                dy = layer.backward(dy, input_grad=input_grad or i < last)
        return dy

    def __repr__(self):
        inner = "\n".join(f"  ({name}): {layer!r}" for name, layer in self._layers)
        return f"{type(self).__name__}(\n{inner}\n)"
