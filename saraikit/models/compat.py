"""Stage-to-stage compatibility: what pipeline stages expect and produce, checked
against their declarations and their inspected models.

Scheme (``check_compatibility``)
--------------------------------
A stack declares stages and the links between them::

    stages:
      vad:
        model: silero-vad
        produces: {sample_rate: 16000}
      stt:
        model: whisper-base
        expects: {sample_rate: 16000}
        produces: {language: multilingual}
        has: {n_mels: 80, hidden_size: 512}
      llm:
        model: gemma3-270m
        expects: {language: multilingual}
        produces: {language: en}
        has: {context_length: 32768, hidden_size: 640}
      tts:
        model: piper-en_US-joe-medium
        expects: {language: en, "input:input": [1, "?"]}
        produces: {sample_rate: 22050}
    links: [[vad, stt], [stt, llm], [llm, tts]]

- ``stages`` may be omitted: then every top-level key except ``links`` is a
  stage. ``links`` may be omitted: then the stages form a chain in order.
- A fact is a name and a value. Known names: ``sample_rate``, ``hidden_size``,
  ``n_mels``, ``language``, ``context_length``, ``vocab_size``, and tensor
  shapes ``input:<name>`` / ``output:<name>`` (a list such as ``[1, 80, 3000]``
  or a string ``"[1,80,3000]"``; ``"?"``, a symbolic name or null is a dynamic
  dim that matches any size). Other names are compared for equality.
  ``expects`` / ``produces`` may also be lists of strings such as
  ``"sample_rate=16000"`` or ``"input:mel[1,80,3000]"``.
- Declarations choose what is checked. On a link ``(producer, consumer)`` every
  fact the producer declares in ``produces`` or the consumer declares in
  ``expects`` gives one row. A side that did not declare the fact takes it
  from its inspected model (``model_facts``), e.g. a Whisper folder's
  ``d_model`` as ``hidden_size``, a Piper voice's sample rate from its
  ``.onnx.json``, an ONNX model's input shapes. Inspected facts that nobody
  declared are not compared (a text pipeline's STT and LLM hidden sizes differ
  and that is fine).
- Each stage's declarations are also checked against its own inspected model
  (rows with ``check == "stage"``; producer_value is the declared value,
  consumer_value the model's). A stage may also declare ``has: {...}``: facts
  about its own model (``n_mels``, ``hidden_size``, ``context_length``) that
  are checked against inspection only, never across links — this catches a
  swapped model file without adding noise to the links.
- Languages compare on their primary subtag (``en_US`` == ``en``);
  ``multilingual`` (or ``*``) matches any language.
- ``infos`` maps a stage's ``model`` name (or the stage name) to its
  :class:`ModelInfo`; stages without one use their declarations only.
- Every row has ``ok`` (bool) and ``status``: ``ok``, ``mismatch`` (ok=False)
  or ``unverified`` (ok=True: one side has no value, so nothing could be
  compared). Mismatches never raise; a link naming an unknown stage is a
  ``ConfigError``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import yaml

from saraikit.core.errors import ConfigError
from saraikit.models.inspect import ModelInfo

COMPATIBILITY_COLUMNS = [
    "check", "link", "fact", "producer_value", "consumer_value",
    "producer_source", "consumer_source", "status", "ok", "message",
]  # fmt: skip
WILDCARD_LANGUAGES = {"multilingual", "multi", "*", "any"}


def model_facts(info: ModelInfo | None) -> dict[str, dict]:
    """Comparable facts of an inspected model: ``{"expects": {...}, "produces": {...}}``.

    ONNX and ONNX Runtime ``.ort``: ``input:<name>`` shapes (expects), ``output:<name>`` shapes
    (produces); a Piper voice config adds ``sample_rate`` (produces) and
    ``language`` (expects). Whisper (CTranslate2): ``sample_rate``, ``n_mels``
    (expects), ``hidden_size`` (both) and ``language`` (both, ``en`` or
    ``multilingual``). GGUF: ``hidden_size`` and ``vocab_size`` (both),
    ``context_length`` (expects)."""
    if info is None:
        return {"expects": {}, "produces": {}}
    d = info.details
    if info.format in ("onnx", "ort"):
        return _onnx_facts(d)
    if info.format == "gguf":
        shared = {"hidden_size": d["embedding_length"], "vocab_size": d["vocab_size"]}
        return {"expects": {**shared, "context_length": d["context_length"]}, "produces": shared}
    if info.format == "ctranslate2":
        return _ct2_facts(d)
    return {"expects": {}, "produces": {}}


def _onnx_facts(details: dict) -> dict:
    expects = {f"input:{v['name']}": v["shape"] for v in details["inputs"]}
    produces = {f"output:{v['name']}": v["shape"] for v in details["outputs"]}
    sidecar = details.get("sidecar") or {}
    if sidecar.get("sample_rate"):
        produces["sample_rate"] = sidecar["sample_rate"]
    if sidecar.get("language"):
        expects["language"] = sidecar["language"]
    return {"expects": expects, "produces": produces}


def _ct2_facts(details: dict) -> dict:
    shared = {"hidden_size": details.get("d_model")}
    if details.get("language"):
        shared["language"] = details["language"]
    expects = dict(shared)
    for fact in ("sample_rate", "n_mels"):
        if details.get(fact) is not None:
            expects[fact] = details[fact]
    return {"expects": expects, "produces": shared}


def check_compatibility(stack: dict, infos: dict[str, ModelInfo] | None = None) -> pd.DataFrame:
    """One row per checked fact: stage declarations vs their models, then every
    link's producer vs consumer. See the module docstring for the scheme."""
    infos = infos or {}
    stages = _stages(stack)
    links = _links(stack, stages)
    rows = []
    for name, stage in stages.items():
        rows += _stage_rows(name, stage, _model_info(name, stage, infos))
    for producer, consumer in links:
        rows += _link_rows(producer, consumer, stages, infos)
    return pd.DataFrame(rows, columns=COMPATIBILITY_COLUMNS)


