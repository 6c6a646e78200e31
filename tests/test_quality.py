import numpy as np
import pytest

from saraikit.core.errors import DataError, MeasurementError
from saraikit.quality.wer import (
    EMPTY_REFERENCE,
    NORMALIZES_TO_NOTHING,
    format_worst,
    paired_wer_difference,
    wer_report,
    worst,
)


def test_wer_matches_hand_count():
    # "a b c d" -> "a x c": b substituted, d deleted: 2 errors / 4 words.
    report = wer_report(["a b c d"], ["a x c"], ["u1"], "en")
    row = report.rows.iloc[0]
    assert (row.substitutions, row.deletions, row.insertions, row.hits) == (1, 1, 0, 2)
    assert report.wer == pytest.approx(0.5)
    # characters "a b c d" (7 with spaces) -> "a x c" (5): b->x, then " d" deleted = 3 errors.
    assert report.cer == pytest.approx(3 / 7)


def test_corpus_wer_pools_errors_over_words_not_utterance_means():
    # 1 error in 1 word, 0 errors in 9 words: corpus 1/10, mean of utterance WERs would be 0.5.
    report = wer_report(["yes", "one two three four five six seven eight nine"],
                        ["no", "one two three four five six seven eight nine"], ["a", "b"], "en")
    assert report.wer == pytest.approx(0.1)
    assert list(report.rows["wer"]) == [1.0, 0.0]


def test_normalized_and_raw_figures_side_by_side():
    report = wer_report(["Por favor, marque 1."], ["por favor marque uno"], ["p1"], "es")
    assert report.wer == 0.0
    # Raw: "Por"/"por", "favor,"/"favor", "1."/"uno" differ: 3 of 4 words.
    assert report.raw_wer == pytest.approx(3 / 4)
    frame = report.corpus_frame()
    assert frame.loc["WER", "raw"] == pytest.approx(0.75) and frame.loc["WER", "normalized"] == 0.0
    assert report.rows.loc[0, "ref_norm"] == "por favor marque uno"


def test_normalize_false_scores_raw_text():
    report = wer_report(["Hello world"], ["hello world"], ["h"], "en", normalize=False)
    assert report.wer == pytest.approx(0.5) == report.raw_wer


def test_empty_hypothesis_counts_every_word_as_deleted():
    report = wer_report(["uno dos tres"], [""], ["x"], "es")
    row = report.rows.iloc[0]
    assert (row.deletions, row.errors, report.wer) == (3, 3, 1.0)


def test_unscorable_references_are_skipped_with_a_reason_and_counted():
    report = wer_report(["a b", "", "  ", "[tono]", "..."], ["a b", "x", "y", "z", "w"],
                        ["ok", "empty", "blank", "tag", "dots"], "es")
    assert list(report.rows["id"]) == ["ok"]
    reasons = dict(zip(report.skipped["id"], report.skipped["reason"]))
    assert reasons == {"empty": EMPTY_REFERENCE, "blank": EMPTY_REFERENCE,
                       "tag": NORMALIZES_TO_NOTHING, "dots": NORMALIZES_TO_NOTHING}
    assert report.skipped_counts() == {EMPTY_REFERENCE: 2, NORMALIZES_TO_NOTHING: 2}
    assert "skipped 4" in report.summary()


def test_nothing_scorable_is_an_error():
    with pytest.raises(DataError, match="all 2 were skipped"):
        wer_report(["", "..."], ["a", "b"], ["1", "2"], "en")


@pytest.mark.parametrize(
    "references, hypotheses, ids, message",
    [
        (["a"], ["a", "b"], ["1"], "same length"),
        (["a", "b"], ["a", "b"], ["1", "1"], "repeated: 1"),
        (["a"], [None], ["1"], "utterance '1': hypothesis must be a str"),
        ([], [], [], "no utterances"),
    ],
)
def test_bad_inputs_raise(references, hypotheses, ids, message):
    with pytest.raises(DataError, match=message):
        wer_report(references, hypotheses, ids, "en")


def test_all_correct_gives_a_zero_width_interval_at_zero():
    refs = [f"word{i} and more words" for i in range(30)]
    report = wer_report(refs, refs, range(30), "en")
    assert (report.wer, report.wer_ci.low, report.wer_ci.high) == (0.0, 0.0, 0.0)
    assert report.wer_ci.n == 30


def test_constant_error_rate_gives_a_tight_interval_around_it():
    # Every utterance: 1 substitution in 4 words, so every resample has WER 0.25.
    refs = ["one two three four"] * 40
    hyps = ["one two three five"] * 40
    report = wer_report(refs, hyps, range(40), "en")
    assert report.wer == pytest.approx(0.25)
    assert report.wer_ci.low == pytest.approx(0.25) and report.wer_ci.high == pytest.approx(0.25)


def test_interval_covers_the_estimate_and_narrows_with_more_utterances():
    rng = np.random.default_rng(3)

    def report_for(n):
        refs = ["a b c d e f g h i j"] * n
        hyps = [" ".join(w if rng.random() > 0.2 else "x" for w in "a b c d e f g h i j".split()) for _ in range(n)]
        return wer_report(refs, hyps, range(n), "en")

    small, large = report_for(20), report_for(400)
    for report in (small, large):
        assert report.wer_ci.low < report.wer < report.wer_ci.high
    assert (large.wer_ci.high - large.wer_ci.low) < (small.wer_ci.high - small.wer_ci.low) / 2
    assert large.wer_ci.contains(0.2)


