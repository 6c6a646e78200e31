"""Progress bars that read well in both places notebooks run.

In JupyterLab a widget bar (``tqdm.auto``); in batch runs (papermill, where
the workbook sets ``SARAIKIT_BATCH=1``) a plain text bar, because a widget
saved without its state shows as an empty box in the HTML report.
"""

from __future__ import annotations

import os


def progress(iterable=None, **kwargs):
    if os.environ.get("SARAIKIT_BATCH") == "1":
        from tqdm.std import tqdm

        kwargs.setdefault("mininterval", 5.0)
    else:
        from tqdm.auto import tqdm
    return tqdm(iterable, **kwargs)
