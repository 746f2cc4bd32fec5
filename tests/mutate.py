"""Mutation check: break each line that makes this a DQN, one at a time, and see a test fail.

    python tests/mutate.py            # about 20 s per mutation
    python tests/mutate.py --list

Each mutation replaces one exact piece of dqn_cartpole.py in a copy of the project, runs the
fast tests (tests/test_units.py) there, and reports which tests failed. A mutation that no test
catches is a hole in the tests, and the run exits with 1. pytest does not collect this file.
"""

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (what breaks, the exact text in dqn_cartpole.py, what it becomes, everywhere it stands)
MUTATIONS = [
    (
        "a truncation stored as a termination",
        "agent.remember(state, action, reward, next_state, terminated, truncated)",
        "agent.remember(state, action, reward, next_state, terminated or truncated, truncated)",
    ),
    (
        "the TD target bootstraps through a termination",
        "return rewards + discount * (1.0 - terminated) * next_value",
        "return rewards + discount * next_value",
    ),
    (
        "the discount left out of the TD target",
        "return rewards + discount * (1.0 - terminated) * next_value",
        "return rewards + (1.0 - terminated) * next_value",
    ),
    (
        "n-step: the discount stays gamma for every n",
        "discount = gamma ** len(self.recent)",
        "discount = gamma",
    ),
    (
        "n-step: later rewards not discounted",
        "sum(gamma**k * reward for",
        "sum(reward for",
    ),
    (
        "n-step: the steps still waiting are dropped at the end of an episode",
        "while self.recent:",
        "while False:",
    ),
    (
        "every action's Q-value pulled, not only the taken one",
        "on_value=True, off_value=False",
        "on_value=True, off_value=True",
    ),
    (
        "Double DQN: the target network picks the next action too",
        "online_q = self.q_network(next_states, training=False)",
        "online_q = self.target_network(next_states, training=False)",
    ),
    (
        "the target network copied one step late",
        "if step % cfg.target_update_every == 0:",
        "if step % cfg.target_update_every == 1:",
    ),
    (
        "epsilon falls through its floor",
        "self.epsilon = max(self.cfg.epsilon_min, self.epsilon * self.cfg.epsilon_decay)",
        "self.epsilon = self.epsilon * self.cfg.epsilon_decay",
    ),
    (
        "epsilon not decayed in the loop",
        "        agent.decay_epsilon()\n",
        "",
    ),
    (
        "a full memory drops its oldest transition, not a random one",
        "if self.replace_random and len(self.buffer) == self.buffer.maxlen:",
        "if False:",
    ),
    (
        "evaluation counts the episodes after each env's first",
        "returns += np.where(running, rewards, 0.0)",
        "returns += rewards",
    ),
    (
        "greedy acting picks the worst action",
        "return int(np.argmax(q_values(self.weights, state)))",
        "return int(np.argmin(q_values(self.weights, state)))",
    ),
    (
        "the kept snapshot is the latest, not the best",
        'if score > self.best["score"]:',  # both places: before and after the solve
        "if True:",
    ),
]


def run_mutation(original: str, old: str, new: str) -> list[str]:
    """The names of the tests that fail with `old` replaced by `new`."""
    assert old in original, f"not found: {old!r}"
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "project"
        shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".venv", ".git", "results"))
        (copy / "dqn_cartpole.py").write_text(original.replace(old, new))
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "tests/test_units.py",
            ],
            cwd=copy,
            capture_output=True,
            text=True,
        )
    return sorted(set(re.findall(r"^FAILED tests/test_units\.py::(\S+)", proc.stdout, re.M)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="only list the mutations")
    args = parser.parse_args()
    original = (ROOT / "dqn_cartpole.py").read_text()
    missed = 0
    for what, old, new in MUTATIONS:
        if args.list:
            print(what)
            continue
        failed = run_mutation(original, old, new)
        missed += not failed
        print(f"- {what}: " + (", ".join(failed) if failed else "NOT CAUGHT"), flush=True)
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
