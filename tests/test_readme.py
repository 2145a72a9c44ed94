"""The README shows what the code does: its command excerpts and API examples are checked here."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from npconv.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


#: README excerpts of command output, each checked line by line against a real run (from the
#: repository root): every line shown, except "..." and blank ones, must be a line of the output.
VERIFIED_COMMANDS = ("npconv explain", "npconv explain --backward", "npconv check examples/answer_sheet.toml",
                     "npconv check --exercise examples/exercises/01_output_size.toml "
                     "examples/exercises/answers/01_a_student.toml")


@pytest.mark.parametrize("command", VERIFIED_COMMANDS)
def test_readme_excerpts_are_real_output(capsys, monkeypatch, command):
    excerpts = [b for b in _blocks("text") if b.startswith(f"$ {command}\n")]
    assert excerpts, f"no README excerpt of `{command}`"
    monkeypatch.chdir(README.parent)
    main(command.split()[1:])
    output = capsys.readouterr().out.splitlines()
    for excerpt in excerpts:  # the short one on the first screen and the longer one further down
        for line in excerpt.splitlines()[1:]:
            if line.strip() and line.strip() != "...":
                assert line in output, f"README line not in `{command}` output: {line!r}"


def test_readme_python_examples_run_and_their_comments_hold(capsys):
    for block in _blocks("python"):
        if "import torch" in block and importlib.util.find_spec("torch") is None:
            continue  # PyTorch is optional: its examples run where it is installed
        namespace: dict = {}
        exec(compile(block, str(README), "exec"), namespace)
        printed = capsys.readouterr().out.splitlines()
        # "print(...)  # expected" lines: the comment is what was printed
        expected = [m.group(1) for m in re.finditer(r"^print\(.*\)\s+# (.*)$", block, flags=re.M)]
        assert printed == expected


def test_readme_has_the_two_setup_commands():
    block = re.search(r"<!-- ci:begin.*?```bash\n(.*?)```", README.read_text(), flags=re.S).group(1)
    assert block.splitlines() == ['pip install . && npconv explain', 'pip install ".[test]" && pytest -n auto']
