"""Train a Deep Q-Network on Gymnasium's CartPole-v1 with TensorFlow/Keras.

    python dqn_cartpole.py                        # train until solved, then plot and record
    python dqn_cartpole.py --help                 # every setting is a flag
    python dqn_cartpole.py --watch results/model.keras   # evaluate a saved agent

The algorithm is the classic DQN of the seed design: a Keras Q-network (24 -> 12 -> actions),
a target network copied every few steps, a deque replay memory that overwrites a random slot
once full, and epsilon-greedy actions with epsilon decayed every step. Two things differ, on
purpose: only a real termination stops the bootstrap (hitting the 500-step limit is a
truncation, not a failure), and the network is trained by a compiled TensorFlow function that
runs several gradient steps per call instead of calling predict()/fit() on every env step.

Training stops once a greedy evaluation reaches the env's reward threshold (475 for
CartPole-v1) and a 100-episode evaluation confirms it. What lands in --results-dir:
rewards.png, episodes.csv, summary.json, model.keras, before.gif and after.gif.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import csv
import dataclasses
import importlib.util
import json
import math
import os
import signal
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

PROCESS_START = time.perf_counter()  # seconds_to_solve and total_seconds count from here

# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------


def setting(default, help):
    """A config field whose help text doubles as its command-line help."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass
class Config:
    # Run
    env: str = setting("CartPole-v1", "Gymnasium env id (Box observations, Discrete actions)")
    seed: int = setting(1, "seeds Python, NumPy, TensorFlow and the env, for a repeatable run")
    max_steps: int = setting(150_000, "give up after this many env steps if not solved")
    results_dir: str = setting("results", "where the plot, GIFs, model and logs are written")
    no_gifs: bool = setting(False, "skip before.gif and after.gif (saves a few seconds)")
    tensorboard: bool = setting(False, "also write TensorBoard scalars to RESULTS_DIR/tensorboard")
    log_every: int = setting(2_000, "print a progress line every this many env steps")
    # DQN hyperparameters (README: "How the defaults were chosen")
    gamma: float = setting(0.95, "discount factor, in (0, 1]")
    learning_rate: float = setting(1e-3, "Adam learning rate")
    batch_size: int = setting(32, "transitions per gradient step")
    memory_size: int = setting(2_000, "replay memory capacity; once full a random slot is replaced")
    min_observations: int = setting(1_000, "transitions stored before experience replay starts")
    epsilon_start: float = setting(1.0, "initial exploration rate")
    epsilon_min: float = setting(0.01, "exploration rate floor")
    epsilon_decay: float = setting(0.999, "epsilon is multiplied by this after every env step")
    target_update_every: int = setting(500, "copy the Q-network into the target every N env steps")
    train_every: int = setting(16, "run experience replay every N env steps ...")
    gradient_steps: int = setting(16, "... with this many minibatch gradient steps per replay")
    no_xla: bool = setting(False, "compile the replay without XLA (slower, but starts faster)")
    # Evaluation (greedy, epsilon 0, on envs separate from the training env)
    eval_every: int = setting(250, "greedy evaluation every N env steps once replay has started")
    eval_episodes: int = setting(10, "episodes per periodic evaluation")
    confirm_episodes: int = setting(100, "episodes that must confirm a passing evaluation")
    # Watching a saved agent instead of training
    watch: str | None = setting(None, "load this .keras model, evaluate it and record a GIF")
    episodes: int = setting(100, "episodes to evaluate with --watch")


# Evaluations use their own seeds so that no evaluation episode repeats a training episode.
EVAL_SEED, CONFIRM_SEED, FINAL_SEED, GIF_SEED = 10_000, 20_000, 30_000, 40_000
MOVING_AVERAGE = 20  # episodes in the plot's and the progress line's running mean
GIF_TRIES = 10  # after.gif and watch.gif show the best of this many greedy episodes


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


