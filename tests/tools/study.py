"""Study: how variants of the DQN compare over many seeds, each run a whole process.

    python tests/tools/study.py --runs study/tuning.csv --seeds 0-19 \\
        --variant default --variant "fifo=--memory-policy fifo" --variant "double=--double-dqn"
    python tests/tools/study.py --runs study/tuning.csv --report-only     # tables and figure again

Every variant x seed is a Ray task with one CPU, which runs `python dqn_cartpole.py --no-gifs
--seed S FLAGS` in a folder of its own, pinned to a core of its own with one math thread. Without
--address, Ray starts on this machine with --jobs CPUs (one per core by default) and nothing to
set up; with --address (or RAY_ADDRESS) the study joins a running cluster:

    ray start --head --num-cpus 2                        # on the first machine
    ray start --address HEAD:6379 --num-cpus 2           # on each other one
    python tests/tools/study.py --address HEAD:6379 --runs study/big.csv --seeds 0-199 \\
        --variant default

The study's pinned copy of the script and this file reach the workers as Ray's runtime
environment (its working_dir; --ship-requirements adds requirements.txt as its pip list, for
nodes that lack the packages). A task whose worker dies is retried; a run that fails leaves a row
with its error, and the study goes on. Only the driver writes the --runs CSV, a row as each run
lands, so a study that is stopped resumes where it was: a (flags, seed) pair already in the file
for the same script is not run again (a row with an error is). --engine threads runs the same
tasks from a thread pool on this machine alone, without Ray.

Each saved model is then scored by this file's own evaluation, not the script's: 100 greedy
episodes of CartPole-v1 from reset seeds 900,000-900,099, which no run ever sees, with the
weights read straight from model.keras and a NumPy forward pass written here.

The report gives per variant: solved / N, the median and interquartile range of env steps to
solve, a 95% bootstrap interval of the median, the ratio of medians to the first variant with its
interval (seeds resampled in pairs), the saved models' evaluation, and the median whole-process
time; and a figure of the distribution of steps to solve beside the greedy evaluation curves.
pytest does not collect this file, and no test runs it: a study takes many minutes.
"""

import argparse
import contextlib
import csv
import hashlib
import io
import json
import math
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pinned as pinned_module
from pinned import ONE_THREAD, RunFailed, pinned, run_pinned

OWN_EVAL_SEED, OWN_EVAL_EPISODES = 900_000, 100
PERFECT = 500.0  # CartPole-v1's highest return
GOOD = 495.0  # a saved CartPole model's mean that counts as holding the pole
SCRIPT = Path(__file__).resolve().parents[2] / "dqn_cartpole.py"
BOOTSTRAP = 10_000
SMOOTH = 8  # evaluation points (of 250 steps) in the figure's moving mean
FIELDS = [
    "variant",
    "flags",
    "seed",
    "env",
    "script_sha",  # the first 12 hex digits of dqn_cartpole.py's SHA-256 at the run
    "commit",
    "solved",
    "steps_to_solve",
    "steps",
    "seconds_to_solve",
    "polish_seconds",
    "process_seconds",
    "script_eval_mean",
    "own_eval_mean",
    "own_eval_min",
    "own_eval_perfect_episodes",
    "polish_end",
    "saved_check",
    "saved_certified",
    "evaluations",
    "certifications",
    "phase_seconds",
    "node",  # the host and Ray node that ran it ("" for --engine threads)
    "error",  # why the run failed; "" when it did not
]
RETRIES = 3  # times Ray runs a task again whose worker died (not one whose run failed)
CORE_LOCKS = Path(tempfile.gettempdir()) / "dqn-study-cores"  # one lock file per core in use


def script_sha(script: Path = SCRIPT) -> str:
    """Which code a run ran: the script's own hash (documents and tests can change freely)."""
    return hashlib.sha256(Path(script).read_bytes()).hexdigest()[:12]


def code_sha(source: str) -> str:
    """What changes runs: the script's syntax tree without its docstrings (and so without its
    comments and layout), hashed. A row made by a script of the same code_sha would be made
    again the same; a comment or a docstring does not call for a rerun."""
    import ast

    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        value = first.value if isinstance(first, ast.Expr) else None
        if isinstance(value, ast.Constant) and isinstance(value.value, str):  # a docstring
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()[:12]


def row_code_sha(row: dict, cache: dict | None = None) -> str | None:
    """The code_sha of the script that made a row: from the script at the row's commit, if that
    commit's script is the one the row names (its script_sha); None if that cannot be known."""
    commit = row.get("commit", "")
    if not commit or commit.endswith("+"):
        return None
    cache = {} if cache is None else cache
    if commit not in cache:
        shown = subprocess.run(
            ["git", "-C", str(SCRIPT.parent), "show", f"{commit}:{SCRIPT.name}"],
            capture_output=True,
            text=True,
        )
        source = shown.stdout if shown.returncode == 0 else None
        named = source is not None and hashlib.sha256(source.encode()).hexdigest()[:12]
        cache[commit] = (named, code_sha(source) if source is not None else None)
    named, sha = cache[commit]
    return sha if named == row.get("script_sha") else None


