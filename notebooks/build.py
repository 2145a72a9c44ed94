"""Build the teaching notebooks from their sources, executing every cell.

The sources are ``notebooks/src/NN_name.py`` in Jupytext's percent format
(``# %%`` starts a code cell, ``# %% [markdown]`` a Markdown cell whose lines
are commented with ``# ``), so they review as plain Python and Jupytext can
open them as notebooks too.  This script turns each into ``notebooks/NN_name.ipynb``,
executes it top to bottom in a fresh kernel (working directory ``notebooks/``)
and writes it with its outputs, so the plots show on the repository page::

    pip install ".[notebooks]"
    python notebooks/build.py            # every notebook
    python notebooks/build.py 02 03      # those whose names contain 02 or 03

CI does not rebuild: it executes the committed ``.ipynb`` files with
``pytest --nbmake notebooks/``.  ``tests/test_notebooks.py`` checks that each
``.ipynb`` holds exactly its source's cells, executed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "src"

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def parse_percent(text: str) -> list[tuple[str, str]]:
    """``(cell_type, source)`` of each cell of a percent-format script (the subset used here)."""
    cells: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("# %%"):
            cells.append(("markdown" if line.strip() == "# %% [markdown]" else "code", []))
        elif not cells:
            if line.strip():
                raise ValueError(f"text before the first '# %%' cell marker: {line!r}")
        elif cells[-1][0] == "markdown":
            if line.strip() and line != "#" and not line.startswith("# "):
                raise ValueError(f"a Markdown line must start with '# ' (or be '#'): {line!r}")
            cells[-1][1].append(line[2:])
        else:
            cells[-1][1].append(line)
    return [(kind, "\n".join(lines).strip("\n")) for kind, lines in cells]


def to_notebook(source: Path):
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = dict(KERNELSPEC)
    notebook.metadata["language_info"] = {"name": "python"}
    for number, (kind, text) in enumerate(parse_percent(source.read_text(encoding="utf-8")), 1):
        new_cell = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        # stable ids keep rebuilt notebooks' diffs small
        notebook.cells.append(new_cell(text, id=f"cell-{number:02d}"))
    nbformat.validate(notebook)
    return notebook


def build(source: Path) -> float:
    """Execute ``source`` as a notebook and write it beside ``src/``; the seconds it took."""
    import nbformat
    from nbclient import NotebookClient

    notebook = to_notebook(source)
    start = time.perf_counter()
    NotebookClient(notebook, timeout=600, kernel_name="python3", record_timing=False,
                   resources={"metadata": {"path": str(HERE)}}).execute()
    seconds = time.perf_counter() - start
    target = HERE / f"{source.stem}.ipynb"
    nbformat.write(notebook, target)
    return seconds


def main(argv: list[str]) -> int:
    sources = sorted(SOURCES.glob("[0-9][0-9]_*.py"))
    if argv:
        sources = [s for s in sources if any(word in s.name for word in argv)]
    if not sources:
        print(f"no notebook source matches {argv} in {SOURCES}", file=sys.stderr)
        return 1
    for source in sources:
        print(f"{source.name}: executing ...", flush=True)
        seconds = build(source)
        print(f"{source.name}: wrote {source.stem}.ipynb, executed in {seconds:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
