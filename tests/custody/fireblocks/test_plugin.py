"""The installed ``fireblocks`` plugin through the kernel's plugin manager: balances, the webhook route, start-up."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from exchange_fireblocks import plugin
from exchange_fireblocks.settings import FireblocksConfigError
from exchange_fireblocks.signer import FireblocksSigner
from starlette.routing import Route

from exchange_framework.config import ExchangeConfig, load_config
from exchange_framework.interfaces import CustodyBalance, KeyScheme
from exchange_framework.plugins import collect_registered, make_plugin_manager
from tests.custody.fireblocks.conftest import API_KEY


def toml_value(value: object) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


@pytest.fixture
def configure(
    write_config: Callable[..., Path],
    fb_url: str,
    key_files: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    installed_entry_points: None,
) -> Callable[..., ExchangeConfig]:
    monkeypatch.setenv("FIREBLOCKS_API_KEY", API_KEY)

    def make(*, assets: str = 'ETH = "ETH_TEST5"\nUSDT = "USDT_ERC20"', **changes: object) -> ExchangeConfig:
        settings: dict[str, object] = {
            "vault_account_id": "0",
            "base_url": fb_url,
            "secret_key_file": str(key_files[0]),
            "webhook_public_key": "",
            "webhook_public_key_file": str(key_files[1]),
            "timeout_seconds": 2,
        }
        settings.update(changes)
        lines = "\n".join(f"{name} = {toml_value(value)}" for name, value in settings.items())
        return load_config(
            write_config(
                f"[assets.ETH]\ndecimals = 18\n\n[plugins.settings.fireblocks]\n{lines}\n\n"
                f"[plugins.settings.fireblocks.assets]\n{assets}\n"
            )
        )

    return make


def test_the_kernel_gets_vault_balances_and_the_webhook_route(configure: Callable[..., ExchangeConfig]) -> None:
    config = configure()
    pm = make_plugin_manager(config)
    pm.hook.startup.call_historic(kwargs={"config": config})
    reports = [r for answer in pm.hook.custody_balances(config=config, assets=["BTC", "ETH", "USDT"]) for r in answer]
    fireblocks = sorted((r for r in reports if r.source == "fireblocks"), key=lambda r: r.asset)
    assert fireblocks == [
        CustodyBalance("fireblocks", "ETH", "vault:0", 10 * 10**18),
        CustodyBalance("fireblocks", "USDT", "vault:0", 0),  # the vault holds no USDT_ERC20: reported, as 0
    ]
    routes = [r for answer in pm.hook.register_routes(config=config) if answer for r in answer]
    ours = [r for r in routes if isinstance(r, Route) and r.path == "/hooks/fireblocks"]
    assert len(ours) == 1 and ours[0].methods is not None and "POST" in ours[0].methods


def test_without_its_settings_the_plugin_does_nothing(
    write_config: Callable[..., Path], installed_entry_points: None
) -> None:
    config = load_config(write_config())
    pm = make_plugin_manager(config)
    pm.hook.startup.call_historic(kwargs={"config": config})
    assert plugin.custody_balances(config=config, assets=["BTC"]) is None
    assert plugin.register_routes(config=config) is None
    assert plugin.custody_for(config) is None


def test_start_up_names_what_is_missing(
    configure: Callable[..., ExchangeConfig], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(FireblocksConfigError, match="DOGE"):
        plugin.startup(configure(assets='DOGE = "DOGE"'))
    with pytest.raises(FireblocksConfigError, match="vault_account_id"):
        plugin.startup(configure(vault_account_id=""))
    with pytest.raises(FireblocksConfigError, match="webhook_public_key"):
        plugin.startup(configure(webhook_public_key="staging"))
    with pytest.raises(FireblocksConfigError, match="unknown field"):
        plugin.startup(configure(api_key="pasted-here-by-mistake"))
    with pytest.raises(FireblocksConfigError, match=r"no_such\.key"):
        plugin.startup(configure(secret_key_file=str(tmp_path / "no_such.key")))
    config = configure()
    plugin.startup(config)
    monkeypatch.delenv("FIREBLOCKS_API_KEY")
    with pytest.raises(FireblocksConfigError, match="FIREBLOCKS_API_KEY"):
        plugin.startup(config)


def test_one_custody_per_settings(configure: Callable[..., ExchangeConfig]) -> None:
    first = configure()
    assert plugin.custody_for(first) is plugin.custody_for(first)
    assert plugin.custody_for(configure(poll_interval_seconds=5)) is not plugin.custody_for(first)


def test_the_raw_signing_signer_is_registered_when_signing_assets_are_set(
    configure: Callable[..., ExchangeConfig],
) -> None:
    assert plugin.register_custody_signers(configure()) is None
    config = configure(signing_assets={"secp256k1": "ETH_TEST5"})
    pm = make_plugin_manager(config)
    signers = collect_registered(pm, "register_custody_signers", config=config)
    assert isinstance(signers["fireblocks"], FireblocksSigner)
    assert signers["fireblocks"].schemes == frozenset({KeyScheme.SECP256K1})


def test_shutdown_closes_the_clients_and_the_next_use_makes_new_ones(configure: Callable[..., ExchangeConfig]) -> None:
    config = configure(signing_assets={"secp256k1": "ETH_TEST5"})
    custody = plugin.custody_for(config)
    assert custody is not None
    assert custody.balances(["ETH"])  # opens its API client
    (signer,) = plugin.register_custody_signers(config) or []
    assert plugin.register_custody_signers(config) == [signer]  # one signer per settings
    plugin.shutdown(config)
    assert custody._api is None
    assert plugin.custody_for(config) is not custody
