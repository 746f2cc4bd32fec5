"""The default command, run once as a user runs it, and what it writes: every output, the
phases of its time, the GIFs, the kept snapshot, the saved model under --watch and damaged."""

import csv
import json
import subprocess
import zipfile

import pytest
from conftest import ROOT, run_main, run_script

# ---- A real default run ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """The default command (fixed default seed), writing to a temporary results folder."""
    out = tmp_path_factory.mktemp("results")
    result = run_script("--results-dir", out)
    assert result.returncode == 0, result.stdout + result.stderr
    return out, result


def test_default_run_solves_and_writes_every_output(default_run):
    out, result = default_run
    names = {p.name for p in out.iterdir()}
    expected = {
        "rewards.png",
        "before.gif",
        "after.gif",
        "model.keras",
        "summary.json",
        "episodes.csv",
    }
    assert names == expected  # and no temporary files left behind
    for name in expected:
        assert f"wrote {out / name}" in result.stdout

    summary = json.loads((out / "summary.json").read_text())
    assert summary["solved"] is True and summary["interrupted"] is False
    assert summary["final_eval"]["mean"] >= 475 and summary["final_eval"]["episodes"] == 100
    assert 0 < summary["steps_to_solve"] <= summary["config"]["max_steps"]
    assert 0 < summary["seconds_to_solve"] < summary["total_seconds"]
    assert summary["seed"] == summary["config"]["seed"] == 1
    assert "step " in result.stdout and "steps/s" in result.stdout  # progress lines

    with open(out / "episodes.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == summary["episodes"] > 0
    assert list(rows[0]) == ["episode", "total_steps", "return", "epsilon"]
    steps = [int(r["total_steps"]) for r in rows]
    assert steps == sorted(steps) and steps[-1] <= summary["steps"]
    assert all(1 <= float(r["return"]) <= 500 for r in rows)

    assert (out / "rewards.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert zipfile.is_zipfile(out / "model.keras")


def test_default_run_says_where_its_seconds_went_and_where_it_was_made(default_run):
    out, _ = default_run
    summary = json.loads((out / "summary.json").read_text())
    phases = summary["phase_seconds"]
    # Every second from start-up to the summary is charged to exactly one phase.
    assert sum(phases.values()) == pytest.approx(summary["total_seconds"], abs=0.01)
    for name in ("import_tensorflow", "build_agent", "compile", "learn", "evaluate", "confirm"):
        assert phases[name] > 0, name
    for name in ("final_evaluation", "after_gif", "write_model", "write_rewards", "write_after"):
        assert phases[name] > 0, name
    assert summary["train_seconds"] == pytest.approx(
        sum(phases.get(name, 0.0) for name in TRAINING_PHASES), abs=0.01
    )
    facts = summary["run"]
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True)
    if head.returncode == 0:  # a git checkout, as in CI
        assert facts["commit"] == head.stdout.decode().strip()
    assert facts["cpu"] and facts["date"][:4].isdigit() and facts["cpus"] >= 1


TRAINING_PHASES = (
    "collect", "compile", "learn", "evaluate", "confirm", "polish", "polish_checks"
)  # fmt: skip


def gif_frames_and_milliseconds(path):
    """Frame count and total duration; Pillow merges repeated frames and adds their durations."""
    from PIL import Image

    durations = []
    with Image.open(path) as gif:
        for index in range(gif.n_frames):
            gif.seek(index)
            durations.append(gif.info["duration"])
    return len(durations), sum(durations)


def test_after_gif_shows_the_fixed_seed_episode_in_real_time_and_is_small(default_run):
    out, result = default_run
    summary = json.loads((out / "summary.json").read_text())
    episode_return = summary["gif_return"]
    assert f"trained agent: return {episode_return:.0f} (the episode from seed 40000)" in (
        result.stdout
    )
    _, milliseconds = gif_frames_and_milliseconds(out / "after.gif")
    # CartPole renders at 50 fps: the first frame and one per step, 20 ms each, is real time.
    assert milliseconds == (episode_return + 1) * 20
    assert (out / "after.gif").stat().st_size <= 3 * 2**20
    _, before_ms = gif_frames_and_milliseconds(out / "before.gif")
    assert before_ms < 200 * 20  # the untrained network drops the pole quickly


def test_default_run_saves_the_best_certified_snapshot_and_stops_as_it_should(default_run):
    out, result = default_run
    summary = json.loads((out / "summary.json").read_text())
    solved_at, polish = summary["steps_to_solve"], summary["config"]["polish_steps"]
    # From the solve on, every evaluation is the same 100-episode check, and each check that
    # matches or beats the best before it is certified on other episodes.
    checks = [(step, score) for step, score in summary["evaluations"] if step >= solved_at]
    assert checks[0] == (solved_at, summary["solve_check_mean"])
    best_so_far, candidates = -1.0, []
    for step, score in checks:
        if score >= best_so_far:
            best_so_far = score
            candidates.append((step, score))
    certified = summary["certifications"]
    assert [(step, check) for step, check, _ in certified] == candidates
    # The saved snapshot is the first that certified best; a perfect one ends the run.
    top = max(score for _, _, score in certified)
    step, check, score = next(c for c in certified if c[2] == top)
    assert summary["saved_snapshot_step"] == step and summary["saved_snapshot_check_mean"] == check
    assert summary["saved_snapshot_certified_mean"] == score
    assert summary["steps"] == (step if score == 500 else solved_at + polish)
    assert summary["polish_end"] == ("perfect" if score == 500 else "polish_steps")
    assert f"solved at step {solved_at}" in result.stdout


def test_saved_model_is_the_keras_q_network(default_run, tensorflow_ready):
    import keras

    import dqn_cartpole

    out, _ = default_run
    model = keras.saving.load_model(out / "model.keras", safe_mode=True)
    assert model.input_shape == (None, 4) and model.output_shape == (None, 2)
    returns = dqn_cartpole.evaluate(model.get_weights(), "CartPole-v1", 20, seed=123_456)
    assert returns.mean() >= 475


def test_watch_evaluates_a_saved_agent_and_records_a_gif(default_run, tmp_path, capsys):
    out, _ = default_run
    result = run_main(
        capsys,
        "--watch", out / "model.keras", "--watch-episodes", "20",
        "--results-dir", tmp_path / "watch",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "20 greedy episodes" in result.stdout and "mean" in result.stdout
    # Its own episodes: neither the checks' nor the final evaluation's.
    assert "(reset seeds 50000-50019)" in result.stdout
    mean = float(result.stdout.split("mean ")[1].split(",")[0])
    assert mean >= 475
    assert (tmp_path / "watch" / "watch.gif").stat().st_size > 0


def test_watch_refuses_a_damaged_keras_file(default_run, tmp_path):
    out, _ = default_run
    damaged = tmp_path / "damaged.keras"
    with zipfile.ZipFile(out / "model.keras") as good, zipfile.ZipFile(damaged, "w") as bad:
        for name in good.namelist():
            data = good.read(name)
            bad.writestr(name, b"{ broken" if name == "config.json" else data)
    result = run_script("--watch", damaged, "--results-dir", tmp_path / "out", timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a Keras model (damaged config.json)" in lines[0]
    assert not (tmp_path / "out").exists()


def flip_a_byte_of(archive: zipfile.ZipFile, name: str, path) -> None:
    """Flip one byte in the middle of a member's stored data, so that its CRC no longer holds."""
    info = archive.getinfo(name)
    data = bytearray(path.read_bytes())
    # The local header is 30 bytes, then the file name and the extra field, then the data.
    name_length = int.from_bytes(data[info.header_offset + 26 : info.header_offset + 28], "little")
    extra_length = int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_length + extra_length
    data[start + info.compress_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("member", ["config.json", "model.weights.h5"])
def test_watch_refuses_an_archive_whose_crc_fails(default_run, tmp_path, capsys, member):
    out, _ = default_run
    damaged = tmp_path / "damaged.keras"
    damaged.write_bytes((out / "model.keras").read_bytes())
    with zipfile.ZipFile(damaged) as archive:
        flip_a_byte_of(archive, member, damaged)
    with zipfile.ZipFile(damaged) as archive:
        assert archive.testzip() == member  # the damage is what the test says it is
    result = run_main(capsys, "--watch", damaged, "--results-dir", tmp_path / "out")
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"--watch {str(damaged)!r}" in lines[0], result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()
