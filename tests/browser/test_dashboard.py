"""The risk dashboard in a real headless browser against the venue's services: the page
loads and shows the markets, a trade made through the signed API appears on it, its
what-if answer equals the engine's own numbers, and an account liquidated after the
oracle's price drops shows on its liquidation feed with the equity and maintenance the
what-if predicted. Screenshots are saved (their paths are printed)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sim.client import VenueClient, wallet
from tests.browser.conftest import Stack

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

VICTIM = wallet(0xDA5B0A)
MAKER = wallet(0xDA5B0B)
WAIT_S = 45.0
START_S = 120.0  # services starting on a loaded machine: the oracle's first valid price


class Page:
    """The dashboard in the browser, with bounded waits that leave a screenshot."""

    def __init__(self, driver: Any, folder: Path) -> None:
        self.driver = driver
        self.folder = folder

    def shot(self, name: str) -> Path:
        path = self.folder / f"{name}.png"
        self.driver.save_screenshot(str(path))
        print(f"screenshot: {path}")
        return path

    def wait(self, what: str, check: Callable[[], Any], timeout_s: float = WAIT_S) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                found = check()
            except Exception:  # the element is not there yet (or was just re-rendered)
                found = None
            if found:
                return found
            if time.monotonic() > deadline:
                path = self.shot("timeout")
                pytest.fail(f"the page did not show {what} within {timeout_s} s (see {path})")
            time.sleep(0.2)

    def text(self, css: str) -> str:
        from selenium.webdriver.common.by import By

        return str(self.driver.find_element(By.CSS_SELECTOR, css).text)

    def count(self, css: str) -> int:
        from selenium.webdriver.common.by import By

        return len(self.driver.find_elements(By.CSS_SELECTOR, css))

    def what_if(self, prices: dict[str, str], scenario: str = "") -> None:
        """Fill the what-if form (empty prices: the current marks) and wait for its answer."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import Select

        before = self.driver.find_element(By.ID, "whatif-form").get_attribute("data-done")
        Select(self.driver.find_element(By.ID, "scenario")).select_by_value(scenario)
        for coin in ("BTC", "ETH", "SOL"):
            field = self.driver.find_element(By.ID, f"price-{coin}")
            field.clear()
            if coin in prices:
                field.send_keys(prices[coin])
        self.driver.find_element(By.ID, "whatif-run").click()

        def answered() -> bool:
            done = self.driver.find_element(By.ID, "whatif-form").get_attribute("data-done")
            return bool(done) and done != before

        self.wait("the what-if answer", answered)


async def wait_index(client: VenueClient, coin: str, px: str) -> None:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        venue = await client.info("venueState")
        row = next(m for m in venue["markets"] if m["coin"] == coin)
        if row["oraclePx"] == px and row["markPx"] == px and row["oracleStatus"] == "valid":
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{coin} never marked at {px}: {venue}")