def _stages(stack: dict) -> dict[str, dict]:
    if not isinstance(stack, dict):
        raise ConfigError(f"stack must be a mapping of stages, got {type(stack).__name__}")
    if "stages" in stack:
        stages = stack["stages"] or {}
    else:
        stages = {k: v for k, v in stack.items() if k != "links"}
    if not isinstance(stages, dict):
        raise ConfigError(f"stages must be a mapping of stage name to stage, got {stages!r}")
    for name, stage in stages.items():
        if not isinstance(stage, dict):
            raise ConfigError(f"stage {name!r} must be a mapping, got {stage!r}")
    return {name: _parsed_stage(name, stage) for name, stage in stages.items()}


def _parsed_stage(name: str, stage: dict) -> dict:
    expects = parse_facts(stage.get("expects"), f"{name}.expects")
    produces = parse_facts(stage.get("produces"), f"{name}.produces")
    has = parse_facts(stage.get("has"), f"{name}.has")
    return {**stage, "expects": expects, "produces": produces, "has": has}


def _links(stack: dict, stages: dict) -> list[tuple[str, str]]:
    names = list(stages)
    links = stack.get("links")
    if links is None:
        return list(zip(names, names[1:]))
    result = []
    for link in links:
        if not isinstance(link, (list, tuple)) or len(link) != 2 or any(end not in stages for end in link):
            raise ConfigError(f"link {link!r} must name two of the stages {names}")
        result.append((link[0], link[1]))
    return result


def parse_facts(raw, where: str = "facts") -> dict:
    """A facts mapping from a mapping, or from strings like ``"sample_rate=16000"``
    and ``"input:mel[1,80,3000]"``."""
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return dict(raw)
    if isinstance(raw, (list, tuple)):
        return dict(_parse_fact_string(item, where) for item in raw)
    raise ConfigError(f"{where} must be a mapping or a list of strings, got {raw!r}")


def _parse_fact_string(item, where: str) -> tuple[str, Any]:
    if not isinstance(item, str):
        raise ConfigError(f"{where}: a fact must be a string, got {item!r}")
    shape = re.fullmatch(r"\s*((?:input|output):[^\[]+)(\[.*\])\s*", item)
    if shape:
        return shape.group(1).strip(), as_shape(shape.group(2))
    if "=" not in item:
        raise ConfigError(f"{where}: cannot read fact {item!r}; use 'name=value' or 'input:name[dims]'")
    name, value = item.split("=", 1)
    return name.strip(), yaml.safe_load(value)


