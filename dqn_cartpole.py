"""Train a Deep Q-Network on Gymnasium's CartPole-v1 with TensorFlow/Keras.

    python dqn_cartpole.py                        # train until solved, then plot and record
    python dqn_cartpole.py --help                 # every setting is a flag
    python dqn_cartpole.py --watch results/model.keras   # evaluate a saved agent

The algorithm is the classic DQN of the seed design: a Keras Q-network (ReLU, He-normal, Adam,
MSE), a target network copied every few steps, a deque replay memory that overwrites a random
slot once full, and epsilon-greedy actions with epsilon decayed every step. Where it departs
from the seed (the README says why, with the figures):
- only a real termination stops the bootstrap: the 500-step time limit is a truncation;
- the network is trained by a compiled TensorFlow function that runs several gradient steps
  per call, and acts through a NumPy copy of its weights, instead of predict()/fit() per step;
- the defaults use Double DQN targets, 3-step returns, gamma 0.99, a target copy every 100
  steps and 256 -> 256 hidden units; the seed's design is one flag set away:
  --hidden 24,12 --n-step 1 --no-double-dqn --gamma 0.95 --target-update-every 500
  --learning-rate 0.001.

The run is solved once a greedy evaluation reaches the env's reward threshold (475 for
CartPole-v1) and a 100-episode check confirms it; training then goes on a little and keeps the
snapshot that does best on that check. What lands in --results-dir: model.keras, summary.json,
episodes.csv, rewards.png, before.gif and after.gif. A run holds a lock on the folder while it
works, and if the folder cannot be written at the end, the model goes to a temporary folder.
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


def setting(default, help, choices=None, low=None, high=None):
    """A config field whose help text doubles as its command-line help.

    `choices`, or the bounds `low` and `high`, are what validate() accepts; every other number
    must be finite, and >= 1 for whole numbers.
    """
    metadata = {"help": help, "choices": choices, "low": low, "high": high}
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class Config:
    # Run
    env: str = setting("CartPole-v1", "Gymnasium env id (Box observations, Discrete actions)")
    seed: int = setting(
        1,
        "seeds Python, NumPy, TensorFlow and the env, for a repeatable run",
        low=0,
        high=2**32 - 1,
    )
    max_steps: int = setting(150_000, "give up after this many env steps if not solved")
    polish_steps: int = setting(
        30_000,
        "once solved, train up to this many more steps and keep the snapshot that does best on "
        "--confirm-episodes fresh episodes (0: stop at once)",
        low=0,
    )
    polish_lr_factor: float = setting(
        1.0, "once solved, multiply the learning rate by this, in (0, 1]"
    )
    results_dir: str = setting("results", "where the plot, GIFs, model and logs are written")
    no_gifs: bool = setting(False, "skip before.gif and after.gif (saves a few seconds)")
    tensorboard: bool = setting(False, "also write TensorBoard scalars to RESULTS_DIR/tensorboard")
    log_every: int = setting(2_000, "print a progress line every this many env steps")
    # DQN hyperparameters (how they were chosen: results/study/README.md)
    gamma: float = setting(0.99, "discount factor, in (0, 1]")
    hidden: str = setting(
        "256,256", "hidden layer sizes of the Q-network, comma-separated (the seed's: 24,12)"
    )
    n_step: int = setting(
        3, "n-step returns: the target sums n rewards, then bootstraps (the seed's: 1)", high=100
    )
    learning_rate: float = setting(2e-3, "Adam learning rate")
    batch_size: int = setting(32, "transitions per gradient step", high=4_096)
    memory_size: int = setting(2_000, "replay memory capacity", high=10_000_000)
    memory_policy: str = setting(
        "random",
        "once the memory is full, a new transition replaces a random one (the seed's) or the "
        "oldest (fifo)",
        choices=("random", "fifo"),
    )
    min_observations: int = setting(1_000, "transitions stored before experience replay starts")
    epsilon_start: float = setting(1.0, "initial exploration rate")
    epsilon_min: float = setting(0.01, "exploration rate floor")
    epsilon_decay: float = setting(0.999, "epsilon is multiplied by this after every env step")
    target_update_every: int = setting(100, "copy the Q-network into the target every N env steps")
    train_every: int = setting(16, "run experience replay every N env steps ...")
    gradient_steps: int = setting(
        16, "... with this many minibatch gradient steps per replay", high=256
    )
    double_dqn: bool = setting(
        True, "Double DQN: the Q-network picks the next action, the target network values it"
    )
    loss: str = setting("mse", "regression loss of experience replay", choices=("mse", "huber"))
    no_xla: bool = setting(False, "compile the replay without XLA (slower, but starts faster)")
    # Evaluation (greedy, epsilon 0, on envs separate from the training env)
    eval_every: int = setting(250, "greedy evaluation every N env steps once replay has started")
    eval_episodes: int = setting(10, "episodes per periodic evaluation", high=10_000)
    confirm_episodes: int = setting(
        100, "episodes that must confirm a passing evaluation", high=10_000
    )
    # Watching a saved agent instead of training
    watch: str | None = setting(None, "load this .keras model, evaluate it and record a GIF")
    episodes: int = setting(100, "episodes to evaluate with --watch", high=10_000)


# Each kind of evaluation resets its envs from a fixed seed of its own (the vector envs take
# seed, seed + 1, ...), so every check of a run plays the same episodes. Training resets from
# --seed once and then runs on unseeded, so its episodes differ from these in all but the odd
# case of a --seed that starts one of these ranges.
EVAL_SEED, CONFIRM_SEED, FINAL_SEED, GIF_SEED = 10_000, 20_000, 30_000, 40_000
MOVING_AVERAGE = 20  # episodes in the plot's and the progress line's running mean


MAX_WEIGHTS = 10_000_000  # per network; training holds five copies (Adam's moments, the target)


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
        if field.type == "bool":  # on by default: --name and --no-name; off: --name alone
            action = argparse.BooleanOptionalAction if field.default else "store_true"
            parser.add_argument(flag(field.name), action=action, default=field.default, help=help)
        else:
            kind = {"int": int, "float": float}.get(field.type, str)
            parser.add_argument(
                flag(field.name),
                type=kind,
                default=field.default,
                choices=field.metadata["choices"],
                help=help,
            )
    return Config(**vars(parser.parse_args(argv)))


def validate(cfg: Config) -> None:
    """Reject bad settings before TensorFlow is imported or anything is written."""
    for field in dataclasses.fields(cfg):
        value, name = getattr(cfg, field.name), flag(field.name)
        if field.type == "float" and not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, not {value}")
        if field.type == "int":
            low, high = field.metadata["low"], field.metadata["high"]
            low = 1 if low is None else low
            if value < low:
                raise ConfigError(f"{name} must be >= {low}")
            if high is not None and value > high:
                raise ConfigError(f"{name} must be <= {high:,}")
        if isinstance(value, str) and "\0" in value:
            raise ConfigError(f"{name} must not contain a NUL character")
    checks = [
        (cfg.learning_rate > 0, "--learning-rate must be > 0"),
        (0 < cfg.gamma <= 1, "--gamma must be in (0, 1]"),
        (0 < cfg.polish_lr_factor <= 1, "--polish-lr-factor must be in (0, 1]"),
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
    for name in ("results_dir", "watch"):
        if getattr(cfg, name) == "":
            raise ConfigError(f"{flag(name)} must name a file or folder, not ''")
    if cfg.tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise ConfigError("--tensorboard needs the tensorboard package: pip install tensorboard")
    sizes = check_env(cfg.env)
    check_hidden(cfg.hidden, sizes)
    if cfg.watch is not None:
        check_model_file(cfg.watch, cfg.env, sizes)


def hidden_sizes(text: str) -> tuple[int, ...]:
    """'24,12' -> (24, 12). validate() has checked the text."""
    return tuple(int(part) for part in text.split(","))


def check_hidden(text: str, sizes: tuple[int, int]) -> None:
    """Refuse layer sizes that are not positive whole numbers or that would not fit in memory."""
    try:
        layers = hidden_sizes(text)
    except ValueError:
        raise ConfigError(f"--hidden {text!r}: expected sizes like 24,12") from None
    if min(layers) < 1:
        raise ConfigError(f"--hidden {text!r}: every layer needs at least 1 unit")
    widths = (sizes[0], *layers, sizes[1])
    weights = sum((a + 1) * b for a, b in zip(widths, widths[1:], strict=False))
    if weights > MAX_WEIGHTS:
        raise ConfigError(
            f"--hidden {text!r}: {weights:,} weights per network; at most {MAX_WEIGHTS:,}"
        )


def check_env(env_id: str) -> tuple[int, int]:
    """Refuse an env this DQN cannot train on; return its observation size and action count."""
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
        return int(space.shape[0]), int(env.action_space.n)
    finally:
        env.close()


def check_model_file(path: str, env_id: str, sizes: tuple[int, int]) -> None:
    """Check a .keras file from its config.json, without TensorFlow: a Sequential stack of Dense
    layers, ReLU inside and linear at the end (what q_values() computes), mapping the env's
    observation size to its action count. keras.saving.load_model(safe_mode=True) does the rest.
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"--watch {path!r}: no such file")
    if not zipfile.is_zipfile(file):
        raise ConfigError(f"--watch {path!r}: not a Keras model (.keras files are zip archives)")
    with zipfile.ZipFile(file) as archive:
        if "config.json" not in archive.namelist():
            raise ConfigError(f"--watch {path!r}: not a Keras model (no config.json inside)")
        try:
            config = json.loads(archive.read("config.json"))
            layers = config["config"]["layers"]
            kinds = [layer["class_name"] for layer in layers]
            dense = [layer["config"] for layer in layers if layer["class_name"] == "Dense"]
            activations = [layer["activation"] for layer in dense]
            maps = (layers[0]["config"]["batch_shape"][-1], dense[-1]["units"] if dense else None)
        except (ValueError, UnicodeDecodeError, LookupError, TypeError, AttributeError):
            reason = "not a Keras model (damaged config.json)"
            raise ConfigError(f"--watch {path!r}: {reason}") from None
    if (
        config.get("class_name") != "Sequential"
        or kinds != ["InputLayer"] + ["Dense"] * (len(kinds) - 1)
        or not dense
        or activations != ["relu"] * (len(dense) - 1) + ["linear"]
    ):
        raise ConfigError(f"--watch {path!r}: not a Q-network of Dense layers like ours")
    if maps != sizes:
        raise ConfigError(
            f"--watch {path!r}: the model maps {maps[0]} -> {maps[1]}, "
            f"but {env_id} needs {sizes[0]} -> {sizes[1]}"
        )


