"""Is a Whisper decode a loop? Repeated token n-grams, long character runs, or a decode stopped by its token cap.

Whisper's greedy decoder, given an encoder window much shorter than the
30 s it was trained on, can fall into a loop: "5 5 5 5 ...", "Seven of clubs
Seven of clubs", "Conte la semia. Conte la semia. ...", a run of "¿". Such
text must never pass for a transcript, so the trimmed STT stage
(:mod:`saraikit.engines.whisper_trim`) asks :func:`loop_reason` about every
decode.

Decisions
---------
- Repetition is judged on token ids (the decoder's own units): a unit of
  ``u`` tokens repeated back to back ``r`` times anywhere in the output is a
  loop when ``r`` reaches :data:`MIN_REPEATS` for that unit length: 4 for a
  single token ("5 5 5 5"; "no, no" or "very very" are real speech), 3 for
  two tokens, 2 for three or more tokens ("Seven of clubs Seven of clubs":
  people rarely say a whole phrase twice in a row in a voice command).
- A character other than a letter, a digit or a space repeated
  :data:`MIN_CHAR_RUN` times ("¿¿¿¿¿¿", "......") is a loop whatever the
  tokens, since one token can hold several such characters. Letters and
  digits are left alone ("1000000" is a number).
- A decode that stopped because it reached its token cap (no end token) is
  reported as one: real speech stays well below the cap (see
  ``max_tokens_per_s`` in the stage), a runaway decode does not.
"""

from __future__ import annotations

import re
from typing import Sequence

MIN_REPEATS = {1: 4, 2: 3}  # unit length in tokens -> back-to-back repeats that make a loop
MIN_REPEATS_LONG = 2  # for units of 3 tokens or more
MAX_UNIT = 12  # longest unit looked for, in tokens
MIN_CHAR_RUN = 6
_CHAR_RUN = re.compile(r"([^\w\s])\1{%d,}" % (MIN_CHAR_RUN - 1))


def min_repeats(unit: int) -> int:
    return MIN_REPEATS.get(unit, MIN_REPEATS_LONG)


def repeated_unit(tokens: Sequence[int]) -> tuple[int, int, int] | None:
    """``(start, unit, repeats)`` of the first token unit repeated back to back often enough to be a loop, or None."""
    tokens = list(tokens)
    n = len(tokens)
    for unit in range(1, min(MAX_UNIT, n // 2) + 1):
        needed = min_repeats(unit)
        for start in range(0, n - unit * needed + 1):
            repeats = 1
            while tokens[start + repeats * unit:start + (repeats + 1) * unit] == tokens[start:start + unit]:
                repeats += 1
            if repeats >= needed:
                return start, unit, repeats
    return None


def loop_reason(tokens: Sequence[int], text: str, capped: bool = False, decode=None) -> str | None:
    """Why this decode is a loop, or None. ``decode`` (token ids -> text) only makes the reason readable."""
    found = repeated_unit(tokens)
    if found:
        start, unit, repeats = found
        piece = tokens[start:start + unit]
        shown = repr(decode(list(piece))) if decode else f"tokens {list(piece)}"
        return f"the output repeats {shown} {repeats} times in a row"
    run = _CHAR_RUN.search(text)
    if run:
        return f"the output has a run of {len(run.group(0))} {run.group(1)!r} characters"
    if capped:
        return f"the decode stopped at its token cap ({len(tokens)} tokens) without ending"
    return None
