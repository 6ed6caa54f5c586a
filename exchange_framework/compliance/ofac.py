"""The OFAC Specially Designated Nationals (SDN) list: parsing its published formats, and screening against it.

Formats read:

- the legacy CSV files: ``sdn.csv`` (``ent_num, SDN_Name, SDN_Type, Program, Title, Call_Sign, Vess_type, Tonnage,
  GRT, Vess_flag, Vess_owner, Remarks``; ``-0-`` marks an empty field; several programmes are joined by ``] [``),
  ``alt.csv`` (``ent_num, alt_num, alt_type, alt_name, alt_remarks``), ``add.csv`` (addresses, for the record) and
  ``sdn_comments.csv`` (``ent_num, remarks``: the rest of remarks too long for ``sdn.csv``, continuing it directly);
- the classic XML ``sdn.xml`` (``sdnList/sdnEntry`` with ``uid``, ``firstName``, ``lastName``, ``sdnType``,
  ``programList/program``, ``idList/id/{idType,idNumber}``, ``akaList/aka/{firstName,lastName}``), namespace-agnostic;
- the advanced XML ``sdn_advanced.xml`` (profiles with aliases and features, feature types and programmes looked
  up in its reference value sets).

Digital currency addresses are published as remarks ``Digital Currency Address - XBT <address>`` (CSV) or ids of
type ``Digital Currency Address - XBT`` (XML); :data:`CURRENCY_CHAINS` maps OFAC's currency codes to chains.

Address screening is exact after the address format's own case rule (:func:`address_key`): EVM hex addresses are
case-insensitive (EIP-55 mixed case is only a checksum), bech32/bech32m addresses are compared in lower case (the
format allows one case only, either), and everything else (base58, ...) is compared exactly, as written.

Name screening (onboarding) scores names with Jaro-Winkler similarity from rapidfuzz, on the whole name, on its
words sorted, and word by word (so a name without a middle name or in another order still matches), against every
primary name and alias; each hit explains itself (:class:`NameHit`).
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element

import msgspec
from defusedxml import ElementTree as SafeElementTree
from rapidfuzz import process
from rapidfuzz.distance import JaroWinkler

__all__ = [
    "CURRENCY_CHAINS",
    "AddressHit",
    "NameHit",
    "SdnEntry",
    "SdnFormatError",
    "SdnList",
    "address_key",
    "normalise_name",
    "parse_csv",
    "parse_xml",
]


class SdnFormatError(ValueError):
    """A file is not a well-formed SDN list in the format it claims to be (a download of garbage, say)."""


# OFAC's currency codes in "Digital Currency Address - <code>" and the chains an address listed under it lives on.
CURRENCY_CHAINS: Mapping[str, tuple[str, ...]] = {
    "XBT": ("bitcoin",),
    "BCH": ("bitcoin-cash",),
    "BSV": ("bitcoin-sv",),
    "BTG": ("bitcoin-gold",),
    "LTC": ("litecoin",),
    "DASH": ("dash",),
    "ZEC": ("zcash",),
    "XMR": ("monero",),
    "XVG": ("verge",),
    "ETH": ("ethereum",),
    "ETC": ("ethereum-classic",),
    "USDT": ("ethereum", "tron"),
    "USDC": ("ethereum", "tron", "solana"),
    "TRX": ("tron",),
    "ARB": ("arbitrum",),
    "BSC": ("bsc",),
    "SOL": ("solana",),
    "XRP": ("ripple",),
}

_ADDRESS_RE = re.compile(r"Digital Currency Address - ([A-Za-z0-9]+)\s+([^\s;]+)")
_EVM_RE = re.compile(r"0x[0-9a-fA-F]{40}")
_BECH32_DATA = frozenset("qpzry9x8gf2tvdw0s3jn54khce6mua7l")
_NULL = "-0-"
_IDENTIFIER_PREFIX = "Digital Currency Address - "


def address_key(address: str) -> str:
    """Return the form of ``address`` two listings must share to be the same address.

    EVM hex (``0x`` + 40 hex digits): lower case. Bech32/bech32m (``hrp1data``, one case throughout, data in the
    bech32 alphabet): lower case. Anything else (base58check, ...): exactly as written.
    """
    text = address.strip()
    if _EVM_RE.fullmatch(text):
        return text.lower()
    lower = text.lower()
    if text in (lower, text.upper()) and "1" in lower:
        hrp, _, data = lower.rpartition("1")
        if hrp and hrp.isascii() and len(data) >= 6 and set(data) <= _BECH32_DATA:
            return lower
    return text


def normalise_name(name: str) -> str:
    """Return ``name`` as names are compared: accents removed, upper case, punctuation as spaces, single spaces."""
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^0-9A-Z]+", " ", plain.upper()).split())


def _person_forms(name: str) -> list[str]:
    """The ways a listed name may be written: as published, and "Last, First" turned into "First Last"."""
    forms = [name]
    if "," in name:
        last, _, first = name.partition(",")
        if first.strip():
            forms.append(f"{first.strip()} {last.strip()}")
    return forms


class SdnEntry(msgspec.Struct, frozen=True):
    """One SDN entry: its id (``ent_num``/``uid``), name, type, programmes, aliases and digital currency addresses."""

    uid: int
    name: str
    sdn_type: str  # "individual", "entity" (empty in the CSV), "vessel", "aircraft"
    programs: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    addresses: tuple[tuple[str, str], ...] = ()  # (OFAC currency code, address as published)


class AddressHit(msgspec.Struct, frozen=True):
    """A screened address found on the list, with the entry that lists it."""

    address: str  # as published
    currency: str  # OFAC's code, such as "XBT"
    chains: tuple[str, ...]
    uid: int
    name: str
    programs: tuple[str, ...]

    def explain(self) -> str:
        """Say what was hit, in one line for a case or a log."""
        chains = "/".join(self.chains) or "unknown chain"
        programs = ", ".join(self.programs) or "no programme"
        return (
            f"{self.address} is listed as a {self.currency} ({chains}) address of SDN entry {self.uid} "
            f"{self.name!r} (programme {programs})"
        )


class NameHit(msgspec.Struct, frozen=True):
    """A name that scored at or above the threshold against an SDN name or alias, and how."""

    screened: str
    matched: str  # the listed name or alias that matched
    alias: bool
    score: float  # Jaro-Winkler similarity, 0 to 1
    threshold: float
    method: str  # "whole name", "sorted words" or "word by word"
    uid: int
    name: str  # the entry's primary name
    sdn_type: str
    programs: tuple[str, ...]

    def explain(self) -> str:
        """Say why this is a hit, in one line for a case or a log."""
        what = f"alias {self.matched!r} of " if self.alias else ""
        programs = ", ".join(self.programs) or "no programme"
        return (
            f"{self.screened!r} resembles {what}SDN entry {self.uid} {self.name!r} ({self.sdn_type or 'entity'}, "
            f"programme {programs}): Jaro-Winkler {self.score:.3f} >= {self.threshold:.3f} ({self.method})"
        )


@dataclass(frozen=True)
class _Name:
    entry: int  # index into SdnList.entries
    text: str  # as listed
    norm: str
    alias: bool


@dataclass
class SdnList:
    """A parsed SDN list with its address index and name index. Build it with :func:`parse_csv` or :func:`parse_xml`."""

    entries: tuple[SdnEntry, ...]
    published: str = ""
    _by_address: dict[str, list[AddressHit]] = field(default_factory=dict, init=False, repr=False)
    _names: list[_Name] = field(default_factory=list, init=False, repr=False)
    _sorted_forms: list[str] = field(default_factory=list, init=False, repr=False)
    _words: dict[str, set[int]] = field(default_factory=dict, init=False, repr=False)
    _word_list: list[str] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        for index, entry in enumerate(self.entries):
            for currency, address in entry.addresses:
                hit = AddressHit(
                    address, currency, CURRENCY_CHAINS.get(currency, ()), entry.uid, entry.name, entry.programs
                )
                self._by_address.setdefault(address_key(address), []).append(hit)
            listed = [(entry.name, False)] + [(alias, True) for alias in entry.aliases]
            for text, alias in listed:
                for form in _person_forms(text) if entry.sdn_type == "individual" else [text]:
                    norm = normalise_name(form)
                    if norm:
                        self._names.append(_Name(index, text, norm, alias))
        self._sorted_forms = [" ".join(sorted(name.norm.split())) for name in self._names]
        for position, name in enumerate(self._names):
            for word in set(name.norm.split()):
                self._words.setdefault(word, set()).add(position)
        self._word_list = list(self._words)

    @property
    def address_count(self) -> int:
        """How many distinct addresses (after :func:`address_key`) the list holds."""
        return len(self._by_address)

    def addresses(self) -> list[AddressHit]:
        """Every listed address, once per listing."""
        return [hit for hits in self._by_address.values() for hit in hits]

    def screen_address(self, address: str) -> list[AddressHit]:
        """Return the listings of ``address`` (empty if it is not listed)."""
        return list(self._by_address.get(address_key(address), ()))

    def screen_name(self, name: str, *, threshold: float, limit: int = 5) -> list[NameHit]:
        """Return the listed names (primary or alias) ``name`` resembles at ``threshold`` or above, best first.

        Three scores are tried and the best kept: the whole names, the names with their words sorted (another
        order), and word by word (each word of ``name`` against its most similar word of the listed name, averaged;
        for names of two words or more, so a missing middle name does not hide a match).
        """
        screened = normalise_name(name)
        if not screened:
            return []
        best: dict[int, tuple[float, str]] = {}

        def consider(position: int, score: float, method: str) -> None:
            if score >= threshold and score > best.get(position, (-1.0, ""))[0]:
                best[position] = (score, method)

        norms = [n.norm for n in self._names]
        for _match, score, position in process.extract(
            screened, norms, scorer=JaroWinkler.normalized_similarity, score_cutoff=threshold, limit=None
        ):
            consider(position, score, "whole name")
        words = screened.split()
        for _match, score, position in process.extract(
            " ".join(sorted(words)),
            self._sorted_forms,
            scorer=JaroWinkler.normalized_similarity,
            score_cutoff=threshold,
            limit=None,
        ):
            consider(position, score, "sorted words")
        if len(words) >= 2:
            for position, score in self._word_by_word(words, threshold).items():
                consider(position, score, "word by word")
        hits = []
        for position, (score, method) in best.items():
            listed = self._names[position]
            entry = self.entries[listed.entry]
            hits.append(
                NameHit(
                    name,
                    listed.text,
                    listed.alias,
                    round(score, 6),
                    threshold,
                    method,
                    entry.uid,
                    entry.name,
                    entry.sdn_type,
                    entry.programs,
                )
            )
        hits.sort(key=lambda h: (-h.score, h.uid, h.matched))
        unique: list[NameHit] = []
        seen: set[tuple[int, str]] = set()
        for hit in hits:
            if (hit.uid, hit.matched) not in seen:
                seen.add((hit.uid, hit.matched))
                unique.append(hit)
        return unique[:limit]

    def _word_by_word(self, words: Sequence[str], threshold: float) -> dict[int, float]:
        # each screened word's similar listed words (at a looser cutoff), then the names holding them
        similar: list[dict[str, float]] = []
        for word in words:
            found = process.extract(
                word, self._word_list, scorer=JaroWinkler.normalized_similarity, score_cutoff=0.7, limit=None
            )
            similar.append({match: score for match, score, _ in found})
        candidates: set[int] = set()
        for matches in similar:
            for match, score in matches.items():
                if score >= threshold:
                    candidates.update(self._words[match])
        scores: dict[int, float] = {}
        for position in candidates:
            listed_words = set(self._names[position].norm.split())
            total = sum(max((s for w, s in matches.items() if w in listed_words), default=0.0) for matches in similar)
            scores[position] = total / len(words)
        return scores


# -- CSV ------------------------------------------------------------------------------------------------------------


def _field(value: str) -> str:
    value = value.strip()
    return "" if value == _NULL else value


def _rows(text: str, columns: int, filename: str) -> Iterable[list[str]]:
    text = text.lstrip("\ufeff").replace("\x1a", "")  # a byte-order mark; the DOS end-of-file mark OFAC appends
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != columns or not row[0].strip().isdigit():
            shown = ",".join(row)[:80]
            raise SdnFormatError(
                f"{filename} line {number} is not an SDN record ({columns} columns starting with a number): {shown!r}"
            )
        yield row


def _programs(value: str) -> tuple[str, ...]:
    return tuple(p.strip(" []") for p in _field(value).split("] [") if p.strip(" []"))


def _addresses_in(remarks: str) -> tuple[tuple[str, str], ...]:
    # the last remark of an entry ends with a full stop, which is not part of an address listed there
    return tuple((currency.upper(), address.rstrip(".,")) for currency, address in _ADDRESS_RE.findall(remarks))


def parse_csv(sdn: str, alt: str = "", add: str = "", comments: str = "", *, published: str = "") -> SdnList:
    """Parse the legacy CSV files (as text) into an :class:`SdnList`.

    Raise :class:`SdnFormatError` if a file is not in its published layout, or if ``sdn`` holds no entry.
    ``add`` is checked for its layout only (addresses are not screened).
    """
    remarks: dict[int, str] = {}
    names: dict[int, tuple[str, str, tuple[str, ...]]] = {}
    for row in _rows(sdn, 12, "sdn.csv"):
        uid = int(row[0])
        names[uid] = (_field(row[1]), _field(row[2]), _programs(row[3]))
        remarks[uid] = _field(row[11])
    if not names:
        raise SdnFormatError("sdn.csv holds no entries")
    for row in _rows(comments, 2, "sdn_comments.csv"):
        uid = int(row[0])
        remarks[uid] = remarks.get(uid, "") + row[1].strip().removeprefix(_NULL)
    aliases: dict[int, list[str]] = {}
    for row in _rows(alt, 5, "alt.csv"):
        if _field(row[3]):
            aliases.setdefault(int(row[0]), []).append(_field(row[3]))
    for _row in _rows(add, 6, "add.csv"):
        pass
    entries = tuple(
        SdnEntry(uid, name, sdn_type, programs, tuple(aliases.get(uid, ())), _addresses_in(remarks.get(uid, "")))
        for uid, (name, sdn_type, programs) in sorted(names.items())
    )
    return SdnList(entries, published)


# -- XML ------------------------------------------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _child(element: Element, name: str) -> Element | None:
    for child in element:
        if _local(child.tag) == name:
            return child
    return None


def _text(element: Element, name: str) -> str:
    child = _child(element, name)
    return (child.text or "").strip() if child is not None else ""


def _children(element: Element, list_name: str, item_name: str) -> list[Element]:
    container = _child(element, list_name)
    return [c for c in container if _local(c.tag) == item_name] if container is not None else []


def _xml_name(element: Element) -> str:
    last, first = _text(element, "lastName"), _text(element, "firstName")
    return f"{last}, {first}" if first else last


def parse_xml(data: bytes) -> SdnList:
    """Parse ``sdn.xml`` (classic) or ``sdn_advanced.xml`` into an :class:`SdnList`, by the root element.

    Raise :class:`SdnFormatError` if it is neither. Parsed with defusedxml: a downloaded list cannot expand
    entities or reach outside the document.
    """
    try:
        root = SafeElementTree.fromstring(data)
    except Exception as exc:  # defusedxml raises ParseError and its own refusals (entities, DTDs)
        raise SdnFormatError(f"the XML list is not well-formed: {type(exc).__name__}: {exc}") from None
    if _local(root.tag) == "Sanctions":
        return _parse_advanced(root)
    if _local(root.tag) != "sdnList":
        raise SdnFormatError(f"the XML list's root element is <{_local(root.tag)}>, not <sdnList> or <Sanctions>")
    info = _child(root, "publshInformation") or _child(root, "publishInformation")
    published = _text(info, "Publish_Date") if info is not None else ""
    entries: list[SdnEntry] = []
    for element in root:
        if _local(element.tag) != "sdnEntry":
            continue
        uid_text = _text(element, "uid")
        if not uid_text.isdigit():
            raise SdnFormatError(f"an sdnEntry has uid {uid_text!r}, not a number")
        sdn_type = _text(element, "sdnType").lower()
        programs = tuple(p.text.strip() for p in _children(element, "programList", "program") if p.text)
        aliases = tuple(_xml_name(aka) for aka in _children(element, "akaList", "aka") if _xml_name(aka))
        addresses: list[tuple[str, str]] = []
        for ident in _children(element, "idList", "id"):
            kind, number = _text(ident, "idType"), _text(ident, "idNumber")
            if kind.startswith(_IDENTIFIER_PREFIX) and number:
                addresses.append((kind.removeprefix(_IDENTIFIER_PREFIX).strip().upper(), number))
        name = _xml_name(element)
        if sdn_type != "individual":
            name = " ".join(part for part in (_text(element, "firstName"), _text(element, "lastName")) if part)
        entries.append(
            SdnEntry(int(uid_text), name, "" if sdn_type == "entity" else sdn_type, programs, aliases, tuple(addresses))
        )
    if not entries:
        raise SdnFormatError("sdn.xml holds no sdnEntry elements")
    return SdnList(tuple(sorted(entries, key=lambda e: e.uid)), published)


# -- the advanced XML -----------------------------------------------------------------------------------------------


def _descendants(element: Element, name: str) -> list[Element]:
    return [e for e in element.iter() if _local(e.tag) == name]


def _alias_name(alias: Element) -> str:
    return " ".join(
        (part.text or "").strip() for part in _descendants(alias, "NamePartValue") if (part.text or "").strip()
    )


def _parse_advanced(root: Element) -> SdnList:
    """``sdn_advanced.xml``: parties (profiles with aliases and features) and sanctions entries naming programmes.

    Feature types and party (sub-)types are looked up in ``ReferenceValueSets``; a feature whose type reads
    "Digital Currency Address - <code>" holds an address in its ``VersionDetail``; a profile's programmes are the
    ``Comment`` of its sanctions entry's measures of the type "Program".
    """
    sets = next((e for e in root if _local(e.tag) == "ReferenceValueSets"), None)
    if sets is None:
        raise SdnFormatError("sdn_advanced.xml has no ReferenceValueSets")
    feature_types = {e.get("ID", ""): (e.text or "").strip() for e in _descendants(sets, "FeatureType")}
    party_types = {e.get("ID", ""): (e.text or "").strip().lower() for e in _descendants(sets, "PartyType")}
    sub_types: dict[str, str] = {}
    for sub_type in _descendants(sets, "PartySubType"):  # individuals' and entities' sub-type reads "Unknown"
        text = (sub_type.text or "").strip().lower()
        sub_types[sub_type.get("ID", "")] = (
            party_types.get(sub_type.get("PartyTypeID", ""), text) if text in ("", "unknown") else text
        )
    program_types = {e.get("ID") for e in _descendants(sets, "SanctionsType") if (e.text or "").strip() == "Program"}
    programs: dict[str, list[str]] = {}
    for entry in _descendants(root, "SanctionsEntry"):
        for measure in _descendants(entry, "SanctionsMeasure"):
            comment = _child(measure, "Comment")
            if measure.get("SanctionsTypeID") in program_types and comment is not None and (comment.text or "").strip():
                programs.setdefault(entry.get("ProfileID", ""), []).append((comment.text or "").strip())
    date = next((e for e in root if _local(e.tag) == "DateOfIssue"), None)
    published = "-".join(_text(date, part).zfill(2) for part in ("Year", "Month", "Day")) if date is not None else ""
    entries: list[SdnEntry] = []
    for profile in _descendants(root, "Profile"):
        profile_id = profile.get("ID", "")
        if not profile_id.isdigit():
            raise SdnFormatError(f"a Profile has ID {profile_id!r}, not a number")
        names: list[str] = []
        primary = ""
        for alias in _descendants(profile, "Alias"):
            name = _alias_name(alias)
            if not name:
                continue
            if alias.get("Primary") == "true" and not primary:
                primary = name
            elif name not in names:
                names.append(name)
        addresses: list[tuple[str, str]] = []
        for feature in _descendants(profile, "Feature"):
            kind = feature_types.get(feature.get("FeatureTypeID", ""), "")
            if kind.startswith(_IDENTIFIER_PREFIX):
                currency = kind.removeprefix(_IDENTIFIER_PREFIX).strip().upper()
                for detail in _descendants(feature, "VersionDetail"):
                    if (detail.text or "").strip():
                        addresses.append((currency, (detail.text or "").strip()))
        sdn_type = sub_types.get(profile.get("PartySubTypeID", ""), "")
        entries.append(
            SdnEntry(
                int(profile_id),
                primary or (names.pop(0) if names else ""),
                "" if sdn_type == "entity" else sdn_type,
                tuple(programs.get(profile_id, ())),
                tuple(names),
                tuple(addresses),
            )
        )
    if not entries:
        raise SdnFormatError("sdn_advanced.xml holds no Profile elements")
    return SdnList(tuple(sorted(entries, key=lambda e: e.uid)), published)
