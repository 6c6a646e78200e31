"""Moonshine's tokenizer: ``tokenizer.bin`` from the ``moonshine-cpp`` wheel, decoded in Python.

Format (ARCHITECTURE.md's probe notes, checked against the file): a sequence of
records, each one byte giving a length followed by that many bytes; the
record's position is the token id. base-en holds 32,000 records: ``<unk>``,
``<s>`` (start, id 1), ``</s>`` (end, id 2), then 256 single-byte records
(ids 3-258, SentencePiece's byte fallback) and the word pieces, in which
"▁" (U+2581) marks a space.

Decisions:

- Decoding joins the raw bytes of the pieces first and decodes UTF-8 once,
  so a character split over byte-fallback tokens comes out whole (a broken
  sequence becomes U+FFFD rather than an exception); then "▁" becomes a
  space and the ends are stripped.
- The special tokens (ids 0-2) and ids beyond the file (the decoder's
  logits have 32,768 columns for 32,000 pieces) decode to nothing.
- A file that does not parse into whole records, or whose first three
  records are not ``<unk>``, ``<s>``, ``</s>``, is a ModelError naming it:
  it is not a Moonshine tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from saraikit.core.errors import ModelError

START_TOKEN = 1
END_TOKEN = 2
SPECIAL_PIECES = (b"<unk>", b"<s>", b"</s>")
SPACE = "\u2581"


def read_pieces(path: Path) -> list[bytes]:
    """The records of a ``tokenizer.bin``: index = token id (ModelError on a malformed file)."""
    data = Path(path).read_bytes()
    pieces, offset = [], 0
    while offset < len(data):
        length = data[offset]
        end = offset + 1 + length
        if end > len(data):
            raise ModelError(f"Moonshine tokenizer {path}: record {len(pieces)} at byte {offset} wants {length} "
                             f"bytes but the file ends after {len(data) - offset - 1}: "
                             "truncated or not a tokenizer.bin")
        pieces.append(data[offset + 1:end])
        offset = end
    if tuple(pieces[:3]) != SPECIAL_PIECES:
        raise ModelError(f"Moonshine tokenizer {path}: the first records are {pieces[:3]!r}, expected "
                         f"{list(SPECIAL_PIECES)!r}: not a Moonshine tokenizer.bin")
    return pieces


@dataclass(frozen=True)
class MoonshineTokenizer:
    pieces: tuple[bytes, ...]

    @classmethod
    def from_file(cls, path: str | Path) -> MoonshineTokenizer:
        return cls(tuple(read_pieces(Path(path))))

    def __len__(self) -> int:
        return len(self.pieces)

    def piece(self, token_id: int) -> str:
        """One token's text as stored (``"▁the"``), for inspection."""
        return self.pieces[token_id].decode("utf-8", errors="replace")

    def decode(self, token_ids: list[int]) -> str:
        """Text of ``token_ids`` (special and unknown ids skipped, "▁" as a space, ends stripped)."""
        raw = b"".join(self.pieces[t] for t in token_ids if len(SPECIAL_PIECES) <= t < len(self.pieces))
        return raw.decode("utf-8", errors="replace").replace(SPACE, " ").strip()
