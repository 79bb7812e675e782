"""GGUF weights in: dequantized once through transformers' GGUF reader, cached as safetensors.

Dequantizing SmolLM2-135M takes ~40 s on 2 cores, Gemma 3 270M ~90 s; loading the result as a
plain float32 folder takes a few seconds. So the first load of a GGUF file converts it into
`<cache>/gguf-v1-<sha256 of the file>/` (config.json, model.safetensors, tokenizer files, as
save_pretrained writes them) and every load, that first one included, reads that folder: the
logits of the first run and of later runs come from the same bytes.

- Cache: $STEER_MODEL_CACHE, else $XDG_CACHE_HOME/recipe-engine/models (~/.cache/...).
- Key: the SHA-256 of the GGUF file's content, so a file replaced in place (same name, other
  weights) gets a new entry, and the same file under two names shares one. `v1` is this
  layout's version. Nothing is invalidated in place: old entries are left for the user to
  delete (`rm -r` the folder; each holds one float32 copy, 538 MB for SmolLM2).
- Atomic and concurrent-safe: the folder is written under a temporary name in the cache and
  renamed into place whole, so a reader sees all of it or nothing; a lock file (flock) makes a
  second run that wants the same entry wait for the first's conversion instead of repeating it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from recipe_engine.atomic import current_umask
from recipe_engine.errors import EnvironmentFailure
from recipe_engine.load.hashing import file_sha256

__all__ = ["CACHE_ENV", "cached_gguf_folder", "gguf_cache_dir"]

CACHE_ENV = "STEER_MODEL_CACHE"
_LAYOUT = "gguf-v1"


def gguf_cache_dir() -> Path:
    base = os.environ.get(CACHE_ENV)
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(xdg) / "recipe-engine" / "models"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: the atomic rename alone keeps entries whole
        yield
        return
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cached_gguf_folder(gguf: Path) -> Path:
    """The dequantized folder of a GGUF file, converting it first if no run has yet."""
    root = gguf_cache_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnvironmentFailure(
            f"cannot create the model cache {root}: {exc.strerror or exc}; set {CACHE_ENV} "
            "to a writable folder"
        ) from None
    final = root / f"{_LAYOUT}-{file_sha256(gguf)}"
    if final.is_dir():
        return final
    with _locked(root / f".{final.name}.lock"):
        if final.is_dir():  # another run converted it while this one waited
            return final
        staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=root))
        try:
            sys.stderr.write(
                f"converting {gguf.name} to safetensors, once (~40 s per 100M parameters on 2 "
                f"cores); cached in {final}\n"
            )
            _dequantize(gguf, staging)
            _usual_modes(staging)
            try:
                os.rename(staging, final)
            except OSError:
                if not final.is_dir():
                    raise
                # without flock, another run finished the same entry first: same content
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return final


def _usual_modes(folder: Path) -> None:
    """mkdtemp (and safetensors) create 0700/0600: give the entry the modes a plain mkdir and
    open() would, so that a cache shared by colleagues is readable as the umask allows."""
    mask = current_umask()
    folder.chmod(0o777 & ~mask)
    for path in folder.iterdir():
        path.chmod(0o666 & ~mask)


def _dequantize(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    where: dict[str, Any] = {"gguf_file": gguf.name, "local_files_only": True}
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), **where)
        loaded = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), dtype=torch.float32, **where
        )
    except ImportError as exc:
        raise EnvironmentFailure(
            f"reading {gguf.name} needs the gguf and accelerate packages: pip install "
            f"'recipe-engine[gguf]' ({exc})"
        ) from None
    except Exception as exc:  # transformers raises many types for one cause: cannot read it
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EnvironmentFailure(
            f"transformers cannot read the GGUF file {gguf.name}: {type(exc).__name__}: {first}"
        ) from None
    # save_pretrained refuses a model loaded from GGUF (it carries a quantization config):
    # rebuild a plain one from the config and move the dequantized weights into it.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict(), strict=True)
    plain.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
