"""What `steer serve` is given (ServeConfig) and what it holds while it runs (ServerState: the
model, the profiles, the batcher, the reload thread)."""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from recipe_engine.builtin_models import BUILTIN_PREFIX
from recipe_engine.format.model_spec import ModelSpec
from recipe_engine.resolve.context import learned_positions
from recipe_engine.resolve.loaded_model import LoadedModel
from recipe_engine.resolve.model_loader import load_model
from recipe_engine.serve.batcher import Batcher
from recipe_engine.serve.logs import JsonLog
from recipe_engine.serve.profiles import ProfileStore

__all__ = ["ServeConfig", "ServerState"]


@dataclass
class ServeConfig:
    sources: list[Path]  # recipe files, or folders of them: one profile per recipe
    model: str  # model.id given to every recipe (and the unsteered model)
    dtype: str = "float32"
    device: str = "auto"
    host: str = "127.0.0.1"
    port: int = 8000
    served_name: str | None = None  # the `model` clients name; default: from the model id
    max_strength: float = 16.0  # |strength| a request may ask for
    max_tokens: int = 256  # new tokens a request may ask for
    max_prompt_tokens: int = 2048
    max_body_bytes: int = 1 << 20
    max_queue: int = 256  # rows waiting; more: 429
    max_batch: int = 32  # rows per batch
    batch_wait_s: float = 0.005  # how long a lone row waits for others
    timeout_s: float = 120.0  # per request, queue wait included: then 504
    drain_timeout_s: float | None = None  # on SIGTERM, for requests in flight; None: timeout_s
    read_timeout_s: float = 10.0  # a request's headers, and then its body, must come within
    max_connections: int = 512  # open at once; past it a new connection gets 503
    reload_interval_s: float = 1.0  # how often recipe files are checked (0: never)
    allow_post: bool = False  # POST /v1/profiles
    max_post_bytes: int = 64 << 10
    allow_outside_root: bool = False
    log: JsonLog = field(default_factory=JsonLog)

    @property
    def drain_s(self) -> float:
        return self.timeout_s if self.drain_timeout_s is None else self.drain_timeout_s

    @property
    def name(self) -> str:
        if self.served_name:
            return self.served_name
        model = self.model.removeprefix(BUILTIN_PREFIX).rstrip("/")
        return model.rsplit("/", 1)[-1] or "model"

    def model_id(self) -> str:
        """The model id as every recipe should read it: a local folder made absolute (recipes
        resolve relative ids against their own folder, the operator typed it from here)."""
        local = self.model.startswith(("./", "../", "/")) or Path(self.model).is_dir()
        return str(Path(self.model).resolve()) if local else self.model

    def overrides(self) -> list[str]:
        quoted = self.model_id().replace("'", "''")
        return [f"model.id='{quoted}'", f"model.dtype={self.dtype}", f"model.device={self.device}"]


class ServerState:
    """What the request handlers share. The profile store and the batcher do their own locking;
    `tokenizer` is a private copy for counting tokens and rendering chats on the event loop
    (the model's own is locked while a batch runs)."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.log = config.log
        spec = ModelSpec(id=config.model_id(), dtype=config.dtype, device=config.device)  # type: ignore[arg-type]
        self.model: LoadedModel = load_model(spec, Path.cwd())
        with self.model.lock:
            self.tokenizer = copy.deepcopy(self.model.tokenizer)
        self.position_limit = learned_positions(self.model)
        self.store = ProfileStore(
            config.sources,
            config.overrides(),
            config.log,
            allow_outside_root=config.allow_outside_root,
            served_models=(config.model, config.model_id()),
        )
        self.store.load_all()
        self.batcher = Batcher(
            self.model,
            config.log,
            max_queue=config.max_queue,
            max_batch=config.max_batch,
            wait_s=config.batch_wait_s,
        )
        self.drain_deadline: float | None = None  # time.monotonic() when a drain cuts requests
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="steer-serve-reload", daemon=True)

    def start(self) -> None:
        self.batcher.start()
        if self.config.reload_interval_s > 0:
            self._watcher.start()

    def public(self, text: str) -> str:
        """`text` without this machine's absolute paths: a served folder, the model's folder
        or the working directory become relative (`mild.yaml:7:52`, not `/srv/recipes/...`)."""
        roots = [s.resolve() for s in self.config.sources if s.is_dir()]
        roots += [s.resolve().parent for s in self.config.sources if not s.is_dir()]
        roots.append(Path.cwd())
        model = Path(self.config.model_id())
        if model.is_absolute():
            roots.append(model.parent)
        for root in sorted(set(roots), key=lambda r: -len(str(r))):
            text = text.replace(f"{root}/", "")
        return text

    def begin_drain(self) -> None:
        """The server stops accepting: requests in flight have `drain_s` more seconds."""
        if self.drain_deadline is None:
            self.drain_deadline = time.monotonic() + self.config.drain_s
            self.log("draining", seconds=self.config.drain_s, waiting=self.batcher.waiting)

    def stop(self) -> None:
        self._stop.set()
        self.batcher.stop()
        if self._watcher.is_alive():
            self._watcher.join(timeout=60)

    def _watch(self) -> None:
        while not self._stop.wait(self.config.reload_interval_s):
            try:
                self.store.refresh()
            except Exception as exc:  # a reload must never take the server down
                self.log("reload_failed", error=f"{type(exc).__name__}: {exc}")
