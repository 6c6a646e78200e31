"""Large evaluations sharded over Dask workers, scored on the head: the same figures as a local run.

A WER run is transcription (slow, per utterance, independent) followed by
scoring (fast, needs every row: corpus WER, bootstrap CIs). Only the
transcription is sharded: the utterances of a set are cut into shards of
``shard_size`` in order; any saraikit worker may transcribe a shard (in its
benchmark slot, so never beside a timing trial); the head puts the rows back
in the original order and scores them with the same code and the same seed
as a local run (:func:`saraikit.quality.stt_eval.score`). Per-utterance rows
and bootstrap CIs are then identical to a local run on the same clips,
provided the transcripts are: the decoding policy is greedy without
temperature fallback, every worker uses the same ``cpu_threads``, and every
shard runs on the same *target*. The last condition is measured, not
assumed: the same CPU with one usable core (``taskset -c 0``) instead of two
decoded 1 of 5 clips mixed with white noise at 5 dB differently ("8 of
space..." against "Eight of space, ..."), with ``cpu_threads=1`` on both,
because numpy's BLAS (whisper's features) ran one thread instead of two;
a Dask nanny's default of one BLAS thread did the same on an unpinned
worker until ``saraikit worker`` restored the local setting. So
shards go to the workers of one target: the head's own by default (where a
local run would have run), or ``target="any"`` to spread them over every
target, accepting that borderline clips may then decode differently.

Noise sweeps are sharded the same way: the head mixes each condition (seeds
derived from clip positions, as locally) and ships the mixtures.

Decisions:
- Audio travels with the shard (float32 at 16 kHz), so a worker needs no
  dataset of its own; models do not: every worker's copy of the system's
  model is checked by sha256 first (:func:`saraikit.fleet.models_sync.ensure_models`),
  shipped when missing, refused when different.
- A worker keeps one loaded transcriber between shards (a warm worker: the
  model loads once per worker and system, not once per shard).
- Systems with an ONNX encoder (a file notebook 01 wrote on the head) are not
  sharded: their encoder file is not a manifest model. In a sharded run
  (:func:`sharded_accuracy`, :func:`sharded_noise_sweeps`) they are
  transcribed on the head instead, so 06 on a cluster still scores them.
- TTS round trips (:func:`sharded_round_trip`): the voices synthesize on the
  head (their audio files are the run's), the listening STT runs in shards.
"""

from __future__ import annotations

from functools import partial
from typing import Sequence

import pandas as pd

from saraikit.core.errors import ClusterError
from saraikit.core.hardware import target_slug
from saraikit.quality.stt_eval import (TRANSCRIPT_COLUMNS, AccuracyRun, NoiseRun, Utterance, noise_sweeps,
                                       run_accuracy, transcribe_all)
from saraikit.quality.transcribe import SttSystem, Transcriber
from saraikit.quality.tts_eval import round_trip
from saraikit.fleet import cluster, models_sync

DEFAULT_SHARD_SIZE = 8
_loaded: dict = {}  # on a worker: (system, cpu_threads) -> Transcriber, kept between shards


def shards(items: Sequence, size: int) -> list[list]:
    """``items`` cut into consecutive shards of at most ``size``."""
    if size < 1:
        raise ClusterError(f"shard_size must be >= 1, got {size}")
    items = list(items)
    return [items[i:i + size] for i in range(0, len(items), size)]


def transcribe_shard(system: SttSystem, utterances: list[Utterance], cpu_threads: int) -> pd.DataFrame:
    """Runs on a worker: the :func:`transcribe_all` rows of one shard, with a transcriber kept warm."""
    key = (system, cpu_threads)
    if key not in _loaded:
        _loaded.clear()  # one model loaded at a time, as run_accuracy does locally
        _loaded[key] = Transcriber(system, cpu_threads)
    return transcribe_all(_loaded[key], utterances)


