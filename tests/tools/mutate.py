"""Mutation check: break the DQN core of dqn_cartpole.py one small change at a time, and see a
unit test fail each time.

    python tests/tools/mutate.py            # every mutant, two at a time; ~2 hours on 2 cores
    python tests/tools/mutate.py --list     # the mutants, without running them
    python tests/tools/mutate.py --report results/mutations.md

The mutants are made here, from the script's syntax tree, in the functions that make this a DQN
(CORE): every arithmetic, comparison and boolean operator swapped for its neighbour, every number
moved by one (0 and 1 swapped), every True and False flipped, max and min (argmax and argmin)
swapped, every `if` negated and every statement deleted; plus the PLANTED bugs below, which no
rule makes. Text for people (print, messages, docstrings) is left alone. Each mutant is written
into a copy of the project, where `pytest -x tests/test_units.py` runs; a mutant is killed when a
test fails (or the tests time out: a loop that no longer ends). A mutant that survives is a hole
in the tests, unless it cannot change what the program does: those are listed in EQUIVALENT with
the reason, and the run exits with 1 if any other survives. pytest does not collect this file.
"""

import argparse
import ast
import contextlib
import copy
import hashlib
import io
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "dqn_cartpole.py"
TIMEOUT = 300  # seconds for one mutant's tests (a loop that no longer ends); the file passes in ~60

# The DQN core: functions, or classes (all their methods), by name.
CORE = {
    "q_values",
    "td_targets",
    "ReplayMemory",
    "build_q_network",
    "row_width",
    "flat_weights",
    "unflatten",
    "ParameterNoise",
    "no_bonus",
    "DQNAgent",
    "Callbacks",
    "train",
    # the DQN-family options
    "make_agent",
    "DuelingHead",
    "build_dueling_network",
    "fold_dueling",
    "plain_network",
    "QRDQNAgent",
    "fold_quantiles",
    "PrioritizedDQNAgent",
    "PrioritizedReplayMemory",
    "CountBonus",
    # the harness that decides what is checked, kept and saved
    "SnapshotSelector",
    "RunMonitor",
    "WeightAverage",
    "monitored_training",
    "evaluate",
    "run_training",
    "save_model",
    "save_json",
    "save_episodes_csv",
}

# Bugs that no syntax rule above makes: (what breaks, exact text, what it becomes).
PLANTED = [
    (
        "a truncation stored as a termination",
        "agent.remember(state, action, reward, next_state, terminated, truncated)",
        "agent.remember(state, action, reward, next_state, terminated or truncated, truncated)",
    ),
    (
        "Double DQN: the target network picks the next action too",
        "online_q = self.q_network(next_states, training=False)",
        "online_q = self.target_network(next_states, training=False)",
    ),
    (
        "the replay bootstraps from the states, not the next states",
        "self.next_value(next_states)",
        "self.next_value(states)",
    ),
    (
        "the TD target's termination flag and discount swapped",
        "td_targets(rewards, self.next_value(next_states), terminated, discounts)",
        "td_targets(rewards, self.next_value(next_states), discounts, terminated)",
    ),
    (
        "the loss hard-coded to MSE in the gradient step",
        "return self.loss_fn(target_q, q)",
        "return tf.reduce_mean(tf.square(target_q - q), axis=-1)",
    ),
    (
        "the target network is the online network",
        "next_q = self.target_network(next_states, training=False)",
        "next_q = self.q_network(next_states, training=False)",
    ),
    (
        "a full memory drops its oldest transition, not a random one",
        "elif self.replace_random:",
        "elif False:",
    ),
    (
        "the kept snapshot is the best check, not the best certified",
        "if kept is None or certified > kept:",
        "if check >= self.best_check:",
    ),
]

# Mutants that survive because they cannot change what the program does, keyed by
# (function, the source line as written, the change): the reason.
# The reason shared by every `training=` flip: the Q-network is Dense layers alone.
DENSE_ONLY = "Equivalent: the Q-network is Dense layers alone, the same in training and inference."

