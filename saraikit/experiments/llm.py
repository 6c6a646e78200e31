"""LLM latency on any GGUF model (llama-cpp-python), measured the way llama-bench does it.

What is measured, and how:

- **Load** (:func:`load`): wall time of ``Llama(...)``, llama.cpp's own
  ``t_load_ms``, and RSS / PSS / USS before and after. With ``use_mmap`` (the
  default) the GGUF is *mapped*, not copied: its pages are file-backed, live
  in the page cache, are shared with any other process mapping the same file
  and can be dropped and re-read by the kernel under memory pressure. RSS
  counts those mapped file pages, so "RSS after load" is not "memory this
  model costs". PSS divides shared pages between the processes mapping them;
  USS counts pages no other process maps, which *includes* the GGUF's pages
  whenever this is the only process mapping it (so USS jumps by the file size
  when a second notebook closes). The kernel's own split is the clearest:
  ``RssAnon`` (private memory: KV cache, compute buffers, weights repacked
  for the CPU, Python) versus ``RssFile`` (the mapping and shared libraries),
  from :func:`rss_split`. :func:`mapped_file` reports how much of the RSS is
  the GGUF mapping itself, next to the file size. With ``use_mmap=False``
  the weights are read into anonymous memory instead and nothing is mapped.
  :func:`measure_load` loads in a fresh process: in a process that already
  loaded and freed a model, the allocator reuses that memory and the deltas
  shrink to almost nothing.
- **One answer** (:func:`generate_once`): streaming, token by token, greedy
  (temperature 0) with a fixed seed. TTFT runs from the prompt string to the
  first sampled token (tokenize + prompt evaluation + first sample); every
  later token's arrival time is recorded too.
- **Throughput** (:func:`bench_pp`, :func:`bench_tg`): llama-bench's ``pp`` and
  ``tg`` tests. ``pp<n>`` evaluates a fixed sequence of ``n`` token ids in one
  ``llm.eval`` call (split into ``n_batch`` chunks as llama-bench does);
  ``tg<n>`` decodes ``n`` tokens one ``llm.eval([token])`` at a time, the first
  being BOS, exactly like llama-bench's ``test_gen`` (so "a 1-token prompt then
  n-1 more" and "n single-token decodes" are the same thing). No sampling in
  either: llama-bench does not sample. The token ids are seeded random ids, as
  in llama-bench; they affect nothing but which embedding rows are read.
  Results are tokens/s per repetition, reported as mean ± std (ddof=1) like
  llama-bench, after ``warmup`` discarded repetitions.
- **llama.cpp's own clock** (:func:`read_perf`, :func:`compare_with_llama_cpp`):
  llama.cpp keeps perf counters (``llama_perf_context``: ``t_p_eval_ms``,
  ``n_p_eval`` for multi-token decodes, ``t_eval_ms``, ``n_eval`` for
  single-token decodes). We reset them before each timed repetition and read
  them after, so for the *same* decode calls we have our wall clock (through
  the Python binding) and llama.cpp's internal time. Their ratio is the
  binding's overhead. The llama-bench binary is not installed here (only the
  Python wheel), so this is a comparison against llama.cpp's measurement, not
  against a llama-bench run.

Pitfalls found in llama-cpp-python 0.3.36 and how they are handled:

- **Prefix reuse.** ``Llama.generate`` (used by ``llm(prompt)`` and
  ``create_completion``) compares the new prompt's tokens with
  ``llm._input_ids`` and, when they share a prefix, keeps that part of the KV
  cache and evaluates only the rest. A second run of the same prompt then
  evaluates 1 token instead of all of them and looks much faster.
  :func:`fresh_context` defeats this before every run: ``llm.reset()`` (sets
  ``n_tokens`` to 0, so nothing is compared) plus ``llm._ctx.kv_cache_clear()``
  (``llama_memory_clear``; ``reset()`` alone clears memory only for recurrent
  models). Generation then calls ``llm.generate(..., reset=False)`` so the
  binding does no prefix matching at all. The tests check this through
  llama.cpp's ``n_p_eval``, which counts the prompt tokens really evaluated.
- **Perf counters are charged at synchronisation.** llama.cpp adds a decode's
  time to its counters in ``llama_synchronize`` (called when logits are read),
  and files it under "prompt" when more than one token was queued since the
  last sync. ``llm.eval`` alone never synchronises, so back-to-back
  single-token evals would be merged into one "prompt" entry, and a pending
  decode would land in the *next* repetition after a counter reset. Every
  timed eval here is followed by ``llama_synchronize`` (llama-bench does the
  same), and :func:`fresh_context` synchronises before resetting counters.
- **Counts read as at least 1.** ``llama_perf_context`` reports
  ``max(1, n)``; a count of 1 with a time of exactly 0 ms is read as 0.
- The last generated token is never fed back to the model, so a generation
  of ``n`` tokens costs ``n - 1`` single-token decodes (``perf.n_eval``).

Prompts: the default model (gemma-3-270m) is a *base* model without a chat
template, so :func:`build_prompt` writes a few-shot dialogue (an intro line and
three "User: ... / Assistant: ..." exchanges, in English or Spanish) and stops
at the next user turn. A model whose GGUF carries
``tokenizer.chat_template`` gets its own template instead (rendered by
llama-cpp-python's ``Jinja2ChatFormatter``, i.e. what
``create_chat_completion`` would send), and the same token loop measures it.

Thread counts and context sizes are process-wide (llama.cpp thread pools,
allocations), so :func:`thread_sweep` and :func:`context_scaling` run each
configuration in a fresh process through :func:`saraikit.trials.run_isolated`
with the module-level worker :func:`bench_worker`. With 2 cores, a 2-thread
run is only meaningful when nothing else is running: llama.cpp's threads
meet at a barrier after every operation, so one busy core slows both down.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import psutil

from saraikit.core import stats
from saraikit.core.errors import ConfigError, MeasurementError, ModelError
from saraikit.engines.sessions import LlamaConfig, build_llama
from saraikit.core.store import Figure, Trial
from saraikit.core.timing import MemorySnapshot, memory_snapshot
from saraikit.core.trials import run_isolated

DEFAULT_MODEL = "gemma-3-270m-q4_k_m"
DEFAULT_SEED = 1234
DEFAULT_CONFIG = LlamaConfig(n_ctx=512, seed=DEFAULT_SEED)
BINDING_TOLERANCE = 0.03  # |binding t/s / llama.cpp t/s - 1| counted as "the same"

# ---------------------------------------------------------------------------
# Prompts

PROMPTS: dict[str, tuple[str, ...]] = {
    "en": (
        "What time is it in Tokyo?",
        "Set a timer for ten minutes.",
        "What's the weather like in London today?",
        "How do I boil an egg?",
        "Remind me to call my mother tomorrow at noon.",
        "What is the capital of Australia?",
        "Turn off the living room lights.",
        "How many centimeters are in an inch?",
    ),
    "es": (
        "¿Qué tiempo hace hoy en Madrid?",
        "¿Qué hora es en Ciudad de México?",
        "Pon una alarma a las siete de la mañana.",
        "¿Cuál es la capital de Argentina?",
        "¿Cómo se prepara un café con leche?",
        "Recuérdame comprar pan esta tarde.",
        "Apaga las luces de la cocina.",
        "¿Cuántos kilómetros hay en una milla?",
    ),
}


@dataclass(frozen=True)
class Dialogue:
    """A few-shot voice-assistant dialogue in one language."""

    intro: str
    user: str  # speaker labels
    assistant: str
    examples: tuple[tuple[str, str], ...]  # (question, answer); none answers a question in PROMPTS
    system: str  # the same instruction, for models with a chat template


FEW_SHOT: dict[str, Dialogue] = {
    "en": Dialogue(
        intro="The following is a conversation with a helpful voice assistant. "
        "The assistant answers in one or two short, friendly sentences.",
        user="User",
        assistant="Assistant",
        examples=(
            ("What's two plus two?", "Two plus two is four."),
            ("Can you tell me a fun fact about octopuses?", "Sure! An octopus has three hearts."),
            ("What should I wear if it's raining?", "Take a waterproof jacket and an umbrella."),
        ),
        system="You are a helpful voice assistant. Answer in one or two short, friendly sentences.",
    ),
    "es": Dialogue(
        intro="La siguiente es una conversación con un asistente de voz amable. "
        "El asistente responde con una o dos frases cortas.",
        user="Usuario",
        assistant="Asistente",
        examples=(
            ("¿Cuánto es dos más dos?", "Dos más dos son cuatro."),
            ("¿Me cuentas un dato curioso sobre los pulpos?", "¡Claro! Un pulpo tiene tres corazones."),
            ("¿Qué me pongo si llueve?", "Lleva un chubasquero y un paraguas."),
        ),
        system="Eres un asistente de voz amable. Responde con una o dos frases cortas.",
    ),
}


@dataclass(frozen=True)
class Prompt:
    """A prompt as the model will read it, with where to stop."""

    text: str
    stop: tuple[str, ...] = ()
    language: str = ""
    kind: str = "raw"  # "few-shot", "chat-template" or "raw"
    add_bos: bool = True  # let the tokenizer add BOS (False when a chat template already wrote it)
    special: bool = False  # parse special-token text such as "<start_of_turn>" (chat templates)


def _check_question(question: Any, where: str) -> str:
    if not isinstance(question, str) or not question.strip():
        raise ConfigError(f"{where}: the question/prompt is empty or not text: {question!r}")
    return question.strip()


def _check_language(language: str, where: str) -> Dialogue:
    if language not in FEW_SHOT:
        raise ConfigError(f"{where}: unknown language {language!r}; known: {', '.join(sorted(FEW_SHOT))}")
    return FEW_SHOT[language]


def few_shot_prompt(question: str, language: str = "en") -> Prompt:
    """The few-shot dialogue ending with ``question`` and an open assistant turn."""
    question = _check_question(question, "few_shot_prompt")
    dialogue = _check_language(language, "few_shot_prompt")
    lines = [dialogue.intro, ""]
    for example_question, answer in dialogue.examples:
        lines += [f"{dialogue.user}: {example_question}", f"{dialogue.assistant}: {answer}"]
    lines += [f"{dialogue.user}: {question}", f"{dialogue.assistant}:"]
    return Prompt("\n".join(lines), stop=(f"\n{dialogue.user}:",), language=language, kind="few-shot")


def chat_template(llm) -> str | None:
    """The GGUF's chat template, or None for a base model without one."""
    return llm.metadata.get("tokenizer.chat_template")


