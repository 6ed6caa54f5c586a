"""Change to fresh addresses: a pool of change keys (each a key of the custody signer), never an address twice.

PSBT level without a node; then the adapter on the session's regtest node: each withdrawal's change goes to the next
unused pool key, the change is counted and spent (by its own key, named in ``UnsignedTransaction.key_id``), and a
PSBT whose change pays a key outside the pool is refused by ``decode``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import coincurve
import pytest
from exchange_bitcoin.adapter import UtxoChainAdapter
from exchange_bitcoin.address import p2wpkh_address, p2wpkh_script
from exchange_bitcoin.psbt import Spend, build_psbt, read_psbt
from exchange_bitcoin.regtest import RegtestNode
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange_framework.interfaces import TxState, UnsignedTransaction

from .conftest import LTC, coins, make_adapter, sign
from .test_psbt import DEST, PUB, prev_tx, spend_of


def _key(name: str) -> bytes:
    return hashlib.sha256(b"change pool test " + name.encode()).digest()


HOT = _key("hot")
POOL = {f"hot-change-{i}": _key(f"change {i}") for i in (1, 2)}
KEYS = {"hot": HOT, **POOL}  # key id -> private key (the test's signer)
PUBLIC = {key_id: coincurve.PrivateKey(secret).public_key.format() for key_id, secret in KEYS.items()}


def hot_spend(value: int) -> Spend:
    """An output of the test's hot key to spend (its previous transaction is made up: never validated)."""
    tx = prev_tx(value, script=p2wpkh_script(PUBLIC["hot"]))
    return Spend(tx.txid().hex(), 1, value, tx.serialize())


