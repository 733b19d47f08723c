"""The layout's rules, read from the source: which of our packages may import which, how long a
module may grow, and what the test tree's shared files hold.

Every import counts, a function-level one too, and so does `importlib.import_module("...")`
with a literal name: the rules are about what a module can reach, not only about its header.
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Our top-level packages and modules: an import of any other name is a third-party one.
OURS = frozenset(
    {
        "contract",
        "adapter",
        "functions",
        "pricing",
        "bench",
        "modal_deploy",
        "modal_app",
        "modal_download",
        "tests",
    }
)
MAX_LINES = 400
# Folders that hold no source of ours: virtual environments, builds, caches.
NOT_SOURCE = frozenset({"tests", "build", "dist", "node_modules", "__pycache__", "venv"})


@dataclass(frozen=True)
class Import:
    module: str  # the dotted module that imports
    target: str  # the dotted name imported (absolute)
    line: int


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, is_package: bool = False) -> Iterator[Import]:
    """Every import in `source` (the module `module`), wherever it stands, made absolute."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                prefix = ".".join(parts[: len(parts) - (node.level - 1)])
                base = ".".join(p for p in (prefix, node.module) if p)
            # `from a import b` imports a and, b being a module, a.b: a.b is what counts.
            for alias in node.names:
                name = base if alias.name == "*" else f"{base}.{alias.name}"
                yield Import(module, name, node.lineno)
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    yield Import(module, first.value, node.lineno)


def is_source_dir(path: Path) -> bool:
    return not (
        path.name in NOT_SOURCE or path.name.startswith(".") or path.name.endswith(".egg-info")
    )


def source_files(root: Path) -> list[Path]:
    """Our Python source outside tests/: top-level modules and every package below the root."""
    found = sorted(root.glob("*.py"))
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and is_source_dir(p)):
        stack = [folder]
        while stack:
            current = stack.pop()
            for child in sorted(current.iterdir()):
                if child.is_dir() and is_source_dir(child):
                    stack.append(child)
                elif child.suffix == ".py":
                    found.append(child)
    return found


def all_imports(root: Path) -> list[Import]:
    result = []
    for path in source_files(root):
        module = module_name(path, root)
        source = path.read_text(encoding="utf-8")
        result.extend(imports_of(source, module, is_package=path.name == "__init__.py"))
    return result


def top(name: str) -> str:
    return name.split(".")[0]


def violations(root: Path) -> list[str]:
    """The import rules of the layout, broken."""
    # importer prefix -> (our top-level packages it must not import, why)
    forbidden = {
        "contract": (
            OURS - {"contract"},
            "contract/ is the floor: it imports nothing else of ours",
        ),
        "functions": (
            frozenset({"adapter", "pricing", "modal_deploy", "modal_app", "bench", "tests"}),
            "functions/ is plain inference: contract/ is the only other package it may use",
        ),
    }
    # Pricing's cost math: contract/ and itself only (not the CLI tool beside it).
    cost_math = {"pricing.cost", "pricing.gpus", "pricing.prices"}
    found = []
    for imp in all_imports(root):
        where = f"{imp.module}:{imp.line} imports {imp.target}"
        target_top = top(imp.target)
        if target_top not in OURS:
            continue
        rule = forbidden.get(top(imp.module))
        if rule is not None and target_top in rule[0]:
            found.append(f"{where}: {rule[1]}")
        if imp.module in cost_math and target_top != "contract":
            allowed = (
                imp.target in cost_math
                or imp.target == "pricing"
                or any(imp.target.startswith(f"{m}.") for m in cost_math)
            )
            if not allowed:
                found.append(f"{where}: pricing's cost math imports only contract/ of ours")
    return found


# --- the rules, on this tree ---------------------------------------------------------------


def test_each_layer_imports_only_what_the_layout_allows() -> None:
    assert violations(REPO) == []