def chat_template_prompt(llm, question: str, language: str = "en") -> Prompt:
    """``question`` rendered with the model's own chat template (a system turn, then the user turn)."""
    question = _check_question(question, "chat_template_prompt")
    dialogue = _check_language(language, "chat_template_prompt")
    template = chat_template(llm)
    if template is None:
        raise ModelError(f"{llm.model_path}: the GGUF has no tokenizer.chat_template; use few_shot_prompt")
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    model = llm._model
    formatter = Jinja2ChatFormatter(template, eos_token=model.token_get_text(llm.token_eos()),
                                    bos_token=model.token_get_text(llm.token_bos()))
    messages = [{"role": "system", "content": dialogue.system}, {"role": "user", "content": question}]
    rendered = formatter(messages=messages)
    # Like create_chat_completion: the template writes BOS itself; end-of-generation tokens stop us anyway.
    return Prompt(rendered.prompt, stop=(), language=language, kind="chat-template",
                  add_bos=not rendered.added_special, special=True)


def build_prompt(llm, question: str, language: str = "en") -> Prompt:
    """The chat template when the model has one, otherwise the few-shot dialogue."""
    if chat_template(llm) is not None:
        return chat_template_prompt(llm, question, language)
    return few_shot_prompt(question, language)


# ---------------------------------------------------------------------------
# Loading and memory


@dataclass
class MappedFile:
    """How much of one mapped file is resident in this process (from /proc/self/smaps)."""

    path: str
    file_bytes: int
    rss_bytes: int  # resident pages of the mapping (counted in the process RSS)
    pss_bytes: int  # the same, shared pages divided by the number of processes mapping them
    private_bytes: int  # pages of the mapping no other process has


def mapped_file(path: str | Path) -> MappedFile | None:
    """Resident size of ``path``'s mapping in this process; None when it is not mapped."""
    wanted = os.path.realpath(path)
    for mapping in psutil.Process().memory_maps(grouped=True):
        if mapping.path and os.path.realpath(mapping.path) == wanted:
            return MappedFile(wanted, os.path.getsize(wanted), mapping.rss, mapping.pss,
                              mapping.private_clean + mapping.private_dirty)
    return None


@dataclass(frozen=True)
class RssSplit:
    """The kernel's split of this process's RSS (``/proc/self/status``; Linux only)."""

    anon_bytes: int  # private anonymous memory: KV cache, compute buffers, repacked weights, Python heap
    file_bytes: int  # file-backed pages: the mapped GGUF, shared libraries
    shmem_bytes: int


