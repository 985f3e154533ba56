"""Hostile input for the fuzz tests: Hypothesis strategies and oracles of the documented answers.

The strategies make symbolic frames: a game, round or token is a reference that is resolved
against the connection's state only when the frame is sent, so every draw is reproducible. The
oracles read the concrete frame and the state and say what docs/protocol.md promises for it. They
share no code with the server: JSON is read by the standard library, the rules come from game.md.

To add an error code (a cap, a limit), add its check to `WsOracle.expect` (or `_refusal` for the
shape of a message) at the point where the server makes it, and the state it needs to `Connection`.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, TypeGuard, TypeVar

from hypothesis import strategies as st

from engine.rules import round_values

MOVES = ("rock", "paper", "scissors")
OPPONENTS = ("brian", "forrest", "logan")
FAMILIES = ("mlp", "xgboost", "logistic")
ALIASES = ("Production", "B", "shadow1", "shadow2")
MAX_FRAME = 4096
MAX_BAD_IN_ROW = 20
PREDICT_MAX_BODY = 16_384
# The server reads JSON nested about 950 levels deep (Python's recursion limit, less its stack); the strategies
# nest at most 60 or at least 1,000 levels, so the oracle can draw the line anywhere between.
READABLE_DEPTH = 500
# Every round's values by game.md, found by playing the rules' own function over many games, plus all 1.0.
ROUND_VALUES = frozenset({round_values(f"g{i}", n) for i in range(200) for n in range(1, 21)} | {(10, 10, 10)})

# -- JSON as the server reads it ----------------------------------------------------------------------


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _depth(text: str) -> int:
    """How deeply arrays and objects nest in `text`."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (ch == "\\", ch != '"')
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def parse_json(data: str | bytes) -> tuple[bool, Any]:
    """(True, value) when `data` is JSON (RFC 8259, no unpaired surrogates, nesting the decoder reads)."""
    try:
        text = data.decode() if isinstance(data, bytes) else data
        if _depth(text) > READABLE_DEPTH:
            return False, None
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError:  # UnicodeDecodeError too: JSON is UTF-8
        return False, None
    stack = [value]
    while stack:  # strings must be Unicode text: an escaped lone surrogate ("\ud800") is not
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode()
            except UnicodeEncodeError:
                return False, None
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
    return True, value


def _is_int(x: object) -> TypeGuard[int]:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: object) -> bool:
    return _is_int(x) or isinstance(x, float)


def _tenths(x: float) -> int | None:
    """`x` in tenths when it has at most one decimal."""
    scaled = Decimal(repr(float(x))) * 10
    return int(scaled) if scaled == scaled.to_integral_value() else None


# -- WebSocket: state and oracle -------------------------------------------------------------------------


@dataclass
class GameState:
    token: str
    played: int
    open: int | None  # None once the game is over


@dataclass
class Connection:
    """What the server knows of one connection."""

    owned: set[str] = field(default_factory=set)
    playing: set[str] = field(default_factory=set)  # started or resumed here while open
    bad_in_row: int = 0


Expect = str | int  # an answer's type ("game", "result"), an error code, or a close code


def valid_player_name(name: str) -> bool:
    """protocol.md: 1-24 letters, digits, spaces, '_' or '-', not only spaces."""
    allowed = all(ch in " _-" or unicodedata.category(ch) in ("Lu", "Ll", "Lt", "Lm", "Lo", "Nd") for ch in name)
    return 1 <= len(name) <= 24 and name.strip(" ") != "" and allowed


def _refusal(message: Any) -> bool:
    """Whether a JSON value is not a client message of protocol.md (bad_message)."""
    if not isinstance(message, dict):
        return True
    kind = message.get("type")
    if kind == "start":
        player, tag = message.get("player"), message.get("tag")
        return (
            not isinstance(message.get("opponent"), str)
            or not (player is None or (isinstance(player, str) and valid_player_name(player)))
            or tag not in (None, "sim", "loadtest")
        )
    if kind == "move":
        number = message.get("round")
        return (
            not isinstance(message.get("game_id"), str)
            or not (_is_int(number) and number >= 1)
            or not (isinstance(message.get("move"), str) and message["move"] in MOVES)
        )
    if kind == "resume":
        return not (isinstance(message.get("game_id"), str) and isinstance(message.get("token"), str))
    return True


