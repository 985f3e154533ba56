"""The browser client (web/) against the real server, driven by Debian's chromium through Playwright.

Needs the `chromium` binary on PATH (never `playwright install`); skipped otherwise. Every screen is
checked with axe-core (axe-playwright-python): a serious or critical violation fails the test.
Screenshots go to test-artifacts/, one set per viewport (desktop 1280x800, phone 390x844).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import shutil
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import pytest
from axe_playwright_python.sync_playwright import Axe
from conftest import ServerProcess
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from clients.client import Client

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
VIEWPORTS = {"desktop": (1280, 800), "phone": (390, 844)}
AXE = Axe()


class LiveServer(Protocol):
    @property
    def http_url(self) -> str: ...


class RestartableServer(LiveServer, Protocol):
    def start(self, timeout: float = 60.0) -> None: ...

    def stop(self) -> None: ...


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


def new_context(browser: Browser, viewport: str) -> BrowserContext:
    width, height = VIEWPORTS[viewport]
    phone = viewport == "phone"
    return browser.new_context(viewport={"width": width, "height": height}, is_mobile=phone, has_touch=phone)


def watch_errors(page: Page) -> list[str]:
    """Collect page errors and console errors (CSP violations show up there)."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    page.on("response", lambda r: errors.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    return errors


def check_screen(page: Page, name: str) -> None:
    """axe-core on the page as it is: no serious or critical violation; then a screenshot."""
    results = AXE.run(page)
    bad = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert not bad, f"{name}:\n" + "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}" for v in bad
    )
    page.screenshot(path=str(ARTIFACTS / f"browser-{name}.png"), full_page=True)


def rows(page: Page) -> int:
    return page.locator("#history tr[data-round]").count()


def score(page: Page, side: str) -> float:
    return float(page.locator(f"#score-{side}").inner_text())


def move_boxes(page: Page) -> list[tuple[float, float]]:
    """Where the move buttons are laid out on the page (x, y of each; a hover's transform aside)."""
    boxes = page.evaluate(
        "() => { const g = document.getElementById('moves').getBoundingClientRect();"
        " return [...document.querySelectorAll('#moves button')].map(b =>"
        " [g.x + scrollX + b.offsetLeft, g.y + scrollY + b.offsetTop]); }"
    )
    return [(float(x), float(y)) for x, y in boxes]


def play_round(page: Page, move: str) -> None:
    """Click `move` and wait for the round's row in the history."""
    played = rows(page)
    button = page.locator(f'#moves button[data-move="{move}"]')
    expect(button).to_have_attribute("aria-disabled", "false", timeout=TIMEOUT_MS)
    button.click()
    expect(page.locator(f'#history tr[data-round="{played + 1}"]')).to_have_count(1, timeout=TIMEOUT_MS)


def wait_for_fair_marks(page: Page, count: int) -> None:
    """Every history row verified: `count` marks with class fair-ok, none bad or unknown."""
    expect(page.locator("#history tr[data-round] .fair-ok")).to_have_count(count, timeout=TIMEOUT_MS)
    assert page.locator("#history tr[data-round] .fair-bad").count() == 0
    assert page.locator("#history tr[data-round] .fair-unknown").count() == 0


def focused_id(page: Page) -> str:
    return str(page.evaluate("() => { const a = document.activeElement; return a.id || a.dataset.move || a.tagName; }"))


