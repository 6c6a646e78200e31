import math

import numpy as np
import pytest
from quality_helpers import RATE, tone, utterance
from quality_helpers import librivox_0880 as load_librivox_0880

from saraikit.core.errors import ConfigError, DataError
from saraikit.data import datasets
from saraikit.data.noise import measure_snr
from saraikit.quality.stt_eval import (
    MIN_CLIP_S,
    AccuracyRun,
    Utterance,
    audio_problem,
    load_utterances,
    make_bad_inputs,
    noise_sweeps,
    noisy_copies,
    score,
    transcribe_all,
)
from saraikit.quality.transcribe import SttSystem, Transcriber
from saraikit.quality.wer import NORMALIZES_TO_NOTHING

# --------------------------------------------------------------------------
# unit tests (no models)


def test_audio_problem_names_silence_and_short_clips():
    assert "silent" in audio_problem(np.zeros(RATE, dtype=np.float32))
    short = audio_problem(tone(0.2))
    assert "shorter than" in short and f"{MIN_CLIP_S:g} s" in short
    assert audio_problem(tone(1.0)) is None


def test_skipped_audio_and_references_are_listed_with_reasons():
    items = [utterance("good", "uno dos tres", 1.0), utterance("short", "uno", 0.1),
             Utterance("silent", "test", "es", "dos", np.zeros(RATE, dtype=np.float32)),
             utterance("dots", "...", 1.5)]
    calls = []

    def fake(samples, language):
        calls.append(samples.size)
        return "uno dos cuatro"

    result = score(transcribe_all(fake, items))
    assert len(calls) == 2  # the silent and short clips never reach the model
    assert result.report.n == 1 and result.report.wer == pytest.approx(1 / 3)
    skipped = result.skipped().set_index("id")
    assert skipped.loc["short", "stage"] == "audio" and "shorter than" in skipped.loc["short", "reason"]
    assert "silent" in skipped.loc["silent", "reason"]
    assert skipped.loc["dots", "reason"] == NORMALIZES_TO_NOTHING
    counted = next(f for f in result.figures() if f.metric == "utterances_skipped")
    assert counted.value == 3


def test_score_refuses_mixed_languages_and_all_skipped():
    mixed = transcribe_all(lambda s, l: "x", [utterance("a"), utterance("b", language="en")])
    with pytest.raises(DataError, match="one language"):
        score(mixed)
    silent = transcribe_all(lambda s, l: "x", [Utterance("s", "t", "es", "uno", np.zeros(RATE, np.float32))])
    with pytest.raises(DataError, match="all 1 were skipped"):
        score(silent)


def test_noisy_copies_hit_the_requested_snr_and_reuse_the_noise():
    items = [utterance(f"u{i}", seconds=1.0 + i / 10, frequency=200 + 40 * i, seed=i) for i in range(6)]
    for noise in ("white", "babble"):
        mixed, measured = noisy_copies(items, noise, 5.0, pool=items, seed=3)
        assert measured == pytest.approx([5.0] * 6, abs=0.01)
        again, _ = noisy_copies(items, noise, 5.0, pool=items, seed=3)
        assert all(np.array_equal(a.samples, b.samples) for a, b in zip(mixed, again))
        # same noise at another SNR: mixed - clean scales, it is not redrawn
        low, _ = noisy_copies(items, noise, 15.0, pool=items, seed=3)  # no peak rescaling at 5 or 15 dB
        n_high, n_low = mixed[0].samples - items[0].samples, low[0].samples - items[0].samples
        assert abs(np.corrcoef(n_high, n_low)[0, 1]) > 0.99
        assert measure_snr(items[0].samples, n_high) == pytest.approx(5.0, abs=0.05)


def test_babble_never_uses_the_target_clip():
    items = [utterance(f"u{i}", seed=i) for i in range(4)]
    with pytest.raises(ConfigError, match="needs 4 other clips"):
        noisy_copies(items[:1], "babble", 10.0, pool=items)  # 3 others only
    with pytest.raises(ConfigError, match="unknown noise"):
        noisy_copies(items[:1], "pink", 10.0, pool=items)


def test_noise_sweeps_rows_for_every_condition_plus_clean():
    items = [utterance(f"u{i}", "uno dos", seconds=1.0 + i / 10, seed=i) for i in range(5)]
    system = SttSystem("fake", "whisper-base")

    def factory(system, threads):
        return lambda samples, language: "uno dos"

    clean = transcribe_all(lambda s, l: "uno tres", items).assign(system="fake")
    run = noise_sweeps([system], {"es-test": items}, ("white", "babble"), (20, 0), babble_pool=items,
                       clean=clean, transcriber_factory=factory, n_boot=200)
    table = run.table
    assert sorted(zip(table["noise"], table["snr_db"])) == sorted(
        [("babble", 0.0), ("babble", 20.0), ("clean", math.inf), ("white", 0.0), ("white", 20.0)])
    clean_row = table[table["noise"] == "clean"].iloc[0]
    assert clean_row["wer_%"] == pytest.approx(50.0)
    noisy = table[table["noise"] != "clean"]
    assert (noisy["wer_%"] == 0).all() and (noisy["n_utterances"] == 5).all()
    assert noisy["measured_snr_db"].to_numpy() == pytest.approx(noisy["snr_db"].to_numpy(), abs=0.01)
    assert len(run.transcripts) == 4 * 5


