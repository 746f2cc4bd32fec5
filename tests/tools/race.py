"""The race: dqn_cartpole.py against Stable-Baselines3's DQN with rl-baselines3-zoo's settings,
seed by seed, each process in turn on one core with one math thread, so that whatever else the
machine does falls on both alike. Only the ratio is meant to be compared.

    python tests/tools/race.py --env CartPole-v1 --seeds 11000-11009 --out results/races/X.csv
    python tests/tools/race.py --report results/races/X.csv      # the table again

Ours: the whole process `python dqn_cartpole.py --env ENV --seed S --no-gifs` (start-up,
training to the solve, polishing, the final evaluation, writing). Stable-Baselines3:
tests/tools/sb3_zoo.py --race in its own environment (STUDY_SB3_PYTHON), the whole process
less its off-clock evaluations, to its first 10-episode evaluation at the reward threshold;
a seed it does not solve within the zoo's budget counts its whole run (a lower bound). Each
seed's row is appended to --out as it lands, so a stopped race resumes.
"""

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SB3_PYTHON = os.environ.get("STUDY_SB3_PYTHON", str(Path.home() / ".cache/study-sb3/bin/python"))
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
FIELDS = ["env", "seed", "flags", "ours_s", "ours_steps_to_solve", "sb3_s", "sb3_solved_at"]


def timed(command: list[str], core: int) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(
        ["taskset", "-c", str(core), *command],
        capture_output=True,
        text=True,
        env={**os.environ, **ONE_THREAD},
        cwd=ROOT,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
        raise SystemExit(f"race: {command[1]} failed: {tail}")
    return seconds, done


def race_seed(env_id: str, seed: int, flags: list[str], core: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="race-") as out:
        ours = [sys.executable, "dqn_cartpole.py", "--env", env_id, "--seed", str(seed)]
        ours_s, _ = timed([*ours, "--no-gifs", "--results-dir", out, *flags], core)
        summary = json.loads((Path(out) / "summary.json").read_text())
    sb3 = [SB3_PYTHON, str(HERE / "sb3_zoo.py"), "--env", env_id, "--seed", str(seed), "--race"]
    sb3_whole, done = timed(sb3, core)
    line = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "env": env_id,
        "seed": seed,
        "flags": " ".join(flags),
        "ours_s": round(ours_s, 2),
        "ours_steps_to_solve": summary["steps_to_solve"],
        "sb3_s": round(sb3_whole - line["eval_s"], 2),
        "sb3_solved_at": line["solved_at"],
    }


def report(path: Path) -> str:
    """The race's table: a row per seed, who solved, and the medians and their ratio."""
    rows = list(csv.DictReader(path.open()))
    lines = [row_line(r) for r in [dict.fromkeys(FIELDS)] + rows]
    ours = [float(r["ours_s"]) for r in rows]
    sb3 = [float(r["sb3_s"]) for r in rows]
    solved = sum(r["ours_steps_to_solve"] not in ("", "None") for r in rows)
    sb3_solved = sum(r["sb3_solved_at"] not in ("", "None") for r in rows)
    lines.append(
        f"{rows[0]['env']}: solved ours {solved}, SB3-zoo {sb3_solved} of {len(rows)} "
        "(an unsolved run counts its whole time)"
    )
    lines.append(medians_line(ours, sb3))
    return "\n".join(lines)


def row_line(row: dict) -> str:
    """One seed's row (or, given no values, the header), as the race prints it."""
    if row["seed"] is None:
        return f"{'seed':>6} {'ours_s':>10} {'sb3_s':>10} {'ours_steps':>12} {'sb3_steps':>10}"
    steps = [row[k] if row[k] not in ("", None) else "None" for k in FIELDS[4::2]]
    return (
        f"{row['seed']:>6} {float(row['ours_s']):>10.2f} {float(row['sb3_s']):>10.2f} "
        f"{steps[0]:>12} {steps[1]:>10}"
    )


def medians_line(ours: list[float], sb3: list[float]) -> str:
    o, t = statistics.median(ours), statistics.median(sb3)
    return (
        f"median seconds: ours {o:.2f}, SB3-zoo {t:.2f}; ratio of medians {o / t:.2f}; "
        f"worst ours {max(ours):.2f}"
    )


def seed_range(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--seeds", type=seed_range, help="e.g. 11000-11009")
    parser.add_argument("--core", type=int, default=1)
    parser.add_argument("--out", type=Path, help="CSV of the seeds' rows (appended, resumed)")
    parser.add_argument("--report", type=Path, help="only print the table of this CSV")
    args, flags = parser.parse_known_args()
    if args.report:
        print(report(args.report))
        return
    if not (args.seeds and args.out):
        parser.error("--seeds and --out are needed to race")
    if not Path(SB3_PYTHON).exists():
        parser.error(f"no Stable-Baselines3 environment at {SB3_PYTHON}: see tests/tools/study.py")
    done = set()
    if args.out.exists():
        done = {int(r["seed"]) for r in csv.DictReader(args.out.open()) if r["env"] == args.env}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    new = not args.out.exists()
    with args.out.open("a", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        if new:
            writer.writeheader()
        for seed in args.seeds:
            if seed not in done:
                row = race_seed(args.env, seed, flags, args.core)
                writer.writerow(row)
                f.flush()
                print(row, flush=True)
    print(report(args.out))


if __name__ == "__main__":
    main()
