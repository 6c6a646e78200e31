"""ONNX Runtime, llama.cpp and CTranslate2 sessions built from plain configs.

Decisions:

- One frozen dataclass per engine (:class:`OrtConfig`, :class:`LlamaConfig`,
  :class:`Ct2WhisperConfig`). Defaults are the engine's own defaults, so
  ``OrtConfig()`` means "whatever ONNX Runtime does by default". Frozen, so a
  config cannot drift from its :meth:`key` after it was stored; use
  ``dataclasses.replace`` for variants (it validates again).
- Validation runs in ``__post_init__``: a config built in code and one read
  from a dict are checked the same way. ``from_dict`` adds the unknown-key
  check. Enum-like options are strings, accepted in any case and stored in
  their canonical spelling, so configs stay JSON/YAML friendly and ``key()``
  does not depend on how a user typed them.
- ``key()`` is ``"<kind>-<12 hex>"``: a short SHA-256 of the sorted JSON of
  ``to_dict()``, stable across processes; results rows use it.
- Every ``build_*`` has a ``read_back_*`` that reads the settings from the
  built object (never from the config), so tests and notebooks can prove that
  each knob arrived. What cannot be read back is named in that function's
  docstring together with the other way the tests verify it.
- Engines are imported inside functions: parsing a config must not load three
  native runtimes.

ONNX Runtime's CPU arena (``arena_size``, ``arena_extend_strategy``): the
Python API ignores provider options for ``CPUExecutionProvider`` (ORT 1.31:
they are silently dropped and ``get_provider_options()`` reports ``{}``).
The only working route from Python is an arena allocator registered with the
ORT environment (``onnxruntime.create_and_register_allocator``) plus the
session entry ``session.use_env_allocators=1``. That allocator is
process-wide and shared by every session that opts in, so this module
registers it once per process and refuses a different arena setting later in
the same process (run such trials in separate processes, which
``saraikit.trials`` does anyway). Leaving both knobs at their defaults keeps
ORT's ordinary per-session arena.

``session_config_entries`` are checked against :data:`KNOWN_SESSION_CONFIG_KEYS`
(keys present in ORT 1.31 that matter on CPU) because ORT itself accepts any
key and ignores typos. ``allow_unknown_entries=True`` is the escape for keys
this list does not know yet.

llama-cpp-python quirks handled here: it silently clamps ``n_batch`` to
``n_ctx`` and ``n_ubatch`` to ``n_batch``, and turns ``seed=0`` into "random";
such explicit values are rejected instead of being changed behind the user's
back. ``n_batch`` / ``n_ubatch`` default to None ("the library's default,
capped") so that setting only ``n_ctx=256`` or ``n_batch=256`` stays valid.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

import numpy as np

from saraikit.core.errors import ConfigError, ModelError

# ---------------------------------------------------------------------------
# Shared validation helpers


def _bad_value(owner: str, key: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"{owner}.{key}: invalid value {value!r} ({type(value).__name__}); expected {expected}")


def _check_int(owner: str, key: str, value: Any, minimum: int, maximum: int | None = None, note: str = "") -> int:
    # bool is an int subclass; True as a thread count is a typo, not a number.
    in_range = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    if in_range and maximum is not None:
        in_range = value <= maximum
    if not in_range:
        bounds = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise _bad_value(owner, key, value, f"an int {bounds}{note}")
    return value


def _check_optional_int(owner: str, key: str, value: Any, minimum: int, note: str = "") -> int | None:
    if value is None:
        return None
    return _check_int(owner, key, value, minimum, note=f" or None{note}")


def _check_bool(owner: str, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _bad_value(owner, key, value, "true or false")
    return value


def _check_choice(owner: str, key: str, value: Any, choices: tuple[str, ...]) -> str:
    """Case-insensitive match against ``choices``; returns the canonical spelling."""
    by_lower = {choice.lower(): choice for choice in choices}
    if isinstance(value, str) and value.lower() in by_lower:
        return by_lower[value.lower()]
    listed = ", ".join(repr(choice) for choice in sorted(choices))
    raise _bad_value(owner, key, value, f"one of {listed} (any case)")


class _Config:
    """from_dict / to_dict / key shared by the engine configs."""

    KIND: ClassVar[str]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]):
        if not isinstance(values, Mapping):
            raise ConfigError(f"{cls.__name__}: expected a mapping of options, got {type(values).__name__}")
        valid = sorted(f.name for f in dataclasses.fields(cls))
        unknown = sorted(set(values) - set(valid))
        if unknown:
            raise ConfigError(
                f"{cls.__name__}: unknown key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(valid)}"
            )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def key(self) -> str:
        payload = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return f"{self.KIND}-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"


def _existing_file(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{what} not found: {path}")
    if not path.is_file():
        raise ModelError(f"{what} is not a file: {path}")
    return path


def _existing_dir(path: str | Path, what: str, required: tuple[str, ...]) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise ModelError(f"{what} folder not found: {path}")
    missing = [name for name in required if not (path / name).is_file()]
    if missing:
        raise ModelError(f"{what} folder {path} lacks {', '.join(missing)}")
    return path


# ---------------------------------------------------------------------------
# ONNX Runtime

# Our names -> onnxruntime.GraphOptimizationLevel member names.
GRAPH_OPTIMIZATION_LEVELS = {
    "DISABLE": "ORT_DISABLE_ALL",
    "BASIC": "ORT_ENABLE_BASIC",
    "EXTENDED": "ORT_ENABLE_EXTENDED",
    "LAYOUT": "ORT_ENABLE_LAYOUT",  # ORT >= 1.22
    "ALL": "ORT_ENABLE_ALL",
}
EXECUTION_MODES = {"SEQUENTIAL": "ORT_SEQUENTIAL", "PARALLEL": "ORT_PARALLEL"}
# Position = ORT's ArenaExtendStrategy value (OrtArenaCfg.arena_extend_strategy).
ARENA_EXTEND_STRATEGIES = ("kNextPowerOfTwo", "kSameAsRequested")

# Session config keys known to ORT 1.31 (present in its binary) that matter on CPU.
KNOWN_SESSION_CONFIG_KEYS = frozenset(
    {
        "session.allow_released_opsets_only",
        "session.disable_aot_function_inlining",
        "session.disable_cpu_ep_fallback",
        "session.disable_double_qdq_remover",
        "session.disable_prepacking",
        "session.disable_quant_qdq",
        "session.dynamic_block_base",
        "session.enable_dq_matmulnbits_fusion",
        "session.enable_quant_qdq_cleanup",
        "session.force_spinning_stop",
        "session.graph_optimizations_loop_level",
        "session.inter_op.allow_spinning",
        "session.inter_op.spin_backoff_max",
        "session.inter_op.spin_duration_us",
        "session.intra_op.allow_spinning",
        "session.intra_op.spin_backoff_max",
        "session.intra_op.spin_duration_us",
        "session.intra_op_thread_affinities",
        "session.load_model_format",
        "session.prepack.enable_parallel",
        "session.qdq_matmulnbits_accuracy_level",
        "session.qdqisint8allowed",
        "session.set_denormal_as_zero",
        "session.strict_shape_type_inference",
        "session.use_device_allocator_for_initializers",
        "session.x64quantprecision",
        "optimization.constant_folding_max_output_size_in_bytes",
        "optimization.disable_specified_optimizers",
        "optimization.enable_cast_chain_elimination",
        "optimization.enable_gelu_approximation",
        "mlas.disable_kleidiai",
    }
)
# Set by build_ort_session from the arena fields; a user entry would bypass the arena bookkeeping.
ENV_ALLOCATORS_KEY = "session.use_env_allocators"


@dataclass(frozen=True)
class OrtConfig(_Config):
    """ONNX Runtime session options; the defaults are ORT's own."""

    KIND: ClassVar[str] = "ort"

    graph_optimization_level: str = "ALL"
    intra_op_num_threads: int = 0  # 0 = ORT picks (one per physical core)
    inter_op_num_threads: int = 0  # 0 = ORT picks; used only with execution_mode PARALLEL
    execution_mode: str = "SEQUENTIAL"
    enable_cpu_mem_arena: bool = True
    arena_size: int | None = None  # bytes, the arena's memory limit (OrtArenaCfg.max_mem); None = no limit
    arena_extend_strategy: str = "kNextPowerOfTwo"
    enable_mem_pattern: bool = True
    enable_mem_reuse: bool = True
    session_config_entries: dict[str, str] = field(default_factory=dict)
    allow_unknown_entries: bool = False
    use_io_binding: bool = False  # read by make_runner, not by the session
    log_severity_level: int = -1

    def __post_init__(self) -> None:
        owner = type(self).__name__
        normalized = {
            "graph_optimization_level": _check_choice(
                owner, "graph_optimization_level", self.graph_optimization_level, tuple(GRAPH_OPTIMIZATION_LEVELS)
            ),
            "execution_mode": _check_choice(owner, "execution_mode", self.execution_mode, tuple(EXECUTION_MODES)),
            "arena_extend_strategy": _check_choice(
                owner, "arena_extend_strategy", self.arena_extend_strategy, ARENA_EXTEND_STRATEGIES
            ),
            "session_config_entries": self._checked_entries(owner),
        }
        for name, value in normalized.items():
            object.__setattr__(self, name, value)
        _check_int(owner, "intra_op_num_threads", self.intra_op_num_threads, 0, note=" (0 = ORT default)")
        _check_int(owner, "inter_op_num_threads", self.inter_op_num_threads, 0, note=" (0 = ORT default)")
        _check_optional_int(owner, "arena_size", self.arena_size, 1, note=" (bytes; None = no limit)")
        for name in ("enable_cpu_mem_arena", "enable_mem_pattern", "enable_mem_reuse", "use_io_binding"):
            _check_bool(owner, name, getattr(self, name))
        _check_int(owner, "log_severity_level", self.log_severity_level, -1, 4, note=" (-1 = ORT default, 0 = verbose)")
        if self.uses_env_arena and not self.enable_cpu_mem_arena:
            raise ConfigError(
                f"{owner}: arena_size={self.arena_size!r} / arena_extend_strategy={self.arena_extend_strategy!r} "
                "configure the CPU arena, but enable_cpu_mem_arena is false"
            )

    def _checked_entries(self, owner: str) -> dict[str, str]:
        _check_bool(owner, "allow_unknown_entries", self.allow_unknown_entries)
        entries = self.session_config_entries
        if not isinstance(entries, Mapping):
            raise _bad_value(owner, "session_config_entries", entries, "a mapping of str -> str")
        for key, value in entries.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise _bad_value(
                    owner, f"session_config_entries[{key!r}]", value, 'str keys and str values, e.g. "0" not 0'
                )
            if key == ENV_ALLOCATORS_KEY:
                raise ConfigError(
                    f"{owner}.session_config_entries: {key!r} is set from arena_size / arena_extend_strategy"
                )
            if key not in KNOWN_SESSION_CONFIG_KEYS and not self.allow_unknown_entries:
                raise ConfigError(
                    f"{owner}.session_config_entries: unknown key {key!r}; known keys: "
                    f"{', '.join(sorted(KNOWN_SESSION_CONFIG_KEYS))}; "
                    "set allow_unknown_entries=True to pass a key this list does not know"
                )
        return dict(entries)

    @property
    def uses_env_arena(self) -> bool:
        """True when the arena knobs differ from ORT's defaults (see module docstring)."""
        return self.arena_size is not None or self.arena_extend_strategy != ARENA_EXTEND_STRATEGIES[0]


