"""The Bitcoin-family :class:`~exchange_framework.interfaces.ChainAdapter`: one class, one instance per network.

- Deposit addresses: BIP84 P2WPKH, child ``0/<account>`` of the configured account key (m/84'/coin'/0').
- Deposits: blocks read with ``getblock <hash> 2`` in JSON-RPC batches, outputs matched by output script.
- Hot wallet UTXOs: a watch-only wallet in the node (created on first use, the hot address imported as an address
  in a legacy wallet or as an ``addr()`` descriptor in a descriptor wallet), read with
  ``listunspent``; the node keeps it right across reorgs and the mempool, where tracking outputs from scanned
  blocks ourselves would repeat that work (and ``scantxoutset`` reads the whole UTXO set and ignores the mempool).
  Inputs handed out by :meth:`build_withdrawal` are reserved in this process for :data:`INPUT_HOLD_SECONDS`.
- Withdrawals: PSBTs (see :mod:`exchange_bitcoin.psbt`), fee rate from ``estimatesmartfee`` (``fallback_fee``
  when the node has no estimate, as on regtest), RBF signalled on every input, :meth:`bump_fee` to replace.
- Change: back to the paying key, or with ``change_keys`` (a pool of keys generated in the custody signer, each with
  its key id) to the next pool key that has never received anything, so no change address is used twice. Pool
  addresses are watched like the hot address; a withdrawal spends the outputs of one key (the hot key or a pool
  key) and names that key in ``UnsignedTransaction.key_id``, so every signature comes from one key the custody
  policy knows (each pool address is a ``[[custody.wallets]]`` hot wallet with its key id).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from decimal import Decimal
from typing import Any

import coincurve

from exchange_bitcoin.address import (
    address_of_script,
    normalize_xpub,
    p2wpkh_address,
    p2wpkh_script,
    script_of_address,
)
from exchange_bitcoin.coins import Utxo, fee_for, select_coins
from exchange_bitcoin.network import NetworkParams
from exchange_bitcoin.psbt import Spend, WithdrawalPsbt, build_psbt, estimate_vsize, finalize, read_psbt, txid_of
from exchange_bitcoin.rpc import NodeUnavailable, RpcClient, RpcError
from exchange_framework.chains.hd import account_path, derive_public_key, derive_xpub
from exchange_framework.interfaces import (
    BlockHeader,
    DecodedTransaction,
    DepositAddress,
    ScannedBlock,
    TransactionStatus,
    Transfer,
    TxState,
    UnsignedTransaction,
)

__all__ = ["INPUT_HOLD_SECONDS", "FeeTooHigh", "InsufficientFunds", "NodeMismatch", "UtxoChainAdapter"]

_log = logging.getLogger(__name__)

INPUT_HOLD_SECONDS = 600.0
_COIN = Decimal(10**8)
_MAX_CONF = 9_999_999
_ALREADY_BROADCAST = ("txn-already-in-mempool", "txn-already-known", "already in block chain")
_INPUTS_GONE = ("bad-txns-inputs-missingorspent", "missing-inputs", "missingorspent")
_RPC_BATCH = 25  # blocks per getblock batch: bounds the memory of one answer


class InsufficientFunds(ValueError):
    """The hot wallet's spendable outputs cannot pay the withdrawal and its fee; the message names the shortfall."""


class FeeTooHigh(ValueError):
    """The fee rate the node estimates is above the network's ``max_fee_rate``: nothing is built."""


class NodeMismatch(RuntimeError):
    """The node serves another network than the adapter is configured for (or cannot serve a wallet)."""


def _check_change_keys(change_keys: Mapping[str, bytes]) -> dict[str, bytes]:
    """Return the change key pool as key id -> compressed public key; ``ValueError`` naming a bad entry."""
    checked: dict[str, bytes] = {}
    for key_id, key in change_keys.items():
        if not isinstance(key_id, str) or not key_id:
            raise ValueError(f"change_keys: {key_id!r} is not a key id")
        try:
            checked[key_id] = coincurve.PublicKey(bytes(key)).format(compressed=True)
        except Exception:
            raise ValueError(f"change_keys: {key_id} is not a secp256k1 public key") from None
    if len(set(checked.values())) != len(checked):
        raise ValueError("change_keys: a public key is listed twice: every change key id needs its own key")
    return checked