LOCK_NAME = ".dqn_cartpole.lock"  # in --results-dir while a run uses it; holds the run's pid


@contextlib.contextmanager
def results_folder(folder: Path):
    """Make `folder` ready before any work starts, and keep it to this run until the end.

    The folder is created if need be and proved writable by a probe file, and a lock file
    inside it (an flock, which the kernel drops when its process dies, even by kill -9) turns
    away a second run. Any OS error here is bad input: nothing is left that was not there. Bad
    input found later (a --watch file that Keras refuses) also removes the folders made here.
    """
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    lock = None
    try:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=folder, prefix=".probe-")
            os.close(fd)
            os.unlink(probe)
            lock = take_lock(folder / LOCK_NAME)
        except OSError as exc:
            raise ConfigError(f"--results-dir {str(folder)!r}: {os_reason(exc)}") from None
        yield
    except ConfigError:
        release_lock(lock, folder / LOCK_NAME)
        lock = None
        remove_made_folders(missing)
        raise
    finally:
        release_lock(lock, folder / LOCK_NAME)


def take_lock(path: Path):
    """Hold an exclusive flock on `path`; refuse if a live process holds it."""
    import fcntl

    while True:
        handle = open(path, "a+")  # noqa: SIM115 (held open for the whole run)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            handle.close()
            raise ConfigError(
                f"--results-dir {str(path.parent)!r} is in use by another run (pid {owner}); "
                "wait for it to finish or choose another --results-dir"
            ) from None
        # The owner may have removed the file just before we locked it: lock the new one then.
        if os.path.exists(path) and os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
            break
        handle.close()
    handle.seek(0)
    stale = handle.read().strip()
    if stale:  # the flock was free, so the process that wrote this pid died without cleaning up
        print(f"taking over a stale lock of pid {stale} in {path.parent}")
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def release_lock(handle, path: Path) -> None:
    if handle is not None:
        with contextlib.suppress(OSError):  # the folder may be gone by now
            os.unlink(path)
        handle.close()  # closing the file releases the flock


