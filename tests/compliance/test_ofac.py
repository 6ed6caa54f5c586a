"""The OFAC SDN list: the real snapshot's CSV and XML, address case rules, fuzzy names, screening and refreshes."""

from __future__ import annotations

import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from exchange_framework.compliance import CaseStore, Subject
from exchange_framework.compliance.cases import FROZEN_REASON
from exchange_framework.compliance.ofac import (
    SdnFormatError,
    SdnList,
    address_key,
    normalise_name,
    parse_csv,
    parse_xml,
)
from exchange_framework.compliance.refresh import OfacListKeeper, RefreshError
from exchange_framework.config import ExchangeConfig, load_config
from exchange_framework.interfaces import DepositRequest, OnboardingRequest, Outcome, WithdrawalRequest
from exchange_framework.plugins import collect_registered, make_plugin_manager, run_screening
from tests.compliance.httpserver import serve

DATA = Path(__file__).parent / "data" / "ofac"
CSV_FILES = ("sdn.csv", "alt.csv", "add.csv", "sdn_comments.csv")

# Listed in the snapshot: SUEX OTC (33151) and KHOROSHEV (48603), as OFAC published them.
SUEX_ETH = "0x2f389ce8bd8ff92de3402ffce4691d17fc4f6535"
SUEX_XBT_SPLIT = "1B64QRxfaa35MVkf7sDjuGUYAP5izQt7Qi"  # split between sdn.csv and sdn_comments.csv
KHOROSHEV_BECH32 = "bc1qvhnfknw852ephxyc5hm4q520zmvf9maphetc9z"
LIFSHITS_BASE58 = "12udabs2TkX7NXCSj6KpqXfakjE52ZPLhz"
INNOCENT_ETH = "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"  # the BIP44 test mnemonic's first address


def snapshot() -> SdnList:
    return parse_csv(*(DATA.joinpath(name).read_text(encoding="utf-8") for name in CSV_FILES))


def test_the_real_snapshot_parses_with_its_addresses_per_currency() -> None:
    sdn = snapshot()
    assert len(sdn.entries) == 17
    by_uid = {entry.uid: entry for entry in sdn.entries}
    suex = by_uid[33151]
    assert suex.name == "SUEX OTC, S.R.O." and suex.programs == ("CYBER2",) and suex.sdn_type == ""
    assert ("XBT", SUEX_XBT_SPLIT) in suex.addresses and ("ETH", SUEX_ETH) in suex.addresses
    assert ("USDT", SUEX_ETH) in suex.addresses  # the same address listed for two currencies
    assert by_uid[29702].programs == ("CYBER2", "ELECTION-EO13848")
    assert by_uid[48603].aliases == ("KHOROSHEV, Dmitriy Yurevich", "YURIEVICH, Dmitry", "KHOROSHEV, Dmitrii Yuryevich")
    currencies = {hit.currency for hit in sdn.addresses()}
    assert currencies == {"XBT", "ETH", "USDT", "LTC", "DASH"}
    (hit,) = [h for h in sdn.screen_address(SUEX_ETH) if h.currency == "ETH"]
    assert hit.chains == ("ethereum",) and hit.uid == 33151
    assert "SDN entry 33151 'SUEX OTC, S.R.O.' (programme CYBER2)" in hit.explain()


def test_xml_and_csv_agree_on_the_same_entries() -> None:
    xml = parse_xml(DATA.joinpath("sdn.xml").read_bytes())
    csv_entries = {entry.uid: entry for entry in snapshot().entries}
    assert xml.published == "05/16/2025"
    assert [entry.uid for entry in xml.entries] == [29702, 33151, 48603]
    for entry in xml.entries:
        assert entry == csv_entries[entry.uid]


def test_the_advanced_xml_agrees_with_the_csv() -> None:
    advanced = parse_xml(DATA.joinpath("sdn_advanced.xml").read_bytes())
    csv_entries = {entry.uid: entry for entry in snapshot().entries}
    assert advanced.published == "2025-05-16"
    assert [entry.uid for entry in advanced.entries] == [29702, 33151, 48603]
    for entry in advanced.entries:
        listed = csv_entries[entry.uid]
        assert (entry.sdn_type, entry.programs, entry.addresses) == (listed.sdn_type, listed.programs, listed.addresses)
        # the advanced format gives name parts, not "LAST, First": the same words
        assert sorted(normalise_name(entry.name).split()) == sorted(normalise_name(listed.name).split())
        assert len(entry.aliases) == len(listed.aliases)
    assert advanced.screen_address(KHOROSHEV_BECH32.upper())
    assert advanced.screen_name("Dmitry Khoroshev", threshold=0.92)[0].uid == 48603