class WsOracle:
    """The answer protocol.md documents for a frame, from the frame and the state of the server."""

    def __init__(self, games: dict[str, GameState], max_games: int) -> None:
        self.games = games
        self.max_games = max_games  # RPSQUEST_MAX_GAMES_PER_CONNECTION

    def _full(self, connection: Connection) -> bool:
        """The connection plays its limit of open games (no game goes idle during a fuzz run)."""
        return sum(self.games[g].open is not None for g in connection.playing) >= self.max_games

    def expect(self, connection: Connection, frame: str | bytes, text: bool) -> Expect:
        if len(frame.encode() if isinstance(frame, str) else frame) > MAX_FRAME:
            return 1009
        if not text:
            return "bad_message"  # a binary frame
        if isinstance(frame, bytes):
            try:
                frame = frame.decode()
            except UnicodeDecodeError:
                return 1007
        is_json, message = parse_json(frame)
        if not is_json:
            return "bad_json"
        if _refusal(message):
            return "bad_message"
        kind, game_id = message["type"], message.get("game_id")
        if kind == "start":  # the cap is checked first
            if self._full(connection):
                return "too_many_games"
            return "game" if message["opponent"] in OPPONENTS else "unknown_opponent"
        game = self.games.get(game_id)
        if kind == "resume":
            if game is None:
                return "unknown_game"
            if message["token"] != game.token:
                return "bad_token"
            taking_over = game.open is not None and game_id not in connection.playing
            return "too_many_games" if taking_over and self._full(connection) else "game"
        if game_id not in connection.owned:
            return "unknown_game" if game is None else "not_yours"
        assert game is not None
        if message["round"] <= game.played:
            return "result"  # the stored result again
        if game.open is None:
            return "game_over"
        return "result" if message["round"] == game.open else "wrong_round"


# -- WebSocket: symbolic frames ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GameRef:
    """A game of the connection ("own"), the finished game, another connection's game, or none."""

    kind: Literal["own", "done", "other", "unknown"]


@dataclass(frozen=True)
class RoundRef:
    """The open round of the message's game, one already played, or one ahead of it."""

    kind: Literal["open", "played", "ahead"]


@dataclass(frozen=True)
class TokenRef:
    right: bool


@dataclass(frozen=True)
class Message:
    """A JSON message (fields may hold references); `form` says how it goes on the wire."""

    fields: tuple[tuple[str, Any], ...]
    form: Literal["object", "array", "truncated", "padded", "deep"] = "object"
    size: int = 0  # truncated: bytes kept; padded: total size; deep: nesting of an extra field
    ascii: bool = True


@dataclass(frozen=True)
class Raw:
    """A frame sent as it is: text, binary, or a text frame whose bytes are not UTF-8."""

    data: str | bytes
    text: bool = True


Frame = Message | Raw

EDGE_STRINGS = (
    "", " ", "rock", "Rock", "ROCK", "rock ", "lizard", "brian", "Brian", "bob", "forrest", "logan", "start",
    "move", "resume", "sim", "loadtest", "human", "\x00", "\ufeff", "💥", "<b>x</b>", "' OR 1=1 --", "é" * 24,
    "a" * 25, "null", "-", "_", "名前", "\u202e", "a\nb",
)  # fmt: skip
_chars = st.characters(codec="utf-8")
T = TypeVar("T")


