"""The plugin manager: one per exchange instance, built by :func:`make_plugin_manager`.

Plugins load in three layers, later layers called first: the kernel's built-in defaults (:data:`DEFAULT_PLUGINS`),
then installed distributions' entry points in the ``exchange_framework`` group, then modules named in
``[plugins] modules``. ``[plugins] disabled`` blocks any of them by name (a default too, so an operator can replace
it); ``[plugins] enabled``, when set, is an allow-list for entry-point plugins.

Set ``EXCHANGE_TRACE_HOOKS=1`` to print every hook call, its arguments and its result to stderr.

Run ``python -m exchange_framework.plugins > docs/plugin-hooks.md`` to regenerate the hook reference.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pluggy

from exchange_framework import __version__, hookspecs
from exchange_framework.compliance.pipeline import record_screening
from exchange_framework.config import ExchangeConfig, PluginSettings
from exchange_framework.interfaces import (
    AdminPage,
    ChainAdapter,
    CustodySigner,
    Decision,
    EventSubscriber,
    JournalBackend,
    KycProvider,
    LedgerBackend,
    MarketDataPublisher,
    SanctionsScreener,
    TravelRuleProvider,
)

__all__ = [
    "DEFAULT_PLUGINS",
    "ENTRY_POINT_GROUP",
    "REGISTRY_KINDS",
    "TRACE_ENV_VAR",
    "ExchangePluginManager",
    "PluginError",
    "PluginInfo",
    "collect_registered",
    "hook_reference_markdown",
    "make_plugin_manager",
    "plugin_info",
    "run_screening",
]

ENTRY_POINT_GROUP = hookspecs.PROJECT_NAME
TRACE_ENV_VAR = "EXCHANGE_TRACE_HOOKS"

# The kernel's default behaviour, each a module of hookimpls registered under its module name.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "exchange_framework.default_journal",
    "exchange_framework.default_ledger",
    "exchange_framework.default_keystore",
    "exchange_framework.default_sanctions",
    "exchange_framework.default_kyc",
)

# What each register_* hook's items must implement.
REGISTRY_KINDS: Mapping[str, type] = {
    "register_journal_backends": JournalBackend,
    "register_ledger_stores": LedgerBackend,
    "register_event_subscribers": EventSubscriber,
    "register_market_data_publishers": MarketDataPublisher,
    "register_chain_adapters": ChainAdapter,
    "register_custody_signers": CustodySigner,
    "register_kyc_providers": KycProvider,
    "register_sanctions_screeners": SanctionsScreener,
    "register_travel_rule_providers": TravelRuleProvider,
    "register_admin_pages": AdminPage,
}

BUILTIN = "builtin"
CONFIG = "config"


class PluginError(Exception):
    """A plugin could not be loaded, or plugins disagree; raised while an exchange instance starts."""


@dataclass(frozen=True)
class PluginInfo:
    """What ``exchange plugins`` and ``/-/plugins`` show about one plugin."""

    name: str
    source: str  # "builtin", "entrypoint: <distribution> <version>" or "config"
    version: str
    hooks: tuple[str, ...] = ()
    status: str = "loaded"  # or "disabled", "not enabled"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        return {
            "name": self.name,
            "source": self.source,
            "version": self.version,
            "hooks": list(self.hooks),
            "status": self.status,
        }


@dataclass
class _Origin:
    source: str
    version: str
    status: str = "loaded"


class ExchangePluginManager(pluggy.PluginManager):
    """A pluggy manager that remembers where each plugin came from, and which plugins were left out."""

    def __init__(self, config: ExchangeConfig | None = None) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        self.config = config
        self.origins: dict[str, _Origin] = {}


@dataclass
class _EntryPoint:
    name: str
    value: str
    distribution: str
    version: str
    duplicates: list[str] = field(default_factory=list)


def make_plugin_manager(config: ExchangeConfig | None = None) -> ExchangePluginManager:
    """Build the plugin manager of one exchange instance: specs, defaults, entry points, config modules.

    Raise :class:`PluginError` if a plugin cannot be imported, implements a hook wrongly, or ``[plugins]`` names a
    plugin that does not exist.
    """
    settings = config.plugins if config is not None else PluginSettings()
    pm = ExchangePluginManager(config)
    if os.environ.get(TRACE_ENV_VAR, "").strip().lower() in {"1", "true", "yes", "on"}:
        _install_tracer(pm)
    pm.add_hookspecs(hookspecs)

    entry_points = _entry_points()
    _check_names(settings, entry_points)
    disabled = set(settings.disabled)
    for name in disabled:
        pm.set_blocked(name)

    for module_name in DEFAULT_PLUGINS:
        if module_name in disabled:
            pm.origins[module_name] = _Origin(BUILTIN, __version__, "disabled")
            continue
        _register(pm, importlib.import_module(module_name), module_name)
        pm.origins[module_name] = _Origin(BUILTIN, __version__)

    for ep in entry_points.values():
        source = f"entrypoint: {ep.distribution} {ep.version}"
        if ep.name in disabled:
            pm.origins[ep.name] = _Origin(source, ep.version, "disabled")
            continue
        if settings.enabled is not None and ep.name not in settings.enabled:
            pm.set_blocked(ep.name)
            pm.origins[ep.name] = _Origin(source, ep.version, "not enabled")
            continue
        try:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=ep.name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {ep.name!r} ({ep.distribution} {ep.version}): {exc}") from exc
        except Exception as exc:
            raise PluginError(
                f"cannot load plugin {ep.name!r}: entry point {ep.value!r} of {ep.distribution} {ep.version} "
                f"failed: {type(exc).__name__}: {exc}"
            ) from exc
        pm.origins[ep.name] = _Origin(source, ep.version)

    for module_name in settings.modules:
        if module_name in disabled:
            pm.origins[module_name] = _Origin(CONFIG, "", "disabled")
            continue
        if pm.has_plugin(module_name):
            raise PluginError(
                f"[plugins] modules lists {module_name!r}, but a plugin of that name is already loaded "
                f"from {pm.origins[module_name].source}"
            )
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise PluginError(
                f"cannot import plugin module {module_name!r} listed in [plugins] modules: {type(exc).__name__}: {exc}"
            ) from exc
        _register(pm, module, module_name)
        pm.origins[module_name] = _Origin(CONFIG, str(getattr(module, "__version__", "")))

    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {pm.get_name(exc.plugin)!r}: {exc}") from exc
    return pm


def plugin_info(pm: pluggy.PluginManager, *, include_skipped: bool = False) -> list[PluginInfo]:
    """Describe every registered plugin (and, with ``include_skipped``, the disabled ones), sorted by name."""
    origins: Mapping[str, _Origin] = getattr(pm, "origins", {})
    infos: list[PluginInfo] = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:  # a blocked name
            continue
        origin = origins.get(name, _Origin("unknown", str(getattr(plugin, "__version__", ""))))
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or ())
        infos.append(PluginInfo(name, origin.source, origin.version, tuple(hooks), origin.status))
    if include_skipped:
        for name, origin in origins.items():
            if origin.status != "loaded":
                infos.append(PluginInfo(name, origin.source, origin.version, (), origin.status))
    return sorted(infos, key=lambda info: info.name)


def collect_registered(pm: pluggy.PluginManager, hook_name: str, /, **kwargs: Any) -> dict[str, Any]:
    """Call a ``register_*`` hook and return its items by name, in call order.

    Each plugin is called separately so that problems can be pinned on it: raise :class:`PluginError` if a plugin
    returns something other than a list, an item without a ``name``, an item that does not implement the hook's
    interface (:data:`REGISTRY_KINDS`), or a name another plugin already registered.
    """
    kind = REGISTRY_KINDS.get(hook_name)
    hook = getattr(pm.hook, hook_name)
    implementers = [impl.plugin for impl in reversed(hook.get_hookimpls()) if not (impl.wrapper or impl.hookwrapper)]
    items: dict[str, Any] = {}
    owners: dict[str, str] = {}
    for plugin in implementers:
        plugin_name = pm.get_name(plugin) or repr(plugin)
        others = [other for other in implementers if other is not plugin]
        for result in pm.subset_hook_caller(hook_name, remove_plugins=others)(**kwargs):
            if not isinstance(result, list | tuple):
                raise PluginError(f"plugin {plugin_name!r}: {hook_name} must return a list, not {result!r}")
            for item in result:
                name = getattr(item, "name", None)
                if not isinstance(name, str) or not name:
                    raise PluginError(f"plugin {plugin_name!r}: {hook_name} returned {item!r}, which has no name")
                if kind is not None and not isinstance(item, kind):
                    raise PluginError(
                        f"plugin {plugin_name!r}: {hook_name} returned {name!r}, which does not implement "
                        f"{kind.__name__} ({_missing_members(item, kind)})"
                    )
                if name in owners:
                    raise PluginError(
                        f"{hook_name}: {name!r} is registered by both plugin {owners[name]!r} and plugin "
                        f"{plugin_name!r}; remove one with [plugins] disabled = [{plugin_name!r}] "
                        f"or disabled = [{owners[name]!r}] in exchange.toml"
                    )
                owners[name] = plugin_name
                items[name] = item
    return items


def run_screening(
    pm: pluggy.PluginManager, hook_name: str, /, *, required: bool = True, record: bool = True, **kwargs: Any
) -> Decision:
    """Call a ``screen_*`` hook and combine every plugin's answer, failing closed.

    The strictest decision wins. Each plugin is asked separately: one that raises or returns something that is not
    a :class:`~exchange_framework.interfaces.Decision` counts as a hold, without hiding the others' answers (a
    rejection stays a rejection). If (when ``required``) no plugin answers, the result is a hold. A result other
    than an allow opens a compliance case (:mod:`exchange_framework.compliance.pipeline`) unless ``record`` is False
    (the caller records it: re-screening skips hits an officer already cleared).
    """
    hook = getattr(pm.hook, hook_name)
    implementers = [impl.plugin for impl in reversed(hook.get_hookimpls()) if not (impl.wrapper or impl.hookwrapper)]
    answers: list[tuple[str, Decision | None]] = []
    for plugin in implementers:
        others = [other for other in implementers if other is not plugin]
        name = pm.get_name(plugin) or repr(plugin)
        try:
            results = pm.subset_hook_caller(hook_name, remove_plugins=others)(**kwargs)
        except Exception as exc:
            answers.append((name, Decision.hold(f"{hook_name} failed: {type(exc).__name__}: {exc}")))
            continue
        for result in results:
            if not isinstance(result, Decision):
                result = Decision.hold(f"{hook_name} returned {result!r}, which is not a Decision")
            answers.append((name, result))
    decision = Decision.combine([answer for _, answer in answers], required=required)
    if record:
        record_screening(hook_name, kwargs, answers, decision)
    return decision


# -- loading helpers ----------------------------------------------------------------------------------------------


def _register(pm: ExchangePluginManager, plugin: object, name: str) -> None:
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {name!r}: {exc}") from exc
    except ValueError as exc:  # pluggy refuses a second registration of a name or object
        raise PluginError(f"plugin {name!r}: {exc}") from exc


def _entry_points() -> dict[str, _EntryPoint]:
    import importlib.metadata

    found: dict[str, _EntryPoint] = {}
    seen: set[tuple[str, str]] = set()
    for dist in importlib.metadata.distributions():
        dist_name = dist.metadata["Name"] or "?"
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP or (ep.name, dist_name) in seen:
                continue  # the same distribution can be on sys.path twice (an editable install, say)
            seen.add((ep.name, dist_name))
            if ep.name in found:
                raise PluginError(
                    f"two installed distributions provide a plugin named {ep.name!r}: "
                    f"{found[ep.name].distribution} and {dist_name}; uninstall one of them"
                )
            found[ep.name] = _EntryPoint(ep.name, ep.value, dist_name, dist.version)
    return found


def _check_names(settings: PluginSettings, entry_points: Mapping[str, _EntryPoint]) -> None:
    known = set(DEFAULT_PLUGINS) | set(entry_points) | set(settings.modules)
    for key, names in (("disabled", settings.disabled), ("enabled", settings.enabled or [])):
        unknown = [name for name in names if name not in known]
        if unknown:
            raise PluginError(
                f"[plugins] {key} names {', '.join(map(repr, unknown))}, which is not a known plugin; "
                f"known plugins: {', '.join(sorted(known))}"
            )


def _missing_members(item: object, kind: type) -> str:
    members: set[str] = set()
    for klass in kind.__mro__:
        if klass.__module__ not in {"builtins", "typing", "typing_extensions"}:
            members.update(inspect.get_annotations(klass))
            members.update(name for name in klass.__dict__ if not name.startswith("_"))
    missing = sorted(member for member in members if not hasattr(item, member))
    return "missing: " + ", ".join(missing) if missing else "wrong kind"


# -- tracing ------------------------------------------------------------------------------------------------------


def _install_tracer(pm: pluggy.PluginManager) -> Callable[[], None]:
    def before(hook_name: str, hook_impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]) -> None:
        arguments = ", ".join(f"{key}={_short(value)}" for key, value in kwargs.items())
        plugins = ", ".join(impl.plugin_name for impl in reversed(hook_impls)) or "no implementations"
        _trace(f"{hook_name}({arguments}) -> {plugins}")

    def after(
        outcome: pluggy.Result[Any],
        hook_name: str,
        hook_impls: Sequence[pluggy.HookImpl],
        kwargs: Mapping[str, Any],
    ) -> None:
        if outcome.exception is not None:
            _trace(f"{hook_name} raised {outcome.exception!r}")
        else:
            _trace(f"{hook_name} returned {_short(outcome.get_result())}")

    return pm.add_hookcall_monitoring(before, after)


def _trace(line: str) -> None:
    print(f"[exchange hook] {line}", file=sys.stderr, flush=True)


def _short(value: object, limit: int = 120) -> str:
    text = f"<ExchangeConfig {value.brand.name!r}>" if isinstance(value, ExchangeConfig) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- the hook reference -------------------------------------------------------------------------------------------

_SECTION_RE = re.compile(r"# -- (.+) --")
_DEF_RE = re.compile(r"def (\w+)\(")
_ROLE_RE = re.compile(r":\w+:`(~?)([\w.]+)`")


def hook_sections() -> list[tuple[str, list[str]]]:
    """Return the hookspecs grouped by the ``# -- Section --`` comments of :mod:`exchange_framework.hookspecs`."""
    specs = {name for name, obj in vars(hookspecs).items() if _is_hookspec(obj)}
    sections: list[tuple[str, list[str]]] = []
    for line in inspect.getsource(hookspecs).splitlines():
        if match := _SECTION_RE.fullmatch(line):
            sections.append((match[1], []))
        elif (match := _DEF_RE.match(line)) and match[1] in specs and sections:
            sections[-1][1].append(match[1])
    return sections


