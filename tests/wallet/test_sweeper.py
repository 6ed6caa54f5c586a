"""Sweeping deposit addresses into the hot wallet on the dev chain, through a real shard: only credited coins move,
each sweep is recorded on the ledger once, and a crash at any stage neither loses nor doubles a sweep."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import coincurve
import pytest
from bip_utils import Bip32Slip10Secp256k1
from exchange_devchain import DevChain, DevChainAdapter
from exchange_devchain.plugin import DEV_XPRV, DEV_XPUB
from exchange_devchain.tx import address_of

from exchange_framework.config import parse_config
from exchange_framework.engine.commands import Command, MoveCustody, decode_command
from exchange_framework.engine.events import Event
from exchange_framework.funding import DepositStore, DepositTracker, Stage
from exchange_framework.interfaces import Decision, DepositRequest
from exchange_framework.sequencer import FileJournal
from exchange_framework.shard import Shard
from exchange_framework.wallet.custody import CustodyStore, SweepStage
from exchange_framework.wallet.deposit_keys import DepositKeys, deposit_key_id, deposit_roots_from_env
from exchange_framework.wallet.sweeper import DepositSweeper

pytestmark = pytest.mark.anyio

CONFIG = """
[brand]
name = "Sweeps"
[assets.DEV]
decimals = 8
[assets.DUSD]
decimals = 6
"""
FEE = 1_000
DEPOSIT = "omnibus:deposit:devchain"
HOT = "omnibus:hot:devchain"


@dataclass
class Rig:
    chain: DevChain
    adapter: DevChainAdapter
    shard: Shard
    journal: Path
    deposits: DepositStore
    custody: CustodyStore
    tracker: DepositTracker
    hot: str
    held_accounts: set[int]

    def sweeper(self) -> DepositSweeper:
        """A new sweeper over the same stores (as after a restart)."""

        async def submit(command: Command) -> Sequence[Event]:
            return self.shard.execute([command])

        return DepositSweeper(
            adapters={"devchain": self.adapter},
            deposit_store=self.deposits,
            custody_store=self.custody,
            signer=DepositKeys({"devchain": self.adapter}, {"devchain": DEV_XPRV}),
            submit=submit,
            assets=["DEV", "DUSD"],
        )

    def moves(self) -> list[MoveCustody]:
        with FileJournal(self.journal, read_only=True) as journal:
            commands = [decode_command(r.payload) for r in journal.read()]
        return [c for c in commands if isinstance(c, MoveCustody)]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    config = parse_config(CONFIG, root=tmp_path)
    chain = DevChain(tmp_path / "chain", min_fee=FEE)
    adapter = DevChainAdapter(chain, xpub=DEV_XPUB, required_confirmations=2, dev_deposit_xprv=DEV_XPRV)
    journal = tmp_path / "commands.journal"
    held: set[int] = set()

    def screen(request: DepositRequest) -> Decision:
        return Decision.hold("review") if request.account in held else Decision.allow()

    deposits = DepositStore(tmp_path / "deposits.db")
    custody = CustodyStore(tmp_path / "custody.db")
    hot = address_of(coincurve.PrivateKey().public_key.format())
    custody.add_address("devchain", "hot", hot)
    with Shard(config, journal=FileJournal(journal, fsync=False), snapshot_dir=tmp_path / "snap") as shard:
        tracker = DepositTracker(adapter, deposits, submit=lambda c: shard.execute([c]), screen=screen, start_height=0)
        yield Rig(chain, adapter, shard, journal, deposits, custody, tracker, hot, held)
    deposits.close()
    custody.close()


def mine(rig: Rig, blocks: int) -> None:
    """Mine, and let the deposit tracker follow (its thread does in the running wallet)."""
    rig.chain.mine(blocks)
    rig.tracker.poll()


def deposit(rig: Rig, account: int, amount: int, asset: str = "DEV") -> str:
    address = rig.tracker.deposit_address(account).address
    rig.chain.faucet(address, amount, asset)
    mine(rig, 2)
    return address


def test_deposit_keys_sign_for_the_adapters_deposit_addresses_and_refuse_another_root(rig: Rig) -> None:
    keys = DepositKeys({"devchain": rig.adapter}, {"devchain": DEV_XPRV})
    for account in (1, 7, 123_456):
        assert (
            address_of(keys.public_key(deposit_key_id("devchain", account)))
            == rig.adapter.deposit_address(account).address
        )
    other = str(Bip32Slip10Secp256k1.FromSeed(bytes(range(32))).PrivateKey().ToExtended())
    with pytest.raises(ValueError, match="does not match the adapter's xpub"):
        DepositKeys({"devchain": rig.adapter}, {"devchain": other})
    with pytest.raises(ValueError, match="not an extended private key"):
        DepositKeys({"devchain": rig.adapter}, {"devchain": DEV_XPUB})
    assert deposit_roots_from_env({"devchain": rig.adapter}, {}) == {"devchain": DEV_XPRV}
    assert deposit_roots_from_env({"devchain": rig.adapter}, {"EXCHANGE_DEPOSIT_XPRV_DEVCHAIN": other}) == {
        "devchain": other
    }


async def test_only_credited_coins_are_swept_and_recorded_once(rig: Rig) -> None:
    rig.held_accounts.add(8)
    credited = deposit(rig, 7, 5_000_000)
    held = deposit(rig, 8, 3_000_000)
    assert {d.account: d.stage for d in rig.deposits.deposits()} == {7: Stage.CREDITED, 8: Stage.HELD}

    sweeper = rig.sweeper()
    started = await sweeper.process_once()
    assert [(r.address, r.asset, r.amount, r.fee, r.stage) for r in started] == [
        (credited, "DEV", 5_000_000 - FEE, FEE, SweepStage.BROADCAST)
    ]
    assert await sweeper.process_once() == []  # one open sweep per address; the held deposit is not the ledger's
    mine(rig, 2)
    await sweeper.process_once()
    (row,) = rig.custody.sweeps()
    assert row.stage == SweepStage.COMPLETED and row.confirmations == 2
    assert rig.chain.balance(rig.hot, "DEV") == 5_000_000 - FEE
    assert rig.chain.balance(credited, "DEV") == 0 and rig.chain.balance(held, "DEV") == 3_000_000
    assert rig.moves() == [MoveCustody("DEV", DEPOSIT, HOT, 5_000_000 - FEE, FEE, "sweep:devchain:1")]
    assert await sweeper.process_once() == []  # nothing left to sweep: the held coins stay


async def test_dust_and_coins_the_tracker_has_not_seen_stay_where_they_are(rig: Rig) -> None:
    address = deposit(rig, 7, FEE)  # no more than its own fee: dust
    sweeper = rig.sweeper()
    assert await sweeper.process_once() == []
    rig.chain.faucet(address, 9_000_000)
    rig.chain.mine(3)  # on chain and deep, but the tracker has not scanned it: it is not known to be credited
    assert await sweeper.process_once() == []
    rig.tracker.poll()
    (row,) = await sweeper.process_once()
    assert row.amount == 9_000_000 + FEE - FEE


async def test_a_token_sweep_pays_its_fee_from_the_addresss_native_coin(rig: Rig) -> None:
    address = deposit(rig, 7, 2_500, "DUSD")
    sweeper = rig.sweeper()
    assert await sweeper.process_once() == []  # no DEV at the address for the fee: waits (no gas top-up)
    deposit(rig, 7, 10 * FEE)
    (token,) = await sweeper.process_once()
    assert (token.asset, token.amount, token.fee_asset) == ("DUSD", 2_500, "DEV")
    mine(rig, 2)
    await sweeper.process_once()  # the token sweep is recorded; then the native coin left goes
    mine(rig, 2)
    await sweeper.process_once()
    assert rig.chain.balance(address, "DUSD") == 0 and rig.chain.balance(address, "DEV") == 0
    assert rig.moves() == [
        MoveCustody("DUSD", DEPOSIT, HOT, 2_500, 0, "sweep:devchain:1"),
        MoveCustody("DEV", DEPOSIT, "", 0, FEE, "sweep:devchain:1:fee"),
        MoveCustody("DEV", DEPOSIT, HOT, 10 * FEE - 2 * FEE, FEE, "sweep:devchain:2"),
    ]


async def test_new_deposits_are_looked_for_at_most_every_scan_seconds_or_when_a_sweep_completes(rig: Rig) -> None:
    sweeper = rig.sweeper()
    sweeper.scan_seconds = 3600
    assert await sweeper.process_once() == []  # the first round looks (nothing yet)
    first = deposit(rig, 7, 5_000_000)
    assert await sweeper.process_once() == []  # not due: balances are not read every round
    sweeper.scan_seconds = 0
    (row,) = await sweeper.process_once()
    sweeper.scan_seconds = 3600
    second = rig.tracker.deposit_address(8).address
    rig.chain.faucet(second, 2_000_000)
    mine(rig, 1)
    assert await sweeper.process_once() == []  # neither due nor any sweep completed
    mine(rig, 1)  # the second deposit credited, the first sweep at depth
    (after,) = await sweeper.process_once()  # the first sweep completed: look again at once
    assert (row.address, after.address) == (first, second)
    assert rig.custody.sweep(row.id).stage == SweepStage.COMPLETED  # type: ignore[union-attr]


async def test_a_crash_at_any_stage_neither_loses_nor_doubles_a_sweep(rig: Rig) -> None:
    deposit(rig, 7, 5_000_000)
    (row,) = await rig.sweeper().process_once()
    txid = row.txid
    # the broadcast happened, but the crash came before its stage was written
    row.stage, row.txid = SweepStage.SIGNED, ""
    rig.custody.save_sweep(row, 0)
    await rig.sweeper().process_once()  # after the restart: the same bytes again, the same txid
    (again,) = rig.custody.sweeps()
    assert again.stage == SweepStage.BROADCAST and again.txid == txid
    mine(rig, 2)
    await rig.sweeper().process_once()
    assert rig.custody.sweeps()[0].stage == SweepStage.COMPLETED
    # the ledger move was sequenced, but the crash came before "completed" was written
    done = rig.custody.sweeps()[0]
    done.stage = SweepStage.BROADCAST
    rig.custody.save_sweep(done, 0)
    await rig.sweeper().process_once()
    assert rig.custody.sweeps()[0].stage == SweepStage.COMPLETED
    assert len(rig.moves()) == 2  # sent twice, accepted once (the engine refuses the repeated reference)
    assert sum(1 for e in rig.shard.engine.transfer_refs if e.startswith("sweep:")) == 1
    assert rig.chain.balance(rig.hot, "DEV") == 5_000_000 - FEE  # paid once


async def test_sweeps_go_to_the_current_hot_address_and_never_take_from_an_old_one(rig: Rig) -> None:
    old = rig.hot
    new = address_of(coincurve.PrivateKey().public_key.format())
    rig.custody.add_address("devchain", "hot", new)  # the hot key was rotated: both addresses are custody's
    address = deposit(rig, 7, 5_000_000)
    sweeper = rig.sweeper()
    assert sweeper.destination("devchain") is None and sweeper.chains() == []  # which one? not guessed
    assert await sweeper.process_once() == []
    sweeper.destinations["devchain"] = new  # what the running wallet sets from its hot key
    (row,) = await sweeper.process_once()
    assert (row.address, row.destination) == (address, new)
    assert old not in {r.address for r in rig.custody.sweeps()}
