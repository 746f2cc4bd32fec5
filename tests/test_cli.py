"""The script as a user runs it: bad input, a full default run, --watch, Ctrl-C, seeds."""

import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import pytest
from conftest import ROOT, SCRIPT, run_main, run_script

# ---- Bad input: one line, exit 2, nothing written, and no TensorFlow start-up wait -----------

BAD_INPUTS = [
    (["--learning-rate", "0"], "--learning-rate must be > 0"),
    (["--learning-rate", "-0.001"], "--learning-rate must be > 0"),
    (["--learning-rate", "nan"], "--learning-rate must be a finite number"),
    (["--gamma", "inf"], "--gamma must be a finite number"),
    (["--seed", "-1"], "--seed must be >= 0"),
    (["--min-observations", "5000"], "--min-observations must be in [--batch-size, --memory-size]"),
    (["--gamma", "0"], "--gamma must be in (0, 1]"),
    (["--gamma", "1.5"], "--gamma must be in (0, 1]"),
    (["--batch-size", "0"], "--batch-size must be >= 1"),
    (["--batch-size", "64", "--memory-size", "32"], "--batch-size must be in [1, --memory-size]"),
    (["--memory-size", "0"], "--memory-size must be >= 1"),
    (["--epsilon-start", "1.5"], "--epsilon-start must be in [0, 1]"),
    (["--epsilon-min", "-0.1"], "--epsilon-min must be in [0, 1]"),
    (["--epsilon-decay", "2"], "--epsilon-decay must be in [0, 1]"),
    (["--max-steps", "0"], "--max-steps must be >= 1"),
    (["--max-steps", "-5"], "--max-steps must be >= 1"),
    (["--train-every", "0"], "--train-every must be >= 1"),
    (["--gradient-steps", "0"], "--gradient-steps must be >= 1"),
    (["--target-update-every", "0"], "--target-update-every must be >= 1"),
    (["--eval-every", "0"], "--eval-every must be >= 1"),
    (["--watch-episodes", "0"], "--watch-episodes must be >= 1"),
    (["--min-observations", "8", "--batch-size", "16"], "--min-observations must be in"),
    (["--log-every", "0"], "--log-every must be >= 1"),
    (["--confirm-episodes", "0"], "--confirm-episodes must be >= 1"),
    (["--max-steps", "ten"], "invalid int value: 'ten'"),
    (["--gamma", "high"], "invalid float value: 'high'"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["--env", "NoSuchEnv-v9"], "--env 'NoSuchEnv-v9' cannot be made"),
    (["--env", "Pendulum-v1"], "has no discrete actions"),
    (["--watch", "missing/model.keras"], "no such file"),
    (["--seed", str(2**32)], "--seed must be <= 4,294,967,295"),
    (["--memory-size", str(10**19)], "GiB of rows for CartPole-v1; at most 4 GiB"),
    (["--memory-size", "100000000"], "--memory-size 100,000,000: 4.5 GiB of rows"),
    (["--env", "LunarLander-v3", "--memory-size", "60000000"], "4.5 GiB of rows for LunarLander"),
    (["--polish-patience", "-1"], "--polish-patience must be >= 0"),
    (["--watch-seed", "-1"], "--watch-seed must be >= 0"),
    (["--batch-size", "5000", "--memory-size", "10000"], "--batch-size must be <= 4,096"),
    (["--gradient-steps", "1000"], "--gradient-steps must be <= 256"),
    (["--confirm-episodes", "100000"], "--confirm-episodes must be <= 5,000"),
    (["--certify-episodes", "0"], "--certify-episodes must be >= 1"),
    (["--polish-steps", "-1"], "--polish-steps must be >= 0"),
    (["--polish-lr-factor", "0.5"], "--polish-lr-factor is gone"),
    (["--episodes", "5"], "--episodes is now --watch-episodes"),
    (["--seed", "3", "--episodes=5"], "--episodes is now --watch-episodes"),
    (["--priority-alpha", "1.5"], "--priority-alpha must be in [0, 1]"),
    (["--priority-beta", "-0.1"], "--priority-beta must be in [0, 1]"),
    (["--param-noise", "1"], "--param-noise must be in [0, 1)"),
    (["--param-noise", "-0.1"], "--param-noise must be in [0, 1)"),
    (["--count-bonus", "-1"], "--count-bonus must be >= 0"),
    (["--average-steps", "-1"], "--average-steps must be >= 0"),
    (["--average-steps", "8"], "--average-steps must be 0 or at least --train-every"),
    (["--count-bonus", "0.5"], "--count-bonus needs bounded observations for its grid; CartPole"),
    (
        ["--quantiles", "8", "--dueling"],
        "--quantiles works alone: not with --dueling or --prioritized",
    ),
    (
        ["--quantiles", "8", "--prioritized"],
        "--quantiles works alone: not with --dueling or --prioritized",
    ),
    (["--memory-policy", "lifo"], "argument --memory-policy: invalid choice: 'lifo'"),
    (["--loss", "mae"], "argument --loss: invalid choice: 'mae'"),
    (["--hidden", "24,x"], "--hidden '24,x': expected sizes like 24,12"),
    (["--hidden", "64,0"], "--hidden '64,0': every layer needs at least 1 unit"),
    (["--hidden", "4096,4096,4096"], "33,591,298 weights per network; at most 10,000,000"),
    (["--n-step", "0"], "--n-step must be >= 1"),
    (["--n-step", "101"], "--n-step must be <= 100"),
]


