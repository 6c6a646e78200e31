"""Text to speech baseline: the espeak-ng command line.

Decisions:

- One espeak-ng process per sentence, text on stdin (so text starting with
  '-' is safe), WAV on stdout; sentences are cut with
  :func:`saraikit.data.sentences.split_sentences`.
- ``load()`` finds the executable and speaks one letter, so a missing command
  or an unknown voice fails at load, not inside a measured run.
"""

from __future__ import annotations

import io
import shutil
import subprocess

import soundfile as sf

from saraikit.core.errors import ConfigError, ModelError
from saraikit.data.audio import Audio
from saraikit.data.sentences import split_sentences
from saraikit.engines.stage import Stage, check_text, join_audio

ESPEAK_HINT = "install the Debian package espeak-ng (apt-get install espeak-ng)"


class EspeakTTS(Stage):
    """The espeak-ng command line as a baseline voice; one process per sentence."""

    kind = "tts"
    SETTINGS = ("voice", "rate")

    def __init__(self, voice: str = "en", rate: int = 175, executable: str = "espeak-ng", name: str | None = None):
        super().__init__(name or f"espeak-ng-{voice}")
        if not isinstance(rate, int) or not 80 <= rate <= 450:
            raise ConfigError(f"EspeakTTS.rate must be an int in 80..450 words per minute, got {rate!r}")
        self.voice = voice
        self.rate = rate
        self.executable = executable
        self.path: str | None = None

    def _load(self) -> None:
        self.path = shutil.which(self.executable)
        if self.path is None:
            raise ModelError(f"tts {self.name!r}: the {self.executable!r} command was not found; {ESPEAK_HINT}")
        self.synthesize("a")  # proves the voice exists

    def synthesize(self, text: str) -> Audio:
        """float32 audio for ``text`` (read from stdin, so text starting with '-' is safe)."""
        command = [self.path or self.executable, "-v", self.voice, "-s", str(self.rate), "--stdout", "--stdin"]
        try:
            done = subprocess.run(command, input=text.encode("utf-8"), capture_output=True, timeout=120)
        except FileNotFoundError:
            raise ModelError(f"tts {self.name!r}: {self.executable!r} was not found; {ESPEAK_HINT}") from None
        if done.returncode != 0 or not done.stdout:
            message = done.stderr.decode("utf-8", "replace").strip()
            raise ModelError(f"tts {self.name!r}: espeak-ng -v {self.voice} failed (exit {done.returncode}): {message}")
        samples, sample_rate = sf.read(io.BytesIO(done.stdout), dtype="float32", always_2d=True)
        return Audio(samples.mean(axis=1), int(sample_rate))

    def _check_input(self, text):
        return check_text(text, f"tts {self.name!r}")

    def _produce(self, text, mark, meta):
        sentences = split_sentences(text)
        meta["sentences"] = len(sentences)
        if not sentences:
            meta["reason"] = "no text"
        for sentence in sentences:
            audio = self.synthesize(sentence)
            meta["sample_rate"] = audio.sample_rate
            yield audio

    def _join(self, parts, meta):
        return join_audio(parts, parts[0].sample_rate if parts else meta.get("sample_rate", 22050))

    def warmup_input(self):
        return "Hello."
