"""Pipeline stages (VAD, STT, LLM, TTS) behind one small interface, with timing events.

Every backend is a :class:`Stage`: ``load()`` (timed), ``warmup(n)``,
``run(x) -> StageResult`` and ``stream(x) -> StageStream``. Iterating a
stream yields partial outputs as the engine produces them (LLM tokens, TTS
audio per sentence, STT segments); afterwards ``stream.result`` holds the
joined value, the events and the metadata. ``run`` is a stream consumed at
once, so both paths measure the same way.

Decisions:

- Events are ``time.perf_counter_ns`` stamps named the same for every stage:
  ``start`` (iteration begins), ``first_output``, ``output`` (each later
  part), ``end``; a stage may add its own in between (``prepared`` after
  faster-whisper's feature extraction / language detection, ``phonemized``,
  ``probabilities``). Uniform names let the pipeline compute "time to first
  output" for any stage (for the LLM that is the time to first token).
- A stream is a generator, so the time the *consumer* spends between two parts
  (e.g. the pipeline speaking a sentence) lies between their events and
  inside ``end - start``. ``meta["busy_s"]`` is the time spent inside the
  stage itself only.
- Input is checked when ``stream()``/``run()`` is called, before the clock
  starts, and a stage must be loaded explicitly: no hidden load time inside a
  measured run (ModelError otherwise).
- STT and VAD take 16 kHz mono float32. An ``Audio`` at another rate is a
  DataError naming both rates; resampling is the caller's choice
  (:func:`ensure_16k`). A bare numpy array is taken to be 16 kHz.
- Silent (peak below ``saraikit.audio.SILENCE_DBFS``) or empty audio: STT skips
  the model and returns an empty Transcript with ``reason``; VAD returns no
  segments. Whisper is known to invent text for silence, and the VAD stage
  is what decides whether there is speech.
- Piper runs on our own ONNX Runtime session (built from an OrtConfig) so
  tuned session options apply; text -> phonemes -> ids reuse piper's own
  code (``PiperVoice.phonemize`` / ``phonemes_to_ids`` with the voice's
  ``.onnx.json``), so the ids are exactly what piper would feed. Audio is
  peak-normalized like piper's default ``SynthesisConfig``. Piper splits
  sentences where its espeak phonemizer does; the espeak-ng baseline splits
  with :class:`saraikit.sentences.SentenceCutter`.
- Silero VAD: the window feeding replicates faster-whisper's ``vad.py`` for
  the same v6 model (512 new samples + the previous window's last 64 as
  context, all windows in one call of up to 10000 rows, h/c carried between
  calls). The segment rules follow silero's ``get_speech_timestamps`` with
  silero's own defaults (threshold 0.5, negative threshold threshold-0.15,
  min speech 250 ms, min silence 100 ms, pad 30 ms; faster-whisper's 2 s
  silence is for chunking long files, not for turn-taking), with one
  change: speech still open at the end of the clip ends where its trailing
  silence began, not at the clip's end, because ``end_of_speech`` is used to
  tell when the user stopped talking.
- LLM: llama-cpp-python reuses the KV cache for a prompt prefix it has seen;
  ``reset_cache=True`` (default) resets it before each call so repeated
  measurements of one prompt are not flattered. Streaming with ``stop``
  strings holds back text that could start a stop string, which can delay
  ``first_output``.
"""

from __future__ import annotations

import io
import json
import math
import shutil
import subprocess
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Iterator

import numpy as np
from scipy.signal import resample_poly

from saraikit.data.audio import SILENCE_DBFS, Audio
from saraikit.core.errors import ConfigError, DataError, MeasurementError, ModelError
from saraikit.data.sentences import split_sentences
from saraikit.engines.ct2 import Ct2WhisperConfig, build_faster_whisper
from saraikit.engines.llama import LlamaConfig, build_llama
from saraikit.engines.ort import OrtConfig, build_ort_session
from saraikit.core.timing import timed

