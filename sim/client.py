"""An async client of the venue's public API (signed like Hyperliquid's SDK) and of the
operator API, for the demo, the simulator and tests."""

from __future__ import annotations

from typing import Any

import aiohttp
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import Hash32

from libs.common.signing import action_hash, l1_digest

DEFAULT_TOKEN = "local-operator-token"


def wallet(seed: int) -> LocalAccount:
    """A deterministic test key (never for real funds)."""
    key: LocalAccount = Account.from_key(seed.to_bytes(32, "big"))
    return key


def signed_body(
    signer: LocalAccount, action: dict[str, Any], nonce: int, source: str = "b"
) -> dict[str, Any]:
    """An /exchange body for an L1 action, signed the way the SDK signs it."""
    digest = l1_digest(action_hash(action, nonce, None, None), source)  # type: ignore[arg-type]
    signed = signer.unsafe_sign_hash(Hash32(digest))
    signature = {"r": f"0x{signed.r:064x}", "s": f"0x{signed.s:064x}", "v": signed.v}
    return {"action": action, "nonce": nonce, "signature": signature, "vaultAddress": None}


class VenueClient:
    """Speaks /info and signed /exchange of one gateway, and its operator API."""

    def __init__(
        self,
        base_url: str,
        operator_url: str | None = None,
        operator_token: str = DEFAULT_TOKEN,
        source: str = "b",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.operator_url = (operator_url or base_url).rstrip("/")
        self.operator_token = operator_token
        self.source = source
        self._session: aiohttp.ClientSession | None = None
        self._nonce = 0

    async def __aenter__(self) -> VenueClient:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session:
            await self._session.close()

    async def _post(self, url: str, body: dict[str, Any], **headers: str) -> Any:
        assert self._session is not None, "use VenueClient as an async context manager"
        async with self._session.post(url, json=body, headers=headers) as resp:
            return await resp.json()

    async def info(self, kind: str, **fields: Any) -> Any:
        return await self._post(self.base_url + "/info", {"type": kind, **fields})

    async def deposit(self, user: str, usd: str) -> Any:
        return await self._post(
            self.operator_url + "/operator/deposit",
            {"user": user.lower(), "usd": usd},
            Authorization=f"Bearer {self.operator_token}",
        )

    def _next_nonce(self, now_ms: int) -> int:
        self._nonce = max(self._nonce + 1, now_ms)
        return self._nonce

    async def action(self, signer: LocalAccount, action: dict[str, Any], now_ms: int) -> Any:
        """Sign an L1 action the way the SDK does and post it."""
        body = signed_body(signer, action, self._next_nonce(now_ms), self.source)
        return await self._post(self.base_url + "/exchange", body)

    async def limit_order(
        self,
        signer: LocalAccount,
        asset: int,
        is_buy: bool,
        px: str,
        sz: str,
        now_ms: int,
        tif: str = "Gtc",
        reduce_only: bool = False,
    ) -> Any:
        order = {
            "a": asset,
            "b": is_buy,
            "p": px,
            "s": sz,
            "r": reduce_only,
            "t": {"limit": {"tif": tif}},
        }
        reply = await self.action(
            signer, {"type": "order", "orders": [order], "grouping": "na"}, now_ms
        )
        if reply.get("status") != "ok":
            return reply
        return reply["response"]["data"]["statuses"][0]

    async def orders(
        self, signer: LocalAccount, orders: list[dict[str, Any]], now_ms: int
    ) -> list[Any]:
        """One signed order action with several orders; a status per order (a whole
        refusal gives its message as every order's error)."""
        reply = await self.action(
            signer, {"type": "order", "orders": orders, "grouping": "na"}, now_ms
        )
        if reply.get("status") != "ok":
            return [{"error": str(reply.get("response"))}] * len(orders)
        statuses: list[Any] = reply["response"]["data"]["statuses"]
        return statuses

    async def cancel(
        self, signer: LocalAccount, cancels: list[tuple[int, int]], now_ms: int
    ) -> Any:
        """Cancel orders given as (asset, oid)."""
        action = {"type": "cancel", "cancels": [{"a": a, "o": o} for a, o in cancels]}
        return await self.action(signer, action, now_ms)

    async def update_leverage(
        self, signer: LocalAccount, asset: int, leverage: int, now_ms: int, is_cross: bool = True
    ) -> Any:
        action = {
            "type": "updateLeverage",
            "asset": asset,
            "isCross": is_cross,
            "leverage": leverage,
        }
        return await self.action(signer, action, now_ms)

    async def funds(self) -> Any:
        """The insurance fund and the backstop vault (operator API)."""
        assert self._session is not None, "use VenueClient as an async context manager"
        async with self._session.get(
            self.operator_url + "/operator/funds",
            headers={"Authorization": f"Bearer {self.operator_token}"},
        ) as resp:
            return await resp.json()
