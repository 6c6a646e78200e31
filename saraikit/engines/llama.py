"""llama.cpp (llama-cpp-python) models built from a :class:`LlamaConfig`, read back, and a clean context.

Decisions:

- :class:`LlamaConfig` is a frozen strict config (``saraikit.core.config``)
  whose defaults are llama-cpp-python's; CPU only (no GPU layers).
- :func:`read_back_llama_options` reads the settings from the built ``Llama``
  (never from the config); what cannot be read back is named in its
  docstring with the other way the tests verify it.
- ``llama_cpp`` is imported inside functions: parsing a config must not load
  a native runtime.

llama-cpp-python quirks handled by the config: it silently clamps ``n_batch``
to ``n_ctx`` and ``n_ubatch`` to ``n_batch``, and turns ``seed=0`` into
"random"; such explicit values are rejected instead of being changed behind
the user's back. ``n_batch`` / ``n_ubatch`` default to None ("the library's
default, capped") so that setting only ``n_ctx=256`` or ``n_batch=256`` stays
valid.

Context helpers (:func:`fresh_context`, :func:`read_perf`, :func:`reset_perf`)
handle three pitfalls of llama-cpp-python 0.3.x:

- **Prefix reuse.** ``Llama.generate`` (used by ``llm(prompt)`` and
  ``create_completion``) compares the new prompt's tokens with
  ``llm._input_ids`` and, when they share a prefix, keeps that part of the KV
  cache and evaluates only the rest, so a repeated prompt looks much faster.
  :func:`fresh_context` defeats this: ``llm.reset()`` (sets ``n_tokens`` to
  0, so nothing is compared) plus ``llm._ctx.kv_cache_clear()``
  (``llama_memory_clear``; ``reset()`` alone clears memory only for recurrent
  models). Callers then use ``llm.generate(..., reset=False)`` so the binding
  does no prefix matching at all.
- **Perf counters are charged at synchronisation.** llama.cpp adds a decode's
  time to its counters in ``llama_synchronize`` (called when logits are read),
  and files it under "prompt" when more than one token was queued since the
  last sync. ``llm.eval`` alone never synchronises, so a pending decode would
  land after a counter reset; :func:`reset_perf` and :func:`read_perf`
  synchronise first.
- **Counts read as at least 1.** ``llama_perf_context`` reports
  ``max(1, n)``; :func:`read_perf` reads a count of 1 with a time of exactly
  0 ms as 0.
"""

from __future__ import annotations

import contextlib
import io

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from saraikit.core.config import KeyedConfig, bad_value, check_bool, check_int, check_optional_int
from saraikit.core.errors import MeasurementError, ModelError
from saraikit.engines.modelfiles import existing_file

LLAMA_DEFAULT_SEED = 0xFFFFFFFF  # llama.cpp's LLAMA_DEFAULT_SEED: a random seed per run
LLAMA_DEFAULT_BATCH = 512  # llama-cpp-python's n_batch and n_ubatch defaults


@dataclass(frozen=True)
class LlamaConfig(KeyedConfig):
    """llama-cpp-python ``Llama`` options; the defaults are llama-cpp-python's. CPU only (no GPU layers)."""

    KIND: ClassVar[str] = "llama"

    n_ctx: int = 512  # 0 = the model's training context
    n_threads: int | None = None  # None = llama-cpp-python's default: half the logical CPUs
    n_threads_batch: int | None = None  # None = all logical CPUs
    n_batch: int | None = None  # None = llama-cpp-python's default: 512, capped at n_ctx
    n_ubatch: int | None = None  # None = llama-cpp-python's default: 512, capped at n_batch
    use_mmap: bool = True
    use_mlock: bool = False
    flash_attn: bool = False
    seed: int = LLAMA_DEFAULT_SEED
    verbose: bool = False  # llama-cpp-python defaults to True; quiet is the useful default in notebooks

    def __post_init__(self) -> None:
        owner = type(self).__name__
        check_int(owner, "n_ctx", self.n_ctx, 0, note=" (0 = the model's training context)")
        for name in ("n_threads", "n_threads_batch", "n_batch", "n_ubatch"):
            check_optional_int(owner, name, getattr(self, name), 1, note=" (None = llama-cpp-python default)")
        for name in ("use_mmap", "use_mlock", "flash_attn", "verbose"):
            check_bool(owner, name, getattr(self, name))
        # llama-cpp-python turns 0 into its default seed, i.e. random.
        check_int(owner, "seed", self.seed, 1, LLAMA_DEFAULT_SEED, note=f" ({LLAMA_DEFAULT_SEED} = random)")
        # llama-cpp-python would silently clamp explicit values that are too large; say so instead.
        if self.n_batch is not None and self.n_ctx and self.n_batch > self.n_ctx:
            raise bad_value(owner, "n_batch", self.n_batch, f"an int <= n_ctx ({self.n_ctx})")
        if self.n_ubatch is not None and self.n_ubatch > self.effective_n_batch:
            raise bad_value(owner, "n_ubatch", self.n_ubatch, f"an int <= n_batch ({self.effective_n_batch})")

    @property
    def effective_n_batch(self) -> int:
        """n_batch as llama-cpp-python will use it (an n_ctx of 0 is only known once the model is loaded)."""
        if self.n_batch is not None:
            return self.n_batch
        return min(LLAMA_DEFAULT_BATCH, self.n_ctx) if self.n_ctx else LLAMA_DEFAULT_BATCH