def test_paired_difference_of_identical_systems_is_zero():
    refs = ["the cat sat on the mat", "hello world", "one two three"]
    hyps = ["the cat sat on a mat", "hello word", "one two three"]
    a = wer_report(refs, hyps, ["1", "2", "3"], "en")
    b = wer_report(refs, hyps, ["1", "2", "3"], "en")
    diff = paired_wer_difference(a, b)
    assert diff.diff == 0.0 and diff.ci_low <= 0.0 <= diff.ci_high
    assert not diff.significant


def test_paired_difference_is_the_difference_of_corpus_wers():
    n = 50
    refs = ["a b c d"] * n
    base = wer_report(refs, ["a b c d"] * n, range(n), "en")
    worse = wer_report(refs, ["a b c x"] * (n // 2) + ["a b c d"] * (n // 2), range(n), "en")
    diff = paired_wer_difference(base, worse)
    assert diff.diff == pytest.approx(worse.wer - base.wer) == pytest.approx(0.125)
    assert diff.ci_low > 0 and diff.significant
    # Utterance order does not matter: rows are matched by id.
    shuffled = wer_report(refs[::-1], (["a b c x"] * (n // 2) + ["a b c d"] * (n // 2))[::-1],
                          list(range(n))[::-1], "en")
    assert paired_wer_difference(base, shuffled).diff == pytest.approx(0.125)


def test_paired_difference_needs_the_same_utterances():
    a = wer_report(["a b", "c d"], ["a b", "c d"], ["1", "2"], "en")
    b = wer_report(["a b", "c d"], ["a b", "c d"], ["1", "3"], "en")
    with pytest.raises(MeasurementError, match="only in baseline: \\['2'\\]"):
        paired_wer_difference(a, b)
    c = wer_report(["a b", "c e"], ["a b", "c d"], ["1", "2"], "en")
    with pytest.raises(MeasurementError, match="same references"):
        paired_wer_difference(a, c)


def test_worst_orders_by_errors_and_shows_alignments():
    report = wer_report(
        ["a b c d", "e f", "g h i j k", "fine here"],
        ["a x c", "e", "q r s j k", "fine here"],
        ["two", "one", "three", "zero"], "en",
    )
    top = worst(report, k=2)
    assert list(top["id"]) == ["three", "two"]
    assert list(top["errors"]) == [3, 2]
    assert top.loc[1, "alignment"].splitlines() == ["[two]", "REF: a b c d", "HYP: a x c *", "       S   D"]
    assert list(worst(report, k=10)["id"]) == ["three", "two", "one"]  # error-free utterances never listed
    assert "[three]" in format_worst(report, 1) and "[two]" not in format_worst(report, 1)


def test_worst_of_a_perfect_system_is_empty():
    report = wer_report(["a b"], ["a b"], ["1"], "en")
    assert worst(report).empty
    assert format_worst(report) == "no errors"


def test_figures_carry_the_interval_and_counts():
    report = wer_report(["a b c d"] * 10, ["a b c x"] * 10, range(10), "en")
    figures = {figure.metric: figure for figure in report.figures()}
    assert set(figures) == {"wer", "cer", "wer_raw", "cer_raw"}
    wer = figures["wer"]
    assert (wer.value, wer.unit, wer.n, wer.provenance) == (0.25, "fraction", 10, "measured")
    assert wer.extra["ci_low"] == pytest.approx(0.25) and wer.extra["n_words"] == 40


@pytest.mark.integration
def test_real_spanish_references_against_accented_spelled_out_hypotheses():
    from saraikit.data.datasets import default_datasets

    clips = [clip for clip in default_datasets()["asterisk_es"].clips if clip.id in {"vm-Cust1", "vm-tocallnum"}]
    assert [clip.reference for clip in clips] == ["Carpeta 5", "Marque 1 para llamar a este numero."]
    # What an STT system writes for these prompts: spelled numbers and accents.
    hypotheses = ["carpeta cinco", "Marque uno para llamar a este número"]
    report = wer_report([c.reference for c in clips], hypotheses, [c.id for c in clips], "es")
    assert report.wer == 0.0
    assert report.raw_wer == pytest.approx(4 / 9)  # Carpeta/carpeta, 5/cinco, 1/uno, numero./número


def test_figures_round_trip_through_the_results_store(tmp_store):
    from saraikit.core.store import Trial

    report = wer_report(["a b c d", "", "e f"], ["a b c x", "y", "e f"], ["1", "2", "3"], "en")
    run_id = tmp_store.start_run()
    tmp_store.record(run_id, Trial("wer", {"stt": "demo"}, figures=report.figures()))
    stored = tmp_store.results(experiment="wer").set_index("metric")
    assert stored.loc["wer", "value"] == pytest.approx(1 / 6)
    assert stored.loc["wer", "n"] == 2
