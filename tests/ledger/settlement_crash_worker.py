"""Crash-test worker: settle a journal into a ledger database in small batches until done or killed.

Run as ``python settlement_crash_worker.py JOURNAL URL BATCH_SIZE``. Like ``exchange ledger settle`` it first brings
the ledger's schema up to date (so a kill can land in the middle of the first migration too), then opens the
journal (demo config) read-only and settles it. It prints ``start MARK`` with the ledger's high-water mark once it
is ready, ``hwm MARK`` after every committed batch, and ``done MARK`` when the whole journal is settled. Every line
is flushed at once, so a line the parent reads is a batch that is committed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from exchange_framework.config import DEMO_CONFIG, load_config
from exchange_framework.ledger.settlement import Settlement
from exchange_framework.ledger.store import SqlLedgerStore
from exchange_framework.sequencer import FileJournal


def emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def settle(journal_path: Path, url: str, batch_size: int) -> int:
    config = load_config(DEMO_CONFIG)
    store = SqlLedgerStore(url)
    try:
        with FileJournal(journal_path, read_only=True) as journal:
            await store.create_schema()
            settlement = Settlement(config, store, journal, batch_size=batch_size)
            start = await store.last_seq()
            emit(f"start {start}")
            mark = await settlement.run(progress=lambda done, _total: emit(f"hwm {start + done}"))
            emit(f"done {mark}")
            return mark
    finally:
        await store.close()


def main(argv: list[str]) -> int:
    journal_path, url, batch_size = Path(argv[0]), argv[1], int(argv[2])
    asyncio.run(settle(journal_path, url, batch_size))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
