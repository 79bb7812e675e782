"""Starting and stopping `steer serve`: in the foreground (`run_server`, the CLI) or on a
thread for tests and benchmarks (`start_server`)."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from recipe_engine.serve.state import ServeConfig, ServerState

if TYPE_CHECKING:  # the serve extra, imported when a server starts
    import uvicorn

__all__ = ["RunningServer", "ServeConfig", "free_port", "run_server", "start_server"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RunningServer:
    """A server on a background thread (tests, benchmarks). `stop()` shuts it down cleanly."""

    url: str  # http://HOST:PORT/v1, what the openai client takes as base_url
    state: ServerState
    _server: uvicorn.Server
    _thread: threading.Thread

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=60 + self.state.config.drain_s)
        self.state.stop()

    def drain(self) -> None:
        """What SIGTERM does: stop accepting, let in-flight requests finish for
        `--drain-timeout` seconds, cut the rest (an error event on streams); returns at once
        (`stop()` waits for the end)."""
        self._server.should_exit = True


# Seconds uvicorn waits past the drain before it cancels what is left: the app cuts its own
# requests at the drain's end (a stream's error event, a log line), this is only a backstop.
_DRAIN_MARGIN_S = 5.0


def _uvicorn_server(state: ServerState) -> uvicorn.Server:
    from recipe_engine.serve.asgi import import_anyio

    import_anyio()  # before uvicorn and FastAPI need it
    import uvicorn

    from recipe_engine.serve.app import create_app
    from recipe_engine.serve.guard import BodyGuard, guarded_protocol

    limits = state.config
    app = BodyGuard(
        create_app(state),
        max_body_bytes=limits.max_body_bytes,
        read_timeout_s=limits.read_timeout_s,
    )
    config = uvicorn.Config(
        app,
        host=limits.host,
        port=limits.port,
        http=guarded_protocol(limits.max_connections, limits.read_timeout_s),
        log_level="warning",  # requests are logged by the app, as JSON lines
        access_log=False,
        timeout_graceful_shutdown=int(limits.drain_s + _DRAIN_MARGIN_S),
    )

    class DrainingServer(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            state.begin_drain()  # SIGTERM, Ctrl-C or stop(): requests in flight get drain_s
            await super().shutdown(sockets)

    return DrainingServer(config)


def start_server(config: ServeConfig) -> RunningServer:
    """Load everything, then serve on a thread; returns once the server accepts connections.
    Port 0: the system picks a free port when the server binds (no race with other processes
    for a port chosen beforehand); `config.port` is then the port it got."""
    state = ServerState(config)
    state.start()
    server = _uvicorn_server(state)
    thread = threading.Thread(target=server.run, name="steer-serve-http", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            state.stop()
            raise RuntimeError(f"the server did not start on {config.host}:{config.port}")
        time.sleep(0.05)
    if config.port == 0:
        config.port = int(server.servers[0].sockets[0].getsockname()[1])
    return RunningServer(f"http://{config.host}:{config.port}/v1", state, server, thread)


def run_server(config: ServeConfig) -> None:
    """Serve in the foreground until Ctrl-C or SIGTERM (uvicorn handles both)."""
    state = ServerState(config)
    state.start()
    config.log(
        "serving",
        url=f"http://{config.host}:{config.port}/v1",
        model=config.name,
        profiles=state.store.names(),
    )
    try:
        _uvicorn_server(state).run()
    finally:
        state.stop()