def weighted(*choices: tuple[int, st.SearchStrategy[T]]) -> st.SearchStrategy[T]:
    """One of the strategies, each as often as its weight says (one_of takes duplicates only once)."""
    total = sum(weight for weight, _ in choices)

    def pick(k: int) -> st.SearchStrategy[T]:
        for weight, strategy in choices:
            if k < weight:
                return strategy
            k -= weight
        raise AssertionError(k)

    return st.integers(0, total - 1).flatmap(pick)


_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63, max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(_chars, max_size=30),
    st.sampled_from(EDGE_STRINGS),
)
_nested = st.integers(1, 60).map(lambda depth: json.loads("[" * depth + "]" * depth))
_huge = st.tuples(_chars, st.integers(100, 2500)).map(lambda t: t[0] * t[1])
hostile = st.one_of(
    _leaf,
    st.recursive(_leaf, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner)),
    _nested,
    _huge,
)
_game = weighted((6, st.just(GameRef("own"))), (1, st.just(GameRef("done"))), (1, st.just(GameRef("other"))),
                 (1, st.just(GameRef("unknown"))))  # fmt: skip
_round = weighted(
    (8, st.just(RoundRef("open"))),
    (1, st.just(RoundRef("played"))),
    (1, st.just(RoundRef("ahead"))),
    (1, st.sampled_from((0, -1, 21, 2**63, 2**70, 1.0, "1", True, None))),
)
_names = st.one_of(st.sampled_from(("Ada", "Zoë", "player_1", "名前", "a-b c")), st.sampled_from(EDGE_STRINGS),
                   st.text(_chars, max_size=26))  # fmt: skip
_starts = st.fixed_dictionaries(
    {"type": st.just("start"), "opponent": st.sampled_from((*OPPONENTS, *OPPONENTS, "bob", "Brian", ""))},
    optional={"player": _names, "tag": st.sampled_from(("loadtest", "loadtest", "sim", "human", "SIM"))},
)
_moves = st.fixed_dictionaries(
    {
        "type": st.just("move"),
        "game_id": _game,
        "round": _round,
        "move": weighted((9, st.sampled_from(MOVES)), (1, st.just("lizard"))),
    }
)
_resumes = st.fixed_dictionaries({"type": st.just("resume"), "game_id": _game, "token": st.booleans().map(TokenRef)})
_fields = ("type", "opponent", "player", "tag", "game_id", "round", "move", "token", "extra")
_mutation = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(_fields), hostile),
    st.tuples(st.just("drop"), st.sampled_from(_fields), st.none()),
    st.tuples(st.just("set"), st.text(_chars, max_size=12), hostile),  # a field nobody knows
)


def _mutated(base: dict[str, Any], mutations: list[tuple[str, str, Any]]) -> tuple[tuple[str, Any], ...]:
    fields = dict(base)
    for action, name, value in mutations:
        if action == "drop":
            fields.pop(name, None)
        else:
            fields[name] = value
    return tuple(fields.items())


_form = weighted(
    (80, st.just(("object", 0))),
    (4, st.just(("array", 0))),
    (6, st.tuples(st.just("truncated"), st.integers(0, 60))),
    (6, st.tuples(st.just("padded"), st.sampled_from((MAX_FRAME, MAX_FRAME + 1)))),
    (4, st.tuples(st.just("deep"), st.integers(1000, 1900))),
)
messages = st.builds(
    lambda base, mutations, form, ascii: Message(_mutated(base, mutations), form[0], form[1], ascii),
    weighted((15, _starts), (65, _moves), (20, _resumes)),
    weighted((1, st.just([])), (1, st.lists(_mutation, min_size=1, max_size=3))),
    _form,
    st.booleans(),
)
PREFIXES = ("[", "{", '"', '{"type":', " ", "\ufeff", "[1,", '{"type":"start"}x')
ODD_TEXTS = ("null", "true", "1", '"start"', "[]", "{}", "1e999", "-0", "NaN", "Infinity", '"\\ud800"',
             '{"type":"start","opponent":"brian","x":"\\udc00"}', "[" * 1200)  # fmt: skip