def checkout_commit() -> str:
    """HEAD's short hash, with '+' if dqn_cartpole.py differs from it."""
    git = ["git", "-C", str(SCRIPT.parent)]
    head = subprocess.run([*git, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "diff", "--quiet", "HEAD", "--", SCRIPT.name]).returncode
    return head.stdout.strip() + ("+" if dirty else "")


def pinned_copy(folder: Path) -> Path:
    """A copy of the script as it is now, for every run of a study: editing the script while a
    study runs in the background does not change the code the study measures."""
    copy = Path(folder) / SCRIPT.name
    shutil.copy2(SCRIPT, copy)
    return copy


# ---- Running -----------------------------------------------------------------------------------


def parse_seeds(text: str) -> list[int]:
    """'0-19' or '1000-1019,5' -> a list of seeds."""
    seeds = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        seeds += range(int(first), int(last or first) + 1)
    return seeds


def parse_variant(text: str) -> tuple[str, str]:
    """'name=--flag value' -> (name, flags); a bare name has no flags."""
    name, _, flags = text.partition("=")
    return name.strip(), " ".join(shlex.split(flags))


def model_weights(path: Path) -> list[np.ndarray]:
    """Kernels and biases of the Dense layers in a .keras file, read with h5py (no TensorFlow)."""
    import h5py

    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
        weights_file = io.BytesIO(archive.read("model.weights.h5"))
    layers = config["config"]["layers"]
    count = sum(layer["class_name"] == "Dense" for layer in layers)
    # The weights file names a model's layers by kind and place, not by the layers' own names
    # (which count on from every network the process built): dense, dense_1, dense_2, ...
    names = ["dense" if i == 0 else f"dense_{i}" for i in range(count)]
    with h5py.File(weights_file, "r") as h5:
        layers = h5["layers"]
        return [np.array(layers[name]["vars"][str(i)]) for name in names for i in (0, 1)]


def own_evaluation(weights: list[np.ndarray], env_id: str = "CartPole-v1") -> np.ndarray:
    """Greedy returns of `env_id` episodes from OWN_EVAL_SEED on, one env, one at a time."""
    import gymnasium as gym

    def act(obs):
        x = obs.astype(np.float32)
        for layer in range(0, len(weights), 2):
            x = x @ weights[layer] + weights[layer + 1]
            if layer + 2 < len(weights):
                x = np.maximum(x, 0)
        return int(np.argmax(x))

    env = gym.make(env_id)
    returns = []
    for episode in range(OWN_EVAL_EPISODES):
        obs, _ = env.reset(seed=OWN_EVAL_SEED + episode)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            total += reward
            done = terminated or truncated
        returns.append(total)
    env.close()
    return np.array(returns)


SB3_PYTHON = os.environ.get("STUDY_SB3_PYTHON", str(Path.home() / ".cache/study-sb3/bin/python"))
SB3_SCRIPT = Path(__file__).resolve().parent / "sb3_zoo.py"
SB3_KINDS = ("sb3-dqn", "sb3-qrdqn")  # a variant whose flags start so is Stable-Baselines3's


def is_sb3(flags: str) -> bool:
    return flags.split(" ", 1)[0] in SB3_KINDS


