"""Withdrawal transactions as PSBTs (BIP174, via embit): build, read back and check, sighash, finalise.

A withdrawal PSBT spends P2WPKH outputs of one hot-wallet key to one destination, with at most one change output,
back to the same key or to a fresh change key of the hot wallet. Each input carries its previous transaction
(``non_witness_utxo``, checked against the outpoint's txid), its ``witness_utxo`` and the paying key in
``bip32_derivations``; the change output carries its key too (the PSBT way of saying "this output is ours"). Whether
a change key other than the paying key belongs to the hot wallet is the reader's check (the adapter knows its
change keys). A proprietary global field records the network (``chain_id``), so the payload alone says which
network it was built for.

Digests are the BIP143 signature hashes with SIGHASH_ALL, one per input, in input order.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import coincurve
from coincurve.ecdsa import cdata_to_der, deserialize_compact

# embit ships no type information (no py.typed); its objects are typed Any here.
from embit import compact  # type: ignore[import-untyped]
from embit.ec import PublicKey  # type: ignore[import-untyped]
from embit.psbt import PSBT, DerivationPath  # type: ignore[import-untyped]
from embit.script import Script, Witness  # type: ignore[import-untyped]
from embit.transaction import SIGHASH, Transaction, TransactionInput, TransactionOutput  # type: ignore[import-untyped]

from exchange_bitcoin.address import p2wpkh_script

__all__ = [
    "RBF_SEQUENCE",
    "Spend",
    "WithdrawalPsbt",
    "build_psbt",
    "estimate_vsize",
    "finalize",
    "read_psbt",
    "txid_of",
    "verify_signature",
]

RBF_SEQUENCE = 0xFFFFFFFD  # below 0xFFFFFFFE: signals BIP125 replaceability, no relative lock time
_PROPRIETARY_ID = b"exchange"
_CHAIN_ID_KEY = b"\xfc" + compact.to_bytes(len(_PROPRIETARY_ID)) + _PROPRIETARY_ID + b"\x00"
_NO_FINGERPRINT = DerivationPath(b"\x00\x00\x00\x00", [])
# Witness of a P2WPKH spend at its largest: item count, a 72-byte DER signature with its sighash byte, the key.
_P2WPKH_WITNESS_BYTES = 1 + (1 + 73) + (1 + 33)


@dataclass(frozen=True)
class Spend:
    """An output of the hot wallet to spend: outpoint, value and the previous transaction's raw bytes."""

    txid: str
    vout: int
    value: int
    prev_tx: bytes


@dataclass(frozen=True)
class WithdrawalPsbt:
    """A withdrawal PSBT read back and checked: what it spends, pays and signs."""

    psbt: PSBT
    chain_id: str
    public_key: bytes  # the hot key paying every input
    inputs: tuple[Spend, ...]
    destination_script: bytes
    amount: int
    change: int  # 0 when there is no change output
    fee: int
    digests: tuple[bytes, ...]
    change_public_key: bytes | None = None  # the key the change output pays (None: no change output)


def estimate_vsize(n_inputs: int, output_scripts: Sequence[bytes]) -> int:
    """Return the virtual size of a P2WPKH-only spend with these outputs, its signatures at their largest."""
    base = 4 + len(compact.to_bytes(n_inputs)) + n_inputs * (32 + 4 + 1 + 4)
    base += len(compact.to_bytes(len(output_scripts)))
    base += sum(8 + len(compact.to_bytes(len(s))) + len(s) for s in output_scripts) + 4
    witness = 2 + n_inputs * _P2WPKH_WITNESS_BYTES
    return math.ceil((base * 4 + witness) / 4)


