"""Every vector produced by real massiv 1.0.5.0 (../shared/conformance), reproduced exactly."""

import json
import pathlib

import numpy as np
import pytest

import stencils as st

VECTORS = pathlib.Path(__file__).resolve().parents[3] / "shared" / "conformance" / "massiv-vectors.json"


def _load():
    if not VECTORS.exists():
        return []
    data = json.loads(VECTORS.read_text())
    assert data["format"] == "massiv-stencil-conformance"
    assert len(data["vectors"]) == data["count"]
    return data["vectors"]


ALL = _load()
if not ALL:
    pytestmark = pytest.mark.skip(
        reason=f"massiv conformance vectors not found at {VECTORS} (the shared folder beside the "
               "checkout is absent)")


def _array(d):
    return np.array(d["data"], dtype=float).reshape(d["shape"])


def _border(d):
    kind = d["kind"]
    return st.Fill(d["value"]) if kind == "Fill" else getattr(st, kind)


def _fn(d):
    if d["name"] == "affine":
        a, b = d["a"], d["b"]
        return lambda x: a * x + b
    if d["name"] == "abs":
        return np.abs
    if d["name"] == "square":
        return lambda x: x * x
    raise KeyError(d["name"])


def build(spec, ndim):
    kind = spec["type"]
    if kind == "correlationKernel":
        return st.make_correlation_stencil_from_kernel(_array(spec["kernel"]))
    if kind == "convolutionKernel":
        return st.make_convolution_stencil_from_kernel(_array(spec["kernel"]))
    if kind in ("sum", "avg", "max", "min", "product"):
        return getattr(st, f"{kind}_stencil")(tuple(spec["size"]))
    if kind == "id":
        return st.id_stencil(ndim)
    if kind == "makeStencil":
        taps = spec["taps"]

        def fn(get):
            acc = 0
            for w, d in taps:
                acc = acc + w * get(*d)
            return acc

        return st.make_stencil(tuple(spec["size"]), tuple(spec["center"]), fn)
    if kind in ("correlationTaps", "convolutionTaps"):
        make = (st.make_correlation_stencil if kind == "correlationTaps"
                else st.make_convolution_stencil)
        return make(tuple(spec["size"]), tuple(spec["center"]),
                    [(tuple(d), w) for w, d in spec["taps"]])
    if kind == "const":
        value = spec["value"]
        return st.make_stencil((1,) * ndim, (0,) * ndim, lambda get: value)
    if kind in ("add", "sub", "mul"):
        left, right = build(spec["left"], ndim), build(spec["right"], ndim)
        return {"add": left + right, "sub": left - right, "mul": left * right}[kind]
    if kind == "negate":
        return -build(spec["stencil"], ndim)
    if kind == "abs":
        return abs(build(spec["stencil"], ndim))
    if kind == "rmap":
        return st.rmap_stencil(_fn(spec["fn"]), build(spec["stencil"], ndim))
    if kind == "lmap":
        return st.lmap_stencil(_fn(spec["fn"]), build(spec["stencil"], ndim))
    if kind == "dimap":
        return st.dimap_stencil(_fn(spec["pre"]), _fn(spec["post"]), build(spec["stencil"], ndim))
    raise KeyError(kind)


def windowed(vector, array):
    params = vector["params"]
    stencil = build(params["stencil"], vector["dims"])
    source = params.get("source", vector["op"])
    if source == "mapStencil":
        return stencil, st.map_stencil(_border(params["border"]), stencil, array)
    pad = params["padding"]
    padding = st.Padding(tuple(pad["from_origin"]), tuple(pad["from_bottom"]),
                         _border(pad["border"]))
    return stencil, st.apply_stencil(padding, stencil, array)


def run(vector, dtype=np.float64):
    array = _array(vector["input"]).astype(dtype)
    stencil, w = windowed(vector, array)
    if vector["op"] == "computeWithStride":
        return stencil, st.compute_with_stride(st.Stride(*vector["params"]["stride"]), w)
    return stencil, st.compute(w)


@pytest.mark.parametrize("vector", ALL, ids=[v["id"] for v in ALL])
def test_vector(vector):
    stencil, got = run(vector)
    want = _array(vector["expected"])
    assert stencil.size == tuple(vector["expected_stencil"]["size"])
    assert stencil.center == tuple(vector["expected_stencil"]["center"])
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("engine", ["generated"])
def test_vectors_through_generated_kernels(engine, monkeypatch):
    """A sample of vectors through the stencil-specialised kernels (the rest use the interpreter)."""
    from stencils import _engine

    monkeypatch.setattr(_engine.config, "engine", engine)
    sample = [v for v in ALL if v["category"] in ("edge", "stride", "pooling", "makeStencil")][::9]
    assert sample
    for vector in sample:
        _, got = run(vector)
        np.testing.assert_array_equal(got, _array(vector["expected"]), err_msg=vector["id"])


def test_vectors_in_float32():
    """Integer-valued vectors stay exact in float32 (small integers are exact there too)."""
    for vector in ALL[::7]:
        if vector["params"]["stencil"]["type"] == "avg":  # 1/3 and the like round in float32
            continue
        _, got = run(vector, np.float32)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, _array(vector["expected"]).astype(np.float32),
                                      err_msg=vector["id"])