def rss_split() -> RssSplit | None:
    """RssAnon / RssFile / RssShmem of this process, or None where /proc is not available."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return None
    fields = {}
    for line in lines:
        name, _, value = line.partition(":")
        if name in ("RssAnon", "RssFile", "RssShmem"):
            fields[name] = int(value.split()[0]) * 1024  # reported in kB
    if len(fields) < 3:
        return None
    return RssSplit(fields["RssAnon"], fields["RssFile"], fields["RssShmem"])


@dataclass
class LoadedLlama:
    """A loaded model and what loading it cost."""

    llm: Any  # llama_cpp.Llama
    config: LlamaConfig
    model_path: str
    file_bytes: int
    load_s: float  # wall time of Llama(...)
    llama_load_ms: float  # llama.cpp's own t_load_ms
    memory_before: MemorySnapshot
    memory_after: MemorySnapshot
    mapped: MappedFile | None  # None when use_mmap is off (the weights were read into private memory)
    split_before: RssSplit | None = None
    split_after: RssSplit | None = None

    def memory_table(self) -> pd.DataFrame:
        """RSS, PSS, USS and RSS's anon/file split before and after loading, in MiB, with the GGUF size."""
        pairs = {name.replace("_bytes", "").upper(): (getattr(self.memory_before, name),
                                                      getattr(self.memory_after, name))
                 for name in ("rss_bytes", "pss_bytes", "uss_bytes")}
        if self.split_before is not None and self.split_after is not None:
            pairs["RSS anonymous"] = (self.split_before.anon_bytes, self.split_after.anon_bytes)
            pairs["RSS file-backed"] = (self.split_before.file_bytes, self.split_after.file_bytes)
        rows = []
        for metric, (before, after) in pairs.items():
            rows.append({"metric": metric, "before_MiB": _mib(before), "after_MiB": _mib(after),
                         "delta_MiB": _mib(after - before) if None not in (before, after) else None})
        rows.append({"metric": "GGUF file", "before_MiB": None, "after_MiB": _mib(self.file_bytes),
                     "delta_MiB": None})
        if self.mapped is not None:
            rows.append({"metric": "GGUF mapping resident (in RSS)", "before_MiB": None,
                         "after_MiB": _mib(self.mapped.rss_bytes), "delta_MiB": None})
        return pd.DataFrame(rows)


def _mib(value: int | None) -> float | None:
    return None if value is None else value / 2**20


GGUF_MAGIC = b"GGUF"


def check_gguf(model_path: str | Path) -> Path:
    """``model_path`` as a Path, or a ModelError when it is missing or not a GGUF file."""
    path = Path(model_path)
    if not path.is_file():
        raise ModelError(f"GGUF model not found: {path}")
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != GGUF_MAGIC:
        raise ModelError(f"{path} is not a GGUF file (starts with {magic!r}, expected {GGUF_MAGIC!r})")
    return path


def load(model_path: str | Path, config: LlamaConfig | None = None) -> LoadedLlama:
    """Load a GGUF with ``config`` (default :data:`DEFAULT_CONFIG`) and record time and memory."""
    config = config or DEFAULT_CONFIG
    path = check_gguf(model_path)
    before, split_before = memory_snapshot(), rss_split()
    start = time.perf_counter()
    llm = build_llama(path, config)
    load_s = time.perf_counter() - start
    after, split_after = memory_snapshot(), rss_split()
    return LoadedLlama(llm, config, str(path), path.stat().st_size, load_s, read_perf(llm).t_load_ms,
                       before, after, mapped_file(path), split_before, split_after)


def load_worker(model_path: str, config: dict) -> LoadedLlama:
    """Trial worker: :func:`load` in this process, returned without the model (``llm=None``)."""
    loaded = load(model_path, LlamaConfig.from_dict(config))
    return dataclasses.replace(loaded, llm=None)


def measure_load(model_path: str | Path, config: LlamaConfig | None = None,
                 timeout_s: float = 300.0) -> LoadedLlama:
    """:func:`load` in a fresh process, so earlier models and allocations do not blur the memory figures."""
    config = config or DEFAULT_CONFIG
    check_gguf(model_path)
    outcome = run_isolated(load_worker, str(model_path), config.to_dict(), timeout_s=timeout_s)
    if not outcome.ok:
        raise ModelError(f"loading {model_path} in a fresh process failed ({outcome.status}): {outcome.reason()}")
    return outcome.value


# ---------------------------------------------------------------------------
# llama.cpp's perf counters and a clean context


@dataclass(frozen=True)
class LlamaPerf:
    """llama.cpp's own timings since the last reset (``llama_perf_context``)."""

    t_load_ms: float
    t_p_eval_ms: float  # multi-token decodes ("prompt eval")
    n_p_eval: int
    t_eval_ms: float  # single-token decodes ("eval")
    n_eval: int
    n_reused: int


def _ctx(llm):
    return llm._ctx.ctx


def read_perf(llm) -> LlamaPerf:
    """llama.cpp's perf counters, after synchronising so that every decode is counted."""
    import llama_cpp

    if llm.context_params.no_perf:
        raise MeasurementError("llama.cpp perf counters are off for this context (no_perf=True)")
    llama_cpp.llama_synchronize(_ctx(llm))
    data = llama_cpp.llama_perf_context(_ctx(llm))

    def count(n: int, t_ms: float) -> int:  # llama.cpp reports max(1, n)
        return 0 if n == 1 and t_ms == 0.0 else n

    return LlamaPerf(data.t_load_ms, data.t_p_eval_ms, count(data.n_p_eval, data.t_p_eval_ms),
                     data.t_eval_ms, count(data.n_eval, data.t_eval_ms), data.n_reused)


def reset_perf(llm) -> None:
    import llama_cpp

    llama_cpp.llama_synchronize(_ctx(llm))  # a pending decode would otherwise land after the reset
    llama_cpp.llama_perf_context_reset(_ctx(llm))


def fresh_context(llm) -> None:
    """Forget every evaluated token (binding state and KV cache) and reset the perf counters."""
    import llama_cpp

    llama_cpp.llama_synchronize(_ctx(llm))
    llm.reset()
    llm._ctx.kv_cache_clear()
    reset_perf(llm)


# ---------------------------------------------------------------------------
# One generation


