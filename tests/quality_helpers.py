"""Builders shared by the quality-run tests (test_transcribe, test_stt_eval, test_tts_eval, test_quality_records)."""

from __future__ import annotations

import numpy as np

from saraikit.data import datasets
from saraikit.quality.stt_eval import Utterance, load_utterances

RATE = 16000
LIBRIVOX_0880 = "sense_and_sensibility_01_austen_64kb-0880"


def tone(seconds: float, amplitude: float = 0.3, frequency: float = 220.0, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    wobble = np.random.default_rng(seed).standard_normal(t.size) * 0.01
    return (amplitude * np.sin(2 * np.pi * frequency * t) + wobble).astype(np.float32)


def utterance(uid: str, reference: str = "uno dos tres", seconds: float = 1.0, language: str = "es", **kw) -> Utterance:
    return Utterance(uid, "test", language, reference, tone(seconds, **kw))


def librivox_0880() -> list[Utterance]:
    """The LibriVox clip the integration tests transcribe: "He was not an ill-disposed young man"."""
    clips = [c for c in datasets.load("librivox_en").clips if c.id == LIBRIVOX_0880]
    return load_utterances(clips, "librivox_en")
