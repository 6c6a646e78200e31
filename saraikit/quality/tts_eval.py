"""Judging TTS voices: synthesis, round trip through STT, predicted MOS, and the listening-kit glue.

Decisions:

- Each sentence is synthesized once per voice, equalized to
  :data:`LEVEL_DBFS` (RMS, peak kept under :data:`saraikit.data.noise.PEAK_LIMIT`)
  and written as a 16-bit WAV at the voice's own rate.  The same file is
  transcribed (round trip), scored by DNSMOS and put in the listening kit, so
  all three judge the same audio.  Equal levels matter: DNSMOS's BAK/OVRL
  scores move with the level of a recording (P.808 does not), and louder
  clips tend to win in a listening test.
- Piper runs with its voice's configured noise scales, as deployed, so its
  audio (and round-trip WER) varies slightly between runs.
- Predicted MOS is DNSMOS's P.808 score, the same ACR 1-5 scale the listening
  kit asks raters for; SIG/BAK/OVRL are kept beside it.  It is a network's
  estimate of a listening test, labelled :data:`MOS_LABEL` everywhere.
- A listening kit is never overwritten: ratings collected against it would
  lose their meaning.
- A :class:`Voice` of any other engine (``kokoro``, a user's own
  ``package.module:ClassName``) is built by
  :func:`saraikit.engines.build.build_stage` from its model, language and
  ``settings``, exactly as a stack YAML would build it; :func:`kokoro_voices`
  names Kokoro's voices ``kokoro-<style>-<language>`` (``kokoro-jf_alpha-es``),
  with the espeak-ng voice appended when it is not the language's default
  (``kokoro-jf_alpha-es-419``).
"""

from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import psutil

from saraikit.core.errors import ConfigError, DataError, ModelError
from saraikit.core.progress import progress
from saraikit.core.stats import bootstrap_ci
from saraikit.data.audio import SAMPLE_RATE, read_audio
from saraikit.data.noise import PEAK_LIMIT
from saraikit.engines.build import build_stage
from saraikit.engines.espeak import EspeakTTS
from saraikit.engines.kokoro import espeak_voice_for, style_names
from saraikit.engines.piper import PiperTTS
from saraikit.models import catalog
from saraikit.quality.files import write_wav
from saraikit.quality.listening import build_kit, mos_table, read_ratings
from saraikit.quality.mos import LABEL as DNSMOS_LABEL
from saraikit.quality.mos import MIN_SECONDS, SCORE_KEYS, Dnsmos
from saraikit.quality.stt_eval import SttScore, Utterance, evenly, score, transcribe_all

__all__ = [
    "LEVEL_DBFS", "MOS_LABEL", "Voice", "build_listening_kit", "collect_ratings", "default_voices", "equalize",
    "kokoro_voices", "mos_groups", "mos_summary", "predicted_mos", "round_trip", "synthesize",
]

LEVEL_DBFS = -25.0
MOS_LABEL = f"{DNSMOS_LABEL}, not human MOS"


@dataclass(frozen=True)
class Voice:
    label: str
    language: str
    engine: str  # "piper" | "espeak-ng" | "kokoro" | any engine build_stage knows
    model: str  # manifest name or path (piper, kokoro), espeak-ng voice name (espeak-ng)
    settings: tuple = ()  # (key, value) pairs of the stage's settings, as in a stack YAML

    def build(self):
        if self.engine == "piper":
            return PiperTTS(catalog.model_path(self.model), name=self.label, **dict(self.settings))
        if self.engine == "espeak-ng":
            return EspeakTTS(self.model, name=self.label, **dict(self.settings))
        spec = {"model": self.model, "engine": self.engine, "language": self.language, "settings": dict(self.settings)}
        return build_stage("tts", spec, name=self.label)

    def sha256(self) -> str | None:
        """The model's sha256 (None for espeak-ng, and for an engine whose model is not a file or manifest name)."""
        if self.engine == "espeak-ng":
            return None
        try:
            return catalog.resolve_model(self.model).sha256()
        except ModelError:
            return None

    def version(self) -> str:
        if self.engine == "piper":
            return self.model
        if self.engine not in ("espeak-ng", "kokoro"):
            return f"{self.engine} {self.model} {dict(self.settings)}"
        done = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, timeout=30)
        espeak = done.stdout.strip() or "espeak-ng (version unknown)"
        return espeak if self.engine == "espeak-ng" else f"{self.model} {dict(self.settings)}; IPA by {espeak}"


