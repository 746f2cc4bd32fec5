"""Fast tests of the pieces: memory, targets, epsilon, network, replay, outputs."""

import dataclasses
import json
import math
import time
import types

import gymnasium as gym
import numpy as np
import pytest

import dqn_cartpole as dqn

# ---- Replay memory ---------------------------------------------------------------------------


def stored(memory):
    """The stored rows, oldest first for FIFO and in slot order otherwise (a copy)."""
    return np.roll(memory.rows[: len(memory)], -memory.oldest, axis=0)


def fill(memory, count, start=0):
    for i in range(start, start + count):
        state = np.full(4, i, dtype=np.float32)
        memory.store(state, i % 2, 1.0, state + 0.5, i % 3 == 0, 0.9)


def test_memory_appends_until_full():
    memory = dqn.ReplayMemory(capacity=10, n_observations=4, rng=np.random.default_rng(0))
    fill(memory, 7)
    assert len(memory) == 7
    assert list(stored(memory)[:, 0]) == list(range(7))  # in order, nothing replaced


def test_memory_when_full_overwrites_one_random_slot_and_never_grows():
    memory = dqn.ReplayMemory(capacity=10, n_observations=4, rng=np.random.default_rng(0))
    fill(memory, 10)
    replaced_slots = set()
    for i in range(100, 140):
        before = list(stored(memory)[:, 0])
        fill(memory, 1, start=i)
        after = list(stored(memory)[:, 0])
        assert len(memory) == 10
        changed = [slot for slot in range(10) if before[slot] != after[slot]]
        assert len(changed) == 1 and after[changed[0]] == i
        replaced_slots.add(changed[0])
    # A deque(maxlen) alone would drop the oldest (slot 0) and shift; here any slot can go.
    assert len(replaced_slots) > 5


def test_memory_sample_returns_stacked_minibatches_of_stored_transitions():
    memory = dqn.ReplayMemory(capacity=50, n_observations=4, rng=np.random.default_rng(1))
    fill(memory, 50)
    states, actions, rewards, next_states, terminated, discounts = memory.sample(3, 8)
    assert states.shape == next_states.shape == (3, 8, 4)
    assert actions.shape == rewards.shape == terminated.shape == discounts.shape == (3, 8)
    assert actions.dtype == np.int32 and states.dtype == np.float32
    ids = states[..., 0].astype(int)  # every state was np.full(4, i)
    np.testing.assert_array_equal(actions, ids % 2)
    np.testing.assert_array_equal(next_states, states + 0.5)
    np.testing.assert_array_equal(terminated, (ids % 3 == 0).astype(np.float32))
    np.testing.assert_array_equal(rewards, 1.0)
    np.testing.assert_array_equal(discounts, np.float32(0.9))


# ---- Targets ---------------------------------------------------------------------------------


def test_td_target_is_the_reward_alone_at_a_termination_and_bootstraps_otherwise():
    rewards, next_values = np.array([1.0, 1.0, 2.0]), np.array([40.0, 40.0, 10.0])
    terminated, discounts = np.array([1.0, 0.0, 0.0]), np.array([0.95, 0.95, 0.5])
    targets = dqn.td_targets(rewards, next_values, terminated, discounts)
    # A termination (the pole fell) has no future; a truncation (stored as terminated=0) does.
    np.testing.assert_allclose(targets, [1.0, 1.0 + 0.95 * 40.0, 2.0 + 0.5 * 10.0])


def agent_memory_rows(agent):
    rows = stored(agent.memory)
    return {
        "state0": rows[:, 0],
        "action": rows[:, 4],
        "reward": rows[:, 5],
        "terminated": rows[:, 6],
        "next0": rows[:, 7],
        "discount": rows[:, -1],
    }


def remember_episode(agent, length, end):
    """Steps 0..length-1 whose state is [t, 0, 0, 0] and reward t + 1; the last one ends the
    episode as `end` says: "terminated", "truncated" or "running"."""
    for t in range(length):
        last = t == length - 1
        state, next_state = np.full(4, t, np.float32), np.full(4, t + 1, np.float32)
        agent.remember(
            state,
            t % 2,
            t + 1.0,
            next_state,
            last and end == "terminated",
            last and end == "truncated",
        )


@pytest.mark.parametrize("end", ["terminated", "truncated"])
def test_one_step_memory_stores_each_step_with_the_discount_gamma(tensorflow_ready, end):
    agent = dqn.make_agent(dqn.Config(gamma=0.9, n_step=1))
    remember_episode(agent, 3, end)
    rows = agent_memory_rows(agent)
    np.testing.assert_array_equal(rows["state0"], [0, 1, 2])
    np.testing.assert_array_equal(rows["next0"], [1, 2, 3])
    np.testing.assert_array_equal(rows["action"], [0, 1, 0])
    np.testing.assert_array_equal(rows["reward"], [1, 2, 3])
    np.testing.assert_allclose(rows["discount"], 0.9)
    # Only a real termination marks the last transition; a time limit does not.
    np.testing.assert_array_equal(rows["terminated"], [0, 0, 1 if end == "terminated" else 0])


@pytest.mark.parametrize("end", ["terminated", "truncated"])
def test_n_step_memory_sums_discounted_rewards_and_flushes_at_the_end(tensorflow_ready, end):
    waiting = dqn.make_agent(dqn.Config(gamma=0.5, n_step=3))
    remember_episode(waiting, 2, "running")
    assert len(waiting.memory) == 0  # two steps in: still waiting for a third reward
    agent = dqn.make_agent(dqn.Config(gamma=0.5, n_step=3))
    remember_episode(agent, 5, end)
    rows = agent_memory_rows(agent)
    # Rewards 1..5: from t, up to three of them discounted by 0.5 each; the last two
    # transitions have only two and one left when the episode ends.
    np.testing.assert_array_equal(rows["state0"], [0, 1, 2, 3, 4])
    np.testing.assert_allclose(rows["reward"], [2.75, 4.5, 6.25, 6.5, 5.0])
    np.testing.assert_array_equal(rows["next0"], [3, 4, 5, 5, 5])
    np.testing.assert_allclose(rows["discount"], [0.125, 0.125, 0.125, 0.25, 0.5])
    ended = 1 if end == "terminated" else 0
    np.testing.assert_array_equal(rows["terminated"], [0, 0, ended, ended, ended])
    assert not agent.recent  # nothing carried into the next episode


gym.register(
    id="ShortCartPole-v1",
    entry_point="gymnasium.envs.classic_control:CartPoleEnv",
    max_episode_steps=20,
    reward_threshold=475.0,
)


SHORT_CARTPOLE_SEED = 0  # one whose untrained agent both drops the pole and reaches the limit


def test_training_loop_stores_truncation_as_not_terminated(tensorflow_ready):
    cfg = dqn.Config(
        env="ShortCartPole-v1",
        seed=SHORT_CARTPOLE_SEED,
        max_steps=600,
        memory_size=600,
        min_observations=1000,
        log_every=10**6,
    )
    agent = dqn.make_agent(cfg)
    run = dqn.monitored_training(agent, dqn.StopFlag())
    rows = stored(agent.memory)
    terminated, next_states = rows[:, 4 + 2], rows[:, 4 + 3 : 4 + 7]
    # CartPole terminates exactly when the next state leaves these bounds.
    fell = (np.abs(next_states[:, 0]) > 2.4) | (np.abs(next_states[:, 2]) > 12 * np.pi / 180)
    np.testing.assert_array_equal(terminated, fell.astype(np.float32))
    ends = np.array([steps for _, steps, _, _ in run["episodes"]])
    lengths = np.diff([0, *ends])
    truncated_ends = ends[(lengths == 20) & ~fell[ends - 1]]
    assert len(truncated_ends) > 3 and fell.sum() > 3  # both kinds of episode end happened
    assert np.all(terminated[truncated_ends - 1] == 0.0)  # the time limit is no termination


# ---- Epsilon ---------------------------------------------------------------------------------


def test_epsilon_decays_every_step_to_its_floor(tensorflow_ready):
    cfg = dqn.Config(epsilon_start=1.0, epsilon_decay=0.99, epsilon_min=0.05)
    agent = dqn.make_agent(cfg)
    for n in range(1, 400):
        agent.decay_epsilon()
        assert math.isclose(agent.epsilon, max(0.05, 0.99**n), rel_tol=1e-9)
    assert agent.epsilon == 0.05


def test_epsilon_greedy_picks_the_argmax_at_zero_and_explores_at_one(tensorflow_ready):
    agent = dqn.make_agent(dqn.Config(epsilon_start=0.0, param_noise=0.0))  # the plain network
    states = np.random.default_rng(0).normal(size=(200, 4)).astype(np.float32)
    greedy = np.argmax(agent.q_network(states).numpy(), axis=1)
    assert set(greedy) == {0, 1}  # the states disagree, so a wrong pick shows
    np.testing.assert_array_equal([agent.get_action(s) for s in states], greedy)
    agent.epsilon = 1.0
    assert {agent.get_action(states[0]) for _ in range(200)} == {0, 1}


# ---- Network ---------------------------------------------------------------------------------


def test_q_network_is_the_seeds_24_12_actions_relu_he_normal_adam_mse(tensorflow_ready):
    import keras

    agent = dqn.make_agent(dqn.Config(hidden="24,12", learning_rate=1e-3))
    model = agent.q_network
    dense = model.layers
    assert [layer.units for layer in dense] == [24, 12, 2]
    assert [layer.activation.__name__ for layer in dense] == ["relu", "relu", "linear"]
    assert all(isinstance(layer.kernel_initializer, keras.initializers.HeNormal) for layer in dense)
    assert isinstance(agent.optimizer, keras.optimizers.Adam)
    assert math.isclose(float(agent.optimizer.learning_rate.numpy()), 1e-3, rel_tol=1e-6)
    assert agent.loss_fn is keras.losses.mean_squared_error
    assert model.input_shape == (None, 4) and model.output_shape == (None, 2)


@pytest.mark.parametrize("hidden", [(24, 12), (64, 64), (16, 8, 4)])
def test_numpy_forward_pass_matches_keras(tensorflow_ready, hidden):
    model = dqn.build_q_network(4, 2, hidden=hidden)
    assert [layer.units for layer in model.layers] == [*hidden, 2]
    states = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    np.testing.assert_allclose(
        dqn.q_values(model.get_weights(), states), model(states).numpy(), rtol=1e-5, atol=1e-5
    )


