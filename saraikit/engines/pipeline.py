"""The end-to-end voice pipeline, measured: speech in, speech out.

VAD finds the end of speech -> STT -> the LLM streams tokens -> the text is
cut at sentence boundaries -> TTS of the first sentence starts while the LLM
goes on (a TTS thread fed by a queue) -> first audio out.

Timing model (all per utterance, in ms, from one ``perf_counter_ns`` clock):

- Processing starts when the utterance's audio is available (``t0``): an
  offline clip stands in for a microphone stream.
- ``endpoint_ms`` is the trailing silence the VAD must see before it may
  declare the end of speech (its ``min_silence_ms``). A live assistant waits
  that long after the user stops, so it is *added* to the voice-to-voice
  figures: ``ttfa_ms = endpoint_ms + first_audio_ms`` (end of speech to the
  first audio sample ready to play) and ``last_audio_ms`` likewise.
- ``audio_path_ms`` is the seeds' "audio-only" path with no LLM: STT of the
  utterance plus TTS of the transcript's first sentence (an echo bot), both
  measured in the same worker.
- ``projected_ttfa_ms`` sums the stages measured one after another on the same
  input (VAD, STT, LLM up to the first sentence, TTS of that sentence) plus the
  endpoint wait; it is what the seeds called "validated" and is labelled
  *derived*, never measured; the gap to ``ttfa_ms`` is reported.

Isolation: the loaded stack lives in a worker process (spawned). Each
utterance is sent to it with a timeout; a stage that raises gives an
``error`` row for that utterance; a worker that crashes or hangs is killed,
the row says ``crashed``/``timeout``, and a fresh worker (cold again) serves
the next utterance. Silent audio, no speech after VAD, an empty transcript and
an empty LLM answer are recorded with their own status, never a crash.

Stages per language: a stack may name a stage for one language by suffix
(``stt_es``, ``tts_es``); an utterance in that language uses it, the others use
``stt`` / ``tts``. Without a ``tts_es`` stage Spanish is spoken by espeak-ng.

What STT hears: the audio a live assistant has when STT starts. Late STT (the
default) starts when the endpoint is confirmed, so it transcribes the clip up
to the final silence onset plus the endpoint wait. Early STT (stack
``pipeline: {early_stt: true}``, see :mod:`saraikit.engines.endpointing`)
starts ``speculate_after_ms`` after the onset and transcribes the clip up to
there; the endpoint wait and STT overlap, so
``ttfa_ms = endpoint_ms + first_audio_ms - early_stt_saved_ms``. The
speculative transcripts of earlier pauses (speech resumed) are computed too,
after the measured path, and reported as wasted work
(``early_stt_wasted_ms``, ``early_stt_discarded``): in a live assistant that
work runs while the user is still talking.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from saraikit.core.errors import ConfigError, SaraikitError
from saraikit.core.memory import mapped_file, memory_snapshot
from saraikit.data.audio import SAMPLE_RATE, Audio, as_16k_samples, ensure_16k, silence_reason
from saraikit.data.prompts import few_shot_prompt
from saraikit.data.sentences import SentenceCutter
from saraikit.engines.build import build_stage
from saraikit.engines.endpointing import early_stt_saving_ms, silence_onsets
from saraikit.engines.stage import Stage
from saraikit.models.stack import PIPELINE_OPTIONS, pipeline_options

SPANISH_TTS = {"model": "espeak-ng", "engine": "espeak-ng", "language": "es"}
THREAD_KEYS = ("ort_threads", "ct2_threads", "llama_threads")
# Engines whose threads are ONNX Runtime's / CTranslate2's (whisper-onnx: an ORT encoder and a CT2 decoder).
ORT_ENGINES = {"onnxruntime", "piper", "kokoro", "moonshine", "whisper-onnx"}
CT2_ENGINES = {"ctranslate2", "whisper-onnx"}
def preflight(stack: dict, where: str | None = None) -> None:
    """Build every stage without loading it, in the caller's process.

    An unknown engine or setting, a bad value (a negative margin, Moonshine
    asked for Spanish) or a model name that does not resolve fails here, with
    the stack and the stage named, before any worker starts or any model loads.
    """
    where = where or f"stack {stack.get('name', '')}".strip()
    for name, spec in stack["stages"].items():
        try:
            build_stage(stage_kind(name), spec)
        except SaraikitError as exc:
            raise type(exc)(f"{where}: stage {name!r}: {exc}") from exc


def stage_kind(name: str) -> str:
    """A stack's stage name -> its kind: ``stt_es`` -> ``stt``, ``tts`` -> ``tts``."""
    return name.split("_", 1)[0]


