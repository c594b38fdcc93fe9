"""Every ```python snippet of README.md runs verbatim (and the printed claims are true)."""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_snippets():
    assert len(SNIPPETS) >= 3


@pytest.mark.parametrize("i", range(len(SNIPPETS)))
def test_readme_snippet_runs(i, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(SNIPPETS[i], f"README.md snippet {i}", "exec"), {"__name__": "readme"})
    printed = buf.getvalue()
    # a line "print(...)   # text" promises that text in its output
    for promised in re.findall(r"print\(.*\)[ \t]+#[ \t]*(.+)", SNIPPETS[i]):
        head = promised.split(",")[0].split(" (")[0].strip()
        assert head in printed, (head, printed)
