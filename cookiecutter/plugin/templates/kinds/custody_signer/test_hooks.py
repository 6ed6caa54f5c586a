"""The custody signer, registered through the kernel's hook: the kernel's conformance kit, and its own checks."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from exchange_framework.config import ExchangeConfig, load_config
from exchange_framework.custody.conformance import CHECKS, Check, independent_verify, run_check
from exchange_framework.interfaces import (
    CustodySigner,
    KeyScheme,
    SigningRefusedError,
    SigningRequest,
    UnknownKeyError,
)
from exchange_framework.plugins import ExchangePluginManager, collect_registered, make_plugin_manager

from {{ cookiecutter.__package }}.plugin import PLUGIN_NAME, InMemorySigner

DIGEST = hashlib.sha256(b"an unsigned withdrawal").digest()


def registered(pm: ExchangePluginManager, config: ExchangeConfig) -> InMemorySigner:
    signer = collect_registered(pm, "register_custody_signers", config=config)[PLUGIN_NAME]
    assert isinstance(signer, CustodySigner)
    assert isinstance(signer, InMemorySigner)
    return signer


@pytest.fixture
def signer(pm: ExchangePluginManager, config: ExchangeConfig) -> InMemorySigner:
    """The signer the plugin registers, with the example settings."""
    return registered(pm, config)


def request(key_id: str, payload: bytes = DIGEST, *, chain: str = "bitcoin") -> SigningRequest:
    return SigningRequest(request_id="w-1", key_id=key_id, chain=chain, payload=payload)


KIT = [(check, scheme) for check in CHECKS for scheme in sorted(InMemorySigner.schemes) if scheme in check.schemes]


@pytest.mark.parametrize(("check", "scheme"), KIT, ids=[f"{check.name}-{scheme}" for check, scheme in KIT])
def test_conforms_to_the_kernels_signer_contract(
    write_config: Callable[..., Path], check: Check, scheme: KeyScheme
) -> None:
    config = load_config(write_config(settings="chains = []"))  # the kit signs for a chain called "conformance"
    signer = registered(make_plugin_manager(config), config)
    assert run_check(check, signer, scheme)


def test_registers_a_signer_under_the_plugin_name(signer: InMemorySigner) -> None:
    assert signer.name == PLUGIN_NAME


@pytest.mark.parametrize("scheme", sorted(InMemorySigner.schemes))
def test_signature_verifies_with_an_independent_library(signer: InMemorySigner, scheme: KeyScheme) -> None:
    public_key = signer.create_key("hot-1", scheme)
    signature = signer.sign(request("hot-1"))
    assert independent_verify(scheme, public_key, DIGEST, signature)
    assert not independent_verify(scheme, public_key, hashlib.sha256(b"another").digest(), signature)


def test_refuses_a_chain_it_does_not_sign_for(signer: InMemorySigner) -> None:
    signer.create_key("hot-1", KeyScheme.SECP256K1)
    with pytest.raises(SigningRefusedError, match="does not sign for chain 'solana'"):
        signer.sign(request("hot-1", chain="solana"))


def test_refuses_a_message_where_a_digest_is_due(signer: InMemorySigner) -> None:
    signer.create_key("hot-1", KeyScheme.SECP256K1)
    with pytest.raises(SigningRefusedError, match="32-byte digest"):
        signer.sign(request("hot-1", b"pay 1 BTC to mallory"))


def test_each_signer_has_its_own_keys(pm: ExchangePluginManager, config: ExchangeConfig) -> None:
    first, second = registered(pm, config), registered(pm, config)
    first.create_key("hot-1", KeyScheme.ED25519)
    with pytest.raises(UnknownKeyError, match="holds no key 'hot-1'"):
        second.public_key("hot-1")


@pytest.mark.parametrize(
    ("settings", "message"),
    [('chains = "bitcoin"', "chains must be a list of chain names"), ("keys = []", "unknown key 'keys'")],
)
def test_bad_settings_stop_the_start(write_config: Callable[..., Path], settings: str, message: str) -> None:
    config = load_config(write_config(settings=settings))
    pm = make_plugin_manager(config)
    with pytest.raises(ValueError, match=message):
        pm.hook.startup.call_historic(kwargs={"config": config})
