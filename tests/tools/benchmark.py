"""Benchmark: how long `python dqn_cartpole.py --no-gifs` takes to solve CartPole, per seed.

    python tests/tools/benchmark.py           # seeds 0-4, each pinned to core 1, one math thread
    python tests/tools/benchmark.py --seeds 10 --core 0
    python tests/tools/benchmark.py --only suite    # the test suite against be4424b's: both cores
    python tests/tools/benchmark.py --only study --seeds 10 --first-seed 13000   # study engines

Each seed runs as a whole process (imports, training and polishing, the final check, saving,
the plot), pinned with `taskset`, and the table shows steps and seconds to solve, whole-process
seconds, env steps per second while training, the 100-episode evaluation and peak memory. Then,
in this process and on the same core, one replay step done the seed's way (predict, predict, a
Python loop over the batch, fit) is timed against the script's compiled replay, and one action
chosen with model.predict() against the NumPy forward pass.

pytest does not collect this file: timings belong in a benchmark, not in a test.
"""

import argparse
import contextlib
import functools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from pinned import ONE_THREAD, pinned, run_pinned

ROOT = Path(__file__).resolve().parents[2]


# Phases of summary.json's phase_seconds, grouped into the table's columns.
PHASE_COLUMNS = {
    "start": ("startup", "validate"),
    "import TF": ("import_tensorflow",),
    "build": ("build_agent",),
    "collect": ("collect",),
    "compile": ("compile",),
    "learn": ("learn",),
    "eval 10": ("evaluate",),
    "check 100": ("confirm",),
    "polish": ("polish",),
    "polish checks": ("polish_checks",),
    "final eval": ("final_evaluation",),
    "write": ("write_model", "write_episodes", "write_rewards", "write_summary"),
}


def run_seed(seed: int, core: int, folder: Path) -> dict:
    run = run_pinned(seed, core, folder)
    summary = run["summary"]
    phases = summary["phase_seconds"]
    grouped = {
        column: sum(phases.get(name, 0.0) for name in names)
        for column, names in PHASE_COLUMNS.items()
    }
    # The interpreter's own start (and NumPy's import) comes before the script's clock starts,
    # and the summary's writing and the exit after it stops: what the whole process took more.
    grouped["outside"] = run["seconds"] - summary["total_seconds"]
    return {
        "phases": grouped,
        "seed": seed,
        "solved": summary["solved"],
        "steps": summary["steps_to_solve"] or summary["steps"],
        "seconds_to_solve": summary["seconds_to_solve"],
        "process_seconds": run["seconds"],
        "steps_per_second": summary["steps"] / summary["train_seconds"],
        "eval_mean": summary["final_eval"]["mean"],
        "peak_mib": run["peak_mib"],
    }