STT_SAMPLE_RATE = 16000

# ---------------------------------------------------------------------------
# Events and results


@dataclass(frozen=True)
class Event:
    stage: str
    name: str
    t_ns: int  # time.perf_counter_ns()


@dataclass
class StageResult:
    value: Any
    events: list[Event]
    meta: dict = field(default_factory=dict)

    def t_ns(self, name: str) -> int | None:
        """Time of the first event called ``name``, or None."""
        return next((event.t_ns for event in self.events if event.name == name), None)

    def seconds(self, start: str = "start", end: str = "end") -> float | None:
        """Seconds between two events (None when either did not happen)."""
        t0, t1 = self.t_ns(start), self.t_ns(end)
        return None if t0 is None or t1 is None else (t1 - t0) / 1e9

    @property
    def duration_s(self) -> float:
        return self.seconds("start", "end")

    @property
    def first_output_s(self) -> float | None:
        return self.seconds("start", "first_output")


def event_problems(events: list[Event]) -> list[str]:
    """What is wrong with a stage's event list (empty when it is well formed)."""
    problems = []
    names = [event.name for event in events]
    if not names or names[0] != "start":
        problems.append(f"first event is not 'start': {names[:1]}")
    if not names or names[-1] != "end":
        problems.append(f"last event is not 'end': {names[-1:]}")
    for before, after in zip(events, events[1:]):
        if after.t_ns < before.t_ns:
            problems.append(f"{after.name!r} at {after.t_ns} precedes {before.name!r} at {before.t_ns}")
    return problems


class StageStream:
    """One pass of a stage over one input; iterate it once for the partial outputs.

    ``produce(mark, meta)`` is the stage's generator of parts; it may call
    ``mark(name)`` to add its own events and fill ``meta``. ``join(parts,
    meta)`` builds the final value once the parts are exhausted.
    """

    def __init__(self, stage: str, produce: Callable, join: Callable):
        self.stage = stage
        self.events: list[Event] = []
        self.meta: dict = {}
        self.parts: list = []
        self.result: StageResult | None = None  # set when iteration finishes
        self._produce = produce
        self._join = join
        self._started = False

    def mark(self, name: str) -> None:
        self.events.append(Event(self.stage, name, time.perf_counter_ns()))

    def __iter__(self) -> Iterator:
        if self._started:
            raise MeasurementError(f"stage {self.stage!r}: a stream can be iterated only once; call stream() again")
        self._started = True
        self.mark("start")
        producer = self._produce(self.mark, self.meta)
        busy_ns = 0
        while True:
            t0 = time.perf_counter_ns()
            try:
                part = next(producer)
            except StopIteration:
                busy_ns += time.perf_counter_ns() - t0
                break
            busy_ns += time.perf_counter_ns() - t0
            self.mark("output" if self.parts else "first_output")
            self.parts.append(part)
            yield part
        self.mark("end")
        self.meta["busy_s"] = busy_ns / 1e9
        self.result = StageResult(self._join(self.parts, self.meta), list(self.events), self.meta)


# ---------------------------------------------------------------------------
# The interface


