"""The floor: a bare WebSocket echo server on the same stack as the game server (uvicorn, websockets-sansio,
httptools, the same event loop)."""

from __future__ import annotations

import sys

import uvicorn
from starlette.types import Receive, Scope, Send

from server.cli import EVENT_LOOP


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        await send({"type": "websocket.send", "text": message.get("text")})


if __name__ == "__main__":  # python -m bench.echo PORT [WORKERS]
    uvicorn.run("bench.echo:echo", host="127.0.0.1", port=int(sys.argv[1]), loop=EVENT_LOOP, http="httptools",
                ws="websockets-sansio", ws_per_message_deflate=False, log_level="warning",
                workers=int(sys.argv[2]) if len(sys.argv) > 2 else 1)  # fmt: skip
