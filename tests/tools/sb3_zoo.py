"""Stable-Baselines3's DQN (or sb3-contrib's QR-DQN) with rl-baselines3-zoo's settings for an
env, trained for the zoo's whole step budget on one seed; its final Q-network is written as
NumPy arrays that tests/tools/study.py scores with its own evaluation, as it scores ours.

    ~/.cache/study-sb3/bin/python tests/tools/sb3_zoo.py --env Acrobot-v1 --seed 3 --out run.npz

Runs in an environment of its own (CPU torch, stable-baselines3, sb3-contrib, gymnasium), never
the project's: see tests/tools/study.py. The weights are [kernel, bias, ...] with kernels shaped
(inputs, outputs), as dqn_cartpole.py's q_values() reads them; QR-DQN's last layer is averaged
over its quantiles, which gives the mean return its greedy action maximises. Prints one JSON
line: steps trained and seconds (start-up, training).

With --race (tests/tools/race.py), it trains only until it first solves: every 2,000 env steps
the clock pauses while 10 greedy episodes play on an env of their own (the first reset from
seed 10,000 + the run's seed), and a mean at the env's reward threshold ends the run. The JSON
line then gives the step it solved at (null if the budget ran out first) and training seconds
without those evaluations.
"""

import time

STARTED = time.time()
import argparse  # noqa: E402
import json  # noqa: E402

import numpy as np  # noqa: E402

NET = [256, 256]
# rl-baselines3-zoo, hyperparams/dqn.yml (LunarLander-v3 takes its LunarLander-v2 entry) and
# hyperparams/qrdqn.yml (Acrobot-v1): (step budget, settings).
ACROBOT = dict(
    learning_rate=6.3e-4, batch_size=128, buffer_size=50_000, learning_starts=0, gamma=0.99,
    target_update_interval=250, train_freq=4, gradient_steps=-1, exploration_fraction=0.12,
    exploration_final_eps=0.1,
)  # fmt: skip
ZOO = {
    ("dqn", "CartPole-v1"): (50_000, dict(
        learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1_000,
        gamma=0.99, target_update_interval=10, train_freq=256, gradient_steps=128,
        exploration_fraction=0.16, exploration_final_eps=0.04, policy_kwargs={"net_arch": NET})),
    ("dqn", "Acrobot-v1"): (100_000, dict(ACROBOT, policy_kwargs={"net_arch": NET})),
    ("dqn", "MountainCar-v0"): (120_000, dict(
        learning_rate=4e-3, batch_size=128, buffer_size=10_000, learning_starts=1_000,
        gamma=0.98, target_update_interval=600, train_freq=16, gradient_steps=8,
        exploration_fraction=0.2, exploration_final_eps=0.07, policy_kwargs={"net_arch": NET})),
    ("dqn", "LunarLander-v3"): (100_000, dict(ACROBOT, policy_kwargs={"net_arch": NET})),
    ("qrdqn", "Acrobot-v1"): (100_000, dict(
        ACROBOT, policy_kwargs={"net_arch": NET, "n_quantiles": 25})),
}  # fmt: skip


def linear_layers(network) -> list[np.ndarray]:
    """[kernel, bias, ...] of a torch Sequential of Linear and ReLU layers."""
    import torch

    weights = []
    for layer in network:
        if isinstance(layer, torch.nn.Linear):
            weights += [layer.weight.detach().numpy().T.copy(), layer.bias.detach().numpy().copy()]
    return weights


def q_weights(model, algo: str, n_actions: int) -> list[np.ndarray]:
    if algo == "dqn":
        return linear_layers(model.q_net.q_net)
    weights = linear_layers(model.quantile_net.quantile_net)
    weights[-2:] = mean_over_quantiles(weights[-2], weights[-1], n_actions)
    return weights


def mean_over_quantiles(kernel: np.ndarray, bias: np.ndarray, n_actions: int):
    """sb3-contrib's QR-DQN head, whose outputs are ordered (quantile, action), as the layer
    that gives each action's mean over its quantiles: the Q-values its greedy action uses."""
    quantiles = bias.size // n_actions
    kernel = kernel.reshape(kernel.shape[0], quantiles, n_actions).mean(axis=1)
    return [kernel, bias.reshape(quantiles, n_actions).mean(axis=0)]


RACE_EVERY, RACE_EPISODES = 2_000, 10


def race_callback(env_id: str, seed: int):
    """The --race stop: a callback that evaluates every RACE_EVERY steps, off the clock."""
    import gymnasium as gym
    from stable_baselines3.common.callbacks import BaseCallback

    class FirstSolve(BaseCallback):
        def __init__(self):
            super().__init__()
            self.env = gym.make(env_id)
            self.line = self.env.spec.reward_threshold
            self.off_clock, self.solved_at, self.resets = 0.0, None, 0

        def _on_step(self) -> bool:
            if self.num_timesteps % RACE_EVERY:
                return True
            paused = time.perf_counter()
            returns = [self.episode() for _ in range(RACE_EPISODES)]
            self.off_clock += time.perf_counter() - paused
            if np.mean(returns) < self.line:
                return True
            self.solved_at = self.num_timesteps
            return False  # stops learn()

        def episode(self) -> float:
            seed = 10_000 + seed_of_run if self.resets == 0 else None
            self.resets += 1
            obs, _ = self.env.reset(seed=seed)
            total, over = 0.0, False
            while not over:
                action = int(self.model.predict(obs, deterministic=True)[0])
                obs, reward, terminated, truncated, _ = self.env.step(action)
                total, over = total + float(reward), terminated or truncated
            return total

    seed_of_run = seed
    return FirstSolve()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True, choices=sorted({env for _, env in ZOO}))
    parser.add_argument("--algo", default="dqn", choices=("dqn", "qrdqn"))
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out", help="where to write the weights (.npz)")
    parser.add_argument("--race", action="store_true", help="stop at the first solving check")
    parser.add_argument("--budget", type=int, help="env steps (default: the zoo's budget)")
    args = parser.parse_args()
    if (args.algo, args.env) not in ZOO:
        parser.error(f"no zoo settings for {args.algo} on {args.env}")
    import torch
    from stable_baselines3 import DQN
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)
    imported = time.time()
    budget, settings = ZOO[(args.algo, args.env)]
    if args.algo == "qrdqn":
        from sb3_contrib import QRDQN as Algo  # noqa: N811
    else:
        Algo = DQN  # noqa: N806
    if not args.race and not args.out:
        parser.error("--out is needed unless --race")
    env = make_vec_env(args.env, n_envs=1, seed=args.seed)
    model = Algo("MlpPolicy", env, seed=args.seed, device="cpu", verbose=0, **settings)
    if args.race:
        stop = race_callback(args.env, args.seed)
        model.learn(total_timesteps=args.budget or budget, callback=stop)
        train_s = time.time() - imported - stop.off_clock
        line = {"steps": int(model.num_timesteps), "solved_at": stop.solved_at}
        times = {"startup_s": imported - STARTED, "train_s": train_s, "eval_s": stop.off_clock}
        print(json.dumps({**line, **times}))
        return
    model.learn(total_timesteps=args.budget or budget)
    trained = time.time()
    weights = q_weights(model, args.algo, int(env.action_space.n))
    np.savez(args.out, *weights)
    print(json.dumps({"steps": int(model.num_timesteps), "startup_s": imported - STARTED,
                      "train_s": trained - imported}))  # fmt: skip


if __name__ == "__main__":
    main()
