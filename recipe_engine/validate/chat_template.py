"""Chat prompts need the model's chat template: find out before any model loads (issue 24 item
13: a base GGUF model's missing template surfaced after a 2 min 46 s conversion).

Where the template lives is readable without torch: a builtin's tokenizer_config.json (the
random builtins' byte tokenizer has none), a GGUF header's `tokenizer.chat_template`, a local
folder's tokenizer_config.json or chat_template.jinja. A hub model's is not looked up (it may
not be downloaded yet); the run says so when its tokenizer loads.
"""

from __future__ import annotations

import json
from pathlib import Path

from recipe_engine.builtin_models import BUILTINS, builtin_name
from recipe_engine.diagnostics import Diagnostic
from recipe_engine.format.file_fields import file_fields
from recipe_engine.format.model_spec import ModelSpec
from recipe_engine.format.prompts import ChatPrompt, PromptFile
from recipe_engine.format.recipe import Recipe
from recipe_engine.load.gguf_header import GGUFError, read_gguf_metadata
from recipe_engine.load.includes import LoadedDocument
from recipe_engine.load.paths import resolve_reference
from recipe_engine.model_store import local_model

__all__ = ["chat_template_problems", "first_chat_prompt", "has_chat_template"]

_SCANNED_LINES = 10_000  # of a JSONL prompt file: chats are recognised on their first lines


def _jsonl_has_chat(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle):
                if number >= _SCANNED_LINES:
                    return False
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if isinstance(row, dict) and "messages" in row:
                    return True
    except (OSError, UnicodeDecodeError):
        return False  # a missing or unreadable file has its own diagnostic
    return False


def first_chat_prompt(recipe: Recipe, doc: LoadedDocument) -> str | None:
    """The JSON pointer of the recipe's first chat prompt (inline or in a JSONL file), if any."""
    for field in file_fields(recipe):
        owner = field.owner
        if isinstance(owner, ChatPrompt):
            return field.pointer
        if isinstance(owner, list):
            for index, item in enumerate(owner):
                if isinstance(item, ChatPrompt):
                    return f"{field.pointer}/{index}"
        if isinstance(owner, PromptFile):
            suffix_jsonl = owner.format == "jsonl" or (
                owner.format is None and owner.file.endswith(".jsonl")
            )
            base = doc.base_dir(field.pointer + "/file")
            if suffix_jsonl and _jsonl_has_chat(resolve_reference(owner.file, base)):
                return field.pointer + "/file"
    return None


def _folder_has_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and bool(config.get("chat_template"))


def has_chat_template(spec: ModelSpec, recipe_dir: Path) -> tuple[bool | None, str]:
    """(whether the model has a chat template, where that was read); None: not known offline."""
    name = builtin_name(spec.id)
    if name is not None and name in BUILTINS:
        weights = BUILTINS[name].weights_dir
        if weights is None:
            return False, "its byte tokenizer"
        return _folder_has_template(weights), "its tokenizer_config.json"
    local = local_model(spec.id, spec.gguf_file, recipe_dir)
    if local is None:
        return None, ""
    if local.gguf:
        try:
            metadata = read_gguf_metadata(local.path)
        except GGUFError:
            return None, ""  # an unreadable file has its own diagnostic
        return bool(metadata.get("tokenizer.chat_template")), "its GGUF header"
    if local.path.is_dir():
        return _folder_has_template(local.path), "its tokenizer files"
    return None, ""


def chat_template_problems(recipe: Recipe, doc: LoadedDocument) -> list[Diagnostic]:
    """An error at the first chat prompt when the model is known to have no chat template."""
    pointer = first_chat_prompt(recipe, doc)
    if pointer is None:
        return []
    known, where = has_chat_template(recipe.model, doc.base_dir("/model/id"))
    if known is not False:
        return []
    return [
        doc.diagnostic(
            "no-chat-template",
            f"this prompt is a chat conversation, but {recipe.model.id!r} has no chat template "
            f"({where} has none): give plain-text prompts, or a chat/instruct model",
            pointer,
        )
    ]