def remove_made_folders(made: list[Path]) -> None:
    """Remove folders that this run created, deepest first, if they are still empty."""
    for folder in made:
        with contextlib.suppress(OSError):
            folder.rmdir()


def os_reason(exc: OSError) -> str:
    """An OS error in a few words: 'No space left on device', not a traceback."""
    return exc.strerror or str(exc) or type(exc).__name__


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
    # (Set once: TensorFlow refuses a change after its first op, as when main() runs twice.)
    if tf.config.threading.get_intra_op_parallelism_threads() != 1:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(seed)  # Python's random, NumPy's global state and TensorFlow


# ---------------------------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------------------------


def build_q_network(n_observations: int, n_actions: int, learning_rate: float, loss, hidden):
    """The seed's Q-network: Dense ReLU layers (24 -> 12 in the seed) -> one linear output per
    action, all He-normal, trained by Adam on `loss` (the seed's: MSE)."""
    import keras

    layers = [keras.Input(shape=(n_observations,))]
    for units in hidden:
        layers.append(keras.layers.Dense(units, activation="relu", kernel_initializer="he_normal"))
    layers.append(
        keras.layers.Dense(n_actions, activation="linear", kernel_initializer="he_normal")
    )
    model = keras.Sequential(layers)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss=loss)
    return model


def q_values(weights: list[np.ndarray], states: np.ndarray) -> np.ndarray:
    """The Q-network's forward pass in NumPy, from [kernel, bias, kernel, bias, ...].

    Acting and evaluating need one forward pass per env step: NumPy does it in microseconds,
    a tf.function call costs about 0.5 ms and model.predict() about 50 ms (results/benchmark.md).
    """
    hidden = states
    last = len(weights) - 2
    for i in range(0, len(weights), 2):
        hidden = hidden @ weights[i] + weights[i + 1]
        if i < last:
            hidden = np.maximum(hidden, 0.0)
    return hidden


