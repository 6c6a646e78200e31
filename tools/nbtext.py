"""Edit notebooks as text: ``nbtext.py dump NB.ipynb OUT.py`` and ``nbtext.py load IN.py NB.ipynb``.

The text form is one block per cell, each starting with ``# %% md``, ``# %% parameters`` or
``# %% code``; ``load`` writes the notebook without outputs (what is committed).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

from nbgen import write

MARK = "# %% "


def dump(notebook: Path, out: Path) -> None:
    nb = nbformat.read(str(notebook), as_version=4)
    blocks = []
    for cell in nb.cells:
        kind = "md" if cell.cell_type == "markdown" else (
            "parameters" if "parameters" in cell.metadata.get("tags", []) else "code")
        blocks.append(f"{MARK}{kind}\n{cell.source}\n")
    out.write_text("\n".join(blocks))


def load(text: Path, notebook: Path) -> None:
    cells, kind, lines = [], None, []
    for line in text.read_text().splitlines():
        if line.startswith(MARK):
            if kind:
                cells.append((kind, "\n".join(lines)))
            kind, lines = line[len(MARK):].strip(), []
        else:
            lines.append(line)
    if kind:
        cells.append((kind, "\n".join(lines)))
    write(notebook, [("params" if k == "parameters" else k, s.strip("\n")) for k, s in cells])


if __name__ == "__main__":
    command, source, dest = sys.argv[1:4]
    (dump if command == "dump" else load)(Path(source), Path(dest))