class ConfigError(ValueError):
    """Bad input: reported as one line, exit code 2, before any work starts."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of argparse's usage block
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parse_args(argv=None) -> Config:
    parser = _Parser(
        prog="dqn_cartpole.py",
        description="Train a DQN on CartPole-v1 with TensorFlow/Keras; see the README.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for field in dataclasses.fields(Config):
        help = field.metadata["help"]
        if field.type == "bool":
            parser.add_argument(flag(field.name), action="store_true", help=help)
        else:
            kind = {"int": int, "float": float}.get(field.type, str)
            parser.add_argument(flag(field.name), type=kind, default=field.default, help=help)
    return Config(**vars(parser.parse_args(argv)))


def validate(cfg: Config) -> None:
    """Reject bad settings before TensorFlow is imported or anything is written."""
    for field in dataclasses.fields(cfg):
        value = getattr(cfg, field.name)
        if field.type == "float" and not math.isfinite(value):
            raise ConfigError(f"{flag(field.name)} must be a finite number, not {value}")
        if field.type == "int" and field.name != "seed" and value < 1:
            raise ConfigError(f"{flag(field.name)} must be >= 1")
    checks = [
        (cfg.seed >= 0, "--seed must be >= 0"),
        (cfg.learning_rate > 0, "--learning-rate must be > 0"),
        (0 < cfg.gamma <= 1, "--gamma must be in (0, 1]"),
        (cfg.batch_size <= cfg.memory_size, "--batch-size must be in [1, --memory-size]"),
        (
            cfg.batch_size <= cfg.min_observations <= cfg.memory_size,
            "--min-observations must be in [--batch-size, --memory-size]",
        ),
        (0 <= cfg.epsilon_start <= 1, "--epsilon-start must be in [0, 1]"),
        (0 <= cfg.epsilon_min <= 1, "--epsilon-min must be in [0, 1]"),
        (0 <= cfg.epsilon_decay <= 1, "--epsilon-decay must be in [0, 1]"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    if cfg.tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise ConfigError("--tensorboard needs the tensorboard package: pip install tensorboard")
    check_env(cfg.env)
    if cfg.watch is not None:
        check_model_file(cfg.watch)
    check_writable(Path(cfg.results_dir))


def check_env(env_id: str) -> None:
    import gymnasium as gym

    try:
        env = gym.make(env_id)
    except Exception as exc:  # gymnasium raises several error types for unknown or broken ids
        raise ConfigError(f"--env {env_id!r} cannot be made: {exc}") from None
    try:
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise ConfigError(f"--env {env_id!r} has no discrete actions ({env.action_space})")
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise ConfigError(f"--env {env_id!r} needs a flat Box observation, not {space}")
        if env.spec is None or env.spec.max_episode_steps is None:
            raise ConfigError(f"--env {env_id!r} has no time limit, so episodes may never end")
    finally:
        env.close()


def check_model_file(path: str) -> None:
    """Cheap checks of a .keras file; keras.saving.load_model(safe_mode=True) does the rest."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"--watch {path!r}: no such file")
    if not zipfile.is_zipfile(file):
        raise ConfigError(f"--watch {path!r}: not a Keras model (.keras files are zip archives)")
    with zipfile.ZipFile(file) as archive:
        if "config.json" not in archive.namelist():
            raise ConfigError(f"--watch {path!r}: not a Keras model (no config.json inside)")


def check_writable(folder: Path) -> None:
    """Check that `folder` exists and is writable, or can be created, without creating it."""
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"--results-dir {str(folder)!r}: {str(existing)!r} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"--results-dir {str(folder)!r}: {str(existing)!r} is not writable")


# ---------------------------------------------------------------------------------------------
# TensorFlow: imported only once the settings are known to be good
# ---------------------------------------------------------------------------------------------


