"""The voice per language: the paired bootstrap decides, the latency budget holds, the evidence is written."""

import pandas as pd
import pytest

from saraikit.quality import voice_choice
from saraikit.quality.stt_eval import score

SENTENCES = [f"es-{i:02d}" for i in range(8)]
REFERENCES = ["pon una alarma a las siete", "qué tiempo hace hoy en madrid", "apaga la luz del salón",
              "recuérdame comprar pan mañana", "cuánto es dos más dos", "pon música tranquila por favor",
              "llama a mi madre ahora", "cuál es la capital de francia"]


def _trip(hypotheses):
    frame = pd.DataFrame({"id": SENTENCES, "dataset": "tts", "language": "es", "duration_s": 2.0,
                          "reference": REFERENCES, "hypothesis": hypotheses, "skipped": None})
    return score(frame)


def _synth(label, first_ms):
    return pd.DataFrame({"voice": label, "language": "es", "text_id": SENTENCES, "first_audio_ms": first_ms,
                         "rtf": 0.3, "load_rss_mib": 80.0})


def _setup(kokoro_first_ms):
    garbled = [" ".join(w[:2] for w in r.split()) for r in REFERENCES]  # espeak-ng heard badly: every word wrong
    trips = {"espeak-ng-es": _trip(garbled), "kokoro-jm_kumo-es": _trip(REFERENCES),
             "kokoro-jf_alpha-es": _trip(REFERENCES[:4] + garbled[4:])}
    synthesized = pd.concat([_synth("espeak-ng-es", [10.0] * 8), _synth("kokoro-jm_kumo-es", [kokoro_first_ms] * 8),
                             _synth("kokoro-jf_alpha-es", [90.0] * 8)], ignore_index=True)
    mos = pd.DataFrame({"group": list(trips), "p808_mos": [2.5, 3.6, 3.4], "p808_mos_ci_low": [2.3, 3.4, 3.2],
                        "p808_mos_ci_high": [2.7, 3.8, 3.6]})
    table = voice_choice.voice_table(synthesized, trips, mos, {"espeak-ng-es": None, "kokoro-jm_kumo-es": 88.0,
                                                               "kokoro-jf_alpha-es": 88.0})
    return table, trips


def test_a_voice_that_beats_the_baseline_within_the_budget_wins():
    table, trips = _setup(kokoro_first_ms=120.0)
    choice = voice_choice.choose(table, trips, "es", "espeak-ng-es", latency_budget_ms=150)
    assert choice.winner == "kokoro-jm_kumo-es"  # lowest WER of the two that beat espeak-ng
    paired = choice.paired.set_index("voice")
    assert paired.loc["kokoro-jm_kumo-es", "beats_baseline"] and paired.loc["kokoro-jm_kumo-es", "diff_points"] < -50
    assert "beats the baseline" in choice.lines[0] and "first audio P50 120 ms vs 150 ms: met" in choice.lines[1]


def test_the_baseline_stays_when_the_better_voice_is_too_slow_and_the_miss_is_quantified():
    table, trips = _setup(kokoro_first_ms=900.0)
    choice = voice_choice.choose(table, trips, "es", "espeak-ng-es", latency_budget_ms=150)
    assert choice.winner == "kokoro-jf_alpha-es"  # the only one that beats espeak-ng within 150 ms
    slow = [line for line in choice.lines if line.startswith("- kokoro-jm_kumo-es")]
    assert slow and "750 ms over the 150 ms budget" in slow[0]
    choice = voice_choice.choose(table, trips, "es", "espeak-ng-es", latency_budget_ms=50)
    assert choice.winner == "espeak-ng-es" and "the baseline stays" in choice.lines[0]
    assert voice_choice.best_intelligibility(table, "es") == "kokoro-jm_kumo-es"
    with pytest.raises(ValueError, match="baseline 'piper' was not measured"):
        voice_choice.choose(table, trips, "es", "piper")