def td_targets(rewards, next_value, terminated, discount):
    """r + discount * V(s'), or just r where the episode really terminated.

    V(s') is max_a' Q_target(s', a'), or with Double DQN Q_target(s', argmax_a' Q(s', a')).
    The discount is gamma, or gamma**n for an n-step return (r then sums n discounted rewards).
    A truncated step (the time limit) still bootstraps: the pole was up, the future was not zero.
    Works on NumPy arrays and TensorFlow tensors alike.
    """
    return rewards + discount * (1.0 - terminated) * next_value


# ---------------------------------------------------------------------------------------------
# Replay memory
# ---------------------------------------------------------------------------------------------


class ReplayMemory:
    """The seed's memory rule on one preallocated array: append until full, then overwrite a
    random slot (or, with policy "fifo", the oldest transition).

    The seed keeps a collections.deque of transitions. Here each transition is one float32 row
    [state, action, reward, terminated, next_state, discount] of an array allocated once at
    the full capacity, so a row costs its 4 * (2 * n_observations + 4) bytes and a minibatch is
    one fancy-indexing gather, as fast at 1,000,000 rows as at 2,000; a deque of row arrays
    costs several times the data and finds a row in its middle in time that grows with its
    length. The pages of the array are only touched, and so only take memory, as it fills.
    FIFO writes round a ring and sample() counts from its oldest row, so slot i is the i-th
    oldest, as in a deque(maxlen). The discount is gamma**k for a reward that sums k steps.
    """

    def __init__(
        self,
        capacity: int,
        n_observations: int,
        rng: np.random.Generator,
        policy: str = "random",
        batch_rng: np.random.Generator | None = None,
    ):
        self.rows = np.zeros((capacity, row_width(n_observations)), np.float32)
        self.capacity, self.n_observations, self.size, self.oldest = capacity, n_observations, 0, 0
        self.rng = rng  # picks the slot that a new transition overwrites
        self.batch_rng = rng if batch_rng is None else batch_rng  # draws the minibatches
        self.replace_random = policy == "random"

    def __len__(self) -> int:
        return self.size

    def store(self, state, action, reward, next_state, terminated, discount) -> None:
        if self.size < self.capacity:
            slot = self.size
            self.size += 1
        elif self.replace_random:
            slot = self.rng.integers(self.capacity)
        else:
            slot, self.oldest = self.oldest, (self.oldest + 1) % self.capacity
        n, row = self.n_observations, self.rows[slot]
        row[:n], row[n : n + 3], row[n + 3 : 2 * n + 3] = (
            state,
            (action, reward, terminated),
            next_state,
        )
        row[-1] = discount

    def transitions(self) -> np.ndarray:
        """The stored rows, oldest first for FIFO and in slot order otherwise (a copy)."""
        return np.roll(self.rows[: self.size], -self.oldest, axis=0)

    def sample(self, n_batches: int, batch_size: int):
        """Uniform minibatches, shaped (n_batches, batch_size, ...)."""
        index = self.batch_rng.integers(self.size, size=n_batches * batch_size)
        rows = self.rows[(index + self.oldest) % self.capacity].reshape(n_batches, batch_size, -1)
        n = self.n_observations
        states, next_states = rows[..., :n], rows[..., n + 3 : 2 * n + 3]
        actions = rows[..., n].astype(np.int32)
        return states, actions, rows[..., n + 1], next_states, rows[..., n + 2], rows[..., -1]


