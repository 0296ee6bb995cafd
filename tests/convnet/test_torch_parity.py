"""Forward outputs and all gradients equal torch.nn.functional's at float64 (optional oracle)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
TF = torch.nn.functional

from convnet import SGD, Adam, LeNet  # noqa: E402
from convnet import functional as F  # noqa: E402

TOL = dict(rtol=1e-10, atol=1e-10)


def t64(a):
    return torch.tensor(np.asarray(a, np.float64), requires_grad=True)


@pytest.mark.parametrize("shape, kernel, padding, stride, bias", [
    ((2, 3, 9, 8), (4, 3, 3, 3), 1, 1, True),
    ((2, 1, 28, 28), (6, 1, 5, 5), "same", 1, False),
    ((3, 6, 14, 14), (16, 6, 5, 5), "valid", 1, True),
    ((2, 2, 9, 9), (3, 2, 4, 4), "same", 1, True),
    ((2, 2, 11, 10), (3, 2, 3, 2), (2, 1), (2, 3), True),
    ((1, 2, 7, 7), (2, 2, 3, 3), 0, 2, False),
])
def test_conv2d(shape, kernel, padding, stride, bias):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(shape), rng.standard_normal(kernel)
    b = rng.standard_normal(kernel[0]) if bias else None
    y = F.conv2d(x, w, b, padding, stride)
    tx, tw = t64(x), t64(w)
    tb = t64(b) if bias else None
    ty = TF.conv2d(tx, tw, tb, stride=stride, padding=padding)
    np.testing.assert_allclose(y, ty.detach().numpy(), **TOL)
    g = rng.standard_normal(y.shape)
    ty.backward(torch.tensor(g))
    dx, dw, db = F.conv2d_backward(g, x, w, padding, stride, bias=bias)
    np.testing.assert_allclose(dx, tx.grad.numpy(), **TOL)
    np.testing.assert_allclose(dw, tw.grad.numpy(), **TOL)
    if bias:
        np.testing.assert_allclose(db, tb.grad.numpy(), **TOL)


@pytest.mark.parametrize("kernel, stride", [(2, 2), (3, 2), (2, 1), ((3, 2), (1, 3))])
def test_max_pool2d(kernel, stride):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 9, 10))
    x[0, 0, :2, :2] = 1.5  # a tie: both route to the first maximum in row-major order
    tx = t64(x)
    ty = TF.max_pool2d(tx, kernel, stride)
    np.testing.assert_array_equal(F.max_pool2d(x, kernel, stride), ty.detach().numpy())
    g = rng.standard_normal(ty.shape)
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(F.max_pool2d_backward(g, x, kernel, stride), tx.grad.numpy(),
                               **TOL)


def test_linear_relu_softmax():
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((5, 7)), rng.standard_normal((3, 7)), rng.standard_normal(3)
    labels = np.array([0, 2, 1, 1, 0])
    tx, tw, tb = t64(x), t64(w), t64(b)
    logits = TF.linear(TF.relu(tx), tw, tb)
    tloss = TF.cross_entropy(logits, torch.tensor(labels))
    tloss.backward()
    h = F.relu(x)
    z = F.linear(h, w, b)
    np.testing.assert_allclose(z, logits.detach().numpy(), **TOL)
    loss, dz = F.softmax_cross_entropy(z, labels)
    assert loss == pytest.approx(tloss.item(), rel=1e-12)
    dh, dw, db = F.linear_backward(dz, h, w)
    np.testing.assert_allclose(F.relu_backward(dh, x), tx.grad.numpy(), **TOL)
    np.testing.assert_allclose(dw, tw.grad.numpy(), **TOL)
    np.testing.assert_allclose(db, tb.grad.numpy(), **TOL)


def torch_lenet(net):
    """The same LeNet in torch, sharing our initial weights."""
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding="same", bias=net.conv_bias), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5, bias=net.conv_bias), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    ).double()
    ours = dict(net.named_parameters())
    index = {"conv1": 0, "conv2": 3, "fc1": 7, "fc2": 9, "fc3": 11}
    with torch.no_grad():
        for name, param in ours.items():
            layer, kind = name.split(".")
            getattr(model[index[layer]], kind).copy_(torch.tensor(param.data))
    return model, index


@pytest.mark.parametrize("conv_bias", [True, False])
def test_lenet_forward_backward_and_sgd_steps(conv_bias):
    rng = np.random.default_rng(3)
    net = LeNet(conv_bias=conv_bias, rng=4, dtype=np.float64)
    model, index = torch_lenet(net)
    ours = dict(net.named_parameters())
    opt = SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    topt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    for _ in range(3):
        x = rng.standard_normal((8, 1, 28, 28))
        labels = rng.integers(0, 10, 8)
        logits = net.forward(x)
        loss, dlogits = F.softmax_cross_entropy(logits, labels)
        net.backward(dlogits, input_grad=False)
        tlogits = model(torch.tensor(x))
        tloss = TF.cross_entropy(tlogits, torch.tensor(labels))
        topt.zero_grad()
        tloss.backward()
        np.testing.assert_allclose(logits, tlogits.detach().numpy(), **TOL)
        assert loss == pytest.approx(tloss.item(), rel=1e-12)
        for name, param in ours.items():
            layer, kind = name.split(".")
            tgrad = getattr(model[index[layer]], kind).grad.numpy()
            np.testing.assert_allclose(param.grad, tgrad, err_msg=name, **TOL)
        opt.step()
        topt.step()
    for name, param in ours.items():
        layer, kind = name.split(".")
        np.testing.assert_allclose(param.data, getattr(model[index[layer]], kind).detach(),
                                   err_msg=name, **TOL)


def test_adam_matches_torch():
    rng = np.random.default_rng(5)
    net = LeNet(rng=6, dtype=np.float64)
    model, index = torch_lenet(net)
    opt = Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
    topt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    for _ in range(3):
        x, labels = rng.standard_normal((4, 1, 28, 28)), rng.integers(0, 10, 4)
        _, dlogits = F.softmax_cross_entropy(net.forward(x), labels)
        net.backward(dlogits)
        topt.zero_grad()
        TF.cross_entropy(model(torch.tensor(x)), torch.tensor(labels)).backward()
        opt.step()
        topt.step()
    for name, param in net.named_parameters():
        layer, kind = name.split(".")
        np.testing.assert_allclose(param.data, getattr(model[index[layer]], kind).detach(),
                                   err_msg=name, rtol=1e-9, atol=1e-12)