def hook_reference_markdown() -> str:
    """Render ``docs/plugin-hooks.md`` from the hookspecs' signatures and docstrings."""
    out = [
        "# Plugin hook reference",
        "",
        "<!-- Generated from exchange_framework/hookspecs.py by "
        "`python -m exchange_framework.plugins > docs/plugin-hooks.md`. Do not edit by hand. -->",
        "",
        "Every hook a plugin can implement, grouped by when the kernel calls it. Implement one with",
        "`from exchange_framework import hookimpl` and a function of the hook's name that accepts any subset of its",
        "arguments; the kernel always calls hooks by keyword. [plugins.md](plugins.md) shows how to write, package",
        "and load a plugin.",
        "",
    ]
    sections = hook_sections()
    for title, names in sections:
        out.append(f"- {title}: " + ", ".join(f"[`{name}`](#{name})" for name in names))
    for title, names in sections:
        out += ["", f"## {title}"]
        for name in names:
            function = getattr(hookspecs, name)
            out += ["", f"### {name}", "", "```python", _signature(function), "```", ""]
            call = _call_pattern(function)
            if call:
                out += [call, ""]
            out.append(_markdown(inspect.getdoc(function) or ""))
    return "\n".join(out) + "\n"


def _is_hookspec(obj: object) -> bool:
    return callable(obj) and hasattr(obj, f"{hookspecs.PROJECT_NAME}_spec")


def _signature(function: Callable[..., Any]) -> str:
    annotations = function.__annotations__
    parameters = ", ".join(f"{name}: {annotations.get(name, 'Any')}" for name in inspect.signature(function).parameters)
    return f"def {function.__name__}({parameters}) -> {annotations.get('return', 'None')}"


def _call_pattern(function: Callable[..., Any]) -> str:
    options = getattr(function, f"{hookspecs.PROJECT_NAME}_spec")
    if options.get("historic"):
        return "*Historic: plugins registered after the call still receive it.*"
    if options.get("firstresult"):
        return "*First result: the first implementation to return something other than `None` answers.*"
    return ""


def _markdown(docstring: str) -> str:
    text = docstring.replace("``", "`")
    return _ROLE_RE.sub(lambda m: f"`{m[2].rsplit('.', 1)[-1] if m[1] else m[2]}`", text)


if __name__ == "__main__":
    sys.stdout.write(hook_reference_markdown())
