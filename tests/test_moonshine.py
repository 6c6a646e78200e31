"""Moonshine base-en STT: tokenizer, greedy stopping rules, refusals, and the stage on the real .ort files."""

from __future__ import annotations

import numpy as np
import pytest

from saraikit.core.errors import ConfigError, DataError, ModelError
from saraikit.data import datasets
from saraikit.data.audio import Audio, read_audio
from saraikit.engines.build import build_stage
from saraikit.engines.greedy import greedy_decode, repetition_loop, token_budget
from saraikit.engines.moonshine import MoonshineSTT
from saraikit.engines.moonshine_tokenizer import MoonshineTokenizer
from saraikit.engines.ort import read_back_ort_options
from saraikit.engines.whisper import Transcript
from saraikit.models import catalog, inventory
from saraikit.models.inspect import inspect_model
from saraikit.models.stack import validate_stack
from saraikit.quality.wer import wer_report

from stage_helpers import LIBRIVOX, LIBRIVOX_REFERENCE, assert_well_formed, words

SPEC = {"model": "moonshine-base-en", "engine": "moonshine", "language": "en",
        "settings": {"intra_op_num_threads": 1}}
# "He was not an ill-disposed young man," as Moonshine base-en's token ids, between start (1) and end (2).
LIBRIVOX_IDS = [1, 940, 471, 451, 385, 4486, 48, 2218, 4752, 4123, 767, 47, 2]


@pytest.fixture(scope="module")
def moonshine_dir(model_paths):
    return model_paths["moonshine-base-en"].parent


@pytest.fixture(scope="module")
def moonshine(model_paths) -> MoonshineSTT:
    stage = build_stage("stt", SPEC)
    stage.load()
    return stage


# --- tokenizer --------------------------------------------------------------------------------


def _tokenizer_file(tmp_path, pieces):
    path = tmp_path / "tokenizer.bin"
    path.write_bytes(b"".join(bytes([len(p)]) + p for p in pieces))
    return path


def test_tokenizer_decodes_pieces_bytes_and_skips_special_ids(tmp_path):
    pieces = [b"<unk>", b"<s>", b"</s>", *(bytes([b]) for b in range(256)), "▁hi".encode(), "▁there".encode(), b","]
    tokenizer = MoonshineTokenizer.from_file(_tokenizer_file(tmp_path, pieces))
    assert len(tokenizer) == 262
    assert tokenizer.decode([1, 259, 261, 260, 2]) == "hi, there"
    # "é" is two UTF-8 bytes, i.e. two byte-fallback tokens (id = 3 + byte): joined before decoding.
    assert tokenizer.decode([259, 3 + 0xC3, 3 + 0xA9]) == "hié"
    assert tokenizer.decode([0, 259, 32500]) == "hi"  # <unk> and ids beyond the file decode to nothing
    assert tokenizer.decode([3 + 0xC3]) == "\ufffd"  # half a character: replaced, not an exception


def test_tokenizer_rejects_truncated_and_foreign_files(tmp_path):
    path = _tokenizer_file(tmp_path, [b"<unk>", b"<s>", b"</s>", b"abc"])
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ModelError, match=r"tokenizer\.bin: record 3 .* wants 3 bytes"):
        MoonshineTokenizer.from_file(path)
    _tokenizer_file(tmp_path, [b"a", b"b", b"c"])
    with pytest.raises(ModelError, match=r"tokenizer\.bin: the first records .* not a Moonshine"):
        MoonshineTokenizer.from_file(path)


@pytest.mark.integration
def test_real_tokenizer_decodes_known_ids(moonshine_dir):
    tokenizer = MoonshineTokenizer.from_file(moonshine_dir / "tokenizer.bin")
    assert len(tokenizer) == 32000
    assert [tokenizer.piece(i) for i in (940, 4486, 48, 2218)] == ["▁He", "▁ill", "-", "dis"]
    assert tokenizer.decode(LIBRIVOX_IDS) == "He was not an ill-disposed young man,"


# --- stopping rules ---------------------------------------------------------------------------


def _steps(sequence):
    calls = []

    def step(index, token):
        calls.append((index, token))
        return sequence[index]

    return step, calls


