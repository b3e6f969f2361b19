"""Running the ``iotguard`` CLI in-process from tests (on sys.path through tests/conftest.py's folder)."""

from __future__ import annotations

import re
import sys

import pytest


def run(args: list, capsys, monkeypatch) -> tuple[int, str, str]:  # noqa: ANN001 (pytest fixtures)
    """``iotguard ARGS`` in this process: (exit status, stdout, stderr)."""
    from iotguard.cli.main import main

    monkeypatch.setattr(sys, "argv", ["iotguard", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.out, captured.err


def one_line_error(code: int, err: str, pattern: str) -> None:
    """Exit 2, no traceback, and the error is one line that matches ``pattern``."""
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert re.search(pattern, lines[0]), lines[0]