@dataclass
class Generation:
    """One streamed answer and its timings (all ms, from the moment the prompt string was given)."""

    text: str  # the answer, stripped, without the stop string or end-of-generation token
    n_prompt_tokens: int
    n_generated: int  # every token the model produced, including an EOS or the tokens of the stop string
    ttft_ms: float
    total_ms: float
    token_times_ms: list[float]  # arrival time of each generated token; [0] is the TTFT
    stop_reason: str  # "stop" (a stop string), "eos" (end-of-generation token) or "length" (max_tokens)
    perf: LlamaPerf  # llama.cpp's counters for this generation alone

    @property
    def inter_token_ms(self) -> list[float]:
        return np.diff(self.token_times_ms).tolist()

    @property
    def decode_tokens_per_s(self) -> float:
        """Tokens after the first, per second of the time after the first (NaN with one token)."""
        if self.n_generated < 2:
            return math.nan
        return (self.n_generated - 1) / ((self.token_times_ms[-1] - self.ttft_ms) / 1000)


def _check_positive_int(value: Any, name: str, where: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where}: {name} must be an int >= {minimum}, got {value!r}")
    return value


def _as_prompt(prompt: Prompt | str, stop: Sequence[str] | None) -> Prompt:
    if isinstance(prompt, str):
        prompt = Prompt(prompt)
    if not isinstance(prompt, Prompt):
        raise ConfigError(f"generate_once: prompt must be a Prompt or str, got {type(prompt).__name__}")
    _check_question(prompt.text, "generate_once")
    if stop is not None:
        prompt = dataclasses.replace(prompt, stop=tuple(stop))
    if any(not s for s in prompt.stop):
        raise ConfigError(f"generate_once: empty stop string in {prompt.stop!r}")
    return prompt


def _cut_at_stop(text: str, stops: tuple[str, ...]) -> str | None:
    """``text`` up to the first stop string, or None when there is none."""
    cuts = [text.index(stop) for stop in stops if stop in text]
    return text[: min(cuts)] if cuts else None


def generate_once(llm, prompt: Prompt | str, max_tokens: int = 48, temperature: float = 0.0,
                  seed: int = DEFAULT_SEED, stop: Sequence[str] | None = None) -> Generation:
    """Stream one answer to ``prompt`` from a fresh context (see the module docstring).

    A plain string is sent as it is, with no stop strings unless ``stop`` is given.
    """
    import llama_cpp

    prompt = _as_prompt(prompt, stop)
    _check_positive_int(max_tokens, "max_tokens", "generate_once")
    if not isinstance(temperature, (int, float)) or temperature < 0:
        raise ConfigError(f"generate_once: temperature must be >= 0 (0 = greedy), got {temperature!r}")
    vocab = llm._model.vocab
    fresh_context(llm)
    llm.set_seed(seed)

    start = time.perf_counter_ns()
    prompt_tokens = llm.tokenize(prompt.text.encode("utf-8"), add_bos=prompt.add_bos, special=prompt.special)
    if len(prompt_tokens) + max_tokens > llm.n_ctx():
        raise ConfigError(f"generate_once: {len(prompt_tokens)} prompt tokens + max_tokens={max_tokens} "
                          f"exceed n_ctx={llm.n_ctx()}")
    completion: list[int] = []
    token_times: list[float] = []
    text, stop_reason = "", "length"
    tokens = llm.generate(prompt_tokens, temp=float(temperature), repeat_penalty=1.0, reset=False)
    try:
        for token in tokens:
            token_times.append((time.perf_counter_ns() - start) / 1e6)
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                stop_reason = "eos"
                break
            completion.append(token)
            text = llm.detokenize(completion, prev_tokens=prompt_tokens).decode("utf-8", errors="ignore")
            cut = _cut_at_stop(text, prompt.stop)
            if cut is not None:
                text, stop_reason = cut, "stop"
                break
            if len(token_times) == max_tokens:
                break
    finally:
        tokens.close()
    total_ms = (time.perf_counter_ns() - start) / 1e6
    return Generation(text.strip(), len(prompt_tokens), len(token_times), token_times[0], total_ms,
                      token_times, stop_reason, read_perf(llm))


def run_prompts(llm, prompts: Sequence[str], language: str = "en", max_tokens: int = 48,
                repetitions: int = 1, warmup: int = 1, temperature: float = 0.0) -> pd.DataFrame:
    """Answer each question (wrapped by :func:`build_prompt`) and tabulate latency and text.

    ``warmup`` untimed generations of the first question run first (the first
    call after loading pays for page faults on the mapped weights).
    """
    if isinstance(prompts, str) or not prompts:
        raise ConfigError("run_prompts: prompts must be a non-empty list of questions")
    _check_positive_int(repetitions, "repetitions", "run_prompts")
    _check_positive_int(warmup, "warmup", "run_prompts", minimum=0)
    built = [build_prompt(llm, question, language) for question in prompts]
    for _ in range(warmup):
        generate_once(llm, built[0], max_tokens, temperature)
    rows = []
    for repetition in range(repetitions):
        for index, (question, prompt) in enumerate(zip(prompts, built)):
            gen = generate_once(llm, prompt, max_tokens, temperature)
            rows.append({
                "language": language, "prompt_index": index, "repetition": repetition,
                "question": question, "prompt_kind": prompt.kind, "temperature": float(temperature),
                "n_prompt_tokens": gen.n_prompt_tokens, "n_generated": gen.n_generated,
                "ttft_ms": gen.ttft_ms, "total_ms": gen.total_ms,
                "decode_tokens_per_s": gen.decode_tokens_per_s, "stop_reason": gen.stop_reason,
                "llama_prompt_eval_ms": gen.perf.t_p_eval_ms, "llama_n_p_eval": gen.perf.n_p_eval,
                "answer": gen.text,
            })
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------
# llama-bench-style throughput


@dataclass
class Throughput:
    """One llama-bench-style test: per-repetition wall times and llama.cpp's times for the same calls."""

    test: str  # "pp" (prompt processing) or "tg" (text generation)
    n_tokens: int
    depth: int  # tokens already in the context before the timed part (llama-bench -d)
    n_threads: int
    n_threads_batch: int
    wall_ms: list[float]
    llama_ms: list[float]
    warmup: int

    @property
    def name(self) -> str:
        return f"{self.test}{self.n_tokens}" + (f" @ d{self.depth}" if self.depth else "")

    @property
    def n(self) -> int:
        return len(self.wall_ms)

    @property
    def tokens_per_s(self) -> list[float]:
        return [self.n_tokens / (ms / 1000) for ms in self.wall_ms]

    @property
    def llama_tokens_per_s(self) -> list[float]:
        return [self.n_tokens / (ms / 1000) for ms in self.llama_ms]

    @property
    def mean_tokens_per_s(self) -> float:
        return float(np.mean(self.tokens_per_s))

    @property
    def std_tokens_per_s(self) -> float:
        return float(np.std(self.tokens_per_s, ddof=1)) if self.n > 1 else math.nan

    def format(self) -> str:
        return (f"{self.name}: {self.mean_tokens_per_s:.2f} ± {self.std_tokens_per_s:.2f} t/s "
                f"(n={self.n}, threads={self.n_threads}/{self.n_threads_batch})")


