"""A small client of the venue's public API (and operator API), for the demo and tests."""

from __future__ import annotations

from typing import Any

import aiohttp


class VenueClient:
    """Speaks /info, /exchange and /operator/deposit of one gateway."""

    def __init__(self, base_url: str, operator_token: str = "local-operator-token") -> None:
        self.base_url = base_url.rstrip("/")
        self.operator_token = operator_token
        self._session: aiohttp.ClientSession | None = None
        self._nonce = 0

    async def __aenter__(self) -> VenueClient:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session:
            await self._session.close()

    async def _post(self, path: str, body: dict[str, Any], **headers: str) -> Any:
        assert self._session is not None, "use VenueClient as an async context manager"
        async with self._session.post(self.base_url + path, json=body, headers=headers) as resp:
            return await resp.json()

    async def info(self, kind: str, **fields: Any) -> Any:
        return await self._post("/info", {"type": kind, **fields})

    async def deposit(self, user: str, usd: str) -> Any:
        return await self._post(
            "/operator/deposit",
            {"user": user, "usd": usd},
            Authorization=f"Bearer {self.operator_token}",
        )

    async def action(self, account: str, action: dict[str, Any]) -> Any:
        self._nonce += 1
        return await self._post(
            "/exchange", {"action": action, "nonce": self._nonce, "account": account}
        )

    async def limit_order(
        self,
        account: str,
        asset: int,
        is_buy: bool,
        px: str,
        sz: str,
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
        reply = await self.action(account, {"type": "order", "orders": [order], "grouping": "na"})
        if reply.get("status") != "ok":
            return reply
        return reply["response"]["data"]["statuses"][0]