def own_scores(weights_file: Path, env_id: str, core: int) -> np.ndarray:
    """This file's own evaluation of a saved Q-network, as a pinned process of its own."""
    evaluate = [sys.executable, __file__, "--evaluate", str(weights_file), "--env", env_id]
    scored = subprocess.run(
        pinned(evaluate, core), env={**os.environ, **ONE_THREAD}, capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    return np.array(json.loads(scored.stdout))


def run_sb3(variant: str, flags: str, seed: int, core: int, commit: str) -> dict:
    """Stable-Baselines3 with the zoo's settings and budget (tests/tools/sb3_zoo.py, in the
    Python of STUDY_SB3_PYTHON), then this file's own evaluation of its final Q-network, on
    `core`."""
    words = shlex.split(flags)
    env_id = words[words.index("--env") + 1] if "--env" in words else "CartPole-v1"
    algo = words[0].removeprefix("sb3-")
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "q.npz"
        command = [SB3_PYTHON, str(SB3_SCRIPT), "--algo", algo, "--env", env_id,
                   "--seed", str(seed), "--out", str(out)]  # fmt: skip
        start = time.perf_counter()
        result = subprocess.run(
            pinned(command, core), env={**os.environ, **ONE_THREAD}, capture_output=True,
            text=True, preexec_fn=pinned_module.die_with_parent,
        )  # fmt: skip
        wall = time.perf_counter() - start
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines() or ["(no output)"]
            raise RunFailed(f"seed {seed} {flags}: exit {result.returncode}: {lines[-1]}")
        info = json.loads(result.stdout.strip().splitlines()[-1])
        returns = own_scores(out, env_id, core)
    return {
        "variant": variant, "flags": flags, "seed": seed, "env": env_id,
        "script_sha": script_sha(SB3_SCRIPT), "commit": commit, "solved": "",
        "steps": info["steps"],
        "process_seconds": round(wall, 3), "own_eval_mean": returns.mean(),
        "own_eval_min": returns.min(), "own_eval_perfect_episodes": int((returns >= PERFECT).sum()),
        "evaluations": "[]", "certifications": "[]", "phase_seconds": json.dumps(info),
    }  # fmt: skip


def run_one(variant: str, flags: str, seed: int, core: int, script: Path, commit: str) -> dict:
    """One whole training process, then this file's own evaluation of its model, on `core`."""
    if is_sb3(flags):
        return run_sb3(variant, flags, seed, core, commit)
    with tempfile.TemporaryDirectory() as folder:
        run = run_pinned(seed, core, Path(folder) / "run", shlex.split(flags), script)
        summary, wall = run["summary"], run["seconds"]
        summary_sha = script_sha(script)
        returns = own_scores(Path(folder) / "run/model.keras", summary["env"], core)
    return {
        "variant": variant,
        "flags": flags,
        "seed": seed,
        "env": summary["env"],
        "script_sha": summary_sha,
        "commit": commit,
        "solved": summary["solved"],
        "steps_to_solve": summary["steps_to_solve"] or "",
        "steps": summary["steps"],
        "seconds_to_solve": summary["seconds_to_solve"] or "",
        "polish_seconds": summary["polish_seconds"] or "",
        "process_seconds": round(wall, 3),
        "script_eval_mean": summary["final_eval"]["mean"],
        "own_eval_mean": returns.mean(),
        "own_eval_min": returns.min(),
        "own_eval_perfect_episodes": int((returns >= PERFECT).sum()),
        "polish_end": summary["polish_end"] or "",
        "saved_check": summary["saved_snapshot_check_mean"],
        "saved_certified": summary["saved_snapshot_certified_mean"],
        # Scores as the script computed them (no rounding: 499.95 is not 500).
        "evaluations": json.dumps([[int(s), float(m)] for s, m in summary["evaluations"]]),
        "certifications": json.dumps(summary["certifications"]),
        "phase_seconds": json.dumps(summary["phase_seconds"]),
    }


def read_runs(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@contextlib.contextmanager
def own_core():
    """A core of this machine that no other study run holds: each run locks one file per core
    (an flock, which the kernel drops if the process dies), so that runs from any number of
    Ray workers or nodes on one machine each get a core of their own."""
    import fcntl

    CORE_LOCKS.mkdir(exist_ok=True)
    while True:
        for core in sorted(os.sched_getaffinity(0)):
            handle = open(CORE_LOCKS / f"core-{core}.lock", "w")  # noqa: SIM115
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            try:
                yield core
            finally:
                handle.close()
            return
        time.sleep(0.2)


def run_task(variant: str, flags: str, seed: int, commit: str) -> dict:
    """One study run, as a Ray task: the working directory holds the study's pinned script."""
    import ray

    with own_core() as core:
        row = run_one(variant, flags, seed, core, Path("dqn_cartpole.py").resolve(), commit)
    return row | {"node": f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:8]}"}


def ray_engine(todo, code: Path, jobs: int, address, commit: str, ship_requirements: bool):
    """Run each (variant, flags, seed) as a Ray task; yield (job, row, error) as each lands."""
    import ray

    shutil.copy2(Path(__file__), code / "study.py")
    shutil.copy2(Path(pinned_module.__file__), code / "pinned.py")
    runtime_env = {"working_dir": str(code), "env_vars": dict(ONE_THREAD)}
    if ship_requirements:
        lines = (SCRIPT.parent / "requirements.txt").read_text().splitlines()
        runtime_env["pip"] = [line for line in lines if line and not line.startswith("#")]
    address = address or os.environ.get("RAY_ADDRESS")
    options = {"address": address} if address else {"address": "local", "num_cpus": jobs}
    ray.init(
        **options, runtime_env=runtime_env, include_dashboard=False, log_to_driver=False,
        logging_level="ERROR",
    )  # fmt: skip
    try:
        task = ray.remote(num_cpus=1, max_retries=RETRIES)(run_task)
        pending = {task.remote(variant, flags, seed, commit): (variant, flags, seed)
                   for variant, flags, seed in todo}  # fmt: skip
        while pending:
            (ready,), _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(ready)
            try:
                yield job, ray.get(ready), None
            except ray.exceptions.RayError as exc:  # the run failed, or its retries ran out
                cause = getattr(exc, "cause", None) or exc
                yield job, None, first_line(cause)
    finally:
        ray.shutdown()


def thread_engine(todo, script: Path, jobs: int, commit: str):
    """The same runs from a pool of threads, one core each, on this machine alone."""
    cores = sorted(os.sched_getaffinity(0))[:jobs]
    free_cores, lock = list(cores), threading.Lock()

    def task(variant, flags, seed):
        with lock:
            core = free_cores.pop()
        try:
            return run_one(variant, flags, seed, core, script, commit)
        finally:
            with lock:
                free_cores.append(core)

    with ThreadPoolExecutor(len(cores)) as pool:
        futures = {pool.submit(task, *job): job for job in todo}
        for future in as_completed(futures):
            try:
                yield futures[future], future.result(), None
            except (RunFailed, subprocess.CalledProcessError) as exc:
                yield futures[future], None, first_line(exc)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[-1] if text else type(exc).__name__)[:300]


