"""No finished run lost: the results folder, its lock, and writes that fail at the end."""

import json
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import SCRIPT, run_main, run_script

import dqn_cartpole as dqn

SHORT_RUN = ["--max-steps", "1500", "--min-observations", "500", "--no-gifs"]


def start_script(*args):
    """Start dqn_cartpole.py in the background with text pipes."""
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), *map(str, args)],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_training(proc):
    """Read the script's output until its first progress line: training is under way."""
    for line in proc.stdout:
        if line.startswith("step") and "| episodes" in line:
            return
    raise AssertionError(f"no progress line; stderr: {proc.stderr.read()}")


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert lines[0].startswith("dqn_cartpole.py: error:")
    return lines[0]


def fallback_folder(message: str) -> Path:
    """The folder that the error line names as holding the saved model."""
    folder = Path(message.split(" are saved in ")[1].rstrip("/"))
    assert folder.is_dir() and folder.name.startswith("dqn_cartpole-")
    return folder


def no_hidden_files(folder: Path) -> bool:
    """No temporary output, probe or lock file left behind."""
    return not [p.name for p in folder.iterdir() if p.name.startswith(".")]


# ---- The results folder is made ready before any work starts ---------------------------------


def test_results_folder_is_created_probed_and_locked_then_released(tmp_path):
    folder = tmp_path / "a" / "b"
    with dqn.results_folder(folder):
        assert folder.is_dir()
        assert (folder / dqn.LOCK_NAME).read_text().strip() == str(os.getpid())
        assert [p.name for p in folder.iterdir()] == [dqn.LOCK_NAME]  # the probe is gone
    assert folder.is_dir() and list(folder.iterdir()) == []


def test_an_os_error_while_preparing_removes_the_folders_it_made(tmp_path, monkeypatch):
    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(dqn.tempfile, "mkstemp", no_space)
    folder = tmp_path / "new" / "results"
    with (
        pytest.raises(dqn.ConfigError, match="No space left on device"),
        dqn.results_folder(folder),
    ):
        pass
    assert list(tmp_path.iterdir()) == []


def test_bad_input_found_later_removes_the_folders_made_for_it(tmp_path):
    existing = tmp_path / "kept"
    existing.mkdir()
    with pytest.raises(dqn.ConfigError), dqn.results_folder(existing / "new" / "results"):
        raise dqn.ConfigError("a --watch file that Keras refuses")
    assert [p.name for p in tmp_path.iterdir()] == ["kept"] and list(existing.iterdir()) == []


def test_results_dir_that_cannot_be_made_is_one_line_before_tensorflow(tmp_path):
    (tmp_path / "file").write_text("x")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import dqn_cartpole as d\n"
        "assert d.main(['--results-dir', sys.argv[2]]) == 2\n"
        "assert 'tensorflow' not in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(SCRIPT.parent), str(tmp_path / "file" / "results")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Not a directory" in one_error_line(result.stderr)
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


# ---- One run per results folder ---------------------------------------------------------------


def test_a_second_run_into_a_busy_folder_is_refused_and_the_first_is_unharmed(tmp_path):
    out = tmp_path / "out"
    first = start_script(
        "--results-dir", out, "--max-steps", "1000000", "--no-gifs", "--log-every", "100"
    )
    try:
        wait_for_training(first)
        second = run_script("--results-dir", out, *SHORT_RUN, timeout=60)
        assert second.returncode == 2
        line = one_error_line(second.stderr)
        assert f"is in use by another run (pid {first.pid})" in line
        assert second.stdout == ""
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=60)
    finally:
        first.kill()
    assert first.returncode == 130, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["config"]["max_steps"] == 1_000_000
    assert no_hidden_files(out)  # the lock went with the first run


def test_a_lock_left_by_a_killed_run_is_taken_over(tmp_path, tensorflow_ready, capsys):
    out = tmp_path / "out"
    killed = start_script(
        "--results-dir", out, "--max-steps", "1000000", "--no-gifs", "--log-every", "100"
    )
    wait_for_training(killed)
    killed.kill()  # SIGKILL: no clean-up at all
    killed.communicate(timeout=60)
    assert (out / dqn.LOCK_NAME).read_text().strip() == str(killed.pid)

    result = run_main(capsys, "--results-dir", out, *SHORT_RUN)
    assert result.returncode == 0, result.stderr
    assert f"taking over a stale lock of pid {killed.pid}" in result.stdout
    assert no_hidden_files(out) and (out / "summary.json").exists()


def test_sigterm_stops_and_saves_like_ctrl_c(tmp_path):
    out = tmp_path / "out"
    proc = start_script(
        "--results-dir", out, "--max-steps", "1000000", "--no-gifs", "--log-every", "100"
    )
    wait_for_training(proc)
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert json.loads((out / "summary.json").read_text())["interrupted"] is True
    assert no_hidden_files(out)


# ---- A write that fails at the end ---------------------------------------------------------


