"""A greedy decoder loop's stopping rules: the end token, a token budget, repetition loops.

The model is hidden behind ``step(index, token) -> next token``, so the rules
here are the same for any autoregressive decoder and are tested on crafted
sequences without a model.

Decisions:

- The budget scales with the audio: ``ceil(audio_s * per_s) + extra`` new
  tokens. Speech carries about 2-3 words a second; Moonshine's tokenizer
  produced 3.7-4.5 tokens per second of audio on the LibriVox and card
  clips, so the default 6.5 tokens/s (Moonshine's own reference code used 6)
  plus 8 leaves room for fast speech and short clips ("Yes." is 3 tokens in
  0.4 s) while a decoder that never emits its end token stops after a few
  hundred milliseconds of extra work per second of audio, not after the
  model's full context.
- A repetition loop is the tail of the generated tokens being ``r`` copies of
  one ``p``-token unit with ``r >= LOOP_MIN_REPEATS`` (3) and ``p * r >=
  LOOP_MIN_TOKENS`` (12): one token 12 times, a 2-token unit 6 times, a
  4-token unit 3 times. The thresholds keep ordinary repetition ("no, no, no",
  "thank you, thank you") below the line. It is checked after every token,
  so a loop stops decoding as soon as it is certain instead of running to the
  budget (at 30-60 ms per Moonshine token that is most of the cost of a
  looping clip).
- A looped result keeps the tokens up to the end of the loop's first copy
  and says ``status="looped"``; a result that hit the budget without an end
  token says ``status="capped"``. Neither is silent: the stage turns both into
  a ``Transcript.reason`` and ``meta["status"]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from saraikit.core.errors import ConfigError

LOOP_MIN_REPEATS = 3
LOOP_MIN_TOKENS = 12
DEFAULT_TOKENS_PER_S = 6.5
DEFAULT_EXTRA_TOKENS = 8


@dataclass(frozen=True)
class Loop:
    """``repeats`` copies of a ``period``-token unit ending the sequence, the first starting at ``start``."""

    start: int
    period: int
    repeats: int


@dataclass
class Decoded:
    """What a greedy loop produced: kept tokens, the steps run, and why it stopped."""

    tokens: list[int]  # kept tokens (a loop's extra copies removed), without start and end tokens
    steps: int  # decoder calls made (the end token's call included)
    generated: int  # tokens generated before stopping (end token excluded)
    status: str  # "ok" (end token), "looped" or "capped" (budget reached)
    budget: int
    loop: Loop | None = None


def token_budget(audio_s: float, per_s: float = DEFAULT_TOKENS_PER_S, extra: int = DEFAULT_EXTRA_TOKENS) -> int:
    """New tokens allowed for ``audio_s`` seconds of audio: ``ceil(audio_s * per_s) + extra``."""
    return math.ceil(audio_s * per_s) + extra


def check_budget_settings(per_s, extra, where: str) -> None:
    """ConfigError naming ``where`` unless ``per_s`` is a number > 0 and ``extra`` an int >= 0."""
    if isinstance(per_s, bool) or not isinstance(per_s, (int, float)) or not per_s > 0:
        raise ConfigError(f"{where}: max_tokens_per_s must be a number > 0, got {per_s!r}")
    if isinstance(extra, bool) or not isinstance(extra, int) or extra < 0:
        raise ConfigError(f"{where}: max_tokens_extra must be an int >= 0, got {extra!r}")


def repetition_loop(tokens: list[int], min_repeats: int = LOOP_MIN_REPEATS,
                    min_tokens: int = LOOP_MIN_TOKENS) -> Loop | None:
    """The shortest unit repeated at the end of ``tokens`` often enough to be a loop, or None."""
    n = len(tokens)
    for period in range(1, n // min_repeats + 1):
        unit = tokens[n - period:]
        repeats = 1
        while (repeats + 1) * period <= n and tokens[n - (repeats + 1) * period: n - repeats * period] == unit:
            repeats += 1
        if repeats >= min_repeats and repeats * period >= min_tokens:
            return Loop(n - repeats * period, period, repeats)
    return None


def greedy_decode(step: Callable[[int, int], int], start_token: int, end_token: int, budget: int) -> Decoded:
    """Run ``step(index, previous token) -> next token`` from ``start_token`` until the end token,
    a repetition loop or ``budget`` new tokens, whichever comes first.

    After ``budget`` tokens one more step is run: if it gives the end token the
    result is complete ("ok"), otherwise it is "capped" and that token dropped.
    """
    tokens: list[int] = []
    token = step(0, start_token)
    steps = 1
    while token != end_token:
        if len(tokens) == budget:
            return Decoded(tokens, steps, len(tokens), "capped", budget)
        tokens.append(token)
        loop = repetition_loop(tokens)
        if loop is not None:
            return Decoded(tokens[: loop.start + loop.period], steps, len(tokens), "looped", budget, loop)
        token = step(steps, token)
        steps += 1
    return Decoded(tokens, steps, len(tokens), "ok", budget)