def time_calls(function, repeats: int) -> float:
    """Median seconds per call, after one warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def micro_benchmark(core: int, hidden: str) -> None:
    """The seed's replay step and action against the script's, on a network of `hidden` units."""
    os.sched_setaffinity(0, {core})
    sys.path.insert(0, str(ROOT))
    import dqn_cartpole as dqn

    dqn.setup_tensorflow()
    cfg = dqn.Config(hidden=hidden)
    agent = dqn.make_agent(cfg)
    rng = np.random.default_rng(0)
    for _ in range(cfg.memory_size):
        state = rng.normal(size=4).astype(np.float32)
        ended = bool(rng.random() < 0.05)
        agent.remember(state, int(rng.integers(2)), 1.0, state * 0.9, ended, False)

    def seed_replay_step():  # the seed's Experience_replay: one minibatch per call
        states, actions, rewards, next_states, terminated, _ = agent.memory.sample(
            1, cfg.batch_size
        )
        states, next_states = states[0], next_states[0]
        q = agent.q_network.predict(states, verbose=0, batch_size=cfg.batch_size)
        next_q = agent.target_network.predict(next_states, verbose=0, batch_size=cfg.batch_size)
        for i in range(cfg.batch_size):
            q[i][actions[0, i]] = (
                rewards[0, i] + cfg.gamma * np.amax(next_q[i])
                if not terminated[0, i]
                else rewards[0, i]
            )
        agent.q_network.fit(states, q, batch_size=cfg.batch_size, epochs=1, verbose=0)

    state = np.zeros(4, dtype=np.float32)
    seed_step = time_calls(seed_replay_step, 20)
    compiled_call = time_calls(agent.experience_replay, 200)
    compiled_step = compiled_call / cfg.gradient_steps
    seed_act = time_calls(lambda: np.argmax(agent.q_network.predict(state[None], verbose=0)), 50)
    numpy_act = time_calls(lambda: np.argmax(dqn.q_values(agent.weights, state)), 2000)

    print(f"\nHidden {hidden}: one gradient step (batch {cfg.batch_size}), median, core {core}:")
    print(f"  seed's way (predict, predict, Python loop, fit): {seed_step * 1e3:8.2f} ms")
    print(
        f"  compiled replay, {cfg.gradient_steps} steps per call:  {compiled_step * 1e3:8.3f} ms"
        f"  ({compiled_call * 1e3:.2f} ms per call)"
    )
    print(f"  ratio: {seed_step / compiled_step:.0f}x faster")
    print("One action choice, median:")
    print(f"  model.predict(): {seed_act * 1e3:8.2f} ms")
    print(
        f"  NumPy forward:   {numpy_act * 1e6:8.1f} us   ratio: {seed_act / numpy_act:.0f}x faster"
    )


def phase_table(rows: list[dict]) -> None:
    """Seconds per phase of each run, and the median of each column."""
    columns = [*PHASE_COLUMNS, "outside"]
    widths = [max(len(c), 6) for c in columns]
    print("\nWhere each run's seconds went (summary.json's phase_seconds; 'outside': before the")
    print("script's clock starts and after summary.json, from the whole-process time):")
    print(f"{'seed':>6} " + " ".join(f"{c:>{w}}" for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        cells = [f"{row['phases'][c]:>{w}.2f}" for c, w in zip(columns, widths, strict=True)]
        print(f"{row['seed']:>6} " + " ".join(cells))
    medians = [statistics.median(r["phases"][c] for r in rows) for c in columns]
    cells = [f"{m:>{w}.2f}" for m, w in zip(medians, widths, strict=True)]
    print(f"{'median':>6} " + " ".join(cells))


def paired(commands: dict, core: int, repeats: int, env_for=None) -> dict:
    """Whole-process seconds of each command, run in turn (A B A B ...) on `core`, `repeats`
    times; env_for(label) may give a run its own environment variables."""
    times = {label: [] for label in commands}
    for _ in range(repeats):
        for label, command in commands.items():
            extra = env_for(label) if env_for else {}
            start = time.perf_counter()
            subprocess.run(
                pinned(command, core),
                env={**os.environ, **ONE_THREAD, **extra},
                stdout=subprocess.DEVNULL,
                check=True,
            )
            times[label].append(time.perf_counter() - start)
    return times


def cache_benchmark(core: int, repeats: int = 5) -> None:
    """A run's start with the XLA compile cache empty (a first run) and warm (every later
    one): a short run whose one replay compiles, run in turn, pair by pair."""
    with tempfile.TemporaryDirectory() as tmp:
        script = [sys.executable, str(ROOT / "dqn_cartpole.py"), "--no-gifs", "--max-steps"]
        args = ["1100", "--eval-every", "100000", "--results-dir", tmp]
        warm = Path(tmp) / "warm-cache"
        subprocess.run(  # fill the warm cache once
            [*script, *args], env={**os.environ, "DQN_CARTPOLE_CACHE": str(warm)}, check=True,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        counter = iter(range(10**6))

        def env_for(label):
            if label == "later run (cache warm)":
                return {"DQN_CARTPOLE_CACHE": str(warm)}
            return {"DQN_CARTPOLE_CACHE": str(Path(tmp) / f"empty-{next(counter)}")}

        commands = {
            "first run (cache empty)": [*script, *args],
            "later run (cache warm)": [*script, *args],
        }
        times = paired(commands, core, repeats, env_for)
    first, later = times.values()
    ratios = [b / a for a, b in zip(first, later, strict=True)]
    print("\nXLA compile cache: `--max-steps 1100 --no-gifs` (one replay, so one compile),")
    print(f"whole process pinned to core {core}, run in turn, {repeats} pairs:")
    for label, values in times.items():
        print(f"  {label}: median {statistics.median(values):.2f} s "
              f"({min(values):.2f}-{max(values):.2f})")  # fmt: skip
    print(f"  later / first, pair by pair: median {statistics.median(ratios):.3f} "
          f"({min(ratios):.3f}-{max(ratios):.3f})")  # fmt: skip


def memory_child(capacity: int, steps: int) -> None:
    """In this process: fill a memory of `capacity` rows with synthetic CartPole transitions,
    train `steps` env steps with replay from the first step (no evaluations), and print the
    steps per second and the peak resident memory as JSON."""
    import json
    import resource

    sys.path.insert(0, str(ROOT))
    import dqn_cartpole as dqn

    dqn.setup_tensorflow()
    cfg = dqn.Config(
        memory_size=capacity, min_observations=32, max_steps=steps, eval_every=10**9,
        log_every=10**9, polish_steps=0,
    )  # fmt: skip
    agent = dqn.make_agent(cfg)
    rng = np.random.default_rng(0)
    chunk = 100_000  # written in pieces, so that the filling itself needs little extra memory
    for start in range(0, capacity, chunk):
        rows = agent.memory.rows[start : start + chunk]
        rows[:] = rng.normal(size=rows.shape).astype(np.float32)
        rows[:, 4] = rng.integers(2, size=len(rows))  # a valid action
        rows[:, 6] = rng.random(len(rows)) < 0.02  # terminated
        rows[:, -1] = 0.99**3  # the 3-step discount
    agent.memory.size = capacity
    agent.experience_replay()  # compile before the clock starts
    run = dqn.monitored_training(agent, dqn.StopFlag())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"steps_per_second": steps / run["train_seconds"], "peak_mib": peak}))


def memory_benchmark(core: int, repeats: int = 5, steps: int = 4_000) -> None:
    """Training speed and peak memory with a full 1,000,000-row memory against a full 2,000-row
    one (the default), each a process of its own, run in turn."""
    import json

    results = {2_000: [], 1_000_000: []}
    for _ in range(repeats):
        for capacity in results:
            command = [sys.executable, __file__, "--memory-child", str(capacity), str(steps)]
            out = subprocess.run(
                pinned(command, core), env={**os.environ, **ONE_THREAD}, capture_output=True,
                text=True, check=True,
            )  # fmt: skip
            results[capacity].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"\nReplay memory full of synthetic rows, {steps:,} training steps (replay every 16")
    print(f"steps, 16 gradient steps each), a process per run on core {core}, {repeats} pairs:")
    for capacity, runs in results.items():
        speed = [r["steps_per_second"] for r in runs]
        peak = [r["peak_mib"] for r in runs]
        print(f"  {capacity:>9,} rows: {statistics.median(speed):6.0f} steps/s "
              f"({min(speed):.0f}-{max(speed):.0f}), peak {statistics.median(peak):.0f} MiB "
              f"({min(peak):.0f}-{max(peak):.0f})")  # fmt: skip
    small, big = results.values()
    ratio = [b["steps_per_second"] / a["steps_per_second"] for a, b in zip(small, big, strict=True)]
    extra = statistics.median(
        b["peak_mib"] - a["peak_mib"] for a, b in zip(small, big, strict=True)
    )
    data = 1_000_000 * 12 * 4 / 2**20
    print(f"  1,000,000 / 2,000 rows, steps/s pair by pair: median {statistics.median(ratio):.3f}"
          f" ({min(ratio):.3f}-{max(ratio):.3f})")  # fmt: skip
    print(f"  extra peak memory: median {extra:.0f} MiB for {data:.0f} MiB of rows' data")


def vector_env_evaluate(dqn, weights, env_id: str, episodes: int, seed: int):
    """The way evaluate() played envs without a vector version before: one vector env of them
    all, which steps every env (or resets it) until the longest episode ends."""
    import gymnasium as gym

    envs = gym.make_vec(env_id, num_envs=episodes)
    obs, _ = envs.reset(seed=seed)
    returns, running = np.zeros(episodes), np.ones(episodes, dtype=bool)
    for _ in range(envs.spec.max_episode_steps):
        obs, rewards, terminated, truncated, _ = envs.step(
            np.argmax(dqn.q_values(weights, obs), axis=1)
        )
        returns += np.where(running, rewards, 0.0)
        running &= ~(terminated | truncated)
        if not running.any():
            break
    envs.close()
    return returns


def evaluate_benchmark(core: int, repeats: int = 5) -> None:
    """A 100-episode check of each env's stored agent (results/envs/), played by evaluate()
    against one vector env of all 100 episodes, in turn, in one process on `core`."""
    os.sched_setaffinity(0, {core})
    sys.path.insert(0, str(ROOT))
    from study import model_weights

    import dqn_cartpole as dqn

    print(f"\nA 100-episode check of results/envs/ENV/model.keras, on core {core}, {repeats} "
          "pairs, in turn:")  # fmt: skip
    for env_id in ("Acrobot-v1", "MountainCar-v0", "LunarLander-v3"):
        weights = model_weights(ROOT / "results" / "envs" / env_id / "model.keras")
        check = (weights, env_id, 100, dqn.CONFIRM_SEED)
        ways = {
            "vector env": functools.partial(vector_env_evaluate, dqn, *check),
            "evaluate()": functools.partial(dqn.evaluate, *check),
        }
        same = np.array_equal(*(way() for way in ways.values()))
        times = {label: [] for label in ways}
        for _ in range(repeats):
            for label, way in ways.items():
                start = time.perf_counter()
                way()
                times[label].append(time.perf_counter() - start)
        old, new = times.values()
        ratios = [n / o for o, n in zip(old, new, strict=True)]
        print(f"  {env_id}: vector env {statistics.median(old):.3f} s, evaluate() "
              f"{statistics.median(new):.3f} s; evaluate() / vector env pair by pair: median "
              f"{statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f}); "
              f"same returns: {'yes' if same else 'NO'}")  # fmt: skip


def startup_benchmark(core: int, repeats: int = 5) -> None:
    """Whole-process seconds of a run that trains nothing, and of --help (median of `repeats`)."""
    script = [sys.executable, str(ROOT / "dqn_cartpole.py")]
    commands = {
        "--max-steps 1 --no-gifs (imports, one step, saving)": ["--max-steps", "1", "--no-gifs"],
        "--help (no TensorFlow)": ["--help"],
    }
    print(f"\nStart-up, whole process pinned to core {core}, median of {repeats}:")
    for label, args in commands.items():
        times = []
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(repeats):
                start = time.perf_counter()
                subprocess.run(
                    pinned([*script, *args, "--results-dir", tmp], core),
                    env={**os.environ, **ONE_THREAD},
                    stdout=subprocess.DEVNULL,
                    check=True,
                )
                times.append(time.perf_counter() - start)
        print(f"  {label}: {statistics.median(times):.2f} s ({min(times):.2f}-{max(times):.2f})")


SUITE_BASE = "be4424b"  # the commit whose suite the test-time goal halves


def suite_benchmark(base: str, repeats: int) -> None:
    """The whole test suite as the README runs it (both cores) against the suite of commit
    `base` as its README ran it (one process), in turn, `repeats` pairs, in worktrees of their
    own with this Python; wall seconds, tests passed, and the ratio pair by pair."""
    import re

    commands = {
        f"{base} suite (python -m pytest -q)": [],
        "this suite (python -m pytest -q -n auto --dist loadfile --no-loadscope-reorder)": [
            "-n", "auto", "--dist", "loadfile", "--no-loadscope-reorder"],
    }  # fmt: skip
    times, counts = {label: [] for label in commands}, {}
    with tempfile.TemporaryDirectory() as tmp:
        trees = {}
        for label, commit in zip(commands, (base, "HEAD"), strict=True):
            trees[label] = Path(tmp) / commit
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(trees[label]), commit],
                check=True, capture_output=True,
            )  # fmt: skip
        try:
            for _ in range(repeats):
                for label, extra in commands.items():
                    start = time.perf_counter()
                    result = subprocess.run(
                        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra],
                        cwd=trees[label], capture_output=True, text=True,
                    )  # fmt: skip
                    times[label].append(time.perf_counter() - start)
                    summary = result.stdout.strip().splitlines()[-1]
                    if result.returncode != 0:
                        sys.exit(f"{label}: exit {result.returncode}: {summary}")
                    counts[label] = int(re.search(r"(\d+) passed", summary).group(1))
        finally:
            for tree in trees.values():
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                str(tree)], capture_output=True)  # fmt: skip
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    print(f"\nTest suite: commit {base} against {head}, run in turn, {repeats} pairs, "
          f"{os.cpu_count()} cores:")  # fmt: skip
    for label, values in times.items():
        print(f"  {label}: {counts[label]} passed; median {statistics.median(values):.1f} s "
              f"({', '.join(f'{v:.1f}' for v in values)})")  # fmt: skip
    old, new = times.values()
    ratios = [b / a for a, b in zip(old, new, strict=True)]
    print(f"  this / {base}, pair by pair: median {statistics.median(ratios):.3f} "
          f"({min(ratios):.3f}-{max(ratios):.3f}); ratio of medians "
          f"{statistics.median(new) / statistics.median(old):.3f}")  # fmt: skip


def study_benchmark(first_seed: int, runs: int, pairs: int) -> None:
    """The same CartPole study of `runs` seeds (the defaults) by tests/tools/study.py's thread pool
    and by a local Ray, in turn, `pairs` pairs, each into a new runs file: wall seconds of the
    whole study process and the ratio pair by pair. Then Ray's start-up (ray.init on this
    machine to one task's result, and shutdown), and the same study on a two-node cluster on
    this machine (one CPU a node), its nodes started beforehand."""
    import socket

    seeds = f"{first_seed}-{first_seed + runs - 1}"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}

    def study(folder: Path, *extra) -> float:
        command = [
            sys.executable,
            str(ROOT / "tests" / "study.py"),
            "--runs",
            str(folder / "runs.csv"),
            "--seeds",
            seeds,
            "--variant",
            "default",
            *extra,
        ]
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=env, cwd=ROOT)
        return time.perf_counter() - start  # fmt: skip

    times = {"threads": [], "ray": []}
    with tempfile.TemporaryDirectory() as tmp:
        for pair in range(pairs):
            for engine in times:
                folder = Path(tmp) / f"{engine}-{pair}"
                folder.mkdir()
                times[engine].append(study(folder, "--engine", engine))
        startup = []
        for _ in range(3):
            probe = ("import time, ray; t = time.perf_counter(); "
                     "ray.init(address='local', num_cpus=2, include_dashboard=False, "
                     "logging_level='ERROR'); ray.get(ray.remote(lambda: 1).remote()); "
                     "ray.shutdown(); print(time.perf_counter() - t)")  # fmt: skip
            out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                 env=env, check=True)  # fmt: skip
            startup.append(float(out.stdout.strip().splitlines()[-1]))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        ray = str(Path(sys.executable).parent / "ray")
        node_env = {**env, "RAY_AUTH_MODE": "disabled"}
        nodes = [
            subprocess.Popen(
                [
                    ray,
                    "start",
                    "--block",
                    "--head",
                    "--port",
                    str(port),
                    "--num-cpus",
                    "1",
                    "--include-dashboard",
                    "false",
                    "--disable-usage-stats",
                ],
                env=node_env,
                start_new_session=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        ]
        time.sleep(20)
        nodes.append(subprocess.Popen([ray, "start", "--block", "--address",
                                       f"127.0.0.1:{port}", "--num-cpus", "1",
                                       "--disable-usage-stats"], env=node_env,
                                      start_new_session=True, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))  # fmt: skip
        time.sleep(20)
        try:
            folder = Path(tmp) / "cluster"
            folder.mkdir()
            cluster = study(folder, "--address", f"127.0.0.1:{port}")
            with open(folder / "runs.csv") as f:
                nodes_used = len({line.rsplit(",", 2)[-2] for line in list(f)[1:]})
        finally:
            for sig in (15, 9):
                for node in nodes:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(node.pid, sig)
                time.sleep(5 if sig == 15 else 0)
    print(f"\nThe study of seeds {seeds} (the defaults, {runs} runs, one per core), by engine, "
          f"in turn, {pairs} pairs, whole study process:")  # fmt: skip
    for engine, values in times.items():
        print(f"  {engine}: median {statistics.median(values):.1f} s "
              f"({', '.join(f'{v:.1f}' for v in values)})")  # fmt: skip
    ratios = [r / t for t, r in zip(times["threads"], times["ray"], strict=True)]
    print(f"  ray / threads, pair by pair: median {statistics.median(ratios):.3f} "
          f"({min(ratios):.3f}-{max(ratios):.3f})")  # fmt: skip
    print(
        f"  Ray's start-up (init on this machine, one task, shutdown), median of 3: "
        f"{statistics.median(startup):.1f} s ({min(startup):.1f}-{max(startup):.1f})"
    )
    print(
        f"  the same study on a two-node cluster on this machine (1 CPU a node): "
        f"{cluster:.1f} s, runs on {nodes_used} nodes"
    )


def dqn_defaults_hidden() -> str:
    sys.path.insert(0, str(ROOT))
    import dqn_cartpole as dqn

    return dqn.Config().hidden


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="how many seeds to run")
    parser.add_argument("--first-seed", type=int, default=0, help="the first seed")
    parser.add_argument("--core", type=int, default=1, help="the CPU core to pin to")
    parser.add_argument(
        "--only",
        choices=("seeds", "startup", "cache", "memory", "evaluate", "micro", "suite", "study"),
        action="append", help="run only these parts (default: all but suite and study)",
    )  # fmt: skip
    parser.add_argument("--suite-base", default=SUITE_BASE, help="the commit to race the suite")
    parser.add_argument("--suite-pairs", type=int, default=3, help="pairs of suite runs")
    parser.add_argument("--study-pairs", type=int, default=2, help="pairs of study runs")
    parser.add_argument("--memory-child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(*args.memory_child)
        return
    parts = set(args.only or ("seeds", "startup", "cache", "memory", "evaluate", "micro"))
    if args.seeds < 1:
        parser.error("--seeds must be >= 1")
    if shutil.which("taskset") is None:
        parser.error("needs taskset (util-linux) to pin each run to one core")
    if args.core not in os.sched_getaffinity(0):
        parser.error(f"--core {args.core} is not available here: {sorted(os.sched_getaffinity(0))}")

    if "seeds" in parts:
        seed_benchmark(args)
    if "startup" in parts:
        startup_benchmark(args.core)
    if "cache" in parts:
        cache_benchmark(args.core)
    if "memory" in parts:
        memory_benchmark(args.core)
    if "evaluate" in parts:
        evaluate_benchmark(args.core)
    if "suite" in parts:
        suite_benchmark(args.suite_base, args.suite_pairs)
    if "study" in parts:
        study_benchmark(args.first_seed, args.seeds, args.study_pairs)
    if "micro" in parts:
        for hidden in ("24,12", dqn_defaults_hidden()):  # the seed's network, then the default
            micro_benchmark(args.core, hidden)


def seed_benchmark(args) -> None:
    header = (
        f"{'seed':>4} {'solved':>6} {'steps':>7} {'s to solve':>10} {'process s':>9} "
        f"{'steps/s':>7} {'eval 100':>8} {'peak MiB':>8}"
    )
    print(header)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            row = run_seed(seed, args.core, Path(tmp) / str(seed))
            rows.append(row)
            solve = row["seconds_to_solve"]
            print(
                f"{row['seed']:>4} {str(row['solved']):>6} {row['steps']:>7} "
                f"{(f'{solve:.1f}' if solve else '-'):>10} {row['process_seconds']:>9.1f} "
                f"{row['steps_per_second']:>7.0f} {row['eval_mean']:>8.1f} {row['peak_mib']:>8.0f}",
                flush=True,
            )

    def column(key):
        return [r[key] for r in rows]

    print(
        f"median: steps {statistics.median(column('steps')):.0f}, "
        f"process {statistics.median(column('process_seconds')):.1f} s, "
        f"{statistics.median(column('steps_per_second')):.0f} steps/s, "
        f"peak {statistics.median(column('peak_mib')):.0f} MiB"
    )
    print(
        f"worst:  steps {max(column('steps'))}, process {max(column('process_seconds')):.1f} s; "
        f"solved {sum(column('solved'))}/{len(rows)}"
    )
    phase_table(rows)


if __name__ == "__main__":
    main()