def test_the_rules_see_function_level_relative_and_dynamic_imports(tmp_path: Path) -> None:
    def write(relative: str, source: str) -> None:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")

    for package in ("contract", "adapter", "functions", "functions/speed", "pricing"):
        write(f"{package}/__init__.py", "")
    write("contract/units.py", "def f() -> None:\n    from adapter import app\n")
    write("functions/speed/compile.py", "from ..media import png\nfrom pricing.cost import x\n")
    write("functions/media.py", "import importlib\nimportlib.import_module('adapter.web')\n")
    write("functions/fine.py", "from contract.schemas import Media\nfrom . import media\n")
    write(
        "pricing/cost.py",
        "from pricing import gpus\nfrom adapter import settings\nfrom . import aimodels\n",
    )
    write("pricing/gpus.py", "from contract import units\nfrom .prices import x\n")
    write("pricing/report.py", "from adapter.settings import Limits\n")  # the tool may
    found = sorted(violations(tmp_path))
    assert [line.split(" imports ")[0] for line in found] == [
        "contract.units:2",
        "functions.media:2",
        "functions.speed.compile:2",
        "pricing.cost:2",
        "pricing.cost:3",
    ]
    assert found[-1].startswith("pricing.cost:3 imports pricing.aimodels: pricing's cost math")


def test_the_tree_has_source_in_every_package_the_rules_name() -> None:
    modules = {module_name(path, REPO) for path in source_files(REPO)}
    for package in (
        "contract",
        "adapter",
        "functions",
        "pricing.cost",
        "pricing.gpus",
        "pricing.prices",
        "modal_deploy",
        "bench",
        "modal_app",
    ):
        assert package in modules, package
    assert not any(m.startswith("tests") for m in modules)


# --- module size ---------------------------------------------------------------------------


def test_no_source_module_is_longer_than_400_lines() -> None:
    long = {
        str(path.relative_to(REPO)): lines
        for path in source_files(REPO)
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}, f"split these modules (over {MAX_LINES} lines): {long}"


# --- the test tree -------------------------------------------------------------------------


def test_conftest_holds_fixtures_only() -> None:
    tree = ast.parse((REPO / "tests" / "conftest.py").read_text(encoding="utf-8"))
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    assert functions
    for function in functions:
        decorators = [ast.unparse(d) for d in function.decorator_list]
        assert any(d.startswith("pytest.fixture") for d in decorators), (
            f"conftest.py: {function.name} is not a fixture: move it to tests/support/"
        )
    assert not [n for n in tree.body if isinstance(n, ast.ClassDef)], "classes: tests/support/"


@pytest.mark.parametrize(
    "path", sorted((REPO / "tests").rglob("*.py")), ids=lambda p: str(p.relative_to(REPO))
)
def test_tests_share_helpers_through_tests_support_only(path: Path) -> None:
    module = module_name(path, REPO)
    source = path.read_text(encoding="utf-8")
    for imp in imports_of(source, module, is_package=path.name == "__init__.py"):
        name = imp.target
        assert not (name == "conftest" or name.startswith(("conftest.", "tests.conftest"))), (
            f"{module}:{imp.line} imports conftest: import helpers from tests.support"
        )
        # Another test module is not a library either.
        is_test_module = any(part.startswith("test_") for part in name.split(".")[1:])
        assert not (top(name) == "tests" and is_test_module), (
            f"{module}:{imp.line} imports {name}: move what it shares to tests/support/"
        )


# --- tooling -------------------------------------------------------------------------------


def _warn_from(module: str, category: type[Warning]) -> None:
    """Warn as code of `module` does (warnings attributes a warning to its caller's module)."""
    code = compile("import warnings\nwarnings.warn('careful', category)\n", "<test>", "exec")
    exec(code, {"__name__": module, "category": category})


@pytest.mark.parametrize(
    "module",
    [
        "contract.units",
        "adapter",
        "functions.speed.compile",
        "pricing.cost",
        "modal_deploy.plan",
        "bench.paths",
        "modal_app",
    ],
)
@pytest.mark.parametrize("category", [DeprecationWarning, UserWarning, FutureWarning])
def test_a_warning_from_our_code_fails_the_test(module: str, category: type[Warning]) -> None:
    with pytest.raises(category, match="careful"):
        _warn_from(module, category)


@pytest.mark.parametrize("module", ["diffusers.schedulers", "adapters", "contracts.x"])
def test_a_warning_from_another_package_stays_a_warning(module: str) -> None:
    # Not pytest.warns: it would let every warning through, error filters or not.
    with warnings.catch_warnings(record=True) as caught:
        _warn_from(module, DeprecationWarning)
    assert [str(warning.message) for warning in caught] == ["careful"]


def test_a_resource_warning_is_shown_not_raised_wherever_the_collector_ran() -> None:
    with warnings.catch_warnings(record=True) as caught:
        _warn_from("adapter.service", ResourceWarning)
    assert [warning.category for warning in caught] == [ResourceWarning]
