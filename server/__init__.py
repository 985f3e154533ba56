"""The game server: Starlette app, WebSocket sessions, storage and metrics."""
