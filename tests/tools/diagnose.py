"""Diagnosis: what a slow seed's agent does on its plateau, and what its Q-network sees.

    python tests/tools/diagnose.py --seed 5 --steps 75000 --name seed5-defaults
    python tests/tools/diagnose.py --seed 5 --steps 75000 --name seed5-last-defaults \
        --flags "--hidden 24,12 --n-step 1 --gamma 0.95 --target-update-every 500 \
                 --learning-rate 0.001"
    python tests/tools/diagnose.py --plot results/diagnosis/seed5-last-defaults.csv --titles "..."

Trains dqn_cartpole.py's own agent with its own loop (train(), in this process) and, every
--window env steps, reads what the loop left behind, without changing it:
- how the training episodes of the window ended: the pole fell, the cart left the track, or
  the 500-step time limit;
- what fills the replay memory: the share of terminal transitions, and of those the share where
  the cart left the track;
- the Q-network's values: the mean of max_a Q over the states in memory, against the largest
  value a return can have (1 / (1 - gamma) for a reward of 1 per step), and how much lower the
  values are near the track's edge than near its centre;
- the TD error |target - Q(s, a)| on the memory, for terminal and other transitions.
Writes a CSV of the windows and a figure. pytest does not collect this file.
"""

import argparse
import csv
import shlex
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import dqn_cartpole as dqn  # noqa: E402

X_LIMIT, ANGLE_LIMIT = 2.4, 12 * 2 * np.pi / 360  # CartPole-v1 terminates beyond these


def end_reason(next_state, terminated: bool) -> str:
    if not terminated:
        return "time limit"
    return "cart left the track" if abs(next_state[0]) > X_LIMIT else "pole fell"


def memory_view(agent):
    rows = np.roll(agent.memory.rows[: len(agent.memory)], -agent.memory.oldest, axis=0)
    n = agent.n_observations
    return rows[:, :n], rows[:, n].astype(int), rows[:, n + 1], rows[:, n + 2], rows[:, n + 3 :]


def q_report(agent) -> dict:
    """The Q-network's view of the memory, in NumPy (the same forward pass the agent acts with)."""
    states, actions, rewards, terminated, rest = memory_view(agent)
    next_states, discounts = rest[:, :-1], rest[:, -1]
    q = dqn.q_values(agent.weights, states)
    target_weights = agent.target_network.get_weights()
    next_q = dqn.q_values(target_weights, next_states)
    if agent.cfg.double_dqn:
        pick = np.argmax(dqn.q_values(agent.weights, next_states), axis=1)
        next_value = next_q[np.arange(len(pick)), pick]
    else:
        next_value = next_q.max(axis=1)
    targets = dqn.td_targets(rewards, next_value, terminated, discounts)
    td = np.abs(targets - q[np.arange(len(actions)), actions])
    v = q.max(axis=1)
    edge, centre = np.abs(states[:, 0]) > 1.6, np.abs(states[:, 0]) < 0.4
    out_of_track = terminated.astype(bool) & (np.abs(next_states[:, 0]) > X_LIMIT)
    return {
        "memory_terminal_share": terminated.mean(),
        "memory_cart_out_share_of_terminal": out_of_track.sum() / max(terminated.sum(), 1),
        "memory_edge_share": edge.mean(),
        "mean_max_q": v.mean(),
        "max_possible_value": 1 / (1 - agent.cfg.gamma),
        "q_centre_minus_edge": v[centre].mean() - v[edge].mean() if edge.any() else np.nan,
        "td_error_terminal": td[terminated == 1].mean() if terminated.any() else np.nan,
        "td_error_other": td[terminated == 0].mean(),
    }


def plot(csv_paths: list[Path], titles: list[str], path: Path) -> None:
    """One panel per run: how the training episodes of each window ended, as shares."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(csv_paths), figsize=(9 * len(csv_paths), 4), sharey=True)
    colors = {
        "pole fell": "tab:orange",
        "cart left the track": "tab:red",
        "time limit": "tab:green",
    }
    for ax, csv_path, title in zip(np.atleast_1d(axes), csv_paths, titles, strict=True):
        with open(csv_path) as f:
            rows = list(csv.DictReader(f))
        steps = np.array([int(r["step"]) for r in rows])
        bottom = np.zeros(len(rows))
        totals = np.array([max(int(r["episodes"]), 1) for r in rows])
        for reason, color in colors.items():
            counts = np.array([int(r[reason]) for r in rows]) / totals
            ax.bar(
                steps, counts, width=-2_000, align="edge", bottom=bottom, color=color, label=reason
            )
            bottom += counts
        ax.set(title=title, xlabel="env steps (windows of 2,500)", xlim=(0, steps.max() + 500))
        ax.set_ylim(0, 1.2)
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("share of the window's training episodes")
    np.atleast_1d(axes)[0].legend(fontsize=8, ncol=3, loc="upper center")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--steps", type=int, default=60_000)
    parser.add_argument("--window", type=int, default=2_500)
    parser.add_argument("--flags", default="", help="dqn_cartpole.py flags, e.g. '--n-step 3'")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "diagnosis")
    parser.add_argument("--name", default=None, help="the CSV's name (default: seedS)")
    parser.add_argument("--plot", type=Path, nargs="+", help="only draw these CSVs' windows")
    parser.add_argument("--titles", nargs="+", help="a title per CSV for --plot")
    args = parser.parse_args()
    if args.plot:
        plot(args.plot, args.titles or [p.stem for p in args.plot], args.out / "diagnosis.png")
        return

    flags = [*shlex.split(args.flags), "--seed", str(args.seed), "--max-steps", str(args.steps)]
    flags += ["--polish-steps", "0", "--log-every", str(10**9), "--no-gifs"]
    cfg = dqn.parse_args(flags)
    dqn.validate(cfg)
    dqn.setup_tensorflow()
    agent = dqn.make_agent(cfg)

    windows, ends = [], []
    remember = agent.remember
    state = {"step": 0}

    def remember_and_watch(s, action, reward, next_state, terminated, truncated):
        remember(s, action, reward, next_state, terminated, truncated)
        state["step"] += 1
        if terminated or truncated:
            ends.append((state["step"], end_reason(next_state, terminated)))
        if state["step"] % args.window == 0 and len(agent.memory) >= cfg.min_observations:
            recent = [reason for step, reason in ends if step > state["step"] - args.window]
            row = {"step": state["step"], "episodes": len(recent)}
            for reason in ("pole fell", "cart left the track", "time limit"):
                row[reason] = recent.count(reason)
            row.update(q_report(agent))
            windows.append(row)
            print(
                ", ".join(
                    f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()
                ),
                flush=True,
            )

    agent.remember = remember_and_watch
    run = dqn.monitored_training(agent, dqn.StopFlag())
    print(f"steps_to_solve {run['steps_to_solve']}")

    args.out.mkdir(parents=True, exist_ok=True)
    name = args.name or f"seed{args.seed}"
    with open(args.out / f"{name}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, list(windows[0]))
        writer.writeheader()
        writer.writerows(windows)
    print(f"wrote {args.out / f'{name}.csv'}")


if __name__ == "__main__":
    main()