def row_width(n_observations: int) -> int:
    """Floats per stored transition: state, action, reward, terminated, next state, discount."""
    return 2 * n_observations + 4


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

        sizes = (self.n_observations, self.n_actions, cfg.learning_rate, cfg.loss)
        sizes += (hidden_sizes(cfg.hidden),)
        self.q_network = build_q_network(*sizes)
        self.target_network = build_q_network(*sizes)
        self.update_target_network()
        self.q_network.optimizer.build(self.q_network.trainable_variables)
        self.loss_fn = keras.losses.get(self.q_network.loss)  # --loss, as compiled
        self.memory = ReplayMemory(
            cfg.memory_size, self.n_observations, self.rng, cfg.memory_policy
        )
        self.recent: collections.deque = collections.deque()  # the last n steps, for n-step
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

    def remember(self, state, action, reward, next_state, terminated, truncated) -> None:
        """Store the transition of n steps ago, with the n rewards since, discounted; at the end
        of an episode, the ones still waiting, with fewer rewards. With n = 1 (the seed's), each
        step is stored at once: (state, action, reward, next_state, terminated, gamma)."""
        self.recent.append((state, action, reward))
        if len(self.recent) == self.cfg.n_step:
            self._store_oldest(next_state, terminated)
        if terminated or truncated:
            while self.recent:
                self._store_oldest(next_state, terminated)

    def _store_oldest(self, next_state, terminated) -> None:
        gamma = self.cfg.gamma
        n_step_return = sum(gamma**k * reward for k, (_, _, reward) in enumerate(self.recent))
        discount = gamma ** len(self.recent)
        state, action, _ = self.recent.popleft()
        self.memory.store(state, action, n_step_return, next_state, terminated, discount)

    # Learning ----------------------------------------------------------------------------------

    def experience_replay(self) -> float:
        """Run cfg.gradient_steps minibatch updates in one compiled call; return the last loss."""
        batches = self.memory.sample(self.cfg.gradient_steps, self.cfg.batch_size)
        loss, flat_weights = self._replay(*batches)
        self.weights = self._unflatten(flat_weights.numpy())
        return float(loss)

    def _gradient_steps(self, states, actions, rewards, next_states, terminated, discounts):
        import tensorflow as tf

        loss = tf.constant(0.0)
        for k in tf.range(tf.shape(states)[0]):
            loss = self._gradient_step(
                states[k], actions[k], rewards[k], next_states[k], terminated[k], discounts[k]
            )
        # One flat tensor back instead of six: each tensor -> NumPy copy costs ~35 us.
        flat = tf.concat([tf.reshape(w, [-1]) for w in self.q_network.weights], axis=0)
        return loss, flat

    def _gradient_step(self, states, actions, rewards, next_states, terminated, discounts):
        import tensorflow as tf

        model = self.q_network
        targets = td_targets(rewards, self.next_value(next_states), terminated, discounts)
        with tf.GradientTape() as tape:
            q = model(states, training=True)
            # As in the seed, the regression target is the network's own output with only the
            # taken action's entry replaced, so the loss pulls on that entry alone.
            taken = tf.one_hot(actions, self.n_actions, on_value=True, off_value=False)
            target_q = tf.where(taken, targets[:, None], tf.stop_gradient(q))
            loss = tf.reduce_mean(self.loss_fn(target_q, q))
        grads = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    def next_value(self, next_states):
        """V(s') for the TD target: max_a' Q_target(s', a'), or with Double DQN the target
        network's value of the action that the Q-network picks, which counters the upward
        bias of taking the max of noisy estimates."""
        import tensorflow as tf

        next_q = self.target_network(next_states, training=False)
        if not self.cfg.double_dqn:
            return tf.reduce_max(next_q, axis=1)
        online_q = self.q_network(next_states, training=False)
        best = tf.argmax(online_q, axis=1, output_type=tf.int32)
        return tf.gather(next_q, best, axis=1, batch_dims=1)

    def _unflatten(self, flat: np.ndarray) -> list[np.ndarray]:
        parts, start = [], 0
        for shape in self._shapes:
            size = math.prod(shape)
            parts.append(flat[start : start + size].reshape(shape))
            start += size
        return parts

    def scale_learning_rate(self, factor: float) -> None:
        """Multiply Adam's learning rate; the compiled replay reads it as a variable."""
        rate = self.q_network.optimizer.learning_rate
        rate.assign(rate * factor)

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


def record_episode(weights, env_id: str, seed: int):
    """Frames (at half size) of one greedy episode from reset(seed), its return and the env's
    frame rate. The seed is fixed in advance, so the episode shows what the agent does, not
    its best moment."""
    import gymnasium as gym

    # Frames are drawn off-screen; SDL's dummy driver stops pygame from looking for a display.
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    env = gym.make(env_id, render_mode="rgb_array")
    try:
        total, frames = play_episode(weights, env, seed, render=True)
        return [half_size(frame) for frame in frames], total, env.metadata.get("render_fps", 50)
    finally:
        env.close()


# ---------------------------------------------------------------------------------------------
# Writing outputs: every file goes to a temporary name beside it, then is renamed into place
# ---------------------------------------------------------------------------------------------


class WriteError(Exception):
    """An output could not be written: one line naming the file and the OS reason, exit 1."""


@contextlib.contextmanager
def atomic_path(path: Path):
    """Yield a temporary path in `path`'s folder; rename it to `path` only if the body succeeds.

    A crash, a full disk or Ctrl-C mid-write leaves the previous file (or none), never half of
    one, and no temporary file. An OS error becomes a WriteError that names `path`.
    """
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; give it the usual mode
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise WriteError(f"cannot write {path}: {os_reason(exc)}") from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):  # gone already once renamed into place
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


def plot_rewards(path: Path, episodes, evaluations, threshold, title: str, solved_at=None):
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
    if solved_at is not None:
        ax.axvline(solved_at, color="gray", ls=":", lw=1, label="solved; training on to polish")
    ax.set(title=title, xlabel="env steps", ylabel="return per episode")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# Training: the DQN loop, then the bookkeeping it calls
# ---------------------------------------------------------------------------------------------


