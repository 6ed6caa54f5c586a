"""SqlLedgerStore, on SQLite and on PostgreSQL (the ``ledger_url`` fixture): exact amounts of any size, idempotent
batches, and bad batches refused with nothing of them written, by the store and by the database itself."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from exchange_framework.bench.settlement_bench import build_entries, expected_balances
from exchange_framework.engine.market import AssetSpec
from exchange_framework.ledger.postings import EXTERNAL, FEES, Entry, Posting, UnbalancedEntry, available, held
from exchange_framework.ledger.store import LedgerError, Overdraft, SqlLedgerStore, UnknownAsset

ASSETS = {"BTC": AssetSpec("BTC", 8), "USDT": AssetSpec("USDT", 6), "ETH": AssetSpec("ETH", 18)}
TABLES = ("ledger_assets", "ledger_accounts", "ledger_balances", "ledger_entries", "ledger_postings", "ledger_cursors")

T = TypeVar("T")


def run(url: str, body: Callable[[SqlLedgerStore], Awaitable[T]], *, assets: bool = True) -> T:
    """``body(store)`` on a migrated store (with :data:`ASSETS` registered), in a fresh event loop."""

    async def main() -> T:
        store = SqlLedgerStore(url)
        try:
            await store.create_schema()
            if assets:
                await store.ensure_assets(ASSETS)
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


def deposit(seq: int, account: int, asset: str, amount: int) -> Entry:
    return Entry(seq, [Posting(EXTERNAL, asset, -amount), Posting(available(account), asset, amount)])


def withdraw(seq: int, account: int, asset: str, amount: int) -> Entry:
    return Entry(seq, [Posting(available(account), asset, -amount), Posting(EXTERNAL, asset, amount)])


def hold(seq: int, account: int, asset: str, amount: int) -> Entry:
    return Entry(seq, [Posting(available(account), asset, -amount), Posting(held(account), asset, amount)])


def trade(seq: int, seller: int, buyer: int, base: int, quote: int, fee: int) -> Entry:
    """``seller`` sells ``base`` BTC (from its hold) to ``buyer`` for ``quote`` USDT (from its hold) less ``fee``."""
    return Entry(
        seq,
        [
            Posting(held(buyer), "USDT", -quote),
            Posting(available(seller), "USDT", quote - fee),
            Posting(FEES, "USDT", fee),
            Posting(held(seller), "BTC", -base),
            Posting(available(buyer), "BTC", base),
        ],
    )


async def rows(store: SqlLedgerStore) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every ledger table, in a stable order."""
    out = {}
    async with store.engine.connect() as conn:
        for table in TABLES:
            out[table] = sorted((tuple(r) for r in await conn.execute(text(f"SELECT * FROM {table}"))), key=repr)
    return out