def kokoro_voices(language: str, styles: Sequence[str] | None = None, model: str = "kokoro-82m",
                  phonemizer_voice: str | None = None) -> list[Voice]:
    """One Kokoro :class:`Voice` per speaker style (all styles of the model's styles file by default)."""
    styles = list(styles) if styles is not None else style_names(catalog.resolve_model(model).path)
    suffix = "" if phonemizer_voice in (None, espeak_voice_for(language)) else f"-{phonemizer_voice}"
    if phonemizer_voice is not None and suffix and phonemizer_voice.startswith(f"{language}-"):
        suffix = phonemizer_voice[len(language):]
    extra = (("phonemizer_voice", phonemizer_voice),) if phonemizer_voice else ()
    return [Voice(f"kokoro-{style}-{language}{suffix}", language, "kokoro", model, (("style", style),) + extra)
            for style in styles]


def default_voices() -> list[Voice]:
    return [Voice("piper-en_US-joe-medium", "en", "piper", "piper-en_US-joe-medium"),
            Voice("espeak-ng-en", "en", "espeak-ng", "en"),
            Voice("espeak-ng-es", "es", "espeak-ng", "es")]


def equalize(samples: np.ndarray, level_dbfs: float = LEVEL_DBFS) -> np.ndarray:
    """``samples`` scaled to an RMS of ``level_dbfs`` (dBFS re a full-scale peak), peak kept <= 0.98."""
    samples = np.asarray(samples, dtype=np.float64)
    rms = math.sqrt(float(np.mean(np.square(samples)))) if samples.size else 0.0
    if rms == 0.0:
        raise DataError("cannot set the level of digital silence")
    scaled = samples * 10 ** (level_dbfs / 20) / rms
    peak = float(np.max(np.abs(scaled)))
    if peak > PEAK_LIMIT:
        scaled *= PEAK_LIMIT / peak
    return scaled.astype(np.float32)


def synthesize(voice: Voice, sentences: Sequence[str], out_dir: str | Path,
               level_dbfs: float = LEVEL_DBFS) -> pd.DataFrame:
    """Speak each sentence, equalize it and write ``out_dir/<voice>/<text_id>.wav``; one row per sentence.

    The voice is loaded and warmed once (one sentence); each row keeps the
    stage's time to first audio (``first_audio_ms``: the first sentence or
    chunk ready), its whole time (``synth_ms``), the real-time factor
    (``rtf`` = synthesis time / audio time), and the load time and the RSS the
    load added to this process (``load_rss_mib``, psutil; shared pages count).

    ``text_id`` is ``<language>-<position>`` (``en-00``), so the same sentence
    has the same id for every voice of a language.
    """
    if isinstance(sentences, str) or not sentences:
        raise DataError(f"voice {voice.label}: expected a non-empty list of sentences")
    stage = voice.build()
    rss_before = psutil.Process().memory_info().rss
    load_s = stage.load()
    load_rss_mib = (psutil.Process().memory_info().rss - rss_before) / 2**20
    stage.warmup(1)
    rows = []
    for position, text in enumerate(progress(sentences, desc=f"synthesizing {voice.label}")):
        result = stage.run(text)
        audio = result.value
        if audio.samples.size == 0:
            raise DataError(f"voice {voice.label} produced no audio for {text!r}")
        text_id = f"{voice.language}-{position:02d}"
        path = Path(out_dir) / voice.label / f"{text_id}.wav"
        write_wav(path, equalize(audio.samples, level_dbfs), audio.sample_rate)
        rows.append({"voice": voice.label, "language": voice.language, "text_id": text_id, "text": text,
                     "path": str(path), "sample_rate": audio.sample_rate,
                     "duration_s": audio.samples.size / audio.sample_rate,
                     "first_audio_ms": result.first_output_s * 1000, "synth_ms": result.duration_s * 1000,
                     "rtf": result.duration_s / (audio.samples.size / audio.sample_rate),
                     "load_s": load_s, "load_rss_mib": load_rss_mib})
    return pd.DataFrame(rows)


def round_trip(transcribe: Callable[[np.ndarray, str], str] | None, synthesized: pd.DataFrame,
               n_boot: int = 2000, transcribe_set: Callable[[list[Utterance]], pd.DataFrame] | None = None
               ) -> dict[str, SttScore]:
    """Transcribe each voice's audio and score it against the text it was given; one score per voice.

    ``transcribe_set`` transcribes a voice's clips elsewhere (shards on a cluster,
    :func:`saraikit.fleet.shards.sharded_round_trip`) and returns :func:`transcribe_all`'s rows.
    """
    results = {}
    for label, group in synthesized.groupby("voice", sort=False):
        items = [Utterance(row.text_id, "tts", row.language, row.text,
                           read_audio(row.path, target_sr=SAMPLE_RATE).samples) for row in group.itertuples()]
        frame = transcribe_set(items) if transcribe_set else transcribe_all(transcribe, items, f"round trip {label}")
        results[label] = score(frame, n_boot=n_boot)
    return results


