"""SAR-style reports: a compliance case laid out in the FinCEN SAR's five parts, for an officer to complete and file.

The report follows the FinCEN Suspicious Activity Report's structure (BSA E-Filing): Part I subject information,
Part II suspicious activity information, Part III the financial institution where the activity occurred, Part IV
the filing institution's contact information, Part V the narrative. It is filled only from what the exchange knows:

- the case (subject, account, decisions, history) and, for a monitoring case, its alerts' evidence (movements with
  their journal sequence numbers, times and amounts);
- the customer's identity data: the KYC submission (legal name, date of birth, document number and country), the
  data onboarding screening used, the account's e-mail and country of residence;
- the operator's settings, ``[compliance.filing]`` (institution name, EIN, type, regulator, address, contact).

Nothing is invented: a field the exchange does not know stays empty, and :attr:`SarReport.missing` lists every
critical field (the form's critical items) an officer must fill, with where the value would come from. Values the
exchange derived rather than recorded (a name split into first and last, the subject's role from the movements)
say so in their ``source``. Amounts are reported per asset in the asset's units: the exchange keeps no US dollar
rate, so the amount in dollars is left to the officer. The narrative is a draft built from the facts above.

Formats: JSON (the report as a structure), CSV (one row per field), XML (the same fields, one element per part; a
readable layout of our own, not FinCEN's batch XML schema). :func:`report_sha256` is what filing records.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree

import msgspec

from exchange_framework.compliance.cases import FROZEN_REASON, Case, Subject, assignee, filings
from exchange_framework.compliance.monitoring.rules import Movement, MovementKind
from exchange_framework.money import format_atomic

if TYPE_CHECKING:
    from exchange_framework.config import ExchangeConfig
    from exchange_framework.identity import IdentityStore

__all__ = [
    "FORMATS",
    "PARTS",
    "CustomerFacts",
    "SarField",
    "SarReport",
    "build_report",
    "customer_facts",
    "render",
    "report_sha256",
]

FORMATS = ("json", "csv", "xml")
PARTS = {
    "I": "Subject information",
    "II": "Suspicious activity information",
    "III": "Information about the financial institution where the activity occurred",
    "IV": "Filing institution contact information",
    "V": "Narrative",
}

# Typologies of the transaction monitor and the SAR's suspicious activity categories they fall under.
_CATEGORIES = {
    "structuring": ("Structuring", "transactions just below the reporting threshold"),
    "rapid_movement": ("Money laundering", "funds moved in and out rapidly with no apparent purpose"),
    "layering": ("Money laundering", "funds passed through several accounts before withdrawal"),
    "fan_in": ("Money laundering", "many unrelated sources into one account"),
    "fan_out": ("Money laundering", "one account paying out to many destinations"),
}


class CustomerFacts(msgspec.Struct, frozen=True):
    """What the exchange knows about the subject (empty strings where it knows nothing)."""

    full_name: str = ""
    date_of_birth: str = ""  # YYYY-MM-DD
    document_number: str = ""
    document_country: str = ""
    email: str = ""
    residence_country: str = ""
    source: str = ""  # where the name came from ("KYC submission 12", "onboarding screening", ...)


class SarField(msgspec.Struct, frozen=True):
    """One field of the report: its part, name, value (empty: unknown), whether the form treats it as critical,
    where the value came from, and for an empty critical field what the officer should do."""

    part: str
    name: str
    label: str
    value: str = ""
    critical: bool = False
    source: str = ""
    hint: str = ""


class SarReport(msgspec.Struct, frozen=True):
    """A SAR-style report of one case. ``missing`` names the critical fields still empty (``part:name``)."""

    case_id: int
    generated_at: str  # ISO 8601, UTC
    fields: tuple[SarField, ...]
    missing: tuple[str, ...]
    narrative: str

    def value(self, name: str) -> str:
        """The value of the field called ``name`` (empty if unknown)."""
        return next((f.value for f in self.fields if f.name == name), "")

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data: metadata, the parts with their fields, and what is missing."""
        parts: dict[str, Any] = {}
        for key, title in PARTS.items():
            parts[key] = {
                "title": title,
                "fields": [msgspec.to_builtins(f) for f in self.fields if f.part == key],
            }
        return {
            "report": "SAR-style report (FinCEN SAR structure)",
            "case": self.case_id,
            "generated_at": self.generated_at,
            "complete": not self.missing,
            "missing": list(self.missing),
            "parts": parts,
        }


