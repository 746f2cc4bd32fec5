"""Property tests over the whole flag space: every command line is refused in one line, or
accepted and then works with every library it reaches."""

import contextlib
import dataclasses
import io
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dqn_cartpole as dqn

FIELDS = {field.name: field for field in dataclasses.fields(dqn.Config)}
JUNK = st.sampled_from(["", "ten", "1e3", "0x10", "--", "nan", "-inf", "1,000", " 7"])
HIDDEN = ["24,12", "64", "1,1,1", "0", "8,-1", "a,b", "", "24,,12", "4096,4096,4096", " 7"]
ENVS = ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "Pendulum-v1", "NoSuchEnv-v0", "", "x/y"]


def any_value(field):
    """Strings for one flag: near its range, anywhere, or junk."""
    if field.metadata["choices"]:
        return st.sampled_from([*field.metadata["choices"], "bogus", ""])
    if field.name == "env":
        return st.sampled_from(ENVS)
    if field.name == "hidden":
        return st.sampled_from(HIDDEN)
    if field.type == "int":
        return st.one_of(st.integers(-3, 2_000), st.integers(-(2**70), 2**70), JUNK)
    if field.type == "float":
        near = st.floats(-0.5, 1.5)
        anything = st.floats(allow_nan=True, allow_infinity=True)
        return st.one_of(near.map(repr), anything.map(repr), JUNK)
    return st.none()


@st.composite
def command_lines(draw):
    """Any command line: each flag present or not, with any value; sometimes a stray word."""
    argv = []
    for name, field in FIELDS.items():
        if name in ("results_dir", "watch", "tensorboard") or not draw(st.booleans()):
            continue
        if field.type == "bool":
            argv.append(dqn.flag(name))
        else:
            argv += [dqn.flag(name), str(draw(any_value(field)))]
    if draw(st.booleans()):
        argv.append(draw(st.sampled_from(["--no-such-flag", "stray", "--seed"])))
    return argv


@st.composite
def small_valid_command_lines(draw, envs):
    """Command lines that the README says are fine, with sizes small enough to run at once."""
    batch = draw(st.integers(1, 32))
    memory = draw(st.integers(batch, 3_000))
    values = {
        "env": st.sampled_from(envs),
        "seed": st.integers(0, 2**32 - 1),
        "batch_size": st.just(batch),
        "memory_size": st.just(memory),
        "min_observations": st.integers(batch, memory),
        "gamma": st.floats(1e-6, 1.0),
        "learning_rate": st.floats(1e-8, 0.1),
        "hidden": st.sampled_from(["24,12", "8", "16,8,4"]),
        "n_step": st.integers(1, 5),
        "epsilon_start": st.floats(0.0, 1.0),
        "epsilon_min": st.floats(0.0, 1.0),
        "epsilon_decay": st.floats(0.0, 1.0),
        "gradient_steps": st.integers(1, 8),
        "eval_episodes": st.integers(1, 20),
        "polish_steps": st.integers(0, 100),
        "memory_policy": st.sampled_from(["random", "fifo"]),
        "loss": st.sampled_from(["mse", "huber"]),
        "priority_alpha": st.floats(0.0, 1.0),
        "priority_beta": st.floats(0.0, 1.0),
        "quantiles": st.integers(0, 5),
        "param_noise": st.floats(0.0, 0.99),
        "count_bonus": st.floats(0.0, 2.0),
        "average_steps": st.integers(0, 200),
    }
    linked = ("batch_size", "memory_size", "min_observations")  # always given together
    argv = []
    for name, field in FIELDS.items():
        if name in ("results_dir", "watch", "tensorboard"):
            continue
        if name not in (*linked, "env") and not draw(st.booleans()):
            continue
        if field.type == "bool":
            argv.append(dqn.flag(name))
        else:
            argv += [dqn.flag(name), str(draw(values.get(name, st.integers(1, 50))))]
    if "--quantiles" in argv and argv[argv.index("--quantiles") + 1] != "0":
        argv = [word for word in argv if word not in ("--dueling", "--prioritized")]  # alone
    if "CartPole-v1" in argv and "--count-bonus" in argv:  # its grid needs bounded observations
        del argv[argv.index("--count-bonus") : argv.index("--count-bonus") + 2]
    if "--average-steps" in argv:  # 0, or at least one replay's steps
        i, every = argv.index("--average-steps") + 1, dqn.Config().train_every
        every = int(argv[argv.index("--train-every") + 1]) if "--train-every" in argv else every
        argv[i] = str(max(int(argv[i]), every)) if argv[i] != "0" else "0"
    return argv


