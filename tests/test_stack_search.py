"""The stack search (07_stack_search): search space, quality budget, successive halving, the best stack file."""

import numpy as np
import pandas as pd
import pytest
import yaml

from saraikit.core.errors import ConfigError
from saraikit.experiments import e2e
from saraikit.experiments.stacksearch import candidates as space, halving, screen, summary
from saraikit.models import stack as stacks
from saraikit.quality.stt_eval import Utterance

FW_GIVEN = "faster-whisper int8 (language given)"
FW_DETECTED = "faster-whisper int8 (language detected)"


def _option(label):
    return next(o for o in space.stt_options("en") if o.label == label)


def test_options_name_their_language_and_moonshine_is_english_only():
    en, es = space.stt_options("en", margins=(64, 128)), space.stt_options("es", margins=(64, 128))
    assert en[0].label == space.REFERENCE_STT and en[0].spec["settings"]["window_frames"] == "full"
    assert "moonshine base-en" in [o.label for o in en] and "moonshine base-en" not in [o.label for o in es]
    assert all(o.spec.get("language") == "es" for o in es if o.label != FW_DETECTED)
    assert "language" not in next(o for o in es if o.label == FW_DETECTED).spec
    with pytest.raises(ConfigError, match="margin -1 must be an int >= 0"):
        space.stt_options("en", margins=(-1,))
    only = space.stt_options("en", encoders=("int8",), engines=("whisper-onnx",))
    assert [o.label for o in only] == [space.REFERENCE_STT, "whisper-onnx int8 full", "whisper-onnx int8 +128"]
    with pytest.raises(ConfigError, match="unknown STT engine"):
        space.stt_options("en", engines=("vosk",))


def test_a_candidate_is_a_valid_stack_with_its_threads_and_early_stt():
    split = space.thread_splits([(1, 2, 2)])[0]
    voice = space.tts_options("es", kokoro_styles=())[0]
    candidate = space.Candidate("es", _option(FW_GIVEN), voice, split, True)
    built = candidate.stack(stacks.load_stack())
    assert built["pipeline"] == {"early_stt": True, "speculate_after_ms": 0.0, "first_chunk": "sentence"}
    assert built["stages"]["tts_es"]["engine"] == "espeak-ng" and built["stages"]["llm"]["settings"]["n_threads"] == 2
    assert built["stages"]["vad"]["settings"]["intra_op_num_threads"] == 1
    assert "early STT" in candidate.label and "espeak-ng-es" in candidate.label


def test_best_stack_joins_the_winners_per_language_and_is_written_atomically(tmp_path):
    split = space.thread_splits()[0]
    en = space.Candidate("en", _option(FW_GIVEN), space.tts_options("en", ())[0], split, True)
    es = space.Candidate("es", _option(FW_GIVEN), space.tts_options("es", ())[0], split, False)
    es = space.Candidate("es", space.StageOption("fw es", {**_option(FW_GIVEN).spec, "language": "es"}),
                         es.tts, split, False)
    best = space.best_stack(stacks.load_stack(), {"en": en, "es": es}, {"en": {"x": 1}, "es": {"x": 2}})
    assert best["stages"]["stt"]["language"] == "en" and best["stages"]["stt_es"]["language"] == "es"
    assert best["stages"]["tts"]["engine"] == "onnxruntime" and best["stages"]["tts_es"]["engine"] == "espeak-ng"
    assert best["pipeline"] == {"early_stt": True, "speculate_after_ms": 0.0, "first_chunk": "sentence"}
    path = space.write_best_stack(best, tmp_path / "box" / "best_stack.yaml")
    assert yaml.safe_load(path.read_text())["provenance"]["per_language"]["es"] == {"x": 2}
    assert stacks.load_stack(path)["stages"]["stt_es"]["language"] == "es"
    assert [p.name for p in path.parent.iterdir()] == ["best_stack.yaml"]  # no temporary file left
    with pytest.raises(ConfigError, match="no candidate met the quality budget"):
        space.best_stack(stacks.load_stack(), {}, {})


