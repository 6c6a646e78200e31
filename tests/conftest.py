"""Shared fixtures.

Two layers run under the one test command: fast unit tests, and tests marked
``integration`` that use the real default models (provisioned from installed
packages) and the real speech data (Debian packages).
"""

from __future__ import annotations

import os

import pytest

from saraikit.core import paths
from saraikit.models import catalog


@pytest.fixture(scope="session")
def provisioned() -> dict[str, catalog.ManifestEntry]:
    """The default models, provisioned into the project's models/ (idempotent, fast when done)."""
    return catalog.provision()


@pytest.fixture(scope="session")
def model_paths(provisioned) -> dict:
    """name -> absolute path (file for ONNX/GGUF, folder for CTranslate2)."""
    root = paths.models_dir()
    return {name: root / entry.path for name, entry in provisioned.items()}


@pytest.fixture()
def tmp_store(tmp_path):
    from saraikit.core.store import ResultsStore

    return ResultsStore(tmp_path / "results.sqlite")


@pytest.fixture(autouse=True, scope="session")
def _quiet_threads():
    # Keep BLAS/OpenMP pools small in tests on a 2-core machine.
    os.environ.setdefault("OMP_NUM_THREADS", "2")