def check_insight_numbers(page: Page) -> None:
    """The insight's numbers are one round's points (at most 2.0 either way), and the sentence quotes them."""
    shown = [float(t.replace("\u2212", "-")) for t in page.locator("#insight-points .bar-value").all_inner_texts()]
    assert len(shown) == 3 and all(abs(x) <= 2.0 for x in shown), shown
    text = page.locator("#insight-text").inner_text()
    for number in re.findall(r"[+\u2212]\d+\.\d\d|0\.00", text):
        assert float(number.replace("\u2212", "-")) in shown, (number, shown, text)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_full_game_against_forrest(browser: Browser, live_server: LiveServer, viewport: str) -> None:
    context = new_context(browser, viewport)
    page = context.new_page()
    errors = watch_errors(page)
    height = VIEWPORTS[viewport][1]
    try:
        page.goto(live_server.http_url + "/")
        cards = page.locator("#opponents button[data-opponent]")
        expect(cards).to_have_count(3, timeout=TIMEOUT_MS)
        for i in range(3):  # every opponent on the first screen
            box = cards.nth(i).bounding_box()
            assert box is not None and box["y"] + box["height"] <= height, (viewport, i, box)
        check_screen(page, f"{viewport}-picker")

        page.fill("#player-name", "Playwright_Tess")
        page.click('#opponents button[data-opponent="forrest"]')
        expect(page.locator("#moves button[data-move='rock']")).to_have_attribute(
            "aria-disabled", "false", timeout=TIMEOUT_MS
        )
        expect(page.locator("#moves button[data-move='rock']")).to_be_focused()
        assert page.locator("#game-over").is_hidden()
        places = move_boxes(page)
        assert all(y + 44 <= height for _, y in places), places  # the moves are on the first screen

        rng = random.Random(20240607)
        for round_number in range(1, 21):
            move = rng.choice(MOVES)
            play_round(page, move)
            if page.locator("#game-over").is_visible():
                break
            expect(page.locator("#insight")).to_be_visible()
            check_insight_numbers(page)
            # The buttons stay where they were, and the focus stays on the one pressed.
            assert move_boxes(page) == places, (round_number, move_boxes(page), places)
            assert focused_id(page) == move
            expect(page.locator("#announcer")).to_contain_text(f"Round {round_number}:")
            expect(page.locator("#announcer")).to_contain_text("Score: you")
            if round_number == 4:
                check_screen(page, f"{viewport}-midgame")
        expect(page.locator("#game-over")).to_be_visible()
        expect(page.locator("#winner")).to_be_focused()
        played = rows(page)
        assert 1 <= played <= 20

        player, bot = score(page, "player"), score(page, "bot")
        winner = page.locator("#winner").inner_text().strip()
        expected = "You win!" if player > bot else "Forrest wins" if bot > player else "It’s a tie"
        assert winner == expected, (winner, player, bot)
        assert max(player, bot) >= 10.0
        expect(page.locator("#announcer")).to_contain_text("the game")
        expect(page.locator("#final-summary")).to_contain_text("Forrest predicted your move in")
        # Model and version only behind "Details", in words.
        expect(page.locator("#model-version")).to_be_hidden()
        page.locator(".model-facts summary").click()
        version = page.locator("#model-version").inner_text().strip()
        assert version and version != "unknown"
        wait_for_fair_marks(page, played)
        check_insight_numbers(page)
        check_screen(page, f"{viewport}-game-over")

        # A history row's toggle shows that round's insight.
        toggle = page.locator('#history tr[data-round="1"] .round-toggle')
        expect(toggle).to_have_attribute("aria-pressed", "false")
        toggle.click()
        expect(toggle).to_have_attribute("aria-pressed", "true")
        expect(toggle).to_be_focused()
        expect(page.locator("#insight-title")).to_contain_text("round 1")

        # The leaderboard lists winners only.
        expect(page.locator("#leaderboard")).to_be_visible()
        for stat in page.locator("#leaderboard .lb-stat").all_inner_texts():
            assert not stat.startswith("0 "), stat

        # The pure-JS SHA-256 (used on plain-HTTP deployments) agrees with hashlib.
        for text in ("", "abc", "g-1:3:rock:00ff", "Zoë ✓ 😀", "x" * 1000):
            got = page.evaluate("async t => (await import('/js/sha256.js')).sha256Hex(t)", text)
            assert got == hashlib.sha256(text.encode()).hexdigest()

        # Play again: a fresh game against the same opponent.
        page.click("#play-again")
        expect(page.locator("#history tr[data-round]")).to_have_count(0, timeout=TIMEOUT_MS)
        expect(page.locator("#game-over")).to_be_hidden()
        expect(page.locator("#score-player")).to_have_text("0.0")
        assert move_boxes(page) == places
        assert errors == []
    finally:
        context.close()