@pytest.mark.parametrize(
    ("screened", "listed"),
    [
        (SUEX_ETH.upper().replace("0X", "0x"), True),  # EVM: case-insensitive (EIP-55 case is a checksum)
        ("0x2F389CE8bd8ff92de3402ffce4691d17fc4f6535", True),
        (KHOROSHEV_BECH32.upper(), True),  # bech32: one case, either
        (f"  {KHOROSHEV_BECH32}\n", True),
        (LIFSHITS_BASE58, True),
        (SUEX_XBT_SPLIT, True),
        (LIFSHITS_BASE58.lower(), False),  # base58: exact, another case is another address
        ("12udabs2TkX7NXCSj6KpqXfakjE52ZPLhZ", False),
        (INNOCENT_ETH, False),
        ("bc1qvhnfknw852ephxyc5hm4q520zmvf9maphetc9Z", False),  # mixed case is not bech32: compared as written
    ],
)
def test_address_case_rules(screened: str, listed: bool) -> None:
    assert bool(snapshot().screen_address(screened)) is listed


def test_address_keys() -> None:
    assert address_key("0xABCDEFabcdef0123456789abcdefABCDEF012345") == "0xabcdefabcdef0123456789abcdefabcdef012345"
    assert address_key("BC1QAR0SRRR7XFKVY5L643LYDNW9RE59GTZZWF5MDQ") == "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"
    assert address_key("1BoatSLRHtKNngkdXEeobR76b53LETtpyT") == "1BoatSLRHtKNngkdXEeobR76b53LETtpyT"


@pytest.mark.parametrize(
    ("name", "uid", "matched"),
    [
        ("Dmitry Khoroshev", 48603, "KHOROSHEV, Dmitry Yuryevich"),  # no middle name, other order
        ("Dmitriy Yurevich Khoroshev", 48603, "KHOROSHEV, Dmitriy Yurevich"),  # an alias, exactly
        ("Artem Mikhailovich Lifshits", 29702, "LIFSHITS, Artem Mikhaylovich"),  # another transliteration
        ("Suex OTC sro", 33151, "SUEX OTC, S.R.O."),
        ("Dmítry Khoroshév", 48603, "KHOROSHEV, Dmitry Yuryevich"),  # accents
    ],
)
def test_fuzzy_name_hits_explain_themselves(name: str, uid: int, matched: str) -> None:
    hits = snapshot().screen_name(name, threshold=0.92)
    assert hits and hits[0].uid == uid and hits[0].matched == matched, hits
    best = hits[0]
    assert best.score >= 0.92 and best.threshold == 0.92 and best.method
    text = best.explain()
    assert f"SDN entry {uid}" in text and f"{best.score:.3f} >= 0.920" in text and "programme" in text


@pytest.mark.parametrize("name", ["John Smith", "Maria Garcia", "Dmitry Petrov", "Alice Example", "Artem Ivanov"])
def test_innocent_names_pass(name: str) -> None:
    assert snapshot().screen_name(name, threshold=0.92) == []


def test_the_threshold_tunes_how_far_a_spelling_may_drift() -> None:
    sdn = snapshot()
    drifted = "Dimitri Koroshev"  # two spelling slips from the listed name
    loose = sdn.screen_name(drifted, threshold=0.85)
    assert loose and loose[0].uid == 48603 and 0.85 <= loose[0].score < 0.97
    assert sdn.screen_name(drifted, threshold=0.97) == []  # a stricter threshold lets it through


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<html><body>Service Unavailable</body></html>", "sdn.csv line 1 is not an SDN record"),
        ("", "sdn.csv holds no entries"),
        ('1,"A","individual"', "not an SDN record"),
    ],
)
def test_garbage_is_refused(text: str, message: str) -> None:
    with pytest.raises(SdnFormatError, match=message):
        parse_csv(text)


def test_garbage_xml_is_refused() -> None:
    with pytest.raises(SdnFormatError, match="not well-formed"):
        parse_xml(b"<sdnList><sdnEntry>")
    with pytest.raises(SdnFormatError, match="not <sdnList> or <Sanctions>"):
        parse_xml(b"<html/>")
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]><sdnList>&b;</sdnList>'
    with pytest.raises(SdnFormatError):
        parse_xml(bomb)  # defusedxml refuses entity declarations


