"""Train a Deep Q-Network on Gymnasium's CartPole-v1 with TensorFlow/Keras.

    python dqn_cartpole.py                               # train, plot, record, save
    python dqn_cartpole.py --help                        # every setting is a flag
    python dqn_cartpole.py --watch results/model.keras   # evaluate a saved agent

The file reads in two parts. First the DQN itself, top to bottom: the settings, the Q-network
and its TD target, the replay memory, the agent, and train(), the loop of the seed design (act
epsilon-greedily, step the env, remember, replay a minibatch, copy the target network,
evaluate). Then, behind a marked seam, the run harness that train() reports to: greedy checks
and the choice of the snapshot to keep, logging, the command line, the lock on the results
folder, TensorFlow's set-up, and the outputs.

What lands in --results-dir: model.keras, summary.json, episodes.csv, rewards.png, before.gif
and after.gif. Where this departs from the seed design (the README says why): only a real
termination stops the bootstrap, since the 500-step time limit is a truncation; the network
trains in a compiled TensorFlow function and acts through a NumPy copy of its weights, not by
predict()/fit() per step; the defaults use Double DQN, 3-step returns, a wider network and
parameter noise. The seed's own design is one flag set away:
    --hidden 24,12 --n-step 1 --no-double-dqn --gamma 0.95 --target-update-every 500
    --learning-rate 0.001 --epsilon-decay 0.999 --param-noise 0
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
import zlib
from pathlib import Path

# One math thread for NumPy, as for TensorFlow (setup_tensorflow): the arrays are small, so more
# threads only wait on each other, and one thread makes a run repeatable. Set before NumPy starts.
for _threads in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_threads, "1")

import numpy as np  # noqa: E402

PROCESS_START = time.perf_counter()  # seconds_to_solve and total_seconds count from here

# =============================================================================================
# Settings: every one a command-line flag (--gamma, --hidden, ...)
# =============================================================================================


def setting(default, help, choices=None, low=None, high=None):
    """A config field whose help text doubles as its command-line help. `choices`, or the
    bounds `low` and `high`, are what validate() accepts; every other number must be finite,
    and >= 1 for whole numbers."""
    metadata = {"help": help, "choices": choices, "low": low, "high": high}
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class Config:
    # The DQN (how these were chosen: results/study/README.md)
    gamma: float = setting(0.99, "discount factor, in (0, 1]")
    hidden: str = setting(
        "256,256", "hidden layer sizes of the Q-network, comma-separated (the seed's: 24,12)"
    )
    n_step: int = setting(
        3, "n-step returns: the target sums n rewards, then bootstraps (the seed's: 1)", high=100
    )
    learning_rate: float = setting(2e-3, "Adam learning rate")
    loss: str = setting("mse", "regression loss of experience replay", choices=("mse", "huber"))
    batch_size: int = setting(32, "transitions per gradient step", high=4_096)
    memory_size: int = setting(2_000, "replay memory capacity (at most 4 GiB of rows)")
    memory_policy: str = setting(
        "random",
        "once the memory is full, a new transition replaces a random one (the seed's) or the "
        "oldest (fifo)",
        choices=("random", "fifo"),
    )
    min_observations: int = setting(1_000, "transitions stored before experience replay starts")
    epsilon_start: float = setting(1.0, "initial exploration rate")
    epsilon_min: float = setting(0.01, "exploration rate floor")
    epsilon_decay: float = setting(0.998, "epsilon is multiplied by this after every env step")
    target_update_every: int = setting(100, "copy the Q-network into the target every N env steps")
    train_every: int = setting(16, "run experience replay every N env steps ...")
    gradient_steps: int = setting(
        16, "... with this many minibatch gradient steps per replay", high=256
    )
    double_dqn: bool = setting(
        True, "Double DQN: the Q-network picks the next action, the target network values it"
    )
    dueling: bool = setting(
        False, "dueling network: Q(s, a) = V(s) + A(s, a) - mean A(s, .), two heads on one body"
    )
    quantiles: int = setting(
        0, "QR-DQN: N return quantiles per action, acting on their mean (0: off)", low=0, high=200
    )
    prioritized: bool = setting(
        False, "prioritized replay: draw transitions by |TD error|**alpha, importance-weighted"
    )
    priority_alpha: float = setting(0.6, "prioritized replay: how much priority counts, in [0, 1]")
    priority_beta: float = setting(
        0.4, "prioritized replay: importance exponent, in [0, 1] at first, 1 by --max-steps"
    )
    param_noise: float = setting(
        0.1, "parameter noise: the perturbed network's share of actions unlike the greedy (0: off)"
    )
    count_bonus: float = setting(
        0.0, "count bonus: reward + this / sqrt(visits to the next state's grid cell) (0: off)"
    )
    average_steps: int = setting(
        0,
        "weight averaging: checks and the saved model see the weights' moving mean over ~N steps "
        "(0: off)",
        low=0,
    )
    # How long to train, and what to keep
    env: str = setting("CartPole-v1", "Gymnasium env id (Box observations, Discrete actions)")
    seed: int = setting(
        1, "seeds Python, NumPy, TensorFlow and the env: a repeatable run", low=0, high=2**32 - 1
    )
    max_steps: int = setting(150_000, "give up after this many env steps if not solved")
    polish_steps: int = setting(
        30_000,
        "once solved, train up to this many more steps and keep the snapshot that certifies "
        "best (0: stop at once)",
        low=0,
    )
    polish_patience: int = setting(
        0, "once solved, stop after N checks in a row that keep no new snapshot (0: never)", low=0
    )
    # Greedy evaluation (epsilon 0, on envs of its own)
    eval_every: int = setting(250, "greedy evaluation every N env steps once replay has started")
    eval_episodes: int = setting(10, "episodes per periodic evaluation", high=10_000)
    confirm_episodes: int = setting(
        100, "episodes that must confirm a passing evaluation", high=5_000
    )
    certify_episodes: int = setting(
        300,
        "once solved, a snapshot that matches the best check is scored on this many other "
        "episodes; the best of those scores is kept",
        high=5_000,
    )
    # Outputs and speed
    results_dir: str = setting("results", "where the plot, GIFs, model and logs are written")
    no_gifs: bool = setting(False, "skip before.gif and after.gif (saves a few seconds)")
    tensorboard: bool = setting(False, "also write TensorBoard scalars to RESULTS_DIR/tensorboard")
    log_every: int = setting(2_000, "print a progress line every this many env steps")
    no_xla: bool = setting(False, "compile the replay without XLA (slower per step)")
    xla_cache: bool = setting(
        True, "cache XLA's compile for later runs in DQN_CARTPOLE_CACHE (~/.cache/dqn_cartpole)"
    )
    # Watching a saved agent instead of training
    watch: str | None = setting(None, "load this .keras model, evaluate it and record a GIF")
    watch_episodes: int = setting(100, "episodes that --watch plays", high=10_000)
    watch_seed: int = setting(
        50_000,
        "--watch plays the episodes that reset from this seed on, which no training run sees",
        low=0,
        high=2**32 - 1 - 10_000,
    )


# Settings per env, as rl-baselines3-zoo keeps its hyperparameters: --env picks a row, and any
# flag given overrides it; CartPole-v1's row is the defaults above. Each row was chosen on tuning
# seeds, then run on fresh ones (results/study/envs.md, and algorithm-flags.md for its flags).
# fmt: off
ENV_SETTINGS: dict[str, dict] = {
    "CartPole-v1": {},
    "Acrobot-v1": {"eval_every": 1_000, "polish_steps": 12_000, "n_step": 1, "param_noise": 0.0,
                   "average_steps": 1_000},
    "MountainCar-v0": {"eval_every": 1_000, "polish_steps": 20_000, "param_noise": 0.0,
                       "count_bonus": 1.0},
    "LunarLander-v3": {"param_noise": 0.0, "max_steps": 150_000, "memory_size": 50_000,
                       "epsilon_decay": 0.9998, "eval_every": 5_000, "polish_steps": 30_000},
}
# fmt: on

# =============================================================================================
# The DQN: Q-network, TD target, replay memory, agent, training loop
# =============================================================================================


def build_q_network(n_observations: int, n_actions: int, hidden: tuple[int, ...]):
    """The seed's Q-network: Dense ReLU layers (24 -> 12 in the seed) -> one linear output per
    action, all He-normal. The agent trains it with Adam on the MSE loss, as the seed does."""
    import keras

    init = "he_normal"  # every layer's initial weights, as in the seed
    layers = [keras.Input(shape=(n_observations,))]
    for units in hidden:
        layers.append(keras.layers.Dense(units, activation="relu", kernel_initializer=init))
    layers.append(keras.layers.Dense(n_actions, activation="linear", kernel_initializer=init))
    return keras.Sequential(layers)


def q_values(weights: list[np.ndarray], states: np.ndarray) -> np.ndarray:
    """The Q-network's forward pass in NumPy, from [kernel, bias, kernel, bias, ...]. Acting
    needs one forward pass per env step, and a call of a Keras model costs far more than these
    few small matrix products (results/benchmark.md measures both)."""
    *trunk, kernel, bias = weights
    hidden = states
    for i in range(0, len(trunk), 2):
        hidden = np.maximum(hidden @ trunk[i] + trunk[i + 1], 0.0)  # ReLU
    return hidden @ kernel + bias


def td_targets(rewards, next_value, terminated, discount):
    """r + discount * V(s'), or just r where the episode really terminated; a truncated step
    (the time limit) still bootstraps: the pole was up, the future was not zero. V(s') is
    max_a' Q_target(s', a'), or with Double DQN Q_target(s', argmax_a' Q(s', a')); the discount
    is gamma, or gamma**n for an n-step return (r then sums n discounted rewards). Works on
    NumPy arrays and TensorFlow tensors alike."""
    return rewards + discount * (1.0 - terminated) * next_value


class ReplayMemory:
    """The seed's memory rule on one preallocated array: append until full, then overwrite a
    random slot (or, with policy "fifo", the oldest transition).

    The seed keeps a collections.deque. Here each transition is one float32 row [state, action,
    reward, terminated, next_state, discount (gamma**k for k summed rewards)] of an array made
    once at full capacity, whose pages take memory only as it fills: a row costs its data alone
    and a minibatch is one gather, as fast at 1,000,000 rows as at 2,000 (a deque of arrays
    costs several times the data and slows with its length). FIFO writes round a ring, and
    sample() counts from the oldest row, so slot i is the i-th oldest, as in a deque(maxlen).
    """

    def __init__(self, capacity: int, n_observations: int, rng, policy="random", batch_rng=None):
        self.rows = np.zeros((capacity, row_width(n_observations)), np.float32)
        self.capacity, self.n_observations = capacity, n_observations
        self.size, self.oldest = 0, 0
        self.rng = rng  # picks the slot that a new transition overwrites
        self.batch_rng = rng if batch_rng is None else batch_rng  # draws the minibatches
        self.replace_random = policy == "random"

    def __len__(self) -> int:
        return self.size

    def store(self, state, action, reward, next_state, terminated, discount) -> int:
        """Write the transition into its slot (see the class docstring); return the slot."""
        if self.size < self.capacity:
            slot = self.size
            self.size += 1
        elif self.replace_random:
            slot = self.rng.integers(self.capacity)
        else:
            slot, self.oldest = self.oldest, (self.oldest + 1) % self.capacity
        self.rows[slot] = np.concatenate(
            [state, (action, reward, terminated), next_state, (discount,)]
        )
        return slot

    def sample(self, n_batches: int, batch_size: int):
        """Minibatches of stored transitions, shaped (n_batches, batch_size, ...)."""
        slots = self.draw(n_batches * batch_size)
        rows = self.rows[slots].reshape(n_batches, batch_size, -1)
        n = self.n_observations
        states, next_states = rows[..., :n], rows[..., n + 3 : 2 * n + 3]
        actions = rows[..., n].astype(np.int32)
        return states, actions, rows[..., n + 1], next_states, rows[..., n + 2], rows[..., -1]

    def draw(self, count: int) -> np.ndarray:
        """The slots of `count` stored transitions, uniformly at random."""
        return (self.batch_rng.integers(self.size, size=count) + self.oldest) % self.capacity


def row_width(n_observations: int) -> int:
    """Floats per stored transition: state, action, reward, terminated, next state, discount."""
    return 2 * n_observations + 4


def flat_weights(network):
    """A network's weights as one flat tensor: one tensor -> NumPy copy instead of six."""
    import tensorflow as tf

    return tf.concat([tf.reshape(w, [-1]) for w in network.weights], axis=0)


def unflatten(flat: np.ndarray, shapes: list[tuple]) -> list[np.ndarray]:
    ends = np.cumsum([math.prod(shape) for shape in shapes])
    parts = np.split(flat, ends[:-1])
    return [part.reshape(shape) for part, shape in zip(parts, shapes, strict=True)]


class ParameterNoise:
    """Parameter-space noise (Plappert et al., 2018): act greedily on the weights plus `scale`
    times a direction drawn anew each episode, which explores along one direction in weight
    space where epsilon's coins dither. At each replay the scale adapts: 1% up if the perturbed
    greedy action differs from the plain one on fewer than a `share` of the states, else down."""

    def __init__(self, share: float, rng: np.random.Generator):
        self.share, self.rng, self.scale = share, rng, 0.01

    def new_direction(self, weights: list[np.ndarray]) -> None:
        self.direction = [self.rng.standard_normal(w.shape, np.float32) for w in weights]

    def perturb(self, weights: list[np.ndarray], states=None) -> None:
        """The perturbed weights; given states, adapt the scale for the next time."""
        noisy = zip(weights, self.direction, strict=True)
        self.perturbed = [w + self.scale * z for w, z in noisy]
        if states is not None:
            greedy = np.argmax(q_values(weights, states), axis=1)
            differ = np.mean(greedy != np.argmax(q_values(self.perturbed, states), axis=1))
            self.scale *= 1.01 if differ < self.share else 1 / 1.01


def no_bonus(state: np.ndarray) -> float:
    """The seed's agent learns from the env's reward alone."""
    return 0.0


class DQNAgent:
    """Owns the env, the Q-network, the target network, the replay memory and epsilon. The
    DQN-family options after train() subclass it and override only the methods they change,
    or give remember() an exploration bonus."""

    def __init__(self, cfg: Config):
        import gymnasium as gym
        import keras
        import tensorflow as tf

        self.cfg = cfg
        self.env = gym.make(cfg.env)
        self.n_actions = int(self.env.action_space.n)
        self.n_observations = int(self.env.observation_space.shape[0])
        # Seeding, all of it: Keras' seed gives the initial weights; one NumPy stream per use
        # (exploration's coins and actions, the memory's overwritten slots, its minibatches,
        # the parameter noise), so that changing one setting does not change the others' draws;
        # the first reset seeds the env's episodes, and every later one goes on from it.
        keras.utils.set_random_seed(cfg.seed)
        explore, actions, slots, batches, noise = np.random.SeedSequence(cfg.seed).spawn(5)
        self.rng = np.random.default_rng(explore)
        self.env.action_space.seed(int(actions.generate_state(1)[0]))
        self.noise = ParameterNoise(cfg.param_noise, np.random.default_rng(noise))
        self.first_state, _ = self.env.reset(seed=cfg.seed)

        self.q_network = self.build_network()
        self.target_network = self.build_network()
        self.update_target_network()
        self.optimizer = keras.optimizers.Adam(learning_rate=cfg.learning_rate)
        self.optimizer.build(self.q_network.trainable_variables)
        self.loss_fn = keras.losses.get(cfg.loss)  # the seed's MSE, or the Huber loss
        rngs = np.random.default_rng(slots), np.random.default_rng(batches)
        self.memory = self.build_memory(*rngs)
        self.exploration_bonus = no_bonus  # added to each stored reward (make_agent may swap it)
        self.recent: collections.deque = collections.deque()  # the last n steps, for n-step
        self.epsilon = cfg.epsilon_start

        # NumPy weights for acting, refreshed at each replay; the last finite ones are kept.
        self._shapes = [w.shape for w in self.q_network.get_weights()]
        self.weights = self.acting_weights(self.q_network.get_weights())
        self.diverged = False
        self.start_episode()  # the first episode's parameter noise, if any
        # XLA fuses the whole loop of gradient steps into one program: faster per gradient step,
        # for a compile at the first replay that the XLA cache saves on later runs.
        self._replay = tf.function(self._gradient_steps, jit_compile=not cfg.no_xla)

    def build_network(self):
        return build_q_network(self.n_observations, self.n_actions, hidden_sizes(self.cfg.hidden))

    def build_memory(self, slot_rng, batch_rng) -> ReplayMemory:
        size, policy = self.cfg.memory_size, self.cfg.memory_policy
        return ReplayMemory(size, self.n_observations, slot_rng, policy, batch_rng)

    def acting_weights(self, weights: list[np.ndarray]) -> list[np.ndarray]:
        """The Q-network's weights as the plain network that q_values() computes: the same."""
        return weights

    # Acting ------------------------------------------------------------------------------------

    def get_action(self, state: np.ndarray) -> int:
        """Epsilon-greedy: a random action with probability epsilon, else argmax Q (of the
        perturbed Q-network, with --param-noise)."""
        if self.rng.random() < self.epsilon:
            return int(self.env.action_space.sample())
        weights = self.noise.perturbed if self.cfg.param_noise else self.weights
        return int(np.argmax(q_values(weights, state)))

    def start_episode(self) -> None:
        """With --param-noise, a new noise direction for the episode that starts."""
        if self.cfg.param_noise:
            self.noise.new_direction(self.weights)
            self.noise.perturb(self.weights)

    def decay_epsilon(self) -> None:
        self.epsilon = max(self.cfg.epsilon_min, self.epsilon * self.cfg.epsilon_decay)

    def remember(self, state, action, reward, next_state, terminated, truncated) -> None:
        """Store the transition of n steps ago, with the n rewards since, discounted; at the end
        of an episode, the ones still waiting, with fewer rewards. With n = 1 (the seed's), each
        step is stored at once: (state, action, reward, next_state, terminated, gamma)."""
        reward += self.exploration_bonus(next_state)  # 0 for the seed's DQN
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
        return self.take_weights(loss, flat_weights, batches[0][0])

    def take_weights(self, loss, flat_weights, states) -> float:
        """Act on the new weights, and adapt the parameter noise on `states`. Here alone is
        divergence decided: if the loss or a weight is no longer a finite number, `diverged`
        is set and the agent keeps acting on the last finite weights."""
        loss, flat_weights = float(loss), flat_weights.numpy()
        self.diverged = not (math.isfinite(loss) and np.isfinite(flat_weights).all())
        if not self.diverged:
            self.weights = self.acting_weights(unflatten(flat_weights, self._shapes))
            if self.cfg.param_noise:
                self.noise.perturb(self.weights, states)
        return loss

    def _gradient_steps(self, *batch):
        """cfg.gradient_steps minibatches (states, actions, rewards, next states, terminated,
        discounts), each of shape (gradient_steps, batch_size, ...): one gradient step each."""
        import tensorflow as tf

        loss = tf.constant(0.0)
        for k in tf.range(tf.shape(batch[0])[0]):
            loss = self._gradient_step(*[x[k] for x in batch])
        return loss, flat_weights(self.q_network)

    def _gradient_step(self, states, actions, rewards, next_states, terminated, discounts):
        import tensorflow as tf

        targets = td_targets(rewards, self.next_value(next_states), terminated, discounts)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(self.regression_loss(states, actions, targets))
        self.apply_gradients(tape, loss)
        return loss

    def regression_loss(self, states, actions, targets):
        """Each transition's loss. As in the seed, the target is the network's own output with
        only the taken action's entry replaced, so the loss pulls on that entry alone."""
        import tensorflow as tf

        q = self.q_network(states, training=True)
        taken = tf.one_hot(actions, self.n_actions, on_value=True, off_value=False)
        target_q = tf.where(taken, targets[:, None], tf.stop_gradient(q))
        return self.loss_fn(target_q, q)

    def apply_gradients(self, tape, loss) -> None:
        variables = self.q_network.trainable_variables
        grads = tape.gradient(loss, variables)
        self.optimizer.apply_gradients(zip(grads, variables, strict=True))

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

    def update_target_network(self) -> None:
        self.target_network.set_weights(self.q_network.get_weights())

    def network_to_save(self, weights: list[np.ndarray]):
        """A Keras Q-network that holds these acting weights, for model.keras."""
        self.q_network.set_weights(weights)
        return self.q_network


def train(agent: DQNAgent, cfg: Config, callbacks: Callbacks) -> int:
    """The seed's loop: act, step, remember, replay, copy the target, evaluate. Returns the
    last env step; `callbacks` (the harness) keeps the history and says when to stop."""
    state = agent.first_state
    step = 0
    for step in range(1, cfg.max_steps + 1):
        action = agent.get_action(state)
        next_state, reward, terminated, truncated, _ = agent.env.step(action)
        agent.remember(state, action, reward, next_state, terminated, truncated)
        agent.decay_epsilon()
        state = next_state

        replaying = len(agent.memory) >= cfg.min_observations
        if replaying and step % cfg.train_every == 0:
            loss = agent.experience_replay()
            if agent.diverged:  # the agent keeps its last finite weights; stop here
                callbacks.on_divergence(step)
                break
            callbacks.on_replay(step, loss, agent.weights)
        if step % cfg.target_update_every == 0:
            agent.update_target_network()
        if terminated or truncated:
            state, _ = agent.env.reset()
            agent.start_episode()
        if replaying and step % cfg.eval_every == 0:
            callbacks.on_evaluation(step, agent.weights)
        if callbacks.on_step(step, reward, terminated or truncated, agent.epsilon):
            break
    return step


class Callbacks:
    """What train() tells the run harness, and asks it, in the spirit of Stable-Baselines3's
    callbacks. This base listens to nothing and runs to --max-steps; RunMonitor, behind the
    seam, logs, evaluates, keeps snapshots and decides when to stop."""

    def on_replay(self, step: int, loss: float, weights: list[np.ndarray]) -> None:
        """After a replay, with the loss and the new weights."""

    def on_divergence(self, step: int) -> None:
        """Training diverged at this step and stops."""

    def on_evaluation(self, step: int, weights: list[np.ndarray]) -> None:
        """Every --eval-every steps once replay has begun."""

    def on_step(self, step: int, reward: float, episode_over: bool, epsilon: float) -> bool:
        """At the end of every env step; True stops training."""
        return False


# =============================================================================================
# DQN-family options, each off by default and each in one place: a subclass of DQNAgent that
# overrides only what it changes, or a small object the agent calls. make_agent() picks them.
# =============================================================================================


def make_agent(cfg: Config) -> DQNAgent:
    """The agent the settings ask for: DQNAgent, or a DQN-family variant of it."""
    agent_class = DQNAgent
    if cfg.quantiles:
        agent_class = QRDQNAgent
    elif cfg.prioritized:
        agent_class = PrioritizedDQNAgent
    if cfg.dueling:  # the dueling head goes on whichever agent was chosen above
        agent_class = type("Dueling" + agent_class.__name__, (DuelingHead, agent_class), {})
    agent = agent_class(cfg)
    if cfg.count_bonus:
        agent.exploration_bonus = CountBonus(cfg.count_bonus, agent.env.observation_space)
    return agent


class DuelingHead:
    """--dueling: a mix-in that goes before an agent class and gives it the dueling network,
    which it acts, checks and saves through as the plain network it folds into."""

    def build_network(self):
        sizes = hidden_sizes(self.cfg.hidden)
        return build_dueling_network(self.n_observations, self.n_actions, sizes)

    def acting_weights(self, weights: list[np.ndarray]) -> list[np.ndarray]:
        return fold_dueling(weights)

    def network_to_save(self, weights: list[np.ndarray]):
        return plain_network(self, weights)


def build_dueling_network(n_observations: int, n_actions: int, hidden: tuple[int, ...]):
    """The dueling network (Wang et al., 2016): two linear heads, V(s) and A(s, a), on the
    seed's hidden layers give Q(s, a) = V(s) + A(s, a) - mean_a A(s, a). Every update moves V,
    so all actions' values at once, and A only has to learn how actions differ, which matters
    where their values are close."""
    import keras

    init = "he_normal"
    inputs = features = keras.Input(shape=(n_observations,))
    for units in hidden:
        features = keras.layers.Dense(units, activation="relu", kernel_initializer=init)(features)
    value = keras.layers.Dense(1, kernel_initializer=init)(features)
    advantage = keras.layers.Dense(n_actions, kernel_initializer=init)(features)
    q = value + advantage - keras.ops.mean(advantage, axis=1, keepdims=True)
    return keras.Model(inputs, q)


def fold_dueling(weights: list[np.ndarray]) -> list[np.ndarray]:
    """A dueling network's weights [..., V kernel, V bias, A kernel, A bias] as the plain
    network that computes the same Q-values. Both heads are linear in the last hidden layer h,
    so V(s) + A(s, a) - mean_a A(s, a) is h @ (w_V + W_A - mean_a W_A) + (b_V + b_A - mean_a b_A):
    the agent acts, checks and saves with that one output layer."""
    *trunk, value_kernel, value_bias, advantage_kernel, advantage_bias = weights
    kernel = value_kernel + advantage_kernel - advantage_kernel.mean(axis=1, keepdims=True)
    return [*trunk, kernel, value_bias + advantage_bias - advantage_bias.mean()]


def plain_network(agent: DQNAgent, weights: list[np.ndarray]):
    """The seed's plain Q-network holding folded acting weights, for model.keras."""
    sizes = hidden_sizes(agent.cfg.hidden)
    network = build_q_network(agent.n_observations, agent.n_actions, sizes)
    network.set_weights(weights)
    return network


class QRDQNAgent(DQNAgent):
    """--quantiles N, QR-DQN (Dabney et al., 2018): the network gives N quantiles of the return
    per action, at the levels tau_i = (i + 0.5) / N, and acts on their mean. Each quantile of the
    taken action is pulled toward every quantile of the target r + discount * Z(s', a') by the
    quantile Huber loss, which weighs an error by tau_i where the target is above and 1 - tau_i
    where it is below."""

    def build_network(self):
        outputs = self.n_actions * self.cfg.quantiles
        return build_q_network(self.n_observations, outputs, hidden_sizes(self.cfg.hidden))

    def acting_weights(self, weights: list[np.ndarray]) -> list[np.ndarray]:
        return fold_quantiles(weights, self.n_actions)

    def network_to_save(self, weights: list[np.ndarray]):
        return plain_network(self, weights)

    def _gradient_step(self, states, actions, rewards, next_states, terminated, discounts):
        import tensorflow as tf

        n = self.cfg.quantiles
        targets = td_targets(  # (batch, N), from the target network: no gradient
            rewards[:, None], self.next_value(next_states), terminated[:, None], discounts[:, None]
        )
        levels = (tf.range(n, dtype=tf.float32) + 0.5) / n
        with tf.GradientTape() as tape:
            quantiles = tf.reshape(self.q_network(states, training=True), [-1, self.n_actions, n])
            taken = tf.gather(quantiles, actions, axis=1, batch_dims=1)  # (batch, N)
            errors = targets[:, None, :] - taken[:, :, None]  # [b, i, j]: target j - quantile i
            huber = tf.where(tf.abs(errors) <= 1.0, 0.5 * errors**2, tf.abs(errors) - 0.5)
            weight = tf.abs(levels[None, :, None] - tf.cast(errors < 0, tf.float32))
            loss = tf.reduce_mean(tf.reduce_sum(tf.reduce_mean(weight * huber, axis=2), axis=1))
        self.apply_gradients(tape, loss)
        return loss

    def next_value(self, next_states):
        """Z(s', a'), the N quantiles of the action whose mean is highest (by the Q-network
        with Double DQN): shape (batch, N)."""
        import tensorflow as tf

        shape = [-1, self.n_actions, self.cfg.quantiles]
        next_q = self.target_network(next_states, training=False)
        chooser = self.q_network(next_states, training=False) if self.cfg.double_dqn else next_q
        best = tf.argmax(tf.reduce_mean(tf.reshape(chooser, shape), axis=2), axis=1)
        return tf.gather(tf.reshape(next_q, shape), tf.cast(best, tf.int32), axis=1, batch_dims=1)


def fold_quantiles(weights: list[np.ndarray], n_actions: int) -> list[np.ndarray]:
    """A QR-DQN network's weights, whose last layer gives N quantiles per action, as the plain
    network whose outputs are their means, the Q-values: the mean is linear in the last hidden
    layer, so it is one output layer with each action's N columns averaged."""
    *trunk, kernel, bias = weights
    kernel, bias = kernel.reshape(len(kernel), n_actions, -1), bias.reshape(n_actions, -1)
    return [*trunk, kernel.mean(-1), bias.mean(-1)]


class PrioritizedDQNAgent(DQNAgent):
    """--prioritized: replays the transitions it learns most from more often (below), and
    weighs each one's loss by its importance weight."""

    def build_memory(self, slot_rng, batch_rng) -> ReplayMemory:
        cfg = self.cfg
        return PrioritizedReplayMemory(
            cfg.memory_size,
            self.n_observations,
            slot_rng,
            cfg.memory_policy,
            batch_rng,
            alpha=cfg.priority_alpha,
            beta=cfg.priority_beta,
            beta_steps=cfg.max_steps,
        )

    def experience_replay(self) -> float:
        batches = self.memory.sample(self.cfg.gradient_steps, self.cfg.batch_size)
        importance = self.memory.importance.reshape(batches[0].shape[:2])
        loss, flat_weights, td_errors = self._replay(*batches, importance=importance)
        loss = self.take_weights(loss, flat_weights, batches[0][0])
        if not self.diverged:
            self.memory.update_priorities(td_errors.numpy())
        return loss

    def _gradient_steps(self, *batch, importance):
        import tensorflow as tf

        loss = tf.constant(0.0)
        for k in tf.range(tf.shape(batch[0])[0]):
            loss = self._weighted_step(*[x[k] for x in batch], importance[k])
        # Every drawn transition's TD error after the updates: its new priority.
        s, a, r, s2, done, discount = (tf.reshape(x, [-1, *x.shape[2:]]) for x in batch)
        taken_q = tf.gather(self.q_network(s, training=False), a, axis=1, batch_dims=1)
        td_errors = td_targets(r, self.next_value(s2), done, discount) - taken_q
        return loss, flat_weights(self.q_network), td_errors

    def _weighted_step(self, states, actions, rewards, next_states, terminated, discounts, weight):
        import tensorflow as tf

        targets = td_targets(rewards, self.next_value(next_states), terminated, discounts)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(weight * self.regression_loss(states, actions, targets))
        self.apply_gradients(tape, loss)
        return loss


class PrioritizedReplayMemory(ReplayMemory):
    """Proportional prioritized replay (Schaul et al., 2016), same array, same overwrite rule:
    draw transition i with chance P(i) = p_i / sum p, p_i = (|TD error| + 1e-6)**alpha from the
    last replay that drew it (a new one: the largest p yet). The importance weight (N P(i))**-beta
    / its largest undoes the bias of that choice, fully once beta has risen to 1. A replay draws
    all its minibatches at once, with the priorities from before it."""

    def __init__(self, *args, alpha: float, beta: float, beta_steps: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.priorities = np.zeros(self.capacity)
        self.alpha, self.beta, self.beta_steps = alpha, beta, beta_steps
        self.max_priority, self.stored = 1.0, 0
        self.slots = self.importance = None  # the last draw's slots and importance weights

    def store(self, *transition) -> int:
        slot = super().store(*transition)
        self.priorities[slot] = self.max_priority
        self.stored += 1
        return slot

    def draw(self, count: int) -> np.ndarray:
        cumulative = np.cumsum(self.priorities[: self.size])
        total = cumulative[-1]
        picks = self.batch_rng.random(count) * total
        self.slots = np.minimum(np.searchsorted(cumulative, picks, side="right"), self.size - 1)
        chance = self.priorities[self.slots] / total
        beta = self.beta + (1.0 - self.beta) * min(1.0, self.stored / self.beta_steps)
        weights = (self.size * chance) ** -beta
        self.importance = (weights / weights.max()).astype(np.float32)
        return self.slots

    def update_priorities(self, td_errors: np.ndarray) -> None:
        """New priorities for the last draw's transitions (a slot drawn twice keeps one)."""
        priorities = (np.abs(td_errors) + 1e-6) ** self.alpha
        self.priorities[self.slots] = priorities
        self.max_priority = max(self.max_priority, float(priorities.max()))


COUNT_CELLS = 20  # --count-bonus's grid: cells per observation dimension, between its bounds


class CountBonus:
    """--count-bonus BETA, count-based exploration (MBIE-EB's bonus, Strehl & Littman, 2008;
    with DQN, Tang et al., 2017): BETA / sqrt(n), n the visits so far to the state's cell of a
    grid over the observation space, this one included. The agent stores the reward plus this,
    so a state seldom reached pays more and the Q-values lead the greedy policy on to new
    ground; the bonus fades as the counts grow. train()'s log keeps the env's reward."""

    def __init__(self, beta: float, space):
        self.beta, self.low = beta, space.low
        self.cell_size = (space.high - space.low) / COUNT_CELLS
        self.visits: collections.Counter = collections.Counter()  # visits per cell

    def __call__(self, state: np.ndarray) -> float:
        cell = tuple(((state - self.low) // self.cell_size).astype(np.int64))
        self.visits[cell] += 1
        return self.beta / math.sqrt(self.visits[cell])


# =============================================================================================
# The seam. Everything below is the run harness: it watches train() through Callbacks and
# says when to stop; what the agent learns is all above. Here: greedy checks and the snapshot
# kept, logging and the phase clock, the command line and its checks, the results folder's
# lock, TensorFlow's set-up, the outputs, and the entry points.
# =============================================================================================


# ---------------------------------------------------------------------------------------------
# Greedy checks and the snapshot kept
# ---------------------------------------------------------------------------------------------

# What is known of each env's rewards, for the greedy checks: the most that one more step can
# pay, so that a check may stop once its mean can no longer pass (no entry: play every episode
# out; a LunarLander landing pays 100 in one step), and the highest return an episode can reach
# ("perfect": it ends polishing at once). Gymnasium's spec gives the solve line, not these.
STEP_REWARD_BOUND = {"CartPole-v1": 1.0, "Acrobot-v1": 0.0, "MountainCar-v0": 0.0}
PERFECT_RETURN = {"CartPole-v1": 500.0}

# Each kind of evaluation resets its envs from a fixed seed of its own, so every check of a run
# plays the same episodes: the 10-episode evaluations, the checks, the certifications, the final
# evaluation of the saved snapshot, the GIF's episode (--watch-seed's default is 50,000). Where
# episode i resets from seed + i (every env but CartPole, see evaluate()), at most 5,000 episodes
# a kind keep the ranges apart; CartPole's vector env draws every start from one generator
# seeded with the kind's seed, so its kinds play different streams of starts. Training resets
# from --seed once and then runs on unseeded.
EVAL_SEED, CONFIRM_SEED, CERTIFY_SEED = 10_000, 20_000, 25_000
FINAL_SEED, GIF_SEED = 30_000, 40_000


@dataclasses.dataclass
class Snapshot:
    """A copy of the Q-network's weights at one env step, and how it scored."""

    step: int
    weights: list[np.ndarray] | None
    check: float | None = None  # the mean on the episodes it was chosen on
    certified: float | None = None  # once solved: the mean on episodes no check chose on


class SnapshotSelector:
    """Decides from greedy evaluations when the run is solved, which snapshot of the Q-network
    to keep, and when polishing is over.

    Until solved, an evaluation plays --eval-episodes episodes, and the best one's snapshot is
    kept. One that reaches the env's reward threshold is checked on --confirm-episodes more,
    and passing that check is "solved". Training then goes on ("polishing"), and every
    evaluation is a check on those same --confirm-episodes episodes. A snapshot whose check
    matches or beats the best check so far is then scored on --certify-episodes other episodes,
    which no check chose on ("certified"), and the snapshot kept is the one that certifies best:
    kept for its best check alone, a snapshot would be the luckiest of many noisy scores on the
    same episodes, and do worse on others. Polishing ends at a perfect certification (where the
    env has a known highest return: CartPole's 500), after --polish-patience checks in a row
    that keep nothing new, or after --polish-steps steps.
    """

    def __init__(self, cfg: Config, threshold: float | None, clock: PhaseClock):
        self.cfg, self.threshold, self.clock = cfg, threshold, clock
        self.perfect = PERFECT_RETURN.get(cfg.env)
        self.kept: Snapshot | None = None
        self.best_check = -math.inf  # the best polishing check so far
        self.stale = 0  # polishing checks in a row that kept nothing new
        self.steps_to_solve = self.seconds_to_solve = self.solve_check = None
        self.evaluations: list[tuple] = []  # (env step, score)
        self.lower_bounds: list[int] = []  # steps whose check stopped once it could not pass
        self.certifications: list[tuple] = []  # (env step, check score, certified score)

    @property
    def solved(self) -> bool:
        return self.steps_to_solve is not None

    def evaluate(self, step: int, weights) -> float:
        """Score these weights and keep them if they are the best so far; return the score."""
        cfg = self.cfg
        if self.solved:
            with self.clock.phase("polish_checks"):
                # A check that cannot reach the best one is of no use: stop it early.
                pass_mark = self.best_check
                score = self.score(weights, cfg.confirm_episodes, CONFIRM_SEED, pass_mark)
                self.consider(step, weights, score)
        else:
            pass_mark = self.threshold
            with self.clock.phase("evaluate"):
                score = self.score(weights, cfg.eval_episodes, EVAL_SEED, pass_mark)
            if score > (self.kept.check if self.kept else -math.inf):
                self.kept = Snapshot(step, weights, check=score)
            if pass_mark is not None and score >= pass_mark:
                with self.clock.phase("confirm"):
                    score = self.score(weights, cfg.confirm_episodes, CONFIRM_SEED, pass_mark)
                    print(f"step {step}: {cfg.confirm_episodes}-episode check {score:.1f}")
                    if score >= pass_mark:
                        self.solve(step, weights, score)
        self.evaluations.append((step, score))
        if cfg.env in STEP_REWARD_BOUND and pass_mark is not None and score < pass_mark:
            self.lower_bounds.append(step)  # it may have stopped early: the score is a bound
        return score

    def solve(self, step: int, weights, check: float) -> None:
        self.steps_to_solve, self.solve_check = step, check
        self.seconds_to_solve = time.perf_counter() - self.clock.start
        self.kept = None  # from here on only certified snapshots are kept
        self.consider(step, weights, check)
        print(f"solved at step {step}; polishing for up to {self.cfg.polish_steps} more")

    def consider(self, step: int, weights, check: float) -> None:
        """After a check once solved: certify the snapshot if its check matches or beats the
        best, and keep it if it certifies better than the kept one."""
        self.stale += 1
        if check < self.best_check:
            return
        self.best_check = check
        kept = self.kept.certified if self.kept else None
        certified = self.score(weights, self.cfg.certify_episodes, CERTIFY_SEED, kept)
        self.certifications.append((step, check, certified))
        if kept is None or certified > kept:
            self.kept = Snapshot(step, weights, check=check, certified=certified)
            self.stale = 0
            print(f"step {step}: check {check:.1f}, certified on other episodes {certified:.1f}")

    def score(self, weights, episodes: int, seed: int, pass_mark=None) -> float:
        """The mean greedy return; a lower bound below `pass_mark` (the check was cut short)."""
        return float(evaluate(weights, self.cfg.env, episodes, seed, pass_mark).mean())

    def polish_end(self, step: int) -> str | None:
        """Why polishing is over, or None while it goes on (or before the solve)."""
        if not self.solved:
            return None
        if self.perfect is not None and self.kept.certified >= self.perfect:
            return "perfect"
        if self.cfg.polish_patience and self.stale >= self.cfg.polish_patience:
            return "patience"
        if step >= self.steps_to_solve + self.cfg.polish_steps:
            return "polish_steps"
        return None


class RunMonitor(Callbacks):
    """The harness's side of train(): the episode log and progress lines, the phase clock,
    Ctrl-C, and the snapshot selector. result() gives the run's record."""

    def __init__(
        self, cfg: Config, threshold, clock: PhaseClock, stop: StopFlag, weights, tensorboard=None
    ):
        self.selector = SnapshotSelector(cfg, threshold, clock)
        self.log = TrainingLog(cfg, tensorboard)
        self.clock, self.stop = clock, stop
        self.stop_reason, self.replays = "max_steps", 0
        # What the checks see and what is saved: the weights, or with --average-steps their mean
        self.checked = WeightAverage(weights, cfg) if cfg.average_steps else weights
        self.start = time.perf_counter()
        clock.switch("collect")

    def on_replay(self, step: int, loss: float, weights) -> None:
        if self.replays == 0:
            self.clock.rename("compile")  # the first replay compiles it: this step's seconds
        self.replays += 1
        self.log.loss(step, loss)
        if isinstance(self.checked, WeightAverage):
            self.checked.add(weights)
        else:
            self.checked = weights

    def on_divergence(self, step: int) -> None:
        self.stop_reason = "diverged"
        print(
            f"step {step}: training diverged (the loss or a weight is no longer a finite "
            "number); stopping (try a lower --learning-rate)"
        )

    def on_evaluation(self, step: int, weights) -> None:
        score = self.selector.evaluate(step, self.checked_weights())
        self.log.evaluation(step, score)

    def checked_weights(self) -> list[np.ndarray]:
        if isinstance(self.checked, WeightAverage):
            return self.checked.mean
        return self.checked

    def on_step(self, step: int, reward: float, episode_over: bool, epsilon: float) -> bool:
        self.log.reward(reward)
        if episode_over:
            self.log.end_episode(step, epsilon)
        solved = self.selector.solved
        self.clock.switch("polish" if solved else "learn" if self.replays else "collect")
        self.log.progress(step, epsilon)
        if self.selector.polish_end(step) is not None:
            return True
        if self.stop.requested:
            self.stop_reason = "interrupted"
            return True
        return False

    def result(self, step: int, latest_weights) -> dict:
        """The run's record: why it stopped, the solve, the snapshot kept and the history."""
        self.clock.switch("after_training")
        selector, stop_reason = self.selector, self.stop_reason
        kept = selector.kept
        if kept is None:  # stopped before any evaluation
            # Keep the latest weights, unless training diverged: then there is no snapshot
            # that was ever checked, and no model is better than an unchecked one.
            kept = Snapshot(step, None if stop_reason == "diverged" else latest_weights)
        polish_end = selector.polish_end(step) or (stop_reason if selector.solved else None)
        if selector.solved and stop_reason == "max_steps":
            stop_reason = "solved"  # polished to the end, or out of steps
        now = time.perf_counter()
        return {
            "stop_reason": stop_reason,
            "polish_end": polish_end,  # perfect, patience, polish_steps, max_steps, ...
            "steps": step,
            "steps_to_solve": selector.steps_to_solve,
            "seconds_to_solve": selector.seconds_to_solve,
            "solve_check": selector.solve_check,  # the first passing long check's score
            # training after the solve, its checks included
            "polish_seconds": now - self.clock.start - selector.seconds_to_solve
            if selector.solved
            else None,
            "kept": kept,
            "evaluations": selector.evaluations,
            "lower_bounds": selector.lower_bounds,
            "certifications": selector.certifications,
            "threshold": selector.threshold,
            "episodes": self.log.episodes,
            "train_seconds": now - self.start,
        }


class WeightAverage:
    """--average-steps N: the checks and the saved model see an exponential moving average of
    the weights over about N env steps, not the latest weights (Izmailov et al.'s weight
    averaging, 2018). The agent learns as it would without it: only what is judged and kept
    changes. (Not the target network's soft update, which SB3 and CleanRL call Polyak's.)"""

    def __init__(self, weights: list[np.ndarray], cfg: Config):
        self.mean = weights
        self.keep = 1.0 - cfg.train_every / cfg.average_steps  # per replay

    def add(self, weights: list[np.ndarray]) -> None:
        pairs = zip(self.mean, weights, strict=True)
        self.mean = [self.keep * mean + (1.0 - self.keep) * w for mean, w in pairs]


def monitored_training(agent: DQNAgent, stop: StopFlag, clock=None, tensorboard=None) -> dict:
    """train() with the harness watching; returns RunMonitor.result()."""
    clock = clock or PhaseClock()
    threshold = agent.env.spec.reward_threshold
    monitor = RunMonitor(agent.cfg, threshold, clock, stop, agent.weights, tensorboard)
    step = train(agent, agent.cfg, monitor)
    return monitor.result(step, monitor.checked_weights())


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

    def loss(self, step: int, loss: float) -> None:
        if self.tensorboard:
            self.tensorboard.scalar("train/loss", loss, step)

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


MOVING_AVERAGE = 20  # episodes in the plot's and the progress line's running mean


class PhaseClock:
    """Wall seconds per phase of a run (imports, compile, learning, checks, writing...), for
    summary.json. Every second goes to exactly one phase: a nested phase pauses the one around
    it, switch() closes the current one's time and names the next, and rename() gives the time
    since the last change to another name."""

    def __init__(self, start: float | None = None):
        self.start = time.perf_counter() if start is None else start  # seconds count from here
        self.seconds: dict[str, float] = {}
        self.stack, self.mark = ["startup"], self.start

    def _charge(self) -> None:
        now = time.perf_counter()
        self.seconds[self.stack[-1]] = self.seconds.get(self.stack[-1], 0.0) + now - self.mark
        self.mark = now

    def switch(self, name: str) -> None:
        self._charge()
        self.stack[-1] = name

    def rename(self, name: str) -> None:
        self.stack[-1] = name

    @contextlib.contextmanager
    def phase(self, name: str):
        """Charge the time inside to `name`."""
        self._charge()
        self.stack.append(name)
        try:
            yield
        finally:
            self._charge()
            self.stack.pop()


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
# Greedy episodes: evaluation and recording
# ---------------------------------------------------------------------------------------------


def evaluate(weights, env_id: str, episodes: int, seed: int, pass_mark=None) -> np.ndarray:
    """Greedy returns of `episodes` episodes, run side by side, all fixed by `seed`.

    CartPole has a NumPy-vectorised env, which steps all of them at once and draws every
    episode's start from one generator seeded with `seed`. Other envs reset episode i from
    seed + i, as an env alone would, and step one
    by one in Python, so only the episodes still running step: in a vector env every one would
    step (or reset) until the longest ended (results/benchmark.md measures the difference).
    With `pass_mark`, and where STEP_REWARD_BOUND knows the most a step of `env_id` can pay,
    stop as soon as the mean can no longer reach the pass mark (unfinished episodes keep what
    they scored so far, a lower bound): a failing check then costs a few steps, not hundreds.
    """
    import gymnasium as gym

    spec = gym.spec(env_id)
    bound = STEP_REWARD_BOUND.get(env_id) if pass_mark is not None else None
    vector = spec.vector_entry_point is not None
    envs = gym.make_vec(env_id, num_envs=episodes) if vector else []
    try:
        if vector:
            obs, _ = envs.reset(seed=seed)
        else:
            for _ in range(episodes):  # one at a time: those made are closed if one fails
                envs.append(gym.make(env_id))
            obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)])
        returns = np.zeros(episodes)
        running = np.ones(episodes, dtype=bool)
        for t in range(1, spec.max_episode_steps + 1):
            if vector:  # envs reset themselves after an episode ends: only the first counts
                actions = np.argmax(q_values(weights, obs), axis=1)
                obs, rewards, terminated, truncated, _ = envs.step(actions)
                returns += np.where(running, rewards, 0.0)
                running &= ~(terminated | truncated)
            else:
                live = np.flatnonzero(running)
                actions = np.argmax(q_values(weights, obs[live]), axis=1)
                for i, action in zip(live, actions, strict=True):
                    obs[i], reward, terminated, truncated, _ = envs[i].step(int(action))
                    returns[i] += reward
                    running[i] = not (terminated or truncated)
            if not running.any():
                break
            steps_left = spec.max_episode_steps - t
            best_to_come = running.sum() * bound * steps_left if bound is not None else 0.0
            if bound is not None and returns.sum() + best_to_come < pass_mark * episodes:
                break
        return returns
    finally:
        for env in [envs] if vector else envs:
            env.close()


def half_size(frame: np.ndarray) -> np.ndarray:
    """Average 2x2 pixel blocks: a quarter of the pixels for the slow GIF encoder, and the
    1-pixel track line stays visible."""
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
        obs, _ = env.reset(seed=seed)
        frames, total, done = [half_size(env.render())], 0.0, False
        while not done:
            action = int(np.argmax(q_values(weights, obs)))
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
            frames.append(half_size(env.render()))
        return frames, total, env.metadata.get("render_fps", 50)
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
    if not all(np.isfinite(w).all() for w in model.get_weights()):
        raise ValueError("refusing to save a Q-network with non-finite weights")  # a bug if seen
    with atomic_path(path) as tmp:
        model.save(tmp)


def moving_average(values, window: int) -> np.ndarray:
    """Mean of the last `window` values at each point (fewer at the start)."""
    values = np.asarray(values, dtype=float)
    sums = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    return (sums[1:] - sums[np.arange(1, len(values) + 1) - counts]) / counts


def plot_rewards(path: Path, run: dict, title: str) -> None:
    """Each episode's return and their moving mean; the greedy evaluations, those that stopped
    once they could not pass drawn hollow (each is a lower bound, not the agent's score); the
    solve; and the snapshot saved, at its certified score."""
    import matplotlib

    matplotlib.use("Agg")  # headless: no window, no display needed
    import matplotlib.pyplot as plt

    episodes, threshold = run["episodes"], run["threshold"]
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
    bounds = set(run["lower_bounds"])
    hollow = {"color": "tab:green", "mfc": "none", "alpha": 0.6}
    for cut_short, style, label in (
        (False, {"color": "tab:green"}, "greedy evaluation: mean return"),
        (True, hollow, "evaluation stopped once it could not pass: at least this"),
    ):
        points = [e for e in run["evaluations"] if (e[0] in bounds) == cut_short]
        if points:
            x, y = zip(*points, strict=True)
            ax.plot(x, y, "o", ms=4, label=label, **style)
    kept = run["kept"]
    if kept.weights is not None and kept.check is not None:
        score = kept.certified if kept.certified is not None else kept.check
        label = f"model saved (step {kept.step:,}): {score:.1f}"
        ax.plot([kept.step], [score], "*", color="tab:orange", ms=14, mec="k", label=label)
    if threshold is not None:
        ax.axhline(threshold, color="tab:red", ls="--", lw=1, label=f"solved ({threshold:g})")
    if run["steps_to_solve"] is not None:
        ax.axvline(run["steps_to_solve"], color="gray", ls=":", lw=1, label="solved; polishing")
    ax.set(title=title, xlabel="env steps", ylabel="return per episode")
    ax.grid(alpha=0.3)
    # Below the axes: inside, it would cover the curve of some env or other.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=3, fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# The command line, and bad input refused before any work starts
# ---------------------------------------------------------------------------------------------

MAX_WEIGHTS = 10_000_000  # per network; training holds five copies (Adam's moments, the target)
MAX_MEMORY_BYTES = 4 * 2**30  # the replay memory's rows; the machines here have 24 GiB


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


class ConfigError(ValueError):
    """Bad input: reported as one line, exit code 2, before any work starts."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of argparse's usage block
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


RETIRED_FLAGS = {
    "--episodes": "--episodes is now --watch-episodes",
    "--polish-lr-factor": "--polish-lr-factor is gone: its screen found no env it helped",
}


def parse_args(argv=None) -> Config:
    """The command line over the --env's row of ENV_SETTINGS over the defaults."""
    others = ", ".join(env for env in ENV_SETTINGS if env != Config.env)
    parser = _Parser(
        prog="dqn_cartpole.py",
        description="Train a DQN on CartPole-v1 with TensorFlow/Keras; see the README. The "
        f"defaults shown are CartPole-v1's; --env {others} start from settings of their own "
        "(ENV_SETTINGS in the script), and any flag given overrides them.",
    )
    for field in dataclasses.fields(Config):
        # Only the flags given land in the namespace, so that they can override the env's row.
        help, shown = field.metadata["help"], type(field.default) not in (type(None), bool)
        if field.type == "bool":  # on by default: --name and --no-name; off: --name alone
            action = argparse.BooleanOptionalAction if field.default else "store_true"
            parser.add_argument(
                flag(field.name), action=action, default=argparse.SUPPRESS, help=help
            )
        else:
            kind = {"int": int, "float": float}.get(field.type, str)
            parser.add_argument(
                flag(field.name),
                type=kind,
                default=argparse.SUPPRESS,
                choices=field.metadata["choices"],
                help=f"{help} (default: {field.default})" if shown else help,
            )
    argv = sys.argv[1:] if argv is None else argv
    for arg in argv:
        if arg.split("=", 1)[0] in RETIRED_FLAGS:
            parser.error(RETIRED_FLAGS[arg.split("=", 1)[0]])
    given = vars(parser.parse_args(argv))
    env = given.get("env", Config.env)
    return Config(**{**ENV_SETTINGS.get(env, {}), **given})


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
        (0 <= cfg.priority_alpha <= 1, "--priority-alpha must be in [0, 1]"),
        (0 <= cfg.priority_beta <= 1, "--priority-beta must be in [0, 1]"),
        (0 <= cfg.param_noise < 1, "--param-noise must be in [0, 1)"),
        (cfg.count_bonus >= 0, "--count-bonus must be >= 0"),
        (
            cfg.average_steps == 0 or cfg.average_steps >= cfg.train_every,
            "--average-steps must be 0 or at least --train-every",
        ),
        (
            not cfg.quantiles or not (cfg.dueling or cfg.prioritized),
            "--quantiles works alone: not with --dueling or --prioritized",
        ),
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
    sizes = check_env(cfg.env, grid=cfg.count_bonus > 0)
    check_hidden(cfg.hidden, sizes)
    memory_bytes = cfg.memory_size * row_width(sizes[0]) * 4
    if memory_bytes > MAX_MEMORY_BYTES:
        raise ConfigError(
            f"--memory-size {cfg.memory_size:,}: {memory_bytes / 2**30:,.1f} GiB of rows for "
            f"{cfg.env}; at most {MAX_MEMORY_BYTES / 2**30:g} GiB"
        )
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


def check_env(env_id: str, grid: bool = False) -> tuple[int, int]:
    """Refuse an env this DQN cannot train on (with `grid`, --count-bonus's: one whose
    observations are bounded); return its observation size and action count."""
    import gymnasium as gym

    try:
        env = gym.make(env_id)
    except gym.error.DependencyNotInstalled as exc:  # e.g. LunarLander without Box2D
        raise ConfigError(
            f"--env {env_id!r} needs a package that is not installed ({first_line(exc)}); "
            "pip install -r requirements.txt installs them all"
        ) from None
    except Exception as exc:  # gymnasium raises several error types for unknown or broken ids
        raise ConfigError(f"--env {env_id!r} cannot be made: {first_line(exc)}") from None
    try:
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise ConfigError(f"--env {env_id!r} has no discrete actions ({env.action_space})")
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise ConfigError(f"--env {env_id!r} needs a flat Box observation, not {space}")
        if env.spec is None or env.spec.max_episode_steps is None:
            raise ConfigError(f"--env {env_id!r} has no time limit, so episodes may never end")
        if grid and not np.isfinite(space.high - space.low).all():
            raise ConfigError(
                f"--count-bonus needs bounded observations for its grid; {env_id}'s are unbounded"
            )
        return int(space.shape[0]), int(env.action_space.n)
    finally:
        env.close()


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def check_model_file(path: str, env_id: str, sizes: tuple[int, int]) -> None:
    """Check a .keras file from its config.json, without TensorFlow: a Sequential stack of Dense
    layers, ReLU inside and linear at the end (what q_values() computes), mapping the env's
    observation size to its action count. keras.saving.load_model(safe_mode=True) does the rest.
    """
    file = Path(path)
    try:
        if not file.is_file():
            raise ConfigError(f"--watch {path!r}: no such file")
        config = read_model_config(file, path)
    except OSError as exc:  # a name the OS refuses, a file it cannot read
        raise ConfigError(f"--watch {path!r}: {os_reason(exc)}") from None
    check_model_config(config, path, env_id, sizes)


def read_model_config(file: Path, path: str) -> dict:
    """What check_model_config() looks at in a .keras file's config.json."""
    if not zipfile.is_zipfile(file):
        raise ConfigError(f"--watch {path!r}: not a Keras model (.keras files are zip archives)")
    with zipfile.ZipFile(file) as archive:
        if "config.json" not in archive.namelist():
            raise ConfigError(f"--watch {path!r}: not a Keras model (no config.json inside)")
        try:
            config = json.loads(archive.read("config.json"))
            layers = config["config"]["layers"]
            dense = [layer["config"] for layer in layers if layer["class_name"] == "Dense"]
            return {
                "class_name": config.get("class_name"),
                "kinds": [layer["class_name"] for layer in layers],
                "activations": [layer["activation"] for layer in dense],
                "maps": (
                    layers[0]["config"]["batch_shape"][-1],
                    dense[-1]["units"] if dense else None,
                ),
            }
        except (
            ValueError,
            UnicodeDecodeError,
            LookupError,
            TypeError,
            AttributeError,
            zipfile.BadZipFile,  # a CRC that does not match: the archive is damaged
            zlib.error,
            EOFError,
        ):
            reason = "not a Keras model (damaged config.json)"
            raise ConfigError(f"--watch {path!r}: {reason}") from None


def check_model_config(config: dict, path: str, env_id: str, sizes: tuple[int, int]) -> None:
    kinds, activations, maps = config["kinds"], config["activations"], config["maps"]
    if (
        config["class_name"] != "Sequential"
        or kinds != ["InputLayer"] + ["Dense"] * (len(kinds) - 1)
        or not activations
        or activations != ["relu"] * (len(activations) - 1) + ["linear"]
    ):
        raise ConfigError(f"--watch {path!r}: not a Q-network of Dense layers like ours")
    if maps != sizes:
        raise ConfigError(
            f"--watch {path!r}: the model maps {maps[0]} -> {maps[1]}, "
            f"but {env_id} needs {sizes[0]} -> {sizes[1]}"
        )


# ---------------------------------------------------------------------------------------------
# The results folder: made, proved writable and locked before any work starts
# ---------------------------------------------------------------------------------------------

LOCK_NAME = ".dqn_cartpole.lock"  # in --results-dir while a run uses it; holds the run's pid


@contextlib.contextmanager
def results_folder(folder: Path):
    """Make `folder` ready before any work starts, and keep it to this run until the end.

    The folder is created if need be and proved writable by a probe file, and a lock file
    inside it (an flock, which the kernel drops when its process dies, even by kill -9) turns
    away a second run. Any OS error here is bad input: nothing is left that was not there. Bad
    input found later (a --watch file that Keras refuses) also removes the folders made here.
    """
    missing, lock = [], None
    try:
        try:
            # exists() itself raises for a name the OS refuses (too long, say): bad input too.
            missing = [p for p in (folder, *folder.parents) if not p.exists()]
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


def xla_cache_folder() -> Path:
    """DQN_CARTPOLE_CACHE, or dqn_cartpole/ in the user's cache folder (XDG_CACHE_HOME or
    ~/.cache): where XLA keeps the compiled replay between runs."""
    if os.environ.get("DQN_CARTPOLE_CACHE"):
        return Path(os.environ["DQN_CARTPOLE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dqn_cartpole"


def use_xla_cache(folder: Path) -> None:
    """Point XLA's persistent compile cache at `folder` (read when TensorFlow first compiles).

    The first run with a new network shape or TensorFlow version compiles and stores the
    executable; later runs load it instead of compiling. A folder that cannot be made only
    costs that time, so it is a note, not an error.
    """
    flags = os.environ.get("TF_XLA_FLAGS", "")
    if "tf_xla_persistent_cache_directory" in flags:
        return  # the user chose a cache already
    try:
        if any(c.isspace() for c in str(folder)):  # TF_XLA_FLAGS is split at white space
            raise OSError(0, "white space in the path")
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"note: compiling without a cache ({folder}: {os_reason(exc)})")
        return
    os.environ["TF_XLA_FLAGS"] = f"{flags} --tf_xla_persistent_cache_directory={folder}".strip()


def setup_tensorflow() -> None:
    """Import TensorFlow quietly, on one thread and deterministic (DQNAgent seeds it)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # TensorFlow's C++ start-up notes (oneDNN, CUDA) bypass TF_CPP_MIN_LOG_LEVEL and go straight
    # to file descriptor 2, so that descriptor is parked on /dev/null while the import runs.
    sys.stderr.flush()
    saved_stderr = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import keras  # noqa: F401 (imported here so that its start-up notes are parked too)
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


# ---------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------

KEPT_ON_FAILURE = ("model.keras", "episodes.csv", "summary.json")  # written elsewhere if need be


def run_training(cfg: Config, clock: PhaseClock) -> int:
    """Train, then score the kept snapshot on unseen episodes, record it and write the outputs."""
    results = Path(cfg.results_dir)
    print(f"Training a DQN on {cfg.env} (seed {cfg.seed}); outputs go to {results}/", flush=True)
    facts = run_facts()  # before anything is written, so that the commit's state is the run's
    with clock.phase("import_tensorflow"):
        if cfg.xla_cache and not cfg.no_xla:
            use_xla_cache(xla_cache_folder())
        setup_tensorflow()
    with clock.phase("build_agent"):
        agent = make_agent(cfg)
    if not cfg.no_gifs:
        with clock.phase("before_gif"):
            frames, score, fps = record_episode(agent.weights, cfg.env, GIF_SEED)
            save_gif(results / "before.gif", frames, fps)
        print(f"untrained agent: return {score:.0f}")

    tensorboard = TensorBoardLog(results / "tensorboard") if cfg.tensorboard else None
    stop = StopFlag()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        run = monitored_training(agent, stop, clock, tensorboard)
        final, gif = final_check(cfg, run, clock)
        outputs = training_outputs(agent, run, final, gif, facts, clock)
        write_outputs(results, outputs, keep=KEPT_ON_FAILURE, clock=clock)
    finally:
        if tensorboard:
            tensorboard.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(f"{verdict(run)}; {time.perf_counter() - clock.start:.1f} s in all")
    if run["stop_reason"] == "interrupted":
        return 128 + stop.signal
    return 1 if run["stop_reason"] == "diverged" else 0


def verdict(run: dict) -> str:
    solved = run["steps_to_solve"] is not None
    return f"solved in {run['steps_to_solve']} steps" if solved else run["stop_reason"]


def final_check(cfg: Config, run: dict, clock: PhaseClock):
    """Score the kept snapshot on --confirm-episodes unseen episodes and record its GIF."""
    kept = run["kept"]
    if kept.weights is None:
        print("no model saved: training diverged before any snapshot was checked")
        return None, None
    with clock.phase("final_evaluation"):
        final = evaluate(kept.weights, cfg.env, cfg.confirm_episodes, FINAL_SEED)
    print(
        f"saved snapshot (step {kept.step}): {cfg.confirm_episodes} greedy episodes on "
        f"unseen seeds: mean {final.mean():.1f}, std {final.std():.1f}, min {final.min():.0f}"
    )
    if run["stop_reason"] == "diverged":
        print(f"training diverged; the model saved is the snapshot of step {kept.step}")
    gif = None
    if not cfg.no_gifs and run["stop_reason"] != "interrupted":
        with clock.phase("after_gif"):
            gif = record_episode(kept.weights, cfg.env, GIF_SEED)
        print(f"trained agent: return {gif[1]:.0f} (the episode from seed {GIF_SEED})")
    return final, gif


def run_facts() -> dict:
    """When, where and from which commit a run was made, so that a results folder names itself.
    The commit is None outside a git checkout; `dirty` says the script differed from it."""
    import datetime
    import platform
    import subprocess

    facts = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "commit": None,
        "dirty": None,
    }
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as cpuinfo:
            names = [
                line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")
            ]
        facts["cpu"] = names[0] if names else facts["cpu"]
    here = str(Path(__file__).resolve().parent)
    git = ["git", "-C", here]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(
            [*git, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if head.returncode == 0:
            facts["commit"] = head.stdout.strip()
            status = [
                *git,
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                Path(__file__).name,
            ]
            changed = subprocess.run(status, capture_output=True, text=True, timeout=5)
            facts["dirty"] = bool(changed.stdout.strip())
    return facts


def summarize(cfg: Config, run: dict, final, gif, facts: dict, clock: PhaseClock) -> dict:
    """summary.json: the run's outcome, its timings, every evaluation and the settings."""
    import gymnasium
    import keras
    import tensorflow as tf

    kept = run["kept"]
    final_eval = None
    if final is not None:
        final_eval = {
            "episodes": len(final),
            "first_reset_seed": FINAL_SEED,
            "mean": float(final.mean()),
            "std": float(final.std()),
            "min": float(final.min()),
        }
    return {
        "env": cfg.env,
        "seed": cfg.seed,
        "solved": run["steps_to_solve"] is not None,
        "stop_reason": run["stop_reason"],
        "interrupted": run["stop_reason"] == "interrupted",
        "model_saved": kept.weights is not None,
        "steps_to_solve": run["steps_to_solve"],
        "seconds_to_solve": run["seconds_to_solve"],
        "solve_check_mean": run["solve_check"],
        "polish_end": run["polish_end"],
        "steps": run["steps"],
        "episodes": len(run["episodes"]),
        "saved_snapshot_step": kept.step,
        "saved_snapshot_check_mean": kept.check,  # on the check episodes it was chosen on
        "saved_snapshot_certified_mean": kept.certified,
        "polish_seconds": run["polish_seconds"],
        "final_eval": final_eval,
        "gif_return": gif[1] if gif else None,
        "train_seconds": run["train_seconds"],
        "total_seconds": time.perf_counter() - clock.start,  # up to this file's writing
        # Wall seconds per phase, each second charged to one phase, from just after the
        # interpreter and NumPy started; "write_summary" is this file, not yet written.
        "phase_seconds": {name: round(t, 4) for name, t in clock.seconds.items()},
        "evaluations": run["evaluations"],
        # steps of the evaluations that stopped once they could no longer pass: lower bounds
        "evaluations_lower_bounds": run["lower_bounds"],
        "certifications": run["certifications"],  # (step, check, certified): lower bounds
        "run": facts,
        "versions": {
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "gymnasium": gymnasium.__version__,
            "numpy": np.__version__,
        },
        "config": dataclasses.asdict(cfg),
    }


def training_outputs(agent: DQNAgent, run: dict, final, gif, facts: dict, clock) -> dict:
    """What to write, in order: the model first, since it is what the run was for, and
    summary.json last, so that it can say how long writing the others took."""
    cfg = agent.cfg
    title = f"DQN on {cfg.env}, seed {cfg.seed}: {verdict(run)}"
    outputs = {}
    if run["kept"].weights is not None:  # the model saved is the snapshot kept
        network = agent.network_to_save(run["kept"].weights)
        outputs["model.keras"] = lambda path: save_model(path, network)
    outputs["episodes.csv"] = lambda path: save_episodes_csv(path, run["episodes"])
    outputs["rewards.png"] = lambda path: plot_rewards(path, run, title)
    if gif:
        outputs["after.gif"] = lambda path: save_gif(path, gif[0], gif[2])
    outputs["summary.json"] = lambda path: save_json(
        path, summarize(cfg, run, final, gif, facts, clock)
    )
    return outputs


def write_outputs(folder: Path, outputs: dict, keep: tuple, clock=None) -> None:
    """Write each output into `folder` in order. If one fails, write the outputs named in
    `keep` to a new temporary folder instead, and raise a WriteError that names both."""
    for name, write in outputs.items():
        try:
            with clock.phase("write_" + name.split(".")[0]) if clock else contextlib.nullcontext():
                write(folder / name)
        except WriteError as exc:
            fallback = Path(tempfile.mkdtemp(prefix="dqn_cartpole-"))
            kept = [name for name in keep if name in outputs]
            try:
                for name in kept:
                    outputs[name](fallback / name)
            except WriteError as again:
                raise WriteError(f"{exc}; and the fallback failed too: {again}") from None
            raise WriteError(f"{exc}; {', '.join(kept)} are saved in {fallback}/") from None


def run_watch(cfg: Config) -> int:
    """Evaluate a saved Q-network (its config.json was checked by validate()) and record it."""
    setup_tensorflow()
    import keras

    try:
        model = keras.saving.load_model(cfg.watch, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types for a damaged or foreign file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"--watch {cfg.watch!r}: cannot load it as a Keras model: {reason}"
        ) from None
    weights = model.get_weights()
    episodes = cfg.watch_episodes
    returns = evaluate(weights, cfg.env, episodes, cfg.watch_seed)
    print(
        f"{episodes} greedy episodes of {cfg.watch} (reset seeds {cfg.watch_seed}-"
        f"{cfg.watch_seed + episodes - 1}): mean {returns.mean():.1f}, "
        f"std {returns.std():.1f}, min {returns.min():.0f}"
    )
    if not cfg.no_gifs:
        frames, score, fps = record_episode(weights, cfg.env, GIF_SEED)
        save_gif(Path(cfg.results_dir) / "watch.gif", frames, fps)
        print(f"recorded episode: return {score:.0f} (the episode from seed {GIF_SEED})")
    return 0


def main(argv=None) -> int:
    clock = PhaseClock(PROCESS_START)
    cfg = parse_args(argv)
    clock.switch("validate")
    try:
        validate(cfg)
        if cfg.watch and cfg.no_gifs:  # nothing to write
            return run_watch(cfg)
        with results_folder(Path(cfg.results_dir)):
            return run_watch(cfg) if cfg.watch else run_training(cfg, clock)
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