def _bench_tokens(llm, count: int, seed: int) -> list[int]:
    """BOS (when the model adds one) then seeded random token ids, like llama-bench."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, llm.n_vocab(), size=count).tolist()
    if llm._model.add_bos_token():
        tokens[0] = llm.token_bos()
    return tokens


def _eval_synced(llm, tokens: list[int]) -> None:
    import llama_cpp

    llm.eval(tokens)
    llama_cpp.llama_synchronize(_ctx(llm))


def _bench(llm, test: str, n_tokens: int, repetitions: int, warmup: int, depth: int, seed: int) -> Throughput:
    where = f"bench_{test}"
    _check_positive_int(n_tokens, "the token count", where, minimum=2 if test == "pp" else 1)
    _check_positive_int(repetitions, "repetitions", where)
    _check_positive_int(warmup, "warmup", where, minimum=0)
    _check_positive_int(depth, "depth", where, minimum=0)
    if depth + n_tokens > llm.n_ctx():
        raise ConfigError(f"{where}: depth {depth} + {n_tokens} tokens exceed n_ctx={llm.n_ctx()}")
    tokens = _bench_tokens(llm, depth + n_tokens, seed)
    timed_tokens = tokens[depth:]
    wall_ms, llama_ms = [], []
    for repetition in range(warmup + repetitions):
        fresh_context(llm)
        if depth:
            _eval_synced(llm, tokens[:depth])
            reset_perf(llm)
        start = time.perf_counter_ns()
        if test == "pp":
            _eval_synced(llm, timed_tokens)
        else:
            for token in timed_tokens:
                _eval_synced(llm, [token])
        elapsed_ms = (time.perf_counter_ns() - start) / 1e6
        perf = read_perf(llm)
        counted, counted_ms = (perf.n_p_eval, perf.t_p_eval_ms) if test == "pp" else (perf.n_eval, perf.t_eval_ms)
        if counted != n_tokens:
            raise MeasurementError(f"{where}: llama.cpp counted {counted} tokens for a {n_tokens}-token test "
                                   f"({perf}); the protocol no longer matches this llama.cpp version")
        if repetition >= warmup:
            wall_ms.append(elapsed_ms)
            llama_ms.append(counted_ms)
    import llama_cpp

    ctx = _ctx(llm)
    return Throughput(test, n_tokens, depth, llama_cpp.llama_n_threads(ctx), llama_cpp.llama_n_threads_batch(ctx),
                      wall_ms, llama_ms, warmup)


def bench_pp(llm, n_prompt: int = 512, repetitions: int = 5, warmup: int = 1, depth: int = 0,
             seed: int = 0) -> Throughput:
    """llama-bench ``pp<n_prompt>``: one eval of ``n_prompt`` fixed tokens per repetition."""
    return _bench(llm, "pp", n_prompt, repetitions, warmup, depth, seed)


def bench_tg(llm, n_gen: int = 128, repetitions: int = 5, warmup: int = 1, depth: int = 0,
             seed: int = 0) -> Throughput:
    """llama-bench ``tg<n_gen>``: ``n_gen`` single-token evals per repetition, no sampling."""
    return _bench(llm, "tg", n_gen, repetitions, warmup, depth, seed)


@dataclass
class BindingCheck:
    """Our wall clock through the Python binding vs llama.cpp's own time, same decode calls."""

    test: str
    n: int
    binding_tokens_per_s: float  # all timed tokens / all wall time
    llama_tokens_per_s: float  # all timed tokens / all of llama.cpp's time
    ratio: float  # binding / llama.cpp: below 1 when the binding adds time
    per_repetition: list[float]
    tolerance: float

    @property
    def within_tolerance(self) -> bool:
        return abs(self.ratio - 1.0) <= self.tolerance


def compare_with_llama_cpp(result: Throughput, tolerance: float = BINDING_TOLERANCE) -> BindingCheck:
    """How far the binding's wall-clock tokens/s is from llama.cpp's internal tokens/s for ``result``'s runs."""
    total_tokens = result.n_tokens * result.n
    binding = total_tokens / (sum(result.wall_ms) / 1000)
    llama = total_tokens / (sum(result.llama_ms) / 1000)
    per_repetition = [llama_ms / wall_ms for wall_ms, llama_ms in zip(result.wall_ms, result.llama_ms)]
    return BindingCheck(result.name, result.n, binding, llama, binding / llama, per_repetition, tolerance)


# ---------------------------------------------------------------------------
# Sweeps, each configuration in a fresh process


def bench_worker(model_path: str, config: dict, tests: list[tuple[str, int, int]], repetitions: int,
                 warmup: int) -> dict:
    """Trial worker: load once, run each ``(test, n_tokens, depth)``; return memory and Throughputs."""
    loaded = load(model_path, LlamaConfig.from_dict(config))
    results = []
    for test, n_tokens, depth in tests:
        results.append(_bench(loaded.llm, test, n_tokens, repetitions, warmup, depth, seed=0))
    after = memory_snapshot()
    return {"load_s": loaded.load_s, "rss_after_load": loaded.memory_after.rss_bytes,
            "uss_after_load": loaded.memory_after.uss_bytes, "uss_after_bench": after.uss_bytes,
            "results": results}


def _throughput_row(result: Throughput) -> dict:
    """Mean ± std of per-repetition tokens/s (llama-bench's figure) and the pooled rates the ratio uses.

    The two differ when repetitions vary a lot: the mean of rates favours fast
    repetitions, the pooled rate (all tokens / all time) weights by time.
    """
    check = compare_with_llama_cpp(result)
    return {"test": result.name, "kind": result.test, "n_tokens": result.n_tokens, "depth": result.depth,
            "n": result.n, "tokens_per_s_mean": result.mean_tokens_per_s,
            "tokens_per_s_std": result.std_tokens_per_s, "wall_ms_mean": float(np.mean(result.wall_ms)),
            "tokens_per_s_pooled": check.binding_tokens_per_s,
            "llama_tokens_per_s_pooled": check.llama_tokens_per_s, "binding_ratio": check.ratio,
            "samples_ms": result.wall_ms}


