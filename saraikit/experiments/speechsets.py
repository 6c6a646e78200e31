"""The speech sets a notebook scores: built-in names or the user's own manifests, by one parameter.

``datasets`` in 06_quality, 05_e2e_latency and 07_stack_search lists built-in
names (``asterisk_es``, ``librivox_en``, ``cards_en``) or paths to CSV/JSONL
manifests with the columns ``path, reference, language`` (and optional
``id``; see :func:`saraikit.data.datasets.read_manifest`). A user measures
WER on their own recordings by naming their manifest; nothing else changes.

Decisions:

- ``asterisk_es`` is taken from its *evaluation* half
  (:func:`saraikit.experiments.realinputs.speech_clips`), ``n_spanish`` clips
  evenly, so INT8 encoders calibrated on the other half are never scored on
  their calibration clips.
- Every other set is used whole, up to 30 s per clip (one Whisper window);
  clips its loader drops (silent, unreadable, no reference) are counted in
  its ``dropped`` list, never silently.
- Two sets with the same name are an error: results are stored per set name.
"""

from __future__ import annotations

from pathlib import Path

from saraikit.core.errors import ConfigError
from saraikit.data import datasets
from saraikit.experiments.realinputs import MAX_CLIP_S, speech_clips
from saraikit.quality.stt_eval import Utterance, load_utterances


def set_name(name_or_path: str | Path) -> str:
    """``librivox_en`` for a built-in set, the file's stem for a manifest."""
    return str(name_or_path) if str(name_or_path) in datasets.BUILT_IN else Path(name_or_path).stem


def load_sets(names, n_spanish: int | None = None) -> dict[str, list[Utterance]]:
    """Set name -> utterances read at 16 kHz, for every built-in name or manifest path in ``names``."""
    if isinstance(names, (str, Path)):
        names = [names]
    if not names:
        raise ConfigError("datasets: name at least one built-in set or manifest path")
    sets: dict[str, list[Utterance]] = {}
    for name in names:
        key = set_name(name)
        if key in sets:
            raise ConfigError(f"datasets: {key!r} is named twice; rename one manifest")
        if key == "asterisk_es":
            clips = speech_clips("es", "evaluation", n_spanish)
        else:
            clips = datasets.filter(datasets.load(name), max_duration_s=MAX_CLIP_S).clips
        sets[key] = load_utterances(clips, key)
    return sets


def by_language(sets: dict[str, list[Utterance]]) -> dict[str, list[Utterance]]:
    """Language -> the utterances of every set in that language."""
    grouped: dict[str, list[Utterance]] = {}
    for utterances in sets.values():
        for u in utterances:
            grouped.setdefault(u.language, []).append(u)
    return grouped
