"""The teaching notebooks, checked without running them (CI executes them: pytest --nbmake notebooks/).

Each committed ``notebooks/NN_name.ipynb`` must be a valid nbformat-4 notebook,
hold exactly the cells of its source ``notebooks/src/NN_name.py`` (as Jupytext
reads its percent format; with the notebooks extra, which CI installs for
this file), have been executed top to bottom without an error, show at least
one plot, and use npconv's public API only.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ("01_how_convolution_works", "02_separable_convolution_counted", "03_timing_cpu_kernels",
         "04_the_assignments_implementation_part", "05_a_multiplication_count_belongs_to_the_algorithm")

def _load(name: str) -> dict:
    return json.loads((NOTEBOOKS_DIR / f"{name}.ipynb").read_text(encoding="utf-8"))


def _source(cell: dict) -> str:
    source = cell["source"]
    return source if isinstance(source, str) else "".join(source)


def _code_cells(notebook: dict) -> list[dict]:
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]


def test_every_notebook_source_has_its_notebook_and_the_index_names_it():
    sources = sorted(p.stem for p in (NOTEBOOKS_DIR / "src").glob("[0-9][0-9]_*.py"))
    assert tuple(sources) == NAMES
    index = (NOTEBOOKS_DIR / "README.md").read_text(encoding="utf-8")
    for name in NAMES:
        assert (NOTEBOOKS_DIR / f"{name}.ipynb").is_file()
        assert f"{name}.ipynb" in index


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_nbformat_4_with_a_python_kernel(name):
    notebook = _load(name)
    assert notebook["nbformat"] == 4
    assert notebook["metadata"]["kernelspec"]["language"] == "python"
    assert notebook["cells"][0]["cell_type"] == "markdown"
    assert _source(notebook["cells"][0]).startswith("# ")
    for cell in notebook["cells"]:
        assert cell["cell_type"] in ("markdown", "code")
        assert isinstance(cell["id"], str) and cell["id"]


@pytest.mark.parametrize("name", NAMES)
def test_notebook_passes_nbformat_validation(name):
    nbformat = pytest.importorskip("nbformat", reason="nbformat comes with the notebooks extra")
    nbformat.validate(nbformat.reads((NOTEBOOKS_DIR / f"{name}.ipynb").read_text(encoding="utf-8"), as_version=4))


@pytest.mark.parametrize("name", NAMES)
def test_notebook_holds_exactly_its_sources_cells(name):
    jupytext = pytest.importorskip("jupytext", reason="jupytext comes with the notebooks extra")
    source = jupytext.read(NOTEBOOKS_DIR / "src" / f"{name}.py")
    expected = [(cell.cell_type, cell.source) for cell in source.cells]
    actual = [(cell["cell_type"], _source(cell)) for cell in _load(name)["cells"]]
    assert actual == expected, f"notebooks/{name}.ipynb is stale: rebuild it (notebooks/README.md, Editing)"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_was_executed_in_order_without_errors_and_shows_a_plot(name):
    cells = _code_cells(_load(name))
    assert [cell["execution_count"] for cell in cells] == list(range(1, len(cells) + 1))
    outputs = [output for cell in cells for output in cell["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"]
    assert not [o for o in outputs if o["output_type"] == "stream" and o["name"] == "stderr"]
    assert any("image/png" in o.get("data", {}) for o in outputs)


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_npconv_names(code: str) -> list[str]:
    """Private npconv names that ``code`` imports or reaches as attributes (``npconv.x._y``,
    ``from npconv._x import y``, ``from npconv.x import _y``, ``bench._y`` after ``from npconv import bench``).

    Dunder names such as ``npconv.__version__`` are public.
    """
    tree = ast.parse(code)
    bound: set[str] = set()  # names the code binds to npconv or to something imported from it
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "npconv":
                    bound.add(alias.asname or "npconv")
                    found += [alias.name] if any(map(_private, alias.name.split("."))) else []
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "npconv":
            for alias in node.names:
                bound.add(alias.asname or alias.name)
                if any(map(_private, [*node.module.split("."), alias.name])):
                    found.append(f"{node.module}.{alias.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in bound:
                found.append(ast.unparse(node))
    return found


@pytest.mark.parametrize("name", NAMES)
def test_notebook_uses_the_public_api_only(name):
    code = "\n".join(_source(cell) for cell in _code_cells(_load(name)))
    assert "import npconv" in code or "from npconv" in code
    assert private_npconv_names(code) == []


@pytest.mark.parametrize("code", [
    "from npconv._expr import format_number",
    "import npconv._expr",
    "import npconv\nx = npconv.kernels._load()",
    "from npconv.bench import _random",
    "from npconv import bench\nbench._random(1)",
    "from npconv import formulas as F\nF._batch",
])
def test_private_names_are_caught(code):
    assert private_npconv_names(code)


@pytest.mark.parametrize("code", [
    "from npconv import bench, formulas",
    "from npconv.geometry import ConvGeometry\nConvGeometry.from_layer",
    "import npconv\nnpconv.conv2d(x, w, method='direct')\nprint(npconv.__version__)",
    "import numpy as np\nnp._private_but_not_npconv",
])
def test_public_names_pass(code):
    assert private_npconv_names(code) == []
