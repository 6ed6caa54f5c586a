"""The admin custody page reconciles the ledger's omnibus accounts with the wallet's addresses on chain, account by
account: a deposit swept into the hot wallet agrees to the atomic unit; coins sent to the hot wallet behind the
ledger's back show as a difference."""

from __future__ import annotations

import re

from exchange_devchain.tx import address_of

from tests.admin.test_funds import Operator, chain_exchange, operator
from tests.api.conftest import Exchange
from tests.api.test_wallet_api import until

__all__ = ["chain_exchange", "operator"]

ETH = 10**18


def recon_rows(html: str) -> dict[tuple[str, str], tuple[str, str, str, bool]]:
    rows = {}
    for cls, body in re.findall(r'<tr class="recon-row( break)?">(.*?)</tr>', html, flags=re.S):
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", body, flags=re.S)]
        rows[(cells[0], cells[1])] = (cells[2], cells[3], cells[4], cls == "")
    return rows


def test_custody_page_reconciles_sweeps_and_shows_a_transfer_behind_the_ledgers_back(
    chain_exchange: Exchange, operator: Operator
) -> None:
    ex = chain_exchange
    wallet = ex.server.ctx.extras["wallet"]
    chain = wallet.adapters["devchain"].node
    wallet.sweeper.scan_seconds = 0  # look for deposits to sweep every round, not every 30 s
    address, _ = wallet.deposit_address(ex.alice.account, "ETH")
    chain.faucet(address, 2 * ETH)
    hot = address_of(wallet.hot_public_key)

    def swept() -> bool:
        chain.mine(1)
        done = wallet.custody_store.sweeps(stages=["completed"])
        return bool(done) and chain.balance(address, "ETH") == 0

    until(swept)
    assert chain.balance(hot, "ETH") == 2 * ETH - 1_000
    client = operator(ex, "custody-recon@example.com", "custody")

    def settled() -> bool:
        rows = recon_rows(client.get("/admin/custody").text)
        return rows.get(("omnibus:hot:devchain", "ETH"), ("", "", "", False))[0] == "1.999999999999999000"

    until(settled)
    rows = recon_rows(client.get("/admin/custody").text)
    assert rows[("omnibus:hot:devchain", "ETH")] == (
        "1.999999999999999000",
        "1.999999999999999000",
        "0.000000000000000000",
        True,
    )
    assert rows[("omnibus:deposit:devchain", "ETH")][1:] == ("0.000000000000000000", "0.000000000000000000", True)

    chain.faucet(hot, 3 * ETH)  # coins the ledger knows nothing about
    chain.mine(1)
    rows = recon_rows(client.get("/admin/custody").text)
    assert rows[("omnibus:hot:devchain", "ETH")] == (
        "1.999999999999999000",
        "4.999999999999999000",
        "3.000000000000000000",
        False,
    )