def train(agent: DQNAgent, cfg: Config, stop: StopFlag, tensorboard=None) -> dict:
    """The seed's loop: act, step, remember, replay, copy the target; and evaluate.

    Returns the history and the snapshot to save (see Checks for when training stops).
    """
    checks, log = Checks(cfg, agent.env.spec), TrainingLog(cfg, tensorboard)
    stop_reason, start = "max_steps", time.perf_counter()
    state, _ = agent.env.reset(seed=cfg.seed)
    for step in range(1, cfg.max_steps + 1):
        action = agent.get_action(state)
        next_state, reward, terminated, truncated, _ = agent.env.step(action)
        agent.remember(state, action, reward, next_state, terminated, truncated)
        agent.decay_epsilon()
        log.reward(reward)
        state = next_state

        replaying = len(agent.memory) >= cfg.min_observations
        if replaying and step % cfg.train_every == 0:
            loss = agent.experience_replay()
            if not log.loss(step, loss):
                stop_reason = "non_finite_loss"
                break
        if step % cfg.target_update_every == 0:
            agent.update_target_network()
        if terminated or truncated:
            log.end_episode(step, agent.epsilon)
            state, _ = agent.env.reset()
        if replaying and step % cfg.eval_every == 0:
            log.evaluation(step, checks.evaluate(step, agent))

        log.progress(step, agent.epsilon)
        if checks.finished(step):
            break
        if stop.requested:
            stop_reason = "interrupted"
            break
    return checks.result(step, stop_reason, agent.weights) | {
        "episodes": log.episodes,
        "train_seconds": time.perf_counter() - start,
    }


class Checks:
    """Greedy evaluations (epsilon 0, on envs of their own): when the run is solved, when it
    stops, and which snapshot of the Q-network is kept.

    Until solved, an evaluation plays --eval-episodes episodes; one that reaches the env's
    reward threshold is checked on --confirm-episodes more, and passing that check is "solved".
    Training then goes on for up to --polish-steps steps, every evaluation now a check on the
    same --confirm-episodes episodes, and the snapshot that does best on them is kept: the first
    snapshot to pass can sit just above the threshold, and DQN's Q-network keeps changing, so a
    better one often comes along within a few thousand steps. A perfect check (every episode
    lasting the time limit) ends training at once.
    """

    def __init__(self, cfg: Config, spec):
        self.cfg = cfg
        self.threshold = spec.reward_threshold
        self.perfect = spec.max_episode_steps  # the best return when rewards are at most 1
        self.evaluations: list[tuple] = []  # (env step, score)
        self.best = {"score": -math.inf, "weights": None, "step": 0}
        self.steps_to_solve = self.seconds_to_solve = self.solve_check = None

    @property
    def solved(self) -> bool:
        return self.steps_to_solve is not None

    def evaluate(self, step: int, agent: DQNAgent) -> float:
        """Score the agent's current weights; keep them if they are the best so far."""
        cfg, weights = self.cfg, agent.weights
        if self.solved:
            score = self.score(weights, cfg.confirm_episodes, CONFIRM_SEED)
            if score > self.best["score"]:
                self.best = {"score": score, "weights": weights, "step": step}
                print(f"step {step}: {cfg.confirm_episodes}-episode check {score:.1f}, best")
        else:
            score = self.score(weights, cfg.eval_episodes, EVAL_SEED)
            if score > self.best["score"]:
                self.best = {"score": score, "weights": weights, "step": step}
            if self.threshold is not None and score >= self.threshold:
                score = self.confirm(step, agent)
        self.evaluations.append((step, score))
        return score

    def confirm(self, step: int, agent: DQNAgent) -> float:
        """Check a passing evaluation on --confirm-episodes episodes; passing it is solved."""
        cfg = self.cfg
        score = self.score(agent.weights, cfg.confirm_episodes, CONFIRM_SEED)
        print(f"step {step}: {cfg.confirm_episodes}-episode check {score:.1f}")
        if score >= self.threshold:
            # From here on every score is a long check, so the best starts again.
            self.best = {"score": score, "weights": agent.weights, "step": step}
            self.steps_to_solve, self.solve_check = step, score
            self.seconds_to_solve = time.perf_counter() - PROCESS_START
            agent.scale_learning_rate(cfg.polish_lr_factor)
            print(f"solved at step {step}; training up to {cfg.polish_steps} more")
        return score

    def score(self, weights, episodes: int, seed: int) -> float:
        return float(evaluate(weights, self.cfg.env, episodes, seed, self.threshold).mean())

    def finished(self, step: int) -> bool:
        """Solved, and polished to the end or perfect."""
        return self.solved and (
            step >= self.steps_to_solve + self.cfg.polish_steps
            or self.best["score"] >= self.perfect
        )

    def result(self, step: int, stop_reason: str, latest_weights) -> dict:
        best = self.best
        if not self.evaluations:  # stopped before the first evaluation: keep the latest weights
            best = {"score": math.nan, "weights": latest_weights, "step": step}
        if self.solved and stop_reason == "max_steps":
            stop_reason = "solved"  # polished to the end, a perfect check, or out of steps
        polish = (
            time.perf_counter() - PROCESS_START - self.seconds_to_solve if self.solved else None
        )
        return {
            "stop_reason": stop_reason,
            "steps": step,
            "steps_to_solve": self.steps_to_solve,
            "seconds_to_solve": self.seconds_to_solve,
            "solve_check": self.solve_check,  # the first passing long check's score
            "polish_seconds": polish,  # training after the solve, its checks included
            "best": best,
            "evaluations": self.evaluations,
            "threshold": self.threshold,
        }


