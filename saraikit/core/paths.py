"""Where the project keeps models and outputs.

The root is the checkout that holds this package (editable install). Set
``SARAIKIT_ROOT`` to use another folder, or ``SARAIKIT_MODELS``,
``SARAIKIT_OUTPUTS`` and ``SARAIKIT_NOTEBOOKS`` to move one of them (tests
point outputs at a scratch folder this way).
"""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    env = os.environ.get("SARAIKIT_ROOT")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parents[2]


def models_dir() -> Path:
    return Path(os.environ.get("SARAIKIT_MODELS", project_root() / "models"))


def outputs_dir() -> Path:
    return Path(os.environ.get("SARAIKIT_OUTPUTS", project_root() / "outputs"))


def results_db_path() -> Path:
    return outputs_dir() / "results.sqlite"


def notebooks_dir() -> Path:
    return Path(os.environ.get("SARAIKIT_NOTEBOOKS", project_root() / "notebooks"))
