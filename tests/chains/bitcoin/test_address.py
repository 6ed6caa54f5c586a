"""Addresses: BIP84 deposit derivation (published vectors), BIP350 segwit vectors, base58check, network checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bip_utils import Bip39SeedGenerator, Bip84, Bip84Coins
from exchange_bitcoin.address import (
    address_of_script,
    deposit_public_key,
    normalize_xpub,
    p2wpkh_address,
    script_of_address,
)
from exchange_bitcoin.network import PRESETS, params_from_settings

from exchange_framework.chains.hd import HdError

MNEMONIC = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
# BIP84's published account keys for the mnemonic above (m/84'/0'/0') and its first addresses.
BIP84_ZPUB = (
    "zpub6rFR7y4Q2AijBEqTUquhVz398htDFrtymD9xYYfG1m4wAcvPhXNfE3EfH1r1ADqtfSdVCToUG868RvUUkgDKf31mGDtKsAYz2oz2AGutZYs"
)
BIP84_ZPRV = (
    "zprvAdG4iTXWBoARxkkzNpNh8r6Qag3irQB8PzEMkAFeTRXxHpbF9z4QgEvBRmfvqWvGp42t42nvgGpNgYSJA9iefm1yYNZKEm7z6qUWCroSQnE"
)
BIP84_ADDRESSES = {
    (0, 0): "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu",
    (0, 1): "bc1qnjg0jd8228aq7egyzacy8cys3knf9xvrerkf9g",
    (1, 0): "bc1q8c6fshw2dlwun7ekn9qwf37cu2rn755upcp6el",
}
BTC = PRESETS["bitcoin-mainnet"]
TBTC = PRESETS["bitcoin-testnet"]
VECTORS = json.loads((Path(__file__).parent / "bip350_vectors.json").read_text(encoding="utf-8"))


def account_zpub() -> str:
    seed = Bip39SeedGenerator(MNEMONIC).Generate()
    return str(Bip84.FromSeed(seed, Bip84Coins.BITCOIN).Purpose().Coin().Account(0).PublicKey().ToExtended())


def test_the_account_key_derived_from_the_mnemonic_is_bip84s() -> None:
    assert account_zpub() == BIP84_ZPUB


@pytest.mark.parametrize(("path", "expected"), sorted(BIP84_ADDRESSES.items()))
def test_bip84_addresses_from_the_account_key_only(path: tuple[int, int], expected: str) -> None:
    assert p2wpkh_address(deposit_public_key(account_zpub(), *path), BTC) == expected


def test_slip132_prefixes_read_as_the_same_key_and_private_keys_are_refused() -> None:
    xpub = normalize_xpub(BIP84_ZPUB)
    assert xpub.startswith("xpub") and normalize_xpub(xpub) == xpub
    assert deposit_public_key(xpub, 0, 0) == deposit_public_key(BIP84_ZPUB, 0, 0)
    with pytest.raises(HdError, match="PRIVATE"):
        normalize_xpub(BIP84_ZPRV)
    with pytest.raises(HdError):
        normalize_xpub(BIP84_ZPUB[:-1] + "t")
    with pytest.raises(HdError, match="hardened"):
        deposit_public_key(BIP84_ZPUB, 0, 2**31)


@pytest.mark.parametrize(("address", "script"), VECTORS["valid"])
def test_bip350_valid_addresses_map_to_their_scripts(address: str, script: str) -> None:
    params = BTC if address.lower().startswith("bc") else TBTC
    assert script_of_address(address, params).hex() == script
    assert address_of_script(bytes.fromhex(script), params) == address.lower()


@pytest.mark.parametrize(("address", "reason"), VECTORS["invalid"])
def test_bip350_invalid_addresses_are_refused(address: str, reason: str) -> None:
    for params in (BTC, TBTC):
        with pytest.raises(ValueError):
            script_of_address(address, params)


def test_base58_addresses_need_the_networks_version_bytes() -> None:
    # Bitcoin's first P2PKH address (genesis coinbase key) and BIP13's example-format P2SH.
    p2pkh = "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"
    assert script_of_address(p2pkh, BTC).hex() == "76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac"
    assert address_of_script(script_of_address(p2pkh, BTC), BTC) == p2pkh
    for other in (TBTC, PRESETS["litecoin-mainnet"]):
        with pytest.raises(ValueError, match="version byte"):
            script_of_address(p2pkh, other)
    with pytest.raises(ValueError):
        script_of_address(p2pkh[:-1] + "b", BTC)  # checksum
    ltc = PRESETS["litecoin-regtest"]
    p2sh = address_of_script(bytes.fromhex("a914" + "11" * 20 + "87"), ltc)
    assert p2sh is not None and p2sh.startswith("Q")  # version 0x3a
    assert script_of_address(p2sh, ltc).hex() == "a914" + "11" * 20 + "87"


def test_segwit_addresses_need_the_networks_hrp() -> None:
    address = BIP84_ADDRESSES[(0, 0)]
    with pytest.raises(ValueError):
        script_of_address(address, PRESETS["litecoin-mainnet"])
    regtest = p2wpkh_address(deposit_public_key(BIP84_ZPUB, 0, 0), PRESETS["litecoin-regtest"])
    assert regtest.startswith("rltc1q")
    assert script_of_address(regtest, PRESETS["litecoin-regtest"]) == script_of_address(address, BTC)


def test_network_settings_errors_name_the_key() -> None:
    where = "[t]"
    with pytest.raises(ValueError, match="preset 'dogecoin'"):
        params_from_settings("dogecoin", {}, where)
    with pytest.raises(ValueError, match="needs a preset"):
        params_from_settings(None, {"hrp": "x"}, where)
    with pytest.raises(ValueError, match="p2sh_versions"):
        params_from_settings("litecoin-regtest", {"p2sh_versions": [300]}, where)
    with pytest.raises(ValueError, match="hrp must be lower case"):
        params_from_settings("litecoin-regtest", {"hrp": "RLTC"}, where)
    custom = params_from_settings("bitcoin-regtest", {"asset": "XBT", "p2sh_versions": 0xC4}, where)
    assert (custom.asset, custom.p2sh_versions, custom.hrp) == ("XBT", (0xC4,), "bcrt")
