"""The white-label exchange template (``cookiecutter/exchange``): it generates a branded exchange whose config passes
``exchange config check`` and which ``exchange demo`` serves with its brand, template overrides, logo and markets;
bad answers stop it with a clear error and generate nothing."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tempfile
import time
import tomllib
import xml.etree.ElementTree as ET
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from cookiecutter.exceptions import FailedHookException
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slugify import slugify

from exchange_framework.config import load_config
from tests.api.server import free_port
from tests.cookiecutter.throwaway import PROJECT_BIN, ROOT, generate, run

EXCHANGE_TEMPLATE = ROOT / "cookiecutter" / "exchange"
EXCHANGE = PROJECT_BIN / "exchange"
GUIDE = ROOT / "docs" / "white-label.md"
BASES = ["BTC", "ETH", "LTC", "SOL"]

ANSWERS = {
    "exchange_name": "Northwind Exchange",
    "tagline": "Bitcoin and Ether, priced in dollars",
    "primary_colour": "#12AB34",
    "accent_colour": "#fedcba",
    "quote_asset": "USDC",
    "markets": "btc, SOL",
    "maker_fee": "-0.0001",
    "taker_fee": "0.0015",
}


def config_check(project: Path) -> subprocess.CompletedProcess[str]:
    """Run the generated README's ``exchange --config exchange.toml config check`` in the generated folder."""
    return run([str(EXCHANGE), "--config", "exchange.toml", "config", "check"], cwd=project)


def load(project: Path) -> dict[str, Any]:
    return tomllib.loads((project / "exchange.toml").read_text(encoding="utf-8"))


def test_generated_exchange_holds_the_answers(tmp_path: Path) -> None:
    project = generate(EXCHANGE_TEMPLATE, tmp_path, ANSWERS)
    assert project.name == "northwind-exchange"
    config = load(project)
    assert config["brand"] == {
        "name": "Northwind Exchange",
        "tagline": "Bitcoin and Ether, priced in dollars",
        "logo": "static/logo.svg",
        "colours": {"primary": "#12ab34", "accent": "#fedcba", "background": "#0d1117"},
    }
    assert set(config["assets"]) == {"BTC", "SOL", "USDC"}
    markets = config["markets"]
    assert isinstance(markets, dict) and set(markets) == {"BTC-USDC", "SOL-USDC"}
    assert {(m["base"], m["quote"]) for m in markets.values()} == {("BTC", "USDC"), ("SOL", "USDC")}
    assert config["fees"] == {"maker": "-0.0001", "taker": "0.0015"}
    assert config["portal"] == {"templates": "templates"}
    assert config["plugins"]["enabled"] == ["devchain"]
    devchain = config["plugins"]["settings"]["devchain"]
    assert devchain["assets"] == ["BTC", "SOL", "USDC"]
    for path in ("templates/base.html", "templates/index.html", "static/logo.svg", "README.md", ".gitignore"):
        assert (project / path).is_file(), path


def test_generated_config_passes_config_check(tmp_path: Path) -> None:
    project = generate(EXCHANGE_TEMPLATE, tmp_path, ANSWERS)
    checked = config_check(project)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "exchange.toml: OK (Northwind Exchange)" in checked.stdout
    assert "BTC-USDC  BTC/USDC  open" in checked.stdout and "SOL-USDC  SOL/USDC  open" in checked.stdout
    assert "maker_fee_ppm=-100 taker_fee_ppm=1500" in checked.stdout


@pytest.mark.parametrize("quote", ["USDT", "USDC"])
def test_every_offered_market_passes_config_check(tmp_path: Path, quote: str) -> None:
    project = generate(EXCHANGE_TEMPLATE, tmp_path, {"quote_asset": quote, "markets": ", ".join(BASES)})
    checked = config_check(project)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for base in BASES:
        assert f"{base}-{quote}  {base}/{quote}  open" in checked.stdout


def test_every_offered_asset_is_tested() -> None:
    context = json.loads((EXCHANGE_TEMPLATE / "cookiecutter.json").read_text(encoding="utf-8"))
    assert sorted(context["_assets"]) == BASES
    assert sorted(context["_quotes"]) == ["USDC", "USDT"]


def test_a_name_with_quotes_and_accents_is_kept_exactly(tmp_path: Path) -> None:
    name = 'Zoë\'s "Best" \\ Börse'
    project = generate(EXCHANGE_TEMPLATE, tmp_path, {"exchange_name": name, "tagline": ""})
    assert project.name == "zoe-s-best-borse"
    brand = load(project)["brand"]
    assert isinstance(brand, dict) and brand["name"] == name and "tagline" not in brand
    assert config_check(project).returncode == 0
    logo = ET.parse(project / "static" / "logo.svg").getroot()
    assert logo.get("aria-label") == name


