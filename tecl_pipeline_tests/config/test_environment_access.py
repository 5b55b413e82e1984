"""One configuration path: only config/ reads the process environment (C4).

Everything else receives a `Settings` or values from it, so what a deployment runs with is
decided in one place and checked before anything runs. The exceptions are named with why.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "tecl_pipeline"
ENVIRONMENT = frozenset({"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"})
# Module (relative to the package) -> the functions allowed to touch the environment there.
ALLOWED: dict[str, frozenset[str]] = {
    # Dagster reads DAGSTER_HOME itself, in this process and in each one it starts: the
    # CLI sets the default there.
    "app/cli.py": frozenset({"_dagster_home"}),
    # The soak starts `tecl run` processes with an environment of their own, and points
    # the in-process pipeline's AWS clients (which read the environment themselves) at its
    # fault proxies.
    "harness/soak.py": frozenset({"_patched_environ", "_killed_run", "_held_second_host"}),
}


def environment_reads(source: str) -> list[tuple[int, str | None]]:
    """(line, enclosing function) of each use of os.environ / os.getenv and the like."""
    tree = ast.parse(source)
    found: list[tuple[int, str | None]] = []

    def visit(node: ast.AST, function: str | None) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function = node.name
        if (
            isinstance(node, ast.Attribute)
            and node.attr in ENVIRONMENT
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        ) or (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and any(alias.name in ENVIRONMENT for alias in node.names)
        ):
            found.append((node.lineno, function))
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(tree, None)
    return found


def test_only_config_reads_the_environment():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        if module.startswith("config/"):
            continue
        allowed = ALLOWED.get(module, frozenset())
        offenders += [
            f"{module}:{line} ({function or 'module level'})"
            for line, function in environment_reads(path.read_text())
            if function not in allowed
        ]
    assert offenders == []


def test_the_check_sees_every_form_of_access():
    source = (
        "import os\n"
        "from os import getenv\n"
        "A = os.environ['X']\n"
        "def f():\n"
        "    return os.getenv('Y')\n"
        "def g(environ=os.environ):\n"
        "    return environ\n"
    )
    assert environment_reads(source) == [(2, None), (3, None), (5, "f"), (6, "g")]