# --------------------------------------------------------------------------
# predicted MOS


def mos_groups(synthesized: pd.DataFrame, real: dict[str, Sequence[Utterance]], n: int) -> dict[str, list]:
    """Up to ``n`` evenly spaced clips per voice (its WAVs at 16 kHz), then per real set; real clips shorter
    than DNSMOS's :data:`MIN_SECONDS` are left out (DNSMOS cannot score them)."""
    groups = {voice: [read_audio(path, target_sr=16000).samples for path in evenly(list(rows["path"]), n)]
              for voice, rows in synthesized.groupby("voice", sort=False)}
    for name, items in real.items():
        groups[name] = [u.samples for u in evenly([u for u in items if u.duration_s >= MIN_SECONDS], n)]
    return groups


def predicted_mos(groups: dict[str, Sequence[np.ndarray]], scorer: Dnsmos | None = None,
                  level_dbfs: float = LEVEL_DBFS) -> pd.DataFrame:
    """DNSMOS of 16 kHz clips per group (voice or recording set), each equalized to ``level_dbfs`` first."""
    scorer = scorer or Dnsmos()
    rows = []
    for group, clips in groups.items():
        for position, samples in enumerate(progress(clips, desc=f"DNSMOS {group}")):
            rows.append({"group": group, "clip": position, **scorer(equalize(samples, level_dbfs))})
    return pd.DataFrame(rows)


def mos_summary(frame: pd.DataFrame, seed: int | None = 0) -> pd.DataFrame:
    """Mean predicted MOS per group with a 95% bootstrap CI over clips (P.808, and SIG/BAK/OVRL)."""
    rows = []
    for group, clips in frame.groupby("group", sort=False):
        scored = clips[clips["skipped"].isna()]
        row = {"group": group, "n_clips": len(scored), "n_skipped": len(clips) - len(scored), "label": MOS_LABEL}
        for key in SCORE_KEYS:
            if scored.empty:
                row[key] = row[f"{key}_ci_low"] = row[f"{key}_ci_high"] = math.nan
                continue
            interval = bootstrap_ci(scored[key].to_numpy(float), np.mean, 0.95, seed=seed)
            row[key], row[f"{key}_ci_low"], row[f"{key}_ci_high"] = interval.estimate, interval.low, interval.high
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------
# human listening kit


def build_listening_kit(synthesized: pd.DataFrame, systems: Sequence[str], kit_dir: str | Path,
                        n_sentences: int = 4, seed: int = 0):
    """Build a blinded kit of ``systems`` on their first ``n_sentences`` shared sentences.

    Returns ``(kit, message)``; ``kit`` is None when a kit or key already
    exists there (it is never overwritten: ratings collected against it would
    lose their meaning).
    """
    chosen = synthesized[synthesized["voice"].isin(systems)]
    shared = sorted(set.intersection(*(set(chosen.loc[chosen["voice"] == s, "text_id"]) for s in systems)))
    if not shared:
        raise DataError(f"no sentence was synthesized by all of {list(systems)}")
    texts = shared[:n_sentences]
    samples = [(row.voice, row.text_id, row.path) for row in chosen.itertuples() if row.text_id in texts]
    try:
        kit = build_kit(samples, kit_dir, seed=seed)
    except ConfigError as error:
        return None, f"not rebuilt: {error}"
    return kit, f"built {len(kit.sample_ids)} blinded samples ({', '.join(kit.systems)}; {len(texts)} sentences)"


def collect_ratings(ratings_dir: str | Path, key_csv: str | Path):
    """``(mos_table, message)`` from the ``ratings-*.csv`` files in ``ratings_dir``; table None when there are none."""
    files = sorted(Path(ratings_dir).glob("ratings-*.csv")) if Path(ratings_dir).is_dir() else []
    if not files:
        return None, f"no ratings yet (no ratings-*.csv in {ratings_dir}): there is no human MOS to show"
    if not Path(key_csv).is_file():
        return None, f"{len(files)} ratings file(s) found but the key {key_csv} is missing"
    ratings = read_ratings(files, key_csv)
    raters = ratings["rater"].nunique()
    return mos_table(ratings), f"{len(ratings)} ratings from {raters} rater(s) in {len(files)} file(s)"