# The arena allocator registered with the ORT environment by this process, if any.
_registered_arena = None  # onnxruntime.OrtArenaCfg


def _register_env_arena(config: OrtConfig) -> None:
    global _registered_arena
    import onnxruntime as ort

    wanted = (config.arena_size or 0, ARENA_EXTEND_STRATEGIES.index(config.arena_extend_strategy))
    if _registered_arena is not None:
        current = (_registered_arena.max_mem, _registered_arena.arena_extend_strategy)
        if current == wanted:
            return
        raise ConfigError(
            "OrtConfig: ONNX Runtime's CPU arena settings are process-wide and this process already uses "
            f"{_arena_fields(_registered_arena)}; build sessions with other arena settings in a fresh process"
        )
    arena = ort.OrtArenaCfg({"max_mem": wanted[0], "arena_extend_strategy": wanted[1]})
    memory_info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
    ort.create_and_register_allocator(memory_info, arena)
    _registered_arena = arena


def _arena_fields(arena) -> dict[str, Any]:
    return {
        "arena_size": arena.max_mem or None,
        "arena_extend_strategy": ARENA_EXTEND_STRATEGIES[arena.arena_extend_strategy],
    }


def _ort_session_options(config: OrtConfig):
    import onnxruntime as ort

    level_name = GRAPH_OPTIMIZATION_LEVELS[config.graph_optimization_level]
    if not hasattr(ort.GraphOptimizationLevel, level_name):
        raise ConfigError(
            f"OrtConfig.graph_optimization_level: {config.graph_optimization_level!r} needs a newer onnxruntime "
            f"than {ort.__version__}"
        )
    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level_name)
    options.intra_op_num_threads = config.intra_op_num_threads
    options.inter_op_num_threads = config.inter_op_num_threads
    options.execution_mode = getattr(ort.ExecutionMode, EXECUTION_MODES[config.execution_mode])
    options.enable_cpu_mem_arena = config.enable_cpu_mem_arena
    options.enable_mem_pattern = config.enable_mem_pattern
    options.enable_mem_reuse = config.enable_mem_reuse
    options.log_severity_level = config.log_severity_level
    for key, value in config.session_config_entries.items():
        options.add_session_config_entry(key, value)
    if config.uses_env_arena:
        _register_env_arena(config)
        options.add_session_config_entry(ENV_ALLOCATORS_KEY, "1")
    return options