class Stage(ABC):
    """A loaded model that turns one input into one output, optionally in parts."""

    kind: ClassVar[str]  # "vad" | "stt" | "llm" | "tts"
    SETTINGS: ClassVar[tuple[str, ...]] = ()  # constructor options a stack's `settings` may set

    def __init__(self, name: str):
        self.name = name
        self.load_s: float | None = None

    @property
    def loaded(self) -> bool:
        return self.load_s is not None

    def load(self) -> float:
        """Load the model; returns the seconds it took (the first call's, if already loaded)."""
        if self.load_s is None:
            _, self.load_s = timed(self._load)
        return self.load_s

    def warmup(self, n: int = 1, x: Any = None) -> list[float]:
        """Run ``n`` times on ``x`` (default: :meth:`warmup_input`); seconds per run."""
        if not isinstance(n, int) or n < 0:
            raise MeasurementError(f"{self.kind} stage {self.name!r}: warmup n must be an int >= 0, got {n!r}")
        x = self.warmup_input() if x is None else x
        return [timed(lambda: self.run(x))[1] for _ in range(n)]

    def run(self, x: Any) -> StageResult:
        stream = self.stream(x)
        for _ in stream:
            pass
        return stream.result

    def stream(self, x: Any) -> StageStream:
        if not self.loaded:
            raise ModelError(f"{self.kind} stage {self.name!r} is not loaded; call load() first")
        prepared = self._check_input(x)
        return StageStream(self.name, lambda mark, meta: self._produce(prepared, mark, meta), self._join)

    @abstractmethod
    def _load(self) -> None: ...

    @abstractmethod
    def _check_input(self, x: Any) -> Any:
        """Validate ``x`` (raise DataError) and return what ``_produce`` consumes."""

    @abstractmethod
    def _produce(self, x: Any, mark: Callable[[str], None], meta: dict) -> Iterator:
        """Generator of partial outputs."""

    @abstractmethod
    def _join(self, parts: list, meta: dict) -> Any: ...

    @abstractmethod
    def warmup_input(self) -> Any: ...

    def __repr__(self) -> str:
        state = f"loaded in {self.load_s:.3f} s" if self.loaded else "not loaded"
        return f"{type(self).__name__}({self.name!r}, {state})"


# ---------------------------------------------------------------------------
# Audio input helpers