def test_repetition_loop_is_found_on_a_crafted_sequence():
    looping = [940, 471, 5, 6, 7, 5, 6, 7, 5, 6, 7, 5, 6, 7]  # a 3-token unit 4 times = 12 tokens
    step, calls = _steps(looping + [2])
    decoded = greedy_decode(step, 1, 2, budget=100)
    assert decoded.status == "looped"
    assert (decoded.loop.start, decoded.loop.period, decoded.loop.repeats) == (2, 3, 4)
    assert decoded.tokens == [940, 471, 5, 6, 7]  # one copy kept
    assert decoded.generated == 14 and decoded.steps == 14  # stopped at once, the end token never asked for
    assert calls[:3] == [(0, 1), (1, 940), (2, 471)]  # each step is fed the previous token


def test_ordinary_repetition_is_not_a_loop():
    assert repetition_loop([694, 47, 694, 47, 694]) is None  # "no, no, no"
    assert repetition_loop([5] * 11) is None  # 11 < 12 tokens
    assert repetition_loop([9, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5]).period == 1
    step, _ = _steps([694, 47, 694, 47, 694, 2])
    assert greedy_decode(step, 1, 2, budget=50).status == "ok"


def test_token_budget_is_honoured():
    assert token_budget(2.0) == 13 + 8  # ceil(2.0 * 6.5) + 8
    assert token_budget(0.1, per_s=6, extra=0) == 1
    step, calls = _steps(list(range(10, 60)))  # never ends, never repeats
    decoded = greedy_decode(step, 1, 2, budget=5)
    assert (decoded.status, decoded.tokens, decoded.generated, decoded.steps) == ("capped", [10, 11, 12, 13, 14], 5, 6)
    assert len(calls) == 6  # one step past the budget to see whether the end token comes
    step, _ = _steps([10, 11, 2])
    assert greedy_decode(step, 1, 2, budget=2).status == "ok"  # the end token right at the budget is complete


# --- refusals before anything is loaded -------------------------------------------------------


def test_spanish_is_refused_at_build_time_before_the_model_is_looked_up():
    spec = {"model": "no-such-model", "engine": "moonshine", "language": "es"}
    with pytest.raises(ConfigError, match=r"stt stage 'no-such-model' \(moonshine\): language 'es' is not supported"):
        build_stage("stt", spec)
    with pytest.raises(ConfigError, match="language 'es' is not supported"):
        build_stage("stt", {"model": "no-such-model", "engine": "moonshine", "settings": {"language": "es"}})
    with pytest.raises(ConfigError, match="English only"):
        MoonshineSTT("/nonexistent/encoder_model.ort", language="es")


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="max_tokens_per_s must be a number > 0"):
        build_stage("stt", {**SPEC, "model": "x", "settings": {"max_tokens_per_s": 0}})
    with pytest.raises(ConfigError, match="unknown setting.*beam_size"):
        build_stage("stt", {**SPEC, "settings": {"beam_size": 2}})
    with pytest.raises(ConfigError, match=r"graph 'onnx2' is not one of \['onnx', 'ort'\]"):
        build_stage("stt", {**SPEC, "model": "x", "settings": {"graph": "onnx2"}})
    validate_stack({"stages": {"stt": SPEC}})  # "moonshine" is a known engine of a stack file


def _folder(tmp_path, source, files):
    """A Moonshine-like folder holding ``files`` (name -> source file name) as symlinks."""
    folder = tmp_path / "moonshine"
    folder.mkdir()
    for name, origin in files.items():
        (folder / name).symlink_to(source / origin)
    return folder


@pytest.mark.integration
def test_missing_companion_files_are_named(tmp_path, moonshine_dir):
    folder = _folder(tmp_path, moonshine_dir, {"encoder_model.ort": "encoder_model.ort",
                                                "tokenizer.bin": "tokenizer.bin"})
    with pytest.raises(ModelError, match=r"Moonshine decoder not found: .*moonshine/decoder_model_merged\.ort"):
        MoonshineSTT(folder / "encoder_model.ort")
    (folder / "decoder_model_merged.ort").symlink_to(moonshine_dir / "decoder_model_merged.ort")
    (folder / "tokenizer.bin").unlink()
    with pytest.raises(ModelError, match=r"Moonshine tokenizer not found: .*moonshine/tokenizer\.bin"):
        MoonshineSTT(folder)


@pytest.mark.integration
def test_files_with_other_inputs_are_named_at_load(tmp_path, moonshine_dir):
    swapped = _folder(tmp_path, moonshine_dir, {"encoder_model.ort": "decoder_model_merged.ort",
                                                 "decoder_model_merged.ort": "encoder_model.ort",
                                                 "tokenizer.bin": "tokenizer.bin"})
    stage = MoonshineSTT(swapped)
    with pytest.raises(ModelError, match=r"moonshine/encoder_model\.ort: not a Moonshine encoder"):
        stage.load()
    (swapped / "encoder_model.ort").unlink()
    (swapped / "encoder_model.ort").symlink_to(moonshine_dir / "encoder_model.ort")
    with pytest.raises(ModelError, match=r"decoder_model_merged\.ort: not a Moonshine merged decoder: it lacks input_ids"):
        MoonshineSTT(swapped).load()


