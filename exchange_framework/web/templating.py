"""The jinja2 environment shared by the portal and the admin console, overridable in three tiers.

Templates are looked up in the operator's folder first (``[portal] templates``, or ``templates/`` beside the
config file), then in each plugin's ``register_template_dirs``, then in the kernel's default theme. A template
named ``default:<name>`` is always the default theme's, so an operator's ``base.html`` can
``{% extends "default:base.html" %}`` and replace a single block.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import jinja2
import pluggy

from exchange_framework.config import ExchangeConfig

__all__ = ["KERNEL_STATIC", "KERNEL_TEMPLATES", "make_environment", "operator_template_dir", "template_dirs"]

KERNEL_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
KERNEL_STATIC = Path(__file__).resolve().parent.parent / "static"


def operator_template_dir(config: ExchangeConfig) -> Path | None:
    """The operator's template folder: ``[portal] templates``, else ``templates/`` beside the config, if present.

    A folder named in the config must exist (a typo would silently fall back to the default theme otherwise).
    """
    if config.portal.templates is not None:
        path = config.resolve_path(config.portal.templates)
        if not path.is_dir():
            raise FileNotFoundError(f"[portal] templates = {config.portal.templates!r}: no such folder {path}")
        return path
    if config.source is None:
        return None
    beside = config.source.parent / "templates"  # beside the file itself (the demo's root is the working directory)
    return beside if beside.is_dir() else None


def template_dirs(config: ExchangeConfig, pm: pluggy.PluginManager) -> list[Path]:
    """Every template folder, searched in order: operator, plugins, kernel."""
    dirs: list[Path] = []
    operator = operator_template_dir(config)
    if operator is not None:
        dirs.append(operator)
    for found in pm.hook.register_template_dirs(config=config):
        dirs.extend(Path(d) for d in found or ())
    dirs.append(KERNEL_TEMPLATES)
    return dirs


def _ns_time(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ms_time(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1e3, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _num(value: object) -> str:
    """A decimal string without trailing zeros (``"1.50000000"`` -> ``"1.5"``, ``"100.000"`` -> ``"100"``)."""
    text = str(value)
    if "." in text and text.replace(".", "", 1).lstrip("-").isdigit():
        text = text.rstrip("0").rstrip(".")
    return text


def make_environment(config: ExchangeConfig, pm: pluggy.PluginManager) -> jinja2.Environment:
    """Build the autoescaping template environment and let plugins adjust it (``prepare_jinja2_environment``)."""
    loader = jinja2.ChoiceLoader(
        [
            jinja2.FileSystemLoader([str(d) for d in template_dirs(config, pm)]),
            jinja2.PrefixLoader({"default": jinja2.FileSystemLoader(str(KERNEL_TEMPLATES))}, delimiter=":"),
        ]
    )
    env = jinja2.Environment(loader=loader, autoescape=True, auto_reload=False)
    env.filters["ns_time"] = _ns_time
    env.filters["ms_time"] = _ms_time
    env.filters["num"] = _num
    env.globals["brand"] = config.brand
    pm.hook.prepare_jinja2_environment(env=env, config=config)
    return env