def _isolated_rows(model_path, config: LlamaConfig, tests, repetitions, warmup, timeout_s, labels: dict) -> list:
    outcome = run_isolated(bench_worker, str(model_path), config.to_dict(), tests, repetitions, warmup,
                           timeout_s=timeout_s)
    if not outcome.ok:
        return [{**labels, "status": outcome.status, "test": f"{test}{n}" + (f" @ d{d}" if d else ""),
                 "error": outcome.reason(), "config": config.to_dict()} for test, n, d in tests]
    value = outcome.value
    memory = {"rss_after_load": value["rss_after_load"], "uss_after_load": value["uss_after_load"],
              "uss_after_bench": value["uss_after_bench"]}
    return [{**labels, "status": "ok", **_throughput_row(result), **memory, "error": "",
             "config": config.to_dict()} for result in value["results"]]


def thread_sweep(model_path: str | Path, threads: Sequence[int] = (1, 2), n_prompt: int = 512, n_gen: int = 128,
                 repetitions: int = 5, warmup: int = 1, config: LlamaConfig | None = None,
                 timeout_s: float = 900.0) -> pd.DataFrame:
    """pp and tg tokens/s per thread count (``n_threads`` = ``n_threads_batch``, like llama-bench ``-t``)."""
    base = config or DEFAULT_CONFIG
    check_gguf(model_path)
    if not threads:
        raise ConfigError("thread_sweep: threads is empty")
    rows = []
    for count in threads:
        _check_positive_int(count, "a thread count", "thread_sweep")
        variant = dataclasses.replace(base, n_threads=count, n_threads_batch=count)
        tests = [("pp", n_prompt, 0), ("tg", n_gen, 0)]
        rows += _isolated_rows(model_path, variant, tests, repetitions, warmup, timeout_s, {"n_threads": count})
    return pd.DataFrame(rows)


def context_scaling(model_path: str | Path, n_ctx: Sequence[int] = (512, 1024, 2048),
                    prompt_lengths: Sequence[int] = (128, 448, 960, 1984), n_gen: int = 64,
                    repetitions: int = 3, warmup: int = 1, config: LlamaConfig | None = None,
                    timeout_s: float = 900.0) -> pd.DataFrame:
    """Prompt processing of each prompt length, and tg ``n_gen`` after it, per context size.

    Lengths that do not fit (``length + n_gen > n_ctx``) get a "skipped" row.
    """
    base = config or DEFAULT_CONFIG
    check_gguf(model_path)
    if not n_ctx or not prompt_lengths:
        raise ConfigError("context_scaling: n_ctx and prompt_lengths must not be empty")
    rows = []
    for size in n_ctx:
        _check_positive_int(size, "an n_ctx", "context_scaling")
        variant = dataclasses.replace(base, n_ctx=size, n_batch=None, n_ubatch=None)
        fitting = [length for length in prompt_lengths if length + n_gen <= size]
        rows += [{"n_ctx": size, "prompt_length": length, "status": "skipped",
                  "error": f"prompt_length + n_gen = {length + n_gen} > n_ctx"}
                 for length in prompt_lengths if length not in fitting]
        tests = [test for length in fitting for test in (("pp", length, 0), ("tg", n_gen, length))]
        if tests:
            measured = _isolated_rows(model_path, variant, tests, repetitions, warmup, timeout_s, {"n_ctx": size})
            for row, (test, n_tokens, depth) in zip(measured, tests):  # rows come back in test order
                rows.append({**row, "prompt_length": n_tokens if test == "pp" else depth})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------
# Results-store helpers


def load_trial(loaded: LoadedLlama, model_name: str | None = None, model_sha256: str | None = None) -> Trial:
    """Experiment ``llm_load``: load time, memory before/after, the GGUF's size and resident mapping."""
    figures = [Figure("load_time", loaded.load_s, "s", n=1),
               Figure("llama_cpp_load_time", loaded.llama_load_ms, "ms", n=1,
                      extra={"source": "llama.cpp llama_perf_context.t_load_ms"}),
               Figure("gguf_file_size", loaded.file_bytes, "bytes", n=1)]
    for stage, snapshot in (("before", loaded.memory_before), ("after", loaded.memory_after)):
        for key in ("rss_bytes", "pss_bytes", "uss_bytes"):
            value = getattr(snapshot, key)
            if value is not None:
                figures.append(Figure(f"{key.replace('_bytes', '')}_{stage}_load", value, "bytes", n=1))
    for stage, split in (("before", loaded.split_before), ("after", loaded.split_after)):
        if split is not None:
            figures += [Figure(f"rss_anon_{stage}_load", split.anon_bytes, "bytes", n=1),
                        Figure(f"rss_file_{stage}_load", split.file_bytes, "bytes", n=1)]
    if loaded.mapped is not None:
        figures += [Figure("gguf_mapped_rss", loaded.mapped.rss_bytes, "bytes", n=1,
                           extra={"note": "file-backed pages of the mmapped GGUF, counted in RSS"}),
                    Figure("gguf_mapped_pss", loaded.mapped.pss_bytes, "bytes", n=1)]
    return Trial("llm_load", config=loaded.config.to_dict(), config_key=loaded.config.key(), figures=figures,
                 model_name=model_name or Path(loaded.model_path).stem, model_sha256=model_sha256,
                 method={"timer": "time.perf_counter around Llama(...)", "memory": "psutil memory_full_info",
                         "use_mmap": loaded.config.use_mmap})


def prompts_trial(frame: pd.DataFrame, config: LlamaConfig, max_tokens: int, model_name: str | None = None,
                  model_sha256: str | None = None) -> Trial:
    """Experiment ``llm_prompts``: TTFT, total latency and decode speed over the rows of :func:`run_prompts`."""
    if frame.empty:
        raise MeasurementError("prompts_trial: no rows to store")
    n = len(frame)
    figures = []
    for column, metric in (("ttft_ms", "ttft"), ("total_ms", "total_latency")):
        summary = stats.summarize(frame[column].to_numpy())
        figures += [Figure(f"{metric}_p50", summary.p50, "ms", n=n),
                    Figure(f"{metric}_mean", summary.mean, "ms", n=n),
                    Figure(f"{metric}_p50_ci_low", summary.p50_ci_low, "ms", n=n, provenance="derived"),
                    Figure(f"{metric}_p50_ci_high", summary.p50_ci_high, "ms", n=n, provenance="derived")]
    decode = frame["decode_tokens_per_s"].dropna()
    figures += [Figure("decode_tokens_per_s_mean", float(decode.mean()), "tokens/s", n=len(decode),
                       provenance="derived"),
                Figure("prompt_tokens_mean", float(frame["n_prompt_tokens"].mean()), "tokens", n=n),
                Figure("generated_tokens_mean", float(frame["n_generated"].mean()), "tokens", n=n)]
    distinct = {column: sorted(map(str, frame[column].unique())) for column in ("language", "prompt_kind")}
    trial_config = {"llama": config.to_dict(), "max_tokens": max_tokens,
                    "temperature": sorted(map(float, frame["temperature"].unique())),
                    "languages": distinct["language"], "prompt_kind": distinct["prompt_kind"],
                    "n_prompts": int(frame["prompt_index"].nunique())}
    return Trial("llm_prompts", config=trial_config, figures=figures, samples=frame["total_ms"].tolist(),
                 model_name=model_name, model_sha256=model_sha256,
                 method={"generation": "streamed llm.generate from a fresh context", "ttft": "prompt string "
                         "to first sampled token", "prefix_reuse": "defeated (reset + kv_cache_clear)"})


