"""The hostile-input matrix, shared by tests/test_hostile_inputs.py and scripts/hostile_matrix.py.

Each Case is one hostile reference in a recipe, one `steer` command run on it end to end, the
exit status it must give, and what its one-line error must say: where (file, field) and what to
do. The rows:

1. paths escaping the repository, for each kind of reference (include, prompt file, vector file,
   local model folder) and each escape (`../..`, an absolute path, a symlinked file, a symlinked
   folder); with `--allow-outside-root` the same recipes are valid;
2. pickles renamed `.safetensors` (protocol 0 and 2, torch.save's zip and legacy formats),
   whose unpickling would create a marker file: refused, and the marker never appears;
3. safetensors that lie: wrong dtype or shape (caught by `steer validate`, header only,
   torch-free; the width needs the model's config: `--check-model`), NaN/Inf (caught when the
   vector is loaded: `steer run`, `steer vectors build`), truncated, a header length or shape
   that lies;
4. prompt files too large (STEER_MAX_PROMPT_FILE_BYTES; the 256 MiB default is shown with a
   sparse file that takes no disk), one enormous line (STEER_MAX_PROMPT_LINE_BYTES), a prompt
   longer than the model's context, binary data, invalid UTF-8;
5. custom model code (`auto_map`) without `trust_remote_code: true`, in a local folder or the
   hub cache: refused, and none of the folder's Python files is imported (marker);
6. a hub model that is not in the local cache: exit 3.

Exit statuses are the CLI's: 1 the recipe (or a file it names) is wrong, 2 the command line or
environment variable is wrong, 3 the machine cannot do it (a model not cached).

Cases run in this process through `recipe_engine.cli.main.main` (one model build for all), or,
where marked, as `python -m recipe_engine` in a subprocess, to show real exit statuses and that no
traceback reaches the terminal.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import re
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CASES", "Case", "Outcome", "Payload", "Site", "error_lines", "run_case"]

MODEL = "builtin:tiny-random"  # GPT-2, width 64, 256 learned positions, byte-level tokenizer
WIDTH = 64
HUB_ID = "someorg/not-cached-model"
CODE_HUB_ID = "someorg/custom-code-model"


@dataclass(frozen=True)
class Site:
    """The folders of one case: `repo/` (a repository: has .git) and `outside/` beside it."""

    base: Path

    @property
    def repo(self) -> Path:
        return self.base / "repo"

    @property
    def outside(self) -> Path:
        return self.base / "outside"

    @property
    def marker(self) -> Path:
        """Appears only if hostile code ran (a pickle was loaded, a model's .py imported)."""
        return self.base / "MARKER"

    @property
    def out(self) -> Path:
        return self.base / "out.safetensors"

    @property
    def hub(self) -> Path:
        """A Hugging Face hub cache of this case's own (empty unless the case fills it)."""
        return self.base / "hub-cache"

    def create(self) -> None:
        (self.repo / ".git").mkdir(parents=True)
        self.outside.mkdir()
        self.hub.mkdir()

    def write(self, name: str, content: str | bytes, *, outside: bool = False) -> Path:
        path = (self.outside if outside else self.repo) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path


class Payload:
    """Unpickling this creates `marker`: were a file unpickled, the marker would appear."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


# -- recipe text ---------------------------------------------------------------------------------


def recipe(
    *,
    model: str | None = MODEL,
    include: str | None = None,
    vectors: str = "",
    prompts: str = "[The weather today is]",
    mode: str = "trace",
    extra: str = "",
) -> str:
    lines = ["version: 1", "name: hostile"]
    if include is not None:
        lines.append(f"include: {include}")
    if model is not None:
        lines.append(f"model: {{id: {json.dumps(model)}}}")
    if vectors:
        lines += ["vectors:", f"  {vectors}", "interventions:"]
        lines.append("  - {vector: v, op: add, layers: 1, site: resid_post, strength: 1.0}")
    lines.append(f"run: {{mode: {mode}, prompts: {prompts}{extra}}}")
    return "\n".join(lines) + "\n"


def file_vector(path: str) -> str:
    return f"v: {{kind: file, path: {json.dumps(path)}}}"


def safetensors_bytes(tensor: Any) -> bytes:
    from safetensors.torch import save

    return bytes(save({"v": tensor}))


def raw_safetensors(header: dict[str, Any], data: bytes, length: int | None = None) -> bytes:
    """A safetensors file written by hand, so that its header can lie."""
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text) if length is None else length) + text + data


def ones() -> Any:
    import torch

    return torch.ones(WIDTH)


# -- the cases -----------------------------------------------------------------------------------

Setup = Callable[[Site], None]


@dataclass(frozen=True)
class Case:
    id: str  # pytest id
    input: str  # the hostile input, for the table
    command: tuple[str, ...]  # steer arguments; {recipe} and {out} are filled in
    exit: int
    setup: Setup
    names: tuple[str, ...] = ()  # the error names these: the file, the field
    hint: tuple[str, ...] = ()  # and says this: what to do
    env: Mapping[str, str] = field(default_factory=dict)  # {hub} is filled in
    subprocess: bool = False
    marker: bool = False  # hostile code is planted: the marker must never appear
    recipe: str = "r.yaml"


VALIDATE = ("validate", "{recipe}")
CHECK_MODEL = ("validate", "--check-model", "{recipe}")
RUN = ("run", "{recipe}")
BUILD = ("vectors", "build", "{recipe}", "--out", "{out}")
ALLOW = ("validate", "--allow-outside-root", "{recipe}")

CASES: list[Case] = []


def case(*args: Any, **kwargs: Any) -> None:
    CASES.append(Case(*args, **kwargs))


def slug(command: tuple[str, ...]) -> str:
    """`validate --check-model {recipe}` -> `validate-check-model`, for case ids."""
    return "-".join(a.lstrip("-") for a in command if "{" not in a and a != "--out")


# 1. Paths that leave the repository --------------------------------------------------------------

OUTSIDE_FILES: dict[str, tuple[str, Callable[[], str | bytes]]] = {
    # kind: (file name outside, its content)
    "include": ("frag.yaml", lambda: f"model: {{id: {MODEL}}}\n"),
    "prompt file": ("prompts.txt", lambda: "The weather today is\nI think\n"),
    "vector file": ("v.safetensors", lambda: safetensors_bytes(ones())),
    "model folder": ("model", lambda: ""),
}
POINTERS = {
    "include": "/include",
    "prompt file": "/run/prompts/file",
    "vector file": "/vectors/v/path",
    "model folder": "/model/id",
}


def _plant_outside(site: Site, kind: str) -> str:
    """Create the outside target of `kind`, return its name."""
    name, content = OUTSIDE_FILES[kind]
    if kind == "model folder":
        config = {"model_type": "gpt2", "n_layer": 4, "n_embd": WIDTH, "n_head": 4}
        site.write(f"{name}/config.json", json.dumps(config), outside=True)
    else:
        site.write(name, content(), outside=True)
    return name


def _reference(site: Site, kind: str, escape: str, name: str) -> str:
    if escape == "../..":
        return f"../../{site.base.name}/outside/{name}"  # up past the repository, back down
    if escape == "absolute":
        return str(site.outside / name)
    if escape == "symlink":
        (site.repo / f"link-{name}").symlink_to(site.outside / name)
        return f"./link-{name}" if kind == "model folder" else f"link-{name}"
    assert escape == "symlinked dir"
    (site.repo / "shared").symlink_to(site.outside, target_is_directory=True)
    return f"./shared/{name}" if kind == "model folder" else f"shared/{name}"


def _escape_recipe(kind: str, ref: str) -> str:
    if kind == "include":
        return recipe(model=None, include=ref)
    if kind == "prompt file":
        return recipe(prompts=f"{{file: {json.dumps(ref)}}}")
    if kind == "vector file":
        return recipe(vectors=file_vector(ref))
    return recipe(model=ref)


def _escape(kind: str, escape: str) -> Setup:
    def setup(site: Site) -> None:
        name = _plant_outside(site, kind)
        site.write("r.yaml", _escape_recipe(kind, _reference(site, kind, escape, name)))

    return setup


for _kind in OUTSIDE_FILES:
    for _escape_kind in ("../..", "absolute", "symlink", "symlinked dir"):
        _input = f"{_kind}: {_escape_kind} out of the repo"
        _slug = f"{_kind}-{_escape_kind}".replace(" ", "-").replace("../..", "dotdot")
        case(
            f"outside-{_slug}",
            _input,
            VALIDATE,
            1,
            _escape(_kind, _escape_kind),
            names=(POINTERS[_kind], OUTSIDE_FILES[_kind][0], "outside the repository root"),
            hint=("--allow-outside-root",),
        )
        case(f"allowed-{_slug}", _input, ALLOW, 0, _escape(_kind, _escape_kind))
    # The commands that run a recipe refuse it the same way, before reading anything.
    case(
        f"outside-run-{_kind.replace(' ', '-')}",
        f"{_kind}: ../.. out of the repo",
        RUN,
        1,
        _escape(_kind, "../.."),
        names=(POINTERS[_kind], "outside the repository root"),
        hint=("--allow-outside-root",),
    )
case(
    "outside-build-vector-symlink",
    "vector file: symlink out of the repo",
    BUILD,
    1,
    _escape("vector file", "symlink"),
    names=("/vectors/v/path", "link-v.safetensors"),
    hint=("--allow-outside-root",),
)


# 2. Pickles renamed .safetensors -----------------------------------------------------------------


def _pickled(kind: str) -> Setup:
    def setup(site: Site) -> None:
        path = site.repo / "v.safetensors"
        if kind.startswith("pickle"):
            protocol = int(kind.rsplit(" ", 1)[1])
            path.write_bytes(pickle.dumps(Payload(site.marker), protocol=protocol))
        else:
            import torch

            torch.save(
                {"v": torch.zeros(WIDTH), "payload": Payload(site.marker)},
                path,
                _use_new_zipfile_serialization=kind == "torch.save zip",
            )
        site.write("r.yaml", recipe(vectors=file_vector("v.safetensors")))

    return setup


PICKLE_HINT = ("safetensors.torch.save_file",)
for _kind, _commands in (
    ("pickle protocol 2", (VALIDATE, RUN, BUILD)),
    ("pickle protocol 0", (VALIDATE,)),
    ("torch.save zip", (VALIDATE, RUN)),
    ("torch.save legacy", (VALIDATE,)),
):
    for _command in _commands:
        case(
            f"{_kind.replace(' ', '-').replace('.', '')}-{slug(_command)}",
            f"{_kind} renamed .safetensors",
            _command,
            1,
            _pickled(_kind),
            names=("/vectors/v/path", "v.safetensors"),
            hint=PICKLE_HINT if _kind != "pickle protocol 0" else ("steer vectors build",),
            marker=True,
        )
case(
    "pickle-2-inspect",
    "pickle protocol 2 renamed .safetensors",
    ("vectors", "inspect", "repo/v.safetensors"),
    2,
    _pickled("pickle protocol 2"),
    names=("v.safetensors", "pickle"),
    hint=PICKLE_HINT,
    marker=True,
)
case(
    "pickle-2-run-subprocess",
    "pickle protocol 2 renamed .safetensors",
    RUN,
    1,
    _pickled("pickle protocol 2"),
    names=("/vectors/v/path", "pickle"),
    hint=PICKLE_HINT,
    marker=True,
    subprocess=True,
)


# 3. Safetensors whose content is wrong -----------------------------------------------------------


def _vector_file(make: Callable[[], bytes]) -> Setup:
    def setup(site: Site) -> None:
        site.write("v.safetensors", make())
        site.write("r.yaml", recipe(vectors=file_vector("v.safetensors")))

    return setup


def _tensor(kind: str) -> Callable[[], bytes]:
    def make() -> bytes:
        import torch

        tensors = {
            "int64": lambda: torch.arange(WIDTH, dtype=torch.int64),
            "bool": lambda: torch.ones(WIDTH, dtype=torch.bool),
            "3-D": lambda: torch.ones(2, 3, WIDTH),
            "0-D": lambda: torch.tensor(1.0),
            "2-D transposed": lambda: torch.ones(WIDTH, 3),
            "width 65": lambda: torch.ones(WIDTH + 1),
            "NaN": lambda: torch.full((WIDTH,), float("nan")),
            "Inf": lambda: torch.ones(WIDTH).index_fill(0, torch.tensor([5]), float("inf")),
        }
        return safetensors_bytes(tensors[kind]())

    return make


def _truncated() -> bytes:
    return safetensors_bytes(ones())[:-10]


def _length_too_long() -> bytes:
    good = safetensors_bytes(ones())
    return struct.pack("<Q", 1 << 40) + good[8:]  # says a terabyte of header


def _length_too_short() -> bytes:
    good = safetensors_bytes(ones())
    return struct.pack("<Q", 20) + good[8:]  # cuts the JSON header in the middle


def _shape_lies() -> bytes:
    # The header claims 4096 floats; the data holds 64.
    header = {"v": {"dtype": "F32", "shape": [4096], "data_offsets": [0, WIDTH * 4]}}
    return raw_safetensors(header, bytes(WIDTH * 4))


for _kind, _commands, _names, _hint in (
    ("int64", (VALIDATE,), ("/vectors/v", "dtype I64"), ("float32",)),
    ("bool", (VALIDATE,), ("/vectors/v", "dtype BOOL"), ("float32",)),
    ("3-D", (VALIDATE,), ("/vectors/v", "[2, 3, 64]"), ("reshape",)),
    ("0-D", (VALIDATE,), ("/vectors/v", "shape []"), ("reshape",)),
    ("2-D transposed", (CHECK_MODEL,), ("/vectors/v/path", "width 3"), ("built for this model",)),
    ("width 65", (CHECK_MODEL, RUN), ("/vectors/v/path", "width 65"), ("built for this model",)),
    ("NaN", (RUN, BUILD), ("/vectors/v", "NaN"), ("rebuild the file",)),
    ("Inf", (RUN, BUILD), ("/vectors/v", "Inf"), ("rebuild the file",)),
):
    for _command in _commands:
        case(
            f"tensor-{_kind.replace(' ', '-')}-{slug(_command)}",
            f"safetensors: {_kind} tensor",
            _command,
            1,
            _vector_file(_tensor(_kind)),
            names=_names,
            hint=_hint,
        )


def _huge_number(field: str, number: bytes) -> Callable[[], bytes]:
    def make() -> bytes:
        entry = {"dtype": "F32", "shape": [WIDTH], "data_offsets": [0, WIDTH * 4]}
        text = (
            json.dumps({"v": entry})
            .encode()
            .replace(json.dumps(entry[field]).encode(), b"[0, " + number + b"]", 1)
        )
        return struct.pack("<Q", len(text)) + text + bytes(WIDTH * 4)

    return make


for _kind, _make, _names in (
    ("truncated", _truncated, ("truncated",)),
    # Numbers that json reads but int() cannot take: they used to escape as OverflowError or
    # ValueError, an "internal error" (exit 3).
    ("data offset 1e999 (JSON infinity)", _huge_number("data_offsets", b"1e999"), ("malformed",)),
    ("a 5000-digit number", _huge_number("data_offsets", b"9" * 5000), ("not JSON",)),
    ("header length past the end", _length_too_long, ("no valid header",)),
    ("header length too short", _length_too_short, ("header is not JSON",)),
    ("shape larger than the data", _shape_lies, ("[4096]", "corrupt")),
):
    for _command in (VALIDATE, RUN):
        case(
            f"safetensors-{re.sub(r'[^A-Za-z0-9]+', '-', _kind).strip('-')}-{slug(_command)}",
            f"safetensors: {_kind}",
            _command,
            1,
            _vector_file(_make),
            names=("/vectors/v/path", "v.safetensors", *_names),
            hint=("rebuild the file",),
        )


# 4. Prompt files ---------------------------------------------------------------------------------


def _prompt_file(write: Callable[[Path], None], **recipe_args: Any) -> Setup:
    def setup(site: Site) -> None:
        write(site.repo / "prompts.txt")
        site.write("r.yaml", recipe(prompts="{file: prompts.txt}", **recipe_args))

    return setup


def _sparse(size: int) -> Callable[[Path], None]:
    """A file of `size` bytes that takes no disk space: refused by its size, never read."""

    def write(path: Path) -> None:
        with path.open("wb") as handle:
            handle.truncate(size)

    return write


def _text(text: str | bytes) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.write_bytes(text.encode() if isinstance(text, str) else text)

    return write


TWO_KIB = _text("The weather today is\n" * 100)  # 2100 bytes of ordinary prompts
FILE_LIMIT = ("/run/prompts/file", "prompts.txt", "limit for prompt files")
ENV_FILE = "STEER_MAX_PROMPT_FILE_BYTES"
ENV_LINE = "STEER_MAX_PROMPT_LINE_BYTES"

case(
    "prompt-file-default-limit",
    "prompt file of 257 MiB (sparse), default limit",
    VALIDATE,
    1,
    _prompt_file(_sparse(257 << 20)),
    names=(*FILE_LIMIT, "269484032 bytes"),
    hint=(ENV_FILE,),
)
for _command in (VALIDATE, RUN):
    case(
        f"prompt-file-over-configured-limit-{slug(_command)}",
        f"prompt file of 2 KiB, {ENV_FILE}=1K",
        _command,
        1,
        _prompt_file(TWO_KIB),
        names=FILE_LIMIT,
        hint=(ENV_FILE,),
        env={ENV_FILE: "1K"},
    )
case(
    "prompt-file-limit-raised",
    f"prompt file of 2 KiB, {ENV_FILE}=4K",
    VALIDATE,
    0,
    _prompt_file(TWO_KIB),
    env={ENV_FILE: "4K"},
)
case(
    "prompt-file-limit-invalid",
    f"{ENV_FILE}=lots",
    VALIDATE,
    2,
    _prompt_file(TWO_KIB),
    names=(ENV_FILE,),
    hint=("positive number of bytes",),
    env={ENV_FILE: "lots"},
)
case(
    "prompt-line-default-limit",
    "prompt file with one 1.5 MiB line, default limit",
    VALIDATE,
    1,
    _prompt_file(_text("word " * (300 << 10))),
    names=("/run/prompts/file", "prompts.txt", "line 1", "1048576-byte limit"),
    hint=("one prompt per line", ENV_LINE),
)
case(
    "prompt-line-configured-limit",
    f"prompt file with one 20 KiB line, {ENV_LINE}=16K",
    VALIDATE,
    1,
    _prompt_file(_text("ok\n" + "word " * 4096)),
    names=("/run/prompts/file", "line 2", "16384-byte limit"),
    hint=(ENV_LINE,),
    env={ENV_LINE: "16K"},
)
case(
    "prompt-line-limit-raised",
    f"prompt file with one 20 KiB line, {ENV_LINE}=32K",
    VALIDATE,
    0,
    _prompt_file(_text("ok\n" + "word " * 4096)),
    env={ENV_LINE: "32K"},
)
# Within the limits but longer than the model's 256 learned positions: torch would fail mid-run
# with a bare IndexError; the engine says which prompt, how long, and the limit.
case(
    "prompt-longer-than-context-run",
    "a 3000-byte prompt (model: 256 positions)",
    RUN,
    1,
    _prompt_file(_text("ok\n" + "word " * 600)),
    names=("/run/prompts/file", "prompts.txt", "prompt 2", "256 positions"),
    hint=("shorten it",),
)


def _long_vector_prompt(site: Site) -> None:
    site.write("long.txt", "ok\n" + "word " * 600)
    vector = "v: {kind: mean_activation, prompts: {file: long.txt}, layer: 1}"
    site.write("r.yaml", recipe(vectors=vector))


case(
    "prompt-longer-than-context-build",
    "a 3000-byte vector prompt (model: 256 positions)",
    BUILD,
    1,
    _long_vector_prompt,
    names=("/vectors/v", "prompt 2", "256 positions"),
    hint=("shorten it",),
)
case(
    "generation-longer-than-context-run",
    "max_new_tokens 1000 (model: 256 positions)",
    RUN,
    1,
    _prompt_file(_text("hi\n"), mode="generate", extra=", generation: {max_new_tokens: 1000}"),
    names=("/run/generation/max_new_tokens", "1000 generated"),
    hint=("lower run.generation.max_new_tokens",),
)
case(
    "prompt-file-binary",
    "prompt file with a NUL byte",
    VALIDATE,
    1,
    _prompt_file(_text(b"fine\nbin\x00ary\n")),
    names=("/run/prompts/file", "prompts.txt", "line 2", "NUL"),
    hint=("UTF-8 text",),
)
case(
    "prompt-file-not-utf8",
    "prompt file in Latin-1",
    VALIDATE,
    1,
    _prompt_file(_text("fine\ncaf\u00e9 cr\u00e8me\n".encode("latin-1"))),
    names=("/run/prompts/file", "prompts.txt", "line 2"),
    hint=("save the file as UTF-8",),
)


def _probe_data(site: Site) -> None:
    rows = [{"text": f"example {i}", "label": i % 2} for i in range(100)]
    site.write("probe.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    site.write("r.yaml", recipe(vectors="v: {kind: probe, data: probe.jsonl, layer: 1}"))


case(
    "probe-data-over-configured-limit",
    f"probe data of 3 KiB, {ENV_FILE}=1K",
    VALIDATE,
    1,
    _probe_data,
    names=("/vectors/v/data", "probe.jsonl"),
    hint=(ENV_FILE,),
    env={ENV_FILE: "1K"},
)


# 5. Custom model code without trust_remote_code ------------------------------------------------

CODE_FILES = ("configuration_evil.py", "modeling_evil.py", "tokenization_evil.py")


def plant_code(folder: Path, marker: Path) -> None:
    """A model folder whose config names its own classes; importing any .py makes `marker`."""
    config = {
        "model_type": "evil",
        "n_layer": 4,
        "n_embd": WIDTH,
        "n_head": 4,
        "auto_map": {
            "AutoConfig": "configuration_evil.EvilConfig",
            "AutoModelForCausalLM": "modeling_evil.EvilModel",
        },
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    tokenizer = {"auto_map": {"AutoTokenizer": ["tokenization_evil.EvilTokenizer", None]}}
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer), encoding="utf-8")
    for name in CODE_FILES:
        (folder / name).write_text(
            f"open({str(marker)!r}, 'w').write({name!r})  # proof that this file was imported\n",
            encoding="utf-8",
        )


def _local_code(site: Site) -> None:
    plant_code(site.repo / "custom", site.marker)
    site.write("r.yaml", recipe(model="./custom"))


def _hub_code(site: Site) -> None:
    folder = site.hub / ("models--" + CODE_HUB_ID.replace("/", "--"))
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0123abcd", encoding="utf-8")
    plant_code(folder / "snapshots" / "0123abcd", site.marker)
    site.write("r.yaml", recipe(model=CODE_HUB_ID))


def _trust_from_fragment(site: Site) -> None:
    site.write("_model.yaml", f"model: {{id: {MODEL}, trust_remote_code: true}}\n")
    site.write("r.yaml", recipe(model=None, include="_model.yaml"))


TRUST = ("trust_remote_code: true",)
for _command in (VALIDATE, CHECK_MODEL, RUN):
    case(
        f"remote-code-local-{slug(_command)}",
        "local model folder with auto_map (custom code)",
        _command,
        1,
        _local_code,
        names=("/model/id", "./custom", "config.json"),
        hint=TRUST,
        marker=True,
    )
case(
    "remote-code-local-run-subprocess",
    "local model folder with auto_map (custom code)",
    RUN,
    1,
    _local_code,
    names=("/model/id", "./custom"),
    hint=TRUST,
    marker=True,
    subprocess=True,
)
for _command in (CHECK_MODEL, RUN):
    case(
        f"remote-code-hub-{slug(_command)}",
        "cached hub model with auto_map (custom code)",
        _command,
        1,
        _hub_code,
        names=("/model/id", CODE_HUB_ID),
        hint=TRUST,
        env={"HF_HUB_CACHE": "{hub}"},
        marker=True,
    )
case(
    "remote-code-from-fragment",
    "trust_remote_code: true set by an included fragment",
    VALIDATE,
    1,
    _trust_from_fragment,
    names=("/model/trust_remote_code", "_model.yaml"),
    hint=("recipe itself",),
)


# 6. A hub model that is not in the local cache -------------------------------------------------


def _hub_missing(site: Site) -> None:
    site.write("r.yaml", recipe(model=HUB_ID))


for _command, _subprocess in ((CHECK_MODEL, False), (RUN, False), (BUILD, False), (RUN, True)):
    case(
        f"hub-not-cached-{slug(_command)}{'-subprocess' if _subprocess else ''}",
        f"hub id {HUB_ID}, not cached, offline",
        _command,
        3,
        _hub_missing,
        names=("/model/id", HUB_ID, "not in the local cache"),
        hint=("hf download",),
        env={"HF_HUB_CACHE": "{hub}", "HF_HUB_OFFLINE": "1"},
        subprocess=_subprocess,
    )

_ids = [c.id for c in CASES]
assert len(_ids) == len(set(_ids)), "case ids must be unique"


# -- running a case ------------------------------------------------------------------------------


@dataclass
class Outcome:
    argv: list[str]
    exit: int
    stdout: str
    stderr: str

    @property
    def text(self) -> str:
        """Where the error is: stderr (run, vectors, usage), else stdout (validate reports)."""
        return self.stderr if self.stderr.strip() else self.stdout

    @property
    def first_line(self) -> str:
        lines = [line for line in self.text.splitlines() if line.strip()]
        return lines[0] if lines else ""


_SUMMARY = re.compile(r"^\d+ files? checked")


def error_lines(outcome: Outcome) -> list[str]:
    """The lines of the error, without `steer validate`'s closing summary."""
    return [line for line in outcome.text.splitlines() if line.strip() and not _SUMMARY.match(line)]


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def argv_of(item: Case, site: Site) -> list[str]:
    """The command line, with paths relative to site.base (where the command runs)."""
    fill = {"{recipe}": f"repo/{item.recipe}", "{out}": site.out.name}
    return [fill.get(arg, arg) for arg in item.command]


def run_case(item: Case, site: Site) -> Outcome:
    """Set the case up in `site` (an empty folder's Site) and run its command there."""
    site.create()
    item.setup(site)
    argv = argv_of(item, site)
    env = {k: v.format(hub=site.hub) for k, v in item.env.items()}
    if item.subprocess:
        result = subprocess.run(
            [sys.executable, "-m", "recipe_engine", *argv],
            cwd=site.base,
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "NO_COLOR": "1", "HF_HUB_OFFLINE": "1", **env},
        )
        return Outcome(argv, result.returncode, result.stdout, result.stderr)

    from recipe_engine.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with (
        _environment(env),
        _cwd(site.base),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's own usage errors
            code = exc.code if isinstance(exc.code, int) else 2
    return Outcome(argv, code, out.getvalue(), err.getvalue())
