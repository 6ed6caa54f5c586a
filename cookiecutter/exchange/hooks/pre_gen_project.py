"""Check the answers before anything is generated: a bad answer stops generation with a message saying what to do.

Each answer arrives as JSON inside a Python string and is decoded with ``json.loads``: JSON writes a character
beyond U+FFFF as a surrogate pair, which a Python string literal would keep as two lone surrogates.
"""

import json
import re
import sys
import unicodedata
from decimal import Decimal

ANSWERS = json.loads(
    {{ {
        "exchange_name": cookiecutter.exchange_name,
        "slug": cookiecutter.__name_slug,
        "tagline": cookiecutter.tagline,
        "primary_colour": cookiecutter.primary_colour,
        "accent_colour": cookiecutter.accent_colour,
        "quote": cookiecutter.__quote,
        "markets": cookiecutter.markets,
        "maker_fee": cookiecutter.maker_fee,
        "taker_fee": cookiecutter.taker_fee,
        "assets": cookiecutter._assets,
        "quotes": cookiecutter._quotes,
    } | jsonify(0) | jsonify }}
)
NAME = ANSWERS["exchange_name"]
SLUG = ANSWERS["slug"]  # the folder's name, when there is one
TAGLINE = ANSWERS["tagline"]
COLOURS = {key: ANSWERS[key] for key in ("primary_colour", "accent_colour")}
QUOTE = ANSWERS["quote"]
MARKETS = ANSWERS["markets"]
FEES = {key: ANSWERS[key] for key in ("maker_fee", "taker_fee")}
ASSETS = ANSWERS["assets"]
QUOTES = ANSWERS["quotes"]

MAX_NAME = 80  # [brand] name in exchange.toml
MAX_TAGLINE = 200  # [brand] tagline
COLOUR_RE = re.compile(r"#[0-9a-fA-F]{6}")
RATE_RE = re.compile(r"-?[0-9]+(\.[0-9]+)?")
RATE_PLACES = 6  # the engine counts fees in millionths
RATE_LIMITS = {"maker_fee": (Decimal("-0.01"), Decimal("0.1")), "taker_fee": (Decimal(0), Decimal("0.1"))}


def _has_control(text: str) -> bool:
    return any(unicodedata.category(char).startswith("C") for char in text)


def _name_problems() -> list[str]:
    name = NAME.strip()
    if not name:
        return ["exchange_name is empty: give the exchange a name, such as 'Example Exchange'"]
    if len(name) > MAX_NAME:
        return [f"exchange_name {NAME!r} is longer than {MAX_NAME} characters: choose a shorter name"]
    if _has_control(NAME):
        return [f"exchange_name {NAME!r} contains control characters: use printable text only"]
    if not SLUG:
        return [f"exchange_name {NAME!r} gives no folder name: use some letters or digits"]
    return []


def _tagline_problems() -> list[str]:
    if len(TAGLINE) > MAX_TAGLINE:
        return [f"tagline is longer than {MAX_TAGLINE} characters: shorten it"]
    if _has_control(TAGLINE):
        return [f"tagline {TAGLINE!r} contains control characters: use printable text only"]
    return []


def _colour_problems() -> list[str]:
    return [
        f"{key} {value!r} is not a colour: write it as '#' and six hex digits, such as '#0a7cff'"
        for key, value in COLOURS.items()
        if not COLOUR_RE.fullmatch(value)
    ]


def _market_problems() -> list[str]:
    if QUOTE not in QUOTES:
        return [f"quote_asset {QUOTE!r} is not known: choose one of {', '.join(QUOTES)}"]
    bases = [part.strip().upper() for part in MARKETS.split(",") if part.strip()]
    if not bases:
        return [f"markets is empty: list base assets traded against {QUOTE}, such as 'BTC, ETH'"]
    found = []
    unknown = [base for base in bases if base not in ASSETS]
    if unknown:
        found.append(f"markets names unknown asset(s) {', '.join(unknown)}: choose from {', '.join(ASSETS)}")
    repeated = sorted({base for base in bases if bases.count(base) > 1})
    if repeated:
        found.append(f"markets lists {', '.join(repeated)} more than once: list each base asset once")
    return found


def _fee_problems() -> list[str]:
    found = []
    rates = {}
    for key, text in FEES.items():
        low, high = RATE_LIMITS[key]
        value = Decimal(text.strip()) if RATE_RE.fullmatch(text.strip()) else None
        if value is None:
            found.append(f"{key} {text!r} is not a decimal rate: write a fraction such as '0.001' (0.1 %)")
        elif not low <= value <= high:
            found.append(f"{key} {text!r} is out of range: it must be from {low} to {high}")
        elif len(text.strip().partition(".")[2]) > RATE_PLACES:
            found.append(f"{key} {text!r} has more than {RATE_PLACES} decimal places: round it")
        else:
            rates[key] = value
    if len(rates) == 2 and -rates["maker_fee"] > rates["taker_fee"]:
        found.append(
            f"maker_fee {FEES['maker_fee']!r} is a rebate larger than taker_fee {FEES['taker_fee']!r}: "
            "the exchange would pay out on every trade"
        )
    return found


def problems() -> list[str]:
    """Return what is wrong with the answers, one sentence each."""
    return _name_problems() + _tagline_problems() + _colour_problems() + _market_problems() + _fee_problems()


if __name__ == "__main__":
    errors = problems()
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    if errors:
        print("Nothing was generated; run cookiecutter again with a different answer.", file=sys.stderr)
        sys.exit(1)