def build_psbt(
    *,
    chain_id: str,
    public_key: bytes,
    spends: Sequence[Spend],
    destination_script: bytes,
    amount: int,
    change: int,
    locktime: int = 0,
    change_public_key: bytes | None = None,
) -> PSBT:
    """Return a PSBT paying ``amount`` to ``destination_script`` and ``change`` (if positive) to ``change_public_key``
    (default: back to the paying key ``public_key``)."""
    change_key = public_key if change_public_key is None else change_public_key
    change_script = p2wpkh_script(change_key)
    if change > 0 and change_script == destination_script:
        raise ValueError("the change key's address is the destination")
    vin = [TransactionInput(bytes.fromhex(s.txid), s.vout, sequence=RBF_SEQUENCE) for s in spends]
    vout = [TransactionOutput(amount, Script(destination_script))]
    if change > 0:
        vout.append(TransactionOutput(change, Script(change_script)))
    psbt = PSBT(Transaction(version=2, vin=vin, vout=vout, locktime=locktime))
    key = PublicKey.parse(public_key)
    for scope, spend in zip(psbt.inputs, spends, strict=True):
        prev = Transaction.parse(spend.prev_tx)
        scope.non_witness_utxo = prev
        scope.witness_utxo = prev.vout[spend.vout]
        scope.bip32_derivations[key] = _NO_FINGERPRINT
    if change > 0:
        psbt.outputs[1].bip32_derivations[PublicKey.parse(change_key)] = _NO_FINGERPRINT
    psbt.unknown[_CHAIN_ID_KEY] = chain_id.encode()
    return psbt


def read_psbt(payload: bytes) -> WithdrawalPsbt:
    """Parse and check a withdrawal PSBT; raise ``ValueError`` saying what is wrong with it.

    Checked: it parses with nothing left over; it names its network; every input's previous transaction hashes to
    the outpoint's txid and agrees with its ``witness_utxo``; every input pays the same P2WPKH hot key; there is one
    destination output and at most one change output, which is marked with exactly the key whose P2WPKH script it
    pays (the paying key, or another key: ``change_public_key`` says which, and the caller checks it is the
    wallet's); an unmarked output paying the paying key is refused; outputs do not exceed inputs.
    """
    try:
        psbt = PSBT.parse(bytes(payload))
    except Exception as exc:  # embit raises several unrelated types on malformed input
        raise ValueError(f"the payload is not a PSBT: {type(exc).__name__}: {exc}") from None
    raw_chain_id = psbt.unknown.get(_CHAIN_ID_KEY)
    if raw_chain_id is None:
        raise ValueError("the PSBT does not say which network it was built for (no exchange chain_id field)")
    if not psbt.inputs or len(psbt.outputs) not in (1, 2):
        raise ValueError("a withdrawal PSBT has at least one input and one or two outputs")
    public_key: bytes | None = None
    spends: list[Spend] = []
    for i, scope in enumerate(psbt.inputs):
        prev = scope.non_witness_utxo
        if prev is None or scope.witness_utxo is None:
            raise ValueError(f"input {i} lacks its previous transaction or witness UTXO")
        if prev.txid() != scope.txid or scope.vout >= len(prev.vout):
            raise ValueError(f"input {i}'s previous transaction does not match its outpoint")
        spent = prev.vout[scope.vout]
        if spent.serialize() != scope.witness_utxo.serialize():
            raise ValueError(f"input {i}'s witness UTXO disagrees with its previous transaction")
        keys = [k.sec() for k in scope.bip32_derivations]
        if len(keys) != 1:
            raise ValueError(f"input {i} must name exactly one paying key")
        if public_key is None:
            public_key = keys[0]
        if keys[0] != public_key or spent.script_pubkey.data != p2wpkh_script(public_key):
            raise ValueError(f"input {i} is not a P2WPKH output of the hot key")
        if scope.sequence != RBF_SEQUENCE:
            raise ValueError(f"input {i} does not signal replaceability (nSequence {scope.sequence})")
        spends.append(Spend(scope.txid.hex(), scope.vout, spent.value, prev.serialize()))
    assert public_key is not None
    hot_script = p2wpkh_script(public_key)
    tx = psbt.tx
    change_keys: dict[int, bytes] = {}  # output index -> the key it is marked with and pays
    for index, (output, scope) in enumerate(zip(tx.vout, psbt.outputs, strict=True)):
        marked = [k.sec() for k in scope.bip32_derivations]
        if output.script_pubkey.data == hot_script and marked != [public_key]:
            raise ValueError("the change output is not marked as the hot key's")
        if marked:
            if len(marked) != 1 or output.script_pubkey.data != p2wpkh_script(marked[0]):
                raise ValueError(f"output {index} is marked as change of a key it does not pay")
            change_keys[index] = marked[0]
    destinations = [o for i, o in enumerate(tx.vout) if i not in change_keys]
    changes = [o for i, o in enumerate(tx.vout) if i in change_keys]
    if len(destinations) != 1 or len(changes) > 1:
        raise ValueError("a withdrawal PSBT pays exactly one destination and at most one change output back to itself")
    total_in = sum(s.value for s in spends)
    total_out = sum(o.value for o in tx.vout)
    if total_out > total_in:
        raise ValueError(f"outputs ({total_out}) exceed inputs ({total_in})")
    digests = tuple(psbt.sighash(i, SIGHASH.ALL) for i in range(len(psbt.inputs)))
    return WithdrawalPsbt(
        psbt=psbt,
        chain_id=bytes(raw_chain_id).decode("utf-8", "replace"),
        public_key=public_key,
        inputs=tuple(spends),
        destination_script=destinations[0].script_pubkey.data,
        amount=destinations[0].value,
        change=changes[0].value if changes else 0,
        fee=total_in - total_out,
        digests=digests,
        change_public_key=next(iter(change_keys.values()), None),
    )


