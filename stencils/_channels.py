"""Multi-channel correlation (the seed's "LeNet-like convolution"). Placeholder: being written."""


def correlate_channels(x, weights, *, padding=0, stride=1, out=None):
    raise NotImplementedError("correlate_channels is being written")