def sharded_transcribe(client, system: SttSystem, utterances: Sequence[Utterance], shard_size: int = DEFAULT_SHARD_SIZE,
                       cpu_threads: int = 2, target: str | None = None) -> pd.DataFrame:
    """Transcribe ``utterances`` in shards on the workers (of ``target``, or any); rows in the original order."""
    if system.encoder is not None:
        raise ClusterError(f"{system.label}: systems with an ONNX encoder file are not sharded (the encoder is "
                           "not a manifest model the workers can check); run it locally")
    pieces = shards(utterances, shard_size)
    if not pieces:
        return pd.DataFrame(columns=TRANSCRIPT_COLUMNS)
    futures = [cluster.submit(client, transcribe_shard, system, piece, cpu_threads, target=target) for piece in pieces]
    frames = []
    for number, future in enumerate(futures, start=1):
        done = cluster.outcome(future)
        if not done.ok:
            raise ClusterError(f"{system.label}: shard {number} of {len(pieces)} failed on the cluster: {done.reason}")
        frames.append(done.value)
    return pd.concat(frames, ignore_index=True)[TRANSCRIPT_COLUMNS]


def shard_target(target: str | None) -> str | None:
    """The target shards run on: the head's own when None, any worker's when ``"any"``."""
    return None if target == "any" else (target or target_slug())


def prepare(client, systems: Sequence[SttSystem], target: str | None) -> None:
    """Check (and ship) the systems' models on every worker that may run a shard (``target`` None: any)."""
    found = cluster.workers(client)
    addresses = [w.address for w in found if target is None or w.target == target]
    if not addresses:
        raise ClusterError(f"no saraikit worker{' of target ' + target if target else ''} on "
                           f"{client.scheduler.address} to run shards")
    models_sync.ensure_models(client, addresses, sorted({s.model for s in systems}))


def sharded_accuracy(client, systems: Sequence[SttSystem], sets: dict[str, list[Utterance]], cpu_threads: int = 2,
                     n_boot: int = 2000, shard_size: int = DEFAULT_SHARD_SIZE, target: str | None = None) -> AccuracyRun:
    """:func:`saraikit.quality.stt_eval.run_accuracy`, transcribed in shards on the workers of ``target``
    (default: the head's own target; ``"any"``: every worker, see the module docstring)."""
    target = shard_target(target)
    prepare(client, systems, target)
    transcribe = partial(_set_transcriber, client, shard_size=shard_size, cpu_threads=cpu_threads, target=target)
    return run_accuracy(systems, sets, cpu_threads=cpu_threads, n_boot=n_boot, transcribe_set=transcribe)


def sharded_noise_sweeps(client, systems: Sequence[SttSystem], sets: dict[str, list[Utterance]],
                         shard_size: int = DEFAULT_SHARD_SIZE, target: str | None = None, **kwargs) -> NoiseRun:
    """:func:`saraikit.quality.stt_eval.noise_sweeps` (same keywords), transcribed in shards on the workers of
    ``target`` (as :func:`sharded_accuracy`)."""
    target = shard_target(target)
    prepare(client, systems, target)
    transcribe = partial(_set_transcriber, client, shard_size=shard_size,
                         cpu_threads=kwargs.get("cpu_threads", 2), target=target)
    return noise_sweeps(systems, sets, transcribe_set=transcribe, **kwargs)


def sharded_round_trip(client, system: SttSystem, synthesized: pd.DataFrame, cpu_threads: int = 2, n_boot: int = 2000,
                       shard_size: int = DEFAULT_SHARD_SIZE, target: str | None = None) -> dict:
    """:func:`saraikit.quality.tts_eval.round_trip` with ``system`` listening, transcribed in shards on the
    workers of ``target`` (as :func:`sharded_accuracy`); the synthesis stays on the head."""
    target = shard_target(target)
    prepare(client, [system], target)
    return round_trip(None, synthesized, n_boot=n_boot,
                      transcribe_set=partial(_set_transcriber, client, system, shard_size=shard_size,
                                             cpu_threads=cpu_threads, target=target))


def _set_transcriber(client, system: SttSystem, utterances: Sequence[Utterance], shard_size: int, cpu_threads: int,
                     target: str | None) -> pd.DataFrame:
    if system.encoder is not None:  # an ONNX encoder file of the head's: transcribed here, as a local run does
        return transcribe_all(Transcriber(system, cpu_threads), list(utterances))
    return sharded_transcribe(client, system, utterances, shard_size, cpu_threads, target)