def test_the_logo_is_an_svg_in_the_brand_colours(tmp_path: Path) -> None:
    project = generate(EXCHANGE_TEMPLATE, tmp_path, ANSWERS)
    logo = ET.parse(project / "static" / "logo.svg").getroot()
    assert logo.tag == "{http://www.w3.org/2000/svg}svg"
    fills = {element.get("fill") for element in logo.iter()} | {element.get("stroke") for element in logo.iter()}
    assert {"#12ab34", "#fedcba"} <= fills
    [text] = logo.iter("{http://www.w3.org/2000/svg}text")
    assert text.text == "NE"


def test_the_readme_gives_the_commands_the_tests_run(tmp_path: Path) -> None:
    project = generate(EXCHANGE_TEMPLATE, tmp_path, ANSWERS)
    readme = (project / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"^\$ (.+)$", readme, flags=re.MULTILINE)
    assert commands[0].startswith("pip install -e FRAMEWORK -e FRAMEWORK/chains/devchain")
    assert commands[1] == "exchange --config exchange.toml config check"
    assert re.fullmatch(
        r"EXCHANGE_KEYSTORE_PASSPHRASE='[^']+' exchange --config exchange.toml demo --port \d+", commands[2]
    )
    assert "# Northwind Exchange" in readme and "BTC-USDC, SOL-USDC" in readme


# Printable text without "{": cookiecutter renders every answer as a template, so "{{", "{%" and "{#" in an answer
# are template code (cookiecutter refuses an answer that does not render, before the template's checks run).
TEXT = st.text(st.characters(categories=["L", "M", "N", "P", "S", "Zs"], exclude_characters="{"), max_size=80)
RATE_PPM = st.integers(min_value=-10_000, max_value=100_000)


def rate(ppm: int) -> str:
    return f"{Decimal(ppm) / 10**6:f}"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=TEXT,
    tagline=TEXT,
    quote=st.sampled_from(["USDT", "USDC"]),
    bases=st.lists(st.sampled_from(BASES), min_size=1, max_size=4, unique=True),
    maker=RATE_PPM,
    taker=RATE_PPM.filter(lambda ppm: ppm >= 0),
    lower=st.booleans(),
)
def test_any_answers_give_a_valid_exchange_or_a_clear_error(
    capfd: pytest.CaptureFixture[str],
    name: str,
    tagline: str,
    quote: str,
    bases: list[str],
    maker: int,
    taker: int,
    lower: bool,
) -> None:
    answers = {
        "exchange_name": name,
        "tagline": tagline,
        "quote_asset": quote.lower() if lower else quote,
        "markets": ",".join(base.lower() if lower else base for base in bases),
        "maker_fee": rate(maker),
        "taker_fee": rate(taker),
    }
    valid = bool(name.strip()) and bool(slugify(name)) and -maker <= taker
    with tempfile.TemporaryDirectory() as out:
        capfd.readouterr()
        if not valid:
            with pytest.raises(FailedHookException):
                generate(EXCHANGE_TEMPLATE, Path(out), answers)
            assert "Nothing was generated" in capfd.readouterr().err
            assert list(Path(out).iterdir()) == []
            return
        project = generate(EXCHANGE_TEMPLATE, Path(out), answers)
        config = load_config(project / "exchange.toml")
    assert config.brand.name == name.strip()
    assert config.brand.tagline == (tagline.strip() or None)
    assert set(config.markets) == {f"{base}-{quote}" for base in bases}
    assert (config.fees.maker, config.fees.taker) == (Decimal(maker) / 10**6, Decimal(taker) / 10**6)


BAD_ANSWERS = [
    ({"primary_colour": "blue"}, "primary_colour 'blue' is not a colour"),
    ({"accent_colour": "#12345"}, "accent_colour '#12345' is not a colour"),
    ({"exchange_name": ""}, "exchange_name is empty"),
    ({"exchange_name": "   "}, "exchange_name is empty"),
    ({"exchange_name": "!!!"}, "gives no folder name"),
    ({"exchange_name": "x" * 81}, "longer than 80 characters"),
    ({"exchange_name": "Tab\tExchange"}, "control characters"),
    ({"tagline": "t" * 201}, "tagline is longer than 200 characters"),
    ({"quote_asset": "EUR"}, "quote_asset 'EUR' is not known: choose one of USDC, USDT"),
    ({"markets": "BTC, DOGE"}, "unknown asset(s) DOGE"),
    ({"markets": "BTC, btc"}, "lists BTC more than once"),
    ({"markets": " , "}, "markets is empty"),
    ({"maker_fee": "abc"}, "maker_fee 'abc' is not a decimal rate"),
    ({"taker_fee": "0.5"}, "taker_fee '0.5' is out of range"),
    ({"taker_fee": "1e-3"}, "taker_fee '1e-3' is not a decimal rate"),
    ({"maker_fee": "0.0000001"}, "more than 6 decimal places"),
    ({"maker_fee": "-0.002", "taker_fee": "0.001"}, "a rebate larger than taker_fee"),
]


