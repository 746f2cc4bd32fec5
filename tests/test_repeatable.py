"""The same seed gives the same run, whether XLA compiles the replay or loads it from its
cache; another seed gives another run. Three whole processes, in a file of their own so that
the two workers share the suite's longest files evenly."""

import os
import subprocess
import sys

from conftest import ROOT, SCRIPT


def cache_files(folder):
    return sorted(
        (p.name, p.stat().st_size, p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir()
    )


def test_same_seed_gives_the_same_run_with_the_xla_cache_empty_or_warm(tmp_path):
    # Three runs of 1,100 steps (replay from step 1,008): seed 3 with an empty XLA cache, seed 3
    # with it warm, and seed 4 without it.
    args = ["--max-steps", "1100", "--no-gifs", "--eval-every", "100000"]
    cache, runs = tmp_path / "cache", {}
    for name, extra in [
        ("first", ["--seed", "3"]), ("second", ["--seed", "3"]),
        ("other", ["--seed", "4", "--no-xla-cache"]),
    ]:  # fmt: skip
        env = {
            **os.environ,
            "DQN_CARTPOLE_CACHE": str(cache if name != "other" else tmp_path / "x"),
        }
        result = subprocess.run(
            [sys.executable, str(SCRIPT), *args, *extra, "--results-dir", tmp_path / name],
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        runs[name] = (tmp_path / name / "episodes.csv").read_text()
        if name == "first":
            stored = cache_files(cache)
            assert len(stored) == 1 and stored[0][0].startswith("xla_compile_cache")
    assert cache_files(cache) == stored  # read, not written again: same names, bytes and times
    assert not (tmp_path / "x").exists()  # --no-xla-cache leaves the cache alone
    # The same seed is the same run, compiled or loaded from the cache; another seed another run.
    assert runs["first"] == runs["second"] and len(runs["first"].splitlines()) > 20
    assert runs["other"] != runs["first"]
