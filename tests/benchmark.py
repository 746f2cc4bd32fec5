"""Benchmark: how long `python dqn_cartpole.py --no-gifs` takes to solve CartPole, per seed.

    python tests/benchmark.py                 # seeds 0-4, each pinned to core 1, one math thread
    python tests/benchmark.py --seeds 10 --core 0

Each seed runs as a whole process (imports, training and polishing, the final check, saving,
the plot), pinned with `taskset`, and the table shows steps and seconds to solve, whole-process
seconds, env steps per second while training, the 100-episode evaluation and peak memory. Then,
in this process and on the same core, one replay step done the seed's way (predict, predict, a
Python loop over the batch, fit) is timed against the script's compiled replay, and one action
chosen with model.predict() against the NumPy forward pass.

pytest does not collect this file: timings belong in a benchmark, not in a test.
"""

import argparse
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

ROOT = Path(__file__).resolve().parent.parent


def run_seed(seed: int, core: int, folder: Path) -> dict:
    run = run_pinned(seed, core, folder)
    summary = run["summary"]
    return {
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

    dqn.setup_tensorflow(seed=0)
    cfg = dqn.Config(hidden=hidden)
    agent = dqn.DQNAgent(cfg)
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


def dqn_defaults_hidden() -> str:
    sys.path.insert(0, str(ROOT))
    import dqn_cartpole as dqn

    return dqn.Config().hidden


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="how many seeds to run")
    parser.add_argument("--first-seed", type=int, default=0, help="the first seed")
    parser.add_argument("--core", type=int, default=1, help="the CPU core to pin to")
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error("--seeds must be >= 1")
    if shutil.which("taskset") is None:
        parser.error("needs taskset (util-linux) to pin each run to one core")
    if args.core not in os.sched_getaffinity(0):
        parser.error(f"--core {args.core} is not available here: {sorted(os.sched_getaffinity(0))}")

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
    startup_benchmark(args.core)
    for hidden in ("24,12", dqn_defaults_hidden()):  # the seed's network, then the default one
        micro_benchmark(args.core, hidden)


if __name__ == "__main__":
    main()
