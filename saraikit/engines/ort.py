"""ONNX Runtime sessions built from an :class:`OrtConfig`, read back, and run (plain or IOBinding).

Decisions:

- :class:`OrtConfig` is a frozen strict config (``saraikit.core.config``):
  defaults are ORT's own, so ``OrtConfig()`` means "whatever ONNX Runtime
  does by default"; frozen so it cannot drift from its ``key()`` after it
  was stored.
- Sessions run on ``CPUExecutionProvider`` only.
- :func:`read_back_ort_options` reads the settings from the built session
  (never from the config), so tests and notebooks can prove that each knob
  arrived. What cannot be read back is named in its docstring together with
  the other way the tests verify it.
- ``onnxruntime`` is imported inside functions: parsing a config must not
  load a native runtime.

The CPU arena (``arena_size``, ``arena_extend_strategy``): the Python API
ignores provider options for ``CPUExecutionProvider`` (ORT 1.31: they are
silently dropped and ``get_provider_options()`` reports ``{}``). The only
working route from Python is an arena allocator registered with the ORT
environment (``onnxruntime.create_and_register_allocator``) plus the session
entry ``session.use_env_allocators=1``. That allocator is process-wide and
shared by every session that opts in, so this module registers it once per
process and refuses a different arena setting later in the same process (run
such trials in separate processes, which ``saraikit.core.trials`` does
anyway). Leaving both knobs at their defaults keeps ORT's ordinary
per-session arena.

``session_config_entries`` are checked against :data:`KNOWN_SESSION_CONFIG_KEYS`
(keys present in ORT 1.31 that matter on CPU) because ORT itself accepts any
key and ignores typos. ``allow_unknown_entries=True`` is the escape for keys
this list does not know yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

import numpy as np

from saraikit.core.config import KeyedConfig, bad_value, check_bool, check_choice, check_int, check_optional_int
from saraikit.core.errors import ConfigError, ModelError
from saraikit.engines.modelfiles import existing_file

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
class OrtConfig(KeyedConfig):
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
            "graph_optimization_level": check_choice(
                owner, "graph_optimization_level", self.graph_optimization_level, tuple(GRAPH_OPTIMIZATION_LEVELS)
            ),
            "execution_mode": check_choice(owner, "execution_mode", self.execution_mode, tuple(EXECUTION_MODES)),
            "arena_extend_strategy": check_choice(
                owner, "arena_extend_strategy", self.arena_extend_strategy, ARENA_EXTEND_STRATEGIES
            ),
            "session_config_entries": self._checked_entries(owner),
        }
        for name, value in normalized.items():
            object.__setattr__(self, name, value)
        check_int(owner, "intra_op_num_threads", self.intra_op_num_threads, 0, note=" (0 = ORT default)")
        check_int(owner, "inter_op_num_threads", self.inter_op_num_threads, 0, note=" (0 = ORT default)")
        check_optional_int(owner, "arena_size", self.arena_size, 1, note=" (bytes; None = no limit)")
        for name in ("enable_cpu_mem_arena", "enable_mem_pattern", "enable_mem_reuse", "use_io_binding"):
            check_bool(owner, name, getattr(self, name))
        check_int(owner, "log_severity_level", self.log_severity_level, -1, 4, note=" (-1 = ORT default, 0 = verbose)")
        if self.uses_env_arena and not self.enable_cpu_mem_arena:
            raise ConfigError(
                f"{owner}: arena_size={self.arena_size!r} / arena_extend_strategy={self.arena_extend_strategy!r} "
                "configure the CPU arena, but enable_cpu_mem_arena is false"
            )

    def _checked_entries(self, owner: str) -> dict[str, str]:
        check_bool(owner, "allow_unknown_entries", self.allow_unknown_entries)
        entries = self.session_config_entries
        if not isinstance(entries, Mapping):
            raise bad_value(owner, "session_config_entries", entries, "a mapping of str -> str")
        for key, value in entries.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise bad_value(
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


def build_ort_session(model_path: str | Path, config: OrtConfig | None = None, graph: bytes | None = None):
    """An ``onnxruntime.InferenceSession`` on CPUExecutionProvider only, configured by ``config``.

    ``graph``: the serialized model to load instead of the file's bytes (a graph converted from
    ``model_path``, see :mod:`saraikit.models.ort_convert`); errors still name ``model_path``.
    """
    config = config or OrtConfig()
    path = existing_file(model_path, "ONNX model")
    import onnxruntime as ort

    options = _ort_session_options(config)
    try:
        source = graph if graph is not None else str(path)
        return ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
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
