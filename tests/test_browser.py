"""The browser client (web/) against the real server, driven by Debian's chromium through Playwright.

Needs the `chromium` binary on PATH (never `playwright install`); skipped otherwise.
Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import hashlib
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="the chromium binary is not installed (apt-get install chromium)"
)

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MOVES = ("rock", "paper", "scissors")
TIMEOUT_MS = 15_000


class LiveServer(Protocol):
    @property
    def http_url(self) -> str: ...

    @property
    def ws_url(self) -> str: ...


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM is not None
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def watch_errors(page: Page) -> list[str]:
    """Collect page errors and console errors (CSP violations show up there)."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    page.on("response", lambda r: errors.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    return errors


def rows(page: Page) -> int:
    return page.locator("#history tr[data-round]").count()


def score(page: Page, side: str) -> float:
    return float(page.locator(f"#score-{side}").inner_text())


def play_round(page: Page, move: str) -> None:
    """Click `move` and wait for the round's row in the history."""
    played = rows(page)
    button = page.locator(f'#moves button[data-move="{move}"]')
    expect(button).to_be_enabled(timeout=TIMEOUT_MS)
    button.click()
    expect(page.locator(f'#history tr[data-round="{played + 1}"]')).to_have_count(1, timeout=TIMEOUT_MS)


def wait_for_fair_marks(page: Page, count: int) -> None:
    """Every history row verified: `count` marks with class fair-ok, none bad or unknown."""
    expect(page.locator("#history tr[data-round] .fair-ok")).to_have_count(count, timeout=TIMEOUT_MS)
    assert page.locator("#history tr[data-round] .fair-bad").count() == 0
    assert page.locator("#history tr[data-round] .fair-unknown").count() == 0


def test_full_game_against_forrest(browser: Browser, live_server: LiveServer) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = watch_errors(page)
    try:
        page.goto(live_server.http_url + "/")
        expect(page.locator("#opponents button[data-opponent]")).to_have_count(3, timeout=TIMEOUT_MS)
        page.screenshot(path=str(ARTIFACTS / "browser-picker.png"), full_page=True)

        page.fill("#player-name", "Playwright_Tess")
        page.click('#opponents button[data-opponent="forrest"]')
        expect(page.locator("#moves button[data-move='rock']")).to_be_enabled(timeout=TIMEOUT_MS)
        assert page.locator("#game-over").is_hidden()

        rng = random.Random(20240607)
        for round_number in range(1, 21):
            play_round(page, rng.choice(MOVES))
            expect(page.locator("#insight")).to_be_visible()
            if round_number == 4:
                page.screenshot(path=str(ARTIFACTS / "browser-midgame.png"), full_page=True)
            if page.locator("#game-over").is_visible():
                break
        expect(page.locator("#game-over")).to_be_visible()
        played = rows(page)
        assert 1 <= played <= 20

        player, bot = score(page, "player"), score(page, "bot")
        winner = page.locator("#winner").inner_text().strip()
        assert winner in {"You win!", "Forrest wins", "Tie"}
        assert max(player, bot) >= 10.0
        expected = "You win!" if player > bot else "Forrest wins" if bot > player else "Tie"
        assert winner == expected, (winner, player, bot)

        wait_for_fair_marks(page, played)
        version = page.locator("#model-version").inner_text().strip()
        assert version and version != "unknown"
        expect(page.locator("#play-again")).to_be_visible()
        expect(page.locator("#insight")).to_contain_text("Forrest")
        page.screenshot(path=str(ARTIFACTS / "browser-game-over.png"), full_page=True)

        # The pure-JS SHA-256 (used on plain-HTTP deployments) agrees with hashlib.
        for text in ("", "abc", "g-1:3:rock:00ff", "Zoë ✓ 😀", "x" * 1000):
            got = page.evaluate("t => window.RPSQ_SHA256.sha256Hex(t)", text)
            assert got == hashlib.sha256(text.encode()).hexdigest()

        # Play again: a fresh game against the same opponent.
        page.click("#play-again")
        expect(page.locator("#history tr[data-round]")).to_have_count(0, timeout=TIMEOUT_MS)
        expect(page.locator("#game-over")).to_be_hidden()
        expect(page.locator("#score-player")).to_have_text("0.0")
        expect(page.locator("#leaderboard")).to_be_visible()
        assert errors == []
    finally:
        context.close()


def test_resume_after_reload_at_phone_width(browser: Browser, live_server: LiveServer) -> None:
    context = browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True)
    page = context.new_page()
    errors = watch_errors(page)
    try:
        page.goto(live_server.http_url + "/")
        expect(page.locator("#opponents button[data-opponent]")).to_have_count(3, timeout=TIMEOUT_MS)

        # The page refuses a bad name itself, with a clear message.
        page.fill("#player-name", "<b>bad</b>")
        page.click('#opponents button[data-opponent="brian"]')
        expect(page.locator("#name-error")).to_be_visible()
        expect(page.locator("#name-error")).to_contain_text("letters")
        assert page.locator("#game").is_hidden()
        page.fill("#player-name", "")

        page.click('#opponents button[data-opponent="brian"]')
        play_round(page, "rock")
        play_round(page, "scissors")
        wait_for_fair_marks(page, 2)
        before = (score(page, "player"), score(page, "bot"))

        # Phone width: the move buttons are visible and nothing overflows horizontally.
        for move in MOVES:
            button = page.locator(f'#moves button[data-move="{move}"]')
            expect(button).to_be_visible()
            box = button.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360
            assert box["height"] >= 44  # touch target
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        page.screenshot(path=str(ARTIFACTS / "browser-phone-game.png"), full_page=True)

        page.reload()
        expect(page.locator("#history tr[data-round]")).to_have_count(2, timeout=TIMEOUT_MS)
        assert (score(page, "player"), score(page, "bot")) == before
        wait_for_fair_marks(page, 2)
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        page.screenshot(path=str(ARTIFACTS / "browser-phone-resumed.png"), full_page=True)

        play_round(page, "paper")
        expect(page.locator("#history tr[data-round]")).to_have_count(3)
        wait_for_fair_marks(page, 3)
        assert score(page, "player") + score(page, "bot") > sum(before)
        assert errors == []
    finally:
        context.close()
