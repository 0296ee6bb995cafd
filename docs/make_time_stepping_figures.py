"""Draw the pictures of docs/time-stepping.md: ``python docs/make_time_stepping_figures.py``.

Writes into ``docs/images/``:

- ``time-stepping-life.png``: Conway's Game of Life on a 64x64 torus (Wrap), a random
  board after 0, 1, 10 and 100 steps;
- ``time-stepping-heat.png``: heat spreading from two hot squares on a plate whose edge
  is held at 0 (Fill 0), after 0, 50, 200 and 1000 steps of `stencils.iterate`.

matplotlib's Figure API (no display).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
IMAGES = HERE / "images"
sys.path.insert(0, str(HERE.parent))

import stencils as st  # noqa: E402


def life_stencil():
    def rule(g):
        n = sum(g(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1) if (i, j) != (0, 0))
        return np.where((n == 3) | ((g(0, 0) != 0) & (n == 2)), 1.0, 0.0)
    return st.make_stencil((3, 3), (1, 1), rule)


def heat_stencil(alpha=0.2):
    return st.make_stencil((3, 3), (1, 1), lambda g: g(0, 0) + alpha * (
        g(-1, 0) + g(1, 0) + g(0, -1) + g(0, 1) - 4 * g(0, 0)))


def _row(states, titles, cmap, path, suptitle):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2.4 * len(states), 2.8))
    axes = fig.subplots(1, len(states))
    for ax, state, title in zip(axes, states, titles):
        ax.imshow(state, cmap=cmap, interpolation="nearest", vmin=0, vmax=1)
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(suptitle, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def life_figure(path):
    board = (np.random.default_rng(3).random((64, 64)) < 0.35).astype(np.uint8)
    steps = (0, 1, 10, 100)
    states = [st.iterate(n, life_stencil(), st.Wrap, board) for n in steps]
    _row(states, [f"step {n}" for n in steps], "binary", path,
         "Game of Life, st.iterate(n, life, st.Wrap, board)")


def heat_figure(path):
    plate = np.zeros((96, 96))
    plate[20:36, 20:36] = 1.0
    plate[55:80, 60:72] = 1.0
    steps = (0, 50, 200, 1000)
    states = [st.iterate(n, heat_stencil(), st.Fill(0), plate) for n in steps]
    _row(states, [f"step {n}" for n in steps], "inferno", path,
         "Heat equation, st.iterate(n, heat, st.Fill(0), plate)")


def main():
    IMAGES.mkdir(exist_ok=True)
    life_figure(IMAGES / "time-stepping-life.png")
    heat_figure(IMAGES / "time-stepping-heat.png")
    print("wrote", IMAGES / "time-stepping-life.png", IMAGES / "time-stepping-heat.png")


if __name__ == "__main__":
    main()
