"""The figure machinery every gdchaos figure shares: pyplot for the caller, pyplot-free Agg for files.

A figure function draws on :func:`subplots`. Called directly, it loads pyplot on first
use and returns a pyplot figure under *your* backend (``plt.show()``, notebooks' inline
display and ``fig.savefig`` work as usual). Inside :func:`for_files` (how every CLI and
``save_*`` function draws) it returns a bare ``matplotlib.figure.Figure`` on an Agg canvas:
no GUI, no figure registry, no global state, whatever the backend; :func:`write_figures`
saves either kind. Importing this module loads no matplotlib.

Example:
    >>> import matplotlib, tempfile
    >>> backend = matplotlib.get_backend()
    >>> with for_files():
    ...     fig, ax = subplots(figsize=(2, 2))
    >>> fig.canvas.manager is None, type(fig.canvas).__name__
    (True, 'FigureCanvasAgg')
    >>> [p.name for p in write_figures({"a.png": fig}, tempfile.mkdtemp())]
    ['a.png']
    >>> matplotlib.get_backend() == backend
    True
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["agg_figure", "agg_subplots", "eta_axis", "figure", "for_files", "subplots", "write_figures"]

_FOR_FILES = contextvars.ContextVar("gdchaos_figures_for_files", default=False)
_GRID_KEYS = frozenset({"sharex", "sharey", "squeeze", "width_ratios", "height_ratios", "subplot_kw", "gridspec_kw"})


@contextlib.contextmanager
def for_files() -> Iterator[None]:
    """Within this block :func:`subplots` draws pyplot-free Agg figures (figures only written to files)."""
    token = _FOR_FILES.set(True)
    try:
        yield
    finally:
        _FOR_FILES.reset(token)


def agg_figure(**kwargs: Any) -> Figure:
    """``plt.figure`` without pyplot: a bare ``Figure(**kwargs)`` on an Agg canvas (no backend, no GUI, no registry)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def agg_subplots(nrows: int = 1, ncols: int = 1, **kwargs: Any) -> tuple[Figure, Any]:
    """``plt.subplots`` without pyplot: a bare ``Figure`` on an Agg canvas (no backend, no GUI, no registry).

    ``kwargs`` are ``Figure``'s (``figsize``, ``layout``, ...) and ``Figure.subplots``'s (``sharex``, ``squeeze``, ...).
    """
    grid = {k: kwargs.pop(k) for k in list(kwargs) if k in _GRID_KEYS}
    fig = agg_figure(**kwargs)
    return fig, fig.subplots(nrows, ncols, **grid)


def figure(**kwargs: Any) -> Figure:
    """An empty figure (for ``subfigures``, ``add_gridspec``, ...): pyplot's for the caller, an Agg one inside :func:`for_files`."""
    if _FOR_FILES.get():
        return agg_figure(**kwargs)
    import matplotlib.pyplot as plt

    return plt.figure(**kwargs)


def subplots(nrows: int = 1, ncols: int = 1, **kwargs: Any) -> tuple[Figure, Any]:
    """``(fig, axes)``: a pyplot figure (pyplot imported now) for the caller, an Agg one inside :func:`for_files`."""
    if _FOR_FILES.get():
        return agg_subplots(nrows, ncols, **kwargs)
    import matplotlib.pyplot as plt

    return plt.subplots(nrows, ncols, **kwargs)


def eta_axis(ax: Axes, eta: Any) -> None:
    """Label ``ax``'s x axis as the learning rate η, on a log scale when the grid spans more than a factor 100."""
    eta = np.asarray(eta)
    if eta.size > 1 and eta.min() > 0 and eta.max() / eta.min() > 100:
        ax.set_xscale("log")
    ax.set_xlabel("learning rate η")


def write_figures(figures: Mapping[str, Figure], directory: str | Path, dpi: int = 120) -> list[Path]:
    """Save each ``{file name: Figure}`` into ``directory`` (created), close it, return the paths.

    A pyplot figure is closed through pyplot; a pyplot-free one needs no closing.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figures.items():
        fig.savefig(directory / name, dpi=dpi)
        if getattr(fig.canvas, "manager", None) is not None:  # registered with pyplot, so pyplot is loaded
            import matplotlib.pyplot as plt

            plt.close(fig)
        paths.append(directory / name)
    return paths
