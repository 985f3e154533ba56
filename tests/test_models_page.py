"""The read-only /models page (web/models.html) in real Chromium against a real server whose ledger holds a test.

Checked with axe-core like every screen of tests/test_browser.py; any console error (a CSP violation among them)
fails the test.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import ServerProcess
from playwright.sync_api import Browser, expect
from test_browser import CHROMIUM, TIMEOUT_MS, browser, check_screen, new_context, watch_errors

from storage.lifecycle import Lifecycle

__all__ = ["browser"]  # the fixture, shared with test_browser.py
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="the chromium binary is not installed")


def _look(games: int, e_better: float, e_futile: float) -> dict[str, object]:
    return {
        "reason": "keep collecting", "threshold": 20.0, "production_games": games, "production_wins": games * 3 // 4,
        "b_games": games, "b_wins": games * 4 // 5, "e_better": e_better, "e_futile": e_futile, "srm_p": 0.5,
    }  # fmt: skip


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_models_page_shows_aliases_the_running_test_and_the_ledger(
    browser: Browser, server_factory: Callable[..., ServerProcess], viewport: str
) -> None:
    server = server_factory()
    with Lifecycle(server.data_dir / "rpsquest.db") as lifecycle:
        lifecycle.record_decision("mlp", "reject", _look(300, 0.2, 30.0), "B", "v2", "v3")
        for games, better, futile in ((20, 1.2, 0.9), (60, 2.5, 0.6), (110, 6.0, 0.3)):
            lifecycle.record_decision("mlp", "continue", _look(games, better, futile))
    context = new_context(browser, viewport)
    page = context.new_page()
    errors = watch_errors(page)
    try:
        page.goto(server.http_url + "/")
        page.get_by_role("link", name="Models and promotion tests").click()
        expect(page).to_have_url(server.http_url + "/models.html")
        mlp = page.locator('section[data-family="mlp"]')
        expect(mlp.locator(".ops-aliases tbody tr")).to_have_count(4, timeout=TIMEOUT_MS)
        for family in ("xgboost", "logistic"):
            expect(page.locator(f'section[data-family="{family}"] .ops-aliases tbody tr')).to_have_count(4)
            expect(page.locator(f'section[data-family="{family}"]')).to_contain_text("The ledger is empty.")
        expect(mlp.locator(".ops-aliases tbody th").first).to_have_text("Production")
        expect(mlp.locator(".ops-summary")).to_contain_text("Running test: Production 82 of 110 (75 %)")
        chart = mlp.locator("svg.ops-chart")
        expect(chart.locator("circle.ops-better")).to_have_count(3)  # the running test's looks, not the ended one's
        expect(chart.locator("polyline.ops-futile")).to_have_count(1)
        expect(chart.locator(".ops-boundary-label")).to_have_text("decide at 20")
        expect(mlp.locator(".ops-ledger tbody tr")).to_have_count(4)
        expect(mlp.locator(".ops-ledger tbody tr").last).to_contain_text("B: v2 → v3")
        expect(page.locator("#updated")).to_contain_text("Manifest generation")
        check_screen(page, f"models-{viewport}")
        assert not errors, errors
    finally:
        context.close()