EQUIVALENT: dict[tuple[str, str, str], str] = {
    (
        "DQNAgent.regression_loss",
        "q = self.q_network(states, training=True)",
        "`True` -> `False`",
    ): (
        "Equivalent: `training` only changes layers such as dropout or batch normalisation, "
        "and the Q-network is Dense layers alone (build_q_network, and --watch refuses others)."
    ),
    (
        "DQNAgent.next_value",
        "next_q = self.target_network(next_states, training=False)",
        "`False` -> `True`",
    ): DENSE_ONLY,
    (
        "DQNAgent.next_value",
        "online_q = self.q_network(next_states, training=False)",
        "`False` -> `True`",
    ): DENSE_ONLY,
    (
        "PrioritizedDQNAgent.experience_replay",
        "importance = self.memory.importance.reshape(batches[0].shape[:2])",
        "`0` -> `1`",
    ): (
        "Equivalent: batches[1] holds the actions, shaped (minibatches, batch size) like the "
        "states' first two dimensions, so the weights are reshaped to the same shape."
    ),
    (
        "QRDQNAgent.next_value",
        "chooser = self.q_network(next_states, training=False) if self.cfg.double_dqn else next_q",
        "`False` -> `True`",
    ): DENSE_ONLY,
    (
        "QRDQNAgent.next_value",
        "best = tf.argmax(tf.reduce_mean(tf.reshape(chooser, shape), axis=2), axis=1)",
        "`.reduce_mean` -> `.reduce_sum`",
    ): "Equivalent: the sum of N quantiles is N times their mean; both pick the same action.",
    **{
        (agent_class + "._gradient_steps", "loss = tf.constant(0.0)", change): (
            "Equivalent: validate() makes --gradient-steps at least 1, so the loop always sets "
            "`loss` before it is returned; its starting value is never read."
        )
        for agent_class in ("DQNAgent", "PrioritizedDQNAgent")
        for change in ("the statement deleted", "`0.0` -> `1.0`")
    },
    (
        "DQNAgent.apply_gradients",
        "self.optimizer.apply_gradients(zip(grads, variables, strict=True))",
        "`True` -> `False`",
    ): (
        "Equivalent: `strict` only raises when the two lists differ in length, and the "
        "gradients are taken of exactly these variables."
    ),
    (
        "evaluate",
        "best_to_come = running.sum() * bound * steps_left if bound is not None else 0.0",
        "`0.0` -> `1.0`",
    ): (
        "Equivalent: with no bound the value is never read (the test below it starts with "
        "`bound is not None and`)."
    ),
    (
        "ParameterNoise.perturb",
        "noisy = zip(weights, self.direction, strict=True)",
        "`True` -> `False`",
    ): (
        "Equivalent: new_direction draws the noise one array per weight array, so the two lists "
        "always have the same length and `strict` never has a mismatch to refuse."
    ),
    (
        "unflatten",
        "return [part.reshape(shape) for part, shape in zip(parts, shapes, strict=True)]",
        "`True` -> `False`",
    ): (
        "Equivalent: np.split at the running sums of the shapes' sizes gives exactly one part "
        "per shape, so `strict` never has a mismatch to refuse."
    ),
    **{
        (
            agent_class + "._gradient_steps",
            "for k in tf.range(tf.shape(batch[0])[0]):",
            "`0` -> `1`",
        ): (
            "Equivalent where it survives: the line has two such mutants, and the one that "
            "survives is `batch[0]` -> `batch[1]`, the loop bound read from the actions instead "
            "of the states, whose first dimension is gradient_steps as well (the other, `[0]` "
            "-> `[1]`, the batch size, is killed)."
        )
        for agent_class in ("DQNAgent", "PrioritizedDQNAgent")
    },
    (
        "WeightAverage.add",
        "pairs = zip(self.mean, weights, strict=True)",
        "`True` -> `False`",
    ): (
        "Equivalent: both lists are acting_weights of the same network, one array per weight "
        "array, so `strict` never has a mismatch to refuse."
    ),
    ("evaluate", "for i, action in zip(live, actions, strict=True):", "`True` -> `False`"): (
        "Equivalent: `strict` only raises when the two differ in length, and `actions` holds "
        "one action for each index in `live`."
    ),
    (
        "SnapshotSelector.__init__",
        "self.stale = 0  # polishing checks in a row that kept nothing new",
        "`0` -> `1`",
    ): (
        "Equivalent: `stale` is read only once solved (polish_end), and the solve itself runs "
        "consider() with no certified snapshot kept, which keeps the solving one and sets "
        "`stale` to 0 before anything reads it."
    ),
    (
        "SnapshotSelector.solve",
        "self.kept = None  # from here on only certified snapshots are kept",
        "the statement deleted",
    ): (
        "Equivalent: the snapshot kept before the solve has no certification (`certified` is "
        "None), and consider(), called on the next line, treats that as nothing kept: the "
        "solving snapshot replaces it either way."
    ),
    ("SnapshotSelector.polish_end", "return None", "the statement deleted"): (
        "Equivalent for the last line of polish_end: a function that ends without `return` "
        "returns None. (The same deletion of the first `return None`, which guards an unsolved "
        "run, lets it reach `None + polish_steps` and is killed.)"
    ),
    ("RunMonitor.on_replay", "self.replays += 1", "`+` -> `-`"): (
        "Equivalent: `replays` is only asked whether it is 0 (the first replay, charged to the "
        "compile phase) or not (learning has begun), and -1, -2, ... are no more 0 than 1, 2."
    ),
    ("train", "step = 0", "the statement deleted"): (
        "Equivalent: validate() makes --max-steps at least 1, so the loop always sets `step` "
        "before it is returned; the first value is never read."
    ),
    ("train", "step = 0", "`0` -> `1`"): (
        "Equivalent, for the same reason: the starting value is always overwritten."
    ),
    (
        "DQNAgent.__init__",
        "self.optimizer.build(self.q_network.trainable_variables)",
        "the statement deleted",
    ): (
        "Equivalent: Keras builds an optimizer's slots at its first apply_gradients, which here "
        "is inside the first trace of the compiled replay, where tf.function allows variables to "
        "be made; building it in __init__ only makes them sooner, with the same zeros."
    ),
    ("RunMonitor.on_step", "return False", "the statement deleted"): (
        "Equivalent: a method that ends without `return` returns None, which train() reads as "
        "false, as it reads False: training goes on either way."
    ),
    ("Callbacks.on_step", "return False", "the statement deleted"): (
        "Equivalent, as above: None and False both let train() go on."
    ),
    ("DQNAgent.get_action", "if self.rng.random() < self.epsilon:", "`<` -> `<=`"): (
        "Equivalent but for a draw exactly equal to epsilon: random() returns one of 2**53 "
        "values, so the two differ with probability 2**-53 per step."
    ),
    (
        "PrioritizedReplayMemory.__init__",
        "self.slots = self.importance = None  # the last draw's slots and importance weights",
        "the statement deleted",
    ): (
        "Equivalent: both are set by draw() before anything reads them (the replay reads the "
        "importance weights, and update_priorities the slots, after the replay's draw)."
    ),
    ("PrioritizedReplayMemory.store", "return slot", "the statement deleted"): (
        "Equivalent: the agent ignores what the memory's store() returns (DQNAgent.remember); "
        "only PrioritizedReplayMemory.store reads the return of ReplayMemory.store."
    ),
    (
        "PrioritizedDQNAgent._gradient_steps",
        "taken_q = tf.gather(self.q_network(s, training=False), a, axis=1, batch_dims=1)",
        "`False` -> `True`",
    ): DENSE_ONLY,
    (
        "fold_quantiles",
        "return [*trunk, kernel.mean(-1), bias.mean(-1)]",
        "the `not`/`-` dropped",
    ): (
        "Equivalent where it survives, in the bias: a (actions, N) array, whose axis 1 is its "
        "last, so bias.mean(1) is bias.mean(-1). The same change to the kernel's axis, "
        "(hidden, actions, N), is killed."
    ),
    (
        "QRDQNAgent._gradient_step",
        "huber = tf.where(tf.abs(errors) <= 1.0, 0.5 * errors**2, tf.abs(errors) - 0.5)",
        "`<=` -> `<`",
    ): (
        "Equivalent: at |error| = 1 both sides of the Huber loss are 0.5, with the same "
        "slope, so which side takes the boundary changes neither the loss nor its gradient."
    ),
    (
        "QRDQNAgent._gradient_step",
        "weight = tf.abs(levels[None, :, None] - tf.cast(errors < 0, tf.float32))",
        "`<` -> `<=`",
    ): (
        "Equivalent: the two differ only at an error of exactly 0, where the Huber loss that "
        "the weight multiplies is 0 (and so is its gradient)."
    ),
    (
        "QRDQNAgent._gradient_step",
        "quantiles = tf.reshape(self.q_network(states, training=True), [-1, self.n_actions, n])",
        "`True` -> `False`",
    ): DENSE_ONLY,
    (
        "PrioritizedReplayMemory.draw",
        "chance = self.priorities[self.slots] / total",
        "`/` -> `*`",
    ): (
        "Equivalent: the chance enters only the importance weights, (N P(i))**-beta over their "
        "largest, and the constant factor total**2 cancels in that ratio. (The total itself is "
        "read on a line of its own, whose mutants change the draws, and with one stored row "
        "cumulative[1] raises: both killed.)"
    ),
}