def test_a_psbt_names_the_key_its_change_pays() -> None:
    other = coincurve.PrivateKey(_key("other")).public_key.format()
    psbt = build_psbt(
        chain_id="net",
        public_key=PUB,
        spends=[spend_of(10**6)],
        destination_script=DEST,
        amount=10**5,
        change=10**5,
        change_public_key=other,
    )
    read = read_psbt(psbt.serialize())
    assert (read.destination_script, read.amount, read.change, read.change_public_key) == (DEST, 10**5, 10**5, other)
    assert read.public_key == PUB and psbt.tx.vout[1].script_pubkey.data == p2wpkh_script(other)

    plain = read_psbt(
        build_psbt(
            chain_id="net", public_key=PUB, spends=[spend_of(10**6)], destination_script=DEST, amount=10**5, change=0
        ).serialize()
    )
    assert plain.change_public_key is None and plain.change == 0

    mislabelled = build_psbt(
        chain_id="net",
        public_key=PUB,
        spends=[spend_of(10**6)],
        destination_script=DEST,
        amount=10**5,
        change=10**5,
        change_public_key=other,
    )
    mislabelled.outputs[1].bip32_derivations.clear()
    mislabelled.outputs[1].bip32_derivations.update(dict(mislabelled.inputs[0].bip32_derivations))  # the wrong key
    with pytest.raises(ValueError, match="marked as change of a key it does not pay"):
        read_psbt(mislabelled.serialize())

    with pytest.raises(ValueError, match="change key's address is the destination"):
        build_psbt(
            chain_id="net",
            public_key=PUB,
            spends=[spend_of(10**6)],
            destination_script=p2wpkh_script(other),
            amount=10**5,
            change=10**5,
            change_public_key=other,
        )


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(10_000, 10**9), min_size=1, max_size=3), st.integers(1, 10**6), st.integers(0, 2))
def test_change_reads_back_with_the_key_it_pays(values: list[int], amount: int, which: int) -> None:
    change_key = [PUB, PUBLIC["hot-change-1"], PUBLIC["hot-change-2"]][which]
    spends = [spend_of(v, salt=i) for i, v in enumerate(values)]
    total = sum(values)
    amount = min(amount, total // 2)
    change = (total - amount) // 2
    read = read_psbt(
        build_psbt(
            chain_id="net",
            public_key=PUB,
            spends=spends,
            destination_script=DEST,
            amount=amount,
            change=change,
            change_public_key=change_key,
        ).serialize()
    )
    assert (read.public_key, read.destination_script, read.amount) == (PUB, DEST, amount)
    assert (read.change, read.change_public_key, read.fee) == (change, change_key, total - amount - change)


@pytest.fixture
def pooled(ltc_node: RegtestNode) -> Iterator[UtxoChainAdapter]:
    adapter = make_adapter(ltc_node, wallet="change-pool-test", change_keys={k: PUBLIC[k] for k in POOL})
    yield adapter
    adapter.close()


def _send(adapter: UtxoChainAdapter, unsigned: UnsignedTransaction) -> str:
    signatures = [sign(KEYS[unsigned.key_id], digest) for digest in unsigned.digests]
    return adapter.broadcast(adapter.assemble(unsigned, signatures))


def test_change_goes_to_a_fresh_pool_key_each_time_and_is_spent_by_its_key(
    ltc_node: RegtestNode, pooled: UtxoChainAdapter
) -> None:
    node, adapter = ltc_node, pooled
    hot_address = p2wpkh_address(PUBLIC["hot"], LTC)
    pool_addresses = [p2wpkh_address(PUBLIC[k], LTC) for k in POOL]
    destination = str(node.wallet("getnewaddress", "", "bech32"))
    node.wallet("sendtoaddress", hot_address, coins(50_000_000))  # one output: each withdrawal spends one key's coins
    node.mine(1)
    with pytest.raises(ValueError, match="hot wallet itself"):
        adapter.build_withdrawal(
            key_id="hot", public_key=PUBLIC["hot"], destination=pool_addresses[0], asset="LTC", amount=10**6
        )

    seen_change: list[str] = []
    paying = ["hot", "hot-change-1", "hot-change-2"]
    change_to = [pool_addresses[0], pool_addresses[1], pool_addresses[1]]  # the pool used up: back to the payer
    for round_, (payer, expected_change) in enumerate(zip(paying, change_to, strict=True)):
        before = adapter.hot_wallet_balance(PUBLIC["hot"])
        unsigned = adapter.build_withdrawal(
            key_id="hot", public_key=PUBLIC["hot"], destination=destination, asset="LTC", amount=5_000_000
        )
        assert unsigned.key_id == payer, round_
        decoded = adapter.decode(unsigned)
        assert (decoded.source, decoded.destination, decoded.amount) == (
            p2wpkh_address(PUBLIC[payer], LTC),
            destination,
            5_000_000,
        )
        txid = _send(adapter, unsigned)
        node.mine(1)
        assert adapter.transaction_status(txid).state is TxState.CONFIRMED
        outputs = node.rpc.call("getrawtransaction", txid, True)["vout"]
        change_outputs = [o for o in outputs if o["scriptPubKey"]["addresses"][0] != destination]
        assert [o["scriptPubKey"]["addresses"][0] for o in change_outputs] == [expected_change]
        seen_change.append(expected_change)
        assert adapter.hot_wallet_balance(PUBLIC["hot"]) == before - 5_000_000 - decoded.fee  # the change counts
    assert seen_change[0] != seen_change[1] and hot_address not in seen_change
    # What a custody report reads: the hot wallet's addresses, each one's balance, summing to the hot balance.
    addresses = adapter.hot_addresses(PUBLIC["hot"])
    assert addresses == [hot_address, *pool_addresses] and adapter.address_of_key(PUBLIC["hot"]) == hot_address
    balances = [adapter.balance(a, "LTC") for a in addresses]
    assert balances[0] == 0 and balances[1] == 0 and balances[2] > 0  # everything is at the last change address
    assert sum(balances) == adapter.hot_wallet_balance(PUBLIC["hot"])
    assert adapter.balance(destination, "LTC") == 3 * 5_000_000  # an address not watched yet is imported first
    assert adapter.balance(destination, "DOGE") == 0


def test_decode_refuses_change_to_a_key_outside_the_pool(pooled: UtxoChainAdapter) -> None:
    foreign = coincurve.PrivateKey(_key("not ours")).public_key.format()
    psbt = build_psbt(
        chain_id=LTC.chain_id,
        public_key=PUBLIC["hot"],
        spends=[hot_spend(10**7)],
        destination_script=DEST,
        amount=10**6,
        change=10**6,
        change_public_key=foreign,
    )
    digests = read_psbt(psbt.serialize()).digests
    unsigned = UnsignedTransaction(pooled.name, bytes(psbt.serialize()), digests, "hot")
    with pytest.raises(ValueError, match="neither the paying key's address nor one of the configured change keys"):
        pooled.decode(unsigned)
    pool_change = build_psbt(
        chain_id=LTC.chain_id,
        public_key=PUBLIC["hot"],
        spends=[hot_spend(10**7)],
        destination_script=DEST,
        amount=10**6,
        change=10**6,
        change_public_key=PUBLIC["hot-change-2"],
    )
    decoded = pooled.decode(
        UnsignedTransaction(
            pooled.name, bytes(pool_change.serialize()), read_psbt(pool_change.serialize()).digests, "hot"
        )
    )
    assert (decoded.amount, decoded.fee) == (10**6, 10**7 - 2 * 10**6)


def test_change_keys_are_checked_at_start(ltc_node: RegtestNode) -> None:
    with pytest.raises(ValueError, match="not a secp256k1 public key"):
        make_adapter(ltc_node, change_keys={"bad": b"\x02" + bytes(32)})
    with pytest.raises(ValueError, match="listed twice"):
        make_adapter(ltc_node, change_keys={"a": PUBLIC["hot-change-1"], "b": PUBLIC["hot-change-1"]})
