"""The Solana adapter on LiteSVM: deposits found in sealed slots, withdrawals end to end, and every refusal."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from bip_utils import Bip39SeedGenerator
from exchange_solana import InsufficientFunds, JsonRpcNode, NodeFault, SolanaAdapter
from exchange_solana import adapter as adapter_module
from exchange_solana import programs as p
from exchange_solana.keys import slip10_addresses
from exchange_solana.plugin import adapter_from_settings
from solders.keypair import Keypair
from solders.message import from_bytes_versioned
from solders.pubkey import Pubkey
from solders.token.associated import get_associated_token_address

from exchange_framework.engine.commands import Command
from exchange_framework.engine.engine import MatchingEngine
from exchange_framework.engine.events import Event, FundsCredited
from exchange_framework.engine.market import AssetSpec
from exchange_framework.funding.deposits import DepositTracker
from exchange_framework.funding.store import DepositStore, Stage
from exchange_framework.interfaces import Decision, DepositAddress, TxState, UnsignedTransaction

from .conftest import DEPOSITOR, HOT, MNEMONIC, OUTSIDE, OWNER, PER_ACCOUNT, SOL, TOKEN, SolanaChain, ata, execute
from .rpc_server import SolanaRpcServer


def _withdraw(chain: SolanaChain, adapter: SolanaAdapter, asset: str, amount: int, **kw: object) -> str:
    unsigned = adapter.build_withdrawal(
        key_id="sol-hot", public_key=bytes(HOT.pubkey()), destination=str(OUTSIDE), asset=asset, amount=amount, **kw
    )  # type: ignore[arg-type]
    signed = adapter.assemble(unsigned, [chain.sign("sol-hot", unsigned.digests[0])])
    return adapter.broadcast(signed)


def test_slip10_addresses_match_the_published_vector() -> None:
    """m/44'/501'/0'/0' of "abandon ... about" is the address Solana wallet libraries derive for it."""
    assert slip10_addresses(Bip39SeedGenerator(MNEMONIC).Generate(), [0])[0] == (
        "HAgk14JpMQLgt6rVgv7cBQFJWFto5Dqxi472uT3DKpqk"
    )


def test_associated_token_address_matches_the_spl_token_vector() -> None:
    """The ATA the adapter watches for a deposit is the one @solana/spl-token 0.4.14 derives (owner, mint 0x44*32)."""
    owner = Pubkey.from_string("HAgk14JpMQLgt6rVgv7cBQFJWFto5Dqxi472uT3DKpqk")
    expected = "FF2BjgeRK2LgK8Lj4wY2CTJrmJAKV5ZPCdHqfq1tJLGi"
    assert str(get_associated_token_address(owner, Pubkey.from_bytes(b"\x44" * 32))) == expected


def test_memo_and_per_account_deposits_of_sol_and_tokens_are_found(chain: SolanaChain) -> None:
    """System transfers, TransferChecked and plain Transfer to watched owners (via their ATAs) carry the memo."""
    adapter = chain.adapter()
    memo_to, own_to = adapter.deposit_address(42), adapter.deposit_address(2)
    assert memo_to == DepositAddress(str(OWNER.pubkey()), "42") and own_to == DepositAddress(PER_ACCOUNT[2])
    start = adapter.tip_height() + 1
    sol = chain.deposit(memo_to, "SOL", 3 * SOL)
    checked = chain.deposit(memo_to, "DUSD", 1_500_000)
    plain = chain.deposit(own_to, "DUSD", 7, checked=False)
    chain.node.mine(1)
    outside = chain.deposit(DepositAddress(str(OUTSIDE)), "SOL", SOL)  # not watched
    chain.node.mine(1)
    blocks = adapter.scan(start, {memo_to.address, own_to.address})
    assert [b.header.height for b in blocks] == [start, start + 1]
    found = {
        (t.txid, t.index): (t.asset, t.amount, t.address, t.memo, t.source_addresses)
        for b in blocks
        for t in b.transfers
    }
    depositor = (str(DEPOSITOR.pubkey()),)
    assert found == {
        (sol, 0): ("SOL", 3 * SOL, memo_to.address, "42", depositor),
        (checked, 1): ("DUSD", 1_500_000, memo_to.address, "42", depositor),
        (plain, 1): ("DUSD", 7, own_to.address, "", depositor),
    }
    assert outside not in {txid for txid, _ in found}


def test_failed_transactions_credit_nothing(chain: SolanaChain) -> None:
    """A transaction that failed on chain (fee paid, nothing moved) is not a deposit."""
    adapter = chain.adapter()
    to = adapter.deposit_address(9)
    start = adapter.tip_height() + 1
    poor = Keypair()
    chain.node.airdrop(str(poor.pubkey()), SOL)
    overdraw = [
        p.system_transfer(poor.pubkey(), OWNER.pubkey(), SOL // 2),
        p.system_transfer(poor.pubkey(), OWNER.pubkey(), SOL),
    ]
    with pytest.raises(ValueError, match="preflight"):
        execute(chain.node, overdraw, poor)
    failed = execute(chain.node, overdraw, poor, skip_preflight=True)
    chain.node.mine(1)
    assert [t for b in adapter.scan(start, {to.address}) for t in b.transfers] == []
    assert [t.signature for t in chain.node.block(start).transactions] == [failed]  # type: ignore[union-attr]
    assert chain.node.balance(str(poor.pubkey())) == SOL - 5000  # the fee was paid
    assert adapter.transaction_status(failed).state is TxState.DROPPED


@pytest.mark.parametrize("legacy", [False, True])
def test_withdrawals_of_sol_and_tokens_land_with_exact_amounts(chain: SolanaChain, legacy: bool) -> None:
    """build -> decode -> sign (independent Ed25519) -> assemble -> broadcast: the node's balances move exactly."""
    adapter = chain.adapter(legacy=legacy)
    before = chain.node.balance(str(OUTSIDE))
    sol = _withdraw(chain, adapter, "SOL", 2 * SOL + 17)
    token = _withdraw(chain, adapter, "DUSD", 123_456, memo="invoice 7")
    assert adapter.transaction_status(sol).state is TxState.PENDING
    chain.node.mine(3)
    for txid in (sol, token):
        status = adapter.transaction_status(txid)
        assert (status.state, status.confirmations) == (TxState.CONFIRMED, 3)
        assert status.block_hash == chain.node.block(status.block_height or 0).blockhash  # type: ignore[union-attr]
    assert chain.node.balance(str(OUTSIDE)) - before == 2 * SOL + 17
    assert chain.node.token_balance(str(ata(OUTSIDE))) == 123_456