def nonzero(balances: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    return {key: amount for key, amount in balances.items() if amount}


def assert_zero_sum(balances: dict[tuple[str, str], int]) -> None:
    for asset in {a for _, a in balances}:
        assert sum(v for (_, a), v in balances.items() if a == asset) == 0, asset


# -- writing and reading ---------------------------------------------------------------------------------------------


def test_apply_writes_balances_history_and_the_mark(ledger_url: str) -> None:
    batch = [
        deposit(1, 1, "BTC", 5 * 10**8),
        deposit(2, 2, "USDT", 100_000 * 10**6),
        hold(3, 1, "BTC", 2 * 10**8),
        hold(4, 2, "USDT", 60_000 * 10**6),
        trade(5, seller=1, buyer=2, base=2 * 10**8, quote=60_000 * 10**6, fee=60 * 10**6),
    ]

    async def body(store: SqlLedgerStore) -> None:
        assert await store.last_seq() == 0
        assert await store.apply([]) == 0
        assert await store.apply(batch) == 5
        assert await store.last_seq() == 5
        assert await store.last_seq("someone-else") == 0
        balances = await store.balances()
        assert nonzero(balances) == {
            (EXTERNAL, "BTC"): -5 * 10**8,
            (EXTERNAL, "USDT"): -100_000 * 10**6,
            (available(1), "BTC"): 3 * 10**8,
            (available(1), "USDT"): 59_940 * 10**6,
            (available(2), "USDT"): 40_000 * 10**6,
            (available(2), "BTC"): 2 * 10**8,
            (FEES, "USDT"): 60 * 10**6,
        }
        assert_zero_sum(balances)
        assert await store.balances(account=available(1)) == {
            (available(1), "BTC"): 3 * 10**8,
            (available(1), "USDT"): 59_940 * 10**6,
        }
        assert nonzero(await store.balances(asset="BTC")) == {
            (EXTERNAL, "BTC"): -5 * 10**8,
            (available(1), "BTC"): 3 * 10**8,
            (available(2), "BTC"): 2 * 10**8,
        }
        assert await store.balances(account="customer:404:available") == {}
        assert [(seq, amount) for _, seq, amount in await store.history(available(1), "BTC")] == [
            (1, 5 * 10**8),
            (3, -2 * 10**8),
        ]
        assert [(seq, amount) for _, seq, amount in await store.history(held(2), "USDT")] == [
            (4, 60_000 * 10**6),
            (5, -60_000 * 10**6),
        ]
        assert await store.history(available(1), "ETH") == []

    run(ledger_url, body)


def test_history_pages_by_posting_id(ledger_url: str) -> None:
    async def body(store: SqlLedgerStore) -> None:
        await store.apply([deposit(seq, 1, "BTC", seq * 100) for seq in range(1, 8)])
        await store.apply([deposit(8, 2, "BTC", 1), deposit(9, 1, "USDT", 1), deposit(10, 1, "BTC", 1_000)])
        pages, after = [], 0
        while page := await store.history(available(1), "BTC", after_id=after, limit=3):
            pages.append(page)
            after = page[-1][0]
        assert [len(page) for page in pages] == [3, 3, 2]
        flat = [row for page in pages for row in page]
        assert [(seq, amount) for _, seq, amount in flat] == [(s, s * 100) for s in range(1, 8)] + [(10, 1_000)]
        ids = [posting_id for posting_id, _, _ in flat]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        assert await store.history(available(1), "BTC", after_id=ids[-1]) == []
        assert await store.history(available(1), "BTC", after_id=ids[2], limit=1) == [flat[3]]

    run(ledger_url, body)


def test_amounts_beyond_64_bits_round_trip_exactly(ledger_url: str) -> None:
    big = 10**30  # 10**12 ETH in wei: beyond 2**64 (and SQLite's INTEGER, and a double's 53 bits)
    batch = [
        deposit(1, 1, "ETH", big),
        deposit(2, 1, "ETH", 2**64 + 1),
        deposit(3, 2, "ETH", 2**63),
        withdraw(4, 1, "ETH", 1),  # big + 2**64: exact only if the sum is never a float
        hold(5, 2, "ETH", 2**63 - 1),
    ]

    async def body(store: SqlLedgerStore) -> None:
        await store.apply(batch)
        await store.apply([withdraw(6, 1, "ETH", big - 7)])
        balances = await store.balances(asset="ETH")
        assert balances[(available(1), "ETH")] == 2**64 + 7
        assert balances[(available(2), "ETH")] == 1
        assert balances[(held(2), "ETH")] == 2**63 - 1
        assert balances[(EXTERNAL, "ETH")] == -(2**64 + 7 + 2**63)
        assert all(type(v) is int for v in balances.values())
        assert_zero_sum(balances)
        history = [amount for _, _, amount in await store.history(available(1), "ETH")]
        assert history == [big, 2**64 + 1, -1, -(big - 7)]
        assert all(type(v) is int for v in history)
        assert [a for _, _, a in await store.history(EXTERNAL, "ETH")] == [-big, -(2**64 + 1), -(2**63), 1, big - 7]

    run(ledger_url, body)


def test_reapplying_entries_changes_nothing(ledger_url: str) -> None:
    first = [deposit(1, 1, "BTC", 1_000), hold(2, 1, "BTC", 400), deposit(3, 2, "USDT", 50_000)]
    overlapping = [*first[1:], hold(4, 2, "USDT", 30_000), trade(5, seller=1, buyer=2, base=400, quote=30_000, fee=30)]

    async def body(store: SqlLedgerStore) -> None:
        assert await store.apply(first) == 3
        once = await rows(store)
        assert await store.apply(first) == 3
        assert await store.apply(first[:1]) == 3
        assert await rows(store) == once
        assert await store.apply(overlapping) == 5
        after = await rows(store)
        assert await store.apply(overlapping) == 5
        assert await store.apply([*first, *overlapping[2:]]) == 5
        assert await rows(store) == after
        assert len(after["ledger_entries"]) == 5
        assert sorted(seq for _, seq, *_ in after["ledger_postings"]) == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 5, 5, 5]
        assert nonzero(await store.balances(asset="BTC")) == {
            (EXTERNAL, "BTC"): -1_000,
            (available(1), "BTC"): 600,
            (available(2), "BTC"): 400,
        }

    run(ledger_url, body)