def _ort_load_errors() -> tuple[type[BaseException], ...]:
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    return tuple(
        value for value in vars(state).values() if isinstance(value, type) and issubclass(value, Exception)
    )


def build_ort_session(model_path: str | Path, config: OrtConfig | None = None):
    """An ``onnxruntime.InferenceSession`` on CPUExecutionProvider only, configured by ``config``."""
    config = config or OrtConfig()
    path = _existing_file(model_path, "ONNX model")
    import onnxruntime as ort

    options = _ort_session_options(config)
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except _ort_load_errors() as error:
        raise ModelError(f"ONNX Runtime could not load {path}: {error}") from error


def _session_entry(options, key: str) -> str | None:
    try:
        return options.get_session_config_entry(key)
    except RuntimeError:  # ORT raises when the key was never set
        return None


def read_back_ort_options(session, extra_entry_keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """The options the built session holds, in :class:`OrtConfig`'s vocabulary.

    Read from the session's own ``SessionOptions`` (``session.get_session_options()``
    returns the C++ session's copy) and ``session.get_provider_options()``.

    Session config entries cannot be listed, only looked up: the result holds
    every key of :data:`KNOWN_SESSION_CONFIG_KEYS` plus ``extra_entry_keys``
    that is set on the session.

    ``arena_size`` / ``arena_extend_strategy`` are not exposed by the session.
    When the session uses the environment's allocator they are read from the
    ``OrtArenaCfg`` this module registered (both None if something else
    registered the environment allocator); otherwise the session owns an
    arena with ORT's defaults (no limit, kNextPowerOfTwo) when the arena is
    on, and none when it is off. Tests verify the arena independently from
    ORT's verbose log ("Creating BFCArena for Cpu ... memory limit ...").
    ``provider_options`` is reported as ORT returns it; for the CPU provider
    it is always empty.
    """
    options = session.get_session_options()
    levels = {member: name for name, member in GRAPH_OPTIMIZATION_LEVELS.items()}
    modes = {member: name for name, member in EXECUTION_MODES.items()}
    uses_env_arena = _session_entry(options, ENV_ALLOCATORS_KEY) == "1"
    entries = {}
    for key in sorted(KNOWN_SESSION_CONFIG_KEYS | set(extra_entry_keys)):
        value = _session_entry(options, key)
        if value is not None:
            entries[key] = value
    if not uses_env_arena:
        arena = {"arena_size": None, "arena_extend_strategy": ARENA_EXTEND_STRATEGIES[0]}
    elif _registered_arena is not None:
        arena = _arena_fields(_registered_arena)
    else:  # an environment allocator registered outside this module: settings unknown
        arena = {"arena_size": None, "arena_extend_strategy": None}
    return {
        "graph_optimization_level": levels[options.graph_optimization_level.name],
        "intra_op_num_threads": options.intra_op_num_threads,
        "inter_op_num_threads": options.inter_op_num_threads,
        "execution_mode": modes[options.execution_mode.name],
        "enable_cpu_mem_arena": options.enable_cpu_mem_arena,
        **arena,
        "uses_env_arena": uses_env_arena,
        "enable_mem_pattern": options.enable_mem_pattern,
        "enable_mem_reuse": options.enable_mem_reuse,
        "session_config_entries": entries,
        "log_severity_level": options.log_severity_level,
        "providers": session.get_providers(),
        "provider_options": session.get_provider_options(),
    }


def _bind(session, feeds: Mapping[str, np.ndarray]):
    """An IOBinding with ``feeds`` bound as CPU inputs and every output bound to CPU.

    Returns the binding and the input arrays, which must outlive it (the
    binding may point into their memory).
    """
    inputs = {name: np.ascontiguousarray(array) for name, array in feeds.items()}
    binding = session.io_binding()
    for name, array in inputs.items():
        binding.bind_cpu_input(name, array)
    for output in session.get_outputs():
        binding.bind_output(output.name, "cpu")
    return binding, inputs


def run_with_io_binding(session, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """One run through IOBinding; outputs as numpy arrays, in ``session.get_outputs()`` order."""
    binding, _inputs = _bind(session, feeds)
    session.run_with_iobinding(binding)
    return binding.copy_outputs_to_cpu()


def make_runner(session, feeds: Mapping[str, np.ndarray], use_io_binding: bool) -> Callable[[], list]:
    """A zero-argument callable that runs ``session`` once on ``feeds``, for timing.

    With IOBinding the binding is prepared here, outside the timed region, and
    each call returns ORT's output ``OrtValue`` list without copying (call
    ``.numpy()`` on them outside the timed region); without it each call is
    ``session.run(None, feeds)`` and returns numpy arrays.
    """
    if not use_io_binding:
        return lambda: session.run(None, feeds)
    binding, inputs = _bind(session, feeds)

    def run() -> list:
        session.run_with_iobinding(binding)
        return binding.get_outputs()

    run.inputs = inputs  # keeps the bound input memory alive as long as the runner
    return run


# ---------------------------------------------------------------------------
# llama.cpp (llama-cpp-python)

LLAMA_DEFAULT_SEED = 0xFFFFFFFF  # llama.cpp's LLAMA_DEFAULT_SEED: a random seed per run
LLAMA_DEFAULT_BATCH = 512  # llama-cpp-python's n_batch and n_ubatch defaults


@dataclass(frozen=True)
class LlamaConfig(_Config):
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
        _check_int(owner, "n_ctx", self.n_ctx, 0, note=" (0 = the model's training context)")
        for name in ("n_threads", "n_threads_batch", "n_batch", "n_ubatch"):
            _check_optional_int(owner, name, getattr(self, name), 1, note=" (None = llama-cpp-python default)")
        for name in ("use_mmap", "use_mlock", "flash_attn", "verbose"):
            _check_bool(owner, name, getattr(self, name))
        # llama-cpp-python turns 0 into its default seed, i.e. random.
        _check_int(owner, "seed", self.seed, 1, LLAMA_DEFAULT_SEED, note=f" ({LLAMA_DEFAULT_SEED} = random)")
        # llama-cpp-python would silently clamp explicit values that are too large; say so instead.
        if self.n_batch is not None and self.n_ctx and self.n_batch > self.n_ctx:
            raise _bad_value(owner, "n_batch", self.n_batch, f"an int <= n_ctx ({self.n_ctx})")
        if self.n_ubatch is not None and self.n_ubatch > self.effective_n_batch:
            raise _bad_value(owner, "n_ubatch", self.n_ubatch, f"an int <= n_batch ({self.effective_n_batch})")

    @property
    def effective_n_batch(self) -> int:
        """n_batch as llama-cpp-python will use it (an n_ctx of 0 is only known once the model is loaded)."""
        if self.n_batch is not None:
            return self.n_batch
        return min(LLAMA_DEFAULT_BATCH, self.n_ctx) if self.n_ctx else LLAMA_DEFAULT_BATCH


def build_llama(model_path: str | Path, config: LlamaConfig | None = None):
    """A ``llama_cpp.Llama`` on CPU configured by ``config``."""
    config = config or LlamaConfig()
    path = _existing_file(model_path, "GGUF model")
    from llama_cpp import Llama

    # None means "llama-cpp-python's default": leave those out rather than pass None.
    options = {name: value for name, value in config.to_dict().items() if value is not None}
    try:
        return Llama(model_path=str(path), n_gpu_layers=0, **options)
    except ValueError as error:  # llama-cpp-python reports load failures as ValueError
        raise ModelError(f"llama.cpp could not load {path}: {error}") from error


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
# CTranslate2 Whisper (and faster-whisper on top of it)

# Valid everywhere besides the device's own types: "default" keeps the saved type, "auto" picks the fastest.
CT2_GENERIC_COMPUTE_TYPES = ("auto", "default")


def ct2_compute_types() -> tuple[str, ...]:
    """Compute types valid on this machine's CPU, as ctranslate2 reports them."""
    import ctranslate2

    return tuple(sorted(ctranslate2.get_supported_compute_types("cpu"))) + CT2_GENERIC_COMPUTE_TYPES


@dataclass(frozen=True)
class Ct2WhisperConfig(_Config):
    """CTranslate2 Whisper options; the defaults are CTranslate2's. Device is always the CPU."""

    KIND: ClassVar[str] = "ct2"

    compute_type: str = "default"
    cpu_threads: int = 0  # threads per worker (ct2 intra_threads); 0 = ct2 default
    inter_threads: int = 1  # parallel workers (faster-whisper calls them num_workers)
    device: str = "cpu"

    def __post_init__(self) -> None:
        owner = type(self).__name__
        compute_type = _check_choice(owner, "compute_type", self.compute_type, ct2_compute_types())
        object.__setattr__(self, "compute_type", compute_type)
        _check_int(owner, "cpu_threads", self.cpu_threads, 0, note=" (0 = CTranslate2 default)")
        _check_int(owner, "inter_threads", self.inter_threads, 1)
        _check_choice(owner, "device", self.device, ("cpu",))


CT2_MODEL_FILES = ("model.bin",)


def build_ct2_whisper(model_dir: str | Path, config: Ct2WhisperConfig | None = None):
    """A ``ctranslate2.models.Whisper`` on CPU configured by ``config``."""
    config = config or Ct2WhisperConfig()
    directory = _existing_dir(model_dir, "CTranslate2 model", CT2_MODEL_FILES)
    import ctranslate2

    try:
        return ctranslate2.models.Whisper(
            str(directory),
            device="cpu",
            compute_type=config.compute_type,
            inter_threads=config.inter_threads,
            intra_threads=config.cpu_threads,
        )
    except (RuntimeError, ValueError) as error:
        raise ModelError(f"CTranslate2 could not load {directory}: {error}") from error


def build_faster_whisper(model_dir: str | Path, config: Ct2WhisperConfig | None = None):
    """A ``faster_whisper.WhisperModel`` on CPU configured by ``config``.

    The folder must hold ``tokenizer.json``: without it faster-whisper would
    fetch a tokenizer from the Hugging Face hub.
    """
    config = config or Ct2WhisperConfig()
    directory = _existing_dir(model_dir, "CTranslate2 Whisper model", CT2_MODEL_FILES + ("tokenizer.json",))
    from faster_whisper import WhisperModel

    try:
        return WhisperModel(
            str(directory),
            device="cpu",
            compute_type=config.compute_type,
            cpu_threads=config.cpu_threads,
            num_workers=config.inter_threads,
            local_files_only=True,
        )
    except (RuntimeError, ValueError) as error:
        raise ModelError(f"faster-whisper could not load {directory}: {error}") from error


def read_back_ct2_options(model) -> dict[str, Any]:
    """What the built model reports: ``compute_type``, ``inter_threads``, ``device``.

    Accepts a ``ctranslate2.models.Whisper`` or a ``faster_whisper.WhisperModel``.
    ``compute_type`` is the type CTranslate2 resolved, e.g. ``"int8"`` reads
    back as ``"int8_float32"`` on CPU and ``"default"`` as the saved type or
    its CPU substitute. ``cpu_threads`` is not exposed by ctranslate2; tests
    verify it by counting the OpenMP threads a worker starts on its first
    encode.
    """
    whisper = getattr(model, "model", model)  # faster-whisper wraps the ctranslate2 model
    return {
        "compute_type": whisper.compute_type,
        "inter_threads": whisper.num_workers,
        "device": whisper.device,
    }


# ---------------------------------------------------------------------------

CONFIG_KINDS: dict[str, type[_Config]] = {"ort": OrtConfig, "llama": LlamaConfig, "ct2": Ct2WhisperConfig}


def config_from_dict(kind: str, values: Mapping[str, Any]) -> OrtConfig | LlamaConfig | Ct2WhisperConfig:
    """The config of engine ``kind`` ("ort", "llama" or "ct2") built from ``values``."""
    if kind not in CONFIG_KINDS:
        raise ConfigError(f"unknown config kind {kind!r}; valid kinds: {', '.join(sorted(CONFIG_KINDS))}")
    return CONFIG_KINDS[kind].from_dict(values)
