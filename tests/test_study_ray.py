"""The study on Ray, as a user runs it: a local study end to end (the same rows as the thread
pool's), a two-node cluster on one machine, a run whose worker is killed, a study stopped and
resumed, and a run that fails. Tiny runs of a few seconds each."""

import contextlib
import csv
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import ROOT

TINY = "tiny=--max-steps 300 --min-observations 64 --eval-every 100 --no-xla"
# What a run's row says that depends on its flags and seed alone, not on where or when it ran.
SAME = [
    "variant", "flags", "seed", "env", "script_sha", "solved", "steps_to_solve", "steps",
    "script_eval_mean", "own_eval_mean", "own_eval_min", "own_eval_perfect_episodes",
    "polish_end", "saved_check", "saved_certified", "evaluations", "certifications", "error",
]  # fmt: skip


def study(runs, *args, seeds="1-2", variant=TINY, **popen):
    command = [sys.executable, "tests/tools/study.py", "--runs", str(runs), "--seeds", seeds,
               "--variant", variant, *args]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    if popen:
        return subprocess.Popen(command, cwd=ROOT, env=env, text=True, **popen)
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def rows(path) -> dict:
    with open(path, newline="") as f:
        return {int(row["seed"]): row for row in csv.DictReader(f)}


def same(row: dict) -> dict:
    return {key: row[key] for key in SAME}


@pytest.fixture(scope="module")
def thread_rows(tmp_path_factory):
    """The two tiny runs made by the thread pool, without Ray: what every engine must give."""
    path = tmp_path_factory.mktemp("threads") / "runs.csv"
    result = study(path, "--engine", "threads")
    assert result.returncode == 0, result.stderr
    found = rows(path)
    assert sorted(found) == [1, 2] and all(row["node"] == "" for row in found.values())
    assert found[1]["evaluations"] != found[2]["evaluations"]  # two seeds, two runs
    return found


def test_a_local_ray_study_gives_the_thread_pools_rows(tmp_path, thread_rows):
    path = tmp_path / "runs.csv"
    result = study(path, "--jobs", "2")
    assert result.returncode == 0, result.stderr
    found = rows(path)
    assert {seed: same(row) for seed, row in found.items()} == {
        seed: same(row) for seed, row in thread_rows.items()
    }
    assert all(row["node"].startswith(socket.gethostname() + "/") for row in found.values())
    assert "2/2" in result.stderr  # the progress bar's last state


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_node(*args):
    """A Ray node of one CPU in a process group of its own. Ray 2.60's `ray start` turns on
    token authentication; a test cluster on loopback goes without."""
    ray = os.path.join(os.path.dirname(sys.executable), "ray")
    return subprocess.Popen(
        [ray, "start", "--block", "--num-cpus", "1", "--disable-usage-stats", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
    )  # fmt: skip


def alive_nodes(address: str) -> int:
    probe = (
        f"import ray; ray.init(address={address!r}, logging_level='ERROR'); "
        "print(sum(n['Alive'] for n in ray.nodes()))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    return int(out.stdout.strip() or 0)


def test_a_two_node_cluster_on_one_machine_runs_on_both_and_gives_the_same_rows(
    tmp_path, thread_rows
):
    port = free_port()
    address = f"127.0.0.1:{port}"
    nodes = [start_node("--head", "--port", str(port), "--include-dashboard", "false")]
    try:
        deadline = time.monotonic() + 240  # a busy machine starts a node slowly
        while alive_nodes(address) < 1 and time.monotonic() < deadline:
            time.sleep(1)
        nodes.append(start_node("--address", address))
        while alive_nodes(address) < 2 and time.monotonic() < deadline:
            time.sleep(1)
        assert alive_nodes(address) == 2
        path = tmp_path / "runs.csv"
        result = study(path, "--address", address)
        assert result.returncode == 0, result.stderr
        found = rows(path)
        assert len({row["node"] for row in found.values()}) == 2  # one run on each node
        assert {seed: same(row) for seed, row in found.items()} == {
            seed: same(row) for seed, row in thread_rows.items()
        }
    finally:  # SIGTERM stops a node's raylet; what is left of its group goes with SIGKILL
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for node in reversed(nodes):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.pid, sig)
            time.sleep(5 if sig == signal.SIGTERM else 0)
        for node in nodes:
            node.wait(timeout=30)


def task_pids() -> list[int]:
    found = subprocess.run(["pgrep", "-f", "ray::run_task"], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def test_a_run_whose_worker_is_killed_is_run_again_and_the_study_finishes(tmp_path, thread_rows):
    path = tmp_path / "runs.csv"
    driver = study(path, "--jobs", "1", seeds="1", stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE)  # fmt: skip
    deadline, killed = time.monotonic() + 300, None
    while killed is None and time.monotonic() < deadline and driver.poll() is None:
        pids = task_pids()
        if pids:
            time.sleep(1.0)  # the run is under way
            os.kill(pids[0], signal.SIGKILL)
            killed = pids[0]
        time.sleep(0.1)
    out, err = driver.communicate(timeout=300)
    assert killed is not None, "no Ray worker was seen running the task"
    assert driver.returncode == 0, err
    assert same(rows(path)[1]) == same(thread_rows[1])  # run again, to the same row


def test_a_stopped_study_resumes_without_running_finished_runs_again(tmp_path, thread_rows):
    # Three runs, one at a time, stopped by Ctrl-C once the first has landed. On a busy machine
    # Ray may hand the driver the next run before the stop reaches it, so one or two may have
    # landed; never all three. The driver gets SIGINT's default action back: under pytest-xdist
    # it would inherit the worker's "ignore SIGINT" and never stop.
    path = tmp_path / "runs.csv"
    driver = study(
        path, "--jobs", "1", seeds="1-3", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 400  # a busy machine runs slowly
    while time.monotonic() < deadline and (not path.exists() or len(rows(path)) < 1):
        time.sleep(0.2)
    driver.send_signal(signal.SIGINT)
    driver.communicate(timeout=120)
    first = rows(path)
    assert 1 <= len(first) <= 2
    result = study(path, "--jobs", "1", seeds="1-3")
    assert result.returncode == 0, result.stderr
    assert f"{len(first)} runs already in" in result.stdout
    assert f"{3 - len(first)} to go" in result.stdout
    every = rows(path)
    assert sorted(every) == [1, 2, 3]
    assert all(every[seed] == row for seed, row in first.items())  # not run again
    assert {s: same(every[s]) for s in thread_rows} == {
        s: same(row) for s, row in thread_rows.items()
    }


def test_a_run_that_fails_leaves_a_row_with_its_error_and_the_study_goes_on(tmp_path):
    path = tmp_path / "runs.csv"
    result = study(path, "--jobs", "2", variant="bad=--gamma 2")
    assert result.returncode == 1 and "2 runs failed" in result.stderr
    found = rows(path)
    assert sorted(found) == [1, 2]
    assert all("--gamma must be in (0, 1]" in row["error"] for row in found.values())
    report = study(path, "--report-only", variant="bad")
    assert report.returncode != 0 and "no finished runs" in report.stderr