def _date(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d")


def _when(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _movements(case: Case) -> list[Movement]:
    text = case.details.get("evidence", "")
    if not text:
        return []
    try:
        return list(msgspec.json.decode(text, type=list[Movement]))
    except msgspec.DecodeError:
        return []


def _rules(case: Case) -> list[str]:
    found: list[str] = []
    for decision in case.decisions:
        for reason in decision.reasons:
            if reason.startswith("monitoring: "):
                rule = reason.removeprefix("monitoring: ").partition(":")[0]
                if rule not in found:
                    found.append(rule)
    return found


def _split_name(full_name: str) -> tuple[str, str, str]:
    words = full_name.split()
    if len(words) < 2:
        return (full_name, "", "")
    return (words[-1], words[0], " ".join(words[1:-1]))


class _Builder:
    def __init__(self) -> None:
        self.fields: list[SarField] = []

    def add(
        self, part: str, name: str, label: str, value: str = "", *, critical: bool = False, source: str = "",
        hint: str = "",
    ) -> None:  # fmt: skip
        self.fields.append(SarField(part, name, label, value, critical, source if value else "", "" if value else hint))


def build_report(
    case: Case,
    *,
    config: ExchangeConfig,
    customer: CustomerFacts,
    now_ns: int,
) -> SarReport:
    """Lay ``case`` out as a SAR-style report from the case, its evidence, ``customer`` and ``[compliance.filing]``."""
    decimals = {symbol: asset.decimals for symbol, asset in config.assets.items()}
    filing = config.compliance.filing
    b = _Builder()
    kyc = customer.source or "KYC data"
    # -- Part I: subject
    last, first, middle = _split_name(customer.full_name)
    split = f"split from the legal name in {kyc}: check"
    no_kyc = "the customer has given no identity data: complete KYC or fill from the officer's own records"
    b.add("I", "subject_full_name", "Legal name as recorded", customer.full_name, source=kyc)
    b.add("I", "subject_last_name", "Individual's last name or entity's legal name", last, critical=True,
          source=split if first else kyc, hint=no_kyc)  # fmt: skip
    b.add("I", "subject_first_name", "First name", first, critical=True, source=split,
          hint="not known: fill it, or mark unknown (an entity has none)")  # fmt: skip
    b.add("I", "subject_middle_name", "Middle name", middle, source=split)
    b.add("I", "subject_alternate_name", "Alternate name (AKA/DBA)")
    b.add("I", "subject_occupation", "Occupation or type of business")
    hint_address = "the exchange does not collect postal addresses: take it from the KYC documents"
    b.add("I", "subject_address", "Address", critical=True, hint=hint_address)
    b.add("I", "subject_city", "City", critical=True, hint=hint_address)
    b.add("I", "subject_state", "State")
    b.add("I", "subject_zip", "ZIP/postal code", critical=True, hint=hint_address)
    b.add("I", "subject_country", "Country", customer.residence_country, critical=True,
          source="country of residence given at sign-up", hint=hint_address)  # fmt: skip
    b.add("I", "subject_tin", "TIN", critical=True, hint="the exchange does not collect TINs: fill it or mark unknown")
    b.add("I", "subject_tin_type", "TIN type")
    b.add("I", "subject_id_type", "Form of identification: type", critical=True,
          hint="the KYC form records the number, not the document type: check the documents")  # fmt: skip
    b.add("I", "subject_id_number", "Form of identification: number", customer.document_number, critical=True,
          source=kyc, hint=no_kyc)  # fmt: skip
    b.add("I", "subject_id_country", "Form of identification: issuing country", customer.document_country,
          source=kyc)  # fmt: skip
    b.add("I", "subject_date_of_birth", "Date of birth", customer.date_of_birth, critical=True, source=kyc,
          hint=no_kyc)  # fmt: skip
    b.add("I", "subject_phone", "Phone number")
    b.add("I", "subject_email", "E-mail address", customer.email, source="the account's login e-mail")
    b.add("I", "subject_relationship", "Relationship to the institution", "Customer" if case.account > 0 else "",
          source="holds an exchange account")  # fmt: skip
    b.add("I", "subject_account_numbers", "Account number(s) affected", str(case.account) if case.account > 0 else "",
          critical=True, source="exchange account number", hint="no account: say so in the narrative")  # fmt: skip
    movements = [m for m in _movements(case) if m.account == case.account]
    kinds = {m.kind for m in movements}
    if case.subject is Subject.DEPOSIT:
        kinds.add(MovementKind.DEPOSIT)
    if case.subject is Subject.WITHDRAWAL:
        kinds.add(MovementKind.WITHDRAWAL)
    sends = bool(kinds & {MovementKind.WITHDRAWAL, MovementKind.TRANSFER_OUT})
    receives = bool(kinds & {MovementKind.DEPOSIT, MovementKind.TRANSFER_IN})
    role = "Both purchaser/sender and payee/receiver" if sends and receives else (
        "Purchaser/sender" if sends else ("Payee/receiver" if receives else ""))  # fmt: skip
    b.add("I", "subject_role", "Subject's role in the activity", role,
          source="derived from the movements' direction: check", hint="state the role")  # fmt: skip
    # -- Part II: activity
    if movements:
        start, end = min(m.ts_ns for m in movements), max(m.ts_ns for m in movements)
        period_source = "the alerts' evidence (journal times)"
    else:
        start, end = case.opened_ns, case.updated_ns
        period_source = "when screening saw the activity (case opened / last screened)"
    b.add("II", "activity_date_from", "Date of suspicious activity: from", _date(start), critical=True,
          source=period_source)  # fmt: skip
    b.add("II", "activity_date_to", "Date of suspicious activity: to", _date(end), critical=True,
          source=period_source)  # fmt: skip
    totals: dict[str, int] = {}
    for m in movements:
        totals[m.asset] = totals.get(m.asset, 0) + m.amount
    if not movements and case.details.get("amount", "").isdigit() and case.details.get("asset"):
        totals[case.details["asset"]] = int(case.details["amount"])
    amounts = "; ".join(
        f"{format_atomic(total, decimals.get(asset, 0), trim=True)} {asset}" for asset, total in sorted(totals.items())
    )
    b.add("II", "amount_by_asset", "Amount involved, per asset", amounts, source="sum of the movements involved")
    b.add("II", "amount_usd", "Amount involved (US dollars, whole)", critical=True,
          hint="convert the amounts per asset at the activity dates' rates (the exchange keeps no USD rate), or mark "
          "the amount unknown")  # fmt: skip
    b.add("II", "cumulative_amount_usd", "Cumulative amount (continuing activity reports)")
    categories: list[str] = []
    for rule in _rules(case):
        category, subtype = _CATEGORIES.get(rule, ("Other suspicious activities", rule))
        categories.append(f"{category}: {subtype}")
    if any(r.startswith(FROZEN_REASON) for d in case.decisions for r in d.reasons):
        categories.append("Other suspicious activities: sanctions list match (see the narrative)")
    b.add("II", "activity_categories", "Suspicious activity categories and subtypes", "; ".join(categories),
          critical=True, source="the case's alerts and screening decisions: check",
          hint="choose the categories (structuring, terrorist financing, fraud, money laundering, ...)")  # fmt: skip
    assets = sorted(totals) or ([case.details["asset"]] if case.details.get("asset") else [])
    b.add("II", "product_types", "Product types involved", "Other: virtual currency exchange account",
          source="this exchange's business")  # fmt: skip
    b.add(
        "II",
        "instrument_types",
        "Instrument types / payment mechanisms involved",
        "Other: virtual currency" + (f" ({', '.join(assets)})" if assets else ""),
        source="the assets involved",
    )
    addresses = sorted({v for k, v in case.details.items() if k in {"address", "source_addresses"} and v})
    b.add("II", "blockchain_addresses", "Virtual currency addresses involved", "; ".join(addresses),
          source="the screened deposit sources / withdrawal destination")  # fmt: skip
    b.add("II", "ip_addresses", "IP addresses")
    # -- Part III and IV: the institution (where the activity occurred, and filing)
    conf = "[compliance.filing]"
    for part, prefix in (("III", "institution"), ("IV", "filer")):
        b.add(part, f"{prefix}_legal_name", "Legal name", filing.institution_name or "", critical=True, source=conf,
              hint=f"set {conf} institution_name")  # fmt: skip
        b.add(part, f"{prefix}_alternate_name", "Alternate name", filing.alternate_name or "", source=conf)
        b.add(part, f"{prefix}_tin", "TIN", filing.ein or "", critical=True, source=conf, hint=f"set {conf} ein")
        b.add(part, f"{prefix}_tin_type", "TIN type", filing.tin_type if filing.ein else "", source=conf)
        b.add(part, f"{prefix}_type", "Type of financial institution", filing.institution_type or "", critical=True,
              source=conf, hint=f"set {conf} institution_type (e.g. \"Money services business\")")  # fmt: skip
        b.add(part, f"{prefix}_regulator", "Primary federal regulator", filing.primary_regulator or "",
              critical=True, source=conf, hint=f"set {conf} primary_regulator (e.g. \"IRS\")")  # fmt: skip
        b.add(part, f"{prefix}_registration", "Identification number (e.g. MSB registration)",
              filing.registration_number or "", source=conf)  # fmt: skip
        for field, label in (("address", "Address"), ("city", "City"), ("zip", "ZIP/postal code"),
                             ("country", "Country")):  # fmt: skip
            b.add(part, f"{prefix}_{field}", label, getattr(filing, field) or "", critical=True, source=conf,
                  hint=f"set {conf} {field}")  # fmt: skip
        b.add(part, f"{prefix}_state", "State", filing.state or "", source=conf)
    b.add("III", "institution_internal_file", "Internal control/file number", f"case {case.id}", source="the case")
    b.add("IV", "filer_internal_file", "Internal control/file number", f"case {case.id}", source="the case")
    b.add("IV", "filer_contact_office", "Designated contact office", filing.contact_office or "", critical=True,
          source=conf, hint=f"set {conf} contact_office")  # fmt: skip
    b.add("IV", "filer_contact_phone", "Designated contact office phone", filing.contact_phone or "", critical=True,
          source=conf, hint=f"set {conf} contact_phone")  # fmt: skip
    filed = filings(case)
    b.add("IV", "filing_date", "Date filed", _date(filed[-1][0]) if filed else "",
          source="the case's filing record", hint="filled when the officer records the filing")  # fmt: skip
    # -- Part V: narrative
    narrative = _narrative(case, customer, movements, decimals, categories)
    b.add("V", "narrative", "Narrative (draft from the case's facts: review before filing)", narrative, critical=True,
          source="generated from the case, its evidence and history")  # fmt: skip
    missing = tuple(f"Part {f.part}: {f.label} -- {f.hint}" for f in b.fields if f.critical and not f.value)
    return SarReport(case.id, datetime.fromtimestamp(now_ns / 1e9, UTC).isoformat(), tuple(b.fields), missing,
                     narrative)  # fmt: skip


def _narrative(
    case: Case,
    customer: CustomerFacts,
    movements: Sequence[Movement],
    decimals: Mapping[str, int],
    categories: Sequence[str],
) -> str:
    who = customer.full_name or "a customer who has given no legal name"
    lines = [
        f"This report concerns {who} (exchange account {case.account}), compliance case {case.id}: a "
        f"{case.subject.value} case opened {_when(case.opened_ns)}, currently {case.status.value}"
        + (f" ({case.resolution.value} by {case.resolved_by})" if case.resolution else "")
        + ".",
    ]
    if categories:
        lines.append("Activity: " + "; ".join(categories) + ".")
    if movements:
        lines.append("Movements (journal sequence, time, kind, amount, counterparty or reference):")
        for m in sorted(movements, key=lambda m: (m.ts_ns, m.seq)):
            amount = f"{format_atomic(m.amount, decimals.get(m.asset, 0), trim=True)} {m.asset}"
            other = m.party or m.reference or (f"account {m.counterparty}" if m.counterparty else "")
            lines.append(f"- seq {m.seq}, {_when(m.ts_ns)}, {m.kind.value}, {amount}" + (f", {other}" if other else ""))
    facts = {k: v for k, v in case.details.items() if k not in {"evidence"} and v}
    if facts:
        lines.append("Case facts: " + "; ".join(f"{k} {v}" for k, v in sorted(facts.items())) + ".")
    lines.append("Screening and monitoring decisions:")
    for decision in case.decisions:
        lines.append(
            f"- {_when(decision.at_ns)} {decision.provider}: {decision.outcome}: " + " | ".join(decision.reasons)
        )
    lines.append("Case history:")
    for event in case.history:
        lines.append(
            f"- {_when(event.at_ns)} {event.actor}: {event.action}" + (f" ({event.note})" if event.note else "")
        )
    officer = assignee(case)
    if officer:
        lines.append(f"Assigned officer: {officer}.")
    lines.append("Funds: frozen and held at the exchange." if case.frozen else "Funds: not frozen by this case.")
    return "\n".join(lines)


def render(report: SarReport, fmt: str) -> bytes:
    """The report in ``fmt`` (json, csv or xml), as bytes (what filing hashes)."""
    if fmt == "json":
        return (json.dumps(report.as_dict(), indent=2, ensure_ascii=False) + "\n").encode()
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["part", "field", "label", "value", "critical", "missing", "source", "hint"])
        for f in report.fields:
            missing = "yes" if f.critical and not f.value else ""
            writer.writerow([f.part, f.name, f.label, f.value, "yes" if f.critical else "", missing, f.source, f.hint])
        return out.getvalue().encode()
    if fmt == "xml":
        root = ElementTree.Element(
            "SarStyleReport", {"case": str(report.case_id), "generated": report.generated_at,
                               "complete": "true" if not report.missing else "false"},
        )  # fmt: skip
        for key, title in PARTS.items():
            part = ElementTree.SubElement(root, "Part", {"number": key, "title": title})
            for f in report.fields:
                if f.part != key:
                    continue
                attributes = {"name": f.name, "label": f.label}
                if f.critical:
                    attributes["critical"] = "true"
                if f.critical and not f.value:
                    attributes["missing"] = "true"
                if f.source:
                    attributes["source"] = f.source
                if f.hint:
                    attributes["hint"] = f.hint
                ElementTree.SubElement(part, "Field", attributes).text = f.value
        todo = ElementTree.SubElement(root, "Missing")
        for item in report.missing:
            ElementTree.SubElement(todo, "Item").text = item
        ElementTree.indent(root)
        data: bytes = ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
        return data + b"\n"
    raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")


def report_sha256(data: bytes) -> str:
    """The SHA-256 (hex) of an exported report: what filing records in the audit log."""
    return hashlib.sha256(data).hexdigest()


def customer_facts(config: ExchangeConfig, account: int, identity: IdentityStore) -> CustomerFacts:
    """What the exchange knows about ``account``'s holder: the newest KYC submission, else the identity data
    onboarding screening last used, and the account's e-mail and country of residence."""
    from exchange_framework.compliance.onboarding import OnboardingGate
    from exchange_framework.portal.kyc import KycReviews  # the manual KYC store (imported on use: it is the portal's)

    data_dir = config.journal_path().parent
    user = identity.user(account) if account > 0 else None
    email, residence = (user.email, user.country) if user is not None else ("", "")
    reviews = KycReviews(data_dir / "kyc.db", identity)
    try:
        submission = reviews.latest(account)
    finally:
        reviews.close()
    if submission is not None:
        return CustomerFacts(
            submission.full_name, submission.date_of_birth, submission.document_number, submission.country, email,
            residence, f"KYC submission {submission.id} ({submission.status})",
        )  # fmt: skip
    applicant = OnboardingGate(config).applicant(account)
    if applicant is not None:
        return CustomerFacts(
            applicant.full_name, applicant.date_of_birth, "", applicant.country, email or applicant.email, residence,
            f"identity data screened at onboarding ({applicant.source})",
        )  # fmt: skip
    return CustomerFacts(email=email, residence_country=residence)