def _throughput_figures(row: dict) -> list[Figure]:
    n = row["n"]
    return [Figure("tokens_per_s_mean", row["tokens_per_s_mean"], "tokens/s", n=n, provenance="derived"),
            Figure("tokens_per_s_std", row["tokens_per_s_std"], "tokens/s", n=n, provenance="derived"),
            Figure("wall_time_mean", row["wall_ms_mean"], "ms", n=n),
            Figure("tokens_per_s_pooled", row["tokens_per_s_pooled"], "tokens/s", n=n, provenance="derived",
                   extra={"definition": "all timed tokens / all wall time"}),
            Figure("llama_cpp_tokens_per_s_pooled", row["llama_tokens_per_s_pooled"], "tokens/s", n=n,
                   provenance="derived", extra={"source": "llama.cpp perf counters for the same decode calls"}),
            Figure("binding_vs_llama_cpp_ratio", row["binding_ratio"], "x", n=n, provenance="derived",
                   extra={"within_tolerance": abs(row["binding_ratio"] - 1) <= BINDING_TOLERANCE,
                          "tolerance": BINDING_TOLERANCE})]


def throughput_trial(result: Throughput, config: LlamaConfig, model_name: str | None = None,
                     model_sha256: str | None = None) -> Trial:
    """Experiment ``llm_pp`` or ``llm_tg`` for one :class:`Throughput`."""
    row = _throughput_row(result)
    return Trial(f"llm_{result.test}", figures=_throughput_figures(row), samples=result.wall_ms,
                 config={"llama": config.to_dict(), "test": result.name, "n_tokens": result.n_tokens,
                         "depth": result.depth, "n_threads": result.n_threads,
                         "n_threads_batch": result.n_threads_batch},
                 model_name=model_name, model_sha256=model_sha256,
                 method={"protocol": "llama-bench style, llm.eval + llama_synchronize, no sampling",
                         "warmup": result.warmup, "repetitions": result.n})


def _sweep_trials(frame: pd.DataFrame, experiment: str, labels: tuple[str, ...], model_name, model_sha256):
    trials = []
    for row in frame.to_dict("records"):
        if row["status"] == "skipped":
            continue
        ok = row["status"] == "ok"
        config = {"llama": row.get("config"), "test": row.get("test"),
                  **{label: row.get(label) for label in labels}}
        trials.append(Trial(experiment, config=config, status="ok" if ok else "failed",
                            error=None if ok else f"{row['status']}: {row['error']}",
                            figures=_throughput_figures(row) if ok else [],
                            samples=row["samples_ms"] if ok else None,
                            model_name=model_name, model_sha256=model_sha256,
                            method={"isolated": True, "protocol": "llama-bench style"}))
    return trials


def thread_trials(frame: pd.DataFrame, model_name: str | None = None, model_sha256: str | None = None) -> list[Trial]:
    """Experiment ``llm_threads``: one trial per (thread count, test) row of :func:`thread_sweep`."""
    return _sweep_trials(frame, "llm_threads", ("n_threads",), model_name, model_sha256)


def context_trials(frame: pd.DataFrame, model_name: str | None = None, model_sha256: str | None = None) -> list[Trial]:
    """Experiment ``llm_context``: one trial per (n_ctx, test) row of :func:`context_scaling`."""
    return _sweep_trials(frame, "llm_context", ("n_ctx", "prompt_length"), model_name, model_sha256)


# ---------------------------------------------------------------------------
# Notebook helpers (04_llm_latency): which model, which threads, and the figures the conclusions use.
#
# Decisions: a thread count is called "best" only against the fewest-threads baseline with
# stats.compare (ratio of median wall times, bootstrap CI); the mean tokens/s gets a Student-t
# interval because a percentile bootstrap of 5 repetitions is too narrow; prompt processing is
# called linear in the prompt length when a least-squares line over every repetition explains
# at least ``min_r2`` of the variance, and the per-token cost at both ends is reported beside it
# (attention grows with the context, so it rises slowly even when the fit is good).
# watch_contention measures the CPU time *other* processes took during a block, because on a
# 2-core machine one busy core slows a 2-thread llama.cpp run several times over (its threads
# meet at a barrier after every operation); the notebook flags figures measured under contention.


@dataclass(frozen=True)
class ResolvedGguf:
    """A GGUF to measure: its path, the name results are stored under, and its sha256."""

    path: Path
    name: str
    sha256: str


def resolve_gguf(name_or_path: str | Path) -> ResolvedGguf:
    """A model name from ``models/`` (e.g. ``gemma-3-270m-q4_k_m``) or a path to any GGUF file."""
    from saraikit.models import catalog

    candidate = Path(name_or_path).expanduser()
    if candidate.is_file():
        path = check_gguf(candidate)
        return ResolvedGguf(path.resolve(), path.stem, catalog.sha256_file(path))
    if isinstance(name_or_path, Path) or os.sep in str(name_or_path) or str(name_or_path).endswith(".gguf"):
        raise ModelError(f"GGUF model not found: {candidate}")
    entry = catalog.model_entry(str(name_or_path))
    if entry.format != "gguf":
        raise ModelError(f"model {entry.name!r} is {entry.format}, not a GGUF (llama.cpp) model")
    path = check_gguf(catalog.model_path(entry.name))
    return ResolvedGguf(path, entry.name, entry.sha256)


def physical_cores() -> int:
    """Physical CPU cores (logical ones when psutil cannot tell)."""
    return psutil.cpu_count(logical=False) or psutil.cpu_count() or 1