@pytest.mark.parametrize(("answers", "message"), BAD_ANSWERS)
def test_a_bad_answer_stops_generation_with_a_clear_error(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], answers: dict[str, str], message: str
) -> None:
    with pytest.raises(FailedHookException):
        generate(EXCHANGE_TEMPLATE, tmp_path, answers)
    err = capfd.readouterr().err
    assert f"error: {next(iter(answers))}" in err
    assert message in err
    assert "Nothing was generated" in err
    assert list(tmp_path.iterdir()) == []


def test_the_guide_describes_every_question() -> None:
    guide = GUIDE.read_text(encoding="utf-8")
    context = json.loads((EXCHANGE_TEMPLATE / "cookiecutter.json").read_text(encoding="utf-8"))
    questions = [key for key in context if not key.startswith("_")]
    assert [key for key in questions if f"`{key}`" not in guide] == []
    assert "cookiecutter/exchange" in guide


def wait_for(url: str, process: subprocess.Popen[str], timeout: float = 30) -> None:
    """Poll ``url`` until it answers 200; fail with the process's output if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the exchange exited early:\n{process.communicate()[0]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout} s")


@pytest.mark.slow
def test_generated_exchange_runs_with_its_brand_overrides_logo_and_markets(tmp_path: Path) -> None:
    project = generate(EXCHANGE_TEMPLATE, tmp_path / "generated", ANSWERS)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {key: value for key, value in os.environ.items() if key != "EXCHANGE_CONFIG"}
    env["EXCHANGE_KEYSTORE_PASSPHRASE"] = "template-test-passphrase"
    data = tmp_path / "data"
    args = ["--config", str(project / "exchange.toml"), "demo", "--port", str(port), "--data-dir", str(data)]
    process = subprocess.Popen(
        [str(EXCHANGE), *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_for(f"{base}/api/v3/ping", process)
        home = httpx.get(f"{base}/")
        assert home.status_code == 200
        page = home.text
        assert '<span class="brand-name">Northwind Exchange</span>' in page  # the default theme's header
        assert "<h1>Welcome to Northwind Exchange</h1>" in page  # templates/index.html
        assert "Trade BTC, SOL against USDC, settled on our own ledger." in page
        assert "Spot markets: BTC, SOL against USDC</span>" in page  # templates/base.html's footer block
        assert "&copy; Northwind Exchange" in page
        assert "border-bottom: 3px solid var(--accent)" in page  # templates/base.html's head block
        assert "--primary: #12ab34;" in page and "--accent: #fedcba;" in page
        assert '<img src="/brand/logo"' in page

        logo = httpx.get(f"{base}/brand/logo")
        assert logo.status_code == 200
        assert logo.headers["content-type"].startswith("image/svg+xml")
        assert logo.content == (project / "static" / "logo.svg").read_bytes()

        info = httpx.get(f"{base}/api/v3/exchangeInfo").json()
        symbols = {s["symbol"]: (s["baseAsset"], s["quoteAsset"], s["status"]) for s in info["symbols"]}
        assert symbols == {"BTCUSDC": ("BTC", "USDC", "TRADING"), "SOLUSDC": ("SOL", "USDC", "TRADING")}

        deadline = time.monotonic() + 15  # the demo's market maker quotes every generated market
        for symbol in symbols:
            book = httpx.get(f"{base}/api/v3/depth", params={"symbol": symbol}).json()
            while not (book["bids"] and book["asks"]):
                assert time.monotonic() < deadline, f"no quotes in {symbol}: {book}"
                time.sleep(0.2)
                book = httpx.get(f"{base}/api/v3/depth", params={"symbol": symbol}).json()
    finally:
        process.send_signal(signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
    assert process.returncode == 0, output
    assert f"Northwind Exchange is running at {base}" in output
    assert "Deposits and withdrawals run on: devchain" in output  # the generated dev chain and wallet settings
    assert (data / "commands.journal").is_file() and (data / "devchain").is_dir()
    assert not (project / "var").exists(), "with --data-dir the exchange keeps nothing beside its config"