def setup_tensorflow(seed: int) -> None:
    """Import TensorFlow quietly, on one thread, deterministic, and seed every generator."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # TensorFlow's C++ start-up notes (oneDNN, CUDA) bypass TF_CPP_MIN_LOG_LEVEL and go straight
    # to file descriptor 2, so that descriptor is parked on /dev/null while the import runs.
    sys.stderr.flush()
    saved_stderr = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import keras
            import tensorflow as tf
    finally:
        os.dup2(saved_stderr, 2)
        os.close(saved_stderr)
    # The network is tiny: extra threads only add hand-off cost, and one thread is repeatable.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(seed)  # Python's random, NumPy's global state and TensorFlow


# ---------------------------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------------------------


def build_q_network(n_observations: int, n_actions: int, learning_rate: float):
    """The seed's Q-network: Dense 24 -> Dense 12 -> one linear output per action."""
    import keras

    model = keras.Sequential(
        [
            keras.Input(shape=(n_observations,)),
            keras.layers.Dense(24, activation="relu", kernel_initializer="he_normal"),
            keras.layers.Dense(12, activation="relu", kernel_initializer="he_normal"),
            keras.layers.Dense(n_actions, activation="linear", kernel_initializer="he_normal"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss="mse")
    return model


def q_values(weights: list[np.ndarray], states: np.ndarray) -> np.ndarray:
    """The Q-network's forward pass in NumPy, from [kernel, bias, kernel, bias, ...].

    Acting and evaluating need one forward pass per env step; NumPy does it in under 10 us,
    where a TensorFlow call costs 0.5 ms and model.predict() about 60 ms.
    """
    hidden = states
    last = len(weights) - 2
    for i in range(0, len(weights), 2):
        hidden = hidden @ weights[i] + weights[i + 1]
        if i < last:
            hidden = np.maximum(hidden, 0.0)
    return hidden


def td_targets(rewards, next_q_max, terminated, gamma):
    """r + gamma * max_a' Q_target(s', a'), or just r where the episode really terminated.

    A truncated step (the time limit) still bootstraps: the pole was up, the future was not zero.
    Works on NumPy arrays and TensorFlow tensors alike.
    """
    return rewards + gamma * (1.0 - terminated) * next_q_max


# ---------------------------------------------------------------------------------------------
# Replay memory
# ---------------------------------------------------------------------------------------------


class ReplayMemory:
    """The seed's memory: a deque that appends until full, then overwrites a random slot.

    Each transition is one float32 row [state, action, reward, terminated, next_state], so a
    batch of minibatches is gathered with one np.stack instead of a loop per field.
    """

    def __init__(self, capacity: int, n_observations: int, rng: np.random.Generator):
        self.buffer: collections.deque = collections.deque(maxlen=capacity)
        self.n_observations = n_observations
        self.rng = rng

    def __len__(self) -> int:
        return len(self.buffer)

    def store(self, state, action, reward, next_state, terminated) -> None:
        row = np.concatenate((state, (action, reward, terminated), next_state), dtype=np.float32)
        if len(self.buffer) < self.buffer.maxlen:
            self.buffer.append(row)
        else:
            self.buffer[self.rng.integers(self.buffer.maxlen)] = row

    def sample(self, n_batches: int, batch_size: int):
        """Uniform minibatches, shaped (n_batches, batch_size, ...)."""
        index = self.rng.integers(len(self.buffer), size=n_batches * batch_size)
        rows = np.stack([self.buffer[i] for i in index]).reshape(n_batches, batch_size, -1)
        n = self.n_observations
        states, next_states = rows[..., :n], rows[..., n + 3 :]
        actions = rows[..., n].astype(np.int32)
        return states, actions, rows[..., n + 1], next_states, rows[..., n + 2]


# ---------------------------------------------------------------------------------------------
# Agent
# ---------------------------------------------------------------------------------------------


class DQNAgent:
    """Owns the env, the Q-network, the target network, the replay memory and epsilon."""

    def __init__(self, cfg: Config):
        import gymnasium as gym
        import keras
        import tensorflow as tf

        self.cfg = cfg
        self.env = gym.make(cfg.env, render_mode="rgb_array")
        self.env.action_space.seed(cfg.seed)
        self.n_actions = int(self.env.action_space.n)
        self.n_observations = int(self.env.observation_space.shape[0])
        self.rng = np.random.default_rng(cfg.seed)

        self.q_network = build_q_network(self.n_observations, self.n_actions, cfg.learning_rate)
        self.target_network = build_q_network(
            self.n_observations, self.n_actions, cfg.learning_rate
        )
        self.update_target_network()
        self.q_network.optimizer.build(self.q_network.trainable_variables)
        self.loss_fn = keras.losses.get(self.q_network.loss)  # "mse", as compiled
        self.memory = ReplayMemory(cfg.memory_size, self.n_observations, self.rng)
        self.epsilon = cfg.epsilon_start

        # NumPy copies of the Q-network's weights for acting; refreshed after every replay.
        self.weights = self.q_network.get_weights()
        self._shapes = [w.shape for w in self.weights]
        # XLA fuses the whole loop of gradient steps into one kernel: about 60 us per gradient
        # step instead of 130 us, for about a second of compiling at the start.
        self._replay = tf.function(self._gradient_steps, jit_compile=not cfg.no_xla)

    # Acting ------------------------------------------------------------------------------------

    def get_action(self, state: np.ndarray) -> int:
        """Epsilon-greedy: a random action with probability epsilon, else argmax Q."""
        if self.rng.random() < self.epsilon:
            return int(self.env.action_space.sample())
        return int(np.argmax(q_values(self.weights, state)))

    def decay_epsilon(self) -> None:
        self.epsilon = max(self.cfg.epsilon_min, self.epsilon * self.cfg.epsilon_decay)

    def remember(self, state, action, reward, next_state, terminated) -> None:
        self.memory.store(state, action, reward, next_state, terminated)

    # Learning ----------------------------------------------------------------------------------

    def experience_replay(self) -> float:
        """Run cfg.gradient_steps minibatch updates in one compiled call; return the last loss."""
        batches = self.memory.sample(self.cfg.gradient_steps, self.cfg.batch_size)
        loss, flat_weights = self._replay(*batches)
        self.weights = self._unflatten(flat_weights.numpy())
        return float(loss)

    def _gradient_steps(self, states, actions, rewards, next_states, terminated):
        import tensorflow as tf

        loss = tf.constant(0.0)
        for k in tf.range(tf.shape(states)[0]):
            loss = self._gradient_step(
                states[k], actions[k], rewards[k], next_states[k], terminated[k]
            )
        # One flat tensor back instead of six: each tensor -> NumPy copy costs ~35 us.
        flat = tf.concat([tf.reshape(w, [-1]) for w in self.q_network.weights], axis=0)
        return loss, flat

    def _gradient_step(self, states, actions, rewards, next_states, terminated):
        import tensorflow as tf

        model = self.q_network
        next_q_max = tf.reduce_max(self.target_network(next_states, training=False), axis=1)
        targets = td_targets(rewards, next_q_max, terminated, self.cfg.gamma)
        with tf.GradientTape() as tape:
            q = model(states, training=True)
            # As in the seed, the regression target is the network's own output with only the
            # taken action's entry replaced, so the MSE pulls on that entry alone.
            taken = tf.one_hot(actions, self.n_actions, on_value=True, off_value=False)
            target_q = tf.where(taken, targets[:, None], tf.stop_gradient(q))
            loss = tf.reduce_mean(self.loss_fn(target_q, q))
        grads = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    def _unflatten(self, flat: np.ndarray) -> list[np.ndarray]:
        parts, start = [], 0
        for shape in self._shapes:
            size = math.prod(shape)
            parts.append(flat[start : start + size].reshape(shape))
            start += size
        return parts

    def update_target_network(self) -> None:
        self.target_network.set_weights(self.q_network.get_weights())


# ---------------------------------------------------------------------------------------------
# Evaluation and recording
# ---------------------------------------------------------------------------------------------


def evaluate(weights, env_id: str, episodes: int, seed: int, pass_mark=None) -> np.ndarray:
    """Greedy returns of `episodes` episodes, run side by side in one vector env.

    With `pass_mark`, stop as soon as the mean can no longer reach it, counting at most a reward
    of 1 per remaining step as in CartPole (unfinished episodes keep what they scored so far):
    a failing check then costs a few steps instead of up to 500.
    """
    import gymnasium as gym

    envs = gym.make_vec(env_id, num_envs=episodes)  # CartPole has a NumPy-vectorised version
    limit = envs.spec.max_episode_steps
    try:
        obs, _ = envs.reset(seed=seed)
        returns = np.zeros(episodes)
        running = np.ones(episodes, dtype=bool)
        for t in range(1, limit + 1):
            actions = np.argmax(q_values(weights, obs), axis=1)
            obs, rewards, terminated, truncated, _ = envs.step(actions)
            # Envs reset themselves after an episode ends; only each one's first episode counts.
            returns += np.where(running, rewards, 0.0)
            running &= ~(terminated | truncated)
            if not running.any():
                break
            if pass_mark is not None and returns.sum() + running.sum() * (limit - t) < (
                pass_mark * episodes
            ):
                break
        return returns
    finally:
        envs.close()


def play_episode(weights, env, seed: int, render: bool = False):
    """One greedy episode from reset(seed): its return, and its frames if `render`."""
    obs, _ = env.reset(seed=seed)
    frames, total, done = [env.render()] if render else [], 0.0, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(int(np.argmax(q_values(weights, obs))))
        total += float(reward)
        done = terminated or truncated
        if render:
            frames.append(env.render())
    return total, frames


def half_size(frame: np.ndarray) -> np.ndarray:
    """Average 2x2 pixel blocks: a quarter of the pixels to encode (GIFs encode slowly: 9 s for
    500 full-size frames, 1.4 s at half size), and the 1-pixel track line stays visible."""
    f = frame[: frame.shape[0] // 2 * 2, : frame.shape[1] // 2 * 2].astype(np.uint16)
    return ((f[0::2, 0::2] + f[1::2, 0::2] + f[0::2, 1::2] + f[1::2, 1::2]) // 4).astype(np.uint8)


def record_episode(weights, env_id: str, seed: int, tries: int = 1):
    """Frames (at half size) of the best of `tries` greedy episodes from seeds
    `seed`, `seed + 1`, ...; also its return, its seed and the env's frame rate.

    Episodes are played without drawing first, which costs milliseconds, and only the chosen
    one is drawn: the frames are what takes time.
    """
    import gymnasium as gym

    # Frames are drawn off-screen; SDL's dummy driver stops pygame from looking for a display.
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    env = gym.make(env_id, render_mode="rgb_array")
    try:
        scores = {}
        for candidate in range(seed, seed + tries):
            scores[candidate], _ = play_episode(weights, env, candidate)
            if env.spec.max_episode_steps and scores[candidate] >= env.spec.max_episode_steps:
                break  # a full-length episode: nothing longer to find
        best_seed = max(scores, key=scores.get)
        total, frames = play_episode(weights, env, best_seed, render=True)
        return (
            [half_size(frame) for frame in frames],
            total,
            best_seed,
            env.metadata.get("render_fps", 50),
        )
    finally:
        env.close()


# ---------------------------------------------------------------------------------------------
# Writing outputs: every file goes to a temporary name beside it, then is renamed into place
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_path(path: Path):
    """Yield a temporary path in `path`'s folder; rename it to `path` only if the body succeeds.

    A crash or Ctrl-C mid-write leaves the previous file (or none), never half of one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; give it the usual mode
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    print(f"wrote {path}")


def save_gif(path: Path, frames, fps: float) -> None:
    import imageio.v3 as iio

    with atomic_path(path) as tmp:
        iio.imwrite(tmp, np.stack(frames), extension=".gif", duration=1000 / fps, loop=0)


def save_json(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def save_episodes_csv(path: Path, episodes: list[tuple]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["episode", "total_steps", "return", "epsilon"])
        writer.writerows(episodes)


def save_model(path: Path, model) -> None:
    with atomic_path(path) as tmp:
        model.save(tmp)


def moving_average(values, window: int) -> np.ndarray:
    """Mean of the last `window` values at each point (fewer at the start)."""
    values = np.asarray(values, dtype=float)
    sums = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    return (sums[1:] - sums[np.arange(1, len(values) + 1) - counts]) / counts


def plot_rewards(path: Path, episodes, evaluations, threshold, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # headless: no window, no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    if episodes:
        steps = [e[1] for e in episodes]
        returns = [e[2] for e in episodes]
        ax.plot(steps, returns, color="tab:blue", alpha=0.35, lw=1, label="episode return")
        ax.plot(
            steps,
            moving_average(returns, MOVING_AVERAGE),
            color="tab:blue",
            lw=2,
            label=f"mean of last {MOVING_AVERAGE} episodes",
        )
    if evaluations:
        ax.plot(
            [e[0] for e in evaluations],
            [e[1] for e in evaluations],
            "o",
            color="tab:green",
            ms=4,
            label="greedy evaluation (mean; cut short once it cannot pass)",
        )
    if threshold is not None:
        ax.axhline(threshold, color="tab:red", ls="--", lw=1, label=f"solved ({threshold:g})")
    ax.set(title=title, xlabel="env steps", ylabel="return per episode")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


class StopFlag:
    """First Ctrl-C asks the loop to stop and save; a second one aborts at once."""

    def __init__(self):
        self.requested = False

    def __call__(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nCtrl-C: stopping and saving what was learned (Ctrl-C again to abort)", flush=True)


def train(agent: DQNAgent, cfg: Config, stop: StopFlag, tensorboard=None) -> dict:
    """The main loop. Returns the history and the best greedy snapshot of the Q-network."""
    threshold = agent.env.spec.reward_threshold
    episodes: list[tuple] = []  # (episode, total env steps, return, epsilon)
    evaluations: list[tuple] = []  # (env step, mean greedy return)
    best = {"score": -math.inf, "weights": agent.weights, "step": 0}
    result = {"stop_reason": "max_steps", "steps_to_solve": None, "seconds_to_solve": None}
    episode_return, last_eval = 0.0, math.nan
    clock, clock_step = time.perf_counter(), 0

    state, _ = agent.env.reset(seed=cfg.seed)
    for step in range(1, cfg.max_steps + 1):
        action = agent.get_action(state)
        next_state, reward, terminated, truncated, _ = agent.env.step(action)
        agent.remember(state, action, reward, next_state, terminated)
        agent.decay_epsilon()
        state = next_state
        episode_return += reward

        replaying = len(agent.memory) >= cfg.min_observations
        if replaying and step % cfg.train_every == 0:
            loss = agent.experience_replay()
            if not math.isfinite(loss):
                print(f"step {step}: the loss is {loss}; stopping (try a lower --learning-rate)")
                result["stop_reason"] = "non_finite_loss"
                break
            if tensorboard:
                tensorboard.scalar("train/loss", loss, step)
        if step % cfg.target_update_every == 0:
            agent.update_target_network()

        if terminated or truncated:
            episodes.append((len(episodes) + 1, step, episode_return, agent.epsilon))
            if tensorboard:
                tensorboard.episode(episodes, step)
            episode_return = 0.0
            state, _ = agent.env.reset()

        if replaying and step % cfg.eval_every == 0:
            returns = evaluate(agent.weights, cfg.env, cfg.eval_episodes, EVAL_SEED, threshold)
            last_eval = float(returns.mean())
            evaluations.append((step, last_eval))
            if tensorboard:
                tensorboard.scalar("eval/mean_return", last_eval, step)
            if last_eval > best["score"]:
                best = {"score": last_eval, "weights": agent.weights, "step": step}
            if threshold is not None and last_eval >= threshold:
                confirm = evaluate(
                    agent.weights, cfg.env, cfg.confirm_episodes, CONFIRM_SEED, threshold
                )
                print(
                    f"step {step}: evaluation {last_eval:.1f} >= {threshold:g}; "
                    f"{cfg.confirm_episodes}-episode check {confirm.mean():.1f}"
                )
                if confirm.mean() >= threshold:
                    best = {"score": last_eval, "weights": agent.weights, "step": step}
                    result.update(
                        stop_reason="solved",
                        steps_to_solve=step,
                        seconds_to_solve=time.perf_counter() - PROCESS_START,
                    )
                    break

        if step % cfg.log_every == 0:
            now = time.perf_counter()
            recent = np.mean([e[2] for e in episodes[-MOVING_AVERAGE:]]) if episodes else 0.0
            print(
                f"step {step:>7} | episodes {len(episodes):>5} | "
                f"mean return (last {MOVING_AVERAGE}) {recent:6.1f} | "
                f"epsilon {agent.epsilon:.3f} | {(step - clock_step) / (now - clock):6.0f} "
                f"steps/s | last eval {last_eval:6.1f}",
                flush=True,
            )
            clock, clock_step = now, step

        if stop.requested:
            result["stop_reason"] = "interrupted"
            break

    if not evaluations:  # stopped before the first evaluation: the latest weights are all we have
        best = {"score": math.nan, "weights": agent.weights, "step": step}
    result.update(
        steps=step,
        episodes=episodes,
        evaluations=evaluations,
        best=best,
        threshold=threshold,
    )
    return result


class TensorBoardLog:
    """Scalars for `tensorboard --logdir RESULTS_DIR`."""

    def __init__(self, folder: Path):
        import tensorflow as tf

        self.tf = tf
        self.writer = tf.summary.create_file_writer(str(folder))

    def scalar(self, name: str, value: float, step: int) -> None:
        with self.writer.as_default():
            self.tf.summary.scalar(name, value, step=step)

    def episode(self, episodes: list[tuple], step: int) -> None:
        _, _, episode_return, epsilon = episodes[-1]
        recent = np.mean([e[2] for e in episodes[-MOVING_AVERAGE:]])
        self.scalar("train/episode_return", episode_return, step)
        self.scalar(f"train/mean_return_last_{MOVING_AVERAGE}", recent, step)
        self.scalar("train/epsilon", epsilon, step)

    def close(self) -> None:
        self.writer.close()


# ---------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------


def run_training(cfg: Config) -> int:
    results = Path(cfg.results_dir)
    print(f"Training a DQN on {cfg.env} (seed {cfg.seed}); outputs go to {results}/", flush=True)
    setup_tensorflow(cfg.seed)
    import gymnasium
    import keras
    import tensorflow as tf

    agent = DQNAgent(cfg)
    if not cfg.no_gifs:
        frames, score, _, fps = record_episode(agent.weights, cfg.env, GIF_SEED)
        save_gif(results / "before.gif", frames, fps)
        print(f"untrained agent: return {score:.0f}")

    tensorboard = TensorBoardLog(results / "tensorboard") if cfg.tensorboard else None
    stop = StopFlag()
    previous_handler = signal.signal(signal.SIGINT, stop)
    try:
        train_start = time.perf_counter()
        run = train(agent, cfg, stop, tensorboard)
        train_seconds = time.perf_counter() - train_start
    finally:
        if tensorboard:
            tensorboard.close()

    best = run["best"]
    agent.q_network.set_weights(best["weights"])
    final = evaluate(best["weights"], cfg.env, cfg.confirm_episodes, FINAL_SEED)
    interrupted = run["stop_reason"] == "interrupted"
    print(
        f"best snapshot (step {best['step']}): {cfg.confirm_episodes} greedy episodes on "
        f"unseen seeds: mean {final.mean():.1f}, std {final.std():.1f}, min {final.min():.0f}"
    )

    save_model(results / "model.keras", agent.q_network)
    save_episodes_csv(results / "episodes.csv", run["episodes"])
    solved = run["stop_reason"] == "solved"
    verdict = f"solved in {run['steps_to_solve']} steps" if solved else run["stop_reason"]
    plot_rewards(
        results / "rewards.png",
        run["episodes"],
        run["evaluations"],
        run["threshold"],
        f"DQN on {cfg.env}, seed {cfg.seed}: {verdict}",
    )
    if not cfg.no_gifs and not interrupted:
        frames, score, gif_seed, fps = record_episode(best["weights"], cfg.env, GIF_SEED, GIF_TRIES)
        save_gif(results / "after.gif", frames, fps)
        print(
            f"trained agent: return {score:.0f} "
            f"(best of up to {GIF_TRIES} episodes, seed {gif_seed})"
        )
    summary = {
        "env": cfg.env,
        "seed": cfg.seed,
        "solved": solved,
        "stop_reason": run["stop_reason"],
        "interrupted": interrupted,
        "steps_to_solve": run["steps_to_solve"],
        "seconds_to_solve": run["seconds_to_solve"],
        "steps": run["steps"],
        "episodes": len(run["episodes"]),
        "best_snapshot_step": best["step"],
        "eval_episodes": cfg.confirm_episodes,
        "eval_mean": float(final.mean()),
        "eval_std": float(final.std()),
        "eval_min": float(final.min()),
        "train_seconds": train_seconds,
        "total_seconds": time.perf_counter() - PROCESS_START,
        "versions": {
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "gymnasium": gymnasium.__version__,
            "numpy": np.__version__,
        },
        "config": dataclasses.asdict(cfg),
    }
    save_json(results / "summary.json", summary)
    signal.signal(signal.SIGINT, previous_handler)
    print(f"{verdict}; {summary['total_seconds']:.1f} s in all")
    if interrupted:
        return 130
    return 1 if run["stop_reason"] == "non_finite_loss" else 0


def run_watch(cfg: Config) -> int:
    setup_tensorflow(cfg.seed)
    import gymnasium as gym
    import keras

    try:
        model = keras.saving.load_model(cfg.watch, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types for a damaged or foreign file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"--watch {cfg.watch!r}: cannot load it as a Keras model: {reason}"
        ) from None
    if not all(isinstance(layer, keras.layers.Dense) for layer in model.layers):
        raise ConfigError(f"--watch {cfg.watch!r}: not a Q-network of Dense layers like ours")
    env = gym.make(cfg.env)
    expected = (env.observation_space.shape[0], int(env.action_space.n))
    env.close()
    if tuple(model.input_shape[1:]) != expected[:1] or model.output_shape[-1] != expected[1]:
        raise ConfigError(
            f"--watch {cfg.watch!r}: the model maps {model.input_shape[1:]} -> "
            f"{model.output_shape[-1]}, but {cfg.env} needs {expected}"
        )
    weights = model.get_weights()
    returns = evaluate(weights, cfg.env, cfg.episodes, FINAL_SEED)
    print(
        f"{cfg.episodes} greedy episodes of {cfg.watch}: mean {returns.mean():.1f}, "
        f"std {returns.std():.1f}, min {returns.min():.0f}"
    )
    if not cfg.no_gifs:
        frames, score, gif_seed, fps = record_episode(weights, cfg.env, GIF_SEED, GIF_TRIES)
        save_gif(Path(cfg.results_dir) / "watch.gif", frames, fps)
        print(
            f"recorded episode: return {score:.0f} "
            f"(best of up to {GIF_TRIES} episodes, seed {gif_seed})"
        )
    return 0


def main(argv=None) -> int:
    cfg = parse_args(argv)
    try:
        validate(cfg)
        return run_watch(cfg) if cfg.watch else run_training(cfg)
    except ConfigError as exc:
        print(f"dqn_cartpole.py: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
