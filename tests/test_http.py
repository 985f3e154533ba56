"""The HTTP side of the server (health, page, metrics, API) against a real server process."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine
from contextlib import closing
from dataclasses import dataclass
from email.message import Message
from typing import Any, TypeVar

from conftest import ServerProcess
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect as websockets_connect

from clients.client import Client, ClientGame
from engine.rules import MOVES
from storage.records import Decision
from storage.rows import decode_pending

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@dataclass
class Reply:
    status: int
    headers: Message
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return json.loads(self.body)


def get(server: ServerProcess, path: str, method: str = "GET") -> Reply:
    try:
        with urllib.request.urlopen(
            urllib.request.Request(server.http_url + path, method=method), timeout=10
        ) as response:
            return Reply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Reply(error.code, error.headers, error.read())


async def play_to_end(client: Client, game: ClientGame, seed: int = 0) -> None:
    rng = random.Random(seed)
    while game.open_round is not None:
        played, answer, _ = await client.move(game, rng.randrange(3))
        assert played is not None, answer


async def play_games(url: str, plan: list[tuple[str, str | None, str | None]], seed: int = 0) -> list[ClientGame]:
    """Play each (opponent, player, tag) of `plan` to its end, one connection each (within the rate limit)."""
    games = []
    for i, (opponent, player, tag) in enumerate(plan):
        client = await Client.open(url)
        game = await client.start(opponent, player=player, tag=tag)
        await play_to_end(client, game, seed=seed + i)
        await client.close()
        games.append(game)
    return games


def stored_pending(server: ServerProcess, game_id: str) -> Decision:
    """The open round's decision as the server stored it (with the last round played)."""
    with closing(sqlite3.connect(f"file:{server.data_dir / 'rpsquest.db'}?mode=ro", uri=True)) as db:
        (blob,) = db.execute(
            "SELECT pending FROM rounds WHERE game_id = ? ORDER BY round DESC LIMIT 1", (game_id,)
        ).fetchone()
    pending = decode_pending(blob, game_id, [])  # its features, not checked here, as if no round were played
    assert pending is not None
    return pending


def metric_samples(server: ServerProcess) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    reply = get(server, "/metrics")
    assert reply.status == 200
    out = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            out[sample.name, frozenset(sample.labels.items())] = sample.value
    return out