REPORT_HEADER = (
    "# Mutation check\n\nOutput of `python tests/tools/mutate.py {args}` (the rules are in the "
    "file's docstring).\n\n"
)

SWAPS = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
    ast.Pow: ast.Mult, ast.FloorDiv: ast.Div, ast.Mod: ast.FloorDiv,
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
    ast.In: ast.NotIn, ast.NotIn: ast.In, ast.And: ast.Or, ast.Or: ast.And,
}  # fmt: skip
SYMBOLS = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**", ast.FloorDiv: "//",
    ast.Mod: "%", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==",
    ast.NotEq: "!=", ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in",
    ast.And: "and", ast.Or: "or",
}  # fmt: skip
NAMES = {
    "max": "min", "min": "max", "argmax": "argmin", "argmin": "argmax", "maximum": "minimum",
    "minimum": "maximum", "reduce_max": "reduce_min", "reduce_mean": "reduce_sum",
}  # fmt: skip


def core_hash(source: str | None = None) -> str:
    """A hash of the DQN core's code alone, without its docstrings (and the planted bugs): a
    log of outcomes stays valid while only other parts of the script (defaults, messages) or
    text for people change, which no mutant touches."""
    tree = ast.parse(SCRIPT.read_text() if source is None else source)
    text = ""
    for _, node in core_functions(tree):
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            node.body = body[1:] or [ast.Pass()]
        text += ast.unparse(node)
    return hashlib.sha256((text + repr(PLANTED)).encode()).hexdigest()[:12]


