"""The figures of a quality run (notebook 06): error rates per system, WER against SNR, predicted MOS.

Decisions:

- Every point carries its 95% bootstrap CI and every panel says its n.
- WER against SNR is cut at :data:`WER_AXIS_MAX` percent: runaway insertions
  can push WER far above 100%, and a point above the cut is written beside
  the top of the axis instead of stretching it. The x axis (SNR) runs from
  clean to loud noise; clean is a dotted line per system.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from saraikit.quality.tts_eval import MOS_LABEL

WER_AXIS_MAX = 150  # percent
MOS_KEYS = {"p808_mos": "P.808", "ovrl": "P.835 OVRL"}


def wer_by_system_figure(wer_table: pd.DataFrame, target: str):
    """WER and CER with CIs per system, one panel per dataset."""
    datasets = list(dict.fromkeys(wer_table["dataset"]))
    n_systems = wer_table["system"].nunique()
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 0.5 * n_systems + 1.6), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        rows = wer_table[wer_table["dataset"] == dataset]
        for column, marker, name in (("wer_%", "o", "WER"), ("cer_%", "s", "CER")):
            low, high = column.replace("%", "ci_low"), column.replace("%", "ci_high")
            ax.errorbar(rows[column], rows["system"], xerr=[rows[column] - rows[low], rows[high] - rows[column]],
                        fmt=marker, capsize=3, label=name)
        ax.set_xlabel("% (normalized), 95% bootstrap CI")
        ax.set_title(f"{dataset} (n = {int(rows['n_utterances'].max())} utterances)")
        ax.invert_yaxis()
    axes[0, 0].legend()
    fig.suptitle(f"STT error rates on real speech, greedy decoding ({target})")
    fig.tight_layout()
    return fig


def _noise_curves(ax, rows: pd.DataFrame, palette: dict) -> None:
    for (label, noise), line in rows.groupby(["system", "noise"], sort=False):
        line = line.sort_values("snr_db")
        wer, low, high = (line[c].clip(upper=WER_AXIS_MAX) for c in ("wer_%", "wer_ci_low", "wer_ci_high"))
        ax.plot(line["snr_db"], wer, marker="o", ls="-" if noise == "white" else "--", color=palette[label],
                label=f"{label}, {noise}")
        ax.fill_between(line["snr_db"], low, high, color=palette[label], alpha=0.12)
        for _, point in line[line["wer_%"] > WER_AXIS_MAX].iterrows():
            ax.annotate(f"{point['wer_%']:.0f}%", (point["snr_db"], WER_AXIS_MAX), color=palette[label],
                        fontsize=8, xytext=(4, -10), textcoords="offset points")


def wer_vs_snr_figure(noise_table: pd.DataFrame, systems: Sequence[str], target: str):
    """WER against SNR per set (solid: white, dashed: babble), clean WER dotted, one colour per system."""
    noisy = noise_table[noise_table["noise"] != "clean"]
    grid = sns.FacetGrid(noisy, col="set", height=3.6, aspect=1.2, sharey=True)
    palette = dict(zip(systems, sns.color_palette(n_colors=len(systems))))
    for ax, (name, rows) in zip(grid.axes.flat, noisy.groupby("set", sort=False)):
        _noise_curves(ax, rows, palette)
        clean = noise_table[(noise_table["noise"] == "clean") & (noise_table["set"] == name)]
        for _, row in clean.iterrows():
            ax.axhline(row["wer_%"], color=palette[row["system"]], ls=":", lw=1)
        ax.set_title(f"{name}, n = {int(rows['n_utterances'].max())} clips")
        ax.set_xlabel("SNR (dB)")
    first = grid.axes.flat[0]
    first.invert_xaxis()  # the x axis is shared: invert it once
    first.set_ylim(0, WER_AXIS_MAX)
    first.set_ylabel(f"WER % (normalized), 95% CI; cut at {WER_AXIS_MAX}%")
    handles = {label: handle for ax in grid.axes.flat for handle, label in zip(*ax.get_legend_handles_labels())}
    grid.figure.legend(handles.values(), handles.keys(), loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2,
                       fontsize=8)
    grid.figure.suptitle(f"WER vs SNR (solid: white, dashed: babble, dotted: clean) ({target})", y=1.03)
    return grid.figure


def mos_figure(mos_table: pd.DataFrame, target: str):
    """Predicted MOS (P.808 and P.835 OVRL) per group with its CI over clips, on the 1-5 scale."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.45 * len(mos_table) + 1.6), sharey=True)
    for ax, (key, name) in zip(axes, MOS_KEYS.items()):
        ax.errorbar(mos_table[key], mos_table["group"], fmt="o", capsize=3,
                    xerr=[mos_table[key] - mos_table[f"{key}_ci_low"], mos_table[f"{key}_ci_high"] - mos_table[key]])
        ax.set_xlim(1, 5)
        ax.set_xlabel(f"{name} (1-5), 95% CI over clips")
    axes[0].invert_yaxis()
    axes[0].set_yticks(np.arange(len(mos_table)),
                       [f"{g} (n={n})" for g, n in zip(mos_table["group"], mos_table["n_clips"])])
    fig.suptitle(f"{MOS_LABEL} ({target})")
    fig.tight_layout()
    return fig
