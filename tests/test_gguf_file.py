"""Tests for saraikit.models.gguf_file (through inspect_model): a hand-written GGUF, then the real Gemma file."""

from __future__ import annotations

import pytest

from saraikit.core.errors import ModelError
from saraikit.models.gguf_file import llama_ftype_name
from saraikit.models.inspect import inspect_model

from model_files import TEMPLATE, tiny_gguf


def test_bad_gguf_magic(tmp_path):
    path = tmp_path / "bad.gguf"
    path.write_bytes(b"GGML" + b"\0" * 60)
    with pytest.raises(ModelError, match=r"bad\.gguf.*magic"):
        inspect_model(path)


def test_truncated_gguf(tmp_path):
    path = tmp_path / "cut.gguf"
    path.write_bytes(tiny_gguf()[:60])
    with pytest.raises(ModelError, match=r"cut\.gguf.*truncated"):
        inspect_model(path)


def test_tiny_gguf_is_parsed_exactly(tmp_path):
    path = tmp_path / "tiny.gguf"
    path.write_bytes(tiny_gguf())
    info = inspect_model(path)
    d = info.details
    assert info.format == "gguf" and info.bytes == len(tiny_gguf())
    assert d["architecture"] == "llama" and d["name"] == "tiny test"
    assert d["file_type"] == 15 and d["quant_type"] == "Q4_K_M"
    assert d["context_length"] == 2048 and d["embedding_length"] == 64
    assert d["block_count"] == 2 and d["head_count"] == 4 and d["head_count_kv"] == 2
    assert d["vocab_size"] == 4
    assert d["metadata"]["tokenizer.ggml.tokens"] == ["<s>", "</s>", "a", "b"]
    assert d["metadata"]["tokenizer.ggml.token_type"] == {"array": "int32", "length": 100}
    assert d["metadata"]["llama.rope.freq_base"] == 10000.0
    assert d["has_chat_template"] is True and d["chat_template_head"] == TEMPLATE
    assert d["tensor_count"] == 2
    assert d["tensor_types"] == {"Q4_K": 1, "F32": 1}
    assert d["dominant_tensor_type"] == "Q4_K"
    assert d["parameters"] == 64 * 4 + 64


def test_llama_ftype_names():
    assert llama_ftype_name(15) == "Q4_K_M"
    assert llama_ftype_name(1) == "F16"
    assert llama_ftype_name(7) == "Q8_0"
    assert llama_ftype_name(1024 + 18) == "Q6_K (guessed)"
    assert llama_ftype_name(None) is None


@pytest.mark.integration
def test_gemma_gguf(gemma_gguf):
    d = inspect_model(gemma_gguf).details
    assert d["architecture"] == "gemma3" and d["name"] == "Gemma 3 270m"
    assert d["quant_type"] == "Q4_K_M"
    assert d["context_length"] == 32768
    assert d["embedding_length"] == 640 and d["block_count"] == 18
    assert d["head_count"] == 4 and d["head_count_kv"] == 1
    assert d["vocab_size"] == 262144
    assert d["has_chat_template"] is False  # this GGUF ships without tokenizer.chat_template
    assert d["tensor_count"] == 236
