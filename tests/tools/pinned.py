"""Run dqn_cartpole.py the way the study and the benchmark measure it: a whole process pinned to
one core with `taskset`, one math thread, no GIFs, writing into a folder of the caller's."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def die_with_parent() -> None:
    """In the child, before exec: the kernel kills it if the process that started it dies (a
    study's worker killed mid-run leaves no orphan training on)."""
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class RunFailed(RuntimeError):
    """The script exited with an error; the message ends with its last line of stderr."""


def pinned(command: list[str], core: int) -> list[str]:
    return ["taskset", "-c", str(core), *command]


def run_pinned(seed: int, core: int, folder: Path, flags=(), script=None) -> dict:
    """One training run: its summary.json, wall seconds and peak resident memory (MiB).
    `script`: a copy of dqn_cartpole.py to run instead (a study pins its code that way)."""
    folder = Path(folder)
    script = str(script or ROOT / "dqn_cartpole.py")
    command = [sys.executable, script, "--no-gifs", "--seed", str(seed)]
    command += ["--results-dir", str(folder), *flags]
    log = folder.parent / f"{folder.name}.stderr"
    start = time.perf_counter()
    with open(log, "w") as stderr:
        proc = subprocess.Popen(
            pinned(command, core),
            env={**os.environ, **ONE_THREAD},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            preexec_fn=die_with_parent,
        )
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        lines = log.read_text().strip().splitlines() or ["(no output)"]
        raise RunFailed(f"seed {seed} {' '.join(flags)}: exit {code}: {lines[-1]}")
    return {
        "summary": json.loads((folder / "summary.json").read_text()),
        "seconds": seconds,
        "peak_mib": usage.ru_maxrss / 1024,  # Linux reports KiB
    }
