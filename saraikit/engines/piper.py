"""Text to speech: a Piper voice on our own ONNX Runtime session.

Decisions:

- The session is built from an OrtConfig, so tuned session options apply.
- Text -> phonemes -> ids reuse piper's own code (``PiperVoice.phonemize`` /
  ``phonemes_to_ids`` with the voice's ``.onnx.json``), so the ids are
  exactly what piper would feed.
- Audio is peak-normalized like piper's default ``SynthesisConfig``.
- Sentences are split where piper's espeak phonemizer splits them; the stream
  yields one audio part per sentence.
- piper is imported when a voice is built, not with this module.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from saraikit.core.errors import DataError, ModelError
from saraikit.data.audio import Audio
from saraikit.engines.ort import OrtConfig, build_ort_session
from saraikit.engines.stage import Stage, check_text, join_audio


def _piper_config(model_path: Path, config_path: Path | None):
    from piper.config import PiperConfig

    config_path = config_path or model_path.with_name(model_path.name + ".json")
    if not config_path.is_file():
        raise ModelError(f"Piper voice {model_path}: its config {config_path} is missing")
    try:
        return PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
    except (ValueError, KeyError) as error:
        raise ModelError(f"Piper voice config {config_path} is not usable: {error!r}") from error


class PiperTTS(Stage):
    """A Piper voice run on our own ONNX Runtime session; float32 audio at the voice's rate."""

    kind = "tts"
    SETTINGS = ("length_scale", "noise_scale", "noise_w", "normalize")

    def __init__(
        self,
        model_path: str | Path,
        ort_config: OrtConfig | None = None,
        config_path: str | Path | None = None,
        length_scale: float | None = None,
        noise_scale: float | None = None,
        noise_w: float | None = None,
        normalize: bool = True,
        name: str | None = None,
    ):
        from piper.voice import PiperVoice

        super().__init__(name or Path(model_path).stem)
        self.model_path = Path(model_path)
        self.ort_config = ort_config or OrtConfig()
        self.voice_config = _piper_config(self.model_path, Path(config_path) if config_path else None)
        self.sample_rate = self.voice_config.sample_rate
        # Model input order: noise_scale, length_scale, noise_w (piper's phoneme_ids_to_audio).
        self.scales = np.array([
            self.voice_config.noise_scale if noise_scale is None else noise_scale,
            self.voice_config.length_scale if length_scale is None else length_scale,
            self.voice_config.noise_w_scale if noise_w is None else noise_w,
        ], dtype=np.float32)
        self.normalize = normalize
        # A PiperVoice without a session is piper's text -> phonemes -> ids front end; the session is ours.
        self._frontend = PiperVoice(session=None, config=self.voice_config)
        self.session = None

    def _load(self) -> None:
        self.session = build_ort_session(self.model_path, self.ort_config)

    def sentence_phoneme_ids(self, text: str) -> list[np.ndarray]:
        """int64 phoneme ids per sentence, as piper feeds them (BOS, PAD between phonemes, EOS)."""
        sentences = self._frontend.phonemize(text)
        return [np.array(self._frontend.phonemes_to_ids(p), dtype=np.int64) for p in sentences if p]

    def phoneme_ids(self, text: str) -> np.ndarray:
        """int64 phoneme ids of a one-sentence ``text`` (DataError when it has more or none)."""
        sentences = self.sentence_phoneme_ids(text)
        if len(sentences) != 1:
            raise DataError(
                f"tts {self.name!r}: phoneme_ids needs exactly one sentence, {text!r} phonemizes to "
                f"{len(sentences)}; use sentence_phoneme_ids"
            )
        return sentences[0]

    def feeds(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        """The model inputs for one sentence of phoneme ids."""
        ids = np.asarray(ids, dtype=np.int64).reshape(1, -1)
        feeds = {"input": ids, "input_lengths": np.array([ids.shape[1]], dtype=np.int64), "scales": self.scales}
        if self.voice_config.num_speakers > 1:
            feeds["sid"] = np.array([self.voice_config.default_speaker_id], dtype=np.int64)
        return feeds

    def synthesize_ids(self, ids: np.ndarray) -> np.ndarray:
        """float32 audio in [-1, 1] for one sentence of phoneme ids."""
        audio = self.session.run(None, self.feeds(ids))[0].reshape(-1).astype(np.float32)
        if self.normalize:
            peak = float(np.max(np.abs(audio))) if audio.size else 0.0
            audio = audio / peak if peak > 1e-8 else np.zeros_like(audio)
        return np.clip(audio, -1.0, 1.0)

    def _check_input(self, text):
        return check_text(text, f"tts {self.name!r}")

    def _produce(self, text, mark, meta):
        sentences = self.sentence_phoneme_ids(text)
        mark("phonemized")
        meta["sentences"] = len(sentences)
        meta["phoneme_ids"] = sum(len(ids) for ids in sentences)
        if not sentences:
            meta["reason"] = "no phonemes in the text"
        for ids in sentences:
            yield Audio(self.synthesize_ids(ids), self.sample_rate)

    def _join(self, parts, meta):
        return join_audio(parts, self.sample_rate)

    def warmup_input(self):
        return "Hello."
