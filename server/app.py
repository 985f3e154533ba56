"""The Starlette application: the browser game, the WebSocket protocol and the HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

import engine
from engine.opponents import FAMILIES, OPPONENTS, SERVING_ALIASES
from engine.rules import MOVES, OUTCOMES, outcome, points
from inference import promotion
from inference.pool import ManifestReport, ModelPool, ReloadReport
from inference.settings import Settings
from inference.store import ModelStore, open_store
from server import collector, logfilter, metrics
from server.drain import SHUTTING_DOWN, Drain, intercept_sigterm
from server.games import ONLINE_VERSION, TOO_MANY_GAMES, GameError, GameService, key_hash
from server.messages import (
    PROTOCOL_VERSION,
    BadMessage,
    Error,
    Move,
    OpponentInfo,
    Resume,
    Start,
    Welcome,
    valid_player_key,
)
from server.messages import decode as decode_message
from server.messages import encode as encode_message
from server.origins import OriginPolicy
from server.predict import MAX_BODY as PREDICT_MAX_BODY
from server.predict import BadRequest, decode_request
from server.predict import predict as predict_history
from server.session import CLOSE_POLICY, Session
from storage import RoundRecord, Storage, StorageUnavailable
from storage.database import open_storage

T = TypeVar("T")
log = logging.getLogger("rpsquest")
WEB_DIR = Path(__file__).resolve().parent.parent / "web"
SWEEP_EVERY = 60.0
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:;"
    " object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
_SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
_NOT_BAD = frozenset(("unavailable", "internal", TOO_MANY_GAMES))  # error codes that do not count as bad messages
_MESSAGES = {kind: metrics.ws_messages.labels(kind) for kind in ("binary", "invalid", "start", "resume", "move")}
_WELCOME = encode_message(
    Welcome(protocol=PROTOCOL_VERSION, opponents=[OpponentInfo(o.id, o.name, o.family) for o in OPPONENTS])
)


class HTTPMiddleware:
    """Security headers and request metrics for every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = list(message.get("headers", [])) + _SECURITY_HEADERS
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", "static") if route is not None else "other"
            metrics.http_requests.labels(scope["method"], name, str(status)).inc()
            metrics.http_latency.labels(name).observe(time.perf_counter() - started)


