"""Key figures saved by the notebooks, so the report can show them without recomputing.

A notebook calls ``save_figure(fig, "grid_heatmap", target, run_id)``; the PNG
lands in ``outputs/<target>/runs/<run id>/figures/`` and the report notebook
embeds every PNG of its run (``list_figures``), in notebook order.
"""

from __future__ import annotations

from pathlib import Path

from saraikit.core import paths
from saraikit.core.io import atomic_path


def figures_dir(target: str, run_id: str) -> Path:
    return paths.outputs_dir() / target / "runs" / run_id / "figures"


def save_figure(fig, name: str, target: str, run_id: str, dpi: int = 110) -> Path:
    path = figures_dir(target, run_id) / f"{name}.png"
    with atomic_path(path, suffix=".png") as temporary:
        fig.savefig(temporary, dpi=dpi, bbox_inches="tight")
    return path


def list_figures(target: str, run_id: str) -> list[Path]:
    folder = figures_dir(target, run_id)
    return sorted(folder.glob("*.png")) if folder.exists() else []