# -- refused batches write nothing -------------------------------------------------------------------------------------

# Each bad batch starts with a good entry that creates a new account, so that a partial write would show.
GOOD = deposit(3, 7, "BTC", 1)
BAD_BATCHES: dict[str, tuple[list[Entry], type[Exception], str]] = {
    "unbalanced": (
        [GOOD, Entry(4, [Posting(available(1), "BTC", 5), Posting(EXTERNAL, "BTC", -4)])],
        UnbalancedEntry,
        "seq 4: postings do not balance",
    ),
    "float amount": (
        [GOOD, Entry(4, [Posting(available(1), "BTC", 1.5), Posting(EXTERNAL, "BTC", -1.5)])],  # type: ignore[arg-type]
        UnbalancedEntry,
        "not an integer",
    ),
    "overdraft": ([GOOD, withdraw(4, 1, "BTC", 101)], Overdraft, "customer:1:available would hold -1 BTC"),
    "overdraft by a sum of entries": (
        [GOOD, withdraw(4, 1, "BTC", 60), withdraw(5, 1, "BTC", 41)],
        Overdraft,
        "customer:1:available would hold -1 BTC",
    ),
    "overdraft refilled later in the batch": (
        [GOOD, withdraw(4, 1, "BTC", 150), deposit(5, 1, "BTC", 100)],
        Overdraft,
        "would hold -50 BTC .* at seq 4",
    ),
    "overdraft of a new account": ([GOOD, hold(4, 8, "USDT", 1)], Overdraft, "customer:8:available"),
    "overdraft of a held balance": (
        [GOOD, hold(4, 2, "USDT", 10), hold(5, 1, "BTC", 1), trade(6, seller=1, buyer=2, base=1, quote=11, fee=0)],
        Overdraft,
        "customer:2:held would hold -1 USDT",
    ),
    "unknown asset": ([GOOD, deposit(4, 1, "DOGE", 1)], UnknownAsset, "seq 4: unknown asset 'DOGE'"),
    "out of order": ([deposit(4, 1, "BTC", 1), GOOD], LedgerError, "ascending sequence order: 3 after 4"),
    "a repeated sequence number": ([GOOD, deposit(3, 1, "BTC", 1)], LedgerError, "ascending sequence order"),
    "a float sequence number": ([GOOD, deposit(4.0, 1, "BTC", 1)], LedgerError, "ints, not float"),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("case", list(BAD_BATCHES))
def test_a_bad_batch_is_refused_and_nothing_is_written(ledger_url: str, case: str) -> None:
    batch, error, message = BAD_BATCHES[case]

    async def body(store: SqlLedgerStore) -> None:
        await store.apply([deposit(1, 1, "BTC", 100), deposit(2, 2, "USDT", 100)])
        before = await rows(store)
        with pytest.raises(error, match=message) as refused:
            await store.apply(batch)
        assert isinstance(refused.value, LedgerError)  # one exception type to catch for every refusal
        assert await rows(store) == before
        assert await store.last_seq() == 2
        # the store still works, the new account included
        assert await store.apply([GOOD, deposit(4, 1, "BTC", 1)]) == 4
        assert nonzero(await store.balances(asset="BTC")) == {
            (EXTERNAL, "BTC"): -102,
            (available(1), "BTC"): 101,
            (available(7), "BTC"): 1,
        }

    run(ledger_url, body)


def test_non_customer_accounts_may_go_negative(ledger_url: str) -> None:
    async def body(store: SqlLedgerStore) -> None:
        await store.apply(
            [
                deposit(1, 1, "BTC", 10),
                Entry(2, [Posting(FEES, "BTC", -3), Posting(available(1), "BTC", 3)]),  # a maker rebate
                Entry(3, [Posting("custody:hot", "BTC", -20), Posting(EXTERNAL, "BTC", 20)]),
            ]
        )
        assert nonzero(await store.balances(asset="BTC")) == {
            (EXTERNAL, "BTC"): 10,
            (FEES, "BTC"): -3,
            (available(1), "BTC"): 13,
            ("custody:hot", "BTC"): -20,
        }

    run(ledger_url, body)


def test_the_database_refuses_a_negative_customer_balance_written_directly(ledger_url: str) -> None:
    """The CHECK constraint holds even for SQL that bypasses the store."""

    async def body(store: SqlLedgerStore) -> None:
        await store.apply([deposit(1, 1, "BTC", 100)])
        before = await rows(store)
        account_id = next(r[0] for r in before["ledger_accounts"] if r[1] == available(1))
        statements = [
            f"UPDATE ledger_balances SET balance = '-1' WHERE account_id = {account_id}",
            f"UPDATE ledger_balances SET balance = '-{10**30}' WHERE account_id = {account_id}",
            f"INSERT INTO ledger_balances (account_id, asset, customer, balance) VALUES ({account_id}, 'USDT', "
            "TRUE, '-5')",
        ]
        for statement in statements:
            with pytest.raises(IntegrityError, match="customer_balance_not_negative"):
                async with store.engine.begin() as conn:
                    await conn.execute(text(statement))
        assert await rows(store) == before
        async with store.engine.begin() as conn:  # a non-customer row may be negative
            await conn.execute(
                text(
                    f"INSERT INTO ledger_balances (account_id, asset, customer, balance) "
                    f"SELECT id, 'USDT', FALSE, '-{10**30}' FROM ledger_accounts WHERE code = '{EXTERNAL}'"
                )
            )
        assert (await store.balances(account=EXTERNAL))[(EXTERNAL, "USDT")] == -(10**30)

    run(ledger_url, body)


def test_accounts_of_a_refused_batch_are_not_remembered(ledger_url: str) -> None:
    """A refused batch's new accounts are rolled back; their ids must not stay in the store's cache.

    SQLite hands a rolled-back id out again, PostgreSQL skips it: either way a stale cache entry would post to the
    wrong account or to none.
    """

    async def body(store: SqlLedgerStore) -> None:
        await store.apply([deposit(1, 1, "BTC", 100)])
        with pytest.raises(Overdraft):
            await store.apply([deposit(2, 5, "BTC", 1), withdraw(3, 6, "BTC", 1)])
        assert available(5) not in store._account_ids and available(6) not in store._account_ids
        # customer:4 sorts first and takes whatever id comes next
        await store.apply([deposit(2, 4, "BTC", 40), deposit(3, 5, "BTC", 50), deposit(4, 6, "BTC", 60)])
        assert nonzero(await store.balances(asset="BTC")) == {
            (EXTERNAL, "BTC"): -250,
            (available(1), "BTC"): 100,
            (available(4), "BTC"): 40,
            (available(5), "BTC"): 50,
            (available(6), "BTC"): 60,
        }
        assert [a for _, _, a in await store.history(available(5), "BTC")] == [50]

    run(ledger_url, body)


# -- assets ----------------------------------------------------------------------------------------------------------


def test_ensure_assets_is_idempotent_and_decimals_never_change(ledger_url: str) -> None:
    async def body(store: SqlLedgerStore) -> None:
        await store.ensure_assets(ASSETS)
        await store.ensure_assets({"BTC": AssetSpec("BTC", 8), "SOL": AssetSpec("SOL", 9)})
        before = await rows(store)
        assert before["ledger_assets"] == sorted([("BTC", 8), ("ETH", 18), ("SOL", 9), ("USDT", 6)], key=repr)
        with pytest.raises(LedgerError, match="asset BTC has 8 decimals in the ledger but 6"):
            await store.ensure_assets({"ADA": AssetSpec("ADA", 6), "BTC": AssetSpec("BTC", 6)})
        assert await rows(store) == before
        assert await store.apply([deposit(1, 1, "SOL", 1)]) == 1
        with pytest.raises(UnknownAsset):
            await store.apply([deposit(2, 1, "ADA", 1)])

    run(ledger_url, body)


def test_a_second_store_on_the_same_database_knows_its_assets(ledger_url: str) -> None:
    run(ledger_url, lambda store: store.apply([deposit(1, 1, "BTC", 1)]))

    async def body(store: SqlLedgerStore) -> None:  # a restarted consumer that did not call ensure_assets
        assert await store.apply([deposit(2, 1, "BTC", 2), deposit(3, 2, "USDT", 3)]) == 3
        with pytest.raises(UnknownAsset):
            await store.apply([deposit(4, 1, "DOGE", 1)])
        assert nonzero(await store.balances(account=available(1))) == {(available(1), "BTC"): 3}

    run(ledger_url, body, assets=False)


# -- a realistic stream ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1_000, 37])
def test_an_order_flow_settles_to_the_engines_balances(ledger_url: str, batch: int) -> None:
    fund, flow, trades, engine = build_entries(150, seed=3)
    assert trades >= 150
    entries = fund + flow

    async def body(store: SqlLedgerStore) -> dict[str, list[tuple[Any, ...]]]:
        for begin in range(0, len(entries), batch):
            chunk = entries[begin : begin + batch]
            assert await store.apply(chunk) == chunk[-1].seq
        balances = await store.balances()
        assert {k: v for k, v in nonzero(balances).items() if k[0] != EXTERNAL} == expected_balances(engine)
        assert_zero_sum(balances)
        assert all(v >= 0 for (account, _), v in balances.items() if account.startswith("customer:"))
        postings = await rows(store)
        assert len(postings["ledger_postings"]) == sum(len(e.postings) for e in entries)
        return postings

    run(ledger_url, body)


def test_a_non_integer_timestamp_is_refused(ledger_url: str) -> None:
    import asyncio

    from exchange_framework.engine.market import AssetSpec
    from exchange_framework.ledger.postings import EXTERNAL, Entry, Posting, available
    from exchange_framework.ledger.store import LedgerError, SqlLedgerStore

    async def go() -> None:
        store = SqlLedgerStore(ledger_url)
        try:
            await store.create_schema()
            await store.ensure_assets({"BTC": AssetSpec("BTC", 8)})
            entry = Entry(1, [Posting(EXTERNAL, "BTC", -1), Posting(available(1), "BTC", 1)], 1.5)  # type: ignore[arg-type]
            with pytest.raises(LedgerError, match="timestamp"):
                await store.apply([entry])
            assert await store.last_seq() == 0
        finally:
            await store.close()

    asyncio.run(go())