def core_functions(tree: ast.Module):
    """(qualified name, def node) for every function of CORE."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in CORE:
            yield node.name, node
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                name = f"{node.name}.{item.name}" if isinstance(item, ast.FunctionDef) else None
                if name and (node.name in CORE or name in CORE):
                    yield name, item


def for_people(node) -> bool:
    """Text only a person reads: print() calls, f-strings, docstrings, messages."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
        return True
    if isinstance(node, ast.JoinedStr):
        return True
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)


def mutable_nodes(function: ast.FunctionDef):
    """The function's nodes in walk order, skipping those under text for people."""
    skip = set()
    for node in ast.walk(function):
        if for_people(node):
            skip.update(id(n) for n in ast.walk(node))
    return [n for n in ast.walk(function) if id(n) not in skip and n is not function]


def changes(node):
    """The mutations of one node: (description, apply(node))."""
    if isinstance(node, ast.BinOp | ast.AugAssign | ast.BoolOp) and type(node.op) in SWAPS:
        new = SWAPS[type(node.op)]
        yield f"`{SYMBOLS[type(node.op)]}` -> `{SYMBOLS[new]}`", lambda n: setattr(n, "op", new())
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in SWAPS:
                new = SWAPS[type(op)]

                def swap(n, i=i, new=new):
                    n.ops[i] = new()

                yield f"`{SYMBOLS[type(op)]}` -> `{SYMBOLS[new]}`", swap
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.USub):
        yield "the `not`/`-` dropped", "unwrap"
    if isinstance(node, ast.Constant) and not isinstance(node.value, str | bytes):
        value = node.value
        if isinstance(value, bool):
            yield f"`{value}` -> `{not value}`", lambda n: setattr(n, "value", not n.value)
        elif isinstance(value, int | float):
            new = {0: 1, 1: 0}.get(value, value + 1)
            new = type(value)(new)
            yield f"`{value!r}` -> `{new!r}`", lambda n, new=new: setattr(n, "value", new)
    if isinstance(node, ast.Name) and node.id in NAMES:
        new = NAMES[node.id]
        yield f"`{node.id}` -> `{new}`", lambda n, new=new: setattr(n, "id", new)
    if isinstance(node, ast.Attribute) and node.attr in NAMES:
        new = NAMES[node.attr]
        yield f"`.{node.attr}` -> `.{new}`", lambda n, new=new: setattr(n, "attr", new)
    if isinstance(node, ast.If):
        yield "the `if` negated", lambda n: setattr(n, "test", ast.UnaryOp(ast.Not(), n.test))
    if isinstance(node, ast.Expr | ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Return):
        yield "the statement deleted", "delete"