# --- the stage on the real model --------------------------------------------------------------


@pytest.mark.integration
def test_transcribes_librivox_with_its_events_and_meta(moonshine):
    result = moonshine.run(read_audio(LIBRIVOX))
    transcript = result.value
    assert isinstance(transcript, Transcript)
    assert transcript.text == "He was not an ill-disposed young man,"
    assert words(transcript.text.replace("-", " ")) == LIBRIVOX_REFERENCE
    assert (transcript.language, transcript.reason, len(transcript.segments)) == ("en", None, 1)
    assert [e.name for e in result.events] == ["start", "encoded", "first_output", "end"]
    assert_well_formed(result, "moonshine-base-en")
    meta = result.meta
    assert meta["audio_s"] == pytest.approx(2.99, abs=0.01)
    assert (meta["tokens"], meta["steps"], meta["token_cap"]) == (11, 12, 28)  # ceil(2.99 * 6.5) + 8
    assert (meta["looped"], meta["status"]) == (False, "ok")
    assert 0 < meta["encoder_s"] and 0 < meta["decode_s"] <= result.duration_s


@pytest.mark.integration
def test_normalized_wer_on_two_librivox_clips(moonshine):
    clips = [c for c in datasets.librivox_en().clips if c.id.endswith(("0890", "0930"))]
    hypotheses = [moonshine.run(read_audio(c.path)).value.text for c in clips]
    assert hypotheses == ["Unless to be rather cold-hearted and rather selfish is to be ill-disposed,",
                          "He might even have been made amiable himself."]
    report = wer_report([c.reference for c in clips], hypotheses, [c.id for c in clips], "en")
    assert report.n == 2 and report.n_words == 22  # hyphenated words count as two
    assert report.wer <= 0.05


@pytest.mark.integration
def test_session_options_reach_both_sessions(moonshine):
    assert read_back_ort_options(moonshine.encoder)["intra_op_num_threads"] == 1
    assert read_back_ort_options(moonshine.decoder)["intra_op_num_threads"] == 1
    assert (moonshine.layout.heads, moonshine.layout.head_dim, len(moonshine.layout.inputs)) == (8, 52, 32)
    assert len(moonshine.layout.step_outputs) == 1 + 16  # logits + the decoder half of the cache


@pytest.mark.integration
def test_token_cap_stops_the_real_decoder_and_says_so(model_paths):
    stage = build_stage("stt", {**SPEC, "settings": {"intra_op_num_threads": 1, "max_tokens_per_s": 1,
                                                     "max_tokens_extra": 0}})
    stage.load()
    result = stage.run(read_audio(LIBRIVOX))
    assert (result.meta["token_cap"], result.meta["tokens"], result.meta["status"]) == (3, 3, "capped")
    assert result.value.text == "He was not"
    assert result.value.reason.startswith("capped: no end token within the budget of 3 tokens for 2.99 s")


@pytest.mark.integration
def test_silent_and_empty_audio_give_an_explicit_empty_transcript(moonshine):
    for samples, reason in ((np.zeros(16000, dtype=np.float32), "silent audio"),
                            (np.zeros(0, dtype=np.float32), "empty audio")):
        result = moonshine.run(samples)
        assert result.value.text == "" and result.value.segments == []
        assert reason in result.value.reason
        assert [e.name for e in result.events] == ["start", "end"]  # the model was not run
        assert (result.meta["tokens"], result.meta["status"]) == (0, "empty")


@pytest.mark.integration
def test_wrong_sample_rate_is_a_data_error(moonshine):
    audio = read_audio(LIBRIVOX)
    with pytest.raises(DataError, match=r"expected 16000 Hz audio, got 8000 Hz"):
        moonshine.run(Audio(audio.samples[::2].copy(), 8000, LIBRIVOX))


# --- the .ort files in the inventory ----------------------------------------------------------


