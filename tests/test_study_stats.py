"""The study's statistics against values worked out by hand: every interval in the README and
in results/study/README.md comes from these functions."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import study


@pytest.mark.parametrize(
    "values, q, expected",
    [
        ([1, 2, 3, 4], 0.5, 2.5),
        ([1, 2, 3, 4], 0.25, 1.75),  # position 0.75 between 1 and 2
        ([10, 20, 30, 40, 50], 0.9, 46.0),  # position 3.6 between 40 and 50
        ([7], 0.3, 7.0),
        ([1, 2, math.inf], 0.5, 2.0),  # an unsolved run counts as slower than any number
        ([1, 2, math.inf], 0.75, math.inf),  # between 2 and "never": never
        ([1, math.inf], 0.0, 1.0),
    ],
)
def test_quantile_interpolates_linearly_and_treats_inf_as_slowest(values, q, expected):
    assert study.quantile(np.array(values, dtype=float), q) == expected


def test_quantile_agrees_with_numpy_on_finite_values():
    values = np.sort(np.random.default_rng(0).exponential(20_000, size=101))
    for q in (0.025, 0.1, 0.5, 0.9, 0.975):
        assert study.quantile(values, q) == pytest.approx(np.quantile(values, q), rel=1e-12)


def test_median_sorts_its_input():
    assert study.median([9, 1, 5, 3]) == 4.0


def test_interval_is_the_middle_95_percent():
    assert study.interval(np.arange(1001.0)[::-1]) == (25.0, 975.0)


def test_bootstrap_resamples_the_same_seeds_for_every_variant():
    rng = np.random.default_rng(1)
    a = rng.exponential(20_000, size=40)
    medians = study.bootstrap_medians([a, 2 * a], np.random.default_rng(2))
    assert medians.shape == (2, study.BOOTSTRAP)
    # Paired: every resample picks the same seeds for both rows, so the ratio is exactly 2.
    np.testing.assert_allclose(medians[1] / medians[0], 2.0)
    # And the resamples do vary: the interval of the median is not a single point.
    low, high = study.interval(medians[0])
    assert low < study.median(a) < high


def test_bootstrap_interval_of_the_median_matches_a_known_case():
    # Seeds 1..9: a resample's median is <= k when at least 5 of its 9 draws are, which has
    # probability 0.0014 for k = 1, 0.030 for k = 2, 0.970 for k = 7 and 0.9986 for k = 8
    # (binomial sums). So the 2.5% quantile is 2 and the 97.5% quantile is 8, with a margin
    # of several standard errors for 10,000 resamples.
    medians = study.bootstrap_medians([np.arange(1.0, 10.0)], np.random.default_rng(0))
    assert study.interval(medians[0]) == (2.0, 8.0)


def runs_of(variant, steps, seconds=5.0):
    return [
        {
            "variant": variant,
            "flags": "--x" if variant != "a" else "",
            "seed": str(seed),
            "solved": str(step is not None),
            "steps_to_solve": "" if step is None else str(step),
            "own_eval_mean": "500.0" if variant == "a" else "490.0",
            "process_seconds": str(seconds),
        }
        for seed, step in enumerate(steps)
    ]


def test_report_gives_solved_counts_medians_and_paired_ratios():
    runs = runs_of("a", [1000, 2000, 3000, 4000]) + runs_of("b", [2000, 4000, 6000, None])
    table = study.report(runs, None).splitlines()
    row_a = next(line for line in table if line.startswith("| a |"))
    row_b = next(line for line in table if line.startswith("| b |"))
    # Median (IQR), then after the interval and the ratio: the 90th percentile and the worst.
    assert "| 4/4 | 2,500 (1,750-3,250) |" in row_a and "| 3,700 | 4,000 |" in row_a
    assert "| 3/4 | 5,000 (3,500-not solved) |" in row_b
    assert "| not solved | not solved |" in row_b
    assert "| 2.00 (" in row_b  # 5,000 / 2,500
    # Saved models: median and lowest; >= 475, >= 495, at 500; then the median process time.
    assert "| 500.0, 500.0 | 4/4 | 4/4 | 4/4 | 5.0 |" in row_a
    assert "| 490.0, 490.0 | 4/4 | 0/4 | 0/4 | 5.0 |" in row_b
    counts = study.report(runs, None, within=(2_500,))
    assert "Solved within 2,500 steps: a 2/4, b 1/4." in counts
    runs[1]["own_eval_mean"] = "499.5"
    runs[2]["own_eval_mean"] = ""  # no model saved
    scored = study.report(runs, None, at_least=(495.0, 500.0))
    assert "Saved models scoring 495 or more: a 3/4, b 0/4." in scored
    assert "Saved models scoring 500 or more: a 2/4, b 0/4." in scored


def test_the_ratio_interval_pairs_the_seeds():
    # b takes exactly twice a's steps on every seed: paired, every resample's ratio is 2, so
    # the interval is the point; unpaired, a's spread (1,000 to 64,000) would make it wide.
    steps = [1000, 2000, 4000, 8000, 16000, 32000, 64000]
    runs = runs_of("a", steps) + runs_of("b", [2 * s for s in steps])
    row_b = next(line for line in study.report(runs, None).splitlines() if line.startswith("| b"))
    assert "| 2.00 (2.00-2.00) | 0, 7 |" in row_b  # and slower on every one of the 7 seeds


def test_variants_on_different_seeds_get_a_note_not_a_crash():
    # One row run on two seed sets under two names: no seed in common, so nothing to pair.
    runs = runs_of("a", [1000, 2000]) + [
        {**r, "seed": str(int(r["seed"]) + 100)} for r in runs_of("b", [3000, 4000])
    ]
    assert "share no seed" in study.report(runs, None)


def polished_run(checks, certifications, solved_at=1000):
    """A study row of a solved Acrobot run: (step, score) checks from the solve on."""
    return {
        "env": "Acrobot-v1",
        "steps_to_solve": str(solved_at),
        "evaluations": json.dumps([[500, -300.0], *checks]),
        "certifications": json.dumps(certifications),
    }


def test_replaying_polishing_keeps_what_checks_would_have_kept():
    # Checks every 1,000 steps from the solve at 1,000; those that match the best so far are
    # certified: 1,000 (-90 -> -95), 3,000 (-85 -> -88), 6,000 (-80 -> -92).
    checks = [[1000, -90.0], [2000, -99.0], [3000, -85.0], [4000, -86.0], [5000, -87.0],
              [6000, -80.0], [7000, -95.0]]  # fmt: skip
    certified = [[1000, -90.0, -95.0], [3000, -85.0, -88.0], [6000, -80.0, -92.0]]
    run = polished_run(checks, certified)
    # No patience: the best certified (-88, at 3,000) over the whole 6,000 steps.
    assert study.replay_polishing(run, 0, 30_000) == (-88.0, 6000)
    # Patience 2: after 3,000 kept, 4,000 and 5,000 keep nothing: stop at 5,000.
    assert study.replay_polishing(run, 2, 30_000) == (-88.0, 4000)
    # Patience 1: 2,000 keeps nothing: stop there with the solve's snapshot.
    assert study.replay_polishing(run, 1, 30_000) == (-95.0, 1000)
    # A budget of 1,500 steps ends before the 3,000 check.
    assert study.replay_polishing(run, 0, 1500) == (-95.0, 1500)


def test_pooled_polishing_replays_every_variants_runs_as_one_set():
    # One row under two names (two seed sets): pooled, one line per budget over all four runs.
    checks = [[1000, -90.0], [2000, -99.0], [3000, -85.0]]
    certified = [[1000, -90.0, -95.0], [3000, -85.0, -88.0]]
    runs = [
        {**polished_run(checks, certified), "variant": name, "solved": "True", "steps": "3000"}
        for name in ("a", "a", "b", "b")
    ]
    pooled = study.polish_report(runs, [1500], pooled=True, patiences=(0,))
    assert "| a+b | 1,500 | none | 4 | 1,500 | -95.0, -95.0 | 0 |" in pooled
    assert "| a+b | 2,000 | none | 4 | 2,000 | -88.0, -88.0 | 0 |" in pooled  # the whole budget
    apart = study.polish_report(runs, [1500], patiences=(0,))
    assert "| a | 1,500 | none | 2 |" in apart and "| b | 1,500 | none | 2 |" in apart


def test_bad_polish_budgets_are_refused_in_one_line_before_any_run(monkeypatch, capsys, tmp_path):
    runs = tmp_path / "runs.csv"
    argv = ["study.py", "--runs", str(runs), "--variant", "x", "--polish-budgets", "10000,2e4"]
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit) as stop:
        study.main()
    assert stop.value.code == 2
    assert "--polish-budgets must be whole numbers" in capsys.readouterr().err
    assert not runs.exists()  # refused before the study started


def test_parse_seeds_and_seed_text_round_trip():
    seeds = study.parse_seeds("0-3,7,10-11")
    assert seeds == [0, 1, 2, 3, 7, 10, 11]
    assert study.seed_text(seeds) == "0-3, 7, 10-11"


# ---- How the study scores a saved model: every "saved agents" figure comes from these -------


def random_weights(sizes, seed):
    rng = np.random.default_rng(seed)
    shapes = [(a, b) for a, b in zip(sizes, sizes[1:], strict=False)]
    return [w for a, b in shapes for w in (rng.normal(0, 1, (a, b)), rng.normal(0, 1, b))]


def test_model_weights_reads_a_saved_q_network_layer_by_layer(tmp_path):
    # Saved by a process that built other networks first, as a run does (its target network; a
    # dueling run's plain copy): Keras names the layers on from those (dense_9, ...), while the
    # weights file names them by place in the model (dense, dense_1, ...).
    import subprocess
    import sys

    weights = [w.astype(np.float32) for w in random_weights((4, 16, 8, 2), seed=1)]
    np.savez(tmp_path / "w.npz", *weights)
    save = (
        "import sys, numpy as np; sys.path.insert(0, sys.argv[1]); import dqn_cartpole as d; "
        "d.setup_tensorflow(); [d.build_q_network(4, 2, (16, 8)) for _ in range(3)]; "
        "m = d.build_q_network(4, 2, (16, 8)); "
        "a = np.load(sys.argv[2]); m.set_weights([a[f'arr_{i}'] for i in range(6)]); "
        "m.save(sys.argv[3])"
    )
    root = str(Path(study.__file__).resolve().parent.parent)
    subprocess.run([sys.executable, "-c", save, root, str(tmp_path / "w.npz"),
                    str(tmp_path / "model.keras")], check=True, timeout=120)  # fmt: skip
    read = study.model_weights(tmp_path / "model.keras")
    assert len(read) == len(weights) == 6
    for got, expected in zip(read, weights, strict=True):
        np.testing.assert_array_equal(got, expected)


def pumping_weights(env_id):
    """A one-layer Q-network whose greedy policy follows a velocity in the observation (the
    cart's on CartPole, the second joint's on Acrobot): episodes that differ from start to start."""
    n_obs, n_actions, index = {"CartPole-v1": (4, 2, 3), "Acrobot-v1": (6, 3, 5)}[env_id]
    kernel = np.zeros((n_obs, n_actions), np.float32)
    kernel[index, 0], kernel[index, -1] = -1.0, 1.0
    return [kernel, np.zeros(n_actions, np.float32)]


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Acrobot-v1"])
def test_own_evaluation_plays_episode_i_greedily_from_its_own_seed_plus_i(env_id):
    import gymnasium as gym

    import dqn_cartpole as dqn

    weights = pumping_weights(env_id)
    returns = study.own_evaluation(weights, env_id)
    assert len(returns) == study.OWN_EVAL_EPISODES == 100
    assert len(set(returns)) > 5  # the episodes differ, so a wrong seed would show
    env, expected = gym.make(env_id), []
    for i in range(0, 100, 9):  # every ninth episode, as an env alone plays it
        obs, _ = env.reset(seed=study.OWN_EVAL_SEED + i)
        total, done = 0.0, False
        while not done:
            action = int(np.argmax(dqn.q_values(weights, obs)))
            obs, reward, terminated, truncated, _ = env.step(action)
            total, done = total + reward, terminated or truncated
        expected.append(total)
    np.testing.assert_array_equal(returns[::9], expected)


def test_evaluation_episodes_counts_every_evaluation_that_chose_the_saved_snapshot():
    settings = {"eval_episodes": 10, "confirm_episodes": 100, "certify_episodes": 300}
    row = {
        "flags": "", "solved": "True", "steps_to_solve": "750",
        # three short evaluations, the solving check at 750, two polishing checks
        "evaluations": json.dumps([[250, 9.0], [500, 30.0], [750, 480.0], [1000, 490.0],
                                   [1250, 470.0]]),
        "certifications": json.dumps([[750, 480.0, 478.0], [1000, 490.0, 489.0]]),
    }  # fmt: skip
    # 2 short (20) + the solving one's short evaluation (10) and check (100) + 2 checks (200)
    # + 2 certifications (600)
    assert study.evaluation_episodes(row, settings) == 930
    assert study.evaluation_episodes({**row, "flags": "--certify-episodes 50"}, settings) == 430
    unsolved = {**row, "solved": "False", "steps_to_solve": "", "certifications": "[]"}
    assert study.evaluation_episodes(unsolved, settings) == 50  # five short evaluations
    assert study.evaluation_episodes({**row, "flags": "sb3-dqn --env Acrobot-v1"}, settings) == 0


def test_the_study_scores_stable_baselines3s_weights_file_as_it_scores_ours(tmp_path):
    import subprocess
    import sys

    weights = pumping_weights("Acrobot-v1")
    np.savez(tmp_path / "q.npz", *weights)
    scored = subprocess.run(
        [sys.executable, study.__file__, "--evaluate", str(tmp_path / "q.npz"), "--env",
         "Acrobot-v1"], capture_output=True, text=True, check=True,
    )  # fmt: skip
    np.testing.assert_array_equal(
        json.loads(scored.stdout), study.own_evaluation(weights, "Acrobot-v1")
    )


def test_action_gaps_reports_each_states_gap_and_the_start_value_against_its_return():
    import action_gaps

    # A one-layer network whose Q-values are (2, 1.5) whatever the state: CartPole's greedy
    # policy pushes left always, the gap is (2 - 1.5) / 2 at every state, Q(s0, a*) is 2.
    weights = [np.zeros((4, 2), np.float32), np.array([2.0, 1.5], np.float32)]
    found = action_gaps.play(weights, "CartPole-v1", 3, seed=5, gamma=0.5)
    assert found["returns"].tolist() == found["lengths"].tolist()  # CartPole pays 1 a step
    assert len(found["gaps"]) == found["lengths"].sum()
    np.testing.assert_allclose(found["gaps"], 0.25)
    np.testing.assert_allclose(found["start_values"], 2.0)
    expected = [sum(0.5**k for k in range(n)) for n in found["lengths"]]
    np.testing.assert_allclose(found["start_returns"], expected)


def test_first_flag_finds_the_first_episode_that_ends_before_the_time_limit(tmp_path, capsys):
    import first_flag

    def run(name, seed, solve, returns):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "summary.json").write_text(json.dumps({"seed": seed, "steps_to_solve": solve}))
        steps = np.cumsum([int(-r) for r in returns])  # a MountainCar episode's steps = -return
        lines = ["episode,total_steps,return,epsilon"] + [
            f"{i + 1},{s},{r},0.01" for i, (s, r) in enumerate(zip(steps, returns, strict=True))
        ]
        (folder / "episodes.csv").write_text("\n".join(lines) + "\n")
        return folder

    # Seed 7 times out twice (-200), reaches the flag at step 550, then again; seed 8 never does.
    found = first_flag.first_flag(run("a", 7, 900, [-200.0, -200.0, -150.0, -120.0]))
    assert found == {"seed": 7, "steps_to_solve": 900, "first_flag": 550, "flag_to_solve": 350,
                     "episodes_at_flag": 2, "episodes": 4}  # fmt: skip
    never = first_flag.first_flag(run("b", 8, None, [-200.0] * 3))
    assert never["first_flag"] is None and never["flag_to_solve"] is None
    assert never["episodes_at_flag"] == 0
    run("c", 9, 1_000, [-110.0, -200.0])
    assert first_flag.main([str(tmp_path / "a"), str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "# 2 of 2 runs reached the flag and solved" in out
    assert "first flag: median 330, range 110-550" in out  # (550 + 110) / 2


def test_the_sb3_export_averages_each_actions_quantiles_in_sb3_contribs_order():
    # sb3-contrib's QR-DQN lays its outputs out quantile by quantile: output q * n_actions + a
    # is quantile q of action a. The exported layer must give each action its own mean.
    import sb3_zoo

    n_actions, quantiles, hidden = 3, 4, 5
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(hidden, quantiles * n_actions))
    bias = rng.normal(size=quantiles * n_actions)
    h = rng.normal(size=(7, hidden))
    outputs = (h @ kernel + bias).reshape(7, quantiles, n_actions)  # [state, quantile, action]
    folded_kernel, folded_bias = sb3_zoo.mean_over_quantiles(kernel, bias, n_actions)
    np.testing.assert_allclose(h @ folded_kernel + folded_bias, outputs.mean(axis=1))


def test_the_like_for_like_table_reports_each_variants_agents_steps_episodes_and_seconds():
    # Two of ours and two of SB3's on seeds 1-2 (seed 3 is not asked for): saved agents'
    # median and lowest, steps, evaluation episodes (SB3's final agent spends none), seconds.
    evaluations = json.dumps([[1000, 100.0], [2000, 480.0], [3000, 500.0]])
    ours = dict(variant="ours", flags="--eval-episodes 10", env="CartPole-v1", solved="True",
                steps_to_solve="2000", evaluations=evaluations,
                certifications="[[2000, 480, 490]]")  # fmt: skip
    runs = [
        {**ours, "seed": "1", "own_eval_mean": "500.0", "steps": "3000", "process_seconds": "10"},
        {**ours, "seed": "2", "own_eval_mean": "490.0", "steps": "5000", "process_seconds": "20"},
        {**ours, "seed": "3", "own_eval_mean": "1.0", "steps": "9000", "process_seconds": "90"},
    ]
    sb3 = dict(variant="sb3", flags="sb3-dqn --env CartPole-v1", env="CartPole-v1", solved="")
    runs += [
        {**sb3, "seed": "1", "own_eval_mean": "200.0", "steps": "50000", "process_seconds": "300"},
        {**sb3, "seed": "2", "own_eval_mean": "", "steps": "50000", "process_seconds": "100"},
    ]
    table = study.compare_report(runs, [1, 2]).splitlines()
    # ours: one evaluation before the solve (10), the solving check (10 more), two checks
    # after (2 x 100) and one certification (300): 520 episodes, on both seeds.
    assert "| ours | `--eval-episodes 10` | 2 | 495.0, 490.0 | 4,000 | 520 | 15.0 |" in table
    # A run that saved no model scores -inf: the lowest, and a median of two with it is -inf.
    assert "| sb3 | `sb3-dqn --env CartPole-v1` | 2 | -inf, -inf | 50,000 | 0 | 200.0 |" in table