@pytest.mark.parametrize("args, message", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "out"
    result = run_script(*args, "--results-dir", out, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("dqn_cartpole.py: error:") and message in lines[0]
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not out.exists()


@pytest.mark.parametrize("flag", ["--results-dir", "--watch"])
def test_an_empty_path_is_refused_before_anything_runs(tmp_path, flag):
    before = sorted(ROOT.iterdir())
    result = run_script(flag, "", timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"dqn_cartpole.py: error: {flag} must name a file or folder, not ''\n"
    assert sorted(ROOT.iterdir()) == before


def test_results_dir_under_a_file_is_refused_up_front(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = run_script("--results-dir", blocker / "results", timeout=60)
    assert result.returncode == 2
    assert "Not a directory" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize("flag", ["--results-dir", "--watch"])
def test_a_path_whose_name_the_os_refuses_is_one_line_exit_2(tmp_path, flag):
    too_long = tmp_path / ("x" * 300) / "results"  # a name of 300 bytes: the limit is 255
    result = run_script(flag, too_long, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "File name too long" in lines[0], result.stderr
    assert list(tmp_path.iterdir()) == [] and not (ROOT / "results" / "watch.gif").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to a read-only folder")
def test_read_only_results_dir_is_refused_up_front(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    result = run_script("--results-dir", locked / "results", timeout=60)
    assert result.returncode == 2 and "Permission denied" in result.stderr


def test_help_and_bad_input_do_not_import_tensorflow():
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import dqn_cartpole as d\n"
        "assert d.main(['--gamma', '7']) == 2\n"
        "try:\n    d.main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
        "print('ok')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(ROOT)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "--learning-rate" in result.stdout and result.stdout.strip().endswith("ok")


def test_every_flag_is_in_help():
    import dataclasses

    import dqn_cartpole

    result = run_script("--help", timeout=60)
    assert result.returncode == 0
    for field in dataclasses.fields(dqn_cartpole.Config):
        assert "--" + field.name.replace("_", "-") in result.stdout
    # Every setting with a value shows it, a default of 0 too (0 == False in Python).
    text = " ".join(result.stdout.split())
    shown = [
        f for f in dataclasses.fields(dqn_cartpole.Config) if f.type in ("int", "float", "str")
    ]
    for field in shown:
        if field.default is not None:
            assert f"(default: {field.default})" in text, field.name
    assert "(default: 0)" in text.split("--polish-patience POLISH_PATIENCE", 2)[2][:200]


def test_the_readme_flag_table_lists_every_flag_with_its_default():
    import dataclasses
    import re

    import dqn_cartpole

    readme = (ROOT / "README.md").read_text()
    rows = dict(re.findall(r"^\| `(--[a-z-]+)`[^|]*\| `?([^|`]*)`? \|", readme, re.M))
    for field in dataclasses.fields(dqn_cartpole.Config):
        name = dqn_cartpole.flag(field.name)
        assert name in rows, f"{name} is not in the README's flag table"
        if field.type != "bool" and field.default is not None:
            default = field.default
            shown = f"{default:g}" if isinstance(default, float) else str(default)
            written = {rows[name], rows[name].replace(",", "")}  # 150,000 or 150000
            assert written & {shown, str(default)}, (name, rows[name])


def test_polish_steps_zero_saves_the_first_snapshot_that_solves(tmp_path, tensorflow_ready, capsys):
    out = tmp_path / "out"
    result = run_main(capsys, "--polish-steps", "0", "--no-gifs", "--results-dir", out)
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["solved"] is True
    assert summary["steps"] == summary["steps_to_solve"] == summary["saved_snapshot_step"]


@pytest.mark.parametrize("content", [b"", b"not a zip at all", "zip-without-config"])
def test_watch_refuses_a_file_that_is_no_keras_model(tmp_path, content):
    bad = tmp_path / "bad.keras"
    if content == "zip-without-config":
        with zipfile.ZipFile(bad, "w") as archive:
            archive.writestr("weights.bin", b"\0" * 16)
    else:
        bad.write_bytes(content)
    result = run_script("--watch", bad, "--results-dir", tmp_path / "out", timeout=60)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "not a Keras model" in result.stderr
    assert not (tmp_path / "out").exists()


def test_an_env_whose_extra_is_not_installed_is_one_line_exit_2(tmp_path):
    # A Box2D that fails to import, as on a machine without gymnasium's box2d extra.
    fake = tmp_path / "site"
    (fake / "Box2D").mkdir(parents=True)
    (fake / "Box2D" / "__init__.py").write_text("raise ImportError('No module named Box2D')\n")
    env = {**os.environ, "PYTHONPATH": str(fake)}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--env", "LunarLander-v3", "--results-dir", tmp_path / "o"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs a package that is not installed" in lines[0], lines
    assert "pip install -r requirements.txt" in lines[0] and not (tmp_path / "o").exists()


# ---- Ctrl-C, determinism, divergence, TensorBoard ------------------------------------------


def test_ctrl_c_stops_quickly_and_keeps_what_was_learned(tmp_path):
    out = tmp_path / "out"
    args = [
        "--results-dir",
        out,
        "--max-steps",
        "1000000",
        "--log-every",
        "100",
        "--eval-every",
        "10000000",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), *map(str, args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    for line in proc.stdout:  # wait until training is well under way
        lines.append(line)
        if line.startswith("step") and "| episodes" in line and int(line.split()[1]) >= 1100:
            break
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert time.monotonic() - sent < 30
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["solved"] is False
    assert summary["stop_reason"] == "interrupted" and summary["steps"] >= 1100
    names = {p.name for p in out.iterdir()}
    assert {"model.keras", "rewards.png", "episodes.csv", "summary.json"} <= names
    assert not [n for n in names if n.startswith(".")]  # no temporary files left
    assert "Traceback" not in err


def test_a_run_that_diverges_before_any_check_saves_no_model(tmp_path, tensorflow_ready, capsys):
    # At this learning rate the first replay (step 1,008) breaks the weights, and the first
    # evaluation would only come at step 1,250: there is no checked snapshot to keep.
    out = tmp_path / "out"
    result = run_main(
        capsys, "--learning-rate", "1e30", "--max-steps", "3000", "--no-gifs", "--results-dir", out
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "training diverged" in result.stdout and "Traceback" not in result.stderr
    assert "no model saved" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stop_reason"] == "diverged" and summary["solved"] is False
    assert summary["steps"] == 1008 and summary["model_saved"] is False
    assert not (out / "model.keras").exists() and summary["final_eval"] is None


def test_watch_refuses_a_keras_model_that_is_no_dense_q_network(tmp_path, tensorflow_ready):
    import keras

    other = keras.Sequential(
        [keras.Input((4,)), keras.layers.BatchNormalization(), keras.layers.Dense(2)]
    )
    other.save(tmp_path / "other.keras")
    result = run_script("--watch", tmp_path / "other.keras", "--results-dir", tmp_path / "out")
    assert result.returncode == 2
    assert "not a Q-network of Dense layers" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_watch_refuses_a_model_for_another_env_shape(tmp_path, tensorflow_ready):
    import dqn_cartpole

    dqn_cartpole.build_q_network(6, 3, (24, 12)).save(tmp_path / "acrobot.keras")
    result = run_script("--watch", tmp_path / "acrobot.keras", "--results-dir", tmp_path / "out")
    assert result.returncode == 2 and "maps 6 -> 3, but CartPole-v1 needs 4 -> 2" in result.stderr
    assert not (tmp_path / "out").exists()


def test_watch_refuses_other_activations_and_answers_before_tensorflow(tmp_path, tensorflow_ready):
    import keras

    tanh = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(2)]
    )
    tanh.save(tmp_path / "tanh.keras")
    dqn_shaped = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    dqn_shaped.save(tmp_path / "acrobot.keras")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import dqn_cartpole as d\n"
        "for model in sys.argv[2:]:\n"
        "    assert d.main(['--watch', model, '--results-dir', model + '.out']) == 2\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    models = [str(tmp_path / "tanh.keras"), str(tmp_path / "acrobot.keras")]
    result = subprocess.run(
        [sys.executable, "-c", code, str(ROOT), *models], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert "not a Q-network of Dense layers like ours" in lines[0]
    assert "maps 6 -> 3, but CartPole-v1 needs 4 -> 2" in lines[1] and len(lines) == 2
    assert not list(tmp_path.glob("*.out"))


MALFORMED_CONFIGS = [
    b'"a string"',
    b"[1, 2]",
    b'{"class_name": "Sequential", "config": {"layers": []}}',
    b'{"class_name": "Sequential", "config": {"layers": ["a"]}}',
    b'{"class_name": "Sequential", "config": {"layers": [{"class_name": "Dense", "config": 1}]}}',
    b'{"class_name": "Sequential", "config": {"layers": [{"class_name": "InputLayer", '
    b'"config": {"batch_shape": null}}, {"class_name": "Dense", "config": {"units": 2, '
    b'"activation": "linear"}}]}}',
    b"\xff\xfe not text",
]


@pytest.mark.parametrize("config", MALFORMED_CONFIGS)
def test_watch_refuses_any_malformed_config_in_one_line(tmp_path, config):
    import dqn_cartpole

    bad = tmp_path / "bad.keras"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("config.json", config)
    with pytest.raises(dqn_cartpole.ConfigError, match="not a Keras model") as error:
        dqn_cartpole.check_model_file(str(bad), "CartPole-v1", (4, 2))
    assert "\n" not in str(error.value)
