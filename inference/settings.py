"""Settings from command-line flags and RPSQUEST_* environment variables (protocol.md)."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar


class SettingsError(ValueError):
    """A setting has a value the product cannot use."""


Number = TypeVar("Number", int, float)
ORIGIN = re.compile(r"https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?")  # as browsers send it


def _number(name: str, default: Number) -> Number:
    """The variable `name` read as the type of `default`, or `default` when unset or empty."""
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return type(default)(raw)
    except ValueError:
        kind = "a whole number" if isinstance(default, int) else "a number"
        raise SettingsError(f"{name} must be {kind}, not {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")
    database_url: str = ""
    s3_endpoint: str = ""
    s3_bucket: str = "rpsquest"
    s3_access_key: str = ""
    s3_secret_key: str = field(default="", repr=False)
    mlflow_uri: str = ""
    admin_token: str = field(default="", repr=False)
    rate_limit: int = 30
    ab_split: float = 0.5
    idle_timeout: float = 60.0
    ws_deflate: bool = False
    reload_interval: float = 5.0
    stats_tags: tuple[str, ...] = ("human",)
    workers: int = 1
    allowed_origins: tuple[str, ...] = ()  # empty: localhost's; the page's own origin is always allowed
    log_repeat_interval: float = 60.0
    promotion_alpha: float = 0.05
    promotion_min_games: int = 100
    promotion_margin: float = 0.05
    header_timeout: float = 10.0
    max_connections: int = 0  # 0: sized to the open-file limit (server/connections.py)
    max_connections_per_client: int = 0  # 0: no per-client cap
    trusted_proxies: tuple[str, ...] = ()
    db_max_mb: float = 0.0  # cap on the SQLite file in MiB; 0 = none
    max_games_per_connection: int = 8
    max_live_games: int = 20_000
    game_idle: float = 300.0
    training_window_days: float = 30.0  # 0: every stored game
    trainer_memory_mb: int = 4096
    drain_timeout: float = 30.0  # seconds a stopping server waits for open rounds (server/drain.py); 0: none

    @classmethod
    def from_env(cls, data_dir: str | None = None) -> Settings:
        """Settings from the environment; `data_dir` (a flag) wins over RPSQUEST_DATA_DIR."""
        env = os.environ.get
        settings = cls(
            data_dir=Path(data_dir or env("RPSQUEST_DATA_DIR") or "data"),
            database_url=env("RPSQUEST_DATABASE_URL", ""),
            s3_endpoint=env("RPSQUEST_S3_ENDPOINT", ""),
            s3_bucket=env("RPSQUEST_S3_BUCKET", "rpsquest"),
            s3_access_key=env("RPSQUEST_S3_ACCESS_KEY", ""),
            s3_secret_key=env("RPSQUEST_S3_SECRET_KEY", ""),
            mlflow_uri=env("RPSQUEST_MLFLOW_URI", ""),
            admin_token=env("RPSQUEST_ADMIN_TOKEN", ""),
            rate_limit=_number("RPSQUEST_RATE_LIMIT", 30),
            ab_split=_number("RPSQUEST_AB_SPLIT", 0.5),
            idle_timeout=_number("RPSQUEST_IDLE_TIMEOUT", 60.0),
            ws_deflate=env("RPSQUEST_WS_DEFLATE", "0") in ("1", "true", "yes"),
            reload_interval=_number("RPSQUEST_RELOAD_INTERVAL", 5.0),
            stats_tags=tuple(t.strip() for t in env("RPSQUEST_STATS_TAGS", "human").split(",") if t.strip()),
            workers=_number("RPSQUEST_WORKERS", 1),
            allowed_origins=tuple(o.strip() for o in env("RPSQUEST_ALLOWED_ORIGINS", "").split(",") if o.strip()),
            log_repeat_interval=_number("RPSQUEST_LOG_REPEAT_INTERVAL", 60.0),
            promotion_alpha=_number("RPSQUEST_PROMOTION_ALPHA", 0.05),
            promotion_min_games=_number("RPSQUEST_PROMOTION_MIN_GAMES", 100),
            promotion_margin=_number("RPSQUEST_PROMOTION_MARGIN", 0.05),
            header_timeout=_number("RPSQUEST_HEADER_TIMEOUT", 10.0),
            max_connections=_number("RPSQUEST_MAX_CONNECTIONS", 0),
            max_connections_per_client=_number("RPSQUEST_MAX_CONNECTIONS_PER_CLIENT", 0),
            trusted_proxies=tuple(t.strip() for t in env("RPSQUEST_TRUSTED_PROXIES", "").split(",") if t.strip()),
            db_max_mb=_number("RPSQUEST_DB_MAX_MB", 0.0),
            max_games_per_connection=_number("RPSQUEST_MAX_GAMES_PER_CONNECTION", 8),
            max_live_games=_number("RPSQUEST_MAX_LIVE_GAMES", 20_000),
            game_idle=_number("RPSQUEST_GAME_IDLE", 300.0),
            training_window_days=_number("RPSQUEST_TRAINING_WINDOW_DAYS", 30.0),
            trainer_memory_mb=_number("RPSQUEST_TRAINER_MEMORY_MB", 4096),
            drain_timeout=_number("RPSQUEST_DRAIN_TIMEOUT", 30.0),
        )
        if settings.rate_limit < 0:
            raise SettingsError("RPSQUEST_RATE_LIMIT must be 0 (no limit) or more")
        if not 0.0 <= settings.ab_split <= 1.0:
            raise SettingsError("RPSQUEST_AB_SPLIT must be between 0 and 1")
        if not 1 <= settings.workers <= 64:
            raise SettingsError("RPSQUEST_WORKERS must be between 1 and 64")
        if settings.db_max_mb < 0:
            raise SettingsError("RPSQUEST_DB_MAX_MB must be 0 (no cap) or more")
        if settings.idle_timeout <= 0:
            raise SettingsError("RPSQUEST_IDLE_TIMEOUT must be positive")
        if settings.header_timeout <= 0:
            raise SettingsError("RPSQUEST_HEADER_TIMEOUT must be positive")
        if settings.max_connections < 0 or settings.max_connections_per_client < 0:
            raise SettingsError("RPSQUEST_MAX_CONNECTIONS and _PER_CLIENT must be 0 (automatic / none) or more")
        for proxy in settings.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise SettingsError(f"RPSQUEST_TRUSTED_PROXIES: {proxy!r} is not an address or network") from None
        if settings.max_games_per_connection < 1 or settings.max_live_games < 1:
            raise SettingsError("RPSQUEST_MAX_GAMES_PER_CONNECTION and RPSQUEST_MAX_LIVE_GAMES must be 1 or more")
        if not 0 < settings.game_idle <= 1800:
            raise SettingsError("RPSQUEST_GAME_IDLE must be more than 0 and at most 1800 (the abandonment time)")
        unknown = set(settings.stats_tags) - {"human", "sim", "loadtest"}
        if unknown or not settings.stats_tags:
            raise SettingsError("RPSQUEST_STATS_TAGS must list some of human, sim, loadtest")
        if not 0.0 < settings.promotion_alpha < 0.5:
            raise SettingsError("RPSQUEST_PROMOTION_ALPHA must be between 0 and 0.5")
        if settings.promotion_min_games < 1:
            raise SettingsError("RPSQUEST_PROMOTION_MIN_GAMES must be 1 or more")
        if not 0.0 < settings.promotion_margin < 1.0:
            raise SettingsError("RPSQUEST_PROMOTION_MARGIN must be between 0 and 1")
        if settings.training_window_days < 0:
            raise SettingsError("RPSQUEST_TRAINING_WINDOW_DAYS must be 0 (every stored game) or more")
        if settings.trainer_memory_mb < 1:
            raise SettingsError("RPSQUEST_TRAINER_MEMORY_MB must be 1 or more")
        if settings.drain_timeout < 0:
            raise SettingsError("RPSQUEST_DRAIN_TIMEOUT must be 0 (stop at once) or more")
        if settings.log_repeat_interval < 0:
            raise SettingsError("RPSQUEST_LOG_REPEAT_INTERVAL must be 0 (log every repeat) or more")
        for origin in settings.allowed_origins:
            if origin != "*" and not ORIGIN.fullmatch(origin):
                raise SettingsError(f"RPSQUEST_ALLOWED_ORIGINS: {origin!r} is not * or scheme://host[:port]")
        settings.database()  # refuse an unsupported database URL now, not at first use
        return settings

    def database(self) -> Path | str:
        """The SQLite file named by database_url (sqlite:///PATH, by default data_dir/rpsquest.db), or the
        PostgreSQL URL (postgresql://…) itself."""
        url = self.database_url
        if not url:
            return self.data_dir / "rpsquest.db"
        if url.startswith("sqlite:///"):
            return Path(url[len("sqlite:///") :])
        if url.startswith(("postgresql://", "postgres://")):
            return url
        raise SettingsError(
            f"RPSQUEST_DATABASE_URL {url!r} is not supported: use sqlite:///PATH or postgresql://USER@HOST/DB"
        )

    def store_root(self) -> Path:
        """The local model store's folder (used when no S3 endpoint is set)."""
        return self.data_dir / "store"

    def mlflow_uri_or_default(self) -> str:
        """RPSQUEST_MLFLOW_URI, or a SQLite-backed MLflow store in the data dir."""
        return self.mlflow_uri or f"sqlite:///{(self.data_dir / 'mlflow.db').resolve()}"
