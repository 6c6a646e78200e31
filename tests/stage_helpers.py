"""What the stage tests share: the LibriVox clip, its reference, event checks, and the loaded Whisper tiny.en."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from saraikit.data.audio import Audio, read_audio
from saraikit.engines.ct2 import Ct2WhisperConfig
from saraikit.engines.stage import event_problems
from saraikit.engines.whisper import FasterWhisperSTT

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0880.wav")
LIBRIVOX_REFERENCE = "he was not an ill disposed young man"


def words(text: str) -> str:
    """Lowercase words separated by single spaces (hyphens and punctuation dropped)."""
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


def assert_well_formed(result, stage_name: str) -> None:
    assert event_problems(result.events) == []
    assert {event.stage for event in result.events} == {stage_name}
    assert 0 <= result.meta["busy_s"] <= result.duration_s


@pytest.fixture(scope="module")
def librivox() -> Audio:
    return read_audio(LIBRIVOX)


@pytest.fixture(scope="module")
def stt_tiny(model_paths) -> FasterWhisperSTT:
    stage = FasterWhisperSTT(model_paths["whisper-tiny.en"], Ct2WhisperConfig(compute_type="int8", cpu_threads=1))
    stage.load()
    return stage
