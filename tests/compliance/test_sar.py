"""SAR-style export: a structuring case from the real transaction monitor, the customer's KYC data and the operator's
``[compliance.filing]`` laid out in the FinCEN SAR's parts; critical fields the exchange does not know are listed as
missing, never invented; filing records the export's hash in the audit log; only compliance officers (and
administrators) reach the admin console's export."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree

import pytest
from click.testing import CliRunner, Result

from exchange_framework.audit import AuditLog
from exchange_framework.cli import main
from exchange_framework.compliance import CaseStore
from exchange_framework.compliance.monitoring import Monitor, MonitoringParams
from exchange_framework.compliance.monitoring.monitor import record_alert
from exchange_framework.config import ExchangeConfig, load_config
from exchange_framework.identity import IdentityStore
from exchange_framework.portal.kyc import KycReviews
from tests.admin.conftest import Admin, admin, admin_server, audit_entries  # noqa: F401  # fixtures
from tests.compliance.monitoring.events import MARKETS, Journal

USDT = 10**6
DAY = 24 * 60
FILING = """
[compliance.filing]
institution_name = "Example Exchange LLC"
ein = "123456789"
institution_type = "Money services business"
primary_regulator = "IRS"
address = "1 Main Street"
city = "Springfield"
state = "IL"
zip = "62701"
country = "US"
contact_office = "BSA Compliance"
contact_phone = "+1 217 555 0100"
"""


class Exchange:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.config: ExchangeConfig = load_config(path)
        data = self.config.journal_path().parent
        self.identity = IdentityStore(f"sqlite:///{data / 'identity.db'}")
        self.identity.create_schema()
        self.cases = CaseStore.for_config(self.config)

    def cli(self, *args: str) -> Result:
        return CliRunner().invoke(main, ["--config", str(self.path), "compliance", *args], catch_exceptions=False)

    def structuring_case(self) -> tuple[int, int, list[int]]:
        """A customer with KYC data who deposited 9,500, 9,700 and 9,900 USDT on three days (threshold 10,000)."""
        account = self.identity.create_user("structurer@example.com", "correct horse battery staple", country="US").id
        reviews = KycReviews(self.config.journal_path().parent / "kyc.db", self.identity)
        reviews.submit(
            account, full_name="John Quincy Doe", date_of_birth="1980-02-29", country="US", document_number="P1234567"
        )
        reviews.close()
        journal = Journal()
        seqs = [
            journal.deposit(day * DAY, account, amount * USDT, "USDT") for day, amount in enumerate((9500, 9700, 9900))
        ]
        monitor = Monitor(MARKETS, MonitoringParams(reporting_threshold={"USDT": 10_000 * USDT}))
        (alert,) = monitor.feed(journal.batches)
        assert record_alert(self.cases, alert)
        (case,) = self.cases.find(self.cases.list_cases()[0].subject, f"monitoring:{account}")
        return case.id, account, seqs

    def close(self) -> None:
        self.identity.close()


@pytest.fixture
def make(write_config: Callable[..., Path]) -> Callable[[str], Exchange]:
    made: list[Exchange] = []

    def build(extra: str = "") -> Exchange:
        exchange = Exchange(write_config(extra))
        made.append(exchange)
        return exchange

    yield build  # type: ignore[misc]
    for exchange in made:
        exchange.close()


def fields(report: dict[str, object]) -> dict[str, str]:
    parts = report["parts"]
    assert isinstance(parts, dict)
    return {f["name"]: f["value"] for part in parts.values() for f in part["fields"]}


def test_a_structuring_case_exports_with_the_sar_fields_it_knows(make: Callable[[str], Exchange]) -> None:
    ex = make(FILING)
    case_id, account, seqs = ex.structuring_case()
    result = ex.cli("case", "export-sar", str(case_id), "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    values = fields(report)
    assert set(report["parts"]) == {"I", "II", "III", "IV", "V"}
    # Part I: the subject from the KYC submission and the account
    assert values["subject_full_name"] == "John Quincy Doe"
    assert (values["subject_last_name"], values["subject_first_name"], values["subject_middle_name"]) == (
        "Doe", "John", "Quincy",
    )  # fmt: skip
    assert values["subject_date_of_birth"] == "1980-02-29" and values["subject_id_number"] == "P1234567"
    assert values["subject_email"] == "structurer@example.com" and values["subject_country"] == "US"
    assert values["subject_account_numbers"] == str(account) and values["subject_relationship"] == "Customer"
    assert values["subject_role"] == "Payee/receiver"  # deposits only
    # Part II: the activity from the alert's evidence
    assert values["activity_date_from"] == "2026-01-01" and values["activity_date_to"] == "2026-01-03"
    assert values["amount_by_asset"] == "29100 USDT"
    assert values["activity_categories"].startswith("Structuring: ")
    assert "virtual currency (USDT)" in values["instrument_types"]
    # Parts III and IV: the operator's settings
    assert values["institution_legal_name"] == values["filer_legal_name"] == "Example Exchange LLC"
    assert values["filer_tin"] == "123456789" and values["filer_contact_phone"] == "+1 217 555 0100"
    # Part V: a narrative of the facts, every movement by its journal sequence number
    narrative = values["narrative"]
    assert "John Quincy Doe" in narrative and f"case {case_id}" in narrative
    assert all(f"seq {seq}," in narrative for seq in seqs) and "9500 USDT" in narrative
    # what the exchange does not know is missing, not invented
    assert values["subject_tin"] == "" and values["subject_address"] == "" and values["amount_usd"] == ""
    assert not report["complete"]
    assert {m.split(" -- ")[0] for m in report["missing"]} == {
        "Part I: Address", "Part I: City", "Part I: ZIP/postal code", "Part I: TIN",
        "Part I: Form of identification: type", "Part II: Amount involved (US dollars, whole)",
    }  # fmt: skip
    assert "critical field(s) an officer must fill" in result.stderr
    # CSV and XML carry the same fields
    rows = list(csv.DictReader(io.StringIO(ex.cli("case", "export-sar", str(case_id), "--format", "csv").stdout)))
    assert {r["field"]: r["value"] for r in rows} == values
    assert {r["field"] for r in rows if r["missing"] == "yes"} >= {"subject_tin", "amount_usd"}
    root = ElementTree.fromstring(ex.cli("case", "export-sar", str(case_id), "--format", "xml").stdout.encode())
    assert root.get("complete") == "false"
    assert {f.get("name"): (f.text or "") for f in root.iter("Field")} == values


def test_without_filing_settings_the_institution_fields_are_listed_as_missing(
    make: Callable[[str], Exchange],
) -> None:
    ex = make("")
    case_id, _account, _seqs = ex.structuring_case()
    report = json.loads(ex.cli("case", "export-sar", str(case_id)).stdout)
    missing = "\n".join(report["missing"])
    for text in ("Part III: Legal name", "Part III: TIN", "Part IV: Legal name", "Part IV: TIN",
                 "Part IV: Designated contact office", "Part IV: Primary federal regulator"):  # fmt: skip
        assert text in missing
    assert "set [compliance.filing] institution_name" in missing and "set [compliance.filing] ein" in missing
    assert fields(report)["filer_legal_name"] == ""


def test_an_unknown_case_or_format_is_refused(make: Callable[[str], Exchange]) -> None:
    ex = make(FILING)
    assert ex.cli("case", "export-sar", "999").exit_code == 1
    assert ex.cli("case", "export-sar", "1", "--format", "pdf").exit_code == 2


def test_filing_records_the_exports_hash_on_the_case_and_in_the_audit_log(
    make: Callable[[str], Exchange], tmp_path: Path
) -> None:
    ex = make(FILING)
    case_id, _account, _seqs = ex.structuring_case()
    out = tmp_path / "sar.json"
    assert ex.cli("case", "export-sar", str(case_id), "-o", str(out)).exit_code == 0
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    result = ex.cli("case", "file", str(case_id), str(out), "--operator", "bsa@example.com", "--note", "BSA ID 31000")
    assert result.exit_code == 0, result.output
    case = ex.cases.get(case_id)
    assert case is not None and case.history[-1].action == f"filed json report sha256:{digest}"
    (entry,) = [e for e in AuditLog.from_config(ex.config).entries() if e.action == "compliance.case.file"]
    assert entry.details["report_sha256"] == digest and entry.actor == "bsa@example.com"
    # the report now shows its filing date
    assert fields(json.loads(ex.cli("case", "export-sar", str(case_id)).stdout))["filing_date"] != ""
    # assign and comment are recorded and audited too
    assert (
        ex.cli("case", "assign", str(case_id), "--operator", "lead@example.com", "--to", "bsa@example.com").exit_code
        == 0
    )
    assert (
        ex.cli("case", "comment", str(case_id), "--operator", "bsa@example.com", "--note", "called the bank").exit_code
        == 0
    )
    actions = [e.action for e in AuditLog.from_config(ex.config).entries()]
    assert actions[-2:] == ["compliance.case.assign", "compliance.case.comment"]
    assert ex.cli("case", str(case_id)).exit_code == 0  # `case ID` still shows it


def test_the_admin_console_export_is_for_compliance_officers_and_audited(admin: Admin) -> None:  # noqa: F811
    server = admin.server
    config = server.ctx.node.config
    cases = CaseStore.for_config(config)
    customer = admin.user("subject")
    journal = Journal()
    for day, amount in enumerate((9500, 9700, 9900)):
        journal.deposit(day * DAY, customer.account, amount * USDT, "USDT")
    (alert,) = Monitor(MARKETS, MonitoringParams(reporting_threshold={"USDT": 10_000 * USDT})).feed(journal.batches)
    record_alert(cases, alert)
    (case,) = cases.find(cases.list_cases(account=customer.account)[0].subject, f"monitoring:{customer.account}")
    for role in ("custody", "support", "user"):
        client = admin.as_role(role)
        refused = client.http.post(f"/admin/cases/{case.id}/sar", data={"csrf_token": client.token("/account"),
                                                                        "format": "json"})  # fmt: skip
        assert refused.status_code == 403, role
    officer = admin.as_role("compliance")
    page = officer.get("/admin/alerts")
    assert f'action="/admin/cases/{case.id}/sar"' in page.text
    answer = officer.http.post(
        f"/admin/cases/{case.id}/sar", data={"csrf_token": officer.token("/admin/alerts"), "format": "json"}
    )
    assert answer.status_code == 200 and "attachment" in answer.headers["content-disposition"]
    digest = hashlib.sha256(answer.content).hexdigest()
    assert answer.headers["x-report-sha256"] == digest
    assert fields(answer.json())["subject_account_numbers"] == str(customer.account)
    exported = [
        e for e in audit_entries(server) if e.action == "admin.case.export_sar" and e.target == f"case:{case.id}"
    ]
    assert exported and exported[-1].details["sha256"] == digest and exported[-1].details["role"] == "compliance"
    filed = officer.act(
        f"/admin/cases/{case.id}/file", {"format": "json", "note": "BSA ID 31000"}, page="/admin/alerts"
    )
    assert "is recorded as filed: report sha256" in filed.text
    entries = [e for e in audit_entries(server) if e.action == "admin.case.file" and e.target == f"case:{case.id}"]
    assert entries and len(entries[-1].details["sha256"]) == 64