# -- the built-in plugin through the kernel's screening --------------------------------------------------------------


@pytest.fixture
def config(write_config: Callable[..., Path]) -> ExchangeConfig:
    return load_config(write_config(f'[compliance.ofac]\nsource = "{DATA}"\n'))


def test_a_sanctioned_deposit_source_is_frozen_with_a_case(config: ExchangeConfig) -> None:
    pm = make_plugin_manager(config)
    request = DepositRequest(1001, "ETH", "ethereum", 10**18, "0xours", "cd" * 32, (INNOCENT_ETH, SUEX_ETH.upper()))
    decision = run_screening(pm, "screen_deposit", config=config, request=request)
    assert decision.outcome is Outcome.HOLD and decision.reasons[0] == FROZEN_REASON
    assert any("SDN entry 33151" in reason for reason in decision.reasons)
    (case,) = CaseStore.for_config(config).open_cases()
    assert case.subject is Subject.DEPOSIT and case.frozen and case.outcome == "hold"
    assert case.decisions[0].provider == "ofac"


def test_a_sanctioned_withdrawal_destination_is_held_not_rejected(config: ExchangeConfig) -> None:
    pm = make_plugin_manager(config)
    request = WithdrawalRequest(5, 1001, "BTC", "bitcoin", 10**8, KHOROSHEV_BECH32)
    decision = run_screening(pm, "screen_withdrawal", config=config, request=request)
    assert decision.outcome is Outcome.HOLD and FROZEN_REASON in decision.reasons  # a hold keeps the funds held
    (case,) = CaseStore.for_config(config).find(Subject.WITHDRAWAL, "5")
    assert case.frozen and case.details["address"] == KHOROSHEV_BECH32


def test_innocent_addresses_and_names_are_allowed_without_a_case(config: ExchangeConfig) -> None:
    pm = make_plugin_manager(config)
    deposit = DepositRequest(1001, "ETH", "ethereum", 10**18, "0xours", "cd" * 32, (INNOCENT_ETH,))
    assert run_screening(pm, "screen_deposit", config=config, request=deposit).outcome is Outcome.ALLOW
    withdrawal = WithdrawalRequest(6, 1001, "ETH", "ethereum", 1, INNOCENT_ETH)
    assert run_screening(pm, "screen_withdrawal", config=config, request=withdrawal).outcome is Outcome.ALLOW
    applicant = OnboardingRequest(account=9, country="DE", details={"full_name": "Alice Example"})
    assert run_screening(pm, "screen_onboarding", config=config, request=applicant).outcome is Outcome.ALLOW
    assert CaseStore.for_config(config).list_cases() == []


def test_an_applicant_resembling_a_listed_name_is_held_with_explanations(config: ExchangeConfig) -> None:
    pm = make_plugin_manager(config)
    applicant = OnboardingRequest(account=9, country="RU", details={"first_name": "Dmitry", "last_name": "Khoroshev"})
    decision = run_screening(pm, "screen_onboarding", config=config, request=applicant)
    assert decision.outcome is Outcome.HOLD and decision.reasons[0] == "possible OFAC SDN name match"
    assert "SDN entry 48603" in decision.reasons[1] and ">= 0.920" in decision.reasons[1]
    assert decision.reasons[-1] == FROZEN_REASON  # a name hit freezes the account until an officer clears it
    (case,) = CaseStore.for_config(config).open_cases()
    assert case.subject is Subject.ONBOARDING and case.frozen


def test_the_screener_is_registered(config: ExchangeConfig) -> None:
    screener = collect_registered(make_plugin_manager(config), "register_sanctions_screeners", config=config)["ofac"]
    assert screener.screen_address("ethereum", SUEX_ETH).outcome is Outcome.HOLD
    assert screener.screen_party("Alice Example", "DE").outcome is Outcome.ALLOW


def test_with_no_usable_list_everything_is_held(write_config: Callable[..., Path], tmp_path: Path) -> None:
    config = load_config(write_config(f'[compliance.ofac]\nsource = "{tmp_path / "missing"}/"\n'))
    pm = make_plugin_manager(config)
    withdrawal = WithdrawalRequest(6, 1001, "ETH", "ethereum", 1, INNOCENT_ETH)
    decision = run_screening(pm, "screen_withdrawal", config=config, request=withdrawal)
    assert decision.outcome is Outcome.HOLD and "no usable SDN list" in decision.reasons[0]


