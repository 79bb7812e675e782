"""`steer serve`: an OpenAI-compatible HTTP server whose requests each pick a steering profile
(a recipe of the served folder). Needs the `serve` extra (FastAPI, uvicorn)."""

from recipe_engine.serve.server import RunningServer, ServeConfig, run_server, start_server

__all__ = ["RunningServer", "ServeConfig", "run_server", "start_server"]
