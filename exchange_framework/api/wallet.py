"""Wallet, account and API-key endpoints in the style of Binance's ``/sapi/v1`` (where Binance has one, its shape).

Binance's capital endpoints carry deposits and withdrawals; every deposit and withdrawal here also carries its
``stage`` (seen, confirming n/N, screening, credited, held...; requested, screening, awaiting_approval, signed,
broadcast, completed...) and the reasons for a hold, so nobody has to guess why money has not arrived.

Whitelisting a withdrawal address is deliberately not offered to API keys: it needs a portal login with two-factor
authentication, so a stolen key cannot add the thief's address.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from exchange_framework.api.context import ApiContext
from exchange_framework.api.endpoints import Call, Endpoint, Param, Security, endpoint
from exchange_framework.api.errors import INVALID_PARAMETER, ApiError
from exchange_framework.identity import IdentityError, Scope
from exchange_framework.wallet import WalletError, WalletService, WithdrawalStage, WithdrawalView

__all__ = ["ENDPOINTS"]

ENDPOINTS: list[Endpoint] = []
SIGNED = (
    Param("recvWindow", "integer"),
    Param("timestamp", "integer", required=True),
    Param("signature", required=True),
)
WALLET_ERROR = -4000  # our code for a refused wallet request; the message says what to fix

_DEPOSIT_STATUS = {"credited": 1, "rejected": 7, "orphaned": 7}  # everything else is 0: pending
_WITHDRAW_STATUS = {
    WithdrawalStage.REQUESTED: 4,
    WithdrawalStage.SCREENING: 2,
    WithdrawalStage.TRAVEL_RULE: 2,
    WithdrawalStage.AWAITING_APPROVAL: 2,
    WithdrawalStage.APPROVED: 4,
    WithdrawalStage.SIGNED: 4,
    WithdrawalStage.BROADCAST: 4,
    WithdrawalStage.COMPLETED: 6,
    WithdrawalStage.REJECTED: 3,
    WithdrawalStage.FAILED: 5,
    WithdrawalStage.CANCELLED: 1,
}


def _wallet(ctx: ApiContext) -> WalletService:
    wallet: WalletService | None = ctx.extras.get("wallet")
    if wallet is None:
        raise ApiError(
            WALLET_ERROR, "Deposits and withdrawals are not enabled on this exchange (no chain is configured)."
        )
    return wallet


def _refused(exc: Exception) -> ApiError:
    return ApiError(WALLET_ERROR, str(exc))


def _datetime(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


@endpoint(
    "GET", "/sapi/v1/capital/config/getall", "Every asset with its balances and the networks it moves on.",
    security=Security.USER_DATA, weight=10, params=SIGNED, tag="wallet", registry=ENDPOINTS,
)  # fmt: skip
async def all_coins(ctx: ApiContext, call: Call) -> list[dict[str, Any]]:
    wallet = ctx.extras.get("wallet")
    chains = wallet.assets() if wallet is not None else {}
    balances = ctx.node.balances.balances(call.account)
    out = []
    for asset, decimals in ctx.units.asset_decimals.items():
        free, locked = balances.get(asset, (0, 0))
        networks = chains.get(asset, [])
        adapters = getattr(wallet, "adapters", {})
        out.append(
            {
                "coin": asset,
                "name": ctx.node.config.assets[asset].name or asset,
                "depositAllEnable": bool(networks),
                "withdrawAllEnable": bool(networks),
                "free": ctx.units.amount(asset, free),
                "locked": ctx.units.amount(asset, locked),
                "freeze": "0",
                "withdrawing": "0",
                "ipoing": "0",
                "ipoable": "0",
                "storage": "0",
                "isLegalMoney": False,
                "trading": True,
                "networkList": [
                    {
                        "network": name,
                        "coin": asset,
                        "name": name,
                        "isDefault": i == 0,
                        "depositEnable": True,
                        "withdrawEnable": True,
                        "withdrawFee": "0",
                        "withdrawMin": ctx.units.amount(asset, 1),
                        "withdrawMax": "9999999999",
                        "withdrawIntegerMultiple": ctx.units.amount(asset, 1),
                        "minConfirm": adapters[name].required_confirmations if name in adapters else 1,
                        "unLockConfirm": 0,
                        "sameAddress": False,
                        "busy": False,
                        "resetAddressStatus": False,
                        "depositDesc": "",
                        "withdrawDesc": "",
                        "specialTips": "",
                    }
                    for i, name in enumerate(networks)
                ],
                "decimals": decimals,
            }
        )
    return out


@endpoint(
    "GET", "/sapi/v1/capital/deposit/address", "Your deposit address (and memo) for a coin on a network.",
    security=Security.USER_DATA, weight=10, tag="wallet", registry=ENDPOINTS,
    params=(Param("coin", required=True), Param("network"), *SIGNED),
)  # fmt: skip
async def deposit_address(ctx: ApiContext, call: Call) -> dict[str, Any]:
    coin = call.params.text("coin", required=True).upper()
    try:
        address, memo = _wallet(ctx).deposit_address(call.account, coin, call.params.text("network") or None)
    except WalletError as exc:
        raise _refused(exc) from None
    return {"address": address, "coin": coin, "tag": memo, "url": ""}


@endpoint(
    "GET", "/sapi/v1/capital/deposit/hisrec", "Your deposits, newest first, each with its stage and confirmations.",
    security=Security.USER_DATA, weight=1, tag="wallet", registry=ENDPOINTS,
    params=(Param("coin"), Param("status", "integer"), Param("startTime", "integer"), Param("endTime", "integer"),
            Param("offset", "integer"), Param("limit", "integer", description="Default 1000, at most 1000."), *SIGNED),
)  # fmt: skip
async def deposit_history(ctx: ApiContext, call: Call) -> list[dict[str, Any]]:
    p = call.params
    coin = p.text("coin").upper() or None
    limit = p.integer("limit", default=1000, low=1, high=1000)
    offset = p.integer("offset", low=0)
    start = p.integer("startTime", low=0)
    end = p.integer("endTime", low=0) or 2**62
    status = p.integer("status", default=-1) if "status" in p else None
    rows = []
    for d in _wallet(ctx).deposits(call.account, asset=coin, limit=1000):
        code = _DEPOSIT_STATUS.get(d.stage, 0)
        if not start <= d.first_seen_ms <= end or (status is not None and code != status):
            continue
        rows.append(
            {
                "id": d.id,
                "amount": d.amount,
                "coin": d.asset,
                "network": d.chain,
                "status": code,
                "stage": d.stage,
                "stageReasons": list(d.reasons),
                "address": d.address,
                "addressTag": d.memo,
                "txId": d.txid,
                "insertTime": d.first_seen_ms,
                "transferType": 0,
                "confirmTimes": f"{d.confirmations}/{d.required_confirmations}",
                "unlockConfirm": 0,
                "walletType": 0,
            }
        )
    return rows[offset : offset + limit]


def _withdrawal_json(w: WithdrawalView) -> dict[str, Any]:
    return {
        "id": str(w.id),
        "amount": w.amount,
        "transactionFee": w.fee,
        "coin": w.asset,
        "status": _WITHDRAW_STATUS[w.stage],
        "stage": w.stage.value,
        "stageReasons": list(w.reasons),
        "address": w.address,
        "addressTag": w.memo,
        "txId": w.txid,
        "applyTime": _datetime(w.requested_ms),
        "network": w.chain,
        "transferType": 0,
        "info": "; ".join(w.reasons),
        "confirmNo": w.confirmations,
        "requiredConfirmations": w.required_confirmations,
        "approvals": list(w.approvals),
        "requiredApprovals": w.required_approvals,
        "walletType": 0,
        "completeTime": _datetime(w.updated_ms) if w.stage is WithdrawalStage.COMPLETED else "",
    }


@endpoint(
    "POST", "/sapi/v1/capital/withdraw/apply", "Withdraw to one of your whitelisted addresses.",
    security=Security.WITHDRAW, weight=900, tag="wallet", registry=ENDPOINTS,
    params=(Param("coin", required=True), Param("network"), Param("address", required=True), Param("addressTag"),
            Param("amount", "number", required=True), Param("beneficiaryName"), Param("beneficiaryVasp"), *SIGNED),
)  # fmt: skip
async def withdraw(ctx: ApiContext, call: Call) -> dict[str, Any]:
    p = call.params
    try:
        view = await _wallet(ctx).request_withdrawal(
            call.account,
            asset=p.text("coin", required=True).upper(),
            amount=p.text("amount", required=True),
            address=p.text("address", required=True),
            chain=p.text("network") or None,
            memo=p.text("addressTag"),
            beneficiary_name=p.text("beneficiaryName"),  # travel rule declarations (docs/travel-rule.md)
            beneficiary_vasp=p.text("beneficiaryVasp"),
        )
    except WalletError as exc:
        raise _refused(exc) from None
    return {"id": str(view.id)}


@endpoint(
    "GET", "/sapi/v1/capital/withdraw/history", "Your withdrawals, newest first, each with its stage.",
    security=Security.USER_DATA, weight=18, tag="wallet", registry=ENDPOINTS,
    params=(Param("coin"), Param("status", "integer"), Param("limit", "integer"), *SIGNED),
)  # fmt: skip
async def withdraw_history(ctx: ApiContext, call: Call) -> list[dict[str, Any]]:
    p = call.params
    coin = p.text("coin").upper()
    limit = p.integer("limit", default=1000, low=1, high=1000)
    status = p.integer("status", default=-1) if "status" in p else None
    rows = [
        _withdrawal_json(w) for w in _wallet(ctx).withdrawals(call.account, limit=1000) if not coin or w.asset == coin
    ]
    return [r for r in rows if status is None or r["status"] == status][:limit]


@endpoint(
    "POST", "/sapi/v1/capital/withdraw/cancel", "Cancel one of your withdrawals before it is approved.",
    security=Security.WITHDRAW, weight=10, tag="wallet", registry=ENDPOINTS,
    params=(Param("id", required=True), *SIGNED),
)  # fmt: skip
async def cancel_withdrawal(ctx: ApiContext, call: Call) -> dict[str, Any]:
    try:
        view = await _wallet(ctx).cancel_withdrawal(call.account, call.params.integer("id", required=True))
    except WalletError as exc:
        raise _refused(exc) from None
    return _withdrawal_json(view)


@endpoint(
    "GET", "/sapi/v1/capital/withdraw/address/list", "Your whitelisted withdrawal addresses.",
    security=Security.USER_DATA, weight=10, params=SIGNED, tag="wallet", registry=ENDPOINTS,
)  # fmt: skip
async def whitelist(ctx: ApiContext, call: Call) -> list[dict[str, Any]]:
    return [
        {
            "address": e.address,
            "addressTag": e.memo,
            "coin": e.asset,
            "name": e.label,
            "network": e.chain,
            "origin": "portal",
            "originType": "others",
            "whiteStatus": e.usable_from_ms <= call.now_ms,
            "usableFrom": e.usable_from_ms,
        }
        for e in _wallet(ctx).whitelist(call.account)
    ]


@endpoint(
    "GET", "/sapi/v1/account/status", "Whether the account is in good standing.",
    security=Security.USER_DATA, weight=1, params=SIGNED, tag="account", registry=ENDPOINTS,
)  # fmt: skip
async def account_status(ctx: ApiContext, call: Call) -> dict[str, Any]:
    user = ctx.identity.user(call.account)
    return {"data": "Normal" if user is not None and not user.disabled else "Disabled"}


@endpoint(
    "GET", "/sapi/v1/account/kyc", "Your identity verification: tier, review status and what it allows.",
    security=Security.USER_DATA, weight=1, params=SIGNED, tag="account", registry=ENDPOINTS,
)  # fmt: skip
async def kyc_status(ctx: ApiContext, call: Call) -> dict[str, Any]:
    user = ctx.identity.user(call.account)
    if user is None:
        raise ApiError(INVALID_PARAMETER, "This key's account no longer exists.")
    return {"tier": user.kyc_tier, "status": user.kyc_status, "canWithdraw": user.kyc_tier >= 1}


def _key_json(key: Any, now_ms: int) -> dict[str, Any]:
    return {
        "apiKey": key.key,
        "label": key.label,
        "ipRestrict": bool(key.allowed_ips),
        "ipList": list(key.allowed_ips),
        "createTime": key.created_ns // 1_000_000,
        "enableReading": Scope.READ in key.scopes,
        "enableSpotAndMarginTrading": Scope.TRADE in key.scopes,
        "enableWithdrawals": Scope.WITHDRAW in key.scopes,
        "revoked": key.revoked,
    }


@endpoint(
    "GET", "/sapi/v1/account/apiRestrictions", "What the calling API key may do.",
    security=Security.USER_DATA, weight=1, params=SIGNED, tag="account", registry=ENDPOINTS,
)  # fmt: skip
async def api_restrictions(ctx: ApiContext, call: Call) -> dict[str, Any]:
    assert call.key is not None
    out = _key_json(call.key, call.now_ms)
    del out["apiKey"], out["label"], out["revoked"], out["ipList"]
    return out


@endpoint(
    "GET", "/sapi/v1/account/apiKeys", "Your account's API keys (never their secrets).",
    security=Security.USER_DATA, weight=1, params=SIGNED, tag="account", registry=ENDPOINTS,
)  # fmt: skip
async def api_keys(ctx: ApiContext, call: Call) -> list[dict[str, Any]]:
    return [_key_json(k, call.now_ms) for k in ctx.identity.api_keys(call.account)]


@endpoint(
    "DELETE", "/sapi/v1/account/apiKeys", "Revoke one of your account's API keys at once (new keys: the portal).",
    security=Security.USER_DATA, weight=1, params=(Param("apiKey", required=True), *SIGNED), tag="account",
    registry=ENDPOINTS,
)  # fmt: skip
async def revoke_api_key(ctx: ApiContext, call: Call) -> dict[str, Any]:
    try:
        ctx.identity.revoke_api_key(call.account, call.params.text("apiKey", required=True))
    except IdentityError as exc:
        raise ApiError(INVALID_PARAMETER, str(exc)) from None
    return {}
