"""The plugin starter template (``cookiecutter/plugin``): every kind generates a package that installs, is
discovered, lists in ``exchange plugins``, passes its own tests, ruff and mypy --strict; bad answers stop it."""

from __future__ import annotations

import json
import re
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cookiecutter.exceptions import FailedHookException

from tests.cookiecutter.throwaway import PLUGIN_TEMPLATE, PROJECT_BIN, ROOT, ThrowawayVenv, generate, run

KINDS = ["generic", "chain adapter", "KYC provider", "sanctions screener", "custody signer", "event subscriber"]
GUIDE = ROOT / "docs" / "write-a-plugin.md"


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawayVenv]:
    """One throwaway virtualenv for every kind (each kind's plugin has its own name, so they coexist)."""
    yield ThrowawayVenv.create(tmp_path_factory.mktemp("plugin-template") / "venv")


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mypy cache shared by the kinds, so the framework is analysed once."""
    return tmp_path_factory.mktemp("mypy-cache")


def answers(kind: str) -> dict[str, str]:
    return {"plugin_name": f"test {kind}", "plugin_kind": kind, "description": "A plugin made by the template test"}


def test_names_are_derived_from_the_plugin_name(tmp_path: Path) -> None:
    project = generate(PLUGIN_TEMPLATE, tmp_path, {"plugin_name": "My Sanctions List", "plugin_kind": "generic"})
    assert project.name == "exchange-my-sanctions-list"
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["name"] == "exchange-my-sanctions-list"
    assert pyproject["project"]["entry-points"]["exchange_framework"] == {
        "my-sanctions-list": "exchange_my_sanctions_list.plugin"
    }
    assert (project / "src" / "exchange_my_sanctions_list" / "plugin.py").is_file()


def test_an_exchange_prefix_is_not_doubled(tmp_path: Path) -> None:
    project = generate(PLUGIN_TEMPLATE, tmp_path, {"plugin_name": "Exchange Onfido", "plugin_kind": "KYC provider"})
    assert project.name == "exchange-onfido"
    assert (project / "src" / "exchange_onfido" / "plugin.py").is_file()


def test_generated_lint_settings_are_the_projects(tmp_path: Path) -> None:
    project = generate(PLUGIN_TEMPLATE, tmp_path, answers("generic"))
    ours = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    theirs = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    assert theirs["ruff"]["lint"] == ours["ruff"]["lint"]
    assert {key: value for key, value in ours["ruff"].items() if key not in {"lint", "extend-exclude"}} == {
        key: value for key, value in theirs["ruff"].items() if key != "lint"
    }
    assert theirs["mypy"]["strict"] is True


def test_every_kind_is_offered_and_tested() -> None:
    offered = json.loads((PLUGIN_TEMPLATE / "cookiecutter.json").read_text(encoding="utf-8"))["plugin_kind"]
    assert offered == KINDS


@pytest.mark.parametrize("kind", KINDS)
def test_the_guide_describes_every_kind_as_generated(tmp_path: Path, kind: str) -> None:
    guide = GUIDE.read_text(encoding="utf-8")
    row = next((line for line in guide.splitlines() if line.startswith(f"| {kind} |")), None)
    assert row is not None, f"docs/write-a-plugin.md has no row for {kind!r} in its table of kinds"
    project = generate(PLUGIN_TEMPLATE, tmp_path, answers(kind))
    readme = (project / "README.md").read_text(encoding="utf-8")
    required = re.findall(r"^\| `(\w+)` \| yes \|", readme, flags=re.MULTILINE)
    assert required or kind == "generic", f"the generated README of a {kind} marks no hook as required"
    for hook in required:
        assert f"`{hook}`" in row, f"the guide's {kind} row does not name its required hook {hook}"
    for registered in re.findall(r"registers an? `(\w+)`", readme):
        assert f"`{registered}`" in row, f"the guide's {kind} row does not name the template's {registered}"


@pytest.mark.parametrize("kind", KINDS)
def test_every_implemented_hook_has_a_test(tmp_path: Path, kind: str) -> None:
    project = generate(PLUGIN_TEMPLATE, tmp_path, answers(kind))
    [plugin] = project.glob("src/*/plugin.py")
    hooks = re.findall(r"^@hookimpl\ndef (\w+)\(", plugin.read_text(encoding="utf-8"), flags=re.MULTILINE)
    assert hooks, f"the {kind} implements no hook"
    tests = (project / "tests" / "test_hooks.py").read_text(encoding="utf-8")
    assert [hook for hook in hooks if hook not in tests] == []
    readme = (project / "README.md").read_text(encoding="utf-8")
    assert [hook for hook in hooks if f"| `{hook}` |" not in readme] == []


def test_only_the_chain_adapter_gets_a_development_node(tmp_path: Path) -> None:
    for kind in KINDS:
        project = generate(PLUGIN_TEMPLATE, tmp_path / kind.replace(" ", "-"), answers(kind))
        nodes = list(project.glob("src/*/node.py"))
        assert len(nodes) == (1 if kind == "chain adapter" else 0), kind


@pytest.mark.parametrize("name", ["", "   ", "!!!", "bad/name", "émoji 🚀", "a" * 41])
def test_a_bad_plugin_name_stops_generation_with_a_clear_error(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], name: str
) -> None:
    with pytest.raises(FailedHookException):
        generate(PLUGIN_TEMPLATE, tmp_path, {"plugin_name": name, "plugin_kind": "generic"})
    err = capfd.readouterr().err
    assert "error: plugin_name" in err
    assert "Nothing was generated" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_generated_plugin_installs_and_passes_its_own_tests(
    kind: str, venv: ThrowawayVenv, mypy_cache: Path, tmp_path: Path
) -> None:
    project = generate(PLUGIN_TEMPLATE, tmp_path, answers(kind))
    slug = project.name.removeprefix("exchange-")

    mypy = ["mypy", "--python-executable", str(venv.python), "--cache-dir", str(mypy_cache)]
    for check in (["ruff", "check", "."], ["ruff", "format", "--check", "."], mypy):
        result = run([str(PROJECT_BIN / check[0]), *check[1:]], cwd=project)
        assert result.returncode == 0, f"{' '.join(check)} failed on the {kind}:\n{result.stdout}{result.stderr}"

    venv.install_editable(project)
    tests = venv.run_python("-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=project)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert " passed" in tests.stdout and "skipped" not in tests.stdout

    config = tmp_path / "exchange.toml"
    config.write_text(f'[brand]\nname = "T"\n[plugins]\nenabled = ["{slug}"]\n', encoding="utf-8")
    listed = venv.run_python(
        "-c", "from exchange_framework.cli import main; main()", "--config", str(config), "plugins", cwd=tmp_path
    )
    assert listed.returncode == 0, listed.stdout + listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith(slug + " "))
    assert f"entrypoint: exchange-{slug} 0.1.0" in row


@pytest.mark.slow
def test_generated_plugin_builds_a_wheel_with_its_entry_point(venv: ThrowawayVenv, tmp_path: Path) -> None:
    project = generate(PLUGIN_TEMPLATE, tmp_path, answers("custody signer"))
    dist = tmp_path / "dist"
    offline = ["--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
    built = venv.run_python("-m", "pip", "wheel", *offline, "-w", str(dist), str(project))
    assert built.returncode == 0, built.stdout + built.stderr
    [wheel] = dist.glob("exchange_test_custody_signer-0.1.0-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert {"exchange_test_custody_signer/plugin.py", "exchange_test_custody_signer/py.typed"} <= names
        assert "exchange_test_custody_signer/node.py" not in names
        [entry_points] = [name for name in names if name.endswith(".dist-info/entry_points.txt")]
        text = archive.read(entry_points).decode()
        metadata = archive.read(entry_points.replace("entry_points.txt", "METADATA")).decode()
    assert "[exchange_framework]\ntest-custody-signer = exchange_test_custody_signer.plugin" in text
    assert "Requires-Dist: exchange-framework>=0.1" in metadata