def upgrade_header(path: Path) -> None:
    """Rewrite a runs file whose header lacks columns added since (node, error), rows kept."""
    with open(path, newline="") as f:
        header = next(csv.reader(f), None)
    if header is not None and header != FIELDS:
        rows = read_runs(path)
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, FIELDS, restval="")
            writer.writeheader()
            writer.writerows(rows)


def run_study(
    path: Path, variants, seeds, jobs: int, engine="ray", address=None, ship_requirements=False
) -> None:
    # A run is done if the same flags and seed ran on the same script without an error: with
    # other code, the same (or no) flags mean other settings.
    from tqdm import tqdm

    code = tempfile.TemporaryDirectory(prefix="study-code-")
    script = pinned_copy(Path(code.name))
    sha, commit = script_sha(script), checkout_commit()
    shas = {False: sha, True: script_sha(SB3_SCRIPT)}  # ours, or Stable-Baselines3's runner
    done = {
        (row["flags"], int(row["seed"]))
        for row in read_runs(path)
        if row.get("script_sha") == shas[is_sb3(row["flags"])] and not row.get("error")
    }
    todo = [(v, f, s) for s in seeds for v, f in variants if (f, s) not in done]
    print(f"{len(done)} runs already in {path}; {len(todo)} to go", flush=True)
    if not todo:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        upgrade_header(path)
    new_file = not path.exists()
    if engine == "ray":
        results = ray_engine(todo, Path(code.name), jobs, address, commit, ship_requirements)
    else:
        results = thread_engine(todo, script, jobs, commit)
    failures = 0
    with open(path, "a", newline="") as f, tqdm(total=len(todo), unit="run") as bar:
        writer = csv.DictWriter(f, FIELDS, restval="")
        if new_file:
            writer.writeheader()
        for (variant, flags, seed), row, error in results:
            if error is not None:
                failures += 1
                row = {"variant": variant, "flags": flags, "seed": seed, "script_sha": sha,
                       "commit": commit, "error": error}  # fmt: skip
                bar.write(f"{variant} seed {seed} FAILED: {error}")
            writer.writerow(row)
            f.flush()
            bar.set_postfix(failed=failures, refresh=False)
            bar.update()
    code.cleanup()
    if failures:
        sys.exit(f"study: {failures} runs failed (rows with an error); run again to retry them")


# ---- Statistics ------------------------------------------------------------------------------


def quantile(sorted_values: np.ndarray, q: float) -> float:
    """Linear-interpolated quantile where an infinity is an end of the scale: inf (not solved)
    above any number of steps, -inf (no model saved) below any score. Between a number and an
    infinity, the quantile is that infinity."""
    position = q * (len(sorted_values) - 1)
    low, high = math.floor(position), math.ceil(position)
    a, b = sorted_values[low], sorted_values[high]
    if math.isinf(a) or math.isinf(b):
        return a if position == low or a == -math.inf else b
    return a + (b - a) * (position - low)


def median(values) -> float:
    return quantile(np.sort(np.asarray(values, dtype=float)), 0.5)


def bootstrap_medians(values_by_variant: list[np.ndarray], rng) -> np.ndarray:
    """Medians of BOOTSTRAP resamples of the seeds, the same resample for every variant."""
    n = len(values_by_variant[0])
    picks = rng.integers(n, size=(BOOTSTRAP, n))
    return np.array(
        [[median(values[p]) for p in picks] for values in values_by_variant]
    )  # (variants, BOOTSTRAP)


def interval(samples: np.ndarray) -> tuple[float, float]:
    ordered = np.sort(samples)
    return quantile(ordered, 0.025), quantile(ordered, 0.975)