def verify_signature(public_key: bytes, digest: bytes, signature: bytes) -> bytes | None:
    """Return the DER form of ``signature`` if it signs ``digest`` under ``public_key``, else ``None``.

    Accepted: 65 bytes ``r || s || v`` (the custody signers' format; ``v`` must recover ``public_key``) or 64 bytes
    ``r || s``; ``s`` must be low-S, as Bitcoin's standardness rules (and libsecp256k1's verify) require.
    """
    if len(digest) != 32 or len(signature) not in (64, 65):
        return None
    try:
        key = coincurve.PublicKey(public_key)
        if len(signature) == 65:
            if signature[64] not in (0, 1):
                return None
            if coincurve.PublicKey.from_signature_and_message(signature, digest, hasher=None).format() != public_key:
                return None
        der = bytes(cdata_to_der(deserialize_compact(signature[:64])))
        return der if key.verify(der, digest, hasher=None) else None
    except Exception:  # a malformed key or signature is simply not valid
        return None


def finalize(withdrawal: WithdrawalPsbt, signatures: Sequence[bytes]) -> bytes:
    """Return the signed transaction's bytes, one checked signature per input; ``ValueError`` if one fails."""
    if len(signatures) != len(withdrawal.digests):
        raise ValueError(f"expected {len(withdrawal.digests)} signatures (one per input), got {len(signatures)}")
    tx = withdrawal.psbt.tx
    for i, (digest, signature) in enumerate(zip(withdrawal.digests, signatures, strict=True)):
        der = verify_signature(withdrawal.public_key, digest, bytes(signature))
        if der is None:
            raise ValueError(f"signature {i} does not verify against the hot key and input {i}'s digest")
        tx.vin[i].witness = Witness([der + bytes([SIGHASH.ALL]), withdrawal.public_key])
    return bytes(tx.serialize())


def txid_of(signed_tx: bytes) -> str:
    """Return the txid of a serialised transaction; ``ValueError`` if it does not parse."""
    try:
        tx = Transaction.read_from(stream := io.BytesIO(bytes(signed_tx)))
    except Exception as exc:
        raise ValueError(f"not a transaction: {type(exc).__name__}: {exc}") from None
    if stream.read(1):
        raise ValueError("not a transaction: bytes left over after it")
    return str(tx.txid().hex())