class Replace(ast.NodeTransformer):
    """Apply one change to the node at `target` (its index in the function's walk order)."""

    def __init__(self, target, apply):
        self.target, self.apply = target, apply

    def visit(self, node):
        if node is self.target:
            if self.apply == "unwrap":
                return node.operand
            if self.apply == "delete":
                return ast.Pass()
            self.apply(node)
            return node
        return super().visit(node)


def make_mutants(source: str) -> list[dict]:
    """Every rule mutant of CORE, then the planted ones, each with its whole new source."""
    tree = ast.parse(source)
    lines = source.splitlines()
    mutants = []
    for name, function in core_functions(tree):
        for index, node in enumerate(mutable_nodes(function)):
            for description, apply in changes(node):
                mutated = copy.deepcopy(tree)
                twin = dict(core_functions(mutated))[name]
                target = mutable_nodes(twin)[index]
                Replace(target, apply).visit(twin)
                ast.fix_missing_locations(mutated)
                try:
                    new_source = ast.unparse(mutated)
                    compile(new_source, "mutant", "exec")
                except (SyntaxError, ValueError):  # e.g. a deleted statement in an odd place
                    continue
                line = lines[node.lineno - 1].strip()
                mutants.append(
                    {"function": name, "line_no": node.lineno, "line": line,
                     "change": description, "source": new_source}
                )  # fmt: skip
    for what, old, new in PLANTED:
        assert source.count(old) >= 1, f"planted bug not found: {old!r}"
        line_no = source[: source.index(old)].count("\n") + 1
        mutants.append(
            {"function": "planted", "line_no": line_no, "line": old, "change": what,
             "source": source.replace(old, new)}
        )  # fmt: skip
    for index, mutant in enumerate(mutants):
        mutant["index"] = index  # what a worker process is told to run
    return mutants


class MutantTimeout(BaseException):  # not an Exception: no `except Exception` may swallow it
    """A mutant's tests ran past TIMEOUT: a loop that no longer ends, say."""


