"""Progress bars that show where a person is watching, and never in a report.

- In JupyterLab: a widget bar (``tqdm.auto``).
- In a batch run (the workbook sets ``SARAIKIT_BATCH=1`` for its kernels): a
  plain text bar on the *terminal* that started the workbook
  (``sys.__stderr__``, the kernel process's real stderr), not on the cell's
  stderr, which papermill would save into the executed notebook and its HTML.
  The workbook also sets ``TQDM_DISABLE=1`` so third-party bars (ONNX Runtime's
  calibration, faster-whisper) stay out of the reports; bars made here pass
  ``disable`` explicitly and are not affected.
"""

from __future__ import annotations

import os
import sys


def progress(iterable=None, **kwargs):
    if os.environ.get("SARAIKIT_BATCH") == "1":
        from tqdm.std import tqdm

        kwargs.setdefault("mininterval", 5.0)
        kwargs.setdefault("file", sys.__stderr__)
    else:
        from tqdm.auto import tqdm
    kwargs["disable"] = kwargs.get("disable") or False
    return tqdm(iterable, **kwargs)