def test_without_a_source_the_builtin_screening_has_no_opinion(write_config: Callable[..., Path]) -> None:
    config = load_config(write_config())
    withdrawal = WithdrawalRequest(6, 1001, "ETH", "ethereum", 1, INNOCENT_ETH)
    decision = run_screening(make_plugin_manager(config), "screen_withdrawal", config=config, request=withdrawal)
    assert decision.reasons == ("no screening provider gave a decision",)  # the kernel's own fail-closed hold


# -- refreshing from a server ----------------------------------------------------------------------------------------


class ListServer(BaseHTTPRequestHandler):
    """Serves the snapshot's files; ``mode`` switches it to answering 500s or garbage."""

    mode = "good"

    def do_GET(self) -> None:
        name = self.path.rsplit("/", 1)[-1]
        if self.mode == "500":
            self.send_error(500, "internal error")
            return
        if self.mode == "garbage":
            body = b"<html><body>We are down for maintenance</body></html>"
        elif name in CSV_FILES:
            body = DATA.joinpath(name).read_bytes()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.parametrize("failure", ["500", "garbage"])
def test_a_failed_refresh_keeps_the_last_good_list_and_a_restart_starts_from_it(tmp_path: Path, failure: str) -> None:
    handler = type("Handler", (ListServer,), {"mode": "good"})
    with serve(handler) as url:
        keeper = OfacListKeeper(url + "/ofac/", tmp_path / "ofac")
        assert keeper.start() is not None and keeper.status.loaded_from == "download"
        assert keeper.status.entries == 17 and keeper.status.last_error == ""
        good = keeper.current
        handler.mode = failure
        with pytest.raises(RefreshError, match="HTTP 500" if failure == "500" else "not an SDN record"):
            keeper.refresh()
        assert keeper.current is good and keeper.status.last_error
        # a new process: the download fails, the cached copy is used
        restarted = OfacListKeeper(url + "/ofac/", tmp_path / "ofac")
        sdn = restarted.start()
        assert sdn is not None and sdn.screen_address(SUEX_ETH)
        assert restarted.status.loaded_from == "cache" and restarted.status.last_error
        # and the cache was not overwritten by the failed downloads
        assert (tmp_path / "ofac" / "sdn.csv").read_bytes() == DATA.joinpath("sdn.csv").read_bytes()


def test_no_list_at_all_when_the_first_download_fails(tmp_path: Path) -> None:
    handler = type("Handler", (ListServer,), {"mode": "500"})
    with serve(handler) as url:
        keeper = OfacListKeeper(url + "/", tmp_path / "ofac")
        assert keeper.start() is None and not keeper.status.loaded and "HTTP 500" in keeper.status.last_error


def test_refresh_if_due_refreshes_in_the_background(tmp_path: Path) -> None:
    now = [0]
    keeper = OfacListKeeper(str(DATA), tmp_path / "ofac", refresh_seconds=60, clock=lambda: now[0])
    keeper.start()
    first = keeper.current
    keeper.refresh_if_due()  # not due: nothing happens
    assert keeper.current is first
    now[0] = 61 * 10**9
    keeper.refresh_if_due()
    for _ in range(200):
        if keeper.current is not first:
            break
        time.sleep(0.01)
    assert keeper.current is not first and keeper.status.last_attempt_ns == 61 * 10**9


def test_sources_sdn_csv_url_xml_file_and_builtin(tmp_path: Path) -> None:
    assert OfacListKeeper(str(DATA / "sdn.csv"), tmp_path / "a").start() is not None
    xml = OfacListKeeper(str(DATA / "sdn.xml"), tmp_path / "b").start()
    assert xml is not None and len(xml.entries) == 3
    advanced = OfacListKeeper(str(DATA / "sdn_advanced.xml"), tmp_path / "f").start()
    assert advanced is not None and advanced.published == "2025-05-16"
    assert OfacListKeeper(DATA.as_uri() + "/", tmp_path / "c").start() is not None
    builtin = OfacListKeeper("builtin", tmp_path / "d").start()
    assert builtin is not None and len(builtin.entries) == 17
    refused = OfacListKeeper("ftp://example.org/sdn.csv", tmp_path / "e")
    assert refused.start() is None and "only http, https and file" in refused.status.last_error


def test_an_address_ending_the_remarks_loses_the_full_stop() -> None:
    remarks = "Digital Currency Address - ETH 0x" + "ab" * 20 + "."
    row = f'1,"X",-0- ,"CYBER2",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,"{remarks}"\n'
    (entry,) = parse_csv(row).entries
    assert entry.addresses == (("ETH", "0x" + "ab" * 20),)