def worker(indices: list[int]) -> None:
    """Run the unit tests against each mutant in turn, in this one process, so that Python,
    pytest and TensorFlow start once (about 5 s) and not once per mutant. Each mutant becomes a
    fresh `dqn_cartpole` module, and the test module is imported anew against it. Prints one
    line per mutant: OUTCOME index first-failing-test."""
    import gc
    import signal
    import types

    import pytest

    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT))
    mutants = make_mutants(SCRIPT.read_text())

    killers: list[str] = []  # tests that killed a mutant, the latest first

    class Outcome:
        def __init__(self):
            self.failed = []

        def pytest_collection_modifyitems(self, items):
            # Neighbouring mutants tend to fall to the same test: run the latest killers first.
            # The order changes only how soon a mutant is killed, not whether (-x stops at the
            # first failure; a survivor runs every test either way).
            rank = {name: i for i, name in enumerate(killers)}
            items.sort(key=lambda item: rank.get(item.name, len(rank)))

        def pytest_runtest_logreport(self, report):
            if report.failed:
                self.failed.append(report.nodeid.split("::")[-1])

    def alarm(signum, frame):
        raise MutantTimeout

    signal.signal(signal.SIGALRM, alarm)
    # -1 is the script itself, a control that must pass: first, every 50 mutants and last, so
    # that a mutant that left the process broken cannot pass off the next ones as killed.
    order = [-1]
    for i, index in enumerate(indices, 1):
        order += [index, -1] if i % 50 == 0 or i == len(indices) else [index]
    files = Path(tempfile.mkdtemp(prefix="mutants-"))
    for n, index in enumerate(order):
        # The mutant's source goes to a file of its own, and the module names it: TensorFlow's
        # autograph reads a function's source back from its file, line by line, to compile it.
        path = files / str(n) / "dqn_cartpole.py"
        path.parent.mkdir()
        source = SCRIPT.read_text() if index < 0 else mutants[index]["source"]
        path.write_text(source)
        module = types.ModuleType("dqn_cartpole")
        module.__file__ = str(path)
        for name in [n for n in sys.modules if n in ("dqn_cartpole", "test_units", "conftest")]:
            del sys.modules[name]
        outcome = Outcome()
        # Fire at TIMEOUT and every 10 s after, in case a handler in the way swallowed one.
        signal.setitimer(signal.ITIMER_REAL, TIMEOUT, 10)
        try:
            sys.modules["dqn_cartpole"] = module  # dataclasses look their module up here
            exec(compile(source, str(path), "exec"), module.__dict__)
            with contextlib.redirect_stdout(io.StringIO()):  # pytest's own report: not needed
                code = pytest.main(
                    ["-x", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                     str(ROOT / "tests" / "test_units.py")],
                    plugins=[outcome],
                )  # fmt: skip
            result = "killed" if outcome.failed or code not in (0, 5) else "survived"
        except MutantTimeout:
            result = "timeout"
        except Exception as exc:  # the mutant does not even import
            result, outcome.failed = (
                "killed",
                [f"error:{type(exc).__name__}:{exc}".replace(" ", "_")],
            )
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if index < 0:
            if result != "survived":
                sys.exit(f"the unmutated script fails its tests here: {outcome.failed}")
            print("control passed", flush=True)
            continue
        print(f"{result} {index} {(outcome.failed or ['-'])[0]}", flush=True)
        if outcome.failed and not outcome.failed[0].startswith("error:"):
            killers[:] = [outcome.failed[0], *(k for k in killers if k != outcome.failed[0])]
        gc.collect()