def as_shape(value) -> list | None:
    """A shape as a list of ints and dynamic markers, from a list or ``"[1,?,80]"``."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [v.strip() for v in value.strip().strip("[]").split(",") if v.strip()]
    return [_as_dim(v) for v in value]


def _as_dim(value):
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return value


def _model_info(name: str, stage: dict, infos: dict) -> ModelInfo | None:
    return infos.get(stage.get("model")) or infos.get(name)


@dataclass
class _Side:
    """One side of a comparison: who says it, the value (None: not stated), its source."""

    says: str
    value: Any
    source: str | None

    def __str__(self) -> str:
        if self.value is None:
            return f"{self.says} nothing"
        return f"{self.says} {self.value!r}" + (f" ({self.source})" if self.source else "")


def _stage_rows(name: str, stage: dict, info: ModelInfo | None) -> list[dict]:
    facts = model_facts(info)
    facts["has"] = {**facts["expects"], **facts["produces"]}
    model = f"model {stage.get('model') or name}"
    rows = []
    for side in ("expects", "produces", "has"):
        for fact, declared in stage[side].items():
            inspected = facts[side].get(fact)
            if inspected is not None:
                declared_side = _Side(f"{name} declares it {side}", declared, "declared")
                model_side = _Side(f"{model} has", inspected, "model")
                rows.append(_row("stage", name, fact, declared_side, model_side))
    return rows


def _link_rows(producer: str, consumer: str, stages: dict, infos: dict) -> list[dict]:
    p_stage, c_stage = stages[producer], stages[consumer]
    p_model = model_facts(_model_info(producer, p_stage, infos))["produces"]
    c_model = model_facts(_model_info(consumer, c_stage, infos))["expects"]
    rows = []
    for fact in dict.fromkeys([*p_stage["produces"], *c_stage["expects"]]):
        p_side = _Side(f"{producer} produces", *_resolve(fact, p_stage["produces"], p_model))
        c_side = _Side(f"{consumer} expects", *_resolve(fact, c_stage["expects"], c_model))
        rows.append(_row("link", f"{producer}->{consumer}", fact, p_side, c_side))
    return rows


def _resolve(fact: str, declared: dict, inspected: dict) -> tuple[Any, str | None]:
    if fact in declared:
        return declared[fact], "declared"
    if inspected.get(fact) is not None:
        return inspected[fact], "model"
    return None, None


def _row(check: str, link: str, fact: str, producer: _Side, consumer: _Side) -> dict:
    if producer.value is None or consumer.value is None:
        status = "unverified"
    elif facts_match(fact, producer.value, consumer.value):
        status = "ok"
    else:
        status = "mismatch"
    return {
        "check": check, "link": link, "fact": fact,
        "producer_value": producer.value, "consumer_value": consumer.value,
        "producer_source": producer.source, "consumer_source": consumer.source,
        "status": status, "ok": status != "mismatch",
        "message": f"{link} {fact}: {producer}, {consumer} -> {status}",
    }  # fmt: skip


def facts_match(fact: str, a, b) -> bool:
    """Whether two values of ``fact`` agree (shapes with dynamic dims,
    languages on their primary subtag, numbers numerically)."""
    if fact.startswith(("input:", "output:")) or isinstance(a, list) or isinstance(b, list):
        return _shapes_match(as_shape(a), as_shape(b))
    if fact == "language":
        return _languages_match(str(a), str(b))
    if _is_number(a) and _is_number(b):
        return float(a) == float(b)
    return str(a).strip().lower() == str(b).strip().lower()


def _shapes_match(a: list | None, b: list | None) -> bool:
    if a is None or b is None or len(a) != len(b):
        return False
    return all(not _is_static(x) or not _is_static(y) or x == y for x, y in zip(a, b))


def _is_static(dim) -> bool:
    return isinstance(dim, (int, np.integer)) and not isinstance(dim, bool) and dim >= 0


def _is_number(value) -> bool:
    if isinstance(value, bool):
        return False
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


def _languages_match(a: str, b: str) -> bool:
    a, b = a.strip().lower(), b.strip().lower()
    if a in WILDCARD_LANGUAGES or b in WILDCARD_LANGUAGES:
        return True
    return re.split(r"[-_]", a)[0] == re.split(r"[-_]", b)[0]
