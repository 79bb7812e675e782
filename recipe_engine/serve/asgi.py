"""Import anyio (under FastAPI and uvicorn) in a process that has imported nnsight.

nnsight mounts a `save` method on every object (its optional C extension), and anyio's
typed-attribute classes refuse, when they are defined, any attribute without a type annotation:
anyio's socket, TLS and file-stream modules then fail to import ("Attribute 'save' is missing
its type annotation"). They are imported here with the mount lifted for that moment, before the
server starts; no trace runs then (the model is loaded, the batcher not yet started).
"""

from __future__ import annotations

import importlib
import sys

__all__ = ["import_anyio"]

_MODULES = ("anyio._backends._asyncio", "anyio.abc", "anyio.streams.tls", "anyio.streams.file")


def import_anyio() -> None:
    if all(name in sys.modules for name in _MODULES) or "nnsight" not in sys.modules:
        for name in _MODULES:
            importlib.import_module(name)
        return
    import nnsight

    try:
        from nnsight._c import mount, unmount
    except ImportError:  # no C extension: nothing is mounted
        mount = unmount = None
    mounted = unmount is not None and hasattr(object, "save")
    if mounted:
        unmount("save")
    try:
        for name in _MODULES:
            importlib.import_module(name)
    finally:
        if mounted and mount is not None:
            mount(nnsight.save, "save")
