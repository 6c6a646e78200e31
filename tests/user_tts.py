"""A text-to-speech engine of a user's own, as the README shows it: espeak-ng with another voice and pitch.

Not a saraikit module: it stands for code that lives outside the package and
is named in a stack YAML as ``engine: "user_tts:PitchedEspeakTTS"``.
"""

from __future__ import annotations

import io
import subprocess

import soundfile as sf

from saraikit.data.audio import Audio
from saraikit.engines.stage import Stage, check_text, join_audio


class PitchedEspeakTTS(Stage):
    """espeak-ng speaking each line of the text with a chosen voice and pitch."""

    kind = "tts"
    SETTINGS = ("voice", "pitch")  # what a stack's `settings` may set

    def __init__(self, model, name=None, language="en", voice=None, pitch=70):
        super().__init__(name or model)
        self.voice = voice or language  # the stack's `language` is the default voice
        self.pitch = pitch

    def _load(self):
        self.synthesize("a")  # fail at load, not in a measured run

    def synthesize(self, text):
        wav = subprocess.run(["espeak-ng", "-v", self.voice, "-p", str(self.pitch), "--stdout", "--stdin"],
                             input=text.encode(), capture_output=True, check=True).stdout
        samples, rate = sf.read(io.BytesIO(wav), dtype="float32")
        return Audio(samples, rate)

    def _check_input(self, text):
        return check_text(text, f"tts {self.name!r}")

    def _produce(self, text, mark, meta):  # one audio part per line: the stream's partial outputs
        lines = [line for line in text.splitlines() if line.strip()]
        meta["sentences"] = len(lines)
        for line in lines:
            yield self.synthesize(line)

    def _join(self, parts, meta):
        return join_audio(parts, parts[0].sample_rate if parts else 22050)

    def warmup_input(self):
        return "Hello."