class TrainingLog:
    """The episodes' returns, the progress line every --log-every steps, and TensorBoard."""

    def __init__(self, cfg: Config, tensorboard=None):
        self.cfg, self.tensorboard = cfg, tensorboard
        self.episodes: list[tuple] = []  # (episode, total env steps, return, epsilon)
        self.episode_return, self.last_eval = 0.0, math.nan
        self.clock, self.clock_step = time.perf_counter(), 0

    def reward(self, reward: float) -> None:
        self.episode_return += reward

    def end_episode(self, step: int, epsilon: float) -> None:
        self.episodes.append((len(self.episodes) + 1, step, self.episode_return, epsilon))
        self.episode_return = 0.0
        if self.tensorboard:
            self.tensorboard.episode(self.episodes, step)

    def loss(self, step: int, loss: float) -> bool:
        """Log a replay's loss; False (and a line saying so) if it is not a finite number."""
        if not math.isfinite(loss):
            print(f"step {step}: the loss is {loss}; stopping (try a lower --learning-rate)")
            return False
        if self.tensorboard:
            self.tensorboard.scalar("train/loss", loss, step)
        return True

    def evaluation(self, step: int, score: float) -> None:
        self.last_eval = score
        if self.tensorboard:
            self.tensorboard.scalar("eval/mean_return", score, step)

    def progress(self, step: int, epsilon: float) -> None:
        if step % self.cfg.log_every:
            return
        now = time.perf_counter()
        returns = [e[2] for e in self.episodes[-MOVING_AVERAGE:]]
        print(
            f"step {step:>7} | episodes {len(self.episodes):>5} | "
            f"mean return (last {MOVING_AVERAGE}) {np.mean(returns) if returns else 0.0:6.1f} | "
            f"epsilon {epsilon:.3f} | {(step - self.clock_step) / (now - self.clock):6.0f} "
            f"steps/s | last eval {self.last_eval:6.1f}",
            flush=True,
        )
        self.clock, self.clock_step = now, step


