"""R2: every random test is seeded, and its seed is printed.

A static check over every Python file of the suite (tests, helpers and fixtures) that
fails, naming file:line, on

- randomness that no seed controls: module-level `random.<fn>()` (the global generator),
  `random.Random()` / `default_rng()` without a seed, numpy's legacy global functions
  (`np.random.rand`, ...), `uuid.uuid4()`, `os.urandom`, `secrets`, `SystemRandom`, a seed
  made from the time, the pid or other randomness, Hypothesis with `derandomize=False`;
- a seed that is not reported: wherever a seed value is chosen (an RNG built from it, a
  fault plan seeded with it, a helper called with it), the function must take it from the
  `seed` fixture (or a `seed` parameter: parametrized, or passed in by a caller that is
  checked in turn), or print it, or hand it to a helper that prints it.

And behaviourally: the `seed` fixture (tecl_pipeline_tests/seeding.py) prints its seed, a
failing test's report shows it, and TECL_TEST_SEED overrides it.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings

from tecl_pipeline_tests.seeding import SEED_ENV, seed_banner, seed_for

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent

# The global generator's functions: any call through the `random` module draws from state
# that no test seeds.
RANDOM_MODULE_FUNCTIONS = frozenset(
    {
        "betavariate", "binomialvariate", "choice", "choices", "expovariate", "gammavariate",
        "gauss", "getrandbits", "getstate", "lognormvariate", "normalvariate", "paretovariate",
        "randbytes", "randint", "random", "randrange", "sample", "seed", "setstate",
        "shuffle", "triangular", "uniform", "vonmisesvariate", "weibullvariate",
    }
)  # fmt: skip
# numpy.random names that build a generator from an explicit seed; everything else under
# numpy.random is the legacy global generator.
NUMPY_CONSTRUCTORS = frozenset(
    {
        "default_rng", "Generator", "RandomState", "SeedSequence", "BitGenerator", "MT19937",
        "PCG64", "PCG64DXSM", "Philox", "SFC64",
    }
)  # fmt: skip
NONDETERMINISTIC = frozenset(
    {"uuid.uuid1", "uuid.uuid4", "os.urandom", "random.SystemRandom", "os.getrandom"}
)
# A seed computed from any of these is not a fixed seed.
UNSTABLE_SEED_SOURCES = ("time.", "datetime.", "os.getpid", "uuid.", "random.", "secrets.")
UNSTABLE_SEED_BUILTINS = frozenset({"id", "hash"})


@dataclass(frozen=True)
class Problem:
    path: Path
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}: {self.what}"


def suite_files() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if p.resolve() != Path(__file__).resolve())


def _aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> the dotted name it was imported as (`np` -> `numpy`, `Random` ->
    `random.Random`), for the modules whose randomness matters."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """`np.random.default_rng` -> "numpy.random.default_rng"; None unless the chain starts
    at an imported name (a local `rng.random()` is a seeded generator's method)."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in aliases:
        return None
    return ".".join([aliases[node.id], *reversed(parts)])


def _terminal_name(func: ast.AST) -> str | None:
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return None


def _mentions_seed(node: ast.AST) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            if "seed" in sub.value.lower():
                return True
        elif isinstance(sub, ast.Name) and "seed" in sub.id.lower():
            return True
    return False


def _prints_seed(function: ast.AST) -> bool:
    """Whether the function's own body prints a seed (`print(f"seed={seed}")`)."""
    for node in ast.walk(function):
        if (
            isinstance(node, ast.Call)
            and _terminal_name(node.func) in ("print", "seed_banner")
            and any(_mentions_seed(arg) for arg in [*node.args, *node.keywords])
        ):
            return True
    return False


def _seed_params(function: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> set[str]:
    args = function.args
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    return {a.arg for a in every if "seed" in a.arg.lower()}


def _positional_seed_index(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int | None:
    for index, arg in enumerate([*function.args.posonlyargs, *function.args.args]):
        if arg.arg == "seed":
            return index
    return None


Functions = ast.FunctionDef | ast.AsyncFunctionDef


def _walk_with_scopes(tree: ast.AST) -> Iterator[tuple[ast.AST, tuple[Functions, ...]]]:
    """Every node with the functions enclosing it, innermost last."""
    stack: list[tuple[ast.AST, tuple[Functions, ...]]] = [(tree, ())]
    while stack:
        node, scopes = stack.pop()
        yield node, scopes
        if isinstance(node, Functions):
            # Decorators (parametrize tables) and defaults are evaluated outside the function.
            outside = [*node.decorator_list, *node.args.defaults, *node.args.kw_defaults]
            stack.extend((child, scopes) for child in outside if child is not None)
            stack.extend((child, (*scopes, node)) for child in node.body)
            continue
        stack.extend((child, scopes) for child in ast.iter_child_nodes(node))


@dataclass
class _Index:
    """Functions of the whole suite that take a seed: where it goes, and whether they print
    it (themselves or through a function they call that does)."""

    positions: dict[str, int]
    reporting: set[str]


def build_index(trees: dict[Path, ast.Module]) -> _Index:
    positions: dict[str, int] = {}
    bodies: dict[str, list[Functions]] = {}
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, Functions):
                bodies.setdefault(node.name, []).append(node)
                index = _positional_seed_index(node)
                if index is not None:
                    positions.setdefault(node.name, index)
    reporting = {name for name, defs in bodies.items() if all(_prints_seed(d) for d in defs)}
    changed = True
    while changed:  # a function that hands its seed to a reporting one reports it too
        changed = False
        for name, defs in bodies.items():
            if name in reporting:
                continue
            if all(
                any(
                    isinstance(n, ast.Call) and _terminal_name(n.func) in reporting
                    for n in ast.walk(d)
                )
                for d in defs
            ):
                reporting.add(name)
                changed = True
    return _Index(positions, reporting)


def _seed_argument(call: ast.Call, position: int | None) -> ast.expr | None:
    for keyword in call.keywords:
        if keyword.arg == "seed":
            return keyword.value
    if position is not None and len(call.args) > position:
        argument = call.args[position]
        return None if isinstance(argument, ast.Starred) else argument
    return None


def check_file(path: Path, tree: ast.Module, index: _Index) -> list[Problem]:
    aliases = _aliases(tree)
    problems: list[Problem] = []

    def problem(node: ast.AST, what: str) -> None:
        problems.append(Problem(path, getattr(node, "lineno", 0), what))

    def unstable(seed: ast.expr) -> str | None:
        for sub in ast.walk(seed):
            if not isinstance(sub, ast.Call):
                continue
            dotted = _dotted(sub.func, aliases) or ""
            if dotted.startswith(UNSTABLE_SEED_SOURCES):
                return dotted
            if isinstance(sub.func, ast.Name) and sub.func.id in UNSTABLE_SEED_BUILTINS:
                return sub.func.id
        return None

    def reported(seed: ast.expr, callee: str | None, scopes: tuple[Functions, ...]) -> bool:
        if isinstance(seed, ast.Constant) and (
            seed.value is None or isinstance(seed.value, bool) or not isinstance(seed.value, int)
        ):
            return True  # no seed (the callee's fixed default), or an invalid one under test
        params = set().union(*(_seed_params(f) for f in scopes)) if scopes else set()
        if any(isinstance(n, ast.Name) and n.id in params for n in ast.walk(seed)):
            # From the fixture, a parametrization, or a caller checked in turn (or derived
            # from one, as `seed * 2 + thread`).
            return True
        if callee is not None and callee in index.reporting:
            return True
        return any(_prints_seed(f) for f in scopes)

    def seed_site(node: ast.AST, seed: ast.expr | None, callee: str | None, scopes, what) -> None:
        if seed is None:  # passed as *args or under another name: nothing to judge here
            return
        source = unstable(seed)
        if source is not None:
            problem(node, f"{what}: seed {ast.unparse(seed)} comes from {source}(): not fixed")
        elif not reported(seed, callee, scopes):
            problem(
                node,
                f"{what}: seed {ast.unparse(seed)} is neither the `seed` fixture nor printed "
                "(take the `seed` fixture, or print it)",
            )

    # uuid calls that only make a name unique: inside an f-string, e.g. f"bucket-{uuid4().hex}"
    names_only = {
        id(call)
        for joined in ast.walk(tree)
        if isinstance(joined, ast.JoinedStr)
        for call in ast.walk(joined)
        if isinstance(call, ast.Call)
    }
    for node, scopes in _walk_with_scopes(tree):
        if isinstance(node, ast.Dict) and scopes:
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "seed":
                    seed_site(node, value, None, scopes, 'a {"seed": ...} plan')
            continue
        if not isinstance(node, ast.Call):
            continue
        dotted = _dotted(node.func, aliases)
        name = _terminal_name(node.func)
        has_arguments = bool(node.args or node.keywords)

        if dotted is not None and (dotted in NONDETERMINISTIC or dotted.startswith("secrets.")):
            if dotted.startswith("uuid.") and id(node) in names_only:
                continue  # a unique resource name (a bucket, a secret): an identifier, no input
            problem(node, f"{dotted}() is not reproducible from a seed")
            continue
        if dotted is not None and dotted.startswith("random."):
            function = dotted.removeprefix("random.")
            if function in RANDOM_MODULE_FUNCTIONS:
                problem(node, f"random.{function}() draws from the unseeded global generator")
                continue
            if function == "Random":
                if not has_arguments:
                    problem(node, "random.Random() without a seed")
                    continue
                seed_site(node, _seed_argument(node, 0), None, scopes, "random.Random")
                if not scopes:
                    problem(node, "a module-level generator is shared by every test")
                continue
        if dotted is not None and dotted.startswith("numpy.random."):
            function = dotted.removeprefix("numpy.random.")
            if function not in NUMPY_CONSTRUCTORS:
                problem(node, f"numpy.random.{function}() uses numpy's global generator")
                continue
            if not has_arguments:
                problem(node, f"numpy.random.{function}() without a seed")
                continue
            seed_site(node, _seed_argument(node, 0), None, scopes, f"numpy.random.{function}")
            if not scopes:
                problem(node, "a module-level generator is shared by every test")
            continue
        if dotted == "hypothesis.settings":  # (an opt-in profile may explore; tests may not)
            for keyword in node.keywords:
                fresh = isinstance(keyword.value, ast.Constant) and not keyword.value.value
                if keyword.arg == "derandomize" and fresh:
                    problem(node, "Hypothesis with derandomize=False draws fresh examples")
            continue
        if not scopes:
            continue  # declarations (parametrize tables of invalid plans) choose no seed
        if name == "set_faults":
            seed = _seed_argument(node, 0)
            if seed is not None:
                seed_site(node, seed, name, scopes, "set_faults")
            continue
        seed = _seed_argument(node, index.positions.get(name or ""))
        if seed is not None:
            seed_site(node, seed, name, scopes, f"{name}(seed=...)")
    return problems


def find_problems(files: list[Path]) -> list[Problem]:
    trees = {path: ast.parse(path.read_text(), str(path)) for path in files}
    index = build_index(trees)
    found = [p for path, tree in trees.items() for p in check_file(path, tree, index)]
    return sorted(found, key=lambda p: (str(p.path), p.line))


def test_every_random_test_is_seeded_and_prints_its_seed():
    files = suite_files()
    assert len(files) > 40, "the suite's files were not found"
    problems = find_problems(files)
    assert not problems, "unseeded or unreported randomness (R2):\n" + "\n".join(map(str, problems))


# -- the check itself catches what it must -------------------------------------------------


BAD = """
import os, random, time, uuid
import numpy as np
from numpy.random import default_rng
from hypothesis import settings

SHARED = random.Random(3)


def test_global():
    random.shuffle([1, 2])


def test_unseeded():
    random.Random()
    default_rng()
    np.random.rand(3)
    uuid.uuid4()


def test_time_seed():
    random.Random(time.time())


def test_literal_not_printed(sim):
    np.random.default_rng(5)
    sim.set_faults(7, [])
    helper(11)


def helper(seed):
    return random.Random(seed)


@settings(derandomize=False)
def test_fresh_examples():
    pass
"""

GOOD = """
import random
import numpy as np


def test_fixture(seed):
    random.Random(seed)
    np.random.default_rng(seed)


def test_printed():
    print("seed=5")
    random.Random(5)


def reporting(seed):
    print(f"seed={seed}")
    return random.Random(seed)


def passes_on(seed=3):
    return reporting(seed)


def test_helpers():
    reporting(9)
    passes_on(4)


def test_sim(sim, seed):
    sim.set_faults(seed, [])
    post("/_sim/faults", {"seed": seed})
"""


def _problems_in(tmp_path: Path, source: str) -> list[str]:
    path = tmp_path / "test_example.py"
    path.write_text(textwrap.dedent(source))
    tree = ast.parse(path.read_text())
    problems = check_file(path, tree, build_index({path: tree}))
    return [f"{p.line}: {p.what}" for p in problems]


def test_the_check_finds_each_kind_of_unseeded_or_unreported_randomness(tmp_path):
    found = "\n".join(_problems_in(tmp_path, BAD))
    for expected in [
        "a module-level generator is shared by every test",
        "random.shuffle() draws from the unseeded global generator",
        "random.Random() without a seed",
        "numpy.random.default_rng() without a seed",
        "numpy.random.rand() uses numpy's global generator",
        "uuid.uuid4() is not reproducible",
        "seed time.time() comes from time.time(): not fixed",
        "numpy.random.default_rng: seed 5 is neither the `seed` fixture nor printed",
        "set_faults: seed 7 is neither",
        "helper(seed=...): seed 11 is neither",
        "derandomize=False",
    ]:
        assert expected in found, f"{expected!r} not reported in:\n{found}"


def test_the_check_accepts_fixture_seeds_printed_seeds_and_reporting_helpers(tmp_path):
    assert _problems_in(tmp_path, GOOD) == []


# -- the seed fixture, behaviourally -------------------------------------------------------

PROBE = """
def test_sees_its_seed(seed):
    with open("seen.txt", "w") as handle:
        handle.write(str(seed))
    assert False, "fails on purpose, to show the report"
"""


def _run_probe(tmp_path: Path, **env: str) -> tuple[str, int]:
    (tmp_path / "test_probe.py").write_text(PROBE)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    environ = {k: v for k, v in os.environ.items() if k != SEED_ENV}
    environ.update(env, PYTHONPATH=str(REPO))
    done = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-p", "tecl_pipeline_tests.seeding",
            "-p", "no:cacheprovider", "--rootdir", str(tmp_path), "test_probe.py",
        ],
        cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr  # the probe's deliberate failure
    return done.stdout, int((tmp_path / "seen.txt").read_text())


def test_the_seed_fixture_is_fixed_per_test_and_printed_in_the_failure_report(tmp_path):
    out, seen = _run_probe(tmp_path)
    expected = seed_for("test_probe.py::test_sees_its_seed", {})
    assert seen == expected
    assert "Captured stdout setup" in out and seed_banner(expected) in out
    assert "tecl seeds: fixed per test" in out  # the report header says where seeds come from
    again, _ = _run_probe(tmp_path)
    assert seed_banner(expected) in again  # the same seed on every run


def test_tecl_test_seed_overrides_every_tests_seed(tmp_path):
    out, seen = _run_probe(tmp_path, **{SEED_ENV: "4242"})
    assert seen == 4242
    assert "seed=4242 (rerun with TECL_TEST_SEED=4242)" in out
    assert f"tecl seeds: {SEED_ENV}=4242" in out


def test_seeds_differ_between_tests_and_a_bad_override_is_refused():
    first = seed_for("tecl_pipeline_tests/test_a.py::test_one", {})
    assert first == seed_for("tecl_pipeline_tests/test_a.py::test_one", {})
    assert first != seed_for("tecl_pipeline_tests/test_a.py::test_two", {})
    assert seed_for("anything", {SEED_ENV: " 17 "}) == 17
    # A usage error: the run stops before any test, rather than running unseeded.
    with pytest.raises(pytest.UsageError, match="TECL_TEST_SEED must be an integer, got 'sev"):
        seed_for("anything", {SEED_ENV: "seventeen"})


def test_hypothesis_runs_derandomized_and_prints_the_reproduction_blob():
    """R2 for property tests: the examples depend only on the test; a failure prints the
    `@reproduce_failure` line that replays it."""
    assert settings.get_current_profile_name() == "tecl"
    current = settings.default
    assert current is not None
    assert current.derandomize is True
    assert current.print_blob is True
    assert current.database is None