@pytest.mark.integration
def test_ort_format_inventory_row(model_paths, tmp_path):
    info = inspect_model(model_paths["moonshine-base-en"])
    d = info.details
    assert (info.format, info.bytes) == ("ort", model_paths["moonshine-base-en"].stat().st_size)
    assert d["inputs"] == [{"name": "input_values", "shape": ["batch_size", "num_samples"], "dtype": "float32"}]
    assert d["outputs"][0]["name"] == "last_hidden_state" and d["outputs"][0]["shape"][2] == 416
    assert (d["weight_dtype"], d["quantized"], d["opsets"]) == ("int8", True, {"ai.onnx": 14})
    assert d["op_histogram"]["MatMul"] > 0 and d["quantization_evidence"]["int8_initializers"] > 0
    assert d["quantization_note"].startswith("not applicable")
    assert set(d["companion_files"]) == {"decoder_model_merged.ort", "tokenizer.bin"}
    row = inventory.inventory_frame({"moonshine-base-en": info}).iloc[0]
    assert (row["format"], row["n_inputs"], row["n_outputs"], bool(row["quantized"]), row["quant_type"]) == (
        "ort", 1, 1, True, "int8")
    listed = [e for e in catalog.list_models() if "moonshine" in e.path]
    assert [(e.name, e.format) for e in listed] == [("moonshine-base-en", "ort")]  # the decoder is no user model


def test_a_user_ort_file_is_listed_and_a_damaged_one_is_a_model_error(tmp_path):
    (tmp_path / "my_encoder.ort").write_bytes(b"not a flatbuffer at all")
    listed = {e.name: e for e in catalog.list_models(tmp_path)}
    assert (listed["my_encoder"].format, listed["my_encoder"].role) == ("ort", "stt")
    with pytest.raises(ModelError, match=r"my_encoder\.ort: not an ONNX Runtime \.ort model"):
        inspect_model(tmp_path / "my_encoder.ort")
    inspected = inventory.inspect_all(tmp_path)
    assert "not an ONNX Runtime .ort model" in inspected["my_encoder"].error


def test_quantization_refuses_an_ort_file(tmp_path):
    from saraikit.experiments.quantize.run import quantize_all  # lazy: heavy import, only this test needs it

    (tmp_path / "encoder_model.ort").write_bytes(b"x")
    with pytest.raises(ModelError, match=r"encoder_model\.ort: not applicable: an \.ort file"):
        quantize_all(tmp_path / "encoder_model.ort", [], tmp_path / "out")


# --- the .ort files as ONNX graphs (what graph: onnx loads) --------------------------------------


@pytest.mark.integration
def test_converted_graphs_compute_what_the_ort_files_compute(moonshine_dir):
    import onnxruntime as ort

    from saraikit.models.ort_convert import ort_to_onnx

    samples = read_audio(LIBRIVOX).samples.astype(np.float32)[None, :]
    shipped = ort.InferenceSession(str(moonshine_dir / "encoder_model.ort"), providers=["CPUExecutionProvider"])
    converted = ort.InferenceSession(ort_to_onnx(moonshine_dir / "encoder_model.ort").SerializeToString(),
                                     providers=["CPUExecutionProvider"])
    expected = shipped.run(None, {"input_values": samples})[0]
    got = converted.run(None, {"input_values": samples})[0]
    assert got.shape == expected.shape == (1, 123, 416)
    assert np.abs(got - expected).max() < 1e-3 * np.abs(expected).max()
    decoder = ort_to_onnx(moonshine_dir / "decoder_model_merged.ort")
    assert [n.op_type for n in decoder.graph.node].count("If") == 1  # both branches kept as subgraphs
    assert {i.name for i in decoder.graph.input} >= {"input_ids", "encoder_hidden_states", "use_cache_branch"}


@pytest.mark.integration
def test_onnx_and_ort_graphs_give_the_same_tokens(model_paths):
    texts = {}
    for graph in ("onnx", "ort"):
        stage = build_stage("stt", {**SPEC, "settings": {"intra_op_num_threads": 1, "graph": graph}})
        stage.load()
        result = stage.run(read_audio(LIBRIVOX))
        texts[graph] = (result.value.text, result.meta["tokens"])
    assert texts["onnx"] == texts["ort"] == ("He was not an ill-disposed young man,", 11)


def test_a_damaged_ort_file_is_not_converted(tmp_path):
    from saraikit.models.ort_convert import ort_to_onnx

    bad = tmp_path / "encoder_model.ort"
    bad.write_bytes(b"not flatbuffers at all")
    with pytest.raises(ModelError, match=r"encoder_model\.ort: not an ONNX Runtime \.ort model"):
        ort_to_onnx(bad)