class StopFlag:
    """The first Ctrl-C (or SIGTERM) asks the loop to stop and save; a second Ctrl-C aborts."""

    def __init__(self):
        self.signal = None

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def __call__(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.signal = signum
        name = signal.Signals(signum).name
        print(f"\n{name}: stopping and saving what was learned (Ctrl-C again to abort)", flush=True)


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

KEPT_ON_FAILURE = ("model.keras", "summary.json", "episodes.csv")  # written elsewhere if need be


def run_training(cfg: Config) -> int:
    """Train, then score the kept snapshot on unseen episodes, record it and write the outputs."""
    results = Path(cfg.results_dir)
    print(f"Training a DQN on {cfg.env} (seed {cfg.seed}); outputs go to {results}/", flush=True)
    setup_tensorflow(cfg.seed)
    agent = DQNAgent(cfg)
    if not cfg.no_gifs:
        frames, score, fps = record_episode(agent.weights, cfg.env, GIF_SEED)
        save_gif(results / "before.gif", frames, fps)
        print(f"untrained agent: return {score:.0f}")

    tensorboard = TensorBoardLog(results / "tensorboard") if cfg.tensorboard else None
    stop = StopFlag()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        run = train(agent, cfg, stop, tensorboard)
        agent.q_network.set_weights(run["best"]["weights"])
        summary, gif = final_check(cfg, run)
        outputs = training_outputs(agent, run, summary, gif)
        write_outputs(results, outputs, keep=KEPT_ON_FAILURE)
    finally:
        if tensorboard:
            tensorboard.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(f"{verdict(run)}; {time.perf_counter() - PROCESS_START:.1f} s in all")
    if run["stop_reason"] == "interrupted":
        return 128 + stop.signal
    return 1 if run["stop_reason"] == "non_finite_loss" else 0


def verdict(run: dict) -> str:
    solved = run["steps_to_solve"] is not None
    return f"solved in {run['steps_to_solve']} steps" if solved else run["stop_reason"]


def final_check(cfg: Config, run: dict):
    """Score the kept snapshot on --confirm-episodes unseen episodes and record its GIF."""
    best = run["best"]
    final = evaluate(best["weights"], cfg.env, cfg.confirm_episodes, FINAL_SEED)
    print(
        f"saved snapshot (step {best['step']}): {cfg.confirm_episodes} greedy episodes on "
        f"unseen seeds: mean {final.mean():.1f}, std {final.std():.1f}, min {final.min():.0f}"
    )
    gif = None
    if not cfg.no_gifs and run["stop_reason"] != "interrupted":
        gif = record_episode(best["weights"], cfg.env, GIF_SEED)
        print(f"trained agent: return {gif[1]:.0f} (the episode from seed {GIF_SEED})")
    return summarize(cfg, run, final, gif), gif


def summarize(cfg: Config, run: dict, final: np.ndarray, gif) -> dict:
    """summary.json: the run's outcome, its timings, every evaluation and the settings."""
    import gymnasium
    import keras
    import tensorflow as tf

    best = run["best"]
    return {
        "env": cfg.env,
        "seed": cfg.seed,
        "solved": run["steps_to_solve"] is not None,
        "stop_reason": run["stop_reason"],
        "interrupted": run["stop_reason"] == "interrupted",
        "steps_to_solve": run["steps_to_solve"],
        "seconds_to_solve": run["seconds_to_solve"],
        "solve_check_mean": run["solve_check"],
        "steps": run["steps"],
        "episodes": len(run["episodes"]),
        "saved_snapshot_step": best["step"],
        "saved_snapshot_check_mean": float(best["score"]) if run["evaluations"] else None,
        "polish_seconds": run["polish_seconds"],
        "final_eval": {
            "episodes": cfg.confirm_episodes,
            "first_reset_seed": FINAL_SEED,
            "mean": float(final.mean()),
            "std": float(final.std()),
            "min": float(final.min()),
        },
        "gif_return": gif[1] if gif else None,
        "train_seconds": run["train_seconds"],
        "total_seconds": time.perf_counter() - PROCESS_START,  # before the outputs are written
        "evaluations": run["evaluations"],
        "versions": {
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "gymnasium": gymnasium.__version__,
            "numpy": np.__version__,
        },
        "config": dataclasses.asdict(cfg),
    }


def training_outputs(agent: DQNAgent, run: dict, summary: dict, gif) -> dict:
    """What to write, in order: the model first, since it is what the run was for."""
    cfg = agent.cfg
    title = f"DQN on {cfg.env}, seed {cfg.seed}: {verdict(run)}"
    outputs = {
        "model.keras": lambda path: save_model(path, agent.q_network),
        "summary.json": lambda path: save_json(path, summary),
        "episodes.csv": lambda path: save_episodes_csv(path, run["episodes"]),
        "rewards.png": lambda path: plot_rewards(
            path,
            run["episodes"],
            run["evaluations"],
            run["threshold"],
            title,
            run["steps_to_solve"],
        ),
    }
    if gif:
        outputs["after.gif"] = lambda path: save_gif(path, gif[0], gif[2])
    return outputs


def write_outputs(folder: Path, outputs: dict, keep: tuple) -> None:
    """Write each output into `folder` in order. If one fails, write the outputs named in
    `keep` to a new temporary folder instead, and raise a WriteError that names both."""
    for name, write in outputs.items():
        try:
            write(folder / name)
        except WriteError as exc:
            fallback = Path(tempfile.mkdtemp(prefix="dqn_cartpole-"))
            try:
                for kept in keep:
                    outputs[kept](fallback / kept)
            except WriteError as again:
                raise WriteError(f"{exc}; and the fallback failed too: {again}") from None
            raise WriteError(f"{exc}; {', '.join(keep)} are saved in {fallback}/") from None


def run_watch(cfg: Config) -> int:
    """Evaluate a saved Q-network (its config.json was checked by validate()) and record it."""
    setup_tensorflow(cfg.seed)
    import keras

    try:
        model = keras.saving.load_model(cfg.watch, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types for a damaged or foreign file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"--watch {cfg.watch!r}: cannot load it as a Keras model: {reason}"
        ) from None
    weights = model.get_weights()
    returns = evaluate(weights, cfg.env, cfg.episodes, FINAL_SEED)
    print(
        f"{cfg.episodes} greedy episodes of {cfg.watch}: mean {returns.mean():.1f}, "
        f"std {returns.std():.1f}, min {returns.min():.0f}"
    )
    if not cfg.no_gifs:
        frames, score, fps = record_episode(weights, cfg.env, GIF_SEED)
        save_gif(Path(cfg.results_dir) / "watch.gif", frames, fps)
        print(f"recorded episode: return {score:.0f} (the episode from seed {GIF_SEED})")
    return 0


def main(argv=None) -> int:
    cfg = parse_args(argv)
    try:
        validate(cfg)
        if cfg.watch and cfg.no_gifs:  # nothing to write
            return run_watch(cfg)
        with results_folder(Path(cfg.results_dir)):
            return run_watch(cfg) if cfg.watch else run_training(cfg)
    except ConfigError as exc:
        print(f"dqn_cartpole.py: error: {exc}", file=sys.stderr)
        return 2
    except WriteError as exc:
        print(f"dqn_cartpole.py: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
