"""The one interface every pipeline stage (VAD, STT, LLM, TTS) implements, and its timing events.

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
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterator

import numpy as np

from saraikit.core.errors import DataError, MeasurementError, ModelError
from saraikit.core.timing import timed
from saraikit.data.audio import SAMPLE_RATE, Audio


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


# Helpers the concrete stages share.


def check_text(text: Any, where: str) -> str:
    """``text`` when it is a str (DataError otherwise): the input check of the text-taking stages."""
    if not isinstance(text, str):
        raise DataError(f"{where}: expected text (str), got {type(text).__name__}")
    return text


def join_audio(parts: list[Audio], sample_rate: int) -> Audio:
    """The audio parts of a TTS stream as one clip (empty when there are none)."""
    samples = np.concatenate([p.samples for p in parts]) if parts else np.zeros(0, dtype=np.float32)
    return Audio(samples.astype(np.float32), sample_rate)


def warmup_noise(seconds: float, dbfs: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Seeded white noise at an RMS of ``dbfs``: warm-up input for the audio-taking stages."""
    rng = np.random.default_rng(0)
    return (rng.standard_normal(int(seconds * sample_rate)) * 10 ** (dbfs / 20)).astype(np.float32)
