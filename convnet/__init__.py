"""The seed's LeNet on the `stencils` core, with hand-written gradients.

Convolutions and max pooling (forward and backward) are stencil computations
(`stencils.correlate_channels`, `stencils.max_stencil` with a strided
compute), but for the pooling gradient's scatter of 2x2 windows, a small Numba
loop (a scatter is no stencil); everything else is NumPy.  Train with ``python -m convnet.train``,
evaluate with ``python -m convnet.evaluate CHECKPOINT``, classify PNG digits
with ``python -m convnet.predict CHECKPOINT IMAGE...``.

>>> import numpy as np, convnet
>>> net = convnet.LeNet(rng=0)
>>> net(np.zeros((1, 1, 28, 28), np.float32)).shape
(1, 10)
"""

from . import functional
from ._malloc import keep_freed_memory
from .checkpoint import load_checkpoint, save_checkpoint
from .data import Dataset, load_dataset, normalize, read_idx
from .errors import (CheckpointError, ConvNetError, ConvNetTypeError, ConvNetValueError,
                     DataFormatError, TrainingDivergedError)
from .layers import Conv2d, Flatten, Linear, MaxPool2d, Module, Parameter, ReLU, Sequential
from .model import LeNet
from .optim import SGD, Adam, cosine_lr

__all__ = [
    "Adam",
    "CheckpointError",
    "Conv2d",
    "ConvNetError",
    "ConvNetTypeError",
    "ConvNetValueError",
    "DataFormatError",
    "Dataset",
    "Flatten",
    "LeNet",
    "Linear",
    "MaxPool2d",
    "Module",
    "Parameter",
    "ReLU",
    "SGD",
    "Sequential",
    "TrainingDivergedError",
    "cosine_lr",
    "functional",
    "keep_freed_memory",
    "load_checkpoint",
    "load_dataset",
    "normalize",
    "read_idx",
    "save_checkpoint",
]
