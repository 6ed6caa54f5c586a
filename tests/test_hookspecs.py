from __future__ import annotations

import ast
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import exchange_framework
from exchange_framework import hookspecs
from exchange_framework.plugins import hook_reference_markdown, hook_sections, make_plugin_manager

ROOT = Path(__file__).resolve().parent.parent
HOOK_DOC = ROOT / "docs" / "plugin-hooks.md"
REGENERATE = "python -m exchange_framework.plugins > docs/plugin-hooks.md"

HOOKS: dict[str, Callable[..., Any]] = {
    name: obj for name, obj in vars(hookspecs).items() if callable(obj) and hasattr(obj, "exchange_framework_spec")
}
FAMILIES = ("register_", "extra_", "prepare_", "screen_")
LIFECYCLE = {"startup", "shutdown", "custody_balances"}


def test_there_are_hooks_for_every_plugin_kind() -> None:
    expected = {
        "startup",
        "shutdown",
        "register_commands",
        "register_journal_backends",
        "register_ledger_stores",
        "register_chain_adapters",
        "register_custody_signers",
        "register_kyc_providers",
        "register_sanctions_screeners",
        "register_travel_rule_providers",
        "register_market_data_publishers",
        "register_event_subscribers",
        "register_routes",
        "register_template_dirs",
        "prepare_jinja2_environment",
        "extra_template_vars",
        "register_admin_pages",
        "custody_balances",
        "screen_onboarding",
        "screen_deposit",
        "screen_withdrawal",
    }
    assert expected <= set(HOOKS)


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_hookspec_has_a_docstring(name: str) -> None:
    doc = inspect.getdoc(HOOKS[name])
    assert doc, f"hookspec {name} has no docstring"
    summary = doc.splitlines()[0]
    assert summary.endswith("."), f"the first line of {name}'s docstring should be one sentence: {summary!r}"


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_hookspec_is_typed(name: str) -> None:
    function = HOOKS[name]
    parameters = inspect.signature(function).parameters
    assert set(function.__annotations__) == {*parameters, "return"}


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_hook_names_say_what_the_kernel_does_with_the_answer(name: str) -> None:
    assert name.startswith(FAMILIES) or name.endswith("_wrapper") or name in LIFECYCLE


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_hook_call_patterns_are_deliberate(name: str) -> None:
    options = HOOKS[name].exchange_framework_spec  # type: ignore[attr-defined]
    # Collect-all everywhere, so that duplicates can be reported and decisions combined; set-up is historic.
    assert not options["firstresult"]
    assert options["historic"] == (name == "startup")


def test_every_hook_sits_in_exactly_one_section() -> None:
    placed = [name for _, names in hook_sections() for name in names]
    assert sorted(placed) == sorted(HOOKS)


def test_hookimpl_is_importable_from_the_package_root() -> None:
    assert exchange_framework.hookimpl is hookspecs.hookimpl


def test_hookspecs_load_into_a_plugin_manager() -> None:
    pm = make_plugin_manager()
    assert set(HOOKS) <= {name for name in dir(pm.hook) if not name.startswith("_")}


def test_hook_reference_is_in_sync_with_the_hookspecs() -> None:
    assert HOOK_DOC.exists(), f"docs/plugin-hooks.md is missing; generate it with: {REGENERATE}"
    assert HOOK_DOC.read_text(encoding="utf-8") == hook_reference_markdown(), (
        f"docs/plugin-hooks.md is out of date with exchange_framework/hookspecs.py; regenerate it with: {REGENERATE}"
    )


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_every_hook_is_documented(name: str) -> None:
    assert f"\n### {name}\n" in HOOK_DOC.read_text(encoding="utf-8")


def _test_function_names() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_hook_"):
                names.add(node.name)
    return names


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_every_hook_has_a_test(name: str) -> None:
    # Convention: a test named test_hook_<hook name>[_anything] exercises the hook.
    tests = _test_function_names()
    assert any(test == f"test_hook_{name}" or test.startswith(f"test_hook_{name}_") for test in tests), (
        f"no test exercises the {name} hook: add a test_hook_{name} under tests/"
    )