async def test_the_dashboard_shows_trades_what_if_and_liquidations_live(
    stack: Stack, browser: Any, artifacts: Path
) -> None:
    victim, maker = VICTIM.address.lower(), MAKER.address.lower()
    page = Page(browser, artifacts)
    async with VenueClient(stack.url, stack.operator_url) as client:
        await wait_index(client, "BTC", "100000")
        browser.get(f"{stack.url}/dashboard#{victim}")

        # the venue view: every market with its oracle, mark and validity
        page.wait("three markets", lambda: page.count("#markets tbody tr") == 3)
        page.wait(
            "BTC marked at 100000", lambda: page.text('tr[data-coin="BTC"] .mark') == "100000"
        )
        assert page.text('tr[data-coin="BTC"] .oracle-status') == "valid"
        page.wait("the connection open", lambda: page.text("#connection") == "open")
        page.shot("1-venue")

        # a trade through the signed API: $550 buys 0.1 BTC at 100000 from a resting ask
        await client.deposit(maker, "50000")
        await client.deposit(victim, "550")
        now = int(time.time() * 1000)
        ask = await client.limit_order(MAKER, 0, False, "100000", "0.1", now)
        assert "resting" in ask, ask
        fill = await client.limit_order(VICTIM, 0, True, "100000", "0.1", now, tif="Ioc")
        assert fill["filled"]["totalSz"] == "0.1", fill
        trade = 'li[data-coin="BTC"][data-px="100000"][data-sz="0.1"]'
        page.wait("the trade on the feed", lambda: page.count(f"#trades {trade}") == 1)

        # the account view, live: $550 less the $4.5 taker fee, and the liquidation price
        # where 545.5 + 0.1 (p - 100,000) = 1% of 0.1 p, p = 9,454.5 / 0.099 = 95,500
        position = '#positions tr[data-coin="BTC"]'
        page.wait("the position", lambda: page.text(f"{position} .szi") == "0.1")
        page.wait("its distance", lambda: page.text(f"{position} .distance") != "-")
        engine = await client.info("clearinghouseState", user=victim)
        liq = engine["assetPositions"][0]["position"]["liquidationPx"]
        assert liq == "95500"
        assert page.text(f"{position} .liq") == liq
        assert page.text(f"{position} .distance") == "4.5%"
        assert page.text("#equity") == engine["marginSummary"]["accountValue"] == "545.5"
        assert page.text("#withdrawable") == engine["withdrawable"]
        page.shot("2-trade")

        # what-if at the current marks: exactly the engine's numbers
        page.what_if({})
        cross = engine["crossMarginSummary"]
        assert page.text("#whatif-equity") == cross["accountValue"] == "545.5"
        assert page.text("#whatif-initial") == cross["totalMarginUsed"] == "500"
        assert page.text("#whatif-maintenance") == engine["crossMaintenanceMarginUsed"] == "100"
        assert page.text("#whatif-withdrawable") == engine["withdrawable"]
        assert page.text('#whatif-positions tr[data-coin="BTC"] .liq') == liq
        assert page.text("#whatif-status") == "above maintenance"

        # what-if BTC at 95000: 545.5 - 500 = $45.5 against 1% of $9,500: liquidated
        page.what_if({"BTC": "95000"})
        assert page.text("#whatif-equity") == "45.5"
        assert page.text("#whatif-maintenance") == "95"
        assert page.text("#whatif-status") == "liquidated"
        row = '#whatif-positions tr[data-coin="BTC"]'
        page.wait("the BTC row liquidated", lambda: page.count(f'{row}[data-liquidated="true"]'))
        page.shot("3-what-if")

        # a scenario of the grid: all-100 takes BTC down its 4% volatility, to 96,000
        page.what_if({}, scenario="all-100")
        assert page.text('#whatif-positions tr[data-coin="BTC"] .mark') == "96000"
        assert page.text("#whatif-equity") == "145.5"
        assert page.text("#whatif-status") == "above maintenance"

        # a bad price is refused with the API's message, on the page and over HTTP
        page.what_if({"BTC": "-5"})
        assert "must be positive" in page.text("#whatif-error")
        refused = await client.info("whatIf", user=victim, prices={"DOGE": "1"})
        assert refused == {"status": "err", "response": "unknown market 'DOGE'"}

        # the oracle's sources drop to 95000: risk liquidates the account, and the page's
        # feed shows the trigger with the equity and maintenance the what-if predicted
        stack.restart_oracle("BTC=95000,ETH=3500,SOL=150")
        step = f'#liquidations li[data-user="{victim}"][data-stage="triggered"]'
        page.wait("the liquidation on the feed", lambda: page.count(step) >= 1, timeout_s=START_S)
        text = page.text(step)
        assert "equity 45.5 → " in text and "(maintenance 95)" in text, text
        page.wait("the margin call", lambda: "Margin call" in page.text("#notifications"))
        page.wait("BTC marked at 95000", lambda: page.text('tr[data-coin="BTC"] .mark') == "95000")
        page.shot("4-liquidation")