def thread_counts(threads: Sequence[int] | None = None) -> list[int]:
    """``threads`` checked and sorted, or 1..logical cores when None."""
    if threads is None:
        return list(range(1, (psutil.cpu_count() or 1) + 1))
    if isinstance(threads, (str, int)) or not threads:
        raise ConfigError(f"thread counts must be a non-empty list of ints, got {threads!r}")
    return sorted({_check_positive_int(count, "a thread count", "thread_counts") for count in threads})


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Student-t confidence interval of the mean; NaNs with fewer than two values."""
    from scipy import stats as sps

    values = np.asarray(values, dtype=float)
    if values.size < 2:
        return math.nan, math.nan
    low, high = sps.t.interval(confidence, values.size - 1, loc=values.mean(), scale=sps.sem(values))
    return float(low), float(high)


def throughput_table(results: Sequence[Throughput], confidence: float = 0.95) -> pd.DataFrame:
    """One row per llama-bench test: mean ± std tokens/s, its CI, and the binding-vs-llama.cpp check."""
    rows = []
    for result in results:
        check = compare_with_llama_cpp(result)
        low, high = mean_ci(result.tokens_per_s, confidence)
        rows.append({"test": result.name, "threads": f"{result.n_threads}/{result.n_threads_batch}",
                     "n": result.n, "tokens_per_s_mean": result.mean_tokens_per_s,
                     "tokens_per_s_std": result.std_tokens_per_s, "ci_low": low, "ci_high": high,
                     "binding_tokens_per_s": check.binding_tokens_per_s,
                     "llama_cpp_tokens_per_s": check.llama_tokens_per_s, "binding_ratio": check.ratio,
                     "within_tolerance": check.within_tolerance})
    return pd.DataFrame(rows)


def thread_comparison(sweep: pd.DataFrame) -> pd.DataFrame:
    """Each thread count of :func:`thread_sweep` against the fewest threads, per test.

    ``time_ratio`` is median wall time / the baseline's (below 1 = faster), with its
    bootstrap CI and verdict from :func:`saraikit.stats.compare`. ``is_best`` marks the
    highest mean tokens/s per test; ``best_is_significant`` says whether that count is
    significantly faster than the baseline (always False when the baseline is best).
    """
    ok = sweep[sweep["status"] == "ok"] if "status" in sweep else sweep.iloc[0:0]
    if ok.empty:
        raise MeasurementError("thread_comparison: the sweep has no successful rows")
    rows = []
    for kind, group in ok.groupby("kind", sort=False):
        group = group.sort_values("n_threads")
        baseline = group.iloc[0]
        best_threads = int(group.loc[group["tokens_per_s_mean"].idxmax(), "n_threads"])
        for row in group.itertuples():
            comparison = stats.compare(baseline["samples_ms"], row.samples_ms)
            rows.append({"kind": kind, "test": row.test, "n_threads": int(row.n_threads), "n": int(row.n),
                         "tokens_per_s_mean": row.tokens_per_s_mean, "tokens_per_s_std": row.tokens_per_s_std,
                         "baseline_threads": int(baseline["n_threads"]), "time_ratio": comparison.ratio,
                         "ci_low": comparison.ci_low, "ci_high": comparison.ci_high,
                         "p_value": comparison.p_value,
                         "verdict": "baseline" if row.Index == baseline.name else comparison.verdict,
                         "is_best": int(row.n_threads) == best_threads})
    frame = pd.DataFrame(rows)
    frame["best_is_significant"] = frame["is_best"] & (frame["verdict"] == "faster")
    return frame


def prompt_length_fit(context: pd.DataFrame, min_r2: float = 0.99) -> pd.DataFrame:
    """Per ``n_ctx``: least-squares line of prompt-processing time against prompt length.

    Fits every repetition's wall time of the ``pp`` rows of :func:`context_scaling`
    (scipy ``linregress``). ``linear`` is ``r2 >= min_r2`` with at least three lengths;
    ``ms_per_token_first``/``_last`` are the measured mean ms per prompt token at the
    shortest and longest length.
    """
    from scipy import stats as sps

    if not 0 < min_r2 <= 1:
        raise ConfigError(f"prompt_length_fit: min_r2 must be in (0, 1], got {min_r2!r}")
    pp = context[(context["status"] == "ok") & (context["kind"] == "pp")] if "kind" in context else context.iloc[0:0]
    if pp.empty:
        raise MeasurementError("prompt_length_fit: no successful prompt-processing rows")
    rows = []
    for size, group in pp.groupby("n_ctx"):
        group = group.sort_values("prompt_length")
        x = np.concatenate([[length] * len(samples) for length, samples in zip(group["prompt_length"],
                                                                              group["samples_ms"])])
        y = np.concatenate([np.asarray(samples, dtype=float) for samples in group["samples_ms"]])
        lengths = len(group)
        fit = sps.linregress(x, y) if lengths >= 2 else None
        r2 = fit.rvalue ** 2 if fit is not None else math.nan
        first, last = group.iloc[0], group.iloc[-1]
        rows.append({"n_ctx": int(size), "lengths": lengths, "n_samples": len(y),
                     "slope_ms_per_token": fit.slope if fit else math.nan,
                     "intercept_ms": fit.intercept if fit else math.nan, "r2": r2,
                     "ms_per_token_first": first["wall_ms_mean"] / first["prompt_length"],
                     "ms_per_token_last": last["wall_ms_mean"] / last["prompt_length"],
                     "shortest": int(first["prompt_length"]), "longest": int(last["prompt_length"]),
                     "linear": bool(lengths >= 3 and r2 >= min_r2)})
    return pd.DataFrame(rows)


@dataclass
class Contention:
    """CPU time other processes used while a measurement ran (filled in when the block ends)."""

    wall_s: float = math.nan
    other_cpu_s: float = math.nan  # machine-wide busy CPU time minus this process and its reaped children
    logical_cores: int = 0

    @property
    def other_cores(self) -> float:
        """Average number of cores busy with other work."""
        return self.other_cpu_s / self.wall_s if self.wall_s > 0 else math.nan

    def format(self) -> str:
        return (f"other processes kept {self.other_cores:.2f} of {self.logical_cores} logical cores busy "
                f"on average over {self.wall_s:.0f} s")


def _busy_cpu_s() -> float:
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def _own_cpu_s() -> float:
    own = psutil.Process().cpu_times()
    return own.user + own.system + own.children_user + own.children_system


@contextlib.contextmanager
def watch_contention():
    """``with watch_contention() as c: ...`` then ``c.other_cores``.

    Fresh-process trials count as ours once they are joined (their CPU time lands
    in ``children_*``), so only unrelated work is left in ``other_cpu_s``.
    """
    result = Contention(logical_cores=psutil.cpu_count() or 1)
    busy, own, start = _busy_cpu_s(), _own_cpu_s(), time.perf_counter()
    yield result
    result.wall_s = time.perf_counter() - start
    result.other_cpu_s = max(0.0, (_busy_cpu_s() - busy) - (_own_cpu_s() - own))
