"""Draw every picture in docs/ from the package itself: ``python docs/make_figures.py``.

Writes into ``docs/images/``:

- ``border-modes.png``: the five border rules on the row 1 2 3 4;
- ``blur.png``: an MNIST digit and a generated test card — original, identity, box blur
  (once and five times), Sobel edges;
- ``pooling.png``: max pooling a digit, 28x28 -> 14x14 -> 7x7;
- ``training-curves.png`` and ``conv1-filters.png``: from the newest checkpoint under
  ``runs/`` (or ``--run PATH``); without one, a short run is trained first
  (``python -m convnet.train --epochs 3 --train-limit 20000``, a few minutes of CPU);
- with ``--benchmarks DIR`` (the ``--out`` of ``python -m benchmarks``): copies its
  ``ratios.png`` to ``benchmark-ratios.png`` and its ``results.md`` into
  ``docs/performance.md`` between the ``<!-- results -->`` markers.

Images: MNIST is by Yann LeCun, Corinna Cortes and Christopher J. C. Burges, CC BY-SA 3.0
(shipped in ``convnet/data/mnist/``); the test card is drawn here with Pillow
(BSD-3-Clause, as the project).  matplotlib's Figure API (no display) and Pillow.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
IMAGES = HERE / "images"
sys.path.insert(0, str(ROOT))

import stencils as st  # noqa: E402
from convnet import load_checkpoint, read_idx  # noqa: E402
from convnet.data import BUNDLED_MNIST  # noqa: E402

BORDERS = [("Fill(0)", st.Fill(0)), ("Wrap", st.Wrap), ("Edge", st.Edge),
           ("Reflect", st.Reflect), ("Continue", st.Continue)]
SCIPY_NAMES = {"Fill(0)": "'constant'", "Wrap": "'wrap'", "Edge": "'nearest'",
               "Reflect": "'reflect'", "Continue": "'mirror'"}


def Figure(**kwargs):
    # matplotlib imported when a figure is drawn, so importing this file needs none.
    from matplotlib.figure import Figure as _Figure
    return _Figure(**kwargs)


def border_modes(path):
    row = np.array([1.0, 2, 3, 4])
    fig = Figure(figsize=(8, 3.6), layout="constrained")
    ax = fig.subplots()
    for r, (name, border) in enumerate(BORDERS):
        values = st.compute(st.apply_stencil(st.Padding(3, 3, border), st.id_stencil(1), row))
        for c, v in enumerate(values):
            inside = 3 <= c < 7
            ax.add_patch(_cell(c, -r, "#9ecae1" if inside else "#f0f0f0"))
            ax.text(c + 0.5, -r + 0.5, f"{v:g}", ha="center", va="center",
                    fontsize=12, fontweight="bold" if inside else "normal",
                    color="black" if inside else "#555555")
        ax.text(-0.3, -r + 0.5, f"{name}  ({SCIPY_NAMES[name]})", ha="right", va="center",
                fontsize=10, family="monospace")
    ax.axvline(3, color="black", lw=2)
    ax.axvline(7, color="black", lw=2)
    ax.set_xlim(-5.2, 10.2)
    ax.set_ylim(-len(BORDERS) + 1, 1.2)
    ax.text(5, 1.05, "the array", ha="center", va="bottom", fontsize=10)
    ax.text(1.5, 1.05, "read before it", ha="center", va="bottom", fontsize=9, color="#555555")
    ax.text(8.5, 1.05, "read after it", ha="center", va="bottom", fontsize=9, color="#555555")
    ax.set_axis_off()
    ax.set_title("Border rules: what a stencil reads beyond [1 2 3 4]  (massiv name, scipy mode)")
    fig.savefig(path, dpi=100)


def _cell(x, y, colour):
    from matplotlib.patches import Rectangle
    return Rectangle((x, y), 1, 1, facecolor=colour, edgecolor="white", lw=2)


def draw_test_card(n=192):
    """A procedurally drawn test card (shapes, lines, text, a gradient), float64 in [0, 1]."""
    from PIL import Image, ImageDraw

    img = Image.new("L", (n, n), 0)
    d = ImageDraw.Draw(img)
    for i in range(n):                                   # a horizontal gradient at the top
        d.line([(i, 0), (i, n // 8)], fill=int(255 * i / (n - 1)))
    d.ellipse([n * 0.08, n * 0.2, n * 0.48, n * 0.6], outline=255, width=3)
    d.rectangle([n * 0.56, n * 0.22, n * 0.92, n * 0.58], fill=180)
    d.polygon([(n * 0.1, n * 0.92), (n * 0.3, n * 0.66), (n * 0.5, n * 0.92)], fill=110)
    for k in range(6):                                   # lines of growing spacing
        x = int(n * 0.58 + k * (k + 3))
        d.line([(x, n * 0.66), (x, n * 0.94)], fill=255, width=1)
    d.text((n * 0.14, n * 0.34), "stencil", fill=220)
    return np.asarray(img, dtype=np.float64) / 255


def _digit(index=0):
    return read_idx(BUNDLED_MNIST / "t10k-images-idx3-ubyte.gz")[index] / 255


def _sobel():
    def sobel(g):
        gx = g(-1, 1) + 2 * g(0, 1) + g(1, 1) - g(-1, -1) - 2 * g(0, -1) - g(1, -1)
        gy = g(1, -1) + 2 * g(1, 0) + g(1, 1) - g(-1, -1) - 2 * g(-1, 0) - g(-1, 1)
        return np.sqrt(gx * gx + gy * gy)
    return st.make_stencil((3, 3), (1, 1), sobel)


def blur(path):
    identity = st.make_stencil((3, 3), (1, 1), lambda get: get(0, 0))
    box = st.make_stencil((3, 3), (1, 1), lambda get: sum(
        get(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)) / 9)
    sobel = _sobel()
    fig = Figure(figsize=(11, 4.9), layout="constrained")
    axes = fig.subplots(2, 5)
    for row, (label, image) in enumerate([("MNIST digit (CC BY-SA 3.0)", _digit()),
                                          ("generated test card", draw_test_card())]):
        five = image
        for _ in range(5):
            five = st.compute(st.map_stencil(st.Edge, box, five))
        panels = [("original", image),
                  ("identity, Edge", st.compute(st.map_stencil(st.Edge, identity, image))),
                  ("box blur, Edge", st.compute(st.map_stencil(st.Edge, box, image))),
                  ("box blur x5", five),
                  ("Sobel magnitude", st.compute(st.map_stencil(st.Edge, sobel, image)))]
        for ax, (title, data) in zip(axes[row], panels):
            ax.imshow(data, cmap="gray", interpolation="nearest",
                      vmin=0, vmax=None if title.startswith("Sobel") else 1)
            ax.set_title(title, fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row][0].set_ylabel(label, fontsize=9)
    fig.savefig(path, dpi=100)


def pooling(path):
    x = _digit()[None, None]
    pool = st.max_stencil((1, 1, 2, 2))
    stages = [x]
    for _ in range(2):
        stages.append(st.compute_with_stride(st.Stride(1, 1, 2, 2),
                                             st.apply_stencil(st.no_padding, pool, stages[-1])))
    fig = Figure(figsize=(8, 3), layout="constrained")
    for ax, s in zip(fig.subplots(1, 3), stages):
        ax.imshow(s[0, 0], cmap="gray", interpolation="nearest", vmin=0, vmax=1)
        ax.set_title(f"{s.shape[2]}x{s.shape[3]}")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("2x2 max pooling = a max stencil computed with Stride(1, 1, 2, 2)")
    fig.savefig(path, dpi=100)


def _find_run(run):
    if run is not None:
        p = Path(run)
        return p if p.is_file() else p / "checkpoint.npz"
    found = sorted((ROOT / "runs").glob("*/checkpoint.npz"), key=lambda p: p.stat().st_mtime)
    found = [p for p in found if len(load_checkpoint(p)["meta"].get("metrics", [])) >= 2]
    return found[-1] if found else None


def training(curves_path, filters_path, run=None):
    from convnet.plotting import plot_filters, plot_training_curves

    checkpoint = _find_run(run)
    tmp = None
    if checkpoint is None:
        tmp = tempfile.mkdtemp()
        print("no run with 2+ epochs under runs/: training 3 epochs on 20,000 images ...",
              flush=True)
        subprocess.run([sys.executable, "-m", "convnet.train", "--epochs", "3",
                        "--train-limit", "20000", "--no-progress", "--out", tmp],
                       check=True, cwd=ROOT)
        checkpoint = Path(tmp) / "checkpoint.npz"
    data = load_checkpoint(checkpoint)
    metrics = data["meta"]["metrics"]
    plot_training_curves(metrics, curves_path)
    plot_filters(data["model"]["conv1.weight"], filters_path,
                 title=f"conv1 filters after {len(metrics)} epoch(s)")
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)
    return checkpoint, metrics


def benchmarks(results_dir):
    results_dir = Path(results_dir)
    shutil.copyfile(results_dir / "ratios.png", IMAGES / "benchmark-ratios.png")
    table = (results_dir / "results.md").read_text().strip()
    # Its headings go two levels down, under this page's "Results".
    table = "\n".join("##" + line if line.startswith("#") else line
                      for line in table.splitlines())
    page = HERE / "performance.md"
    text = page.read_text()
    start, end = "<!-- results -->", "<!-- /results -->"
    before, rest = text.split(start, 1)
    _, after = rest.split(end, 1)
    page.write_text(f"{before}{start}\n\n{table}\n\n{end}{after}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="checkpoint (or run folder) for the training figures")
    parser.add_argument("--benchmarks", metavar="DIR",
                        help="also take the benchmark table and plot from DIR")
    parser.add_argument("--skip-training", action="store_true",
                        help="leave training-curves.png and conv1-filters.png as they are")
    args = parser.parse_args(argv)
    IMAGES.mkdir(exist_ok=True)
    border_modes(IMAGES / "border-modes.png")
    blur(IMAGES / "blur.png")
    pooling(IMAGES / "pooling.png")
    if not args.skip_training:
        checkpoint, metrics = training(IMAGES / "training-curves.png",
                                       IMAGES / "conv1-filters.png", args.run)
        print(f"training figures from {checkpoint} ({len(metrics)} epochs)")
    if args.benchmarks:
        benchmarks(args.benchmarks)
    print(f"wrote {', '.join(sorted(p.name for p in IMAGES.glob('*.png')))} in {IMAGES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