def test_target_network_starts_equal_and_is_copied_on_update(tensorflow_ready):
    agent = dqn.make_agent(dqn.Config(min_observations=32, batch_size=32, gradient_steps=4))
    for a, b in zip(agent.q_network.get_weights(), agent.target_network.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    fill(agent.memory, 64)
    agent.experience_replay()
    q, target = agent.q_network.get_weights(), agent.target_network.get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(q, target, strict=True))
    agent.update_target_network()
    for a, b in zip(agent.q_network.get_weights(), agent.target_network.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("no_xla", [False, True], ids=["xla", "no-xla"])
@pytest.mark.parametrize("steps, batch", [(3, 8), (8, 3)])
def test_a_replay_takes_gradient_steps_updates_whatever_the_batch_size(
    tensorflow_ready, no_xla, steps, batch
):
    # Adam counts its updates: one per minibatch, gradient_steps of them, not batch_size.
    cfg = dqn.Config(batch_size=batch, gradient_steps=steps, memory_size=64, no_xla=no_xla)
    agent = dqn.make_agent(cfg)
    fill(agent.memory, 64)
    agent.experience_replay()
    agent.experience_replay()
    assert int(agent.optimizer.iterations.numpy()) == 2 * steps


@pytest.mark.parametrize("no_xla", [False, True], ids=["xla", "no-xla"])
def test_experience_replay_fits_q_of_taken_action_to_terminal_reward(tensorflow_ready, no_xla):
    cfg = dqn.Config(
        batch_size=16, gradient_steps=50, learning_rate=1e-2, memory_size=64, no_xla=no_xla
    )
    agent = dqn.make_agent(cfg)
    rng = np.random.default_rng(0)
    states = rng.normal(size=(16, 4)).astype(np.float32)
    for state in states:  # action 0 always, reward 3, always terminal: the target is exactly 3
        agent.memory.store(state, 0, 3.0, state, True, cfg.gamma)
    untouched_before = dqn.q_values(agent.weights, states)[:, 1]
    for _ in range(10):
        agent.experience_replay()
    q = dqn.q_values(agent.weights, states)
    np.testing.assert_allclose(q[:, 0], 3.0, atol=0.3)
    # The NumPy weights used for acting are the trained ones, not a stale copy.
    np.testing.assert_allclose(q, agent.q_network(states).numpy(), rtol=1e-5, atol=1e-5)
    assert not np.allclose(untouched_before, 3.0, atol=0.3)


def test_replay_pulls_only_the_taken_actions_q_value(tensorflow_ready):
    # Every stored transition took action 0, so the loss must not depend on action 1's output:
    # its column of the last layer gets no gradient, and Adam leaves it exactly as it was.
    agent = dqn.make_agent(dqn.Config(batch_size=16, gradient_steps=4, memory_size=64))
    rng = np.random.default_rng(0)
    for state in rng.normal(size=(64, 4)).astype(np.float32):
        agent.memory.store(state, 0, 1.0, state, False, 0.95)
    kernel, bias = (w.copy() for w in agent.q_network.get_weights()[-2:])
    agent.experience_replay()
    new_kernel, new_bias = agent.q_network.get_weights()[-2:]
    np.testing.assert_array_equal(new_kernel[:, 1], kernel[:, 1])
    assert new_bias[1] == bias[1]
    assert not np.array_equal(new_kernel[:, 0], kernel[:, 0])  # action 0's column did move


@pytest.mark.parametrize("broken", ["loss", "weights"])
def test_a_replay_with_either_a_broken_loss_or_broken_weights_is_divergence(
    tensorflow_ready, monkeypatch, broken
):
    # Either alone is divergence: a finite loss can come with weights that overflowed in the
    # very update that followed it, and a NaN loss with weights not yet broken.
    import tensorflow as tf

    agent = dqn.make_agent(small_config(hidden="8", gradient_steps=1))
    fill(agent.memory, 64)
    before = [w.copy() for w in agent.weights]
    size = sum(w.size for w in before)
    loss = float("nan") if broken == "loss" else 0.5
    flat = np.full(size, np.nan if broken == "weights" else 0.25, np.float32)
    monkeypatch.setattr(agent, "_replay", lambda *batches: (tf.constant(loss), tf.constant(flat)))
    assert not agent.diverged
    agent.experience_replay()
    assert agent.diverged
    for kept, old in zip(agent.weights, before, strict=True):
        np.testing.assert_array_equal(kept, old)


def spy_on_training(monkeypatch, agent, evaluations=False):
    """Count env steps as train() takes them; note the step of every target copy, every replay
    and, with `evaluations` (which then all score 0), every evaluation."""
    steps, seen = [0], {"copies": [], "replays": [], "evaluations": []}
    act, copy, replay = agent.get_action, agent.update_target_network, agent.experience_replay

    def counting_act(state):
        steps[0] += 1
        return act(state)

    def noting_copy():
        seen["copies"].append(steps[0])
        copy()

    def noting_replay():
        seen["replays"].append(steps[0])
        return replay()

    def noting_evaluate(weights, env_id, episodes, seed, pass_mark=None):
        seen["evaluations"].append(steps[0])
        return np.zeros(episodes)

    monkeypatch.setattr(agent, "get_action", counting_act)
    monkeypatch.setattr(agent, "update_target_network", noting_copy)
    monkeypatch.setattr(agent, "experience_replay", noting_replay)
    if evaluations:
        monkeypatch.setattr(dqn, "evaluate", noting_evaluate)
    return seen


def small_config(**overrides):
    """A quick run: replay from 32 transitions, no XLA compile, no progress lines, and no
    evaluation unless a test asks for one."""
    settings = dict(
        max_steps=1_300,
        min_observations=32,
        batch_size=32,
        eval_every=10**6,
        log_every=10**6,
        no_xla=True,
    )
    return dqn.Config(**{**settings, **overrides})


def test_target_network_is_copied_every_target_update_every_steps(tensorflow_ready, monkeypatch):
    agent = dqn.make_agent(small_config(target_update_every=300))
    seen = spy_on_training(monkeypatch, agent)
    dqn.monitored_training(agent, dqn.StopFlag())
    assert seen["copies"] == [300, 600, 900, 1200]
    for a, b in zip(agent.target_network.get_weights(), agent.weights, strict=True):
        assert not np.array_equal(a, b)  # 100 steps of replay since the last copy


def test_training_decays_epsilon_once_per_step_and_stores_every_step(tensorflow_ready):
    cfg = small_config(max_steps=700, epsilon_decay=0.995, epsilon_min=0.01, memory_size=2000)
    agent = dqn.make_agent(cfg)
    run = dqn.monitored_training(agent, dqn.StopFlag())
    assert agent.epsilon == pytest.approx(0.995**700, rel=1e-9)  # 0.03: above the floor
    assert len(agent.memory) + len(agent.recent) == 700 == run["steps"]  # stored or waiting
    # No evaluation came (eval_every is 10**6): the latest weights are what there is to keep.
    assert run["kept"].weights is agent.weights and run["kept"].step == 700


# ---- Evaluation and outputs ------------------------------------------------------------------


def first_episode_lengths(episodes, seed, action):
    """How long each env's first episode lasts under a constant action: an oracle for
    evaluate(), stepping the same vector env by hand."""
    envs = gym.make_vec("CartPole-v1", num_envs=episodes)
    envs.reset(seed=seed)
    lengths = np.zeros(episodes, int)
    for t in range(1, 501):
        _, _, terminated, truncated, _ = envs.step(np.full(episodes, action))
        lengths = np.where((lengths == 0) & (terminated | truncated), t, lengths)
        if lengths.all():
            break
    envs.close()
    return lengths


def test_evaluate_counts_each_envs_first_episode_only():
    # A network whose output is constant always pushes left: CartPole then lasts 8-11 steps,
    # and the envs finish at different steps, so counting a second episode would show.
    weights = [np.zeros((4, 2), np.float32), np.array([1.0, 0.0], np.float32)]
    expected = first_episode_lengths(12, seed=3, action=0)
    assert len(set(expected)) > 1
    returns = dqn.evaluate(weights, "CartPole-v1", episodes=12, seed=3)
    np.testing.assert_array_equal(returns, expected)


def test_evaluate_gives_up_once_the_mean_cannot_reach_the_pass_mark():
    weights = [np.zeros((4, 2), np.float32), np.array([1.0, 0.0], np.float32)]
    full = dqn.evaluate(weights, "CartPole-v1", episodes=12, seed=3)
    # After t steps with every env running, the best the mean can still reach is t + (500 - t):
    # 500, so a pass mark of 500 fails at the first episode that ends, and 1 never cuts short.
    cut = dqn.evaluate(weights, "CartPole-v1", episodes=12, seed=3, pass_mark=500)
    assert cut.max() == full.min() and cut.sum() < full.sum()
    np.testing.assert_array_equal(
        dqn.evaluate(weights, "CartPole-v1", episodes=12, seed=3, pass_mark=1), full
    )


def test_half_size_averages_two_by_two_blocks():
    frame = np.zeros((5, 4, 3), np.uint8)  # an odd row count drops the last row
    frame[0, 0] = 200  # one bright pixel in the top-left block
    small = dqn.half_size(frame)
    assert small.shape == (2, 2, 3) and small[0, 0, 0] == 50 and small[1:, 1:].max() == 0


def test_moving_average_uses_fewer_points_at_the_start():
    np.testing.assert_allclose(dqn.moving_average([2, 4, 6, 8], 2), [2, 3, 5, 7])


def test_atomic_path_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "summary.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), dqn.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_atomic_path_writes_files_with_the_usual_permissions(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        with dqn.atomic_path(tmp_path / "episodes.csv") as tmp:
            tmp.write_text("episode\n")
    finally:
        os.umask(umask)
    assert (tmp_path / "episodes.csv").stat().st_mode & 0o777 == 0o644


# ---- Variants: FIFO memory, Double DQN, Huber loss -------------------------------------------


def test_fifo_memory_when_full_drops_the_oldest():
    memory = dqn.ReplayMemory(10, n_observations=4, rng=np.random.default_rng(0), policy="fifo")
    fill(memory, 23)  # 13 past full: the ring's oldest row is in slot 3, not halfway round
    assert len(memory) == 10
    assert list(stored(memory)[:, 0]) == list(range(13, 23))  # the newest ten, in order


class CountingRng:
    """Stands in for the minibatch generator: draws 0, 1, 2, ... in turn."""

    def integers(self, high, size):
        return np.arange(size) % high


def test_fifo_memory_samples_by_age_as_a_deque_would():
    # Index i of a draw is the i-th oldest transition, as in a deque(maxlen): the ring's
    # position does not show through (so FIFO runs are those of the deque they replace).
    memory = dqn.ReplayMemory(10, n_observations=4, rng=np.random.default_rng(0), policy="fifo")
    fill(memory, 23)
    memory.batch_rng = CountingRng()
    states, *_ = memory.sample(1, 10)
    assert list(states[0, :, 0]) == list(range(13, 23))


def set_dense(model, kernels_and_biases):
    model.set_weights([np.asarray(w, np.float32) for w in kernels_and_biases])


def identity_like_network(q_for_action_0, q_for_action_1):
    """Weights of a 4-24-12-2 ReLU network whose Q-values are linear in the first two inputs:
    Q(s) = (q_for_action_0 * s[0], q_for_action_1 * s[1]) for non-negative s."""
    w1 = np.zeros((4, 24)), np.zeros(24)
    w1[0][0, 0] = w1[0][1, 1] = 1.0
    w2 = np.zeros((24, 12)), np.zeros(12)
    w2[0][0, 0] = w2[0][1, 1] = 1.0
    w3 = np.zeros((12, 2)), np.zeros(2)
    w3[0][0, 0], w3[0][1, 1] = q_for_action_0, q_for_action_1
    return [*w1, *w2, *w3]


@pytest.mark.parametrize("double", [False, True], ids=["dqn", "double-dqn"])
def test_next_value_is_the_targets_max_or_its_value_of_the_online_choice(tensorflow_ready, double):
    agent = dqn.make_agent(dqn.Config(double_dqn=double, hidden="24,12"))
    set_dense(agent.q_network, identity_like_network(1.0, 2.0))  # online: action 1 looks best
    set_dense(agent.target_network, identity_like_network(5.0, 3.0))  # target: action 0 is
    next_states = np.array([[1.0, 1.0, 0.0, 0.0]], np.float32)
    value = float(agent.next_value(next_states)[0])
    # DQN takes the target's max (5); Double DQN lets the online network pick action 1 and
    # takes the target's value of it (3).
    assert value == pytest.approx(3.0 if double else 5.0)


@pytest.mark.parametrize("loss, expected", [("mse", 50.0), ("huber", 4.75)])
def test_loss_flag_chooses_the_replay_loss(tensorflow_ready, loss, expected):
    agent = dqn.make_agent(dqn.Config(loss=loss, hidden="24,12"))
    set_dense(agent.q_network, identity_like_network(1.0, 2.0))  # Q(s) = (3, 4) below
    states = np.array([[3.0, 2.0, 0.0, 0.0]], np.float32)
    # The agent's own loss: action 0 taken, its target 13 (off by 10), the other action's
    # entry the network's own. Over the two actions, MSE gives 100 / 2 and Huber (delta 1)
    # (9.5 + 0) / 2: it grows linearly with large errors.
    losses = agent.regression_loss(states, np.array([0], np.int32), np.array([13.0], np.float32))
    assert float(losses[0]) == pytest.approx(expected)


# ---- After solving: keep training and keep the best snapshot --------------------------------


def scripted_evaluate(monkeypatch, short, checks, certified=()):
    """Replace evaluate(): short evaluations score `short`, the 100-episode checks the next of
    `checks`, and certifications the next of `certified` (then 0)."""
    checks, certified = iter(checks), iter(certified)
    calls, pass_marks, episodes_asked = [], [], []
    scripted_evaluate.certify_pass_marks = pass_marks  # what each certification had to beat
    scripted_evaluate.episodes = episodes_asked  # (seed, score, episodes) of every call

    def fake(weights, env_id, episodes, seed, pass_mark=None):
        if seed == dqn.EVAL_SEED:
            score = short
        elif seed == dqn.CONFIRM_SEED:
            score = next(checks)
        else:
            assert seed == dqn.CERTIFY_SEED
            score = next(certified, 0.0)
            pass_marks.append(pass_mark)
        calls.append((seed, score))
        episodes_asked.append((seed, score, episodes))
        return np.full(episodes, float(score))

    monkeypatch.setattr(dqn, "evaluate", fake)
    return calls


def polish_config(**overrides):
    return small_config(**{"eval_every": 100, "max_steps": 5_000, "polish_steps": 400, **overrides})


def test_evaluations_that_could_not_pass_their_mark_are_recorded_as_lower_bounds(
    tensorflow_ready, monkeypatch
):
    # Short evaluations of 470 fail the 475 line: lower bounds. At step 300 one passes (480)
    # and its check of 476 solves: both exact. Then checks must beat the best (476): 490
    # does, 470 does not (a bound), 495 does.
    short = iter([470, 470, 480])
    scripted_evaluate(monkeypatch, short=None, checks=[476, 490, 470, 495], certified=[471])
    fake = dqn.evaluate

    def with_short_scores(weights, env_id, episodes, seed, pass_mark=None):
        if seed == dqn.EVAL_SEED:
            return np.full(episodes, float(next(short)))
        return fake(weights, env_id, episodes, seed, pass_mark)

    monkeypatch.setattr(dqn, "evaluate", with_short_scores)
    run = dqn.monitored_training(dqn.make_agent(polish_config(polish_steps=300)), dqn.StopFlag())
    expected = [(100, 470), (200, 470), (300, 476), (400, 490), (500, 470), (600, 495)]
    assert run["evaluations"] == expected
    assert run["lower_bounds"] == [100, 200, 500]


def test_an_env_without_a_step_bound_has_no_lower_bounds(tensorflow_ready, monkeypatch):
    # LunarLander's checks always play every episode out: no score is a bound.
    selector = dqn.SnapshotSelector(dqn.Config(env="LunarLander-v3"), 200.0, dqn.PhaseClock())
    monkeypatch.setattr(dqn, "evaluate", lambda *args, **kwargs: np.full(10, 150.0))
    selector.evaluate(1_000, None)
    assert selector.evaluations == [(1_000, 150.0)] and selector.lower_bounds == []


def test_after_solving_checks_that_match_the_best_are_certified_and_the_best_certified_kept(
    tensorflow_ready, monkeypatch
):
    # Checks at steps 100-500: 476 solves; 490 and 495 beat the best check and are certified;
    # 470 and 480 are not. The 495 snapshot certifies worse (478) than the 490 one (483), so
    # the 490 one is kept: its check was its luck, the certification says how good it is.
    calls = scripted_evaluate(
        monkeypatch, short=480, checks=[476, 490, 470, 495, 480], certified=[471, 483, 478]
    )
    agent = dqn.make_agent(polish_config())
    run = dqn.monitored_training(agent, dqn.StopFlag())
    assert run["steps_to_solve"] == 100 and run["solve_check"] == 476
    assert run["steps"] == 500 and run["stop_reason"] == "solved"  # 400 steps after solving
    assert run["polish_end"] == "polish_steps"
    assert run["certifications"] == [(100, 476, 471), (200, 490, 483), (400, 495, 478)]
    assert run["kept"].step == 200 and run["kept"].certified == 483
    assert run["kept"].check == 490
    assert [seed for seed, _ in calls].count(dqn.CERTIFY_SEED) == 3
    # The first certification has nothing to beat; each later one may stop once it cannot
    # beat the kept snapshot's (471, then 483).
    assert scripted_evaluate.certify_pass_marks == [None, 471, 483]


def test_a_perfect_certification_ends_training_at_once(tensorflow_ready, monkeypatch):
    calls = scripted_evaluate(
        monkeypatch, short=480, checks=[476, 500.0, 500.0, 499], certified=[480, 499.5, 500.0]
    )
    agent = dqn.make_agent(polish_config())
    run = dqn.monitored_training(agent, dqn.StopFlag())
    # Step 200's perfect check certified at 499.5: not perfect, so training went on.
    assert run["steps"] == 300 and run["kept"].step == 300 and run["kept"].certified == 500
    assert run["polish_end"] == "perfect" and calls[-1] == (dqn.CERTIFY_SEED, 500.0)


def test_polish_patience_ends_polishing_after_checks_that_keep_nothing(
    tensorflow_ready, monkeypatch
):
    # The solve at step 100 keeps a snapshot; the checks at 200 and 300 keep nothing (one is
    # below the best check, one certifies worse): two in a row, so patience 2 ends it at 300.
    scripted_evaluate(monkeypatch, short=-50, checks=[-90, -95, -80, -70], certified=[-85, -86])
    agent = dqn.make_agent(polish_config(env="Acrobot-v1", polish_patience=2))
    run = dqn.monitored_training(agent, dqn.StopFlag())
    assert run["steps_to_solve"] == 100 and run["steps"] == 300
    assert run["polish_end"] == "patience" and run["kept"].step == 100


def test_without_a_known_highest_return_no_check_is_perfect(tensorflow_ready, monkeypatch):
    # An Acrobot return of 0 would be unbeatable, but nothing says 0 can be reached; only
    # CartPole has a known highest return, so here polishing runs its whole budget.
    scripted_evaluate(monkeypatch, short=-50, checks=[-60] + [0.0] * 10, certified=[-60, 0.0])
    agent = dqn.make_agent(polish_config(env="Acrobot-v1"))
    run = dqn.monitored_training(agent, dqn.StopFlag())
    assert run["steps"] == 500 and run["polish_end"] == "polish_steps"


def test_polish_steps_zero_stops_at_the_first_solve(tensorflow_ready, monkeypatch):
    scripted_evaluate(monkeypatch, short=480, checks=[476, 500], certified=[480])
    agent = dqn.make_agent(polish_config(polish_steps=0))
    run = dqn.monitored_training(agent, dqn.StopFlag())
    assert run["steps"] == run["steps_to_solve"] == run["kept"].step == 100


def test_a_failed_long_check_is_not_a_solve(tensorflow_ready, monkeypatch):
    scripted_evaluate(monkeypatch, short=480, checks=[474] * 100)
    agent = dqn.make_agent(polish_config(max_steps=1_000))
    run = dqn.monitored_training(agent, dqn.StopFlag())
    assert run["steps_to_solve"] is None and run["stop_reason"] == "max_steps"
    assert run["steps"] == 1_000


# ---- The compiled replay, measured from the outside -------------------------------------------


def sgd_agent(**overrides):
    """An agent whose compiled replay takes one plain gradient step (SGD, learning rate 1e-3)
    on one stored transition, so that the change of the last layer's bias gives the TD target
    that the replay regressed to: for MSE, the taken action's bias moves by
    -lr * 2 * (Q(s, a) - y) / n_actions, and the other action's not at all."""
    import keras

    keras.utils.set_random_seed(11)  # the same networks whichever tests ran before
    settings = dict(hidden="16,16", batch_size=1, gradient_steps=1, no_xla=True)
    cfg = dqn.Config(**{**settings, **overrides})
    agent = dqn.make_agent(cfg)
    agent.optimizer = keras.optimizers.SGD(learning_rate=1e-3)
    agent.optimizer.build(agent.q_network.trainable_variables)
    agent.memory = dqn.ReplayMemory(1, 4, np.random.default_rng(0))
    # A target network unlike the online one, so that using the wrong one shows.
    rng = np.random.default_rng(7)
    weights = [w + rng.normal(0, 0.3, w.shape).astype(np.float32) for w in agent.weights]
    weights[-1] += np.array([2.0, 3.0], np.float32)  # values well away from 0
    agent.target_network.set_weights(weights)
    return agent


def implied_target(agent, state, action, reward, next_state, terminated, discount):
    """Store one transition, run one replay, and read back the target it regressed Q(s, a) to."""
    agent.memory.store(state, action, reward, next_state, terminated, discount)
    q_before = dqn.q_values(agent.weights, state)
    bias_before = agent.weights[-1].copy()
    agent.experience_replay()
    moved = agent.weights[-1] - bias_before
    other = 1 - action
    assert moved[other] == 0.0  # only the taken action is pulled
    return q_before[action] + moved[action] * agent.n_actions / (2 * 1e-3), q_before


@pytest.mark.parametrize("double", [False, True], ids=["dqn", "double-dqn"])
def test_replay_regresses_q_toward_r_plus_discounted_target_value_on_ordinary_rows(
    tensorflow_ready, double
):
    rng = np.random.default_rng(3)
    for _ in range(4):
        agent = sgd_agent(double_dqn=double)
        state, next_state = rng.normal(size=(2, 4)).astype(np.float32)
        action, reward, discount = int(rng.integers(2)), float(rng.normal()), 0.81
        target_q = dqn.q_values(agent.target_network.get_weights(), next_state)
        online_q = dqn.q_values(agent.weights, next_state)
        value = target_q[np.argmax(online_q)] if double else target_q.max()
        measured, _ = implied_target(agent, state, action, reward, next_state, 0.0, discount)
        # r + discount * V(s'), with V from the target network at the NEXT state.
        assert measured == pytest.approx(reward + discount * value, abs=2e-3)
        assert abs(reward + discount * value - reward) > 0.05  # the bootstrap term matters


def test_replay_target_at_a_termination_is_the_reward_alone(tensorflow_ready):
    agent = sgd_agent()
    state, next_state = np.random.default_rng(4).normal(size=(2, 4)).astype(np.float32)
    measured, _ = implied_target(agent, state, 1, 2.5, next_state, 1.0, 0.81)
    assert measured == pytest.approx(2.5, abs=2e-3)


def test_huber_loss_reaches_the_compiled_gradient_step(tensorflow_ready):
    # Far from its target, Huber's gradient is clipped to 1 where MSE's is 2 * error: the
    # taken action's bias moves by lr / n_actions, not by lr * 2 * error / n_actions.
    agent = sgd_agent(loss="huber")
    state, next_state = np.random.default_rng(5).normal(size=(2, 4)).astype(np.float32)
    bias = agent.weights[-1].copy()
    q = dqn.q_values(agent.weights, state)
    agent.memory.store(state, 0, float(q[0]) + 50.0, next_state, 1.0, 0.81)  # 50 too low
    agent.experience_replay()
    assert agent.weights[-1][0] - bias[0] == pytest.approx(1e-3 / 2, rel=1e-3)


def test_a_replay_that_breaks_the_weights_keeps_the_last_finite_ones(tensorflow_ready):
    agent = dqn.make_agent(small_config(hidden="8", gradient_steps=2))
    fill(agent.memory, 64)
    assert math.isfinite(agent.experience_replay())
    finite = [w.copy() for w in agent.weights]
    agent.optimizer.learning_rate.assign(1e30)  # the next updates overflow
    for _ in range(3):
        agent.experience_replay()
        if agent.diverged:
            break
        finite = [w.copy() for w in agent.weights]  # this replay's weights were still finite
    assert agent.diverged
    assert not all(np.isfinite(w).all() for w in agent.q_network.get_weights())
    # The broken weights never reached the copy that acts: it is the last finite one.
    for kept, before in zip(agent.weights, finite, strict=True):
        np.testing.assert_array_equal(kept, before)


def test_replay_starts_once_min_observations_are_stored_and_runs_every_train_every_steps(
    tensorflow_ready, monkeypatch
):
    # One-step memory: after step t, t transitions are stored. Replay starts at the first
    # multiple of 8 with at least 100 stored (104), and evaluations every 50 steps from then on.
    cfg = small_config(n_step=1, min_observations=100, train_every=8, eval_every=50, max_steps=400)
    agent = dqn.make_agent(cfg)
    seen = spy_on_training(monkeypatch, agent, evaluations=True)
    dqn.monitored_training(agent, dqn.StopFlag())
    assert seen["replays"] == list(range(104, 401, 8))
    assert seen["evaluations"] == list(range(100, 401, 50))


# ---- Other envs, and a memory that scales ----------------------------------------------------


def test_env_picks_its_row_of_settings_and_flags_given_override_it():
    assert dqn.parse_args([]) == dqn.Config()  # CartPole's row is the defaults
    lander = dqn.parse_args(["--env", "LunarLander-v3"])
    for name, value in dqn.ENV_SETTINGS["LunarLander-v3"].items():
        assert getattr(lander, name) == value
    assert lander.memory_size != dqn.Config().memory_size  # the row does change something
    mine = dqn.parse_args(["--env", "LunarLander-v3", "--memory-size", "3000", "--no-double-dqn"])
    assert mine.memory_size == 3000 and mine.double_dqn is False
    assert mine.epsilon_decay == dqn.ENV_SETTINGS["LunarLander-v3"]["epsilon_decay"]
    # Every row names real settings, for envs that the script can train on.
    fields = {field.name for field in dataclasses.fields(dqn.Config)}
    for env_id, row in dqn.ENV_SETTINGS.items():
        assert set(row) <= fields, env_id
        dqn.validate(dqn.parse_args(["--env", env_id]))


def constant_policy(n_observations, n_actions, action):
    kernel = np.zeros((n_observations, n_actions), np.float32)
    bias = np.zeros(n_actions, np.float32)
    bias[action] = 1.0
    return [kernel, bias]


def test_a_check_stops_early_where_the_rewards_to_come_are_bounded():
    # Acrobot pays -1 a step and 0 at the goal: a check whose mean is below -100 can only
    # fall further, so it stops there; a policy that never swings up scores -500 in full.
    weights = constant_policy(6, 3, 1)  # no torque: the links never swing up
    full = dqn.evaluate(weights, "Acrobot-v1", episodes=4, seed=0)
    np.testing.assert_array_equal(full, -500.0)
    cut = dqn.evaluate(weights, "Acrobot-v1", episodes=4, seed=0, pass_mark=-100)
    np.testing.assert_array_equal(cut, -101.0)  # the first step at which the mean is < -100


def test_a_check_plays_every_episode_out_where_no_bound_is_known():
    # A LunarLander landing pays 100 in one step: no early stop, whatever the pass mark.
    weights = constant_policy(8, 4, 0)  # do nothing: the lander falls
    full = dqn.evaluate(weights, "LunarLander-v3", episodes=3, seed=0)
    cut = dqn.evaluate(weights, "LunarLander-v3", episodes=3, seed=0, pass_mark=200)
    np.testing.assert_array_equal(cut, full)
    assert full.max() < 200


def random_weights(n_observations, n_actions, seed):
    rng = np.random.default_rng(seed)
    return [
        rng.normal(size=(n_observations, 16)).astype(np.float32),
        np.zeros(16, np.float32),
        rng.normal(size=(16, n_actions)).astype(np.float32),
        np.zeros(n_actions, np.float32),
    ]


class NotedEnv(gym.Wrapper):
    """Notes, for each step, whether the episode ended there, and whether it was closed."""

    def __init__(self, env):
        super().__init__(env)
        self.ends, self.closed = [], False

    def step(self, action):
        result = self.env.step(action)
        self.ends.append(result[2] or result[3])
        return result

    def close(self):
        self.closed = True
        super().close()


def noting_make(monkeypatch, fail_after=None):
    """gym.make, each env made wrapped in NotedEnv; the call after `fail_after` envs raises."""
    made, make = [], gym.make

    def make_noted(*args, **kwargs):
        if len(made) == fail_after:
            raise RuntimeError("no more envs")
        made.append(NotedEnv(make(*args, **kwargs)))
        return made[-1]

    monkeypatch.setattr(gym, "make", make_noted)
    return made


def test_evaluate_plays_episode_i_from_seed_plus_i_as_one_env_alone_would():
    # LunarLander has no vector version, so evaluate() steps its envs one by one: each episode
    # must be the one that an env alone plays from reset(seed + i), whatever the others do.
    weights = random_weights(8, 4, seed=0)
    alone = [dqn.record_episode(weights, "LunarLander-v3", seed=5 + i)[1] for i in range(4)]
    assert len(set(alone)) == 4
    returns = dqn.evaluate(weights, "LunarLander-v3", episodes=4, seed=5)
    np.testing.assert_array_equal(returns, alone)


def test_evaluate_steps_each_episode_until_it_ends_and_never_after(monkeypatch):
    # Stepping an env whose episode is over would cost time (a vector env steps them all until
    # the longest ends) and could count a second episode.
    made = noting_make(monkeypatch)
    dqn.evaluate(random_weights(8, 4, seed=0), "LunarLander-v3", episodes=4, seed=5)
    assert len(made) == 4
    for env in made:
        assert env.ends[-1] and not any(env.ends[:-1])
    assert len({len(env.ends) for env in made}) > 1  # the episodes end at different steps


@pytest.mark.parametrize("pass_mark", [None, -100.0], ids=["played-out", "cut-short"])
def test_evaluate_closes_each_env_it_made_one_by_one(monkeypatch, pass_mark):
    made = noting_make(monkeypatch)
    dqn.evaluate(constant_policy(6, 3, 1), "Acrobot-v1", episodes=3, seed=0, pass_mark=pass_mark)
    assert len(made) == 3 and all(env.closed for env in made)


def test_evaluate_closes_the_envs_made_when_one_cannot_be_made(monkeypatch):
    made = noting_make(monkeypatch, fail_after=2)
    with pytest.raises(RuntimeError, match="no more envs"):
        dqn.evaluate(constant_policy(6, 3, 1), "Acrobot-v1", episodes=4, seed=0)
    assert len(made) == 2 and all(env.closed for env in made)


def test_memory_rows_take_the_bytes_of_their_data_and_sampling_reads_them_in_place():
    memory = dqn.ReplayMemory(1_000_000, n_observations=4, rng=np.random.default_rng(0))
    assert memory.rows.dtype == np.float32 and memory.rows.nbytes == 1_000_000 * 12 * 4
    fill(memory, 40)
    states, *_ = memory.sample(2, 16)
    assert set(states[..., 0].ravel()) <= set(range(40))  # only rows that were stored


def test_the_memory_size_flag_is_bounded_by_the_bytes_of_its_rows():
    cfg = dqn.parse_args(["--memory-size", str(4 * 2**30 // 48)])  # 4 GiB of CartPole rows
    dqn.validate(cfg)
    with pytest.raises(dqn.ConfigError, match="GiB of rows for CartPole-v1; at most 4 GiB"):
        dqn.validate(dataclasses.replace(cfg, memory_size=cfg.memory_size + 1))


def test_training_loop_acts_from_each_next_state_and_counts_every_reward(tensorflow_ready):
    # CartPole pays 1 a step, so an episode's return is its length; and within an episode each
    # stored transition starts where the one before it ended.
    cfg = small_config(max_steps=400, n_step=1, memory_size=400, min_observations=400)
    agent = dqn.make_agent(cfg)
    run = dqn.monitored_training(agent, dqn.StopFlag())
    rows = stored(agent.memory)
    ends = np.array([steps for _, steps, _, _ in run["episodes"]])
    returns = np.array([episode_return for _, _, episode_return, _ in run["episodes"]])
    np.testing.assert_array_equal(returns, np.diff([0, *ends]))
    within = np.setdiff1d(np.arange(len(rows) - 1), ends - 1)  # steps that did not end one
    np.testing.assert_array_equal(rows[within + 1, :4], rows[within, 7:11])
    assert len(within) > 300 and len(ends) > 5


def test_replay_averages_the_loss_over_its_minibatch(tensorflow_ready):
    # Four draws of the one stored row: a mean over the minibatch moves the weights and reports
    # the loss as one row would; a sum would move them (and report) four times as much.
    agent = sgd_agent(batch_size=4)
    state, next_state = np.random.default_rng(6).normal(size=(2, 4)).astype(np.float32)
    q = dqn.q_values(agent.weights, state)
    agent.memory.store(state, 0, float(q[0]) + 3.0, next_state, 1.0, 0.81)  # 3 too low
    bias = agent.weights[-1].copy()
    loss = agent.experience_replay()
    assert loss == pytest.approx(3.0**2 / agent.n_actions, rel=1e-4)  # MSE over the 2 actions
    assert agent.weights[-1][0] - bias[0] == pytest.approx(1e-3 * 2 * 3.0 / 2, rel=1e-3)


def test_a_check_stops_at_the_very_step_its_mean_can_no_longer_pass():
    # Two envs pushed left end after 10 and 8 steps (reset seed 7). From step 8 on, the most
    # they can reach is 8 + 500 = 508 in all; a pass mark of 254.25 (508.5 in all) is just out
    # of reach, so the check stops at step 8 and the longer episode counts 8. Half a point more
    # in the bound (a step off in the steps still to come) and the check would play on to 10.
    weights = constant_policy(4, 2, 0)
    np.testing.assert_array_equal(first_episode_lengths(2, seed=7, action=0), [10, 8])
    cut = dqn.evaluate(weights, "CartPole-v1", episodes=2, seed=7, pass_mark=508.5 / 2)
    np.testing.assert_array_equal(cut, [8, 8])
    whole = dqn.evaluate(weights, "CartPole-v1", episodes=2, seed=7, pass_mark=507.5 / 2)
    np.testing.assert_array_equal(whole, [10, 8])  # still within reach: played out


@pytest.mark.parametrize("pass_mark", [None, 500.0], ids=["played-out", "cut-short"])
def test_evaluate_closes_its_envs(monkeypatch, pass_mark):
    made, closed, make_vec = [], [], gym.make_vec

    def noting_make_vec(*args, **kwargs):
        envs = make_vec(*args, **kwargs)
        made.append(envs)
        close = envs.close
        envs.close = lambda: closed.append(envs) or close()  # CartPole's own close sets no flag
        return envs

    monkeypatch.setattr(gym, "make_vec", noting_make_vec)
    dqn.evaluate(constant_policy(4, 2, 0), "CartPole-v1", episodes=3, seed=0, pass_mark=pass_mark)
    assert len(made) == 1 and closed == made


# ---- The loop's bookkeeping: phases, progress lines, why it stopped --------------------------


def test_the_clock_charges_collecting_the_first_replay_and_learning_to_their_phases(
    tensorflow_ready, monkeypatch
):
    # Each replay sleeps a known time: the first one's step goes to "compile", later ones to
    # "learn", and the steps before replay starts to "collect".
    cfg = small_config(max_steps=200, min_observations=64, train_every=16, n_step=1)
    agent = dqn.make_agent(cfg)
    replay, replays = agent.experience_replay, []

    def slow_replay():
        time.sleep(0.2 if not replays else 0.01)
        replays.append(1)
        return replay()

    step, steps = agent.env.step, []

    def slow_first_step(action):  # the steps before replay starts are collecting
        time.sleep(0.1 if not steps else 0.0)
        steps.append(1)
        return step(action)

    monkeypatch.setattr(agent, "experience_replay", slow_replay)
    monkeypatch.setattr(agent.env, "step", slow_first_step)
    clock = dqn.PhaseClock()
    clock.switch("before_training")
    dqn.monitored_training(agent, dqn.StopFlag(), clock)
    assert len(replays) == 9 and clock.stack == ["after_training"]
    assert clock.seconds["before_training"] < 0.1 <= clock.seconds["collect"]
    assert clock.seconds["compile"] >= 0.2 and clock.seconds["learn"] >= 8 * 0.01
    assert clock.seconds["collect"] < 0.3  # the first replay's sleep is not collecting


def test_training_prints_progress_every_log_every_steps(tensorflow_ready, capsys):
    cfg = small_config(max_steps=300, log_every=100)
    dqn.monitored_training(dqn.make_agent(cfg), dqn.StopFlag())
    lines = [line for line in capsys.readouterr().out.splitlines() if "steps/s" in line]
    assert [int(line.split()[1]) for line in lines] == [100, 200, 300]


def test_a_stop_request_ends_training_after_the_step_it_came_in(tensorflow_ready, monkeypatch):
    cfg = small_config(max_steps=500)
    agent, stop, calls = dqn.make_agent(cfg), dqn.StopFlag(), [0]
    act = agent.get_action

    def acting_then_interrupted(state):
        calls[0] += 1
        if calls[0] == 41:
            stop.signal = 2  # as Ctrl-C sets it, during step 41
        return act(state)

    monkeypatch.setattr(agent, "get_action", acting_then_interrupted)
    run = dqn.monitored_training(agent, stop)
    assert run["stop_reason"] == "interrupted" and run["steps"] == 41


def test_a_diverged_replay_stops_training_and_says_so(tensorflow_ready, capsys):
    cfg = small_config(max_steps=1_000, learning_rate=1e30, hidden="8")
    before = time.perf_counter()
    run = dqn.monitored_training(dqn.make_agent(cfg), dqn.StopFlag())
    elapsed = time.perf_counter() - before
    assert run["stop_reason"] == "diverged" and run["steps"] < cfg.max_steps
    assert run["kept"].weights is None  # no evaluation before it broke: nothing to save
    assert "training diverged" in capsys.readouterr().out
    assert 0 < run["train_seconds"] <= elapsed  # the loop's own seconds, not a sum of clocks


def test_a_check_returns_the_score_it_records(tensorflow_ready, monkeypatch):
    agent = dqn.make_agent(small_config())
    selector = dqn.SnapshotSelector(agent.cfg, 475.0, dqn.PhaseClock())
    monkeypatch.setattr(dqn, "evaluate", lambda *args, **kwargs: np.full(10, 123.0))
    assert selector.evaluate(250, agent.weights) == 123.0
    assert selector.evaluations[-1] == (250, 123.0)


def test_before_the_solve_the_best_short_evaluation_is_the_kept_snapshot(
    tensorflow_ready, monkeypatch
):
    # A run that never solves keeps the snapshot of its best 10-episode evaluation: the first
    # 300, at step 200; not a later one that only ties it, nor a worse one, nor the last.
    scores = iter([100.0, 300.0, 300.0, 250.0])
    monkeypatch.setattr(dqn, "evaluate", lambda w, e, n, *args, **kw: np.full(n, next(scores)))
    agent = dqn.make_agent(small_config(eval_every=100, max_steps=400))
    run = dqn.monitored_training(agent, dqn.StopFlag())
    assert run["steps_to_solve"] is None and run["stop_reason"] == "max_steps"
    assert run["kept"].step == 200 and run["kept"].check == 300.0
    assert [score for _, score in run["evaluations"]] == [100.0, 300.0, 300.0, 250.0]


def test_the_line_itself_passes_and_the_solve_says_so(tensorflow_ready, monkeypatch, capsys):
    # A 10-episode evaluation of exactly 475 earns the long check, and a check of exactly 475
    # solves; what the evaluation records is then the check's score, and the run says so.
    scripted_evaluate(monkeypatch, short=475, checks=[475, 470, 470, 470, 470], certified=[480])
    agent = dqn.make_agent(polish_config())
    clock = dqn.PhaseClock()  # seconds count from its start, as a run's from the process's
    run = dqn.monitored_training(agent, dqn.StopFlag(), clock)
    assert run["steps_to_solve"] == 100 and run["solve_check"] == 475
    since_start = time.perf_counter() - clock.start
    assert 0 < run["seconds_to_solve"] < since_start
    assert 0 < run["polish_seconds"] < since_start - run["seconds_to_solve"]  # since the solve
    assert run["evaluations"][0] == (100, 475.0)
    out = capsys.readouterr().out
    assert "step 100: 100-episode check 475.0\n" in out
    assert "solved at step 100; polishing for up to 400 more\n" in out
    assert "step 100: check 475.0, certified on other episodes 480.0\n" in out


def test_a_later_snapshot_that_only_ties_the_kept_certification_is_not_kept(
    tensorflow_ready, monkeypatch
):
    # The check at step 200 beats the solving one, but its certification only ties (480): the
    # snapshot kept is still the first.
    scripted_evaluate(
        monkeypatch, short=480, checks=[476, 490, 470, 470, 470], certified=[480, 480]
    )
    agent = dqn.make_agent(polish_config())
    run = dqn.monitored_training(agent, dqn.StopFlag())
    assert run["certifications"] == [(100, 476, 480), (200, 490, 480)]
    assert run["kept"].step == 100 and run["kept"].check == 476


# ---- What the review found unseen: memory draws, episode counts, the saved snapshot ----------


def test_a_full_memory_overwrites_the_slot_its_own_stream_draws_and_every_slot_can_go():
    # The slot a new row replaces is the next draw of the memory's own generator, so neither a
    # round-robin overwrite nor a draw that misses the last slot would match.
    memory = dqn.ReplayMemory(
        10, 4, rng=np.random.default_rng(5), batch_rng=np.random.default_rng(6)
    )
    fill(memory, 10)
    draws = np.random.default_rng(5).integers(10, size=300)
    for i, slot in enumerate(draws):
        memory.sample(1, 4)  # minibatches draw from a stream of their own: no effect on slots
        fill(memory, 1, start=1_000 + i)
        assert memory.rows[slot, 0] == 1_000 + i
    assert set(draws) == set(range(10))


def test_minibatches_come_from_the_stored_rows_alone_and_from_all_of_them():
    # Rows are numbered from 1, so an unfilled row of zeros would show as id 0; 4,000 draws over
    # 30 rows reach every one, and each about equally often (uniform, not a corner).
    memory = dqn.ReplayMemory(100, 4, rng=np.random.default_rng(0))
    fill(memory, 30, start=1)
    ids = memory.sample(100, 40)[0][..., 0].astype(int).ravel()
    counts = np.bincount(ids, minlength=31)
    assert counts[0] == 0 and ids.max() == 30
    assert counts[1:].min() > 4_000 / 30 * 0.6 and counts[1:].max() < 4_000 / 30 * 1.4


def test_fifo_minibatches_reach_every_row_after_the_ring_wraps():
    memory = dqn.ReplayMemory(20, 4, rng=np.random.default_rng(0), policy="fifo")
    fill(memory, 27, start=1)  # rows 8-27 remain; the oldest sits in the middle of the array
    ids = memory.sample(50, 40)[0][..., 0].astype(int).ravel()
    assert set(ids) == set(range(8, 28))


def test_each_kind_of_check_plays_its_own_number_of_episodes(tensorflow_ready, monkeypatch):
    calls = scripted_evaluate(monkeypatch, short=480, checks=[476, 490, 470], certified=[480, 490])
    cfg = polish_config(eval_episodes=7, confirm_episodes=11, certify_episodes=13, max_steps=300)
    dqn.monitored_training(dqn.make_agent(cfg), dqn.StopFlag())
    counts = {seed: episodes for seed, _, episodes in scripted_evaluate.episodes}
    assert counts == {dqn.EVAL_SEED: 7, dqn.CONFIRM_SEED: 11, dqn.CERTIFY_SEED: 13}
    assert len(calls) == 6  # short, check, certify at 100; check, certify at 200; check at 300


def whole_run_evaluate(monkeypatch):
    """evaluate() for a whole run, from main(): the check at step 100 solves (480, certified
    480), the one at 200 beats it (490, certified 495), later ones fall short (470). Returns
    the weights that the step-200 certification and the final evaluation were given."""
    checks, certified = iter([480.0, 490.0]), iter([480.0, 495.0])
    seen = {}

    def fake(weights, env_id, episodes, seed, pass_mark=None):
        if seed == dqn.EVAL_SEED:
            return np.full(episodes, 480.0)
        if seed == dqn.CONFIRM_SEED:
            return np.full(episodes, next(checks, 470.0))
        if seed == dqn.CERTIFY_SEED:
            score = next(certified)
            if score == 495.0:
                seen["kept"] = [w.copy() for w in weights]
            return np.full(episodes, score)
        assert seed == dqn.FINAL_SEED
        seen["final"] = [w.copy() for w in weights]
        return np.full(episodes, 495.0)

    monkeypatch.setattr(dqn, "evaluate", fake)
    return seen


WHOLE_RUN = ["--no-gifs", "--eval-every", "100", "--max-steps", "600", "--polish-steps", "400",
             "--min-observations", "32", "--no-xla", "--log-every", "1000000"]  # fmt: skip


def saved_weights(folder):
    import keras

    return keras.saving.load_model(folder / "model.keras", compile=False).get_weights()


def test_the_model_saved_is_the_kept_snapshot_not_the_last_weights(
    tensorflow_ready, monkeypatch, capsys, tmp_path
):
    from conftest import run_main

    seen = whole_run_evaluate(monkeypatch)
    result = run_main(capsys, *WHOLE_RUN, "--results-dir", tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] == 500 and summary["saved_snapshot_step"] == 200
    assert summary["saved_snapshot_certified_mean"] == 495.0
    saved = saved_weights(tmp_path)
    for got, kept, final in zip(saved, seen["kept"], seen["final"], strict=True):
        np.testing.assert_array_equal(got, kept)
        np.testing.assert_array_equal(final, kept)  # the final evaluation scored it too


def test_a_run_that_diverges_after_a_check_saves_that_snapshot_and_exits_with_1(
    tensorflow_ready, monkeypatch, capsys, tmp_path
):
    from conftest import run_main

    seen = whole_run_evaluate(monkeypatch)
    replay = dqn.DQNAgent.experience_replay

    def breaking_after_step_300(agent):
        if len(agent.memory) <= 300:
            return replay(agent)
        agent.diverged = True
        return math.nan

    monkeypatch.setattr(dqn.DQNAgent, "experience_replay", breaking_after_step_300)
    result = run_main(capsys, *WHOLE_RUN, "--results-dir", tmp_path)
    assert result.returncode == 1
    assert "the model saved is the snapshot of step 200" in result.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["stop_reason"] == "diverged" and summary["steps"] < 320
    assert summary["model_saved"] and summary["saved_snapshot_step"] == 200
    for got, kept in zip(saved_weights(tmp_path), seen["kept"], strict=True):
        np.testing.assert_array_equal(got, kept)


def test_save_model_refuses_non_finite_weights_and_writes_nothing(tensorflow_ready, tmp_path):
    model = dqn.build_q_network(4, 2, (8,))
    weights = model.get_weights()
    weights[1][0] = np.inf
    model.set_weights(weights)
    with pytest.raises(ValueError, match="non-finite"):
        dqn.save_model(tmp_path / "model.keras", model)
    assert list(tmp_path.iterdir()) == []


def test_a_second_stop_request_aborts_at_once():
    import signal

    stop = dqn.StopFlag()
    assert not stop.requested
    stop(signal.SIGINT, None)
    assert stop.requested and stop.signal == signal.SIGINT
    with pytest.raises(KeyboardInterrupt):
        stop(signal.SIGINT, None)


# ---- run_training: what a run writes, prints and returns ------------------------------------

SHORT_RUN = ["--max-steps", "300", "--min-observations", "32", "--no-xla", "--log-every",
             "1000000", "--eval-every", "1000000"]  # fmt: skip


def test_a_run_records_both_gifs_prints_its_lines_and_restores_the_signal_handlers(
    tensorflow_ready, capsys, tmp_path
):
    import signal

    from conftest import run_main

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    result = run_main(capsys, *SHORT_RUN, "--results-dir", tmp_path)
    assert result.returncode == 0, result.stderr
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {"model.keras", "summary.json", "episodes.csv", "rewards.png",
                     "before.gif", "after.gif"}  # fmt: skip
    assert {sig: signal.getsignal(sig) for sig in before} == before
    lines = result.stdout.splitlines()
    assert lines[0] == f"Training a DQN on CartPole-v1 (seed 1); outputs go to {tmp_path}/"
    assert any(line.startswith("untrained agent: return ") for line in lines)
    assert lines[-1].startswith("max_steps; ") and lines[-1].endswith(" s in all")


def test_no_gifs_writes_neither_gif(tensorflow_ready, capsys, tmp_path):
    from conftest import run_main

    result = run_main(capsys, *SHORT_RUN, "--no-gifs", "--results-dir", tmp_path)
    assert result.returncode == 0, result.stderr
    assert not list(tmp_path.glob("*.gif")) and (tmp_path / "model.keras").exists()


def test_the_same_seed_gives_the_same_greedy_run_in_one_process(tensorflow_ready, capsys, tmp_path):
    # Greedy from the first step, so the episodes follow the network's seeded initial weights.
    from conftest import run_main

    args = [*SHORT_RUN, "--no-gifs", "--epsilon-start", "0", "--seed", "7"]
    for name in ("a", "b"):
        assert run_main(capsys, *args, "--results-dir", tmp_path / name).returncode == 0
    first = (tmp_path / "a" / "episodes.csv").read_text()
    assert first == (tmp_path / "b" / "episodes.csv").read_text()
    other = run_main(capsys, *args[:-1], "8", "--results-dir", tmp_path / "c")
    assert other.returncode == 0 and (tmp_path / "c" / "episodes.csv").read_text() != first


@pytest.mark.parametrize(
    "flags, cached", [((), True), (("--no-xla",), False), (("--no-xla-cache",), False)]
)
def test_the_xla_cache_is_used_only_when_xla_and_the_cache_are_both_on(
    tensorflow_ready, capsys, monkeypatch, tmp_path, flags, cached
):
    from conftest import run_main

    folders = []
    monkeypatch.setattr(dqn, "use_xla_cache", folders.append)
    args = [arg for arg in SHORT_RUN if arg != "--no-xla"]
    result = run_main(capsys, *args, "--max-steps", "20", "--no-gifs", *flags,
                      "--results-dir", tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert folders == ([dqn.xla_cache_folder()] if cached else [])


def test_an_interrupted_run_saves_and_exits_with_128_plus_the_signal(
    tensorflow_ready, capsys, monkeypatch, tmp_path
):
    import os
    import signal

    from conftest import run_main

    act, calls = dqn.DQNAgent.get_action, [0]

    def interrupted_at_step_50(agent, state):
        calls[0] += 1
        if calls[0] == 50:
            os.kill(os.getpid(), signal.SIGTERM)  # the run's own handler takes it
        return act(agent, state)

    monkeypatch.setattr(dqn.DQNAgent, "get_action", interrupted_at_step_50)
    result = run_main(capsys, *SHORT_RUN, "--no-gifs", "--results-dir", tmp_path)
    assert result.returncode == 128 + signal.SIGTERM
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["interrupted"] and summary["steps"] == 50 and summary["model_saved"]


def test_save_json_and_save_episodes_csv_write_exactly_their_data(tmp_path):
    data = {"a": 1, "b": [1.5, None]}
    dqn.save_json(tmp_path / "s.json", data)
    assert (tmp_path / "s.json").read_text() == json.dumps(data, indent=2) + "\n"
    dqn.save_episodes_csv(tmp_path / "e.csv", [(1, 12, 12.0, 0.9), (2, 30, 18.0, 0.8)])
    assert (tmp_path / "e.csv").read_text().splitlines() == [
        "episode,total_steps,return,epsilon",
        "1,12,12.0,0.9",
        "2,30,18.0,0.8",
    ]


def test_the_base_callbacks_run_to_max_steps_and_stop_on_a_loss_that_is_no_number(
    tensorflow_ready, monkeypatch
):
    cfg = small_config(max_steps=200, eval_every=32, n_step=1)
    agent = dqn.make_agent(cfg)
    assert dqn.train(agent, cfg, dqn.Callbacks()) == 200
    agent = dqn.make_agent(cfg)

    def diverging_replay():
        agent.diverged = True
        return math.nan

    monkeypatch.setattr(agent, "experience_replay", diverging_replay)
    assert dqn.train(agent, cfg, dqn.Callbacks()) == 32  # the first replay


def test_each_use_draws_from_its_own_stream_of_the_seed(tensorflow_ready):
    # Exploration, random actions, overwritten slots and minibatches: the four children of
    # SeedSequence(seed), in that order, so that two agents of one seed draw alike.
    cfg = dqn.Config(seed=123, hidden="8")
    agent, other = dqn.make_agent(cfg), dqn.make_agent(cfg)
    explore, actions, slots, batches = np.random.SeedSequence(123).spawn(4)
    assert agent.rng.random() == np.random.default_rng(explore).random()
    space = gym.spaces.Discrete(2, seed=int(actions.generate_state(1)[0]))
    samples = [agent.env.action_space.sample() for _ in range(50)]
    assert samples == [space.sample() for _ in range(50)]
    assert samples == [other.env.action_space.sample() for _ in range(50)]
    assert agent.memory.rng.integers(10**9) == np.random.default_rng(slots).integers(10**9)
    assert agent.memory.batch_rng.integers(10**9) == np.random.default_rng(batches).integers(10**9)


@pytest.mark.parametrize("no_xla", [False, True])
def test_the_replay_is_compiled_with_xla_unless_no_xla(tensorflow_ready, no_xla):
    agent = dqn.make_agent(dqn.Config(hidden="8", no_xla=no_xla))
    assert agent._replay._jit_compile is (not no_xla)


def test_tensorboard_writes_event_files(tmp_path, tensorflow_ready, capsys, monkeypatch):
    from conftest import run_main

    closed, close = [], dqn.TensorBoardLog.close
    monkeypatch.setattr(dqn.TensorBoardLog, "close", lambda self: closed.append(1) or close(self))
    out = tmp_path / "out"
    result = run_main(
        capsys,
        "--tensorboard",
        "--max-steps",
        "1500",
        "--min-observations",
        "500",
        "--eval-every",
        "500",
        "--no-gifs",
        "--results-dir",
        out,
    )
    assert result.returncode == 0, result.stderr
    events = list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0

    from tensorflow.core.util import event_pb2
    from tensorflow.python.lib.io import tf_record

    tags = set()
    for record in tf_record.tf_record_iterator(str(events[0])):
        event = event_pb2.Event.FromString(record)
        tags.update(value.tag for value in event.summary.value)
    assert {"train/episode_return", "train/epsilon", "train/loss", "eval/mean_return"} <= tags
    assert closed == [1]  # the writer is closed (flushed) once, at the end of the run


# ---- Dueling network (--dueling) -------------------------------------------------------------


def test_a_dueling_network_is_value_plus_centred_advantage_and_folds_into_a_plain_one(
    tensorflow_ready,
):
    model = dqn.build_dueling_network(4, 3, (16, 8))
    rng = np.random.default_rng(0)  # biases start at zero: give them values that show
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])
    kernel1, bias1, kernel2, bias2, value_w, value_b, adv_w, adv_b = model.get_weights()
    assert value_w.shape == (8, 1) and adv_w.shape == (8, 3)
    states = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    hidden = np.maximum(np.maximum(states @ kernel1 + bias1, 0) @ kernel2 + bias2, 0)
    value, advantage = hidden @ value_w + value_b, hidden @ adv_w + adv_b
    expected = value + advantage - advantage.mean(axis=1, keepdims=True)
    q = model(states).numpy()
    np.testing.assert_allclose(q, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(q.mean(axis=1), value[:, 0], rtol=1e-5, atol=1e-5)
    folded = dqn.fold_dueling(model.get_weights())
    assert [w.shape for w in folded] == [(4, 16), (16,), (16, 8), (8,), (8, 3), (3,)]
    np.testing.assert_allclose(dqn.q_values(folded, states), q, rtol=1e-5, atol=1e-5)


def test_a_dueling_agent_trains_both_heads_and_acts_with_the_folded_network(tensorflow_ready):
    agent = dqn.make_agent(
        dqn.Config(dueling=True, hidden="16,16", batch_size=16, gradient_steps=8, memory_size=64)
    )
    assert len(agent.target_network.get_weights()) == len(agent.q_network.get_weights()) == 8
    states = np.random.default_rng(1).normal(size=(32, 4)).astype(np.float32)
    np.testing.assert_allclose(
        dqn.q_values(agent.weights, states), agent.q_network(states).numpy(), atol=1e-5
    )
    fill(agent.memory, 64)
    before = agent.q_network.get_weights()
    agent.experience_replay()
    after = agent.q_network.get_weights()
    assert not np.array_equal(before[-4], after[-4]) and not np.array_equal(before[-2], after[-2])
    np.testing.assert_allclose(
        dqn.q_values(agent.weights, states), agent.q_network(states).numpy(), atol=1e-5
    )


def test_a_dueling_run_saves_a_plain_network_that_is_the_kept_snapshot(
    tensorflow_ready, monkeypatch, capsys, tmp_path
):
    import keras
    from conftest import run_main

    seen = whole_run_evaluate(monkeypatch)
    result = run_main(capsys, *WHOLE_RUN, "--dueling", "--results-dir", tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "summary.json").read_text())["config"]["dueling"] is True
    model = keras.saving.load_model(tmp_path / "model.keras", compile=False)
    assert [layer.units for layer in model.layers] == [256, 256, 2]  # plain Dense layers
    for got, kept in zip(model.get_weights(), seen["kept"], strict=True):
        np.testing.assert_array_equal(got, kept)


# ---- Prioritized replay (--prioritized) ------------------------------------------------------


def prioritized(capacity=4, alpha=0.6, beta=0.4, beta_steps=100, seed=0):
    return dqn.PrioritizedReplayMemory(
        capacity, 4, np.random.default_rng(seed), batch_rng=np.random.default_rng(seed + 1),
        alpha=alpha, beta=beta, beta_steps=beta_steps,
    )  # fmt: skip


def test_prioritized_memory_draws_each_transition_in_proportion_to_its_priority():
    memory = prioritized()
    fill(memory, 4)
    memory.priorities[:4] = [1.0, 2.0, 3.0, 4.0]
    slots = memory.draw(100_000)
    np.testing.assert_allclose(
        np.bincount(slots, minlength=4) / 1e5, [0.1, 0.2, 0.3, 0.4], atol=0.01
    )
    ids = memory.sample(1, 1_000)[0][..., 0].astype(int).ravel()  # the rows of the drawn slots
    np.testing.assert_array_equal(ids, memory.slots)


def test_prioritized_memory_with_one_row_draws_it_every_time_at_full_weight():
    # The edge --prioritized --batch-size 1 --min-observations 1 --train-every 1 reaches: one
    # stored transition, drawn for every slot of the minibatch, its importance weight 1.
    memory = prioritized()
    fill(memory, 1)
    np.testing.assert_array_equal(memory.draw(5), [0, 0, 0, 0, 0])
    np.testing.assert_array_equal(memory.importance, np.ones(5, np.float32))


def test_a_prioritized_run_replays_from_its_first_stored_transition(tmp_path, capsys):
    from conftest import run_main

    result = run_main(
        capsys, "--prioritized", "--batch-size", "1", "--min-observations", "1",
        "--train-every", "1", "--n-step", "1", "--max-steps", "50", "--no-gifs", "--no-xla",
        "--results-dir", tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "summary.json").read_text())["steps"] == 50


def test_prioritized_priorities_come_from_td_errors_and_new_transitions_start_at_the_largest():
    memory = prioritized(alpha=0.5)
    fill(memory, 3)
    np.testing.assert_array_equal(memory.priorities[:3], 1.0)  # nothing replayed yet
    memory.slots = np.array([0, 1, 2])  # as if the last draw had drawn these
    memory.update_priorities(np.array([-9.0, 0.0, 1.0]))
    np.testing.assert_allclose(memory.priorities[:3], [3.0, 1e-3, 1.0], rtol=1e-6)
    assert memory.max_priority == pytest.approx(3.0)
    fill(memory, 1, start=3)
    assert memory.priorities[3] == pytest.approx(3.0)
    np.testing.assert_allclose(memory.priorities[:3], [3.0, 1e-3, 1.0], rtol=1e-6)  # untouched


def test_a_draw_at_the_very_top_of_the_priorities_stays_among_the_stored_transitions():
    # A uniform draw times the priorities' sum lands in [0, sum); rounding can bring it to the
    # sum itself, which searchsorted puts one past the last stored slot. The draw clips it.
    memory = prioritized(capacity=8)
    fill(memory, 4)
    memory.batch_rng = types.SimpleNamespace(random=np.ones)  # every draw at the top
    np.testing.assert_array_equal(memory.draw(3), [3, 3, 3])


def test_importance_weights_undo_the_priorities_fully_once_beta_has_risen_to_one():
    memory = prioritized(beta=0.5, beta_steps=8)
    fill(memory, 4)
    memory.priorities[:4] = [1.0, 1.0, 1.0, 5.0]
    memory.draw(2_000)
    chance = memory.priorities[memory.slots] / 8.0
    expected = (4 * chance) ** -(0.5 + 0.5 * 4 / 8)  # 4 of 8 steps stored: beta 0.75
    np.testing.assert_allclose(memory.importance, expected / expected.max(), rtol=1e-5)
    fill(memory, 8, start=4)  # now past beta_steps: beta is 1
    memory.priorities[:4] = [1.0, 1.0, 1.0, 5.0]
    memory.draw(2_000)
    weights = memory.importance
    assert weights[memory.slots == 3].max() == pytest.approx(
        0.2
    )  # 1 / (4 * 5/8) over 1 / (4 * 1/8)
    np.testing.assert_allclose(weights[memory.slots != 3], 1.0)


def test_prioritized_memory_keeps_the_seeds_overwrite_rule():
    plain = dqn.ReplayMemory(5, 4, np.random.default_rng(3), batch_rng=np.random.default_rng(4))
    ranked = prioritized(capacity=5, seed=3)
    for memory in (plain, ranked):
        fill(memory, 40)
    np.testing.assert_array_equal(plain.rows, ranked.rows)


def prioritized_agent(**overrides):
    cfg = dict(prioritized=True, hidden="16,16", batch_size=8, gradient_steps=4, memory_size=64)
    agent = dqn.make_agent(dqn.Config(**{**cfg, **overrides}))
    rng = np.random.default_rng(0)
    for state in rng.normal(size=(64, 4)).astype(np.float32):
        agent.memory.store(state, int(rng.integers(2)), 1.0, state * 0.5, rng.random() < 0.3, 0.9)
    return agent


def test_prioritized_replay_weighs_each_transitions_loss_by_its_importance(tensorflow_ready):
    agent = prioritized_agent(no_xla=True)
    batches = agent.memory.sample(4, 8)
    before = agent.q_network.get_weights()
    zero = np.zeros((4, 8), np.float32)
    agent._replay(*batches, importance=zero)  # every weight zero: no gradient
    for a, b in zip(before, agent.q_network.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    agent._replay(*batches, importance=np.ones((4, 8), np.float32))
    assert any(
        not np.array_equal(a, b) for a, b in zip(before, agent.q_network.get_weights(), strict=True)
    )


def test_prioritized_replay_steps_on_and_reports_the_importance_weighted_mean_loss(
    tensorflow_ready,
):
    # Four draws of one stored row, each weighed by 0.5: the mean of the weighted losses is
    # half one row's loss, and moves the weights half as far as one row would. A sum over the
    # minibatch, or a loss divided by its weight, would both be four times that.
    agent = sgd_agent(batch_size=4, prioritized=True)
    state, next_state = np.random.default_rng(6).normal(size=(2, 4)).astype(np.float32)
    q = dqn.q_values(agent.weights, state)
    agent.memory.store(state, 0, float(q[0]) + 3.0, next_state, 1.0, 0.81)  # 3 too low
    bias = agent.q_network.get_weights()[-1]
    loss, *_ = agent._replay(
        *agent.memory.sample(1, 4), importance=np.full((1, 4), 0.5, np.float32)
    )
    assert float(loss) == pytest.approx(0.5 * 3.0**2 / agent.n_actions, rel=1e-4)
    moved = agent.q_network.get_weights()[-1] - bias
    assert moved[0] == pytest.approx(0.5 * 1e-3 * 2 * 3.0 / 2, rel=1e-3)
    assert moved[1] == 0.0


def test_prioritized_replay_sets_the_drawn_priorities_from_their_td_errors_after_it(
    tensorflow_ready,
):
    agent = prioritized_agent(priority_alpha=0.7)
    agent.experience_replay()
    memory, slots = agent.memory, agent.memory.slots
    n = agent.n_observations
    rows = memory.rows[slots]
    states, actions, rewards = rows[:, :n], rows[:, n].astype(int), rows[:, n + 1]
    terminated, next_states, discounts = rows[:, n + 2], rows[:, n + 3 : 2 * n + 3], rows[:, -1]
    online_next = dqn.q_values(agent.weights, next_states)
    target_next = dqn.q_values(agent.target_network.get_weights(), next_states)
    value = target_next[np.arange(len(slots)), online_next.argmax(axis=1)]  # Double DQN
    targets = rewards + discounts * (1 - terminated) * value
    taken = dqn.q_values(agent.weights, states)[np.arange(len(slots)), actions]
    expected = (np.abs(targets - taken) + 1e-6) ** 0.7
    np.testing.assert_allclose(memory.priorities[slots], expected, rtol=1e-4, atol=1e-5)
    assert memory.max_priority == pytest.approx(max(1.0, expected.max()))


# ---- QR-DQN (--quantiles) --------------------------------------------------------------------


def test_a_quantile_network_folds_into_the_plain_network_of_its_quantiles_means(tensorflow_ready):
    model = dqn.build_q_network(4, 2 * 5, (8,))  # 2 actions, 5 quantiles each
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])
    states = rng.normal(size=(32, 4)).astype(np.float32)
    means = model(states).numpy().reshape(32, 2, 5).mean(axis=2)
    folded = dqn.fold_quantiles(model.get_weights(), 2)
    assert [w.shape for w in folded] == [(4, 8), (8,), (8, 2), (2,)]
    np.testing.assert_allclose(dqn.q_values(folded, states), means, rtol=1e-5, atol=1e-5)


def constant_quantiles(agent, per_action):
    """Set a network's last layer so that it outputs these quantiles whatever the state."""
    weights = agent.get_weights()
    weights[-2] = np.zeros_like(weights[-2])
    weights[-1] = np.asarray(per_action, np.float32).ravel()
    agent.set_weights(weights)


@pytest.mark.parametrize("double", [False, True], ids=["dqn", "double-dqn"])
def test_quantile_next_value_is_the_targets_quantiles_of_the_chosen_action(
    tensorflow_ready, double
):
    agent = dqn.make_agent(dqn.Config(quantiles=3, double_dqn=double, hidden="8"))
    # By the quantiles' mean the online network picks action 1 and the target network action
    # 0; by their largest quantile it would be the other way round.
    constant_quantiles(agent.q_network, [[0.0, 0.0, 3.0], [2.0, 2.0, 2.0]])
    constant_quantiles(agent.target_network, [[4.0, 4.0, 4.0], [0.0, 0.0, 9.0]])
    value = agent.next_value(np.zeros((1, 4), np.float32)).numpy()[0]
    np.testing.assert_allclose(value, [0.0, 0.0, 9.0] if double else [4.0, 4.0, 4.0])


def test_the_quantile_loss_is_the_quantile_huber_loss_toward_the_target_distribution(
    tensorflow_ready,
):
    agent = dqn.make_agent(dqn.Config(quantiles=2, double_dqn=False, hidden="8"))
    constant_quantiles(agent.q_network, [[1.0, 3.0], [0.0, 4.0]])
    constant_quantiles(agent.target_network, [[2.0, 2.0], [10.0, 12.0]])  # a' = 1: Z = 10, 12
    states = np.zeros((3, 4), np.float32)
    actions, rewards = np.array([1, 0, 0], np.int32), np.array([1.0, 2.0, 1.5], np.float32)
    terminated = np.array([0.0, 1.0, 1.0], np.float32)
    discounts = np.array([0.5, 0.5, 0.5], np.float32)
    loss = agent._gradient_step(states, actions, rewards, states, terminated, discounts)
    # By hand: targets 1 + 0.5 * (10, 12) = (6, 7) for quantiles (0, 4) of action 1, and the
    # reward alone, (2, 2) and (1.5, 1.5), for quantiles (1, 3) of action 0; levels 1/4 and 3/4.
    # Errors of 0.5 meet the Huber loss's square part, and three transitions against two
    # quantiles tell the sum over quantiles from the mean over the batch.
    expected = []
    cases = (([6.0, 7.0], [0.0, 4.0]), ([2.0, 2.0], [1.0, 3.0]), ([1.5, 1.5], [1.0, 3.0]))
    for targets, quantiles in cases:
        total = 0.0
        for level, quantile in zip((0.25, 0.75), quantiles, strict=True):
            for target in targets:
                error = target - quantile
                huber = 0.5 * error**2 if abs(error) <= 1 else abs(error) - 0.5
                total += abs(level - (error < 0)) * huber / len(targets)
        expected.append(total)
    assert float(loss) == pytest.approx(np.mean(expected), rel=1e-5)


def test_quantile_replay_learns_the_quantiles_of_a_random_reward_and_acts_on_their_mean(
    tensorflow_ready,
):
    # One state, action 0, terminal, reward 0 or 10 with even odds: the quantiles at levels
    # 1/8, 3/8, 5/8, 7/8 are 0, 0, 10, 10, and their mean is the expected reward, 5.
    cfg = dqn.Config(quantiles=4, hidden="16", batch_size=64, gradient_steps=50,
                     learning_rate=1e-2, memory_size=256, min_observations=64)  # fmt: skip
    agent = dqn.make_agent(cfg)
    state = np.array([0.1, -0.2, 0.3, 0.4], np.float32)
    for i in range(256):
        agent.memory.store(state, 0, 10.0 * (i % 2), state, True, cfg.gamma)
    for _ in range(30):
        agent.experience_replay()
    quantiles = agent.q_network(state[None]).numpy().reshape(2, 4)[0]  # in level order
    np.testing.assert_allclose(quantiles, [0.0, 0.0, 10.0, 10.0], atol=1.0)
    assert dqn.q_values(agent.weights, state[None])[0, 0] == pytest.approx(5.0, abs=0.5)


def test_a_quantile_run_saves_a_plain_network_that_is_the_kept_snapshot(
    tensorflow_ready, monkeypatch, capsys, tmp_path
):
    import keras
    from conftest import run_main

    seen = whole_run_evaluate(monkeypatch)
    result = run_main(capsys, *WHOLE_RUN, "--quantiles", "5", "--results-dir", tmp_path)
    assert result.returncode == 0, result.stderr
    model = keras.saving.load_model(tmp_path / "model.keras", compile=False)
    assert [layer.units for layer in model.layers] == [256, 256, 2]
    for got, kept in zip(model.get_weights(), seen["kept"], strict=True):
        np.testing.assert_array_equal(got, kept)


# ---- Parameter-space noise (--param-noise) ---------------------------------------------------


def noisy_agent(**overrides):
    cfg = dict(param_noise=0.1, hidden="16,16", batch_size=32, gradient_steps=2, memory_size=64,
               min_observations=32, epsilon_start=0.0, epsilon_min=0.0, no_xla=True)  # fmt: skip
    return dqn.make_agent(dqn.Config(**{**cfg, **overrides}))


def perturb_to_the_rarer_action(agent, states) -> float:
    """Noise only on the output bias of the action that the greedy policy takes less often
    on `states`, large enough that the perturbed network always takes it. Returns the share
    of states where the two differ: at least half, whatever the initial weights."""
    greedy = np.argmax(dqn.q_values(agent.weights, states), axis=1)
    rare = int(np.mean(greedy == 1) < 0.5)
    agent.noise.direction = [np.zeros_like(w) for w in agent.weights]
    agent.noise.direction[-1][rare] = 1e4
    return float(np.mean(greedy != rare))


def test_param_noise_acts_on_the_weights_plus_scaled_noise_and_leaves_the_weights_alone(
    tensorflow_ready,
):
    agent = noisy_agent()
    plain = [w.copy() for w in agent.weights]
    agent.noise.scale = 0.5  # large enough that the perturbed greedy actions differ
    agent.start_episode()
    for w, z, p in zip(agent.weights, agent.noise.direction, agent.noise.perturbed, strict=True):
        np.testing.assert_allclose(p, w + 0.5 * z, rtol=1e-6)
    # one standard normal per weight
    noise = np.concatenate([z.ravel() for z in agent.noise.direction])
    assert noise.size == 386 and noise.std() == pytest.approx(1.0, abs=0.15)
    states = np.random.default_rng(0).normal(size=(300, 4)).astype(np.float32)
    perturbed = np.argmax(dqn.q_values(agent.noise.perturbed, states), axis=1)
    assert (perturbed != np.argmax(dqn.q_values(plain, states), axis=1)).any()
    np.testing.assert_array_equal([agent.get_action(s) for s in states], perturbed)
    for w, p in zip(agent.weights, plain, strict=True):  # checks and saving see these
        np.testing.assert_array_equal(w, p)


def test_param_noise_scale_grows_while_the_perturbed_actions_differ_too_rarely_and_shrinks_else(
    tensorflow_ready,
):
    agent = noisy_agent(param_noise=0.2)
    states = np.random.default_rng(1).normal(size=(100, 4)).astype(np.float32)
    agent.start_episode()
    # no difference at all: grow
    agent.noise.direction = [np.zeros_like(w) for w in agent.weights]
    agent.noise.perturb(agent.weights, states)
    assert agent.noise.scale == pytest.approx(0.01 * 1.01)
    assert perturb_to_the_rarer_action(agent, states) >= 0.5  # more than 0.2: shrink
    # the perturbed weights use the scale from before this call's change
    agent.noise.perturb(agent.weights, states)
    agent.noise.perturb(agent.weights, states)
    assert agent.noise.scale == pytest.approx(0.01 * 1.01 / 1.01**2)


def test_param_noise_is_drawn_at_each_episode_start_and_held_through_the_episode(
    tensorflow_ready, monkeypatch
):
    agent = noisy_agent(max_steps=300, eval_every=10**6, log_every=10**6, epsilon_min=1.0)
    agent.epsilon = 1.0  # random actions: short episodes, and the noise is drawn all the same
    noise_at_step, act = [], agent.get_action

    def noting_act(state):
        noise_at_step.append(agent.noise.direction[0][0, 0])
        return act(state)

    monkeypatch.setattr(agent, "get_action", noting_act)
    run = dqn.monitored_training(agent, dqn.StopFlag())
    ends = [step for _, step, _, _ in run["episodes"]]
    assert len(ends) > 5
    starts = [0, *ends[:-1]] if ends[-1] == 300 else [0, *ends]  # the 0-based first steps
    for first, last in zip(starts, [*starts[1:], 300], strict=True):
        assert len(set(noise_at_step[first:last])) == 1  # one draw a whole episode
    assert len({noise_at_step[first] for first in starts}) == len(starts)  # a new one each


def test_param_noise_follows_each_replay_and_adapts_on_its_first_minibatch(
    tensorflow_ready, monkeypatch
):
    agent = noisy_agent()
    fill(agent.memory, 64)
    agent.start_episode()
    seen = []
    monkeypatch.setattr(agent.noise, "perturb", lambda weights, states=None: seen.append(states))
    batches = agent.memory.sample(2, 32)
    monkeypatch.setattr(agent.memory, "sample", lambda n, size: batches)
    agent.experience_replay()
    np.testing.assert_array_equal(seen[0], batches[0][0])
    monkeypatch.undo()
    monkeypatch.setattr(agent.memory, "sample", lambda n, size: batches)
    scale = agent.noise.scale
    agent.experience_replay()  # the perturbed weights are the new weights plus the noise
    for w, z, p in zip(agent.weights, agent.noise.direction, agent.noise.perturbed, strict=True):
        np.testing.assert_allclose(p, w + scale * z, rtol=1e-6)
    states = batches[0][0]  # the scale moved by how often the two disagree on these
    greedy = np.argmax(dqn.q_values(agent.weights, states), axis=1)
    differ = np.mean(greedy != np.argmax(dqn.q_values(agent.noise.perturbed, states), axis=1))
    expected = scale * 1.01 if differ < agent.cfg.param_noise else scale / 1.01
    assert agent.noise.scale == pytest.approx(expected)


def test_param_noise_scale_shrinks_when_the_actions_differ_exactly_as_often_as_asked(
    tensorflow_ready,
):
    agent = noisy_agent()
    states = np.random.default_rng(1).normal(size=(100, 4)).astype(np.float32)
    share = perturb_to_the_rarer_action(agent, states)
    agent.noise.share = share
    agent.noise.perturb(agent.weights)
    # differ == --param-noise: not fewer, so the scale goes down
    agent.noise.perturb(agent.weights, states)
    assert agent.noise.scale == pytest.approx(0.01 / 1.01)


# ---- Count-based exploration (--count-bonus) -------------------------------------------------


def counting_agent(beta=0.5, **overrides):
    """A MountainCar agent (observations in [-1.2, 0.6] x [-0.07, 0.07]: cells of 0.09 by
    0.007 on the 20-a-side grid) with the count bonus on, one-step targets."""
    cfg = dict(env="MountainCar-v0", count_bonus=beta, n_step=1, hidden="16,16", no_xla=True)
    return dqn.make_agent(dqn.Config(**{**cfg, **overrides}))


def in_cell(i, j, where=0.5):
    """A MountainCar state inside cell (i, j) of the grid, `where` of the way across it."""
    return np.array([-1.2 + 0.09 * (i + where), -0.07 + 0.007 * (j + where)], np.float32)


def test_count_bonus_is_beta_over_the_root_of_the_visits_to_the_states_cell(tensorflow_ready):
    agent = counting_agent(beta=0.5)
    # Near both edges of one cell: the same cell, so one count.
    assert agent.exploration_bonus(in_cell(3, 7, 0.1)) == pytest.approx(0.5)
    assert agent.exploration_bonus(in_cell(3, 7, 0.9)) == pytest.approx(0.5 / math.sqrt(2))
    assert agent.exploration_bonus(in_cell(3, 7, 0.5)) == pytest.approx(0.5 / math.sqrt(3))
    # The next cell along either dimension (just past the edge) is counted apart.
    assert agent.exploration_bonus(in_cell(4, 7, 0.1)) == pytest.approx(0.5)
    assert agent.exploration_bonus(in_cell(3, 8, 0.1)) == pytest.approx(0.5)
    assert agent.exploration_bonus(in_cell(3, 7, 0.9)) == pytest.approx(0.5 / 2)
    assert agent.exploration_bonus.visits == {(3, 7): 4, (4, 7): 1, (3, 8): 1}
    # Past the bounds the grid goes on, cell by cell: just below the lowest position is cell -1,
    # not a second share of cell 0.
    assert agent.exploration_bonus(in_cell(-1, 7, 0.5)) == pytest.approx(0.5)
    assert agent.exploration_bonus(in_cell(0, 7, 0.5)) == pytest.approx(0.5)
    assert (-1, 7) in agent.exploration_bonus.visits


def test_count_bonus_is_added_to_the_stored_reward_of_the_next_states_cell(tensorflow_ready):
    agent = counting_agent(beta=0.5)
    state, far = in_cell(0, 0), in_cell(19, 19)
    for _ in range(3):  # three steps into cell (19, 19): bonuses 0.5, 0.5/sqrt 2, 0.5/sqrt 3
        agent.remember(state, 1, -1.0, far, False, False)
    agent.remember(far, 0, -1.0, state, True, False)  # the first step into cell (0, 0)
    rewards = stored(agent.memory)[:, 2 + 1]
    np.testing.assert_allclose(rewards, [-0.5, -1 + 0.5 / math.sqrt(2), -1 + 0.5 / math.sqrt(3),
                                         -0.5], rtol=1e-6)  # fmt: skip
    # the next states' cells; not the states'
    assert agent.exploration_bonus.visits == {(19, 19): 3, (0, 0): 1}


def test_without_count_bonus_the_stored_reward_is_the_envs_and_nothing_is_counted(
    tensorflow_ready,
):
    agent = counting_agent(beta=0.0)
    agent.remember(in_cell(0, 0), 1, -1.0, in_cell(1, 1), False, False)
    assert stored(agent.memory)[0, 2 + 1] == -1.0
    assert agent.exploration_bonus is dqn.no_bonus


def test_count_bonus_with_n_step_returns_sums_each_steps_bonus_discounted(tensorflow_ready):
    # MountainCar's row stores 3-step returns with the bonus: each of the three rewards carries
    # the bonus of the cell its own step reached, discounted with it.
    agent = counting_agent(beta=0.5, n_step=3, gamma=0.5)
    cells = [in_cell(1, 1), in_cell(2, 2), in_cell(1, 1), in_cell(2, 2)]
    for state, next_state in zip(cells, cells[1:], strict=False):
        agent.remember(state, 0, -1.0, next_state, False, False)
    assert len(agent.memory) == 1
    bonuses = [0.5, 0.5, 0.5 / math.sqrt(2)]  # next states: (2, 2), (1, 1), (2, 2) again
    expected = sum(0.5**k * (-1.0 + b) for k, b in enumerate(bonuses))
    assert stored(agent.memory)[0, 2 + 1] == pytest.approx(expected, rel=1e-6)


# ---- Weight averaging (--average-steps), behind the seam -----------------------------------


def averaging_monitor(cfg, agent):
    return dqn.RunMonitor(cfg, None, dqn.PhaseClock(), dqn.StopFlag(), agent.weights)


def test_average_steps_keeps_an_exponential_moving_average_of_the_replays_weights(
    tensorflow_ready,
):
    # train_every 16 over 64 steps: each replay keeps 3/4 of the mean and adds 1/4 of the new.
    cfg = small_config(hidden="8", gradient_steps=2, train_every=16, average_steps=64)
    agent = dqn.make_agent(cfg)
    monitor = averaging_monitor(cfg, agent)
    fill(agent.memory, 64)
    mean = [w.copy() for w in agent.weights]
    checked = monitor.checked_weights()
    assert all(np.array_equal(a, w) for a, w in zip(checked, mean, strict=True))
    for step in (16, 32, 48):
        monitor.on_replay(step, agent.experience_replay(), agent.weights)
        mean = [0.75 * m + 0.25 * w for m, w in zip(mean, agent.weights, strict=True)]
        for a, m in zip(monitor.checked_weights(), mean, strict=True):
            np.testing.assert_allclose(a, m, rtol=1e-6, atol=1e-7)
    latest = zip(monitor.checked_weights(), agent.weights, strict=True)
    assert not all(np.allclose(a, w) for a, w in latest)


def test_without_average_steps_the_checks_see_the_latest_weights(tensorflow_ready):
    cfg = small_config(hidden="8", gradient_steps=2)
    agent = dqn.make_agent(cfg)
    monitor = averaging_monitor(cfg, agent)
    fill(agent.memory, 64)
    monitor.on_replay(16, agent.experience_replay(), agent.weights)
    assert monitor.checked_weights() is agent.weights


def test_the_checks_and_a_run_stopped_before_them_see_the_averaged_weights(
    tensorflow_ready, monkeypatch
):
    cfg = small_config(hidden="8", gradient_steps=2, average_steps=64, eval_every=320)
    agent = dqn.make_agent(cfg)
    mean, seen = [w.copy() for w in agent.weights], []
    replay = agent.experience_replay

    def replay_and_average():  # the same mean, kept beside the run
        nonlocal mean
        loss = replay()
        mean = [0.75 * m + 0.25 * w for m, w in zip(mean, agent.weights, strict=True)]
        return loss

    def evaluate(selector, step, weights):
        seen.append((weights, mean, agent.weights))
        return 0.0

    monkeypatch.setattr(agent, "experience_replay", replay_and_average)
    monkeypatch.setattr(dqn.SnapshotSelector, "evaluate", evaluate)
    dqn.monitored_training(agent, dqn.StopFlag())
    assert len(seen) == 4  # steps 320, 640, 960 and 1,280 of 1,300
    for given, expected, latest in seen:  # replays start at step 32, so they differ by 320
        for g, e in zip(given, expected, strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-7)
        assert not all(np.allclose(g, w) for g, w in zip(given, latest, strict=True))
    monkeypatch.undo()
    stopped = dqn.make_agent(small_config(hidden="8", gradient_steps=2, average_steps=64))
    run = dqn.monitored_training(stopped, dqn.StopFlag())  # no check in 1,300 steps
    kept = zip(run["kept"].weights, stopped.weights, strict=True)
    assert not all(np.allclose(k, w) for k, w in kept)  # the mean, not the latest
