"""Every Python block of README.md runs as written, in order, offline (see tests/readme_prelude.py for what it assumes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_python_block_in_the_readme_runs() -> None:
    done = subprocess.run([sys.executable, "-m", "tests.readme_prelude", str(ROOT / "README.md")], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "README blocks" in done.stdout
