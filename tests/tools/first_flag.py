"""Diagnose MountainCar's slow seeds: when a run first reaches the flag, against its solve.

    python tests/tools/first_flag.py RUN_DIR [RUN_DIR ...]

Reads each run folder that dqn_cartpole.py wrote (summary.json and episodes.csv) and prints
one CSV row per run: the seed, the env step of the solve, the env step at which the first
training episode reached the flag (ended before the 200-step limit, a return above -200), the
steps between the two, and how many of the run's episodes reached it. Then the medians and
ranges of the first flag and of the steps from it to the solve, and how closely the first
flag's step follows the solve's across the runs (Pearson's r).
"""

import csv
import json
import sys
from pathlib import Path

import numpy as np

TIME_LIMIT_RETURN = -200.0  # MountainCar-v0's return when the 200-step limit ends an episode


def first_flag(run: Path) -> dict:
    summary = json.loads((run / "summary.json").read_text())
    episodes = list(csv.DictReader((run / "episodes.csv").read_text().splitlines()))
    reached = [e for e in episodes if float(e["return"]) > TIME_LIMIT_RETURN]
    first = int(reached[0]["total_steps"]) if reached else None
    solve = summary["steps_to_solve"]
    return {
        "seed": summary["seed"],
        "steps_to_solve": solve,
        "first_flag": first,
        "flag_to_solve": solve - first if solve is not None and first is not None else None,
        "episodes_at_flag": len(reached),
        "episodes": len(episodes),
    }


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    rows = sorted((first_flag(Path(a)) for a in argv), key=lambda r: r["seed"])
    writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    both = [r for r in rows if r["flag_to_solve"] is not None]
    first = np.array([r["first_flag"] for r in both])
    after = np.array([r["flag_to_solve"] for r in both])
    solve = np.array([r["steps_to_solve"] for r in both])
    print(f"# {len(both)} of {len(rows)} runs reached the flag and solved")
    if len(both) < 2:
        return 0
    print(f"# first flag: median {np.median(first):,.0f}, range {first.min():,}-{first.max():,}")
    print(f"# first flag to solve: median {np.median(after):,.0f}, "
          f"range {after.min():,}-{after.max():,}")  # fmt: skip
    print(f"# Pearson's r, first flag against solve: {np.corrcoef(first, solve)[0, 1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
