"""The candidate table of a quantization run: latency, fidelity, file size and WER of every row, side by side.

Decisions
---------
- One row per (model, candidate) of the latency frame; fidelity, file size
  and the worst ΔWER are joined onto it, never the other way round, so a
  candidate that was not timed has no row.
- The baseline's size is its file on disk (size ratio 1, length difference
  0); reference and control rows have no file size of their own.
- ``rejected_before_wer`` is :func:`recommend.prescreen` per model, with the
  budget of the model's kind: the caller skips transcribing those rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import pandas as pd

from saraikit.experiments.quantize.fidelity import OutputComparison
from saraikit.experiments.quantize.recommend import QualityBudget, prescreen

FIDELITY_COLUMNS = ["model", "candidate", "n_feeds", "cosine", "cosine_worst", "snr_db", "snr_db_worst",
                    "max_abs_error", "length_diff", "reference_deterministic"]


def fidelity_frame(comparisons: Mapping[str, Mapping[str, OutputComparison]]) -> pd.DataFrame:
    """One row per (model, candidate) from ``{model: {candidate: OutputComparison}}``."""
    rows = [{"model": model, "candidate": candidate, "n_feeds": c.n_feeds, "cosine": c.cosine_mean,
             "cosine_worst": c.cosine_worst, "snr_db": c.snr_db_mean, "snr_db_worst": c.snr_db_worst,
             "max_abs_error": c.max_abs_error, "length_diff": c.length_diff_max,
             "reference_deterministic": c.reference_deterministic}
            for model, by_candidate in comparisons.items() for candidate, c in by_candidate.items()]
    return pd.DataFrame(rows, columns=FIDELITY_COLUMNS)


def candidate_table(latency: pd.DataFrame, fidelity: pd.DataFrame, quant_frames: Mapping[str, pd.DataFrame],
                    budget_of: Mapping[str, QualityBudget]) -> pd.DataFrame:
    """Latency rows joined with fidelity, file sizes (``quantize_all`` frames per model) and the prescreen."""
    table = latency.merge(fidelity, on=["model", "candidate"], how="left")
    sizes = {(model, r.name): (r.bytes, r.size_ratio) for model, f in quant_frames.items() for r in f.itertuples()}
    table["bytes"] = [sizes.get((r.model, r.candidate), (None, None))[0] for r in table.itertuples()]
    table["size_ratio"] = [sizes.get((r.model, r.candidate), (None, None))[1] for r in table.itertuples()]
    is_base = table["role"] == "baseline"
    table.loc[is_base, "bytes"] = [Path(p).stat().st_size for p in table.loc[is_base, "path"]]
    table.loc[is_base, ["size_ratio", "length_diff"]] = [1.0, 0]
    table["rejected_before_wer"] = pd.concat([prescreen(rows, budget_of[model])
                                             for model, rows in table.groupby("model")])
    return table


def with_worst_delta(table: pd.DataFrame, wer: pd.DataFrame) -> pd.DataFrame:
    """``table`` with ``max_delta_wer_pp``: each candidate's largest ΔWER over its datasets (NaN if none)."""
    worst = wer.groupby(["model", "candidate"])["delta_wer_pp"].max().rename("max_delta_wer_pp")
    return table.drop(columns="max_delta_wer_pp", errors="ignore").merge(worst, on=["model", "candidate"], how="left")