def ensure_16k(audio: Audio) -> np.ndarray:
    """The samples of ``audio`` at 16 kHz (polyphase resampling), float32 mono."""
    if audio.sample_rate == STT_SAMPLE_RATE:
        return np.asarray(audio.samples, dtype=np.float32)
    divisor = math.gcd(STT_SAMPLE_RATE, audio.sample_rate)
    samples = resample_poly(audio.samples, STT_SAMPLE_RATE // divisor, audio.sample_rate // divisor)
    return np.clip(samples, -1.0, 1.0).astype(np.float32)


def as_16k_samples(x: Audio | np.ndarray, where: str) -> np.ndarray:
    """1-D float32 samples from an Audio at 16 kHz or a float array (taken to be 16 kHz)."""
    if isinstance(x, Audio):
        if x.sample_rate != STT_SAMPLE_RATE:
            source = f" ({x.path})" if x.path else ""
            raise DataError(
                f"{where}: expected {STT_SAMPLE_RATE} Hz audio, got {x.sample_rate} Hz{source}; "
                "resample with saraikit.stages.ensure_16k(audio)"
            )
        x = x.samples
    if not isinstance(x, np.ndarray):
        raise DataError(f"{where}: expected an Audio or a numpy array of samples, got {type(x).__name__}")
    if x.ndim != 1:
        raise DataError(f"{where}: expected mono 1-D samples, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"{where}: expected float samples in [-1, 1], got dtype {x.dtype}")
    return np.ascontiguousarray(x, dtype=np.float32)


def silence_reason(samples: np.ndarray) -> str | None:
    """Why ``samples`` hold no speech for sure (empty or digitally silent), or None."""
    if samples.size == 0:
        return "empty audio (0 samples)"
    peak = float(np.max(np.abs(samples)))
    peak_dbfs = 20 * math.log10(peak) if peak > 0 else -math.inf
    if peak_dbfs < SILENCE_DBFS:
        return f"silent audio (peak {peak_dbfs:.1f} dBFS < {SILENCE_DBFS:g} dBFS)"
    return None


def _noise(seconds: float, dbfs: float, sample_rate: int = STT_SAMPLE_RATE) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.standard_normal(int(seconds * sample_rate)) * 10 ** (dbfs / 20)).astype(np.float32)


# ---------------------------------------------------------------------------
# VAD: Silero v6 on ONNX Runtime


def segments_from_probs(
    probs: np.ndarray,
    n_samples: int,
    window: int,
    sample_rate: int,
    threshold: float,
    neg_threshold: float,
    min_silence_ms: float,
    min_speech_ms: float,
    speech_pad_ms: float,
) -> list[tuple[float, float]]:
    """Speech segments (seconds) from per-window speech probabilities (silero's hysteresis rules)."""
    min_silence = sample_rate * min_silence_ms / 1000
    min_speech = sample_rate * min_speech_ms / 1000
    pad = int(sample_rate * speech_pad_ms / 1000)
    speeches: list[list[int]] = []
    start = silence_start = None
    for i, prob in enumerate(probs):
        position = i * window
        if start is None:
            if prob >= threshold:
                start = position
            continue
        if prob >= threshold:
            silence_start = None
        elif prob < neg_threshold:
            silence_start = position if silence_start is None else silence_start
            if position - silence_start >= min_silence:
                if silence_start - start > min_speech:
                    speeches.append([start, silence_start])
                start = silence_start = None
    if start is not None:
        end = silence_start if silence_start is not None else n_samples
        if end - start > min_speech:
            speeches.append([start, end])
    padded: list[list[int]] = []
    for begin, end in speeches:
        begin, end = max(0, begin - pad), min(n_samples, end + pad)
        if padded and begin <= padded[-1][1]:
            padded[-1][1] = end
        else:
            padded.append([begin, end])
    return [(begin / sample_rate, end / sample_rate) for begin, end in padded]


class SileroVAD(Stage):
    """Silero VAD v6 (faster-whisper's ONNX export) run directly with ONNX Runtime."""

    kind = "vad"
    SETTINGS = ("threshold", "neg_threshold", "min_silence_ms", "min_speech_ms", "speech_pad_ms")
    WINDOW = 512  # new samples per window at 16 kHz
    CONTEXT = 64  # samples of the previous window prepended to each window
    BATCH = 10000  # windows per session.run, as faster-whisper
    STATE_SHAPE = (1, 1, 128)

    def __init__(
        self,
        model_path: str | Path,
        ort_config: OrtConfig | None = None,
        threshold: float = 0.5,
        neg_threshold: float | None = None,
        min_silence_ms: float = 100,
        min_speech_ms: float = 250,
        speech_pad_ms: float = 30,
        name: str | None = None,
    ):
        super().__init__(name or Path(model_path).stem)
        if not 0 < threshold < 1:
            raise ConfigError(f"SileroVAD.threshold must be in (0, 1), got {threshold!r}")
        for option, value in (("min_silence_ms", min_silence_ms), ("min_speech_ms", min_speech_ms),
                              ("speech_pad_ms", speech_pad_ms)):
            if not value >= 0:
                raise ConfigError(f"SileroVAD.{option} must be >= 0 ms, got {value!r}")
        self.model_path = Path(model_path)
        self.ort_config = ort_config or OrtConfig()
        self.threshold = threshold
        self.neg_threshold = max(threshold - 0.15, 0.01) if neg_threshold is None else neg_threshold
        self.min_silence_ms = min_silence_ms
        self.min_speech_ms = min_speech_ms
        self.speech_pad_ms = speech_pad_ms
        self.session = None

    def _load(self) -> None:
        session = build_ort_session(self.model_path, self.ort_config)
        inputs = {i.name: i.shape for i in session.get_inputs()}
        if set(inputs) != {"input", "h", "c"} or inputs["input"][-1] != self.WINDOW + self.CONTEXT:
            raise ModelError(
                f"{self.model_path}: expected faster-whisper's Silero VAD v6 (inputs input[seq_len, "
                f"{self.WINDOW + self.CONTEXT}], h[1,1,128], c[1,1,128]), got inputs {inputs}"
            )
        self.session = session

    def _check_input(self, x):
        return as_16k_samples(x, f"vad {self.name!r}")

    def speech_probs(self, samples: np.ndarray) -> np.ndarray:
        """One speech probability per 512-sample window (the last window zero-padded)."""
        samples = as_16k_samples(samples, f"vad {self.name!r}")
        if samples.size == 0:
            return np.zeros(0, dtype=np.float32)
        padded = np.pad(samples, (0, -len(samples) % self.WINDOW))
        windows = padded.reshape(-1, self.WINDOW)
        context = np.zeros((len(windows), self.CONTEXT), dtype=np.float32)
        context[1:] = windows[:-1, -self.CONTEXT:]
        rows = np.concatenate([context, windows], axis=1)
        h = np.zeros(self.STATE_SHAPE, dtype=np.float32)
        c = np.zeros(self.STATE_SHAPE, dtype=np.float32)
        outputs = []
        for i in range(0, len(rows), self.BATCH):
            probs, h, c = self.session.run(None, {"input": rows[i:i + self.BATCH], "h": h, "c": c})
            outputs.append(probs.reshape(-1))
        return np.concatenate(outputs)

    def _produce(self, samples, mark, meta):
        meta["audio_s"] = len(samples) / STT_SAMPLE_RATE
        probs = self.speech_probs(samples)
        mark("probabilities")
        meta["n_windows"] = len(probs)
        yield segments_from_probs(
            probs, len(samples), self.WINDOW, STT_SAMPLE_RATE, self.threshold, self.neg_threshold,
            self.min_silence_ms, self.min_speech_ms, self.speech_pad_ms,
        )

    def _join(self, parts, meta):
        return parts[0] if parts else []

    def speech_segments(self, audio: Audio | np.ndarray) -> list[tuple[float, float]]:
        """(start_s, end_s) of every speech segment in 16 kHz audio."""
        return self.run(audio).value

    def end_of_speech(self, audio: Audio | np.ndarray) -> float | None:
        """Seconds at which the last speech segment ends (padding included); None when there is no speech."""
        segments = self.speech_segments(audio)
        return segments[-1][1] if segments else None

    def warmup_input(self):
        return _noise(1.0, -30)


# ---------------------------------------------------------------------------
# STT: faster-whisper on CTranslate2


@dataclass
class TranscriptSegment:
    start_s: float
    end_s: float
    text: str


@dataclass
class Transcript:
    text: str
    language: str | None
    language_probability: float | None
    segments: list[TranscriptSegment]
    reason: str | None = None  # why text is empty, when it is


class FasterWhisperSTT(Stage):
    """Whisper through faster-whisper (CTranslate2), VAD off: the VAD is its own stage."""

    kind = "stt"
    SETTINGS = ("language", "beam_size", "transcribe_options")

    def __init__(
        self,
        model_dir: str | Path,
        ct2_config: Ct2WhisperConfig | None = None,
        language: str | None = None,
        beam_size: int = 1,
        transcribe_options: dict | None = None,
        name: str | None = None,
    ):
        super().__init__(name or Path(model_dir).name)
        if not isinstance(beam_size, int) or beam_size < 1:
            raise ConfigError(f"FasterWhisperSTT.beam_size must be an int >= 1, got {beam_size!r}")
        options = dict(transcribe_options or {})
        fixed = {"language", "beam_size", "vad_filter"} & set(options)
        if fixed:
            raise ConfigError(f"FasterWhisperSTT.transcribe_options: {sorted(fixed)} are set by the stage itself")
        self.model_dir = Path(model_dir)
        self.ct2_config = ct2_config or Ct2WhisperConfig()
        self.language = language
        self.beam_size = beam_size
        self.transcribe_options = options
        self.model = None

    def _load(self) -> None:
        self.model = build_faster_whisper(self.model_dir, self.ct2_config)

    def _check_input(self, x):
        return as_16k_samples(x, f"stt {self.name!r}")

    def _produce(self, samples, mark, meta):
        meta["audio_s"] = len(samples) / STT_SAMPLE_RATE
        reason = silence_reason(samples)
        if reason:
            meta["reason"] = reason
            return
        segments, info = self.model.transcribe(
            samples, language=self.language, beam_size=self.beam_size, vad_filter=False,
            **self.transcribe_options,
        )
        mark("prepared")  # features computed, language detected; decoding is lazy
        meta["language"] = info.language
        meta["language_probability"] = info.language_probability
        for segment in segments:
            yield TranscriptSegment(segment.start, segment.end, segment.text.strip())

    def _join(self, parts, meta):
        text = " ".join(part.text for part in parts if part.text)
        reason = meta.get("reason") or (None if text else "the model produced no text")
        return Transcript(text, meta.get("language"), meta.get("language_probability"), list(parts), reason)

    def warmup_input(self):
        return _noise(1.0, -40)


# ---------------------------------------------------------------------------
# TTS: Piper voice on ONNX Runtime


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
        return _check_text(text, f"tts {self.name!r}")

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
        return _join_audio(parts, self.sample_rate)

    def warmup_input(self):
        return "Hello."


def _check_text(text: Any, where: str) -> str:
    if not isinstance(text, str):
        raise DataError(f"{where}: expected text (str), got {type(text).__name__}")
    return text


def _join_audio(parts: list[Audio], sample_rate: int) -> Audio:
    samples = np.concatenate([p.samples for p in parts]) if parts else np.zeros(0, dtype=np.float32)
    return Audio(samples.astype(np.float32), sample_rate)


# ---------------------------------------------------------------------------
# TTS baseline: the espeak-ng command line

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
        import soundfile as sf

        samples, sample_rate = sf.read(io.BytesIO(done.stdout), dtype="float32", always_2d=True)
        return Audio(samples.mean(axis=1), int(sample_rate))

    def _check_input(self, text):
        return _check_text(text, f"tts {self.name!r}")

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
        return _join_audio(parts, parts[0].sample_rate if parts else meta.get("sample_rate", 22050))

    def warmup_input(self):
        return "Hello."


# ---------------------------------------------------------------------------
# LLM: llama.cpp, streaming tokens


class LlamaLLM(Stage):
    """A GGUF model through llama-cpp-python, streaming text pieces (about one per token)."""

    kind = "llm"
    SETTINGS = ("max_tokens", "stop", "temperature", "reset_cache")

    def __init__(
        self,
        model_path: str | Path,
        llama_config: LlamaConfig | None = None,
        max_tokens: int = 64,
        stop: Iterable[str] = (),
        prompt_builder: Callable[[str], str] | None = None,
        temperature: float = 0.0,
        reset_cache: bool = True,
        name: str | None = None,
    ):
        super().__init__(name or Path(model_path).stem)
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise ConfigError(f"LlamaLLM.max_tokens must be an int >= 1, got {max_tokens!r}")
        self.model_path = Path(model_path)
        self.llama_config = llama_config or LlamaConfig()
        self.max_tokens = max_tokens
        self.stop = [stop] if isinstance(stop, str) else list(stop)
        self.prompt_builder = prompt_builder
        self.temperature = temperature
        self.reset_cache = reset_cache
        self.llm = None

    def _load(self) -> None:
        self.llm = build_llama(self.model_path, self.llama_config)

    def _check_input(self, text):
        text = _check_text(text, f"llm {self.name!r}")
        prompt = self.prompt_builder(text) if self.prompt_builder else text
        if not prompt:
            raise DataError(f"llm {self.name!r}: the prompt is empty")
        return prompt

    def _produce(self, prompt, mark, meta):
        meta["prompt_tokens"] = len(self.llm.tokenize(prompt.encode("utf-8")))
        if self.reset_cache:
            self.llm.reset()
        pieces = 0
        chunks = self.llm(prompt, max_tokens=self.max_tokens, stream=True, temperature=self.temperature,
                          stop=self.stop or None)
        for chunk in chunks:
            choice = chunk["choices"][0]
            if choice.get("finish_reason"):
                meta["finish_reason"] = choice["finish_reason"]
            if choice["text"]:
                pieces += 1
                yield choice["text"]
        meta["pieces"] = pieces

    def _join(self, parts, meta):
        return "".join(parts)

    def warmup_input(self):
        return "Hello"


# ---------------------------------------------------------------------------
# Building a stage from a stack config


def _resolve_model(model: str) -> Path:
    from saraikit.models import catalog

    path = Path(model)
    if path.exists():
        return path
    return catalog.model_path(model)


def _split_settings(settings: dict, config_cls, stage_cls, where: str) -> tuple[dict, dict]:
    """Settings -> (engine config values, stage constructor options); unknown keys are a ConfigError."""
    config_keys = {f.name for f in fields(config_cls)} if config_cls else set()
    unknown = set(settings) - config_keys - set(stage_cls.SETTINGS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown setting(s) {sorted(unknown)}; valid: {sorted(config_keys | set(stage_cls.SETTINGS))}"
        )
    config = {k: v for k, v in settings.items() if k in config_keys}
    options = {k: v for k, v in settings.items() if k in stage_cls.SETTINGS}
    return config, options


def _build_silero(spec, config, options):
    return SileroVAD(_resolve_model(spec["model"]), OrtConfig.from_dict(config), **options)


def _build_whisper(spec, config, options):
    if spec.get("language"):
        options.setdefault("language", spec["language"])
    return FasterWhisperSTT(_resolve_model(spec["model"]), Ct2WhisperConfig.from_dict(config), **options)


def _build_llama(spec, config, options):
    return LlamaLLM(_resolve_model(spec["model"]), LlamaConfig.from_dict(config), **options)


def _build_piper(spec, config, options):
    return PiperTTS(_resolve_model(spec["model"]), OrtConfig.from_dict(config), **options)


def _build_espeak(spec, config, options):
    options.setdefault("voice", spec.get("language") or "en")
    return EspeakTTS(**options)


# kind -> engine -> (stage class, its engine config class or None, builder); the first engine is the default.
BUILDERS: dict[str, dict[str, tuple]] = {
    "vad": {"onnxruntime": (SileroVAD, OrtConfig, _build_silero)},
    "stt": {"ctranslate2": (FasterWhisperSTT, Ct2WhisperConfig, _build_whisper)},
    "llm": {"llama.cpp": (LlamaLLM, LlamaConfig, _build_llama)},
    "tts": {
        "onnxruntime": (PiperTTS, OrtConfig, _build_piper),
        "piper": (PiperTTS, OrtConfig, _build_piper),
        "espeak-ng": (EspeakTTS, None, _build_espeak),
    },
}


def build_stage(kind: str, spec: dict, **extra) -> Stage:
    """A (not yet loaded) stage from a stack's stage dict, e.g.
    ``{"model": "whisper-base", "engine": "ctranslate2", "settings": {"compute_type": "int8"}}``.

    ``settings`` may hold the engine config's keys (OrtConfig, Ct2WhisperConfig,
    LlamaConfig) and the stage's own ``SETTINGS``; ``extra`` passes options a
    YAML file cannot hold (e.g. ``prompt_builder``).
    """
    if kind not in BUILDERS:
        raise ConfigError(f"unknown stage kind {kind!r}; valid kinds: {sorted(BUILDERS)}")
    if not isinstance(spec, dict) or "model" not in spec:
        raise ConfigError(f"{kind} stage: expected a mapping with a 'model', got {spec!r}")
    engines = BUILDERS[kind]
    engine = spec.get("engine") or next(iter(engines))
    if engine not in engines:
        raise ConfigError(f"{kind} stage: unknown engine {engine!r}; valid engines for {kind}: {sorted(engines)}")
    settings = spec.get("settings") or {}
    if not isinstance(settings, dict):
        raise ConfigError(f"{kind} stage: settings must be a mapping, got {type(settings).__name__}")
    stage_cls, config_cls, build = engines[engine]
    config, options = _split_settings(settings, config_cls, stage_cls, f"{kind} stage ({engine})")
    return build(spec, config, {"name": spec["model"], **options, **extra})
