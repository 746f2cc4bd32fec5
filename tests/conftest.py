"""Shared helpers: the script is imported for unit tests and run as a subprocess for the rest."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "dqn_cartpole.py"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "tools"))  # the study and benchmark tools


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


def run_main(capsys, *args):
    """Run the script's entry point in this process, where TensorFlow is already started, as a
    quicker stand-in for run_script where a separate process is not what is tested."""
    import dqn_cartpole

    capsys.readouterr()  # only this run's output
    environ = dict(os.environ)
    try:
        code = dqn_cartpole.main([str(arg) for arg in args])
    finally:  # main() points TF_XLA_FLAGS at its cache: not for the processes tests start
        os.environ.clear()
        os.environ.update(environ)
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["dqn_cartpole.py", *map(str, args)], code, out, err)


@pytest.fixture(scope="session")
def tensorflow_ready():
    """Import TensorFlow once, the way the script does, for the unit tests that need it."""
    import dqn_cartpole

    dqn_cartpole.setup_tensorflow()


# The suite's files, longest first, in the order that shares them best between two workers
# under `--dist loadfile --no-loadscope-reorder` (each worker takes one, then whichever is free
# takes the next): the Ray study's tests, which wait on Ray as much as they compute, beside the
# unit tests, then the rest where there is room.
FILE_ORDER = [
    "test_study_ray.py", "test_units.py", "test_robustness.py", "test_cli.py",
    "test_flags_property.py", "test_default_run.py", "test_repeatable.py", "test_study_stats.py",
    "test_documents.py",
]  # fmt: skip


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(FILE_ORDER)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