def solve_line(env_id: str) -> float:
    """Gymnasium's reward threshold: 475, -100, -110 or 200."""
    import gymnasium as gym

    return float(gym.spec(env_id).reward_threshold)


def steps(value: float) -> str:
    return "not solved" if math.isinf(value) else f"{value:,.0f}"


def evaluation_episodes(row: dict, settings: dict) -> int:
    """Greedy episodes a run of ours started on evaluations that chose its saved snapshot, at
    least: each short evaluation before the solve, the solving check, every check and
    certification after it (a check that failed to confirm a passing evaluation leaves no
    trace in the row, so it is not counted). Stable-Baselines3's final agent: none."""
    if is_sb3(row["flags"]):
        return 0
    words = shlex.split(row["flags"])

    def setting(name: str) -> int:
        flag = "--" + name.replace("_", "-")
        return int(words[words.index(flag) + 1]) if flag in words else settings[name]

    evaluations = json.loads(row["evaluations"])
    solved_at = int(row["steps_to_solve"]) if row["solved"] == "True" else None
    before = sum(1 for step, _ in evaluations if solved_at is None or step < solved_at)
    after = len(evaluations) - before  # the solving check and every polishing check
    certified = len(json.loads(row["certifications"]))
    return (
        before * setting("eval_episodes")
        + (setting("eval_episodes") if solved_at is not None else 0)
        + after * setting("confirm_episodes")
        + certified * setting("certify_episodes")
    )


