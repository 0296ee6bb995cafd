"""Optimisers (PyTorch's update rules) and the cosine learning-rate schedule."""

from __future__ import annotations

import math

import numpy as np

from .errors import CheckpointError, ConvNetValueError

__all__ = ["SGD", "Adam", "cosine_lr"]


def _check_params(params):
    params = list(params)
    if not params:
        raise ConvNetValueError("params is empty; expected at least one Parameter",
                                param="params", value=params, expected="non-empty list")
    return params


def _non_negative(value, param):
    if not isinstance(value, (int, float, np.floating, np.integer)) or not value >= 0:
        raise ConvNetValueError(f"{param}={value!r} must be a number >= 0",
                                param=param, value=value, expected=">= 0")
    return float(value)


class _Optimizer:
    _state_names = ()

    def state_dict(self):
        """Hyper-parameters, step count and per-parameter buffers (copies)."""
        arrays = {f"{name}.{i}": buf.copy()
                  for name in self._state_names
                  for i, buf in enumerate(getattr(self, name))}
        return {"hyper": self._hyper(), "steps": self.steps, "arrays": arrays}

    def load_state_dict(self, state):
        """Restore what `state_dict` returned (buffers copied into place)."""
        try:
            for name in self._state_names:
                for i, buf in enumerate(getattr(self, name)):
                    value = np.asarray(state["arrays"][f"{name}.{i}"])
                    if value.shape != buf.shape:
                        raise CheckpointError(
                            f"optimiser buffer {name}.{i} has shape {value.shape}; "
                            f"expected {buf.shape}", param=f"{name}.{i}", value=value.shape,
                            expected=buf.shape)
                    buf[...] = value
            self.steps = int(state["steps"])
        except KeyError as err:
            raise CheckpointError(
                f"optimiser state lacks {err}; it was saved by a different optimiser "
                f"({state.get('hyper', {}).get('name', 'unknown')}) or model",
                param="state", value=sorted(state.get("arrays", {})),
                expected=self._state_names) from None


class SGD(_Optimizer):
    """Stochastic gradient descent with momentum and weight decay (PyTorch's rule).

    ``g = grad + weight_decay * p``; with momentum ``buf = momentum * buf + g``
    (``buf = g`` at the first step) and ``g = buf`` (``g + momentum * buf`` with
    nesterov); then ``p -= lr * g``.

    Examples
    --------
    >>> import numpy as np
    >>> from convnet.layers import Parameter
    >>> p = Parameter(np.array([1.0]))
    >>> opt = SGD([p], lr=0.1, momentum=0.9)
    >>> p.grad[:] = 1.0
    >>> opt.step(); opt.step()
    >>> p.data
    array([0.71])
    """

    _state_names = ("momentum_buffers",)

    def __init__(self, params, lr=0.01, momentum=0.0, weight_decay=0.0, nesterov=False):
        self.params = _check_params(params)
        self.lr = _non_negative(lr, "lr")
        self.momentum = _non_negative(momentum, "momentum")
        self.weight_decay = _non_negative(weight_decay, "weight_decay")
        self.nesterov = bool(nesterov)
        self.momentum_buffers = [np.zeros_like(p.data) for p in self.params]
        self.steps = 0

    def _hyper(self):
        return {"name": "sgd", "lr": self.lr, "momentum": self.momentum,
                "weight_decay": self.weight_decay, "nesterov": self.nesterov}

    def step(self):
        """Update every parameter in place from its ``grad``."""
        lr, mu, wd = self.lr, self.momentum, self.weight_decay
        for p, buf in zip(self.params, self.momentum_buffers):
            g = p.grad
            if wd:
                g = g + wd * p.data
            if mu:
                if self.steps == 0:
                    buf[...] = g
                else:
                    buf *= mu
                    buf += g
                g = g + mu * buf if self.nesterov else buf
            p.data -= lr * g
        self.steps += 1


class Adam(_Optimizer):
    """Adam (Kingma and Ba), with L2 weight decay added to the gradient as in PyTorch.

    Examples
    --------
    >>> import numpy as np
    >>> from convnet.layers import Parameter
    >>> p = Parameter(np.array([1.0]))
    >>> opt = Adam([p], lr=0.1)
    >>> p.grad[:] = 3.0
    >>> opt.step()
    >>> p.data
    array([0.9])
    """

    _state_names = ("first_moments", "second_moments")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        self.params = _check_params(params)
        self.lr = _non_negative(lr, "lr")
        self.betas = (_non_negative(betas[0], "betas[0]"), _non_negative(betas[1], "betas[1]"))
        self.eps = _non_negative(eps, "eps")
        self.weight_decay = _non_negative(weight_decay, "weight_decay")
        self.first_moments = [np.zeros_like(p.data) for p in self.params]
        self.second_moments = [np.zeros_like(p.data) for p in self.params]
        self.steps = 0

    def _hyper(self):
        return {"name": "adam", "lr": self.lr, "betas": list(self.betas), "eps": self.eps,
                "weight_decay": self.weight_decay}

    def step(self):
        """Update every parameter in place from its ``grad``."""
        self.steps += 1
        b1, b2 = self.betas
        correction1 = 1 - b1 ** self.steps
        correction2 = 1 - b2 ** self.steps
        for p, m, v in zip(self.params, self.first_moments, self.second_moments):
            g = p.grad + self.weight_decay * p.data if self.weight_decay else p.grad
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            denom = np.sqrt(v / correction2) + self.eps
            p.data -= (self.lr / correction1) * m / denom


def cosine_lr(base_lr, step, total_steps):
    """Cosine annealing from `base_lr` at step 0 to 0 at `total_steps`.

    Examples
    --------
    >>> cosine_lr(0.1, 0, 100), cosine_lr(0.1, 50, 100), cosine_lr(0.1, 100, 100)
    (0.1, 0.05, 0.0)
    """
    if total_steps <= 0:
        return base_lr
    progress = min(step, total_steps) / total_steps
    return round(base_lr * 0.5 * (1 + math.cos(math.pi * progress)), 15)