_bad_utf8 = st.sampled_from((b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf8\x88\x80\x80\x80"))
raw_frames = weighted(
    (25, st.text(_chars, max_size=60).map(Raw)),
    (20, st.tuples(st.sampled_from(PREFIXES), st.text(_chars, max_size=30)).map(lambda t: Raw(t[0] + t[1]))),
    (20, st.sampled_from(ODD_TEXTS).map(Raw)),
    (20, st.binary(max_size=64).map(lambda b: Raw(b, text=False))),
    (5, st.just(Raw(b'{"type":"start","opponent":"brian"}', text=False))),
    (10, st.tuples(st.binary(max_size=20), _bad_utf8).map(
        lambda t: Raw(b'{"type":"start","x":"' + t[0] + t[1] + b'"}'))),
)  # fmt: skip
frames: st.SearchStrategy[Frame] = weighted((85, messages), (15, raw_frames))


@dataclass
class Resolver:
    """Turns symbolic frames into wire frames for one connection."""

    games: dict[str, GameState]
    done: str  # a finished game
    connection: Connection

    def game_id(self, ref: GameRef) -> str:
        owned = sorted(self.connection.owned)
        if ref.kind == "own" and owned:
            playing = [g for g in owned if self.games[g].open is not None]
            return (playing or owned)[-1]
        if ref.kind == "done":
            return self.done
        others = sorted(g for g in self.games if g not in self.connection.owned)
        return others[0] if ref.kind == "other" and others else "no-such-game"

    def value(self, value: Any, game_id: Any) -> Any:
        game = self.games.get(game_id) if isinstance(game_id, str) else None
        if isinstance(value, RoundRef):
            if game is None:
                return 1
            return {"open": game.open or game.played + 1, "played": max(1, game.played),
                    "ahead": (game.open or game.played) + 2}[value.kind]  # fmt: skip
        if isinstance(value, TokenRef):
            return game.token if value.right and game is not None else "not-the-token"
        return value

    def wire(self, frame: Frame) -> tuple[str | bytes, bool]:
        """The frame's data and whether it goes as a text frame."""
        if isinstance(frame, Raw):
            return frame.data, frame.text
        fields = dict(frame.fields)
        if isinstance(fields.get("game_id"), GameRef):
            fields["game_id"] = self.game_id(fields["game_id"])
        game_id = fields.get("game_id")
        message = {name: self.value(value, game_id) for name, value in fields.items()}
        text = json.dumps([message] if frame.form == "array" else message, ensure_ascii=frame.ascii)
        if frame.form == "truncated":
            return text[: frame.size], True
        if frame.form == "padded":
            pad = frame.size - len(text.encode()) - len(', "pad": ""')
            return (text[:-1] + ', "pad": "' + "x" * pad + '"}', True) if pad >= 0 else (text, True)
        if frame.form == "deep":
            return text[:-1] + ', "deep": ' + "[" * frame.size + "]" * frame.size + "}", True
        return text, True


# -- /api/predict: strategies and oracle -------------------------------------------------------------------


def _decimal(tenths: int) -> float:
    return tenths / 10


_values_dicts = st.one_of(
    st.sampled_from(sorted(ROUND_VALUES)).map(lambda v: dict(zip(MOVES, map(_decimal, v), strict=True))),
    st.tuples(st.integers(5, 25), st.integers(5, 25), st.integers(5, 25)).map(
        lambda v: dict(zip(MOVES, map(_decimal, v), strict=True))
    ),
    st.just({"rock": 2.0, "paper": 2.0, "scissors": 2.0}),
    st.just({"rock": 1.05, "paper": 1.0, "scissors": 1.6}),
    st.fixed_dictionaries({}, optional={m: st.one_of(st.floats(0, 3), _leaf) for m in (*MOVES, "lizard")}),
)
_move_names = weighted((9, st.sampled_from(MOVES)), (1, _leaf))
_past = st.fixed_dictionaries({"player": _move_names, "bot": _move_names}, optional={"values": _values_dicts})
_score_part = st.one_of(st.integers(0, 120).map(_decimal), st.integers(0, 12), st.floats(-1, 12), _leaf)
_request_fields = st.fixed_dictionaries(
    {"family": weighted((9, st.sampled_from(FAMILIES)), (1, _leaf)),
     "history": weighted((3, st.lists(_past, max_size=24)), (6, st.lists(_past, max_size=8)), (1, _leaf))},
    optional={"alias": st.one_of(st.sampled_from(ALIASES), _leaf), "values": st.one_of(_values_dicts, _leaf),
              "score": st.one_of(st.fixed_dictionaries({"player": _score_part, "bot": _score_part}), _leaf),
              "extra": _leaf},
)  # fmt: skip
predict_bodies = weighted(
    (80, _request_fields.map(lambda body: json.dumps(body).encode())),
    (5, st.binary(max_size=80)),
    (5, st.text(_chars, max_size=80).map(str.encode)),
    (4, st.integers(PREDICT_MAX_BODY - 40, PREDICT_MAX_BODY + 40).map(  # valid JSON of n bytes: only the bound decides
        lambda n: b'{"family":"mlp","history":[]' + b" " * (n - 29) + b"}")),
    (3, st.integers(1000, 5000).map(lambda d: b"[" * d + b"]" * d)),
    (3, st.integers(1000, 5000).map(lambda d: b'{"family":"mlp","history":' + b"[" * d + b"]" * d + b"}")),
)  # fmt: skip


def _move_index(name: Any) -> int | None:
    return MOVES.index(name) if isinstance(name, str) and name in MOVES else None


def _values(value: Any) -> tuple[int, int, int] | None:
    """A values object as tenths when it fits the rules (or is all 1.0), else None."""
    if not (isinstance(value, dict) and set(value) == set(MOVES) and all(_is_number(value[m]) for m in MOVES)):
        return None
    tenths = tuple(_tenths(value[m]) for m in MOVES)
    return tenths if tenths in ROUND_VALUES else None


def _points(values: tuple[int, int, int], player: int, bot: int) -> tuple[int, int]:
    """game.md: the winner gains the value of their own move, a draw 0.5 each."""
    if player == bot:
        return 5, 5
    return (values[player], 0) if (player - bot) % 3 == 1 else (0, values[bot])


def _valid_request(body: Any) -> bool:
    if not isinstance(body, dict) or not set(body) <= {"family", "alias", "history", "values", "score"}:
        return False
    if body.get("family") not in FAMILIES or body.get("alias", "Production") not in ALIASES:
        return False
    if body.get("values") is not None and _values(body["values"]) is None:
        return False
    score = body.get("score")
    if score is not None:
        if not (isinstance(score, dict) and set(score) == {"player", "bot"}):
            return False
        for part in score.values():
            if not (_is_number(part) and 0 <= part < 10 and _tenths(part) is not None):
                return False
    history = body.get("history")
    if not isinstance(history, list) or len(history) > 19:
        return False
    player_score = bot_score = 0
    for past in history:
        if not (isinstance(past, dict) and {"player", "bot"} <= set(past) <= {"player", "bot", "values"}):
            return False
        player, bot = _move_index(past["player"]), _move_index(past["bot"])
        values = (10, 10, 10) if past.get("values") is None else _values(past["values"])
        if player is None or bot is None or values is None or max(player_score, bot_score) >= 100:
            return False
        gained = _points(values, player, bot)
        player_score, bot_score = player_score + gained[0], bot_score + gained[1]
    return max(player_score, bot_score) < 100  # the game is not over: there is a round to predict


def predict_status(body: bytes) -> int:
    """The status protocol.md documents for an admin's /api/predict body: 200, or 400 bad_request."""
    if len(body) > PREDICT_MAX_BODY:
        return 400
    is_json, value = parse_json(body)
    return 200 if is_json and _valid_request(value) else 400