def compare_report(runs: list[dict], seeds: list[int]) -> str:
    """Ours and Stable-Baselines3's on the same seeds, every agent scored by this file's own
    evaluation: the like-for-like table."""
    sys.path.insert(0, str(SCRIPT.parent))
    import dataclasses

    import dqn_cartpole

    settings = {f.name: f.default for f in dataclasses.fields(dqn_cartpole.Config)}
    variants = list(dict.fromkeys(row["variant"] for row in runs))
    env = runs[0].get("env") or "CartPole-v1"
    lines = [
        f"{env}, seeds {seed_text(seeds)}: each variant's saved agent (ours: the snapshot it "
        "kept; Stable-Baselines3: its final agent, at the zoo's whole budget) scored by "
        "tests/tools/study.py's own evaluation, "
        f"{OWN_EVAL_EPISODES} greedy episodes from reset seeds "
        f"{OWN_EVAL_SEED:,} on, which no run sees; evaluation episodes are those a run started "
        "on choosing what it saved (at least); seconds are the whole process, training and "
        "choosing, not the study's evaluation.",
        "",
        "| variant | flags | runs | saved agents: median, lowest | steps trained: median "
        "| evaluation episodes: median | whole process s: median |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for variant in variants:
        rows = [r for r in runs if r["variant"] == variant and int(r["seed"]) in seeds]
        own = np.array([float(r["own_eval_mean"] or "-inf") for r in rows])
        trained = median([float(r["steps"]) for r in rows])
        episodes = median([evaluation_episodes(r, settings) for r in rows])
        seconds = median([float(r["process_seconds"]) for r in rows])
        lines.append(
            f"| {variant} | `{rows[0]['flags'] or '(defaults)'}` | {len(rows)} "
            f"| {median(own):.1f}, {own.min():.1f} | {trained:,.0f} | {episodes:,.0f} "
            f"| {seconds:.1f} |"
        )
    return "\n".join(lines)


def report(runs: list[dict], seeds: list[int] | None, within=(), at_least=()) -> str:
    variants = list(dict.fromkeys(row["variant"] for row in runs))
    by_variant = {v: {int(r["seed"]): r for r in runs if r["variant"] == v} for v in variants}
    if seeds is None:  # the seeds every variant has finished
        seeds = sorted(set.intersection(*(set(rows) for rows in by_variant.values())))
    if not seeds:
        return "The variants share no seed, so there is no paired table; report them one by one."
    missing = [v for v in variants if not set(seeds) <= set(by_variant[v])]
    variants = [v for v in variants if v not in missing]
    to_solve = [
        np.array(
            [
                float(by_variant[v][s]["steps_to_solve"])
                if by_variant[v][s]["solved"] == "True"
                else math.inf
                for s in seeds
            ]
        )
        for v in variants
    ]
    boot = bootstrap_medians(to_solve, np.random.default_rng(0))
    env = runs[0].get("env") or "CartPole-v1"
    line, cartpole = solve_line(env), env == "CartPole-v1"
    lines = [
        f"{env}, seeds {seed_text(seeds)} ({len(seeds)} per variant); steps are env steps to the "
        f"first 100-episode check >= {line:g}; ratio = this variant's median / the first row's, "
        f"with a 95% paired bootstrap interval ({BOOTSTRAP:,} resamples of the seeds); saved "
        f"models are scored on {OWN_EVAL_EPISODES} unseen greedy episodes by "
        "tests/tools/study.py's "
        "own evaluation (a run that saved no model scores -inf).",
        "",
        "| variant | flags | solved | median steps (IQR) | 95% CI of median | ratio to "
        f"{variants[0]} (95% CI) | seeds faster, slower | 90th percentile | worst "
        "| saved models: median, lowest "
        f"| models >= {line:g} |"
        + (f" models >= {GOOD:g} | models at {PERFECT:g} |" if cartpole else "")
        + " median process s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        + (" ---: | ---: |" if cartpole else ""),
    ]
    for i, variant in enumerate(variants):
        values = np.sort(to_solve[i])
        rows = [by_variant[variant][s] for s in seeds]
        own = np.array([float(r["own_eval_mean"] or "-inf") for r in rows])
        seconds = [float(r["process_seconds"]) for r in rows]
        low, high = interval(boot[i])
        ratio = boot[i] / boot[0]
        ratio_low, ratio_high = interval(np.where(np.isnan(ratio), math.inf, ratio))
        point = median(values) / median(to_solve[0])
        ratio_text = "-" if i == 0 else f"{point:.2f} ({ratio_low:.2f}-{ratio_high:.2f})"
        # Seed by seed against the first row (an unsolved run is slower than any solved one).
        faster = int((to_solve[i] < to_solve[0]).sum())
        slower = int((to_solve[i] > to_solve[0]).sum())
        wins = "-" if i == 0 else f"{faster}, {slower}"
        lines.append(
            f"| {variant} | `{rows[0]['flags'] or '(defaults)'}` "
            f"| {int(np.isfinite(values).sum())}/{len(values)} "
            f"| {steps(median(values))} ({steps(quantile(values, 0.25))}-"
            f"{steps(quantile(values, 0.75))}) | {steps(low)}-{steps(high)} | {ratio_text} "
            f"| {wins} "
            f"| {steps(quantile(values, 0.9))} | {steps(values[-1])} "
            f"| {median(own):.1f}, {own.min():.1f} | {int((own >= line).sum())}/{len(own)} |"
            + (
                f" {int((own >= GOOD).sum())}/{len(own)} "
                f"| {int((own >= PERFECT).sum())}/{len(own)} |"
                if cartpole
                else ""
            )
            + f" {median(seconds):.1f} |"
        )
    for budget in within:
        counts = ", ".join(
            f"{v} {int((to_solve[i] <= budget).sum())}/{len(seeds)}" for i, v in enumerate(variants)
        )
        lines += ["", f"Solved within {budget:,} steps: {counts}."]
    for score in at_least:
        counts = ", ".join(
            f"{v} {sum(float(by_variant[v][s]['own_eval_mean'] or '-inf') >= score for s in seeds)}"
            f"/{len(seeds)}"
            for v in variants
        )
        lines += ["", f"Saved models scoring {score:g} or more: {counts}."]
    if missing:
        lines += ["", f"Left out (not every seed finished): {', '.join(missing)}."]
    return "\n".join(lines)


def replay_polishing(run: dict, patience: int, budget: int) -> tuple[float, int]:
    """What Checks would have kept with `patience` and `budget`, replayed from a run that
    polished with no patience: (the kept snapshot's certified score, polishing steps used).
    The checks after the solve and the certifications are in the run's row; a certification
    cut short is a lower bound below the kept score, which is all a comparison needs."""
    start = int(run["steps_to_solve"])
    certified = {int(s): score for s, _, score in json.loads(run["certifications"])}
    checks = [(int(s), m) for s, m in json.loads(run["evaluations"]) if int(s) >= start]
    perfect = PERFECT if (run.get("env") or "CartPole-v1") == "CartPole-v1" else math.inf
    kept, best_check, stale, step = -math.inf, -math.inf, 0, start
    for step, check in checks:
        if step > start + budget:
            step = start + budget
            break
        stale += 1
        if check >= best_check:
            best_check = check
            if certified[step] > kept:
                kept, stale = certified[step], 0
        if kept >= perfect or (patience and stale >= patience):
            break
    return kept, step - start


def polish_report(runs: list[dict], budgets, pooled=False, patiences=(0, 2, 3, 5, 8, 12)) -> str:
    """Polishing rules replayed from runs that polished their whole budget with no patience:
    the snapshot each rule keeps (its certified score) and the steps it takes. `pooled`
    replays all the variants' runs as one set (one row run on two seed sets, say)."""
    if pooled:
        name = "+".join(dict.fromkeys(r["variant"] for r in runs))
        runs = [{**r, "variant": name} for r in runs]
    lines = [
        "| variant | polish budget | patience (checks) | runs | median steps used | kept "
        "snapshot's certified score: median, lowest | runs that keep less than the whole budget |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for variant in dict.fromkeys(r["variant"] for r in runs):
        solved = [r for r in runs if r["variant"] == variant and r["solved"] == "True"]
        solved = [r for r in solved if r.get("certifications")]  # older runs kept no record
        if not solved:
            lines.append(f"| {variant} | (no runs with certifications) | | | | | |")
            continue
        full_budget = max(int(r["steps"]) - int(r["steps_to_solve"]) for r in solved)
        for budget in sorted({b for b in budgets if b < full_budget} | {full_budget}):
            whole = [replay_polishing(r, 0, budget)[0] for r in solved]
            for patience in patiences:
                kept, used = zip(
                    *(replay_polishing(r, patience, budget) for r in solved), strict=True
                )
                worse = sum(k < w for k, w in zip(kept, whole, strict=True))
                lines.append(
                    f"| {variant} | {budget:,} | {patience or 'none'} | {len(kept)} "
                    f"| {median(used):,.0f} | {median(kept):.1f}, {min(kept):.1f} "
                    f"| {worse} |"
                )
    return "\n".join(lines)


def smooth(curves: np.ndarray, window: int) -> np.ndarray:
    """Moving mean of each row over the last `window` points, ignoring NaN."""
    out = np.full_like(curves, np.nan)
    for i in range(curves.shape[1]):
        block = curves[:, max(0, i - window + 1) : i + 1]
        seen = ~np.isnan(block)
        out[:, i] = np.where(
            seen.any(axis=1), np.nansum(block, axis=1) / np.maximum(seen.sum(axis=1), 1), np.nan
        )
    return out


def seed_text(seeds: list[int]) -> str:
    """[0, 1, 2, 7] -> '0-2, 7'."""
    runs, start = [], seeds[0]
    for previous, seed in zip(seeds, [*seeds[1:], None], strict=True):
        if seed is None or seed != previous + 1:
            runs.append(f"{start}-{previous}" if previous > start else str(start))
            start = seed
    return ", ".join(runs)


def plot(runs: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(dict.fromkeys(row["variant"] for row in runs))
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    grid = np.arange(0, 150_001, 250)
    for variant in variants:
        rows = [r for r in runs if r["variant"] == variant]
        solved = np.sort([float(r["steps_to_solve"]) for r in rows if r["solved"] == "True"])
        fraction = np.arange(1, len(solved) + 1) / len(rows)
        line = left.step(
            np.concatenate([[0], solved, [grid[-1]]]),
            np.concatenate([[0], fraction, [fraction[-1] if len(fraction) else 0]]),
            where="post",
            label=f"{variant} ({len(solved)}/{len(rows)})",
        )[0]
        curves = []
        for r in rows:  # each run's latest evaluation; once stopped, its saved model's score
            evals = np.array(json.loads(r["evaluations"]) or [[0, 0.0]])
            index = np.searchsorted(evals[:, 0], grid, side="right") - 1
            curve = np.where(index >= 0, evals[np.maximum(index, 0), 1], np.nan)
            curves.append(np.where(grid > int(r["steps"]), float(r["own_eval_mean"]), curve))
        curves = smooth(np.array(curves), SMOOTH)
        with warnings.catch_warnings():  # before the first evaluation every value is NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(curves, axis=0)
            low, high = np.nanpercentile(curves, [25, 75], axis=0)
        right.plot(grid, mean, color=line.get_color(), label=variant)
        right.fill_between(
            grid,
            low,
            high,
            color=line.get_color(),
            alpha=0.1,
        )
    left.set(
        xlabel="env steps",
        ylabel="fraction of seeds solved",
        title="Steps to solve (ECDF; the first 100-episode check >= 475)",
        xlim=(0, grid[-1]),
        ylim=(0, 1.02),
    )
    right.axhline(475, color="tab:red", ls="--", lw=1)
    right.set(
        xlabel="env steps",
        ylabel="greedy return",
        title="Greedy evaluation: mean over seeds, band = interquartile range",
        xlim=(0, 80_000),
    )
    right.text(
        0.99,
        0.02,
        f"each run's curve is a moving mean over {SMOOTH * 250:,} steps; until solved, an\n"
        "evaluation is 10 episodes, cut short once they cannot reach 475 (a lower bound);\n"
        "after a run stops: its saved model's score on 100 unseen episodes",
        transform=right.transAxes,
        ha="right",
        fontsize=7,
    )
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right" if ax is left else "center right")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")


# ---- Command line ------------------------------------------------------------------------------


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=False, help="CSV of finished runs")
    parser.add_argument("--variant", action="append", default=[], help="NAME or NAME=FLAGS")
    parser.add_argument("--seeds", default="0-19", help="e.g. 0-19 or 1000-1019")
    parser.add_argument(
        "--jobs", type=int, default=len(os.sched_getaffinity(0)),
        help="runs at a time on this machine (the CPUs of a local Ray; threads' pool size)",
    )  # fmt: skip
    parser.add_argument(
        "--address", help="join this Ray cluster (host:port) instead of starting one; "
        "RAY_ADDRESS does the same",
    )  # fmt: skip
    parser.add_argument("--engine", choices=("ray", "threads"), default="ray")
    parser.add_argument(
        "--ship-requirements", action="store_true",
        help="install requirements.txt on the workers through Ray's runtime environment",
    )  # fmt: skip
    parser.add_argument("--report-only", action="store_true", help="no runs: tables and figure")
    parser.add_argument("--table", type=Path, help="also write the Markdown table here")
    parser.add_argument("--figure", type=Path, help="write the figure here (PNG)")
    parser.add_argument(
        "--polish", action="store_true", help="also: what shorter polishing would have kept"
    )
    parser.add_argument(
        "--polish-budgets", default="5000,10000,20000",
        help="the polishing budgets that --polish replays (the runs' whole budget is added)",
    )  # fmt: skip
    parser.add_argument(
        "--polish-pooled", action="store_true",
        help="--polish replays the variants' runs as one set (e.g. one row run on two seed sets)",
    )  # fmt: skip
    parser.add_argument(
        "--compare", action="store_true",
        help="with --report-only: the like-for-like table of ours and Stable-Baselines3's "
        "variants (flags 'sb3-dqn --env ENV' or 'sb3-qrdqn --env ENV')",
    )  # fmt: skip
    parser.add_argument("--title", default="DQN on CartPole-v1", help="the figure's title")
    parser.add_argument("--within", help="also count seeds solved within these steps: 6000,10000")
    parser.add_argument(
        "--scoring-at-least", type=float, action="append", default=[],
        help="also count saved models whose study evaluation is at least this (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--evaluate", type=Path, help="only score this .keras model with the study's evaluation"
    )
    parser.add_argument("--env", default="CartPole-v1", help="the env of --evaluate's model")
    return parser


def parse_budgets(text: str) -> list[int]:
    return [int(b) for b in text.split(",")]


def report_text(args: argparse.Namespace) -> str:
    """The tables that --report-only prints (and --table writes), from the finished runs."""
    runs = read_runs(args.runs)
    names = [name for name, _ in (parse_variant(v) for v in args.variant)]
    if names:  # report these variants, in this order
        runs = sorted(
            (r for r in runs if r["variant"] in names), key=lambda r: names.index(r["variant"])
        )
    seeds = parse_seeds(args.seeds)
    runs = [r for r in runs if int(r["seed"]) in seeds and not r.get("error")]
    if not runs:
        sys.exit(f"study: no finished runs for seeds {args.seeds} in {args.runs}")
    if args.compare:
        return compare_report(runs, seeds)
    within = parse_seeds(args.within) if args.within else ()
    table = report(runs, None, within, args.scoring_at_least)
    if args.polish:
        budgets = parse_budgets(args.polish_budgets)
        table += "\n\n" + polish_report(runs, budgets, args.polish_pooled)
    return table


def main() -> None:
    parser = make_parser()
    args = parser.parse_args()
    if args.evaluate:
        if args.evaluate.suffix == ".npz":  # Stable-Baselines3's, from tests/tools/sb3_zoo.py
            with np.load(args.evaluate) as arrays:
                weights = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
        else:
            weights = model_weights(args.evaluate)
        print(json.dumps(own_evaluation(weights, args.env).tolist()))
        return
    if args.runs is None:
        parser.error("--runs is required")
    seeds = parse_seeds(args.seeds)
    variants = [parse_variant(v) for v in args.variant]
    try:  # refused before any run starts
        parse_budgets(args.polish_budgets)
    except ValueError:
        parser.error(
            f"--polish-budgets must be whole numbers, comma-separated: {args.polish_budgets}"
        )
    if not args.report_only:
        if not variants:
            parser.error("name at least one --variant (or use --report-only)")
        if not 1 <= args.jobs <= len(os.sched_getaffinity(0)):
            parser.error(f"--jobs must be in [1, {len(os.sched_getaffinity(0))}]")
        run_study(
            args.runs, variants, seeds, args.jobs, args.engine, args.address,
            args.ship_requirements,
        )  # fmt: skip
    table = report_text(args)
    print(table)
    if args.table:
        args.table.parent.mkdir(parents=True, exist_ok=True)
        args.table.write_text(table + "\n")
        print(f"wrote {args.table}")
    if args.figure:
        seeds, names = parse_seeds(args.seeds), [name for name, _ in variants]
        runs = [r for r in read_runs(args.runs) if int(r["seed"]) in seeds]
        if names:
            runs = sorted(
                (r for r in runs if r["variant"] in names), key=lambda r: names.index(r["variant"])
            )
        plot(runs, args.figure, args.title)


if __name__ == "__main__":
    main()