def _screen_rows():
    """Two rounds, three options: the reference, a fast option that keeps the words, a faster one that loops."""
    rows = []
    texts = {"a": "the cat sat on the mat", "b": "a dog ran home", "c": "seven of clubs"}
    for r in range(2):
        for i, (uid, text) in enumerate(texts.items()):
            rows.append({"option": space.REFERENCE_STT, "round": r, "id": uid, "stt_ms": 1000 + 10 * i + r, "text": text, "status": "ok"})
            rows.append({"option": "trimmed", "round": r, "id": uid, "stt_ms": 200 + 10 * i + r, "text": text, "status": "ok"})
            rows.append({"option": "loops", "round": r, "id": uid, "stt_ms": 100 + i, "status": "looped" if uid == "c" else "ok",
                         "text": "seven of clubs seven of clubs seven of clubs" if uid == "c" else "x y z"})
    return pd.DataFrame(rows)


def test_screen_scores_wer_against_references_and_the_budget_on_the_paired_ci():
    utterances = [Utterance(u, "t", "en", t, np.zeros(16000, np.float32))
                  for u, t in {"a": "the cat sat on the mat", "b": "a dog ran home", "c": "seven of clubs"}.items()]
    scores = screen.score(_screen_rows(), utterances, "en", space.REFERENCE_STT)
    assert scores["trimmed"].wer.wer == 0 and scores["trimmed"].within_budget
    assert scores["trimmed"].agreement.wer == 0  # the same words as the full window
    assert scores["loops"].wer.wer > 0.5 and not scores["loops"].within_budget
    assert scores["loops"].statuses == {"ok": 4, "looped": 2}
    table = screen.score_table(scores, "en")
    assert list(table["option"])[:2] == ["trimmed", space.REFERENCE_STT]  # within budget first, fastest first
    ratio = screen.lever_ratio(_screen_rows(), space.REFERENCE_STT, "trimmed")
    assert ratio.k == 2 and 0.19 < ratio.ratio < 0.22 and ratio.verdict == "faster"


def _halving_rows(values: dict[str, list[list[float]]]) -> halving.HalvingResult:
    frames = []
    for label, rungs in values.items():
        for rung, samples in enumerate(rungs):
            frames.append(pd.DataFrame({"ttfa_ms": samples, "status": "ok", "audio_path_ms": 1.0, "stt_ms": 1.0})
                          .assign(candidate=label, rung=rung))
    return pd.concat(frames, ignore_index=True)


def test_the_winner_is_the_fastest_that_reached_the_last_rung():
    split = space.thread_splits()[0]
    voice = space.tts_options("en", ())[0]
    fast_early = space.Candidate("en", _option(FW_GIVEN), voice, split, True)
    late = space.Candidate("en", _option(FW_GIVEN), voice, split, False)
    dropped = space.Candidate("en", _option(FW_DETECTED), voice, split, False)
    rows = _halving_rows({fast_early.label: [[400, 410], [405, 395, 420]], late.label: [[500, 510], [505, 495, 520]],
                          dropped.label: [[300]]})
    result = halving.HalvingResult(rows, halving._ranking(rows, [fast_early, late, dropped]))
    assert summary.winner(result, [fast_early, late, dropped]) is fast_early  # 'dropped' stopped at rung 0
    lever = summary.pipeline_levers(result, "en")[0]
    assert lever["rounds"] == 2 and 0.78 < lever["ratio"] < 0.82


def test_halving_refuses_bad_settings():
    with pytest.raises(ConfigError, match="eta >= 2"):
        halving.successive_halving([], {}, [], rung_sizes=(1,), eta=1)
    with pytest.raises(ConfigError, match="reuse must be"):
        halving.successive_halving([], {}, [], reuse="always")