def test_shortcuts_and_leave_confirmation(browser: Browser, live_server: LiveServer) -> None:
    context = new_context(browser, "desktop")
    page = context.new_page()
    errors = watch_errors(page)
    try:
        page.goto(live_server.http_url + "/")
        page.click('#opponents button[data-opponent="logan"]')
        expect(page.locator("#moves button[data-move='rock']")).to_be_focused(timeout=TIMEOUT_MS)
        page.keyboard.press("r")
        expect(page.locator('#history tr[data-round="1"]')).to_have_count(1, timeout=TIMEOUT_MS)
        expect(page.locator('#history tr[data-round="1"] .c-move').first).to_have_attribute("title", "Rock")

        # Shortcuts off (WCAG 2.1.4): the key does nothing, the next round is the button's.
        page.locator("#shortcuts").uncheck()
        page.locator("body").press("p")
        play_round(page, "scissors")
        assert rows(page) == 2
        expect(page.locator('#history tr[data-round="2"] .c-move').first).to_have_attribute("title", "Scissors")
        page.reload()
        expect(page.locator("#shortcuts")).not_to_be_checked(timeout=TIMEOUT_MS)

        # Leaving an unfinished game asks first.
        page.click("#leave-game")
        expect(page.locator("#leave-dialog")).to_be_visible()
        check_screen(page, "desktop-leave-dialog")
        page.get_by_role("button", name="Keep playing").click()
        expect(page.locator("#leave-dialog")).to_be_hidden()
        expect(page.locator("#game")).to_be_visible()
        expect(page.locator("#leave-game")).to_be_focused()
        page.click("#leave-game")
        page.get_by_role("button", name="Leave the game").click()
        expect(page.locator("#picker")).to_be_visible()
        expect(page.locator("#picker-title")).to_be_focused()
        assert page.evaluate("localStorage.getItem('rpsquest.game')") is None
        assert errors == []
    finally:
        context.close()


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_offline_banner_counts_down_and_the_game_resumes(
    browser: Browser, server_factory: Callable[..., RestartableServer], viewport: str
) -> None:
    server = server_factory()
    context = new_context(browser, viewport)
    page = context.new_page()
    try:
        page.goto(server.http_url + "/")
        page.click('#opponents button[data-opponent="brian"]')
        play_round(page, "rock")
        places = move_boxes(page)

        server.stop()
        banner = page.locator("#offline")
        expect(banner).to_be_visible(timeout=TIMEOUT_MS)
        expect(banner).to_contain_text(re.compile(r"Reconnecting( in \d+ s)?…"))
        expect(page.locator("#conn-status")).to_have_text("Offline")
        assert move_boxes(page) == places  # the banner does not push the buttons
        check_screen(page, f"{viewport}-offline")
        # A move while offline is refused out loud, not silently.
        page.locator('#moves button[data-move="paper"]').click(force=True)  # aria-disabled: still focusable
        expect(page.locator("#toast")).to_contain_text("offline", timeout=TIMEOUT_MS)

        server.start()
        page.evaluate("document.getElementById('retry-now').click()")  # the banner may be gone already
        expect(banner).to_be_hidden(timeout=TIMEOUT_MS)
        expect(page.locator("#conn-status")).to_have_text("Connected")
        expect(page.locator("#history tr[data-round]")).to_have_count(1)
        play_round(page, "paper")
        wait_for_fair_marks(page, 2)
    finally:
        context.close()


def test_resume_after_reload_at_phone_width(browser: Browser, live_server: LiveServer) -> None:
    context = new_context(browser, "phone")
    page = context.new_page()
    errors = watch_errors(page)
    width = VIEWPORTS["phone"][0]
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
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
            assert box["height"] >= 44  # touch target
        assert page.evaluate("document.documentElement.scrollWidth") <= width

        page.reload()
        expect(page.locator("#history tr[data-round]")).to_have_count(2, timeout=TIMEOUT_MS)
        assert (score(page, "player"), score(page, "bot")) == before
        wait_for_fair_marks(page, 2)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        check_screen(page, "phone-resumed")

        play_round(page, "paper")
        expect(page.locator("#history tr[data-round]")).to_have_count(3)
        wait_for_fair_marks(page, 3)
        assert score(page, "player") + score(page, "bot") > sum(before)
        assert errors == []
    finally:
        context.close()