class Server:
    """Holds the running game service and answers every endpoint."""

    def __init__(self, settings: Settings, storage: Storage | None = None, store: ModelStore | None = None) -> None:
        self.settings = settings
        self._storage = storage
        self._store = store
        self.service: GameService | None = None
        self.pool: ModelPool | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._reloading = asyncio.Lock()  # one reload at a time: more would only hold threads waiting on the pool
        self.origins = OriginPolicy(settings.allowed_origins)
        self.drain = Drain()
        self._drained = asyncio.Event()
        self._sessions: set[Session] = set()  # of the open WebSocket connections

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        repeats = logfilter.install(self.settings.log_repeat_interval)  # uvicorn has set up its logging by now
        log.info("engine: %s", engine.ENGINE)
        storage = self._storage
        if storage is None:
            storage = await open_storage(self.settings.database(), max_bytes=int(self.settings.db_max_mb * 2**20))
        store = self._store if self._store is not None else await asyncio.to_thread(open_store, self.settings)
        self.pool = ModelPool(store, lambda family, reason: metrics.model_load_failures.labels(family, reason).inc())
        await self.reload()
        self.service = GameService(
            storage, self.pool, self.settings.ab_split, self.settings.max_live_games, self.settings.game_idle
        )
        collector.install()
        self._tasks = [
            asyncio.create_task(collector.collect_forever()),
            asyncio.create_task(self._sweep_forever()),
            asyncio.create_task(self._watch_models()),
            asyncio.create_task(self._count_log_repeats(repeats)),
        ]
        if self.settings.drain_timeout > 0:
            intercept_sigterm(asyncio.get_running_loop(), self._begin_drain)
        pause_clock = metrics.PauseClock()
        gc.callbacks.append(pause_clock)
        try:
            yield
        finally:
            for task in self._tasks:
                task.cancel()
            gc.callbacks.remove(pause_clock)
            metrics.tally.settle()
            await storage.close()
            logfilter.emit(repeats.summaries(everything=True))

    async def reload(self, force: bool = False) -> ReloadReport:
        """Re-read the alias manifest; new versions are loaded and checked off the event loop, then swapped in."""
        pool = self.pool
        assert pool is not None
        async with self._reloading:
            before = {(f, a): m.version for f, aliases in pool.routes.items() for a, m in aliases.items()}
            try:
                report = await asyncio.to_thread(pool.reload, force)
            except Exception:  # a bug: the pool reports every problem of the store and its files itself
                log.exception("model reload failed; the current versions keep serving")
                pool.manifest = ManifestReport("error", error="the reload failed: see the server log")
                report = pool.report()
            serving = {(f, a, m.version) for f, aliases in pool.routes.items() for a, m in aliases.items()}
            for family, alias, version in serving:
                if before.get((family, alias), version) != version:
                    metrics.model_swaps.labels(family, alias).inc()
            metrics.model_generation.set(pool.generation)
            # a version's label sets go when no alias serves it and no live game uses it
            used = {(f, v) for f, versions in pool.loaded().items() for v in versions}
            used |= {(f, ONLINE_VERSION) for f in FAMILIES}
            if self.service is not None:
                used |= {(live.record.family, live.record.version) for live in self.service.live.values()}
            metrics.show_models(serving, used)
            return report

    async def _watch_models(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reload_interval)
            await self.reload()

    async def _count_log_repeats(self, repeats: logfilter.RepeatFilter) -> None:
        """Write the counts of repeated log records whose interval is over, even when no repeat follows."""
        while True:
            await asyncio.sleep(max(repeats.interval, 1.0))
            logfilter.emit(repeats.summaries())

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(min(SWEEP_EVERY, self.settings.game_idle / 2))
            assert self.service is not None
            try:
                swept = await self.service.sweep(time.time())
                metrics.games_evicted.inc(swept.evicted)
                metrics.games_expired.inc(swept.expired)
                metrics.abandoned.inc(swept.abandoned)
                metrics.live_games.set(len(self.service.live))
            except StorageUnavailable:
                log.warning("abandoned-game sweep skipped: storage unavailable")

    # -- draining (server/drain.py) -------------------------------------------------------

    def _begin_drain(self, stop: Callable[[], None]) -> None:
        """SIGTERM: wait for the open rounds of the games in play here, at most RPSQUEST_DRAIN_TIMEOUT, then stop."""
        assert self.service is not None
        live = self.service.live
        open_rounds = {
            game_id: pending.round
            for session in self._sessions
            for game_id in session.playing
            if game_id in live and (pending := live[game_id].record.pending) is not None
        }
        self.drain.begin(open_rounds)
        log.warning(
            "SIGTERM: draining; no new games, waiting at most %g s for %d open rounds",
            self.settings.drain_timeout, len(open_rounds),
        )  # fmt: skip
        self._tasks.append(asyncio.create_task(self._stop_when_drained(stop)))
        self._check_drained()

    async def _stop_when_drained(self, stop: Callable[[], None]) -> None:
        try:
            await asyncio.wait_for(self._drained.wait(), self.settings.drain_timeout)
        except TimeoutError:
            log.warning("drain timeout: %d open rounds were not played; closing", len(self.drain.waiting))
        stop()

    def _check_drained(self) -> None:
        if self.drain.done:
            self._drained.set()

    # -- WebSocket -----------------------------------------------------------------------

    async def websocket(self, websocket: WebSocket) -> None:
        origin = websocket.headers.get("origin")
        if not self.origins.allows(origin, websocket.headers.get("host")):
            log.warning("WebSocket refused: origin %r is not allowed (RPSQUEST_ALLOWED_ORIGINS)", origin)
            await websocket.close(CLOSE_POLICY)  # before accepting: the handshake is answered 403
            return
        await websocket.accept()
        metrics.ws_connections.inc()
        session = Session(self.settings.rate_limit, self.settings.max_games_per_connection)
        self._sessions.add(session)
        try:
            await self._converse(websocket, session)
        except WebSocketDisconnect:
            pass
        finally:
            metrics.ws_connections.dec()
            self._sessions.discard(session)
            self.drain.gone(session.owned)
            self._check_drained()

    async def _converse(self, websocket: WebSocket, session: Session) -> None:
        await websocket.send_text(_WELCOME)
        while True:
            frame = await websocket.receive()
            if frame["type"] == "websocket.disconnect":
                return
            self.drain.enter()
            try:
                if not await self._reply(websocket, session, frame):
                    return
            finally:
                self.drain.leave()
                self._check_drained()

    async def _reply(self, websocket: WebSocket, session: Session, frame: Message) -> bool:
        """Answer one frame; False when the connection was closed for bad messages."""
        started = time.perf_counter()
        reply: Error | str
        if not session.admit(time.monotonic()):
            reply = Error("rate_limited", f"more than {session.rate_limit} messages in a second; slow down")
        else:
            reply = await self._answer(session, frame)
        if isinstance(reply, Error):
            metrics.ws_errors.labels(reply.code).inc()
            await websocket.send_text(encode_message(reply))
            if reply.code not in _NOT_BAD and session.bad():
                metrics.ws_closes.labels(str(CLOSE_POLICY)).inc()
                await websocket.close(CLOSE_POLICY, "too many bad messages in a row")
                return False
            return True
        session.good()
        await websocket.send_text(reply)
        if reply.startswith('{"type":"result"'):
            metrics.move_latency.observe(time.perf_counter() - started)
        return True

    async def _answer(self, session: Session, frame: Message) -> Error | str:
        """The text to send back for one frame, or the error."""
        text = frame.get("text")
        if text is None:
            _MESSAGES["binary"].inc()
            return Error("bad_message", "binary frames are not accepted: send JSON as text")
        try:
            message = decode_message(text)
        except BadMessage as exc:
            _MESSAGES["invalid"].inc()
            return Error(exc.code, exc.message)
        service = self.service
        assert service is not None
        try:
            if isinstance(message, Start):
                _MESSAGES["start"].inc()
                if self.drain.draining:
                    raise GameError("unavailable", SHUTTING_DOWN)
                self._make_room(session, None)
                game = await service.start(message.opponent, message.player, message.tag, message.key)
                session.take(game.game_id)
                metrics.games_started.labels(game.opponent, message.tag or "human").inc()
                return encode_message(game)
            if isinstance(message, Resume):
                _MESSAGES["resume"].inc()
                game = await service.resume(message.game_id, message.token)
                if not game.over and game.game_id not in session.playing:
                    self._make_room(session, game.game_id)
                session.take(game.game_id, playing=not game.over)
                if game.next is not None:
                    self.drain.resumed(game.game_id, game.next.round)
                return encode_message(game)
            metrics.tally.add(metrics.ws_messages, "move")
            return await self._move(session, message)
        except GameError as exc:
            return Error(exc.code, exc.message, exc.game_id)
        except StorageUnavailable as exc:
            log.warning("storage unavailable: %s", exc)
            return Error(
                "unavailable",
                "the game cannot be served right now; try again shortly",
                getattr(message, "game_id", None),
            )
        except Exception:
            incident = uuid.uuid4().hex[:12]
            log.exception("internal error %s", incident)
            return Error("internal", f"internal error {incident}", getattr(message, "game_id", None))

    def _make_room(self, session: Session, game_id: str | None) -> None:
        """Refuse (too_many_games) when the connection already plays its limit of games."""
        assert self.service is not None
        if not session.has_room(self.service.live):
            metrics.games_refused.labels("connection").inc()
            raise GameError(
                TOO_MANY_GAMES,
                f"this connection already has {session.max_games} games in play: finish one first"
                f" (a game with no move for {self.settings.game_idle:g} s stops counting)",
                game_id,
            )

    async def _move(self, session: Session, message: Move) -> str:
        assert self.service is not None
        if message.game_id not in session.owned:
            if await self.service.exists(message.game_id):
                raise GameError("not_yours", "start or resume this game on this connection first", message.game_id)
            raise GameError("unknown_game", "no such game", message.game_id)
        result = await self.service.move(message.game_id, message.round, message.move)
        self.drain.played(message.game_id, result.round)
        return encode_message(result)

    # -- HTTP ------------------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        if self.drain.draining:
            return JSONResponse({"status": "draining"}, status_code=503)
        if self.service is None or self.pool is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        pool = self.pool
        manifest = msgspec.to_builtins(pool.manifest)
        if not pool.ready:
            missing = [f for f in FAMILIES if "Production" not in pool.routes.get(f, {})]
            body = {"status": "no models", "missing": missing, "manifest": manifest, "rejected": pool.rejected}
            return JSONResponse(body, status_code=503)
        if pool.manifest.status != "ok" or pool.rejected:  # serving, but not what the manifest asks
            return JSONResponse(
                {"status": "degraded", "generation": pool.generation, "manifest": manifest, "rejected": pool.rejected}
            )
        return JSONResponse({"status": "ready", "generation": pool.generation})

    async def metrics(self, request: Request) -> Response:
        now = time.monotonic()
        if self.service is not None and metrics.lifecycle.stale(now):
            try:
                metrics.lifecycle.update(await self.service.storage.lifecycle_figures(), now)
            except StorageUnavailable as exc:  # the figures read last are shown
                log.warning("lifecycle figures not read: %s", exc)
        metrics.tally.settle()
        body = generate_latest(metrics.exposition()) + generate_latest(metrics.database_registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    async def opponents(self, request: Request) -> Response:
        stats = {s.opponent: s for s in await self._storage_call(lambda s: s.opponent_stats())}
        out = []
        for o in OPPONENTS:
            s = stats.get(o.id)
            games = s.games if s else 0
            out.append(
                {
                    "id": o.id,
                    "name": o.name,
                    "family": o.family,
                    "games": games,
                    "bot_win_rate": round(s.bot_wins / games, 4) if s and games else None,
                }
            )
        return JSONResponse({"opponents": out})

    async def game(self, request: Request) -> Response:
        game_id = request.path_params["game_id"]
        record = await self._storage_call(lambda s: s.load_game(game_id))
        if record is None:
            return JSONResponse({"error": "unknown_game", "message": "no such game"}, status_code=404)
        score = (record.rounds[-1].score_player, record.rounds[-1].score_bot) if record.rounds else (0, 0)
        over = record.pending is None
        body: dict[str, object] = {
            "game_id": record.id,
            "opponent": record.opponent,
            "family": record.family,
            "player": record.player,
            "tag": record.tag,
            "over": over,
            "abandoned": record.abandoned,
            "score": {"player": score[0] / 10, "bot": score[1] / 10},
            "created": record.created,
            "updated": record.updated,
            "rounds": [_round_body(r) for r in record.rounds],
        }
        if over:
            body.update(alias=record.alias, version=record.version, opening=record.opening)
        return JSONResponse(body)

    async def forget_player(self, request: Request) -> Response:
        """Unlink a returning player's games from their key (DELETE /api/players/{key}): the bot forgets them."""
        key = request.path_params["key"]
        if not valid_player_key(key):
            return JSONResponse({"error": "bad_request", "message": "key must be 16-64 letters, digits, '_' or '-'"},
                                status_code=400)  # fmt: skip
        return JSONResponse({"forgotten": await self._storage_call(lambda s: s.forget(key_hash(key)))})

    async def replay(self, request: Request) -> Response:
        """The replay page of a game (web/replay.html reads the game from /api/games/{id})."""
        return FileResponse(WEB_DIR / "replay.html")

    async def leaderboard(self, request: Request) -> Response:
        rows = await self._storage_call(lambda s: s.leaderboard(10))
        boards = []
        for o in OPPONENTS:
            players = [{"player": r.player, "wins": r.wins, "games": r.games} for r in rows if r.opponent == o.id]
            boards.append({"opponent": o.id, "name": o.name, "players": players})
        return JSONResponse({"opponents": boards})

    async def models(self, request: Request) -> Response:
        assert self.pool is not None
        tags = self.settings.stats_tags
        live = {(s.family, s.alias, s.version): s for s in await self._storage_call(lambda s: s.version_stats(tags))}
        out: dict[str, object] = {}
        for family in FAMILIES:
            aliases: dict[str, object] = {}
            for alias, model in self.pool.routes.get(family, {}).items():
                card = model.card
                stats = live.get((family, alias, model.version))
                kind = "blend" if alias in SERVING_ALIASES else "model"  # what the arm played; a shadow's own
                rounds = stats.predictions.get(kind, 0) if stats else 0
                correct = stats.correct.get(kind, 0) if stats else 0
                aliases[alias] = {
                    "live": {
                        "rounds": rounds,
                        "accuracy": round(correct / rounds, 4) if rounds else None,
                        "accuracy_of": kind,
                        "games": stats.games if stats else 0,
                        "bot_win_rate": round(stats.bot_wins / stats.games, 4) if stats and stats.games else None,
                        "tags": list(tags),
                    },
                    "version": model.version,
                    "config": card.get("config"),
                    "created": card.get("created"),
                    "sha256": card.get("sha256"),
                    "metrics": card.get("metrics"),
                    "data_window": card.get("data_window"),
                    "mlflow_run_id": card.get("mlflow_run_id"),
                }
            out[family] = aliases
        return JSONResponse({"generation": self.pool.generation, "families": out, "rejected": self.pool.rejected})

    async def promotions(self, request: Request) -> Response:
        family = request.query_params.get("family") or None
        if family is not None and family not in FAMILIES:
            return JSONResponse({"error": "bad_request", "message": f"family must be one of {', '.join(FAMILIES)}"},
                                status_code=400)  # fmt: skip
        try:
            limit = int(request.query_params.get("limit", "50"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 1000:
            return JSONResponse({"error": "bad_request", "message": "limit must be a whole number from 1 to 1000"},
                                status_code=400)  # fmt: skip
        entries = await self._storage_call(lambda s: s.promotions(family, limit))
        return JSONResponse({"promotions": [msgspec.to_builtins(e) for e in entries]})

    def _admin(self, request: Request) -> Response | None:
        """None when the request carries the admin token, else the refusal to send."""
        token = self.settings.admin_token
        if not token:
            return JSONResponse({"error": "forbidden", "message": "admin calls are closed: no admin token is set"},
                                status_code=403)  # fmt: skip
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return JSONResponse({"error": "forbidden", "message": "a valid admin token is required"}, status_code=403)
        return None

    async def predict(self, request: Request) -> Response:
        refused = self._admin(request)
        if refused is not None:
            return refused
        assert self.pool is not None
        try:
            body = decode_request(await _read_body(request, PREDICT_MAX_BODY))
        except BadRequest as exc:
            return JSONResponse({"error": "bad_request", "message": str(exc)}, status_code=400)
        return JSONResponse(predict_history(self.pool, body))

    async def admin_reload(self, request: Request) -> Response:
        refused = self._admin(request)
        if refused is not None:
            return refused
        return JSONResponse(msgspec.to_builtins(await self.reload(force=True)))

    async def admin_promote(self, request: Request) -> Response:
        """Run the promotion rules now (`?dry_run=1`: decide and report, change nothing), then reload."""
        refused = self._admin(request)
        if refused is not None:
            return refused
        assert self.pool is not None
        dry_run = request.query_params.get("dry_run", "0") not in ("0", "false", "")
        try:
            steps = await asyncio.to_thread(promotion.run, self.settings, self.pool.store, FAMILIES, dry_run)
        except Exception as exc:  # the database or the store failed: nothing was decided
            log.warning("promotion run failed: %s", exc)
            return JSONResponse({"error": "unavailable", "message": f"promotion failed: {exc}"}, status_code=503)
        if not dry_run:
            await self.reload()
        return JSONResponse({"dry_run": dry_run, "families": [msgspec.to_builtins(s) for s in steps]})

    async def _storage_call(self, fn: Callable[[Storage], Awaitable[T]]) -> T:
        if self.service is None:
            raise _Unavailable
        try:
            return await fn(self.service.storage)
        except StorageUnavailable as exc:
            raise _Unavailable from exc


def _round_body(played: RoundRecord) -> dict[str, object]:
    """One played round in /api/games: moves, values, points, scores, the nonce and what the bot expected."""
    d = played.decision
    gained = points(played.values, played.player_move, d.bot_move)
    return {
        "round": d.round,
        "values": dict(zip(MOVES, (v / 10 for v in played.values), strict=True)),
        "player_move": MOVES[played.player_move],
        "bot_move": MOVES[d.bot_move],
        "outcome": OUTCOMES[outcome(played.player_move, d.bot_move)],
        "points": {"player": gained[0] / 10, "bot": gained[1] / 10},
        "score": {"player": played.score_player / 10, "bot": played.score_bot / 10},
        "nonce": d.nonce,
        "insight": {
            "source": d.source,
            "probs": {MOVES[m]: round(d.probs[m], 4) for m in range(3)},
            "ev": {MOVES[m]: round(d.ev[m], 4) for m in range(3)},
        },
    }


class _Unavailable(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body; BadRequest, without reading on, once it is larger than `limit` bytes."""
    body = bytearray()
    if int(request.headers.get("content-length") or 0) <= limit:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                break
        else:
            return bytes(body)
    raise BadRequest(f"the body is larger than {limit} bytes")


async def _unavailable(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": "unavailable", "message": "the database cannot be reached"}, status_code=503)


def app_from_env() -> Starlette:
    """The application of every worker process of `rpsquest serve`, configured by the environment."""
    return create_app(Settings.from_env())


def create_app(settings: Settings, storage: Storage | None = None, store: ModelStore | None = None) -> Starlette:
    """The ASGI application for `settings` (storage and model store can be passed in, e.g. fakes in unit tests)."""
    server = Server(settings, storage, store)
    logging.getLogger("uvicorn.error").addFilter(logfilter.not_a_server_fault)
    routes = [
        Route("/healthz", server.healthz),
        Route("/readyz", server.readyz),
        Route("/metrics", server.metrics),
        Route("/api/opponents", server.opponents),
        Route("/api/games/{game_id}", server.game),
        Route("/games/{game_id}", server.replay),
        Route("/api/players/{key}", server.forget_player, methods=["DELETE"]),
        Route("/api/leaderboard", server.leaderboard),
        Route("/api/models", server.models),
        Route("/api/promotions", server.promotions),
        Route("/api/predict", server.predict, methods=["POST"]),
        Route("/api/admin/reload", server.admin_reload, methods=["POST"]),
        Route("/api/admin/promote", server.admin_promote, methods=["POST"]),
        WebSocketRoute("/ws", server.websocket),
        Mount("/", StaticFiles(directory=WEB_DIR, html=True)),
    ]
    app = Starlette(routes=routes, lifespan=server.lifespan, exception_handlers={_Unavailable: _unavailable})
    app.add_middleware(HTTPMiddleware)
    return app