def to_atomic(value: Any) -> int:
    """Return a node amount (a JSON number parsed as Decimal, in coins) as an integer of atomic units."""
    amount = Decimal(str(value)) * _COIN
    if amount != amount.to_integral_value():
        raise ValueError(f"amount {value} has more than 8 decimals")
    return int(amount)


class UtxoChainAdapter:
    """A chain adapter for one Bitcoin-family network served by a Bitcoin Core-compatible node."""

    def __init__(
        self,
        rpc: RpcClient,
        params: NetworkParams,
        *,
        name: str,
        deposit_xpub: str,
        required_confirmations: int = 6,
        wallet: str = "exchange-watch",
        hot_key_id: str | None = None,
        conf_target: int = 6,
        fallback_fee: int = 20_000,
        max_fee_rate: int = 1_000_000,
        min_input_confirmations: int = 1,
        change_keys: Mapping[str, bytes] | None = None,
    ) -> None:
        xpub = normalize_xpub(deposit_xpub)  # fail at start-up, not on the first deposit address
        for label, value, low in (
            ("required_confirmations", required_confirmations, 1),
            ("conf_target", conf_target, 1),
            ("fallback_fee", fallback_fee, 1),
            ("max_fee_rate", max_fee_rate, 1),
            ("min_input_confirmations", min_input_confirmations, 0),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{label} must be an integer of at least {low}, got {value!r}")
        self.name = name
        self.chain_id = params.chain_id
        self.native_asset = params.asset
        self.required_confirmations = required_confirmations
        self.params = params
        self.rpc = rpc
        self.wallet = wallet
        self.hot_key_id = hot_key_id
        self.conf_target = conf_target
        self.fallback_fee = fallback_fee  # atomic units per 1,000 virtual bytes
        self.max_fee_rate = max_fee_rate
        self.min_input_confirmations = min_input_confirmations
        self._external = derive_xpub(xpub, (0,))  # the receive chain m/84'/coin'/0'/0, derived once
        self._checked = False
        self._wallet_ready = False
        self._watched: set[str] = set()
        self._scripts: dict[str, bytes | None] = {}
        self._lock = threading.Lock()
        self._reserved: dict[tuple[str, int], float] = {}  # outpoint -> when build_withdrawal handed it out
        self.change_keys = _check_change_keys(change_keys or {})  # key id -> compressed public key, in pool order
        self._change_key_ids = {key: key_id for key_id, key in self.change_keys.items()}
        self._change_reserved: dict[str, float] = {}  # change address -> when build_withdrawal handed it out

    # -- node --------------------------------------------------------------------------------------------------------

    def _call(self, method: str, *params: Any) -> Any:
        if not self._checked:
            info = self.rpc.call("getblockchaininfo")
            if info.get("chain") != self.params.node_chain:
                raise NodeMismatch(
                    f"{self.name}: the node at {self.rpc.url} serves chain {info.get('chain')!r}, but the adapter is "
                    f"configured for {self.params.chain_id} (node chain {self.params.node_chain!r}): fix the url"
                )
            self._checked = True
        return self.rpc.call(method, *params)

    def _wallet(self, method: str, *params: Any) -> Any:
        self._ensure_wallet()
        return self.rpc.call(method, *params, wallet=self.wallet)

    def _ensure_wallet(self) -> None:
        if self._wallet_ready:
            return
        loaded = self._call("listwallets")
        if self.wallet not in loaded:
            try:
                self.rpc.call("loadwallet", self.wallet)
            except RpcError as exc:
                if exc.code == -32601:
                    raise NodeMismatch(
                        f"{self.name}: the node's wallet is disabled; the adapter keeps the hot wallet's outputs in "
                        "a watch-only wallet: start the node without disablewallet"
                    ) from None
                if exc.code == -18:  # no such wallet yet
                    self.rpc.call("createwallet", self.wallet, True, True)  # watch-only, blank
                elif exc.code != -35:  # -35: loaded meanwhile by another client
                    raise
        self._wallet_ready = True

    def _watch(self, address: str) -> None:
        if address in self._watched:
            return
        info = self._wallet("getaddressinfo", address)
        if not (info.get("iswatchonly") or info.get("ismine")):
            # rescan: outputs paid to the hot address before it was imported become spendable too
            try:
                self._wallet("importaddress", address, "hot", True)
            except RpcError as exc:
                if "legacy" not in exc.message.lower():
                    raise
                self._import_descriptor(address)  # a descriptor wallet (Bitcoin Core's default since 23.0)
        self._watched.add(address)

    def _import_descriptor(self, address: str) -> None:
        descriptor = self._call("getdescriptorinfo", f"addr({address})")["descriptor"]
        (result,) = self._wallet("importdescriptors", [{"desc": descriptor, "timestamp": 0, "label": "hot"}])
        if not result.get("success"):
            raise NodeMismatch(f"{self.name}: the node's wallet {self.wallet!r} would not watch {address}: {result}")

    def watch_hot_wallet(self, public_key: bytes) -> str:
        """Import the hot key's P2WPKH address into the node's watch-only wallet (rescanning once); return it.

        ``build_withdrawal`` does this on first use; call it at deployment so the one-off rescan happens then.
        """
        address = p2wpkh_address(bytes(public_key), self.params)
        self._watch(address)
        return address

    def hot_wallet_balance(self, public_key: bytes, *, min_confirmations: int = 1) -> int:
        """Return what the hot wallet holds (the hot key's address and every change key's), in atomic units,
        counting outputs at ``min_confirmations``."""
        addresses = self._hot_addresses(bytes(public_key))
        unspent = self._wallet("listunspent", min_confirmations, _MAX_CONF, addresses)
        return sum(to_atomic(u["amount"]) for u in unspent)

    def address_of_key(self, public_key: bytes) -> str:
        """Return the P2WPKH address of a custody key (the hot wallet's address for its public key)."""
        return p2wpkh_address(bytes(public_key), self.params)

    def hot_addresses(self, public_key: bytes) -> list[str]:
        """Return every address of the hot wallet: the hot key's, then each change key's (all watched from now on).

        With ``change_keys`` the hot wallet's coins are spread over these; a custody report sums them all.
        """
        return self._hot_addresses(bytes(public_key))

    def balance(self, address: str, asset: str) -> int:
        """Return what ``address`` holds in confirmed outputs, in atomic units (0 for another asset).

        Read from the node's watch-only wallet; an address not watched yet is imported first with a rescan of the
        whole chain (slow on mainnet: import deposit addresses at deployment, or as they are handed out).
        """
        if asset != self.native_asset:
            return 0
        if self._script(address) is None:
            raise ValueError(f"{address!r} is not a {self.name} address")
        self._watch(address)
        unspent = self._wallet("listunspent", 1, _MAX_CONF, [address])
        return sum(to_atomic(u["amount"]) for u in unspent)

    def _hot_addresses(self, public_key: bytes) -> list[str]:
        """The hot key's address and the change keys' addresses, each watched."""
        addresses = [p2wpkh_address(bytes(public_key), self.params)]
        addresses += [p2wpkh_address(key, self.params) for key in self.change_keys.values()]
        self._watch_many(addresses)
        return addresses

    def _watch_many(self, addresses: Sequence[str]) -> None:
        """Watch every address in ``addresses``, importing the missing ones together (one rescan, not one each)."""
        missing: list[str] = []
        for address in addresses:
            if address in self._watched:
                continue
            info = self._wallet("getaddressinfo", address)
            if info.get("iswatchonly") or info.get("ismine"):
                self._watched.add(address)
            else:
                missing.append(address)
        if len(missing) == 1:
            self._watch(missing[0])
            return
        if not missing:
            return
        requests = [
            {"scriptPubKey": {"address": a}, "timestamp": 0, "watchonly": True, "label": "hot"} for a in missing
        ]
        try:
            results = self._wallet("importmulti", requests, {"rescan": True})
        except RpcError as exc:
            if "legacy" not in exc.message.lower():
                raise
            descriptors = [self._call("getdescriptorinfo", f"addr({a})")["descriptor"] for a in missing]
            results = self._wallet(
                "importdescriptors", [{"desc": d, "timestamp": 0, "label": "hot"} for d in descriptors]
            )
        failed = [(a, r) for a, r in zip(missing, results, strict=True) if not r.get("success")]
        if failed:
            raise NodeMismatch(f"{self.name}: the node's wallet {self.wallet!r} would not watch {failed}")
        self._watched.update(missing)

    def _next_change_key(self, fallback: bytes, now: float) -> bytes:
        """The first pool key whose address has never received anything and is not promised to an unbroadcast
        withdrawal (reserved for it until it is broadcast or :data:`INPUT_HOLD_SECONDS` pass); ``fallback`` (the
        paying key) when the pool is used up or empty. Call with the lock held."""
        if not self.change_keys:
            return fallback
        self._change_reserved = {a: t for a, t in self._change_reserved.items() if now - t < INPUT_HOLD_SECONDS}
        received = self._wallet("listreceivedbyaddress", 0, True, True)
        used = {str(r["address"]) for r in received if r.get("txids") or to_atomic(r.get("amount", 0)) > 0}
        for key in self.change_keys.values():
            address = p2wpkh_address(key, self.params)
            if address not in used and address not in self._change_reserved:
                self._change_reserved[address] = now
                return key
        _log.warning("%s: every change key has been used; change goes back to the paying key: add keys", self.name)
        return fallback

    # -- addresses ---------------------------------------------------------------------------------------------------

    def deposit_address(self, account: int) -> DepositAddress:
        """Return ``account``'s BIP84 P2WPKH address: child ``0/<account>`` of the account key (no memo)."""
        chain, index = account_path(account)
        assert chain == 0
        return DepositAddress(p2wpkh_address(derive_public_key(self._external, (index,)), self.params))

    def validate_address(self, address: str) -> bool:
        """Return whether ``address`` is a segwit (bech32/bech32m) or base58check address of this network."""
        return self._script(address) is not None

    def _script(self, address: str) -> bytes | None:
        if not isinstance(address, str):
            return None
        if address not in self._scripts:
            try:
                script: bytes | None = script_of_address(address, self.params)
            except ValueError:
                script = None
            if len(self._scripts) > 200_000:
                self._scripts.clear()
            self._scripts[address] = script
        return self._scripts[address]

    # -- watching ----------------------------------------------------------------------------------------------------

    def tip_height(self) -> int:
        """Return the node's best block height."""
        return int(self._call("getblockcount"))

    def block_header(self, height: int) -> BlockHeader | None:
        """Return the best chain's header at ``height`` (``None`` above the tip)."""
        if height < 0:
            raise ValueError(f"height must be non-negative, got {height}")
        try:
            block_hash = self._call("getblockhash", height)
        except RpcError as exc:
            if exc.code == -8:  # height out of range
                return None
            raise
        header = self._call("getblockheader", block_hash)
        return BlockHeader(int(header["height"]), str(header["hash"]), str(header.get("previousblockhash", "0" * 64)))

    def scan(self, from_height: int, addresses: Collection[str], *, max_blocks: int = 100) -> list[ScannedBlock]:
        """Return best-chain blocks from ``from_height`` with every output paying one of ``addresses``.

        Outputs are matched by output script (so any spelling of an address the node prints works); coinbase
        outputs are left out (they cannot be spent for 100 blocks). ``source_addresses`` are filled for P2WPKH
        inputs, whose key is in the witness. If the best chain changes during the scan, the blocks up to the change
        are returned.
        """
        if from_height < 0 or max_blocks < 1:
            raise ValueError("from_height must be non-negative and max_blocks positive")
        watched: dict[bytes, str] = {}
        for address in addresses:
            script = self._script(address)
            if script is not None:
                watched[script] = address
        tip = self.tip_height()
        last = min(tip, from_height + max_blocks - 1)
        if last < from_height:
            return []
        heights = list(range(from_height, last + 1))
        hashes: list[str] = []
        for answer in self.rpc.batch([("getblockhash", [h]) for h in heights]):
            if isinstance(answer, RpcError):
                break  # the chain got shorter meanwhile
            hashes.append(str(answer))
        scanned: list[ScannedBlock] = []
        previous_hash: str | None = None
        for start in range(0, len(hashes), _RPC_BATCH):
            chunk = hashes[start : start + _RPC_BATCH]
            for block in self.rpc.batch([("getblock", [h, 2]) for h in chunk]):
                if isinstance(block, RpcError):
                    return scanned
                parent = str(block.get("previousblockhash", "0" * 64))
                if previous_hash is not None and parent != previous_hash:
                    return scanned  # a reorg between our calls: stop at the last consistent block
                header = BlockHeader(int(block["height"]), str(block["hash"]), parent)
                scanned.append(ScannedBlock(header, tuple(self._transfers(block, watched))))
                previous_hash = header.hash
        return scanned

    def _transfers(self, block: dict[str, Any], watched: dict[bytes, str]) -> list[Transfer]:
        transfers: list[Transfer] = []
        if not watched:
            return transfers
        for tx in block["tx"]:
            vin = tx.get("vin", [])
            if vin and "coinbase" in vin[0]:
                continue
            sources: tuple[str, ...] | None = None
            for out in tx["vout"]:
                script_hex = out.get("scriptPubKey", {}).get("hex")
                if out.get("ismweb") or not script_hex:
                    continue  # Litecoin MWEB outputs are confidential: not transparent payments to an address
                address = watched.get(bytes.fromhex(script_hex))
                if address is None:
                    continue
                if sources is None:
                    sources = self._sources(vin)
                transfers.append(
                    Transfer(
                        str(tx["txid"]), int(out["n"]), self.native_asset, to_atomic(out["value"]), address, "", sources
                    )
                )
        return transfers

    def _sources(self, vin: list[dict[str, Any]]) -> tuple[str, ...]:
        found: list[str] = []
        for txin in vin:
            witness = txin.get("txinwitness") or []
            if len(witness) == 2 and len(witness[1]) == 66 and witness[1][:2] in ("02", "03"):
                address = p2wpkh_address(bytes.fromhex(witness[1]), self.params)
                if address not in found:
                    found.append(address)
        return tuple(found)

    # -- fees --------------------------------------------------------------------------------------------------------

    def fee_rate(self) -> int:
        """Return the fee rate to build with, in atomic units per 1,000 virtual bytes.

        ``estimatesmartfee <conf_target>``, or ``fallback_fee`` when the node has no estimate; never below the
        node's relay fee. Raise :class:`FeeTooHigh` above ``max_fee_rate`` rather than overpay.
        """
        estimate = self._call("estimatesmartfee", self.conf_target)
        rate = to_atomic(estimate["feerate"]) if estimate.get("feerate") is not None else self.fallback_fee
        rate = max(rate, self._relay_fees()[0])
        if rate > self.max_fee_rate:
            raise FeeTooHigh(
                f"{self.name}: the fee rate estimate {rate} per kvB is above max_fee_rate {self.max_fee_rate}; "
                "nothing was built: raise max_fee_rate or wait for fees to fall"
            )
        return rate

    def _relay_fees(self) -> tuple[int, int]:
        info = self._call("getnetworkinfo")
        return to_atomic(info["relayfee"]), to_atomic(info.get("incrementalfee", info["relayfee"]))

    # -- withdrawals -------------------------------------------------------------------------------------------------

    def _check_request(self, key_id: str, public_key: bytes, destination: str, asset: str, amount: int) -> bytes:
        if self.hot_key_id is not None and key_id != self.hot_key_id:
            raise ValueError(f"{self.name} pays withdrawals from hot key {self.hot_key_id!r}, not {key_id!r}")
        if asset != self.native_asset:
            raise ValueError(f"unknown asset {asset!r} on {self.name}: only {self.native_asset}")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise ValueError(f"amount must be a positive integer of atomic units, got {amount!r}")
        if amount < self.params.dust_limit:
            raise ValueError(f"amount {amount} is below the dust limit {self.params.dust_limit}: nodes would not relay")
        try:
            coincurve.PublicKey(bytes(public_key))
            hot_script = p2wpkh_script(bytes(public_key))
        except Exception:
            raise ValueError("public_key must be a valid 33-byte compressed secp256k1 key") from None
        try:
            destination_script = script_of_address(destination, self.params)
        except ValueError as exc:
            raise ValueError(f"bad destination for {self.name}: {exc}") from None
        if destination_script == hot_script or any(
            destination_script == p2wpkh_script(key) for key in self.change_keys.values()
        ):
            raise ValueError("the destination is the hot wallet itself")
        return destination_script

    def build_withdrawal(
        self,
        *,
        key_id: str,
        public_key: bytes,
        destination: str,
        asset: str,
        amount: int,
        memo: str = "",
    ) -> UnsignedTransaction:
        """Build an unsigned PSBT paying ``amount`` to ``destination`` from the hot key's P2WPKH outputs.

        Inputs are chosen largest first among confirmed (``min_input_confirmations``) outputs not reserved by an
        earlier build, all of one key: the hot key, or a change key when ``change_keys`` is set (the key with the
        most spendable coins that can pay; the returned ``key_id`` names it). Change goes to the next unused change
        key (without a pool: back to the paying key) unless it would be dust (then it is left to the fee).
        ``memo`` is not supported on this chain (a non-empty memo is refused).
        """
        if memo:
            raise ValueError(f"{self.name} transactions carry no memo")
        destination_script = self._check_request(key_id, public_key, destination, asset, amount)
        public_key = bytes(public_key)
        addresses = self._hot_addresses(public_key)
        keys = {p2wpkh_script(public_key): (key_id, public_key)}
        keys.update({p2wpkh_script(k): (i, k) for i, k in self.change_keys.items() if k != public_key})
        rate = self.fee_rate()
        dust = self.params.dust_limit
        with self._lock:
            now = time.monotonic()
            self._reserved = {k: t for k, t in self._reserved.items() if now - t < INPUT_HOLD_SECONDS}
            unspent = self._wallet("listunspent", self.min_input_confirmations, _MAX_CONF, addresses)
            by_key: dict[bytes, list[Utxo]] = {script: [] for script in keys}
            for u in unspent:
                script = bytes.fromhex(u["scriptPubKey"])
                if script in by_key and (str(u["txid"]), int(u["vout"])) not in self._reserved:
                    by_key[script].append(Utxo(to_atomic(u["amount"]), str(u["txid"]), int(u["vout"])))
            selection = None
            paying_script = p2wpkh_script(public_key)
            for script in sorted(by_key, key=lambda s: -sum(u.value for u in by_key[s])):
                selection = select_coins(
                    by_key[script],
                    amount=amount,
                    fee_rate=rate,
                    destination_script=destination_script,
                    change_script=script,  # every change script is P2WPKH: the same size
                    dust=dust,
                )
                if selection is not None:
                    paying_script = script
                    break
            if selection is None:
                candidates = by_key[paying_script]
                total = sum(c.value for c in candidates)
                needed = amount + fee_for(rate, max(1, len(candidates)), [destination_script])
                held = sum(1 for u in unspent if (str(u["txid"]), int(u["vout"])) in self._reserved)
                raise InsufficientFunds(
                    f"{addresses[0]} has {total} spendable in {len(candidates)} outputs ({held} more reserved by "
                    f"unbroadcast withdrawals), needs about {needed} with the fee: short by {needed - total}"
                    + (
                        " (change keys hold the rest; a withdrawal spends the coins of one key)"
                        if len(keys) > 1
                        else ""
                    )
                )
            paying_key_id, paying_key = keys[paying_script]
            chosen, change = selection.inputs, selection.change
            change_key = self._next_change_key(paying_key, now) if change > 0 else paying_key
            for _, txid, vout in chosen:
                self._reserved[(txid, vout)] = now
        try:
            spends = [Spend(txid, vout, value, self._raw_transaction(txid)) for value, txid, vout in chosen]
            psbt = build_psbt(
                chain_id=self.chain_id,
                public_key=paying_key,
                spends=spends,
                destination_script=destination_script,
                amount=amount,
                change=change,
                change_public_key=change_key,
            )
            withdrawal = read_psbt(psbt.serialize())
        except BaseException:
            with self._lock:
                for _, txid, vout in chosen:
                    self._reserved.pop((txid, vout), None)
                self._change_reserved.pop(p2wpkh_address(change_key, self.params), None)
            raise
        return UnsignedTransaction(self.name, bytes(psbt.serialize()), withdrawal.digests, paying_key_id)

    def _raw_transaction(self, txid: str) -> bytes:
        return bytes.fromhex(self._wallet("gettransaction", txid, True)["hex"])

    def bump_fee(self, unsigned: UnsignedTransaction, *, fee_rate: int | None = None) -> UnsignedTransaction:
        """Return a replacement of ``unsigned`` (BIP125): the same inputs and payment, a higher fee from the change.

        The new fee is at least ``fee_rate`` (default: the current estimate, or the old rate plus the node's
        incremental relay fee if that is higher) and always pays the old fee plus the incremental relay fee for the
        new size, as BIP125 requires. The replacement goes through policy and signing like any withdrawal. Raise
        ``ValueError`` if there is no change output able to pay the increase.
        """
        old = self._read(unsigned)
        change_script = p2wpkh_script(old.change_public_key or old.public_key)
        scripts = [old.destination_script, change_script]
        vsize = estimate_vsize(len(old.inputs), scripts)
        _, incremental = self._relay_fees()
        old_rate = math.floor(old.fee * 1000 / vsize)
        rate = fee_rate if fee_rate is not None else max(self.fee_rate(), old_rate + incremental)
        if not isinstance(rate, int) or isinstance(rate, bool) or rate <= 0 or rate > self.max_fee_rate:
            raise FeeTooHigh(
                f"fee_rate must be a positive integer up to max_fee_rate {self.max_fee_rate}, got {rate!r}"
            )
        new_fee = max(math.ceil(rate * vsize / 1000), old.fee + math.ceil(incremental * vsize / 1000))
        new_change = old.change - (new_fee - old.fee)
        if old.change == 0 or new_change < self.params.dust_limit:
            raise ValueError(
                f"cannot bump: the change output ({old.change}) cannot pay the fee increase to {new_fee}; "
                "build a new withdrawal spending other outputs instead"
            )
        psbt = build_psbt(
            chain_id=old.chain_id,
            public_key=old.public_key,
            spends=old.inputs,
            destination_script=old.destination_script,
            amount=old.amount,
            change=new_change,
            change_public_key=old.change_public_key,
        )
        replacement = read_psbt(psbt.serialize())
        return UnsignedTransaction(self.name, bytes(psbt.serialize()), replacement.digests, unsigned.key_id)

    def _read(self, unsigned: UnsignedTransaction) -> WithdrawalPsbt:
        if unsigned.chain != self.name:
            raise ValueError(f"transaction was built for chain {unsigned.chain!r}, not {self.name!r}")
        withdrawal = read_psbt(unsigned.payload)
        if tuple(unsigned.digests) != withdrawal.digests:
            raise ValueError("the digests do not match the payload: refusing to describe or assemble it")
        change_key = withdrawal.change_public_key
        if change_key is not None and change_key != withdrawal.public_key and change_key not in self._change_key_ids:
            raise ValueError(
                f"the change output pays {p2wpkh_address(change_key, self.params)}, which is neither the paying key's "
                "address nor one of the configured change keys': it would be a second destination"
            )
        return withdrawal

    def decode(self, unsigned: UnsignedTransaction) -> DecodedTransaction:
        """Decode the PSBT alone: destination, amount, fee (inputs minus outputs), network; change is recognised."""
        withdrawal = self._read(unsigned)
        destination = address_of_script(withdrawal.destination_script, self.params)
        if destination is None:
            raise ValueError("the destination output pays a script with no standard address")
        return DecodedTransaction(
            chain=self.name,
            chain_id=withdrawal.chain_id,
            asset=self.native_asset,
            source=p2wpkh_address(withdrawal.public_key, self.params),
            destination=destination,
            amount=withdrawal.amount,
            fee=withdrawal.fee,
            fee_asset=self.native_asset,
        )

    def assemble(self, unsigned: UnsignedTransaction, signatures: Sequence[bytes]) -> bytes:
        """Return the signed transaction: each 65-byte ``r || s || v`` checked, DER-encoded with SIGHASH_ALL."""
        withdrawal = self._read(unsigned)
        if withdrawal.chain_id != self.chain_id:
            raise ValueError(f"the PSBT was built for {withdrawal.chain_id!r}, not {self.chain_id!r}")
        return finalize(withdrawal, signatures)

    def broadcast(self, signed_tx: bytes) -> str:
        """Send the transaction; the same bytes again (in the mempool or mined) return the same txid."""
        txid = txid_of(signed_tx)
        try:
            answer = self._call("sendrawtransaction", bytes(signed_tx).hex())
        except RpcError as exc:
            message = exc.message.lower()
            if any(marker in message for marker in _ALREADY_BROADCAST):
                return txid
            if any(marker in message for marker in _INPUTS_GONE) and self._confirmed(txid):
                return txid  # mined already and its outputs spent since: still the same transaction
            raise ValueError(f"{self.name} node refused transaction {txid}: {exc.message} (code {exc.code})") from None
        if str(answer) != txid:
            raise NodeUnavailable(f"{self.name} node answered txid {answer} for transaction {txid}")
        return txid

    def _confirmed(self, txid: str) -> bool:
        return self.transaction_status(txid).state is TxState.CONFIRMED

    def transaction_status(self, txid: str) -> TransactionStatus:
        """Return where ``txid`` stands on the node's best chain.

        PENDING while in the mempool; CONFIRMED in a best-chain block; DROPPED when the wallet knows it but it is in
        neither (replaced by a fee bump, double-spent, conflicted by a block, or evicted); UNKNOWN otherwise.
        Withdrawals are always known (the hot address is in the node's watch-only wallet); other transactions are
        found in the mempool, or in blocks when the node keeps a transaction index.
        """
        try:
            self._call("getmempoolentry", txid)
            return TransactionStatus(txid, TxState.PENDING)
        except RpcError as exc:
            if exc.code != -5:
                raise
        try:
            tx = self._wallet("gettransaction", txid, True)
        except RpcError as exc:
            if exc.code not in (-5, -8):
                raise
            return self._status_from_index(txid)
        confirmations = int(tx.get("confirmations", 0))
        if confirmations > 0:
            return TransactionStatus(
                txid, TxState.CONFIRMED, confirmations, int(tx["blockheight"]), str(tx["blockhash"])
            )
        return TransactionStatus(txid, TxState.DROPPED)

    def _status_from_index(self, txid: str) -> TransactionStatus:
        try:
            tx = self._call("getrawtransaction", txid, True)
        except RpcError as exc:
            if exc.code in (-5, -8):
                return TransactionStatus(txid, TxState.UNKNOWN)
            raise
        confirmations = int(tx.get("confirmations", 0))
        if confirmations <= 0 or "blockhash" not in tx:
            return TransactionStatus(txid, TxState.PENDING)
        header = self._call("getblockheader", tx["blockhash"])
        return TransactionStatus(txid, TxState.CONFIRMED, confirmations, int(header["height"]), str(tx["blockhash"]))

    def close(self) -> None:
        """Close the connection to the node (the next call opens another)."""
        self.rpc.close()

    def release(self, unsigned: UnsignedTransaction) -> None:
        """Return the inputs of a withdrawal that will never be broadcast (refused by policy) to the spendable pool."""
        withdrawal = self._read(unsigned)
        with self._lock:
            for spend in withdrawal.inputs:
                self._reserved.pop((spend.txid, spend.vout), None)
            if withdrawal.change_public_key is not None:
                self._change_reserved.pop(p2wpkh_address(withdrawal.change_public_key, self.params), None)