def apply_threads(stack: dict, threads: dict | None) -> dict:
    """A copy of ``stack`` with a thread split applied (ONNX Runtime, CTranslate2, llama.cpp)."""
    threads = threads or {}
    unknown = set(threads) - set(THREAD_KEYS)
    if unknown:
        raise ConfigError(f"unknown thread keys {sorted(unknown)}; valid: {list(THREAD_KEYS)}")
    stages = {name: {**spec, "settings": dict(spec.get("settings") or {})} for name, spec in stack["stages"].items()}
    for name, spec in stages.items():
        engine = spec.get("engine")
        if engine in ORT_ENGINES and "ort_threads" in threads:
            spec["settings"]["intra_op_num_threads"] = threads["ort_threads"]
        if engine in CT2_ENGINES and "ct2_threads" in threads:
            spec["settings"]["cpu_threads"] = threads["ct2_threads"]
        if engine == "llama.cpp" and "llama_threads" in threads:
            spec["settings"]["n_threads"] = threads["llama_threads"]
    return {**stack, "stages": stages}


@dataclass
class LoadedStack:
    """The stages of a stack, loaded in this process."""

    stages: dict[str, Stage]
    load_s: dict[str, float]
    memory: dict = field(default_factory=dict)
    options: dict = field(default_factory=lambda: dict(PIPELINE_OPTIONS))

    @classmethod
    def load(cls, stack: dict, max_tokens: int = 48, spanish_tts: dict | None = SPANISH_TTS) -> "LoadedStack":
        options = pipeline_options(stack)
        specs = dict(stack["stages"])
        if spanish_tts and "tts_es" not in specs:
            specs["tts_es"] = spanish_tts
        stages, load_s = {}, {}
        for name, spec in specs.items():
            kind = stage_kind(name)
            extra = {"max_tokens": max_tokens} if kind == "llm" else {}
            stage = build_stage(kind, {**spec, "settings": {**(spec.get("settings") or {}), **extra}})
            load_s[name] = stage.load()
            stages[name] = stage
        loaded = cls(stages, load_s, options=options)
        loaded.memory = loaded.measure_memory(stack)
        return loaded

    def measure_memory(self, stack: dict) -> dict:
        snap = memory_snapshot().to_dict()
        gguf = None
        llm_stage = self.stages.get("llm")
        if llm_stage is not None and hasattr(llm_stage, "model_path"):
            mapped = mapped_file(llm_stage.model_path)
            gguf = None if mapped is None else mapped.__dict__
        return {**snap, "gguf_mapping": gguf}

    def warmup(self, n: int = 1) -> None:
        for stage in self.stages.values():
            stage.warmup(n)

    def _for(self, kind: str, language: str) -> Stage:
        own = f"{kind}_{language.split('-')[0]}"
        return self.stages[own] if own in self.stages else self.stages[kind]

    def tts_for(self, language: str) -> Stage:
        return self._for("tts", language)

    def stt_for(self, language: str) -> Stage:
        return self._for("stt", language)

    def endpoint_ms(self) -> float:
        vad = self.stages.get("vad")
        return float(getattr(vad, "min_silence_ms", 0.0) or 0.0)

    # --- one utterance -------------------------------------------------------------------------
    def process(self, samples: np.ndarray, language: str, keep_audio: bool = False,
                isolated: bool = True) -> dict:
        """Run the whole pipeline on one 16 kHz utterance and time every step."""
        ms = lambda t: (t - t0) / 1e6  # noqa: E731 - local clock helper
        row: dict[str, Any] = {"language": language, "endpoint_ms": self.endpoint_ms()}
        reason = silence_reason(samples)
        t0 = time.perf_counter_ns()
        if reason:
            return {**row, "status": "silent audio", "reason": reason}
        vad_stage = self.stages["vad"]
        vad = vad_stage.run(samples)
        row["vad_ms"] = ms(vad.t_ns("end"))
        onsets = self._onsets(vad_stage, vad, len(samples))
        if not vad.value or not onsets:
            return {**row, "status": "no speech", "reason": "the VAD found no speech segment"}
        heard = self._heard(samples, onsets[-1].at_s, row["endpoint_ms"])
        row["stt_input_s"] = len(heard) / SAMPLE_RATE
        stt = self.stt_for(language).run(heard)
        row["stt_ms"] = (stt.t_ns("end") - stt.t_ns("start")) / 1e6
        row["stt_status"] = getattr(stt.value, "status", None) or "ok"
        transcript = getattr(stt.value, "text", str(stt.value or "")).strip()
        row["transcript"] = transcript
        if not transcript:
            return {**row, "status": "empty transcript", "reason": getattr(stt.value, "reason", "") or "STT returned no text"}
        prompt = few_shot_prompt(transcript, "es" if language.startswith("es") else "en")
        answer, timeline, audio = self._answer(prompt, language, t0)
        row.update(timeline)
        row["answer"] = answer
        if not answer.strip():
            return {**row, "status": "empty answer", "reason": "the LLM produced no text"}
        saved = self._early_saving(row)
        row["ttfa_ms"] = row["endpoint_ms"] + row["first_audio_ms"] - saved
        row["last_audio_ms_from_eos"] = row["endpoint_ms"] + row["last_audio_ms"] - saved
        row.update(self._audio_path(transcript, language, row["stt_ms"]))
        if self.options["early_stt"]:
            row.update(self._wasted(samples, onsets[:-1], language))
        if isolated:
            row.update(self._isolated(samples, heard, prompt, language))
            row["projected_ttfa_ms"] = row["endpoint_ms"] + sum(
                row[k] for k in ("iso_vad_ms", "iso_stt_ms", "iso_llm_first_sentence_ms", "iso_tts_first_ms"))
        row["status"], row["reason"] = "ok", ""
        if keep_audio:
            row["audio"], row["audio_sample_rate"] = audio
        return row

    def _cutter(self) -> SentenceCutter:
        chunk = self.options["first_chunk"]
        return SentenceCutter(first_clause=chunk == "clause",
                              first_words=self.options["first_words"] if chunk == "words" else 0)

    def _onsets(self, vad_stage: Stage, vad, n_samples: int) -> list:
        after = float(self.options["speculate_after_ms"]) if self.options["early_stt"] else 0.0
        return silence_onsets(vad.meta["speech_probs"], n_samples, vad_stage.WINDOW, SAMPLE_RATE,
                              vad_stage.threshold, vad_stage.neg_threshold, after)

    def _heard(self, samples: np.ndarray, onset_s: float, endpoint_ms: float) -> np.ndarray:
        """The audio STT has when it starts: up to the onset plus the speculation delay or the endpoint wait."""
        tail_ms = float(self.options["speculate_after_ms"]) if self.options["early_stt"] else endpoint_ms
        end = int(round((onset_s + tail_ms / 1000) * SAMPLE_RATE))
        return samples[:max(1, min(len(samples), end))]

    def _early_saving(self, row: dict) -> float:
        if not self.options["early_stt"]:
            return 0.0
        saved = early_stt_saving_ms(row["endpoint_ms"], row["stt_ms"], float(self.options["speculate_after_ms"]))
        row["early_stt_saved_ms"] = saved
        return saved

    def _wasted(self, samples: np.ndarray, discarded: list, language: str) -> dict:
        """Speculative transcripts of pauses after which speech resumed: computed, timed, thrown away."""
        stt = self.stt_for(language)
        wasted = [stt.run(self._heard(samples, onset.at_s, 0.0)).seconds() * 1000 for onset in discarded]
        return {"early_stt_discarded": len(wasted), "early_stt_wasted_ms": float(sum(wasted))}

    def _answer(self, prompt, language: str, t0: int):
        """Stream the LLM, cut sentences, synthesize them on a TTS thread; return the timeline."""
        tts = self.tts_for(language)
        sentences: queue.Queue = queue.Queue()
        audio_parts: list[Audio] = []
        tts_times: list[int] = []
        errors: list[str] = []

        def speak():
            while (sentence := sentences.get()) is not None:
                try:
                    audio_parts.append(tts.run(sentence).value)
                    tts_times.append(time.perf_counter_ns())
                except Exception as exc:  # noqa: BLE001 - reported as the utterance's error below
                    errors.append(f"TTS failed on {sentence!r}: {exc}")

        worker = threading.Thread(target=speak, daemon=True)
        worker.start()
        llm_stage = self.stages["llm"]
        llm_stage.stop = list(prompt.stop)
        cutter = self._cutter()
        first_sentence_t = None
        n_sentences = 0
        stream = llm_stage.stream(prompt.text)
        try:
            for piece in stream:
                for sentence in cutter.feed(piece):
                    first_sentence_t = first_sentence_t or time.perf_counter_ns()
                    sentences.put(sentence)
                    n_sentences += 1
            for sentence in cutter.flush():
                first_sentence_t = first_sentence_t or time.perf_counter_ns()
                sentences.put(sentence)
                n_sentences += 1
        finally:
            sentences.put(None)
            worker.join()
        if errors:
            raise SaraikitError("; ".join(errors))
        result = stream.result
        ms = lambda t: None if t is None else (t - t0) / 1e6  # noqa: E731
        timeline = {
            "llm_start_ms": ms(result.t_ns("start")), "llm_first_token_ms": ms(result.t_ns("first_output")),
            "llm_ttft_ms": result.seconds("prompt", "first_output") * 1000 if result.t_ns("first_output") else None,
            "llm_end_ms": ms(result.t_ns("end")), "llm_pieces": result.meta.get("pieces"),
            "first_sentence_ms": ms(first_sentence_t), "n_sentences": n_sentences,
            "first_audio_ms": ms(tts_times[0]) if tts_times else None,
            "last_audio_ms": ms(tts_times[-1]) if tts_times else None,
        }
        answer = "".join(result.value) if isinstance(result.value, list) else str(result.value)
        sample_rate = audio_parts[0].sample_rate if audio_parts else 22050
        joined = np.concatenate([a.samples for a in audio_parts]) if audio_parts else np.zeros(0, np.float32)
        timeline["answer_audio_s"] = len(joined) / sample_rate
        return answer, timeline, (joined, sample_rate)

    def _audio_path(self, transcript: str, language: str, stt_ms: float) -> dict:
        first = self._cutter().cut([transcript])
        sentence = next(iter(first), transcript)
        tts = self.tts_for(language).run(sentence)
        tts_ms = tts.seconds("start", "end") * 1000
        return {"audio_path_tts_ms": tts_ms, "audio_path_ms": stt_ms + tts_ms}

    def _isolated(self, samples: np.ndarray, heard: np.ndarray, prompt, language: str) -> dict:
        """Each stage alone, one after another, on the same input: the parts of the projection."""
        vad = self.stages["vad"].run(samples)
        stt = self.stt_for(language).run(heard)
        llm_stage = self.stages["llm"]
        cutter = self._cutter()
        start = time.perf_counter_ns()
        first_sentence, first_t = None, None
        for piece in llm_stage.stream(prompt.text):
            done = cutter.feed(piece)
            if done and first_sentence is None:
                first_sentence, first_t = done[0], time.perf_counter_ns()
        if first_sentence is None:
            rest = cutter.flush()
            first_sentence, first_t = (rest[0] if rest else ""), time.perf_counter_ns()
        tts = self.tts_for(language).run(first_sentence) if first_sentence else None
        return {"iso_vad_ms": vad.seconds() * 1000, "iso_stt_ms": stt.seconds() * 1000,
                "iso_llm_first_sentence_ms": (first_t - start) / 1e6,
                "iso_tts_first_ms": tts.seconds() * 1000 if tts else 0.0}