def run_all(mutants: list[dict], jobs: int, log: Path | None = None) -> list[tuple[str, str]]:
    """Share the mutants among `jobs` worker processes; collect their outcomes. With `log`,
    each outcome is appended there as it comes, and mutants already in it (for the same
    script) are not run again: a stopped run resumes."""
    outcomes: list = [None] * len(mutants)
    sha = core_hash()
    done = {}
    if log and log.exists():
        for line in log.read_text().splitlines():
            parts = line.split()
            if len(parts) == 4 and parts[0] == sha:
                done[int(parts[1])] = (parts[2], parts[3])
    for i, m in enumerate(mutants):
        outcomes[i] = done.get(m["index"])
    todo = [m for m in mutants if m["index"] not in done]
    if not todo:
        return outcomes
    mutants_all, mutants = mutants, todo
    position = {m["index"]: i for i, m in enumerate(mutants_all)}
    shares = [[m["index"] for m in mutants[j::jobs]] for j in range(jobs)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    with tempfile.TemporaryDirectory() as cache:
        env["DQN_CARTPOLE_CACHE"] = cache
        procs = [
            subprocess.Popen(
                [sys.executable, __file__, "--worker", ",".join(map(str, share))],
                stdout=subprocess.PIPE,
                text=True,
                env=env,
                cwd=ROOT,
            )  # fmt: skip
            for share in shares
            if share
        ]
        done = 0

        def read(proc):
            nonlocal done
            for line in proc.stdout:
                parts = line.split()
                if len(parts) < 3 or parts[0] not in ("killed", "survived", "timeout"):
                    continue
                index = position[int(parts[1])]
                outcomes[index] = (parts[0], parts[2])
                if log:
                    with open(log, "a") as f:
                        f.write(f"{sha} {parts[1]} {parts[0]} {parts[2]}\n")
                done += 1
                m = mutants_all[index]
                print(f"[{done}/{len(mutants)}] {parts[0]:>8} {m['function']}:{m['line_no']} "
                      f"{m['change']} {parts[2]}", flush=True)  # fmt: skip

        with ThreadPoolExecutor(len(procs)) as pool:
            list(pool.map(read, procs))
        for proc in procs:
            proc.wait()
    mutants = mutants_all
    missing = [i for i, o in enumerate(outcomes) if o is None]
    if missing:  # a worker died (a mutant that crashed the interpreter): count as killed
        for i in missing:
            outcomes[i] = ("killed", "the worker process died")
    return outcomes


def project_copy(folder: Path) -> Path:
    copy_ = folder / "project"
    shutil.copytree(
        ROOT, copy_, ignore=shutil.ignore_patterns(".venv", ".git", "results", "__pycache__")
    )
    return copy_


def verify(mutants: list[dict], log: Path, count: int) -> None:
    """Run `count` mutants that the workers killed again, each in a fresh process of its own
    (a copy of the project, pytest from scratch), and say whether each is killed there too."""
    sha = core_hash()
    killed = [int(line.split()[1]) for line in log.read_text().splitlines()
              if line.startswith(sha) and line.split()[2] == "killed"]  # fmt: skip
    sample = random.Random(0).sample(killed, min(count, len(killed)))
    by_index = {m["index"]: m for m in mutants}
    agree = 0
    with tempfile.TemporaryDirectory() as tmp:
        workdir = project_copy(Path(tmp))
        for index in sample:
            m = by_index[index]
            (workdir / "dqn_cartpole.py").write_text(m["source"])
            proc = subprocess.run(
                [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                 "-p", "no:xdist", "tests/test_units.py"],
                cwd=workdir, capture_output=True, text=True, timeout=600,
                env={**os.environ, "DQN_CARTPOLE_CACHE": str(Path(tmp) / "xla")},
            )  # fmt: skip
            agree += proc.returncode != 0
            outcome = "killed" if proc.returncode else "SURVIVED"
            print(f"{index} {m['function']}:{m['line_no']} {m['change']}: {outcome} in a "
                  "fresh process", flush=True)  # fmt: skip
    print(f"{agree} of {len(sample)} killed mutants are killed in a fresh process too")


def report(mutants: list[dict], outcomes: list, seconds: float) -> tuple[str, int]:
    """The report; a mutant whose outcome is None was not run (a run stopped part way)."""
    not_run = sum(o is None for o in outcomes)
    outcomes = [o or ("not run", "") for o in outcomes]
    killed = sum(o[0] in ("killed", "timeout") for o in outcomes)
    survivors = [(m, o) for m, o in zip(mutants, outcomes, strict=True) if o[0] == "survived"]
    holes = [m for m, _ in survivors if (m["function"], m["line"], m["change"]) not in EQUIVALENT]
    by_function: dict[str, list] = {}
    for m, o in zip(mutants, outcomes, strict=True):
        by_function.setdefault(m["function"], []).append(o[0])
    lines = [
        f"{len(mutants)} mutants of the DQN core ({len(mutants) - len(PLANTED)} by rule, "
        f"{len(PLANTED)} planted); {killed} killed by a failing unit test (or a time-out), "
        f"{len(survivors)} survived: {len(survivors) - len(holes)} argued equivalent below, "
        f"{len(holes)} not."
        + (f" **{not_run} not run yet.**" if not_run else "")
        + (f" {seconds / 60:.0f} minutes." if seconds else ""),
        "",
        "| function | mutants | killed | survived | not run |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, results in by_function.items():
        alive, left = results.count("survived"), results.count("not run")
        lines.append(
            f"| `{name}` | {len(results)} | {len(results) - alive - left} | {alive} | {left} |"
        )
    lines += ["", "Survivors:", ""]
    for m, _ in survivors:
        reason = EQUIVALENT.get((m["function"], m["line"], m["change"]), "**NOT EXPLAINED**")
        lines.append(
            f"- `{m['function']}`, line {m['line_no']}, `{m['line']}`: {m['change']}. {reason}"
        )
    if not survivors:
        lines.append("- none")
    return "\n".join(lines), len(holes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="only list the mutants")
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--report", type=Path, help="also write the report here (Markdown)")
    parser.add_argument("--only", help="only mutants whose function or line contains this")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--log", type=Path, help="append outcomes here; resume from it")
    parser.add_argument("--report-only", action="store_true", help="report from --log alone")
    parser.add_argument(
        "--verify", type=int, metavar="N",
        help="rerun N killed mutants from --log, each in a fresh process",
    )  # fmt: skip
    args = parser.parse_args()
    if args.worker:
        worker([int(i) for i in args.worker.split(",")])
        return
    mutants = make_mutants(SCRIPT.read_text())
    if args.only:
        mutants = [m for m in mutants if args.only in m["function"] or args.only in m["line"]]
    if args.verify:
        verify(mutants, args.log, args.verify)
        return
    if args.report_only:  # from --log alone, with what is not in it yet marked "not run"
        sha, done = core_hash(), {}
        for line in args.log.read_text().splitlines():
            parts = line.split()
            if len(parts) == 4 and parts[0] == sha:
                done[int(parts[1])] = (parts[2], parts[3])
        text, holes = report(mutants, [done.get(m["index"]) for m in mutants], 0)
        text = (
            f"Read from `{args.log}`: each line is one mutant's outcome for the core whose code "
            f"hashes to `{sha}` (docstrings left out); a run appends to it and resumes from it, so "
            "the outcomes may come from several runs, and a survivor is run again once its line "
            "is taken out (as the survivors were after the tests that kill them were added).\n\n"
            + text
        )
        print(text)
        if args.report:
            args.report.write_text(REPORT_HEADER.format(args=" ".join(sys.argv[1:])) + text + "\n")
        sys.exit(1 if holes else 0)
    if args.list:
        for m in mutants:
            print(f"{m['function']}:{m['line_no']}: {m['change']}: {m['line']}")
        print(f"{len(mutants)} mutants")
        return
    start = time.perf_counter()
    outcomes = run_all(mutants, args.jobs, args.log)
    text, holes = report(mutants, outcomes, time.perf_counter() - start)
    print(text)
    if args.report:
        args.report.write_text(REPORT_HEADER.format(args=" ".join(sys.argv[1:])) + text + "\n")
    sys.exit(1 if holes else 0)


if __name__ == "__main__":
    main()
