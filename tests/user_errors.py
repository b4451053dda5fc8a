"""What a user sees of an error: one ``Error:`` line, exit status 1, nothing else that
a user should not see (no Python traceback, no Rust panic)."""

from __future__ import annotations

import subprocess


def one_error_line(done: subprocess.CompletedProcess[str], *wanted: str) -> str:
    """Assert the command failed with exactly one ``Error:`` line holding each of
    ``wanted``, and no traceback or panic; return the line."""
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "panicked" not in done.stderr, done.stderr[-3000:]
    assert len(errors) == 1, done.stderr[-3000:]
    for text in wanted:
        assert text in errors[0], errors[0]
    return errors[0]
