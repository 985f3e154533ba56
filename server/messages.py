"""The WebSocket messages of protocol.md as msgspec structs, decoded once per frame."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Literal

import msgspec

MoveName = Literal["rock", "paper", "scissors"]
Tag = Literal["sim", "loadtest"]
PROTOCOL_VERSION = 1
MAX_FRAME = 4096


class Start(msgspec.Struct, tag="start", tag_field="type"):
    opponent: str
    player: str | None = None
    tag: Tag | None = None
    key: str | None = None  # a returning player's key (valid_player_key)


class Move(msgspec.Struct, tag="move", tag_field="type"):
    game_id: str
    round: Annotated[int, msgspec.Meta(ge=1)]
    move: MoveName


class Resume(msgspec.Struct, tag="resume", tag_field="type"):
    game_id: str
    token: str


ClientMessage = Start | Move | Resume
_decoder = msgspec.json.Decoder(ClientMessage)
_encoder = msgspec.json.Encoder()
_NAME_EXTRA = frozenset(" _-")
_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_NAME_CATEGORIES = frozenset(("Lu", "Ll", "Lt", "Lm", "Lo", "Nd"))


class BadMessage(Exception):
    """A frame that is not a valid client message; `code` is bad_json or bad_message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def valid_player_name(name: str) -> bool:
    """1-24 letters, digits, spaces, '_' or '-', not only spaces."""
    return (
        1 <= len(name) <= 24
        and not name.isspace()
        and all(ch in _NAME_EXTRA or unicodedata.category(ch) in _NAME_CATEGORIES for ch in name)
    )


def valid_player_key(key: str) -> bool:
    """16-64 URL-safe characters (letters, digits, '_' or '-'): a random key the browser keeps."""
    return 16 <= len(key) <= 64 and all(ch in _KEY_CHARS for ch in key)


def _not_json(frame: str | bytes) -> str | None:
    """Why `frame` is not JSON at all, or None when it is (whatever the message it holds)."""
    try:
        msgspec.json.decode(frame)
    except msgspec.ValidationError:  # well-formed, but a number beyond the double range
        return None
    except msgspec.DecodeError as exc:
        return str(exc)
    except RecursionError:
        return "nested deeper than the decoder reads (about 950 levels)"
    return None


def decode(frame: str | bytes) -> ClientMessage:
    """Decode one client frame or raise BadMessage with the error code to answer.

    The typed decoder stops at the first thing that does not fit a message, which may come before
    text that is not JSON at all (`[1`, `{"round":0,`): only then is the frame read again as any JSON.
    """
    try:
        message: ClientMessage = _decoder.decode(frame)
    except (msgspec.DecodeError, RecursionError) as exc:
        reason = _not_json(frame)
        if reason is not None:
            raise BadMessage("bad_json", f"not valid JSON: {reason}") from None
        raise BadMessage("bad_message", f"invalid message: {exc}") from None
    if isinstance(message, Start) and message.player is not None and not valid_player_name(message.player):
        raise BadMessage("bad_message", "player must be 1-24 letters, digits, spaces, '_' or '-'")
    if isinstance(message, Start) and message.key is not None and not valid_player_key(message.key):
        raise BadMessage("bad_message", "key must be 16-64 letters, digits, '_' or '-'")
    return message


class Values(msgspec.Struct):
    rock: float
    paper: float
    scissors: float


class Score(msgspec.Struct):
    player: float
    bot: float


class OpenRound(msgspec.Struct):
    round: int
    values: Values
    commit: str


class Result(msgspec.Struct, tag="result", tag_field="type"):
    game_id: str
    round: int
    player_move: str
    bot_move: str
    outcome: str
    points: Score
    score: Score
    nonce: str
    over: bool
    winner: str | None
    insight: dict[str, object]
    next: OpenRound | None


class GameMessage(msgspec.Struct, tag="game", tag_field="type", omit_defaults=True):
    game_id: str
    opponent: str
    target: float
    score: Score
    over: bool
    winner: str | None
    history: list[Result]
    next: OpenRound | None
    token: str | None = None
    remembered: int | None = None  # games with a returning player's key the bot started from (games with a key)


class OpponentInfo(msgspec.Struct):
    id: str
    name: str
    family: str


class Welcome(msgspec.Struct, tag="welcome", tag_field="type"):
    protocol: int
    opponents: list[OpponentInfo]


class Error(msgspec.Struct, tag="error", tag_field="type", omit_defaults=True):
    code: str
    message: str
    game_id: str | None = None


def encode(message: msgspec.Struct) -> str:
    """One server message as the text of a frame."""
    return _encoder.encode(message).decode()