def total(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """The sum of every sample called `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(value for (n, got), value in samples.items() if n == name and wanted <= got)


# -- health and the page ----------------------------------------------------------------------


def test_healthz_and_readyz(live_server: ServerProcess) -> None:
    health = get(live_server, "/healthz")
    ready = get(live_server, "/readyz")
    assert health.status == 200 and health.json() == {"status": "ok"}
    assert ready.status == 200 and ready.json() == {"status": "ready", "generation": 1}


def test_index_page_has_security_headers(live_server: ServerProcess) -> None:
    page = get(live_server, "/")
    assert page.status == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<title>RPS Quest</title>" in page.text
    csp = page.headers["content-security-policy"]
    assert csp is not None
    directives = {part.split()[0]: part.split()[1:] for part in csp.split(";") if part.strip()}
    assert directives["default-src"] == ["'self'"]
    assert directives["script-src"] == ["'self'"]  # no 'unsafe-inline': injected markup cannot run scripts
    assert directives["object-src"] == ["'none'"]
    assert directives["connect-src"] == ["'self'"]  # WebSockets and requests to this origin only
    assert page.headers["x-content-type-options"] == "nosniff"
    # Every response carries them, also the API's and the errors'.
    for path in ("/api/opponents", "/api/games/nope", "/js/main.js"):
        reply = get(live_server, path)
        assert reply.headers["content-security-policy"] == csp, path
        assert reply.headers["x-content-type-options"] == "nosniff", path


# -- metrics ------------------------------------------------------------------------------------


def test_metrics_counters_move_after_a_game(live_server: ServerProcess) -> None:
    reply = get(live_server, "/metrics")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain")
    assert "# TYPE rpsquest_rounds_total counter" in reply.text
    for generation in "012":  # every generation's pauses, from the start (zero until it collects)
        assert f'rpsquest_gc_pause_seconds_count{{generation="{generation}"}}' in reply.text

    before = metric_samples(live_server)
    for _ in range(3):
        assert get(live_server, "/healthz").status == 200
    (game,) = run(play_games(live_server.ws_url, [("logan", None, "loadtest")], seed=5))
    after = metric_samples(live_server)

    played = len(game.rounds)
    assert played >= 5

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert delta("rpsquest_rounds_total", opponent="logan", tag="loadtest") == played
    assert delta("rpsquest_games_started_total", opponent="logan", tag="loadtest") == 1
    assert delta("rpsquest_games_finished_total", opponent="logan", tag="loadtest", winner=str(game.winner)) == 1
    assert game.final is not None  # the arm that served it is revealed at the end
    arm = {"family": "logistic", "alias": game.final["insight"]["alias"], "version": game.final["insight"]["version"]}
    assert delta("rpsquest_arm_games_total", winner=str(game.winner), **arm) == 1
    assert delta("rpsquest_move_seconds_count") == played
    assert delta("rpsquest_http_requests_total", method="GET", route="/healthz", status="200") == 3
    assert delta("rpsquest_http_requests_total", method="GET", route="/metrics", status="200") >= 1


# -- /api/opponents ---------------------------------------------------------------------------


def test_opponents_win_rates_count_finished_human_games_only(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory()
    empty = get(server, "/api/opponents").json()["opponents"]
    assert [(o["id"], o["family"], o["games"], o["bot_win_rate"]) for o in empty] == [
        ("brian", "mlp", 0, None),
        ("forrest", "xgboost", 0, None),
        ("logan", "logistic", 0, None),
    ]

    plan: list[tuple[str, str | None, str | None]] = [
        ("brian", "Ann", None),
        ("brian", "Bob", None),
        ("brian", None, None),  # unnamed people are people too
        ("brian", "Ann", "sim"),
        ("brian", None, "sim"),
        ("forrest", "Cy", None),
        ("forrest", None, "loadtest"),
        ("logan", "Ann", "sim"),
    ]

    async def scenario() -> list[ClientGame]:
        games = await play_games(server.ws_url, plan, seed=100)
        client = await Client.open(server.ws_url)  # an unfinished human game does not count
        unfinished = await client.start("logan", player="Dee")
        await client.move(unfinished, 0)
        await client.close()
        return games

    games = run(scenario())
    expected: dict[str, tuple[int, int]] = {}
    for (opponent, _, tag), game in zip(plan, games, strict=True):
        if tag is None:
            n, bot = expected.get(opponent, (0, 0))
            expected[opponent] = (n + 1, bot + (game.winner == "bot"))

    opponents = get(server, "/api/opponents").json()["opponents"]
    assert [o["id"] for o in opponents] == ["brian", "forrest", "logan"]
    assert [o["name"] for o in opponents] == ["Brian", "Forrest", "Logan"]
    for o in opponents:
        games_count, bot_wins = expected.get(o["id"], (0, 0))
        assert o["games"] == games_count, o
        assert o["bot_win_rate"] == (round(bot_wins / games_count, 4) if games_count else None), o


# -- /api/games/{id} ----------------------------------------------------------------------------


def test_game_record_shows_rounds_but_never_the_token(live_server: ServerProcess) -> None:
    async def scenario() -> tuple[ClientGame, list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
        client = await Client.open(live_server.ws_url)
        game = await client.start("forrest", player="Recorder")
        answers = []
        for move in (0, 1):
            played, answer, _ = await client.move(game, move)
            assert played is not None
            answers.append(answer)
        midway = get(live_server, f"/api/games/{game.game_id}")
        assert midway.status == 200
        assert game.token is not None and game.token not in midway.text
        open_round = stored_pending(live_server, game.game_id)
        assert open_round.round == 3 and open_round.nonce not in midway.text  # the open round stays secret
        await play_to_end(client, game, seed=9)
        await client.close()
        final = get(live_server, f"/api/games/{game.game_id}")
        assert final.status == 200
        assert game.token not in final.text
        return game, answers, midway.json(), final.json()

    game, answers, midway, final = run(scenario())
    assert "token" not in midway and "token_hash" not in midway
    assert midway["game_id"] == game.game_id and midway["opponent"] == "forrest" and midway["family"] == "xgboost"
    assert midway["player"] == "Recorder" and midway["tag"] == "human"
    assert midway["over"] is False and midway["abandoned"] is False
    for hidden in ("alias", "version", "opening"):
        assert hidden not in midway  # blind A/B while the game runs
    assert [r["round"] for r in midway["rounds"]] == [1, 2]
    for r, answer in zip(midway["rounds"], answers, strict=True):
        assert r["player_move"] == answer["player_move"] and r["bot_move"] == answer["bot_move"]
        assert r["outcome"] == answer["outcome"] and r["nonce"] == answer["nonce"]
        assert r["score"] == answer["score"]
    assert midway["score"] == answers[-1]["score"]

    assert final["over"] is True and "token" not in final
    assert final["rounds"][:2] == midway["rounds"]
    assert len(final["rounds"]) == len(game.rounds)
    for r, played in zip(final["rounds"], game.rounds, strict=True):
        assert r["round"] == played.number
        assert r["player_move"] == MOVES[played.player] and r["bot_move"] == MOVES[played.bot]
        assert r["values"] == {m: v / 10 for m, v in zip(MOVES, played.values, strict=True)}
        assert r["score"] == {"player": played.score_player / 10, "bot": played.score_bot / 10}
    assert final["score"] == {"player": game.score[0] / 10, "bot": game.score[1] / 10}
    assert game.final is not None
    assert final["rounds"][-1]["nonce"] == game.final["nonce"]
    assert final["alias"] == game.final["insight"]["alias"] and final["alias"] in ("Production", "B")
    assert final["version"] == game.final["insight"]["version"]
    assert final["opening"] == "policy"  # how rounds 1-3 were played: by the bot's policy (docs/bot.md)
    for r, answer in zip(final["rounds"][:2], answers, strict=True):
        assert r["insight"] == {k: answer["insight"][k] for k in ("source", "probs", "ev")}


def test_unknown_game_is_a_json_404(live_server: ServerProcess) -> None:
    reply = get(live_server, "/api/games/no-such-game")
    assert reply.status == 404
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.json()["error"] == "unknown_game"


# -- /api/leaderboard ---------------------------------------------------------------------------


def test_leaderboard_ranks_named_human_players(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory()
    plan: list[tuple[str, str | None, str | None]] = [
        *[("brian", "Ann", None)] * 3,
        *[("brian", "Bob", None)] * 3,
        *[("brian", "Cy", None)] * 2,
        *[("brian", "Ann", "sim")] * 3,  # sim games never count, even under a human's name
        *[("brian", "Simmy", "sim")] * 2,  # a name seen only in sim games never appears
        *[("brian", None, None)] * 2,  # unnamed players are not ranked
        *[("forrest", "Bob", None)] * 2,
        ("forrest", "Lou", "loadtest"),
    ]
    games = run(play_games(server.ws_url, plan, seed=200))

    tally: dict[tuple[str, str], tuple[int, int]] = {}
    for (opponent, player, tag), game in zip(plan, games, strict=True):
        if tag is None and player is not None:
            wins, count = tally.get((opponent, player), (0, 0))
            tally[opponent, player] = (wins + (game.winner == "player"), count + 1)

    def expected_board(opponent: str) -> list[dict[str, Any]]:
        rows = [(p, w, n) for (o, p), (w, n) in tally.items() if o == opponent]
        rows.sort(key=lambda row: (-row[1], row[2], row[0]))
        return [{"player": p, "wins": w, "games": n} for p, w, n in rows]

    board = get(server, "/api/leaderboard").json()
    assert [b["opponent"] for b in board["opponents"]] == ["brian", "forrest", "logan"]
    by_opponent = {b["opponent"]: b["players"] for b in board["opponents"]}
    assert by_opponent["brian"] == expected_board("brian")
    assert by_opponent["forrest"] == expected_board("forrest")
    assert by_opponent["logan"] == []
    names = {row["player"] for rows in by_opponent.values() for row in rows}
    assert names == {"Ann", "Bob", "Cy"}


def test_player_name_with_markup_is_never_stored(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory()
    hostile = [
        "<script>alert(1)</script>",
        "<b>",
        "a<b",
        "Tom & Jerry",
        'say "hi"',
        "O'Brien",
        "x\u200by",  # zero-width space
        "e\u0301",  # a combining accent
        "line\nbreak",
        "tab\tname",
        "\uff1cscript\uff1e",  # full-width angle brackets
    ]

    async def scenario() -> list[dict[str, Any]]:
        client = await Client.open(server.ws_url)
        answers = [await client.request({"type": "start", "opponent": "brian", "player": name}) for name in hostile]
        game = await client.start("brian", player="Fine Name_1")  # the connection still plays
        await play_to_end(client, game)
        await client.close()
        return answers

    answers = run(scenario())
    assert [(a["type"], a["code"]) for a in answers] == [("error", "bad_message")] * len(hostile)
    with closing(sqlite3.connect(f"file:{server.data_dir / 'rpsquest.db'}?mode=ro", uri=True)) as db:
        names = [row[0] for row in db.execute("SELECT name FROM players")]
        games = db.execute("SELECT COUNT(*) FROM games").fetchone()[0]
    assert names == ["Fine Name_1"]
    assert games == 1
    board = get(server, "/api/leaderboard").text
    assert "<" not in board and "script" not in board


# -- /api/players/{key} -----------------------------------------------------------------------------


def test_a_returning_player_is_remembered_until_they_ask_to_be_forgotten(live_server: ServerProcess) -> None:
    key = "Http_returning-player-01"

    async def start(connection: Any) -> dict[str, Any]:
        await connection.send(json.dumps({"type": "start", "opponent": "brian", "key": key}))
        answer: dict[str, Any] = json.loads(await connection.recv())
        return answer

    async def play(connection: Any, game: dict[str, Any]) -> None:
        next_round = game["next"]
        while next_round is not None:
            move = {"type": "move", "game_id": game["game_id"], "round": next_round["round"], "move": "rock"}
            await connection.send(json.dumps(move))
            next_round = json.loads(await connection.recv())["next"]

    async def scenario() -> tuple[int, int, Reply, int]:
        async with websockets_connect(live_server.ws_url, compression=None) as connection:
            await connection.recv()  # welcome
            first = await start(connection)
            await play(connection, first)
            second = await start(connection)
            await play(connection, second)
            back = await start(connection)
            forgotten = await asyncio.to_thread(get, live_server, f"/api/players/{key}", "DELETE")
            after = await start(connection)
            return first["remembered"], back["remembered"], forgotten, after["remembered"]

    first, back, forgotten, after = run(scenario())
    assert (first, back) == (0, 2)
    assert forgotten.status == 200 and forgotten.json() == {"forgotten": 3}
    assert after == 0
    bad = get(live_server, "/api/players/short", "DELETE")
    assert bad.status == 400 and bad.json()["error"] == "bad_request"
