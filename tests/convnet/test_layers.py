"""Layers and the whole LeNet: finite-difference gradient checks (float64), parameters."""

import numpy as np
import pytest
from gradcheck import check_gradient

from convnet import (SGD, Conv2d, ConvNetTypeError, ConvNetValueError, Flatten, LeNet, Linear,
                     MaxPool2d, ReLU, Sequential)
from convnet import functional as F


def _tie_free(rng, shape):
    return rng.permutation(np.prod(shape)).reshape(shape) / np.prod(shape) - 0.3


@pytest.mark.parametrize("make, shape", [
    (lambda: Conv2d(2, 3, 3, padding="same", rng=0, dtype=np.float64), (2, 2, 6, 6)),
    (lambda: Conv2d(2, 3, (2, 3), padding=(1, 0), stride=2, bias=False, rng=0,
                    dtype=np.float64), (2, 2, 6, 6)),
    (lambda: MaxPool2d(2), (2, 2, 6, 6)),
    (lambda: MaxPool2d(3, stride=2), (2, 2, 7, 6)),
    (lambda: ReLU(), (2, 3, 4)),
    (lambda: ReLU(inplace=True), (2, 3, 4)),
    (lambda: Flatten(), (2, 3, 2, 2)),
    (lambda: Linear(5, 4, rng=0, dtype=np.float64), (3, 5)),
])
def test_layer_gradients(make, shape):
    rng = np.random.default_rng(0)
    layer = make()
    x = _tie_free(rng, shape)
    y = layer.forward(x.copy())
    g = rng.standard_normal(y.shape)
    dx = layer.backward(g.copy())

    def loss():
        return float(np.sum(g * layer.forward(x.copy())))

    check_gradient(loss, x, dx)
    for _, param in layer.named_parameters():
        check_gradient(loss, param.data, param.grad.copy())


def test_maxpool_train_and_eval_forward_agree():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4, 10, 10)).astype(np.float32)
    pool = MaxPool2d(2)
    np.testing.assert_array_equal(pool.forward(x), pool.eval().forward(x))


def test_lenet_whole_loss_gradient():
    rng = np.random.default_rng(2)
    net = LeNet(rng=3, dtype=np.float64)
    x = rng.standard_normal((3, 1, 28, 28))
    labels = np.array([1, 7, 3])
    _, dlogits = F.softmax_cross_entropy(net.forward(x), labels)
    dx = net.backward(dlogits)

    def loss():
        return F.softmax_cross_entropy(net.forward(x), labels)[0]

    check_gradient(loss, x, dx, samples=30, rtol=1e-5, atol=1e-8)
    for name, param in net.named_parameters():
        check_gradient(loss, param.data, param.grad.copy(), samples=20, rtol=1e-5, atol=1e-8)


def test_lenet_parameter_counts_and_names():
    assert LeNet(conv_bias=False, rng=0).num_parameters() == 61_684
    assert LeNet(rng=0).num_parameters() == 61_706
    names = [name for name, _ in LeNet(rng=0).named_parameters()]
    assert names == ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc1.weight",
                     "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"]


def test_lenet_is_float32_end_to_end():
    net = LeNet(rng=0)
    x = np.zeros((2, 1, 28, 28), np.float32)
    logits = net.forward(x)
    assert logits.dtype == np.float32
    _, d = F.softmax_cross_entropy(logits, [0, 1])
    net.backward(d)
    assert all(p.grad.dtype == np.float32 for p in net.parameters())


def test_state_dict_round_trip_and_errors():
    a, b = LeNet(rng=0), LeNet(rng=1)
    b.load_state_dict(a.state_dict())
    for (_, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    state = a.state_dict()
    state["fc1.weight"] = np.zeros((3, 3))
    with pytest.raises(ConvNetValueError, match="fc1.weight"):
        b.load_state_dict(state)
    del state["fc1.weight"]
    with pytest.raises(ConvNetValueError, match="missing"):
        b.load_state_dict(state)


def test_training_reduces_loss_on_fixed_batch():
    rng = np.random.default_rng(0)
    net = LeNet(rng=0)
    x = rng.standard_normal((16, 1, 28, 28)).astype(np.float32)
    labels = rng.integers(0, 10, 16)
    opt = SGD(net.parameters(), lr=0.05, momentum=0.9)
    first = None
    for _ in range(40):
        loss, d = F.softmax_cross_entropy(net.forward(x), labels)
        first = loss if first is None else first
        net.backward(d, input_grad=False)
        opt.step()
    assert loss < 0.5 * first


def test_sequential_named_and_errors():
    net = Sequential({"a": Linear(3, 2, rng=0), "b": ReLU()})
    assert [n for n, _ in net.named_parameters()] == ["a.weight", "a.bias"]
    assert isinstance(net["b"], ReLU) and len(net) == 2
    with pytest.raises(ConvNetTypeError, match="Module"):
        Sequential(Linear(3, 2), np.ones(3))


@pytest.mark.parametrize("make, fragment", [
    (lambda: Conv2d(0, 3, 3), "in_channels"),
    (lambda: Conv2d(1, 3, 0), "kernel_size"),
    (lambda: Conv2d(1, 3, 3, padding="full"), "not a padding"),
    (lambda: Conv2d(1, 3, 3, padding="same", stride=2), "stride 1"),
    (lambda: Linear(3, -1), "out_features"),
    (lambda: MaxPool2d((2, 2, 2)), "kernel_size"),
])
def test_layer_argument_errors(make, fragment):
    with pytest.raises(ConvNetValueError, match=fragment):
        make()


def test_lenet_rejects_wrong_input_shape():
    with pytest.raises(ConvNetValueError, match="expected"):
        LeNet(rng=0).forward(np.zeros((2, 28, 28), np.float32))


@pytest.mark.parametrize("inplace", [False, True])
def test_relu_before_max_pool_runs_after_it_with_the_same_results(inplace):
    # Sequential runs a ReLU followed by a MaxPool2d after the pooling: the
    # output and the input gradient equal the layers' written order, element
    # for element, windows with no positive value and ties at zero included.
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 2, 6, 6))
    x[0, 0, :2, :2] = -1.0                    # no positive value
    x[0, 1, :2, :2] = [[0.0, 0.0], [-2, 0]]    # ties at zero
    x[1, 0, :2, :2] = [[1.5, -1], [1.5, 3]]
    dy = rng.standard_normal((3, 2, 3, 3))
    relu, pool = ReLU(inplace=inplace), MaxPool2d(2)
    want = pool.forward(relu.forward(x.copy()))
    want_dx = relu.backward(pool.backward(dy.copy()))
    net = Sequential(ReLU(inplace=inplace), MaxPool2d(2))
    np.testing.assert_array_equal(net.forward(x.copy()), want)
    np.testing.assert_array_equal(net.backward(dy.copy()), want_dx)
