"""The kernel imports no plugin: nothing under exchange_framework/ may import the plugins/ or chains/ packages."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KERNEL = ROOT / "exchange_framework"
FORBIDDEN_ROOTS = {"plugins", "chains"}


def _plugin_package_names() -> set[str]:
    """Top-level packages shipped from plugins/ and chains/ (each its own distribution), plus the dirs' names."""
    names = set(FORBIDDEN_ROOTS)
    for folder in FORBIDDEN_ROOTS:
        for init in (ROOT / folder).glob("*/**/__init__.py"):
            parts = init.relative_to(ROOT / folder).parts
            # plugins/<dist>/<package>/__init__.py or plugins/<dist>/src/<package>/__init__.py
            package = parts[2] if len(parts) > 3 and parts[1] == "src" else parts[1] if len(parts) > 2 else None
            if package:
                names.add(package)
    return names


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) in {"import_module", "__import__"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


KERNEL_FILES = sorted(KERNEL.rglob("*.py"))


def test_the_kernel_has_modules_to_check() -> None:
    assert len(KERNEL_FILES) > 5


@pytest.mark.parametrize("path", KERNEL_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_kernel_module_imports_no_plugin(path: Path) -> None:
    forbidden = _plugin_package_names()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    offending = [
        f"{path.relative_to(ROOT)}:{line}: imports {module}"
        for line, module in _imported_modules(tree)
        if module.split(".")[0] in forbidden
    ]
    assert not offending, "the kernel must reach plugins only through hooks:\n" + "\n".join(offending)


def test_the_check_catches_plugin_imports() -> None:
    tree = ast.parse(
        "import plugins.onfido\nfrom chains.evm import Adapter\nimportlib.import_module('plugins.x')\n"
        "from exchange_framework.plugins import make_plugin_manager\n"
    )
    roots = [module.split(".")[0] for _, module in _imported_modules(tree)]
    assert [root for root in roots if root in FORBIDDEN_ROOTS] == ["plugins", "chains", "plugins"]
