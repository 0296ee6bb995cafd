"""stencils.ndimage.warmup: the common calls' kernels compiled ahead of time, on disk."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from stencils import ndimage as ndi
from stencils.errors import StencilError

# Counts the compiles of the project's own functions during a first uniform_filter call.
FIRST_CALL = textwrap.dedent("""
    import json, numpy as np
    import numba.core.event as event
    from stencils import ndimage as ndi
    compiled = []
    class Listener(event.Listener):
        def on_start(self, e):
            compiled.append(e.data["dispatcher"].py_func.__module__)
        def on_end(self, e):
            pass
    with event.install_listener("numba:compile", Listener()):
        ndi.uniform_filter(np.zeros((256, 256), np.float32), 5)
    print(json.dumps([m for m in compiled if m.startswith("stencils")]))
""")


def _run(code, caches, *args):
    env = dict(os.environ, STENCILS_CACHE_DIR=str(caches / "kernels"),
               NUMBA_CACHE_DIR=str(caches / "numba"))
    env.pop("STENCILS_NUMBA_CACHE", None)
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_a_warmed_call_compiles_nothing_in_a_new_process(tmp_path):
    warmed, fresh = tmp_path / "warmed", tmp_path / "fresh"
    took = _run("from stencils import ndimage as ndi; import json; print(json.dumps("
                "[list(k) for k in ndi.warmup(('float32',), functions=['uniform_filter'], "
                "processes=1)]))", warmed)
    assert json.loads(took.strip().splitlines()[-1]) == [["uniform_filter", "float32"]]
    assert json.loads(_run(FIRST_CALL, warmed).strip().splitlines()[-1]) == []
    assert json.loads(_run(FIRST_CALL, fresh).strip().splitlines()[-1]) != []


def test_in_this_process_and_shares():
    took = ndi.warmup(("float64",), functions=["uniform_filter"], processes=0)
    assert list(took) == [("uniform_filter", "float64")]
    assert took[("uniform_filter", "float64")] >= 0
    from stencils.ndimage._warmup import _shares

    jobs = [(name, "float32") for name in ("maximum_filter", "gaussian_filter", "sobel",
                                           "uniform_filter")]
    shares = _shares(jobs, 2)
    assert sorted(job for share in shares for job in share) == sorted(jobs)
    assert [job[0] for job in shares[0]][0] == "maximum_filter"
    assert [job[0] for job in shares[1]][0] == "gaussian_filter"


@pytest.mark.parametrize("kwargs, param", [({"functions": ["zoom"]}, "functions"),
                                           ({"functions": "sobel"}, "functions"),
                                           ({"processes": -1}, "processes")])
def test_bad_arguments_name_themselves(kwargs, param):
    with pytest.raises(ValueError) as error:
        ndi.warmup(("float32",), **kwargs)
    assert isinstance(error.value, StencilError) and error.value.param == param
