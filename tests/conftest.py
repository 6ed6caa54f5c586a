"""Shared fixtures. Add to this file; do not reorganise it (several people append to it)."""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from exchange_framework.config import DEMO_CONFIG, ExchangeConfig, load_config

# LiteSVM's native code (tests/chains/solana) leaves the x87 floating-point state dirty in its process; later
# long-double work then gives NaN (SQLite cast '-1e30' to NaN, which let a ledger CHECK constraint pass; scipy warned
# at import). Every test starts from the default floating-point environment (glibc's FE_DFL_ENV).
_LIBM = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6") if sys.platform == "linux" else None


@pytest.fixture(autouse=True)
def _default_floating_point_environment() -> None:
    if _LIBM is not None:
        _LIBM.fesetenv(ctypes.c_void_p(-1))


# scipy (under scikit-learn, for transaction monitoring) computes constants at import that warn if the process's
# floating-point environment was changed first, as running LiteSVM (tests/chains/solana) does: import it before
# any test module, in a clean process. See tests/compliance/monitoring/conftest.py.
try:
    import scipy.stats  # noqa: F401
    import sklearn.ensemble  # noqa: F401
except ImportError:  # the monitoring extra is not installed: its tests are not collected either
    pass

# -- configuration and plugins (tests/test_config.py, test_plugins.py, test_cli.py) --------------------------------

MINIMAL_CONFIG = """\
[brand]
name = "Test Exchange"

[assets.BTC]
decimals = 8

[assets.USDT]
decimals = 6

[markets."BTC-USDT"]
base = "BTC"
quote = "USDT"
tick_size = "0.01"
lot_size = "0.0001"
"""


@pytest.fixture
def demo_config() -> ExchangeConfig:
    """The packaged demo exchange's configuration."""
    return load_config(DEMO_CONFIG)


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write an exchange.toml (the minimal valid one plus ``extra`` TOML, by default) and return its path."""

    def write(extra: str = "", *, text: str | None = None, name: str = "exchange.toml") -> Path:
        path = tmp_path / name
        body = text if text is not None else MINIMAL_CONFIG + textwrap.dedent(extra)
        path.write_text(body, encoding="utf-8")
        return path

    return write


@pytest.fixture
def fake_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., str]]:
    """Install a fake distribution with an ``exchange_framework`` entry point, visible through sys.path.

    Call it with the distribution name, version, entry point name and the plugin module's source; it returns the
    module name. importlib.metadata finds the ``*.dist-info`` directory like any installed package's.
    """
    site = tmp_path / "site-packages"
    site.mkdir()
    modules: list[str] = []

    def install(dist: str, version: str, entry_point: str, source: str) -> str:
        module = f"{dist.replace('-', '_')}_plugin"
        (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8")
        (info / "entry_points.txt").write_text(f"[exchange_framework]\n{entry_point} = {module}\n", encoding="utf-8")
        modules.append(module)
        importlib.invalidate_caches()  # importlib.metadata caches directory listings
        return module

    monkeypatch.syspath_prepend(str(site))
    yield install
    for module in modules:
        sys.modules.pop(module, None)


# -- installed plugin distributions (tests/chains/, and any first-party distribution under chains/ or plugins/) -----


def _installed_plugin_distributions() -> frozenset[str]:
    import importlib.metadata

    return frozenset(
        dist.metadata["Name"]
        for dist in importlib.metadata.distributions()
        if any(ep.group == "exchange_framework" for ep in dist.entry_points)
    )


_INSTALLED_PLUGIN_DISTRIBUTIONS = _installed_plugin_distributions()  # before any test makes a fake one


@pytest.fixture(autouse=True)
def _bare_entry_points(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide the plugin distributions installed in the venv (``pip install -e chains/devchain``, ...) from plugin
    managers made in-process, so every test starts from a bare exchange plus what it installs itself.

    A test that wants the installed distributions requests the ``installed_entry_points`` fixture.
    """
    if "installed_entry_points" in request.fixturenames or not _INSTALLED_PLUGIN_DISTRIBUTIONS:
        return
    import exchange_framework.plugins as plugins

    real = plugins._entry_points
    monkeypatch.setattr(
        plugins,
        "_entry_points",
        lambda: {n: ep for n, ep in real().items() if ep.distribution not in _INSTALLED_PLUGIN_DISTRIBUTIONS},
    )


@pytest.fixture
def installed_entry_points() -> None:
    """Let this test's plugin managers load the plugin distributions installed in the venv."""