def refused_or_accepted(argv):
    """Parse and validate `argv` as main() does. Returns the Config, or None if refused, after
    checking that the refusal is one line on stderr and exit code 2."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            cfg = dqn.parse_args(argv)
    except SystemExit as exit:
        assert exit.code == 2
        lines = err.getvalue().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("dqn_cartpole.py: error:"), lines
        return None
    try:
        dqn.validate(cfg)
    except dqn.ConfigError as error:
        assert "\n" not in str(error) and str(error)
        return None
    return cfg


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(command_lines())
def test_every_command_line_is_refused_in_one_line_or_accepted(argv):
    refused_or_accepted(argv)  # raises on a traceback-shaped failure or a multi-line refusal


# Each replay is traced anew (about a second a command line): 40 in all, in two tests that two
# workers can run side by side.
@pytest.mark.parametrize("envs", [["CartPole-v1"], ["Acrobot-v1", "MountainCar-v0"]])
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_accepted_command_line_builds_replays_and_evaluates(tensorflow_ready, envs, data):
    argv = data.draw(small_valid_command_lines(envs))
    cfg = refused_or_accepted(argv)
    assert cfg is not None, f"refused a good command line: {argv}"
    assert cfg.env in envs
    cfg = dataclasses.replace(cfg, no_xla=True)  # XLA would compile for a second per example
    agent = dqn.make_agent(cfg)
    state, _ = agent.env.reset(seed=cfg.seed)
    while len(agent.memory) < cfg.min_observations:  # the loop's rule for starting to replay
        action = agent.get_action(state)
        next_state, reward, terminated, truncated, _ = agent.env.step(action)
        agent.remember(state, action, reward, next_state, terminated, truncated)
        agent.decay_epsilon()
        state = next_state if not (terminated or truncated) else agent.env.reset()[0]
    loss = agent.experience_replay()
    assert math.isfinite(loss), loss  # a learning rate <= 0.1 cannot blow up in 8 Adam steps
    # The NumPy copy that acts is the network that was just trained (a dueling head folded).
    for numpy_weight, keras_weight in zip(
        agent.weights, agent.acting_weights(agent.q_network.get_weights()), strict=True
    ):
        np.testing.assert_array_equal(numpy_weight, keras_weight)
    returns = dqn.evaluate(agent.weights, cfg.env, cfg.eval_episodes, dqn.EVAL_SEED)
    assert returns.shape == (cfg.eval_episodes,) and np.all(np.isfinite(returns))


def first_steps(seed: int):
    """The initial weights, 60 epsilon-greedy actions (epsilon 0.5) and a replay's minibatches
    of an agent seeded as main() seeds it."""
    import keras

    keras.utils.set_random_seed(seed)
    agent = dqn.make_agent(dqn.Config(seed=seed, hidden="8", epsilon_start=0.5, epsilon_decay=1))
    state, _ = agent.env.reset(seed=seed)
    actions = []
    for _ in range(60):
        actions.append(agent.get_action(state))
        next_state, reward, terminated, truncated, _ = agent.env.step(actions[-1])
        agent.remember(state, actions[-1], reward, next_state, terminated, truncated)
        state = agent.env.reset()[0] if terminated or truncated else next_state
    return agent.weights, actions, agent.memory.sample(2, 8)


@pytest.mark.parametrize("seed", [0, 2**32 - 1])
def test_the_extreme_seeds_make_a_run_repeatable_and_their_own(tensorflow_ready, seed):
    weights, actions, batches = first_steps(seed)
    again = first_steps(seed)
    other = first_steps(seed ^ 1)  # the neighbouring seed
    for a, b in zip(weights, again[0], strict=True):
        np.testing.assert_array_equal(a, b)
    assert actions == again[1]
    for a, b in zip(batches, again[2], strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(weights[0], other[0][0])  # Keras' initial weights
    assert actions != other[1]  # exploration and the env
    assert not np.array_equal(batches[0], other[2][0])  # the minibatches
