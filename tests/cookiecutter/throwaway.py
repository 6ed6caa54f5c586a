"""Helpers for testing the starter templates: render one with cookiecutter, install it in a throwaway virtualenv.

The throwaway virtualenv has no packages of its own: a ``.pth`` file adds the project's ``.venv`` site-packages
(and so the editable exchange framework, pytest and pip) behind its own. A generated package is installed there
in editable mode without build isolation (no network needed), so the project's ``.venv`` is never changed.

mypy cannot see the framework through its editable install (an import hook), so a second ``.pth`` file lists a
directory holding a link to the framework's source: to mypy it is then an installed package, as it is for a plugin
author who installed it from an index.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from collections.abc import Mapping
from pathlib import Path

from cookiecutter.main import cookiecutter

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_TEMPLATE = ROOT / "cookiecutter" / "plugin"
PROJECT_BIN = Path(sys.executable).parent  # the project's .venv/bin: ruff, mypy


def generate(template: Path, output_dir: Path, answers: Mapping[str, str]) -> Path:
    """Render ``template`` into ``output_dir`` with ``answers`` and no prompts; return the generated directory."""
    return Path(cookiecutter(str(template), no_input=True, output_dir=str(output_dir), extra_context=dict(answers)))


def run(args: list[str], *, cwd: Path, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its output as text; never raise on a non-zero exit status."""
    return subprocess.run(
        args, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=300, check=False
    )


class ThrowawayVenv:
    """A virtualenv that sees the project's ``.venv`` packages and holds only the packages installed into it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.python = path / "bin" / "python"

    @classmethod
    def create(cls, path: Path) -> ThrowawayVenv:
        """Create the virtualenv at ``path`` with the project's interpreter."""
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
        venv = cls(path)
        site_packages = venv.site_packages()
        line = f"import site; site.addsitedir({sysconfig.get_path('purelib')!r})\n"
        (site_packages / "_project_venv.pth").write_text(line, encoding="utf-8")
        kernel = path / "kernel"
        kernel.mkdir()
        (kernel / "exchange_framework").symlink_to(ROOT / "exchange_framework", target_is_directory=True)
        (site_packages / "_kernel_for_mypy.pth").write_text(f"{kernel}\n", encoding="utf-8")
        return venv

    def run_python(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run the virtualenv's python with ``args``."""
        return run([str(self.python), *args], cwd=cwd or self.path)

    def install_editable(self, project: Path) -> None:
        """Install ``project`` in editable mode, offline, with no dependencies; raise with pip's output on failure."""
        result = self.run_python(
            "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", "-e", str(project)
        )
        if result.returncode != 0:
            raise AssertionError(f"pip install -e {project} failed:\n{result.stdout}\n{result.stderr}")

    def site_packages(self) -> Path:
        """The virtualenv's own site-packages directory."""
        return Path(self.run_python("-c", "import sysconfig; print(sysconfig.get_path('purelib'))").stdout.strip())
