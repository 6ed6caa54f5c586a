"""The ``travel_rule`` withdrawal stage in the kernel: stored (a wallet file from before it gains the column),
open, shown in the API and the portal, cancellable by the customer."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from exchange_framework.api.wallet import _WITHDRAW_STATUS
from exchange_framework.portal.wallet import CANCELLABLE, WITHDRAWAL_STAGES
from exchange_framework.wallet import WithdrawalStage
from exchange_framework.wallet.store import OPEN_STAGES, WalletStore

OLD_SCHEMA = """
CREATE TABLE withdrawals (
    id INTEGER PRIMARY KEY, account INTEGER NOT NULL, chain TEXT NOT NULL, asset TEXT NOT NULL,
    amount TEXT NOT NULL, fee TEXT NOT NULL DEFAULT '0', address TEXT NOT NULL, memo TEXT NOT NULL DEFAULT '',
    stage TEXT NOT NULL, txid TEXT NOT NULL DEFAULT '', confirmations INTEGER NOT NULL DEFAULT 0,
    reasons TEXT NOT NULL DEFAULT '[]', approvals TEXT NOT NULL DEFAULT '[]',
    required_approvals INTEGER NOT NULL DEFAULT 0, screened INTEGER NOT NULL DEFAULT 0,
    unsigned BLOB, signed BLOB, error TEXT NOT NULL DEFAULT '',
    requested_ns INTEGER NOT NULL, updated_ns INTEGER NOT NULL);
INSERT INTO withdrawals (account, chain, asset, amount, address, stage, requested_ns, updated_ns)
    VALUES (7, 'devchain', 'ETH', '1000', '0xabc', 'requested', 1, 1);
"""


def test_a_wallet_file_from_before_the_stage_gains_the_column(tmp_path: Path) -> None:
    path = tmp_path / "wallet.db"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
    store = WalletStore(path)
    row = store.withdrawal(1)
    assert row is not None and row.travel_rule == "" and row.amount == 1000
    assert (row.beneficiary_name, row.beneficiary_vasp) == ("", "")
    declared = store.insert_withdrawal(
        account=7, chain="devchain", asset="ETH", amount=5, address="0xdef", memo="", now_ns=3,
        beneficiary_name="Carol Clark", beneficiary_vasp="Bob VASP",
    )  # fmt: skip
    assert store.withdrawal(declared.id) == declared and declared.beneficiary_vasp == "Bob VASP"
    row.stage, row.travel_rule = WithdrawalStage.TRAVEL_RULE, "required"
    store.save(row, 2)
    store.close()
    again = WalletStore(path)  # opening twice adds nothing twice
    found = again.withdrawals(stages=[WithdrawalStage.TRAVEL_RULE])
    assert [(r.id, r.travel_rule) for r in found] == [(1, "required")]
    assert again.withdrawal(2) == declared
    again.close()


def test_the_stage_is_open_shown_and_cancellable() -> None:
    assert WithdrawalStage.TRAVEL_RULE in OPEN_STAGES
    assert _WITHDRAW_STATUS[WithdrawalStage.TRAVEL_RULE] == 2  # Binance's "awaiting approval"
    assert "travel rule" in WITHDRAWAL_STAGES[WithdrawalStage.TRAVEL_RULE]
    assert WithdrawalStage.TRAVEL_RULE in CANCELLABLE
