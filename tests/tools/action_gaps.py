"""Diagnose a saved agent: how its greedy episodes end and how sure its Q-values are.

    python tests/tools/action_gaps.py results/envs/Acrobot-v1/model.keras --env Acrobot-v1

Plays `--episodes` greedy episodes from reset seeds `--seed` on (700,000 by default: no run and
no study evaluation uses them) with the saved weights, read by tests/tools/study.py without
TensorFlow, and prints:
- the returns: mean, median, spread, and the longest episodes;
- the action gap along the way: at each visited state, the best action's Q-value less the
  second best's, as a fraction of the best action's |Q|. A greedy policy can only be as good
  as the network ranks its actions, and a gap of a fraction of a percent is within the error
  of a function fitted by regression to noisy targets;
- the start value: Q(s0, a*) against the discounted return that the episode then earned, a
  measure of the network's bias.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from study import model_weights  # noqa: E402

import dqn_cartpole as dqn  # noqa: E402


def play(weights, env_id: str, episodes: int, seed: int, gamma: float) -> dict:
    import gymnasium as gym

    env = gym.make(env_id)
    returns, lengths, gaps, start_values, start_returns = [], [], [], [], []
    try:
        for i in range(episodes):
            state, _ = env.reset(seed=seed + i)
            rewards, done = [], False
            while not done:
                q = dqn.q_values(weights, state[None])[0]
                order = np.sort(q)
                gaps.append((order[-1] - order[-2]) / max(abs(order[-1]), 1e-9))
                if not rewards:
                    start_values.append(order[-1])
                state, reward, terminated, truncated, _ = env.step(int(np.argmax(q)))
                rewards.append(reward)
                done = terminated or truncated
            returns.append(sum(rewards))
            lengths.append(len(rewards))
            start_returns.append(sum(gamma**k * r for k, r in enumerate(rewards)))
    finally:
        env.close()
    return {
        "returns": np.array(returns),
        "lengths": np.array(lengths),
        "gaps": np.array(gaps),
        "start_values": np.array(start_values),
        "start_returns": np.array(start_returns),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=700_000)
    parser.add_argument("--gamma", type=float, default=dqn.Config().gamma)
    args = parser.parse_args()
    found = play(model_weights(args.model), args.env, args.episodes, args.seed, args.gamma)
    returns, gaps = found["returns"], found["gaps"]
    q = np.percentile
    print(f"{args.model} on {args.env}, {args.episodes} greedy episodes from seed {args.seed}:")
    print(
        f"  returns: mean {returns.mean():.1f}, median {np.median(returns):.1f}, "
        f"5th-95th percentile {q(returns, 5):.1f} to {q(returns, 95):.1f}, "
        f"worst {returns.min():.1f}; the worst five {[float(r) for r in sorted(returns)[:5]]}"
    )
    deciles = ", ".join(f"{v:.0f}" for v in q(returns, range(10, 100, 10)))
    print(f"  returns' deciles (10th to 90th percentile): {deciles}")
    lengths = found["lengths"]
    edges = range(lengths.min() // 10 * 10, lengths.max() + 10, 10)
    counts = ", ".join(f"{a}-{a + 9}: {((lengths >= a) & (lengths < a + 10)).sum()}" for a in edges)
    print(f"  episode lengths in steps, episodes per bin: {counts}")
    print(
        f"  action gap (best - second best) / |best| over {gaps.size} states: median "
        f"{np.median(gaps):.2%}, 10th percentile {q(gaps, 10):.2%}, states under 0.5%: "
        f"{(gaps < 0.005).mean():.0%}, under 2%: {(gaps < 0.02).mean():.0%}"
    )
    bias = found["start_values"] - found["start_returns"]
    print(
        f"  start value Q(s0, a*): median {np.median(found['start_values']):.2f} against a "
        f"discounted return of {np.median(found['start_returns']):.2f} earned (gamma "
        f"{args.gamma}); bias median {np.median(bias):+.2f}"
    )


if __name__ == "__main__":
    main()