@pytest.mark.integration
def test_a_small_search_measures_keeps_failures_and_resumes_from_the_store(provisioned, tmp_store):
    clips = [c for c in e2e.pick_utterances(1, sets=("librivox_en",))][:1]
    split = space.thread_splits()[0]
    voice = space.tts_options("en", ())[0]
    good = space.Candidate("en", _option(FW_GIVEN), voice, split, True)
    broken = space.Candidate("en", space.StageOption("missing model", {"model": "/nowhere/model", "engine": "ctranslate2"}),
                             voice, split, False)
    run = tmp_store.start_run(target="box")
    result = halving.successive_halving([good, broken], stacks.load_stack(), clips, rung_sizes=(1, 1), eta=2,
                                        max_tokens=8, store=tmp_store, run_id=run)
    ranking = result.ranking.set_index("label")
    assert ranking.loc[good.label, "rungs"] == 2 and ranking.loc[good.label, "ttfa_p50_ms"] > 0
    assert ranking.loc[broken.label, "rungs"] == 1 and ranking.loc[broken.label, "failed"] == 1
    assert "load failed" in set(result.rows[result.rows["candidate"] == broken.label]["status"])
    trials = tmp_store.trials("stack_search", run_id=run)
    assert len(trials) == 3 and sorted(trials["status"]) == ["failed", "ok", "ok"]
    again = tmp_store.start_run(target="box")
    resumed = halving.successive_halving([good], stacks.load_stack(), clips, rung_sizes=(1, 1), eta=2, max_tokens=8,
                                         store=tmp_store, run_id=again, reuse="matching")
    reused = tmp_store.trials("stack_search", run_id=again)
    assert len(reused) == 2 and reused["reused_from"].notna().all()
    assert resumed.ranking.iloc[0]["ttfa_p50_ms"] == pytest.approx(ranking.loc[good.label, "ttfa_p50_ms"])


def test_only_voices_06_heard_clearly_enter_the_search(tmp_store):
    from saraikit.core.store import Figure, Trial

    run = tmp_store.start_run(target="box")
    for voice, wer, high in (("espeak-ng-es", 0.52, 0.70), ("kokoro-jm_kumo-es", 0.03, 0.067)):
        tmp_store.record(run, Trial("tts_round_trip", {"voice": voice}, [Figure("wer", wer, "fraction", 8, extra={"ci_high": high})],
                                    model_name=voice))
    options = space.tts_options("es", kokoro_styles=("jm_kumo", "jf_alpha"))
    kept, evidence = screen.voice_gate(tmp_store, "box", options, max_wer_pct=10)
    assert [o.label for o in kept] == ["kokoro-jm_kumo-es", "kokoro-jf_alpha-es"]  # jf_alpha unmeasured: kept, labelled
    why = evidence.set_index("voice")["why"]
    assert why["espeak-ng-es"] == "upper CI > 10%" and why["kokoro-jf_alpha-es"].startswith("not measured")


def test_when_no_voice_is_heard_clearly_the_clearest_still_gives_the_language_a_stack(tmp_store):
    from saraikit.core.store import Figure, Trial

    run = tmp_store.start_run(target="box")
    for voice, wer, high in (("espeak-ng-es", 0.52, 0.70), ("kokoro-jm_kumo-es", 0.06, 0.12)):
        tmp_store.record(run, Trial("tts_round_trip", {"voice": voice}, [Figure("wer", wer, "fraction", 3, extra={"ci_high": high})],
                                    model_name=voice))
    options = space.tts_options("es", kokoro_styles=("jm_kumo",))
    kept, evidence = screen.voice_gate(tmp_store, "box", options, max_wer_pct=10)
    assert [o.label for o in kept] == ["kokoro-jm_kumo-es"]
    row = evidence.set_index("voice").loc["kokoro-jm_kumo-es"]
    assert bool(row["enters_search"]) and "clearest measured voice is kept" in row["why"]
    assert not evidence.set_index("voice").loc["espeak-ng-es", "enters_search"]