async def _finished_game(ws_url: str, player: str) -> str:
    """A whole game played over the protocol by the checking client; its id."""
    client = await Client.open(ws_url)
    game = await client.start("logan", player=player)
    rng = random.Random(5)
    while game.open_round is not None:
        played, answer, _ = await client.move(game, rng.randrange(3))
        assert played is not None, answer
    await client.close()
    return game.game_id


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_replay_page_steps_through_a_finished_game(browser: Browser, live_server: ServerProcess, viewport: str) -> None:
    with ThreadPoolExecutor(1) as thread:  # Playwright's sync API runs an event loop in this thread
        game_id = thread.submit(asyncio.run, _finished_game(live_server.ws_url, f"Replayer {viewport}")).result()
    with urllib.request.urlopen(f"{live_server.http_url}/api/games/{game_id}") as response:
        stored = json.loads(response.read())
    total = len(stored["rounds"])
    context = new_context(browser, viewport)
    try:
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(f"{live_server.http_url}/games/{game_id}")
        expect(page.locator("#replay-title")).to_have_text("Replay: a game against Logan", timeout=TIMEOUT_MS)
        expect(page.locator("#replay-summary")).to_contain_text(f"Replayer {viewport} against Logan")
        expect(page.locator("#round-label")).to_have_text(f"Round {total} of {total}")
        expect(page.locator("#history-body tr")).to_have_count(total)
        check_insight_numbers(page)
        check_screen(page, f"{viewport}-replay-last")

        page.click("#first")
        expect(page.locator("#round-label")).to_have_text(f"Round 1 of {total}")
        first = stored["rounds"][0]
        expect(page.locator("#announcer")).to_contain_text(f"the player played {first['player_move'].capitalize()}")
        expect(page.locator("#insight-title")).to_contain_text("round 1")
        expect(page.locator("#first")).to_be_disabled()
        page.keyboard.press("ArrowRight")
        expect(page.locator("#round-label")).to_have_text(f"Round 2 of {total}")
        toggle = page.locator("#history-body .round-toggle", has_text=re.compile(r"^3$"))
        toggle.click()
        expect(page.locator("#round-label")).to_have_text(f"Round 3 of {total}")
        expect(page.locator('#history-body .round-toggle[aria-pressed="true"]')).to_have_text("3")
        check_insight_numbers(page)
        check_screen(page, f"{viewport}-replay-round3")

        assert errors == []

        page.goto(f"{live_server.http_url}/games/no-such-game")  # the API's 404 is expected here
        expect(page.locator("#replay-error")).to_have_text("There is no such game. Check the link.", timeout=TIMEOUT_MS)
    finally:
        context.close()


def test_a_returning_player_is_remembered_and_can_be_forgotten(browser: Browser, live_server: LiveServer) -> None:
    """The browser keeps a random key: the second game says Brian remembers the first; "Forget me" deletes it."""
    context = new_context(browser, "desktop")
    page = context.new_page()
    errors = watch_errors(page)
    memory = page.locator("#memory-text")
    try:
        page.goto(live_server.http_url + "/")
        page.click('#opponents button[data-opponent="brian"]')
        expect(memory).to_have_text("Brian has not played you before.", timeout=TIMEOUT_MS)
        expect(page.locator("#forget-me")).to_be_hidden()
        key = page.evaluate("JSON.parse(localStorage.getItem('rpsquest.key'))")
        assert re.fullmatch(r"[A-Za-z0-9_-]{32}", key), key
        while not page.locator("#game-over").is_visible():
            play_round(page, "rock")
        page.click("#play-again")
        expect(memory).to_have_text("Brian remembers 1 game with you.", timeout=TIMEOUT_MS)
        check_screen(page, "desktop-remembered")
        page.click("#forget-me")
        expect(page.locator("#toast")).to_contain_text("forgotten your past games", timeout=TIMEOUT_MS)
        expect(page.locator("#memory")).to_be_hidden()
        assert page.evaluate("localStorage.getItem('rpsquest.key')") is None
        page.click("#leave-game")
        page.get_by_role("button", name="Leave the game").click()
        page.click('#opponents button[data-opponent="brian"]')
        expect(memory).to_have_text("Brian has not played you before.", timeout=TIMEOUT_MS)
        assert page.evaluate("JSON.parse(localStorage.getItem('rpsquest.key'))") not in (None, key)
        assert errors == []
    finally:
        context.close()