# --- the worker process ------------------------------------------------------------------------

def _worker_main(conn, stack: dict, max_tokens: int, warmup: int) -> None:
    try:
        t0 = time.perf_counter()
        loaded = LoadedStack.load(stack, max_tokens=max_tokens)
        base_options = dict(loaded.options)
        load_wall = time.perf_counter() - t0
        conn.send(("loaded", {"load_s": loaded.load_s, "load_wall_s": load_wall, "memory": loaded.memory}))
        first = True
        while (message := conn.recv()) is not None:
            if message == "warmup":
                loaded.warmup(warmup)
                conn.send(("ok", {}))
                continue
            fault = message.pop("fault", None)
            # pipeline options are not process-wide state: an utterance may run with its own (a warm worker
            # serves every option variant of one loaded stack)
            loaded.options = {**base_options, **message.pop("options", {})}
            if fault == "hang":  # test hooks: a stage that hangs or crashes the process
                time.sleep(3600)
            elif fault == "crash":
                os._exit(3)
            try:
                row = loaded.process(**message)
                row["first_after_load"] = first
                conn.send(("ok", row))
            except Exception as exc:  # noqa: BLE001 - one utterance's error, the worker goes on
                conn.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"))
            first = False
    except Exception as exc:  # noqa: BLE001 - loading failed: tell the parent and stop
        conn.send(("load_error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


class PipelineRunner:
    """A loaded stack in a worker process, with a timeout per utterance and restarts after crashes."""

    def __init__(self, stack: dict, max_tokens: int = 48, warmup: int = 1, load_timeout_s: float = 300.0,
                 utterance_timeout_s: float = 120.0):
        preflight(stack)
        self.stack, self.max_tokens, self.warmup_n = stack, max_tokens, warmup
        self.load_timeout_s, self.utterance_timeout_s = load_timeout_s, utterance_timeout_s
        self.proc = None
        self.conn = None
        self.load_info: dict | None = None
        self.restarts = 0

    def start(self, warm: bool = True) -> dict:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, self.stack, self.max_tokens, self.warmup_n),
                                daemon=True)
        self.proc.start()
        child.close()
        status, info = self._receive(self.load_timeout_s, "loading the stack")
        if status != "loaded":
            self.close()
            raise SaraikitError(f"the pipeline worker could not load the stack: {info}")
        self.load_info = info
        if warm:
            self._send("warmup")
            self._receive(self.load_timeout_s, "warming up")
        return info

    def _send(self, message) -> None:
        self.conn.send(message)

    def _receive(self, timeout_s: float, what: str):
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            if self.conn.poll(0.2):
                try:
                    return self.conn.recv()
                except EOFError:  # the worker closed its end: it is dying
                    self.proc.join(10)
                    break
            if not self.proc.is_alive() and not self.conn.poll(0):
                break
        if self.proc.is_alive():
            return "timeout", f"{what} exceeded {timeout_s:g} s"
        return "crashed", f"the worker died while {what} (exit code {self.proc.exitcode})"

    def run(self, audio: Audio | np.ndarray, language: str, keep_audio: bool = False, fault: str | None = None,
            isolated: bool = True, options: dict | None = None, **meta) -> dict:
        """One utterance; always returns a row (status ok or the reason it is not).

        ``options`` overrides the stack's ``pipeline`` options for this utterance only
        (checked like a stack's: unknown keys or values are a ConfigError).

        ``fault`` ("hang" or "crash") makes the worker misbehave on purpose, for tests.
        """
        if self.proc is None:
            self.start()
        row = {**meta, "language": language}
        try:
            if isinstance(audio, Audio):
                row["input_sample_rate"] = audio.sample_rate
                samples = ensure_16k(audio)
            else:
                samples = as_16k_samples(audio, "pipeline input")
        except SaraikitError as exc:
            return {**row, "status": "bad input", "reason": str(exc)}
        row["input_s"] = len(samples) / SAMPLE_RATE
        message = {"samples": samples, "language": language, "keep_audio": keep_audio, "isolated": isolated}
        if options:
            message["options"] = pipeline_options({"pipeline": {**(self.stack.get("pipeline") or {}), **options}},
                                                  "pipeline options of an utterance")
        if fault:
            message["fault"] = fault
        self._send(message)
        status, value = self._receive(self.utterance_timeout_s, "processing an utterance")
        if status == "ok":
            return {**row, **value}
        if status in ("timeout", "crashed"):
            self.close()
            self.restarts += 1
            self.start()
        return {**row, "status": status, "reason": str(value).strip().splitlines()[0]}

    def close(self) -> None:
        if self.proc is None:
            return
        try:
            if self.proc.is_alive():
                self.conn.send(None)
                self.proc.join(5)
        except (OSError, BrokenPipeError):
            pass
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self.proc, self.conn = None, None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