def build_llama(model_path: str | Path, config: LlamaConfig | None = None):
    """A ``llama_cpp.Llama`` on CPU configured by ``config``."""
    config = config or LlamaConfig()
    path = existing_file(model_path, "GGUF model")
    from llama_cpp import Llama

    # None means "llama-cpp-python's default": leave those out rather than pass None.
    options = {name: value for name, value in config.to_dict().items() if value is not None}
    # llama-cpp-python maps llama.cpp's warnings to ERROR and prints them to sys.stderr even when not
    # verbose; keep them out of reports, and put them in the error message when loading fails.
    log = io.StringIO()
    try:
        with contextlib.redirect_stderr(log) if not config.verbose else contextlib.nullcontext():
            return Llama(model_path=str(path), n_gpu_layers=0, **options)
    except ValueError as error:  # llama-cpp-python reports load failures as ValueError
        detail = f" (llama.cpp said: {log.getvalue().strip()[-500:]})" if log.getvalue().strip() else ""
        raise ModelError(f"llama.cpp could not load {path}: {error}{detail}") from error


def read_back_llama_options(llm) -> dict[str, Any]:
    """The options the built ``Llama`` holds, in :class:`LlamaConfig`'s vocabulary.

    ``n_ctx``, ``n_batch``, ``n_ubatch``, ``n_threads`` and ``n_threads_batch``
    are read from the llama.cpp context itself (``llama_n_ctx(ctx)``, ...).
    llama.cpp has no getter for the rest, so they come from the parameter
    structs llama-cpp-python handed to llama.cpp (``model_params``,
    ``context_params``) and its own ``_seed``. Tests verify ``use_mmap`` from
    ``/proc/self/maps`` and ``flash_attn`` from llama.cpp's verbose log.
    """
    import llama_cpp

    ctx = llm.ctx
    use_mmap, use_mlock = _llama_load_mode(llm.model_params)
    return {
        "n_ctx": llama_cpp.llama_n_ctx(ctx),
        "n_threads": llama_cpp.llama_n_threads(ctx),
        "n_threads_batch": llama_cpp.llama_n_threads_batch(ctx),
        "n_batch": llama_cpp.llama_n_batch(ctx),
        "n_ubatch": llama_cpp.llama_n_ubatch(ctx),
        "use_mmap": use_mmap,
        "use_mlock": use_mlock,
        "flash_attn": _llama_flash_attn(llm.context_params),
        "seed": llm._seed,
        "verbose": llm.verbose,
    }


def _llama_load_mode(model_params) -> tuple[bool, bool]:
    # llama-cpp-python >= 0.3.3x replaced use_mmap/use_mlock with one load_mode enum.
    if not hasattr(model_params, "load_mode"):
        return bool(model_params.use_mmap), bool(model_params.use_mlock)
    import llama_cpp

    mode = model_params.load_mode
    use_mmap = mode in (llama_cpp.LLAMA_LOAD_MODE_MMAP, llama_cpp.LLAMA_LOAD_MODE_MMAP_MLOCK)
    use_mlock = mode in (llama_cpp.LLAMA_LOAD_MODE_MLOCK, llama_cpp.LLAMA_LOAD_MODE_MMAP_MLOCK)
    return use_mmap, use_mlock


def _llama_flash_attn(context_params) -> bool:
    if not hasattr(context_params, "flash_attn_type"):
        return bool(context_params.flash_attn)
    import llama_cpp

    return context_params.flash_attn_type == llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED


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


def raw_context(llm):
    """The llama.cpp context pointer (``llama_context *``) behind a ``Llama``."""
    return llm._ctx.ctx


def read_perf(llm) -> LlamaPerf:
    """llama.cpp's perf counters, after synchronising so that every decode is counted."""
    import llama_cpp

    if llm.context_params.no_perf:
        raise MeasurementError("llama.cpp perf counters are off for this context (no_perf=True)")
    llama_cpp.llama_synchronize(raw_context(llm))
    data = llama_cpp.llama_perf_context(raw_context(llm))

    def count(n: int, t_ms: float) -> int:  # llama.cpp reports max(1, n)
        return 0 if n == 1 and t_ms == 0.0 else n

    return LlamaPerf(data.t_load_ms, data.t_p_eval_ms, count(data.n_p_eval, data.t_p_eval_ms),
                     data.t_eval_ms, count(data.n_eval, data.t_eval_ms), data.n_reused)


def reset_perf(llm) -> None:
    import llama_cpp

    llama_cpp.llama_synchronize(raw_context(llm))  # a pending decode would otherwise land after the reset
    llama_cpp.llama_perf_context_reset(raw_context(llm))


def fresh_context(llm) -> None:
    """Forget every evaluated token (binding state and KV cache) and reset the perf counters."""
    import llama_cpp

    llama_cpp.llama_synchronize(raw_context(llm))
    llm.reset()
    llm._ctx.kv_cache_clear()
    reset_perf(llm)