def test_versus_clean_finds_the_highest_snr_that_hurts():
    items = [utterance(f"u{i}", "uno dos", seconds=1.0 + i / 10, seed=i) for i in range(6)]
    clean = transcribe_all(lambda s, l: "uno dos", items).assign(system="fake")
    calls = []

    def factory(system, threads):
        def transcribe(samples, language):  # conditions run in order: 20 dB heard perfectly, 0 dB a loop
            calls.append(samples.size)
            return "uno dos" if len(calls) <= len(items) else "los los los los los"
        return transcribe

    run = noise_sweeps([SttSystem("fake", "whisper-base")], {"es": items}, ("white",), (20, 0), clean=clean,
                       transcriber_factory=factory, n_boot=500)
    assert len(calls) == 2 * len(items)
    versus = run.versus_clean().set_index("snr_db")
    assert versus.loc[20.0, "diff_points"] == 0 and versus.loc[20.0, "identical_transcripts"] == 6
    # "uno dos" -> five words: 2 substitutions + 3 insertions = 250% WER, more insertions than reference words
    assert versus.loc[0.0, "diff_points"] == pytest.approx(250.0) and versus.loc[0.0, "significant"]
    assert run.first_significant().iloc[0]["highest_snr_worse_than_clean"] == 0.0
    runaways = run.table.set_index("snr_db")["runaway_utterances"]
    assert runaways[0.0] == 6 and runaways[20.0] == 0 and runaways[math.inf] == 0


def test_english_only_systems_skip_other_languages():
    system = SttSystem("fake.en", "whisper-tiny.en")
    assert system.supports("en") and not system.supports("es")
    run = noise_sweeps([system], {"es": [utterance("a")]}, ("white",), (10,), transcriber_factory=lambda s, t: None)
    assert run.table.empty


def test_paired_and_table_in_percent():
    items = [utterance(f"u{i}", "uno dos tres cuatro", seed=i) for i in range(6)]
    base = score(transcribe_all(lambda s, l: "uno dos tres cuatro", items), n_boot=200)
    worse = score(transcribe_all(lambda s, l: "uno dos tres", items), n_boot=200)
    run = AccuracyRun({("a", "set"): base, ("b", "set"): worse},
                      {"a": SttSystem("a", "whisper-base"), "b": SttSystem("b", "whisper-base")})
    table = run.table().set_index("system")
    assert table.loc["b", "wer_%"] == pytest.approx(25.0)
    paired = run.paired("a", "b").iloc[0]
    assert paired["diff_points"] == pytest.approx(25.0) and paired["significant"]
    assert paired["n_utterances"] == 6


def test_bad_inputs_are_dropped_or_skipped_with_reasons(tmp_path):
    clip = datasets.load("librivox_en").clips[1]
    dataset = datasets.read_manifest(make_bad_inputs(tmp_path, clip))
    assert dataset.dropped_counts() == {datasets.SILENT: 1, datasets.EMPTY_REFERENCE: 1}
    items = load_utterances(dataset.clips, dataset.name)
    result = score(transcribe_all(lambda s, l: clip.reference, items), n_boot=200)
    assert list(result.report.rows["id"]) == ["good"] and result.report.wer == 0.0
    reasons = dict(zip(result.skipped()["id"], result.skipped()["reason"]))
    assert reasons["dots_reference"] == NORMALIZES_TO_NOTHING
    assert "shorter than" in reasons["too_short"]


# --------------------------------------------------------------------------
# integration: real models and real speech


@pytest.fixture(scope="module")
def base_int8(provisioned):
    return Transcriber(SttSystem("whisper-base int8", "whisper-base", "int8"))


@pytest.fixture(scope="module")
def librivox_0880():
    return load_librivox_0880()


@pytest.mark.integration
def test_noise_sweep_with_whisper_has_the_requested_snrs(base_int8, librivox_0880):
    system = SttSystem("whisper-base int8", "whisper-base", "int8")
    run = noise_sweeps([system], {"en": librivox_0880}, ("white",), (20, 0),
                       transcriber_factory=lambda s, t: base_int8, n_boot=200)
    assert list(run.table["snr_db"]) == [20.0, 0.0]
    assert run.table["measured_snr_db"].to_numpy() == pytest.approx([20.0, 0.0], abs=0.01)
    assert (run.table["n_utterances"] == 1).all()
    assert run.table.iloc[0]["wer_%"] <= 20.0  # 20 dB white noise barely hurts a clean read sentence
