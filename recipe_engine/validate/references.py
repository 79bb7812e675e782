"""Stage 2c: files a recipe names exist, stay inside the repository, and hold what they claim.

Prompt files are parsed (a bad JSONL line is reported with its line number), vector files are
checked by their safetensors header (never unpickled), sha256 pins are verified.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from recipe_engine.diagnostics import Diagnostic
from recipe_engine.format.file_fields import file_fields
from recipe_engine.format.prompts import PromptFile
from recipe_engine.format.recipe import Recipe
from recipe_engine.format.trained import TargetFile
from recipe_engine.format.vectors import FileVector, ProbeVector, SaeFeatureVector, TrainedVector
from recipe_engine.load.gguf_vectors import is_gguf, read_gguf_header
from recipe_engine.load.hashing import file_sha256
from recipe_engine.load.includes import LoadedDocument
from recipe_engine.load.paths import is_dir, is_file, is_inside, resolve_reference, unusable_name
from recipe_engine.load.prompt_files import PromptFileError, file_format, iter_lines, iter_prompts
from recipe_engine.load.sae_lens import SaeLayoutError, read_sae_config
from recipe_engine.load.safetensors_header import FLOAT_DTYPES, SafetensorsError, read_header
from recipe_engine.load.target_files import read_targets
from recipe_engine.model_config import (
    ModelUnavailable,
    custom_code_entries,
    custom_code_message,
)
from recipe_engine.model_store import local_model, model_store_roots, roots_config_file

__all__ = ["check_references"]


class _References:
    def __init__(
        self, recipe: Recipe, doc: LoadedDocument, allow_outside_root: bool, check_model: bool
    ) -> None:
        self.check_model = check_model
        self.recipe = recipe
        self.doc = doc
        self.allow_outside_root = allow_outside_root

    def resolve(
        self,
        reference: str,
        pointer: str,
        *,
        want_dir: bool = False,
        roots: tuple[Path, ...] = (),
    ) -> Path | Diagnostic:
        """The file (or folder) a recipe names, if it exists inside the repository root or one
        of `roots` (the model stores, for the model only)."""
        problem = unusable_name(reference)
        if problem is not None:
            what = "folder" if want_dir else "file"
            return self.doc.diagnostic(
                "file-not-found", f"{what} {reference!r} cannot exist: {problem}", pointer
            )
        path = resolve_reference(reference, self.doc.base_dir(pointer))
        inside = any(is_inside(path, root) for root in (self.doc.root, *roots))
        if not self.allow_outside_root and not inside:
            where = "the repository root" + (" or a model store" if roots else "")
            advice = (
                "list its folder as a model store in $STEER_MODEL_ROOTS or in "
                f"{roots_config_file()} (README, Real models), or pass --allow-outside-root"
                if roots
                else "pass --allow-outside-root to permit it"
            )
            return self.doc.diagnostic(
                "path-outside-root",
                f"{reference!r} resolves outside {where} ({self.doc.root}); recipes may only "
                f"read files in their own repository: {advice}",
                pointer,
            )
        exists = is_dir(path) if want_dir else is_file(path)
        if not exists:
            what = "folder" if want_dir else "file"
            return self.doc.diagnostic(
                "file-not-found", f"{what} {reference!r} does not exist (looked at {path})", pointer
            )
        return path

    def run(self) -> Iterator[Diagnostic]:
        yield from self.model()
        yield from self.judges()
        yield from self.classifiers()
        for field in file_fields(self.recipe):
            if isinstance(field.owner, ProbeVector):
                yield from self.probe_data(field.owner, field.pointer)
            elif isinstance(field.owner, FileVector):
                yield from self.vector_file(field.owner, field.pointer)
            elif isinstance(field.owner, TrainedVector):
                yield from self.target_file(field.owner, field.pointer)
            else:
                yield from self.prompts(field.owner, field.pointer)

    def classifiers(self) -> Iterator[Diagnostic]:
        """A concept metric's classifier folder: inside the root, a model with its config, its
        weights in safetensors, and no code of its own (never trusted for a judge)."""
        for index, metric in enumerate(self.recipe.report.metrics):
            folder = getattr(metric, "classifier", None)
            if folder is None:
                continue
            pointer = f"/report/metrics/{index}/classifier"
            found = self.resolve(folder, pointer, want_dir=True)
            if isinstance(found, Diagnostic):
                yield found
            elif not (found / "config.json").is_file() or not list(found.glob("*.safetensors")):
                yield self.doc.diagnostic(
                    "model-not-found",
                    f"classifier {folder!r} needs a config.json and safetensors weights",
                    pointer,
                )
            elif entries := custom_code_entries(found):
                yield self.doc.diagnostic(
                    "remote-code-not-trusted", custom_code_message(folder, entries), pointer
                )

    def model(self) -> Iterator[Diagnostic]:
        spec = self.recipe.model
        yield from self.model_reference(
            spec.id, spec.gguf_file, "/model/id", trusted=spec.trust_remote_code
        )

    def judges(self) -> Iterator[Diagnostic]:
        """The instruction metric's judge: a model reference as model.id writes one (the same
        roots and stores), with safetensors weights and never code of its own."""
        for index, metric in enumerate(self.recipe.report.metrics):
            judge = getattr(metric, "judge", None)
            if judge is not None:
                pointer = f"/report/metrics/{index}/judge"
                yield from self.model_reference(judge, None, pointer, judge=True)

    def model_reference(
        self,
        model_id: str,
        gguf_file: str | None,
        pointer: str,
        *,
        trusted: bool = False,
        judge: bool = False,
    ) -> Iterator[Diagnostic]:
        """A model reference (model.id with model.gguf_file, or a judge) names a model this
        machine may load: inside the repository or a model store, or an installed package."""
        at = "/model/gguf_file" if gguf_file else pointer
        try:
            local = local_model(model_id, gguf_file, self.doc.base_dir(pointer))
        except ModelUnavailable as exc:
            # A model package this machine lacks is like a hub model it has not cached: only
            # --check-model needs the model, so plain validation (CI, pre-commit) passes here.
            if exc.code != "model-not-installed" or self.check_model:
                yield self.doc.diagnostic(exc.code, str(exc), pointer)
            return
        if local is None:
            if gguf_file:
                yield self.doc.diagnostic(
                    "gguf-needs-folder",
                    "model.gguf_file names a file inside a local folder: model.id must start "
                    "with ./, ../ or / (or be pkg:DISTRIBUTION/FOLDER)",
                    at,
                )
            return
        if local.from_package:
            found: Path | Diagnostic = local.path
        else:
            stores = tuple(model_store_roots())
            found = self.resolve(local.reference, at, want_dir=not local.gguf, roots=stores)
        if isinstance(found, Diagnostic):
            yield found
        elif local.gguf:
            yield from self.gguf_magic(found, at)
        elif not (found / "config.json").is_file():
            yield self.doc.diagnostic("model-not-found", f"{model_id!r} has no config.json", at)
        elif judge and not list(found.glob("*.safetensors")):
            yield self.doc.diagnostic(
                "model-not-found", f"judge {model_id!r} needs safetensors weights", at
            )
        elif not trusted and (entries := custom_code_entries(found)):
            # Refused here, from the JSON alone: left to transformers, such a folder either
            # loads with another class than its author meant or, on a terminal, asks on
            # stdin whether to run the code, which a recipe must never lead to.
            yield self.doc.diagnostic(
                "remote-code-not-trusted", custom_code_message(model_id, entries), pointer
            )

    def gguf_magic(self, path: Path, at: str) -> Iterator[Diagnostic]:
        """A model store lends its files as models only: a .gguf must be one."""
        try:
            with path.open("rb") as handle:
                magic = handle.read(4)
        except OSError as exc:
            magic = b""
            reason = f"cannot be read: {exc.strerror or exc}"
        else:
            reason = "is not a GGUF file (it does not start with 'GGUF')"
        if magic != b"GGUF":
            yield self.doc.diagnostic("not-gguf", f"{path.name} {reason}", at)

    def prompts(self, source: object, pointer: str) -> Iterator[Diagnostic]:
        if not isinstance(source, PromptFile):
            return
        found = self.resolve(source.file, pointer + "/file")
        if isinstance(found, Diagnostic):
            yield found
            return
        try:
            count = sum(
                1
                for _ in iter_prompts(
                    found, file_format(found, source.format), source.field, source.limit
                )
            )
        except PromptFileError as exc:
            yield self.doc.diagnostic(
                "prompt-file-invalid", f"{source.file}: {exc}", pointer + "/file"
            )
            return
        except (ValueError, RecursionError, OSError) as exc:
            # json.loads, inside the prompt reader, raises these rather than a JSONDecodeError
            # for a number past Python's int digit limit or for nesting past the recursion
            # limit; OSError: the file vanished or cannot be read. The file is still invalid.
            reason = "nesting too deep" if isinstance(exc, RecursionError) else str(exc)
            reason = reason.partition("; use sys.set_int_max_str_digits")[0]  # not for users
            yield self.doc.diagnostic(
                "prompt-file-invalid", f"{source.file}: cannot be read: {reason}", pointer + "/file"
            )
            return
        if count == 0:
            yield self.doc.diagnostic(
                "prompt-file-empty", f"{source.file} holds no prompts", pointer + "/file"
            )

    def probe_data(self, spec: ProbeVector, pointer: str) -> Iterator[Diagnostic]:
        found = self.resolve(spec.data, pointer)
        if isinstance(found, Diagnostic):
            yield found
            return
        import json

        labels: set[object] = set()
        try:
            # Read under the prompt files' size limits: probe data is text for the model too.
            for number, raw in iter_lines(found):
                if not raw.strip():
                    continue
                try:
                    row = json.loads(raw)
                except (ValueError, RecursionError):
                    # JSONDecodeError and UnicodeDecodeError are ValueErrors; so is a number
                    # past Python's int digit limit. RecursionError: nesting too deep.
                    yield self.doc.diagnostic(
                        "probe-data-invalid", f"{spec.data}: line {number}: invalid JSON", pointer
                    )
                    return
                if (
                    not isinstance(row, dict)
                    or not isinstance(row.get(spec.text_field), str)
                    or type(row.get(spec.label_field)) is not int
                    or row.get(spec.label_field) not in (0, 1)
                ):
                    yield self.doc.diagnostic(
                        "probe-data-invalid",
                        f"{spec.data}: line {number}: expected an object with a string "
                        f"{spec.text_field!r} and a {spec.label_field!r} of 0 or 1",
                        pointer,
                    )
                    return
                labels.add(row[spec.label_field])
        except PromptFileError as exc:
            yield self.doc.diagnostic("probe-data-invalid", f"{spec.data}: {exc}", pointer)
            return
        if labels != {0, 1}:
            yield self.doc.diagnostic(
                "probe-data-invalid",
                f"{spec.data}: a probe needs examples of both labels 0 and 1",
                pointer,
            )

    def target_file(self, spec: TrainedVector, pointer: str) -> Iterator[Diagnostic]:
        """A trained vector's examples: every row has the objective's fields, none empty."""
        targets = spec.targets
        assert isinstance(targets, TargetFile)
        found = self.resolve(targets.file, pointer + "/file")
        if isinstance(found, Diagnostic):
            yield found
            return
        try:
            count = sum(1 for _ in read_targets(found, spec.objective, targets.limit))
        except PromptFileError as exc:
            yield self.doc.diagnostic(
                "target-file-invalid", f"{targets.file}: {exc}", pointer + "/file"
            )
            return
        if count < 2:
            yield self.doc.diagnostic(
                "target-file-invalid",
                f"{targets.file} holds {count} example(s); training needs at least 2",
                pointer + "/file",
            )

    def vector_file(self, spec: FileVector, at: str) -> Iterator[Diagnostic]:
        found = self.resolve(spec.path, at + "/path")
        if isinstance(found, Diagnostic):
            yield found
            return
        try:
            tensors, _ = read_gguf_header(found) if is_gguf(found) else read_header(found)
        except SafetensorsError as exc:
            yield self.doc.diagnostic("not-safetensors", f"{spec.path}: {exc}", at + "/path")
            return
        if spec.key is None and len(tensors) != 1:
            yield self.doc.diagnostic(
                "vector-key-ambiguous",
                f"{spec.path} holds {len(tensors)} tensors ({', '.join(sorted(tensors)[:8])}); "
                "name one with `key:`",
                at,
            )
            return
        key = spec.key if spec.key is not None else next(iter(tensors))
        if key not in tensors:
            yield self.doc.diagnostic(
                "vector-key-missing",
                f"{spec.path} has no tensor {key!r} (it has: {', '.join(sorted(tensors)[:8])})",
                at + "/key",
            )
            return
        info = tensors[key]
        if info.dtype not in FLOAT_DTYPES:
            yield self.doc.diagnostic(
                "vector-dtype",
                f"tensor {key!r} has dtype {info.dtype}; a steering vector must be floating point "
                "(F16, BF16, F32 or F64): save it as float32",
                at,
            )
        if len(info.shape) not in (1, 2) or 0 in info.shape:
            yield self.doc.diagnostic(
                "vector-shape",
                f"tensor {key!r} has shape {list(info.shape)}; "
                "expected [hidden] or [positions, hidden]: reshape it before saving",
                at,
            )
        if isinstance(spec, SaeFeatureVector):
            yield from self.sae_feature(spec, found, info.shape, at)
        if spec.sha256 is not None:
            actual = file_sha256(found)
            if actual != spec.sha256:
                yield self.doc.diagnostic(
                    "sha256-mismatch",
                    f"{spec.path} has sha256 {actual}, but the recipe pins {spec.sha256}; the "
                    "file changed since the recipe was written",
                    at + "/sha256",
                )

    def sae_feature(
        self, spec: SaeFeatureVector, found: Path, shape: tuple[int, ...], at: str
    ) -> Iterator[Diagnostic]:
        """sae-lens layout: cfg.json beside the weights names the hook; the feature is a row."""
        try:
            read_sae_config(found)
        except SaeLayoutError as exc:
            # The SAE's own files are at fault, not the recipe's fields: say so first.
            message = f"the SAE at {spec.path} is not in sae-lens's layout: {exc}"
            yield self.doc.diagnostic("sae-layout", message, at + "/path")
        if len(shape) == 2 and spec.feature >= shape[0]:
            yield self.doc.diagnostic(
                "sae-feature-range",
                f"feature {spec.feature} out of range ({spec.path} has {shape[0]} features: "
                f"0..{shape[0] - 1})",
                at + "/feature",
            )


def check_references(
    recipe: Recipe,
    doc: LoadedDocument,
    *,
    allow_outside_root: bool = False,
    check_model: bool = False,
) -> list[Diagnostic]:
    return list(_References(recipe, doc, allow_outside_root, check_model).run())
