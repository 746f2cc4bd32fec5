"""Shared helpers: the script is imported for unit tests and run as a subprocess for the rest."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "dqn_cartpole.py"
sys.path.insert(0, str(ROOT))


def run_script(*args, timeout=600):
    """Run dqn_cartpole.py with `args`; return the CompletedProcess (text, captured)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )


@pytest.fixture(scope="session")
def tensorflow_ready():
    """Import TensorFlow once, the way the script does, for the unit tests that need it."""
    import dqn_cartpole

    dqn_cartpole.setup_tensorflow(seed=0)