def test_decode_reads_memo_fee_and_message_version(chain: SolanaChain) -> None:
    """The memo and the fee bound (signature fee, priority fee, rent of the token account it may create) decode."""
    adapter = chain.adapter(compute_unit_price=1_000)
    unsigned = adapter.build_withdrawal(
        key_id="k", public_key=bytes(HOT.pubkey()), destination=str(OUTSIDE), asset="DUSD", amount=5, memo="ref 1"
    )
    decoded = adapter.decode(unsigned)
    message = from_bytes_versioned(unsigned.payload)
    assert unsigned.payload[0] == 0x80  # a v0 message
    limit = int.from_bytes(bytes(message.instructions[0].data)[1:5], "little")
    rent = chain.node.rent_exempt_minimum(p.TOKEN_ACCOUNT_SIZE)
    assert decoded.fee == 5000 + -(-1_000 * limit // 1_000_000) + rent
    assert (decoded.memo, decoded.asset, decoded.amount, decoded.source) == ("ref 1", "DUSD", 5, str(HOT.pubkey()))


def test_an_expired_blockhash_is_refused_and_a_rebuild_lands(chain: SolanaChain) -> None:
    """After the blockhash expires, decode says to build again; the rebuilt withdrawal confirms."""
    adapter = chain.adapter()
    stale = adapter.build_withdrawal(
        key_id="sol-hot", public_key=bytes(HOT.pubkey()), destination=str(OUTSIDE), asset="SOL", amount=SOL
    )
    chain.node.expire_blockhash()
    with pytest.raises(ValueError, match="expired or not of this cluster"):
        adapter.decode(stale)
    signed = adapter.assemble(stale, [chain.sign("sol-hot", stale.payload)])
    with pytest.raises(ValueError, match="BlockhashNotFound"):
        adapter.broadcast(signed)
    txid = _withdraw(chain, adapter, "SOL", SOL)
    chain.node.mine(1)
    assert adapter.transaction_status(txid).state is TxState.CONFIRMED


def test_decode_refuses_other_shapes_and_foreign_payloads(chain: SolanaChain) -> None:
    """Messages with extra instructions, other signers, unknown programs, lookup tables or another chain are refused."""
    adapter = chain.adapter()
    hot = HOT.pubkey()
    from solders.hash import Hash
    from solders.message import Message, MessageV0, to_bytes_versioned

    blockhash = Hash.from_string(chain.node.latest_blockhash())
    shapes = {
        "two transfers": [p.system_transfer(hot, OUTSIDE, 1), p.system_transfer(hot, OUTSIDE, 2)],
        "unknown program": [p.system_transfer(hot, OUTSIDE, 1), p.memo("x"), p.set_compute_unit_limit(5)],
        "no transfer": [p.memo("hello")],
        "other payer": [p.system_transfer(OWNER.pubkey(), OUTSIDE, 1)],
        "unchecked token": [p.create_ata_idempotent(hot, ata(OUTSIDE), OUTSIDE, Pubkey.from_string(TOKEN.mint))],
    }
    for what, instructions in shapes.items():
        payload = to_bytes_versioned(MessageV0.try_compile(hot, instructions, [], blockhash))
        with pytest.raises(ValueError):
            adapter.decode(UnsignedTransaction("solana", payload, (payload,), "k"))
        assert what
    legacy = to_bytes_versioned(Message.new_with_blockhash([p.system_transfer(hot, OUTSIDE, 9)], hot, blockhash))
    assert adapter.decode(UnsignedTransaction("solana", legacy, (legacy,), "k")).amount == 9
    with pytest.raises(ValueError, match="chain"):
        adapter.decode(UnsignedTransaction("ethereum", legacy, (legacy,), "k"))
    with pytest.raises(ValueError, match="digest"):
        adapter.decode(UnsignedTransaction("solana", legacy, (b"\x00" * 32,), "k"))


def test_assemble_refuses_bad_signatures(chain: SolanaChain) -> None:
    """Another key's signature, a truncated one, a 65-byte one, or two signatures are refused."""
    adapter = chain.adapter()
    unsigned = adapter.build_withdrawal(
        key_id="sol-hot", public_key=bytes(HOT.pubkey()), destination=str(OUTSIDE), asset="SOL", amount=SOL
    )
    good = chain.sign("sol-hot", unsigned.payload)
    other = bytes(Keypair().sign_message(unsigned.payload))
    for signatures in ([other], [good[:63]], [good + b"\x00"], [good, good], []):
        with pytest.raises(ValueError):
            adapter.assemble(unsigned, signatures)
    assert adapter.assemble(unsigned, [good])


def test_equal_withdrawals_get_distinct_transactions(chain: SolanaChain) -> None:
    """Two withdrawals of the same amount to the same address under one blockhash are two transactions."""
    adapter = chain.adapter()
    txids = [_withdraw(chain, adapter, "SOL", SOL) for _ in range(2)]
    assert txids[0] != txids[1]
    chain.node.mine(1)
    assert all(adapter.transaction_status(t).state is TxState.CONFIRMED for t in txids)


def test_shortfalls_are_named(chain: SolanaChain) -> None:
    """Withdrawing more than the hot wallet holds raises InsufficientFunds naming the shortfall."""
    adapter = chain.adapter()
    held = chain.node.balance(str(HOT.pubkey()))
    with pytest.raises(InsufficientFunds, match="short of"):
        adapter.build_withdrawal(
            key_id="k", public_key=bytes(HOT.pubkey()), destination=str(OUTSIDE), asset="SOL", amount=held
        )
    with pytest.raises(InsufficientFunds, match="DUSD"):
        adapter.build_withdrawal(
            key_id="k", public_key=bytes(HOT.pubkey()), destination=str(OUTSIDE), asset="DUSD", amount=10**15
        )


def test_status_of_unknown_and_malformed_txids(chain: SolanaChain) -> None:
    """A signature the node never saw is UNKNOWN; so is a string that is not a signature."""
    adapter = chain.adapter()
    assert adapter.transaction_status(str(Keypair().sign_message(b"x"))).state is TxState.UNKNOWN
    assert adapter.transaction_status("nonsense").state is TxState.UNKNOWN
    assert adapter_module.MAX_U64 == 2**64 - 1


def test_settings_build_an_adapter_and_name_bad_keys() -> None:
    """The plugin's table builds a LiteSVM-backed adapter; unknown keys and bad addresses are named."""
    table = {"chain_id": "dev", "node": "litesvm", "deposit_owner": str(OWNER.pubkey()), "confirmations": 2}
    adapter = adapter_from_settings({**table, "tokens": [{"symbol": "DUSD", "mint": TOKEN.mint, "decimals": 6}]})
    assert (adapter.name, adapter.required_confirmations, adapter.tip_height()) == ("solana", 2, 0)
    with pytest.raises(ValueError, match="colour"):
        adapter_from_settings({**table, "colour": "red"})
    with pytest.raises(ValueError, match="commitment"):
        adapter_from_settings({**table, "commitment": "processed"})
    with pytest.raises(ValueError, match="deposit_owner"):
        adapter_from_settings({**table, "deposit_owner": "0xabc"})
    with pytest.raises(ValueError, match="account_addresses"):
        adapter_from_settings({**table, "account_addresses": {"1": str(OUTSIDE), "2": str(OUTSIDE)}})


@pytest.mark.parametrize("over_rpc", [False, True])
def test_skipped_slots_keep_headers_linked_and_deposits_credited(
    chain: SolanaChain, over_rpc: bool, tmp_path: Path
) -> None:
    """A skipped slot repeats the previous block's hash, so parent links hold; the tracker credits across skips."""
    server = SolanaRpcServer(chain.node) if over_rpc else None
    node = JsonRpcNode(server.url) if server else chain.node
    adapter = chain.adapter(node=node)
    engine = MatchingEngine({"SOL": AssetSpec("SOL", 0), "DUSD": AssetSpec("DUSD", 0)}, {})
    credits: list[FundsCredited] = []

    def submit(command: Command) -> list[Event]:
        engine.apply(len(credits) + 1000, command)
        events, engine.events = engine.events, []
        credits.extend(e for e in events if isinstance(e, FundsCredited))
        return events

    store = DepositStore(tmp_path / "deposits.db")
    tracker = DepositTracker(adapter, store, submit=submit, screen=lambda r: Decision.allow(), start_height=1)
    try:
        txid = chain.deposit(tracker.deposit_address(5), "SOL", SOL)
        chain.node.skip(2)  # slots 2 and 3 without a block
        chain.node.mine(1)  # slot 4 holds the deposit
        chain.node.skip(1)  # slot 5 without a block
        assert adapter.tip_height() == 5
        headers = [adapter.block_header(h) for h in range(1, 6)]
        assert all(h is not None for h in headers) and adapter.block_header(6) is None
        assert all(b.parent_hash == a.hash for a, b in itertools.pairwise(headers))  # type: ignore[union-attr]
        assert [h.hash for h in headers] == [headers[0].hash] * 3 + [headers[3].hash] * 2  # type: ignore[union-attr]
        assert [b.header.height for b in adapter.scan(2, {adapter.deposit_address(5).address})] == [2, 3, 4, 5]
        assert not tracker.poll().paused
        assert [(d.stage, d.confirmations) for d in store.deposits(txid=txid)] == [(Stage.CONFIRMING, 2)]
        chain.node.mine(1)
        tracker.poll()
        assert [d.stage for d in store.deposits(txid=txid)] == [Stage.CREDITED]
        assert [(c.account, c.asset, c.amount) for c in credits] == [(5, "SOL", SOL)]
    finally:
        store.close()
        if server:
            node.close()  # type: ignore[union-attr]
            server.stop()


def test_sol_below_rent_exemption_to_a_new_account_is_refused(chain: SolanaChain) -> None:
    """A new account must receive at least the rent-exempt minimum; an existing one may receive a lamport."""
    adapter = chain.adapter()
    minimum = chain.node.rent_exempt_minimum(0)
    fresh = str(Keypair().pubkey())
    with pytest.raises(ValueError, match=f"at least {minimum} lamports"):
        adapter.build_withdrawal(key_id="k", public_key=bytes(HOT.pubkey()), destination=fresh, asset="SOL", amount=1)
    chain.node.airdrop(str(OUTSIDE), SOL)
    txid = _withdraw(chain, adapter, "SOL", 1)
    chain.node.mine(1)
    assert adapter.transaction_status(txid).state is TxState.CONFIRMED
    assert chain.node.balance(str(OUTSIDE)) == SOL + 1


def test_memo_deposits_without_a_known_memo_are_held(chain: SolanaChain, tmp_path: Path) -> None:
    """On the shared address, a deposit without a memo or with an unknown one is held for an operator."""
    adapter = chain.adapter(confirmations=1)
    store = DepositStore(tmp_path / "deposits.db")
    tracker = DepositTracker(
        adapter, store, submit=lambda command: [], screen=lambda r: Decision.allow(), start_height=1
    )
    try:
        shared = tracker.deposit_address(50)
        assert shared.memo == "50"
        bare = chain.deposit(DepositAddress(shared.address), "SOL", SOL)
        unknown = chain.deposit(DepositAddress(shared.address, "999999"), "DUSD", 5)
        chain.node.mine(1)
        assert not tracker.poll().paused
        assert {d.txid: d.stage for d in store.deposits()} == {bare: Stage.HELD, unknown: Stage.HELD}
    finally:
        store.close()


def test_a_node_that_is_down_pauses_the_tracker(chain: SolanaChain, tmp_path: Path) -> None:
    """JSON-RPC to nothing raises NodeFault; the kernel's tracker pauses with the error and resumes later."""
    server = SolanaRpcServer(chain.node)
    url = server.url
    server.stop()
    rpc = JsonRpcNode(url, timeout=0.5)
    adapter = chain.adapter(node=rpc)
    with pytest.raises(NodeFault):
        adapter.tip_height()
    store = DepositStore(tmp_path / "deposits.db")
    tracker = DepositTracker(
        adapter, store, submit=lambda command: [], screen=lambda r: Decision.allow(), start_height=1
    )
    try:
        result = tracker.poll()
        assert result.paused and "Solana RPC" in result.error
        adapter.node = chain.node  # the node is back
        assert not tracker.poll().paused
    finally:
        store.close()
        rpc.close()