def test_write_outputs_saves_the_kept_files_elsewhere_when_one_fails(tmp_path):
    written = []

    def good(path):
        path.write_text("ok")
        written.append(path)

    def bad(path):
        with dqn.atomic_path(path) as tmp:
            tmp.write_text("half")
            raise OSError(28, "No space left on device")

    outputs = {"model.keras": good, "summary.json": good, "rewards.png": bad}
    with pytest.raises(dqn.WriteError) as error:
        dqn.write_outputs(tmp_path, outputs, keep=("model.keras", "summary.json"))
    message = str(error.value)
    assert message.startswith(f"cannot write {tmp_path / 'rewards.png'}: No space left on device")
    fallback = fallback_folder(message)
    assert sorted(p.name for p in fallback.iterdir()) == ["model.keras", "summary.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras", "summary.json"]


def check_lost_write(result, out: Path, file: str, reason: str):
    """Exit 1, one line naming `file` and `reason`, and the model saved in a fallback folder."""
    assert result.returncode == 1, result.stdout + result.stderr
    line = one_error_line(result.stderr)
    assert f"cannot write {out / file}: {reason}" in line
    fallback = fallback_folder(line)
    names = sorted(p.name for p in fallback.iterdir())
    assert names == ["episodes.csv", "model.keras", "summary.json"]
    assert zipfile.is_zipfile(fallback / "model.keras")
    assert json.loads((fallback / "summary.json").read_text())["steps"] == 1500
    return fallback


def test_a_results_folder_removed_mid_run_loses_nothing(tmp_path):
    out = tmp_path / "out"
    proc = start_script("--results-dir", out, *SHORT_RUN, "--log-every", "100")
    wait_for_training(proc)
    for path in out.iterdir():
        path.unlink()
    out.rmdir()
    stdout, stderr = proc.communicate(timeout=120)
    result = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    check_lost_write(result, out, "model.keras", "No such file or directory")
    assert not out.exists()  # not silently made again


def mount_tmpfs(folder: Path, size: str) -> bool:
    folder.mkdir()
    try:
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
            capture_output=True,
            timeout=30,
        )
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def test_a_full_disk_at_the_end_loses_nothing(tmp_path, tensorflow_ready, capsys):
    disk = tmp_path / "disk"
    if not mount_tmpfs(disk, "64k"):
        pytest.skip("cannot mount a tmpfs here (needs root); the removed-folder test covers it")
    try:
        out = disk / "out"
        out.mkdir()
        # Fill the disk but for one page: the start-up probe fits, the 30 kB model does not.
        with open(disk / "filler", "wb") as f:
            f.write(b"\0" * (60 * 1024))
        result = run_main(capsys, "--results-dir", out, *SHORT_RUN)
        check_lost_write(result, out, "model.keras", "No space left on device")
        assert list(out.iterdir()) == []  # no partial file, no temporary file, no lock
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_atomic_path_leaves_no_temporary_file_when_the_folder_is_gone(tmp_path):
    folder = tmp_path / "gone"
    missing = pytest.raises(dqn.WriteError, match="No such file or directory")
    with missing, dqn.atomic_path(folder / "summary.json") as tmp:
        tmp.write_text("x")
    with pytest.raises(dqn.WriteError, match=f"cannot write {folder / 'summary.json'}"):
        folder.mkdir()
        with dqn.atomic_path(folder / "summary.json") as tmp:
            tmp.write_text("x")
            for path in folder.iterdir():
                path.unlink()
            folder.rmdir()
    assert not folder.exists()


def test_the_lock_is_released_when_the_loss_blows_up(tmp_path, tensorflow_ready, capsys):
    out = tmp_path / "out"
    result = run_main(
        capsys, "--learning-rate", "1e30", "--max-steps", "20000", "--no-gifs", "--results-dir", out
    )
    assert result.returncode == 1 and no_hidden_files(out)


def test_a_failed_write_releases_the_lock_and_leaves_no_temporary_file(
    tmp_path, monkeypatch, capsys
):
    # In-process: the whole entry point, with the plot's write failing as a full disk would.
    out = tmp_path / "out"

    def full_disk(path, *args, **kwargs):
        with dqn.atomic_path(path) as tmp:
            tmp.write_bytes(b"\x89PNG")
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(dqn, "plot_rewards", full_disk)
    result = run_main(capsys, "--results-dir", out, *SHORT_RUN)
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert f"cannot write {out / 'rewards.png'}: No space left on device" in line
    fallback = sorted(p.name for p in fallback_folder(line).iterdir())
    assert fallback == ["episodes.csv", "model.keras", "summary.json"]
    names = sorted(p.name for p in out.iterdir())
    assert names == ["episodes.csv", "model.keras"]  # written before the plot


def test_a_held_lock_refuses_another_process_until_released(tmp_path):
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import dqn_cartpole as d\n"
        "from pathlib import Path\n"
        "try:\n"
        "    with d.results_folder(Path(sys.argv[2])): print('free')\n"
        "except d.ConfigError as e:\n"
        "    print(e)\n"
    )

    def other_process():
        command = [sys.executable, "-c", code, str(SCRIPT.parent), str(tmp_path)]
        return subprocess.run(command, capture_output=True, text=True, timeout=60).stdout

    with dqn.results_folder(tmp_path):
        assert f"in use by another run (pid {os.getpid()})" in other_process()
    assert other_process().strip() == "free"
