"""The loader: YAML to plain data with locations, includes, and prompt files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recipe_engine.diagnostics import Location
from recipe_engine.errors import RecipeLoadError
from recipe_engine.load.includes import load_document
from recipe_engine.load.prompt_files import PromptFileError, file_format, read_prompts
from recipe_engine.load.yaml_reader import MAX_DEPTH, read_yaml_file
from recipe_engine.validate import validate_file
from tests.conftest import MINIMAL


def _read(path: Path):  # type: ignore[no-untyped-def]
    return read_yaml_file(path, str(path))


def _load_error(path: Path, **kw: object) -> RecipeLoadError:
    with pytest.raises(RecipeLoadError) as info:
        load_document(path, **kw)  # type: ignore[arg-type]
    assert len(info.value.diagnostics) == 1
    return info.value


def _same(file: str, path: Path) -> bool:
    return Path(file).resolve() == path.resolve()


# -- locations ---------------------------------------------------------------------------------


def test_nested_values_keep_line_and_column(write) -> None:  # type: ignore[no-untyped-def]
    path = write(
        "r.yaml",
        "version: 1\n"
        "run:\n"
        "  mode: trace\n"
        "  prompts:\n"
        "    - first\n"
        "    -   second\n"
        "  generation: {max_new_tokens: 7}\n",
    )
    parsed = _read(path)
    smap = parsed.source_map

    assert parsed.data["run"]["prompts"] == ["first", "second"]
    assert smap.values["/run/mode"] == Location(str(path), 3, 9)
    assert smap.keys["/run/mode"] == Location(str(path), 3, 3)
    assert smap.values["/run/prompts/0"] == Location(str(path), 5, 7)
    assert smap.values["/run/prompts/1"] == Location(str(path), 6, 9)
    assert smap.values["/run/generation/max_new_tokens"] == Location(str(path), 7, 32)
    # a pointer that does not exist falls back to its nearest existing ancestor
    assert smap.locate("/run/generation/seed") == Location(str(path), 7, 15)


def test_diagnostic_points_at_the_nested_value(write) -> None:  # type: ignore[no-untyped-def]
    path = write(
        "r.yaml",
        MINIMAL + "  generation:\n    max_new_tokens: 0\n",
    )
    result = validate_file(path)

    [error] = result.errors
    assert error.code == "out-of-range"
    assert error.pointer == "/run/generation/max_new_tokens"
    assert (error.location.line, error.location.column) == (8, 21)  # type: ignore[union-attr]


def test_duplicate_key_is_an_error_at_the_second_key(write) -> None:  # type: ignore[no-untyped-def]
    path = write(
        "r.yaml",
        "version: 1\nmodel:\n  id: builtin:tiny-random\n  dtype: float16\n  dtype: float32\n",
    )
    [diag] = _load_error(path).diagnostics

    assert diag.code == "duplicate-key"
    assert (diag.location.line, diag.location.column) == (5, 3)  # type: ignore[union-attr]
    assert "'dtype'" in diag.message
    assert "line 4" in diag.message


def test_duplicate_key_spelled_differently_is_still_a_duplicate(write) -> None:  # type: ignore[no-untyped-def]
    path = write("r.yaml", "a: 1\n'a': 2\n")
    [diag] = _load_error(path).diagnostics
    assert (diag.code, diag.location.line) == ("duplicate-key", 2)  # type: ignore[union-attr]


# -- merge keys --------------------------------------------------------------------------------


def test_merge_key_fills_in_and_explicit_keys_win(write) -> None:  # type: ignore[no-untyped-def]
    path = write(
        "r.yaml",
        "defaults: &defaults {mode: trace, batch_size: 2, compare_baseline: false}\n"
        "run:\n"
        "  batch_size: 4\n"
        "  <<: *defaults\n"
        "  compare_baseline: true\n",
    )
    data = _read(path).data

    assert data["run"] == {"mode": "trace", "batch_size": 4, "compare_baseline": True}


def test_merge_of_several_mappings_earlier_wins(write) -> None:  # type: ignore[no-untyped-def]
    path = write(
        "r.yaml",
        "a: &a {x: 1, y: 1}\nb: &b {y: 2, z: 2}\nc:\n  <<: [*a, *b]\n  z: 3\n",
    )
    assert _read(path).data["c"] == {"x": 1, "y": 1, "z": 3}


def test_merge_keys_in_a_recipe(write) -> None:  # type: ignore[no-untyped-def]
    path = write(
        "r.yaml",
        MINIMAL + "vectors:\n"
        "  noise: {kind: random}\n"
        "interventions:\n"
        "  - &base {vector: noise, layers: 1, strength: 2.5, positions: last}\n"
        "  - <<: *base\n"
        "    layers: 3\n",
    )
    result = validate_file(path)

    assert result.errors == []
    assert result.recipe is not None
    first, second = result.recipe.interventions
    assert (first.layers, second.layers) == (1, 3)
    assert second.strength == 2.5
    assert second.positions == "last"


def test_merge_of_a_mapping_that_itself_merges(write) -> None:  # type: ignore[no-untyped-def]
    path = write(
        "r.yaml",
        "base: &base {x: 1}\nmid: &mid {<<: *base, y: 2}\ntop: {<<: *mid, z: 3}\n",
    )
    assert _read(path).data["top"] == {"x": 1, "y": 2, "z": 3}


def test_merge_of_a_scalar_is_an_error(write) -> None:  # type: ignore[no-untyped-def]
    path = write("r.yaml", "a: 1\nb:\n  <<: 5\n")
    [diag] = _load_error(path).diagnostics
    assert (diag.code, diag.location.line) == ("yaml-merge", 3)  # type: ignore[union-attr]


# -- YAML 1.1 booleans ---------------------------------------------------------------------


def test_on_yes_keys_and_values_are_strings(write) -> None:  # type: ignore[no-untyped-def]
    """YAML 1.2 core schema: only true/false are booleans (yes/off were YAML 1.1's)."""
    path = write("r.yaml", "on: 1\nyes: 2\noff: 3\nno: 4\nflag: yes\nother: off\nt: True\n")
    data = _read(path).data

    assert list(data) == ["on", "yes", "off", "no", "flag", "other", "t"]
    assert data["on"] == 1
    assert data["flag"] == "yes"
    assert data["other"] == "off"
    assert data["t"] is True


def test_on_key_in_a_recipe_token_set(write) -> None:  # type: ignore[no-untyped-def]
    path = write(
        "r.yaml",
        MINIMAL
        + "report:\n  metrics:\n    - kind: token_prob\n      tokens: {on: [yes], off: [no]}\n",
    )
    result = validate_file(path)

    # keys and values are the words as written (YAML 1.2); YAML 1.1 readers would see the
    # values yes/no as booleans, so each gets a warning
    assert result.errors == []
    assert result.recipe is not None
    assert result.recipe.report.metrics[0].tokens == {"on": ["yes"], "off": ["no"]}  # type: ignore[union-attr]
    codes = sorted((d.code, d.pointer) for d in result.warnings)
    assert codes == [
        ("yaml11-scalar", "/report/metrics/0/tokens/off/0"),
        ("yaml11-scalar", "/report/metrics/0/tokens/on/0"),
    ]


# -- tags --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        'x: !!python/object/apply:os.system ["touch {m}"]\n',
        'x: !!python/object/apply:subprocess.call [["touch", "{m}"]]\n',
        'x: !!python/object/apply:builtins.open ["{m}", "w"]\n',
        'x: !!python/object/new:builtins.open ["{m}", "w"]\n',
        "x: !!python/object:builtins.open {{file: '{m}', mode: w}}\n",
        "x: !!python/name:os.system\n",
        "!!python/name:os.system key: 1\n",
        "x: !custom {m}\n",
        "x: !!binary aGVsbG8=\n",
    ],
)
def test_tags_are_rejected_and_never_executed(write, repo_dir, template) -> None:  # type: ignore[no-untyped-def]
    marker = repo_dir / "pwned"
    path = write("r.yaml", "version: 1\n" + template.format(m=marker))

    [diag] = _load_error(path).diagnostics
    result = validate_file(path)

    assert (diag.code, diag.location.line) == ("yaml-tag", 2)  # type: ignore[union-attr]
    assert [d.code for d in result.errors] == ["yaml-tag"]
    assert not marker.exists()


# -- size and depth bounds -----------------------------------------------------------------------


def test_alias_bomb_is_refused(write) -> None:  # type: ignore[no-untyped-def]
    lines = ["a: &a [" + ", ".join(["lol"] * 10) + "]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    path = write("r.yaml", "\n".join(lines) + "\n")  # 10^9 scalars if expanded

    [diag] = _load_error(path).diagnostics

    assert diag.code == "yaml-too-many-nodes"
    assert diag.severity == "error"


def test_shared_anchor_below_the_budget_expands(write) -> None:  # type: ignore[no-untyped-def]
    path = write("r.yaml", "a: &a [1, 2]\nb: [*a, *a]\n")
    assert _read(path).data == {"a": [1, 2], "b": [[1, 2], [1, 2]]}


def test_recursive_alias_is_refused(write) -> None:  # type: ignore[no-untyped-def]
    path = write("r.yaml", "a: &a [1, *a]\n")
    [diag] = _load_error(path).diagnostics
    assert diag.code == "yaml-too-deep"


def test_nesting_within_the_bound_is_fine(write) -> None:  # type: ignore[no-untyped-def]
    depth = MAX_DEPTH - 1
    path = write("r.yaml", "a: " + "[" * depth + "1" + "]" * depth + "\n")
    data = _read(path).data["a"]
    for _ in range(depth):
        data = data[0]
    assert data == 1


def test_deep_nesting_is_refused(write) -> None:  # type: ignore[no-untyped-def]
    path = write("r.yaml", "version: 1\na: " + "[" * 200 + "]" * 200 + "\n")
    [diag] = _load_error(path).diagnostics
    assert (diag.code, diag.location.line) == ("yaml-too-deep", 2)  # type: ignore[union-attr]


def test_extreme_nesting_is_a_diagnostic_not_a_crash(write) -> None:  # type: ignore[no-untyped-def]
    path = write("r.yaml", "a: " + "[" * 50_000 + "]" * 50_000 + "\n")
    result = validate_file(path)
    # libyaml stops at its own nesting limit (syntax error); the pure-Python parser would
    # recurse, which the loader turns into yaml-too-deep
    assert [d.code for d in result.errors] in (["yaml-syntax"], ["yaml-too-deep"])


# -- encoding ------------------------------------------------------------------------------------


def test_utf8_bom_is_accepted(write) -> None:  # type: ignore[no-untyped-def]
    path = write("r.yaml", b"\xef\xbb\xbf" + MINIMAL.encode())
    result = validate_file(path)
    assert result.errors == []
    assert result.recipe is not None
    assert result.recipe.name == "minimal"


def test_utf8_bom_keeps_line_numbers(write) -> None:  # type: ignore[no-untyped-def]
    path = write("r.yaml", b"\xef\xbb\xbf" + MINIMAL.replace("trace", "tarce").encode())
    [error] = validate_file(path).errors
    assert (error.code, error.location.line) == ("invalid-choice", 5)  # type: ignore[union-attr]


def test_not_utf8_points_at_the_byte(write) -> None:  # type: ignore[no-untyped-def]
    path = write("r.yaml", b"version: 1\nname: caf\xe9\n")
    [diag] = _load_error(path).diagnostics
    assert diag.code == "not-utf8"
    assert (diag.location.line, diag.location.column) == (2, 10)  # type: ignore[union-attr]
    assert "0xe9" in diag.message


@pytest.mark.parametrize("text", ["", "\n\n  \n", "# only a comment\n", "# comment\n\n# another\n"])
def test_empty_file(write, text) -> None:  # type: ignore[no-untyped-def]
    path = write("r.yaml", text)
    assert _load_error(path).diagnostics[0].code == "empty-file"


# -- includes ------------------------------------------------------------------------------------


def test_include_is_relative_to_the_including_file(write) -> None:  # type: ignore[no-untyped-def]
    write("frags/model.yaml", "include: inner/vectors.yaml\nmodel: {id: builtin:tiny-random}\n")
    write("frags/inner/vectors.yaml", "vectors:\n  noise: {kind: random, seed: 7}\n")
    path = write(
        "recipes/sub/r.yaml",
        "version: 1\nname: rel\ninclude: ../../frags/model.yaml\n"
        "interventions: [{vector: noise, layers: 1}]\n"
        "run: {mode: trace, prompts: [hi]}\n",
    )
    doc = load_document(path)

    assert "include" not in doc.data
    assert doc.data["model"] == {"id": "builtin:tiny-random"}
    assert doc.data["vectors"] == {"noise": {"kind": "random", "seed": 7}}
    result = validate_file(path)
    assert result.errors == []


def test_include_deep_merge(write) -> None:  # type: ignore[no-untyped-def]
    write(
        "frag.yaml",
        "model: {id: builtin:tiny-random, dtype: float16, device: cpu}\n"
        "vectors:\n"
        "  a: {kind: random, seed: 1}\n"
        "  b: {kind: random, seed: 2, norm: 5.0}\n"
        "run:\n"
        "  mode: generate\n"
        "  prompts: [x, y]\n",
    )
    path = write(
        "r.yaml",
        "version: 1\n"
        "include: frag.yaml\n"
        "model: {dtype: bfloat16}\n"
        "vectors:\n"
        "  b: {seed: 3}\n"
        "  c: {kind: random}\n"
        "run:\n"
        "  prompts: [z]\n",
    )
    data = load_document(path).data

    # mappings merge key by key, the including file wins
    assert data["model"] == {"id": "builtin:tiny-random", "dtype": "bfloat16", "device": "cpu"}
    assert data["vectors"] == {
        "a": {"kind": "random", "seed": 1},
        "b": {"kind": "random", "seed": 3, "norm": 5.0},
        "c": {"kind": "random"},
    }
    # lists are replaced whole
    assert data["run"] == {"mode": "generate", "prompts": ["z"]}


def test_later_include_wins_over_earlier(write) -> None:  # type: ignore[no-untyped-def]
    write("one.yaml", "model: {id: builtin:tiny-random, dtype: float16}\nrun: {prompts: [a, b]}\n")
    write("two.yaml", "model: {dtype: bfloat16}\nrun: {prompts: [c]}\n")
    path = write("r.yaml", "version: 1\ninclude: [one.yaml, two.yaml]\n")
    data = load_document(path).data
    assert data["model"] == {"id": "builtin:tiny-random", "dtype": "bfloat16"}
    assert data["run"] == {"prompts": ["c"]}


def test_merged_values_keep_their_own_file_and_line(write) -> None:  # type: ignore[no-untyped-def]
    frag = write("frag.yaml", "# fragment\nmodel:\n  id: builtin:tiny-random\n  dtype: float16\n")
    path = write("r.yaml", "version: 1\ninclude: frag.yaml\nmodel:\n  dtype: float32\n")
    doc = load_document(path)

    id_loc = doc.locate("/model/id")
    dtype_loc = doc.locate("/model/dtype")
    assert id_loc is not None and dtype_loc is not None
    assert _same(id_loc.file, frag) and id_loc.line == 3
    assert _same(dtype_loc.file, path) and dtype_loc.line == 4


def test_diamond_include_is_fine(write) -> None:  # type: ignore[no-untyped-def]
    write("base.yaml", "model: {id: builtin:tiny-random}\n")
    write("left.yaml", "include: base.yaml\nvectors: {a: {kind: random}}\n")
    write("right.yaml", "include: base.yaml\nvectors: {b: {kind: random}}\n")
    path = write(
        "r.yaml",
        "version: 1\nname: diamond\ninclude: [left.yaml, right.yaml]\n"
        "interventions: [{vector: a, layers: 1}, {vector: b, layers: 2}]\n"
        "run: {mode: trace, prompts: [hi]}\n",
    )
    result = validate_file(path)

    assert result.errors == []
    assert result.recipe is not None
    assert sorted(result.recipe.vectors) == ["a", "b"]
    assert result.recipe.model.id == "builtin:tiny-random"


def test_include_cycle_names_the_chain(write) -> None:  # type: ignore[no-untyped-def]
    a = write("a.yaml", "version: 1\ninclude: b.yaml\n")
    b = write("b.yaml", "# b\nmodel: {id: builtin:tiny-random}\ninclude: a.yaml\n")
    [diag] = _load_error(a).diagnostics

    assert diag.code == "include-cycle"
    assert _same(diag.location.file, b)  # type: ignore[union-attr]
    assert diag.location.line == 3  # type: ignore[union-attr]
    chain = diag.message.split("include cycle: ", 1)[1].split(" -> ")
    assert [Path(p).name for p in chain] == ["a.yaml", "b.yaml", "a.yaml"]
    assert [Path(p).resolve() for p in diag.include_chain] == [a.resolve()]


def test_include_not_found(write) -> None:  # type: ignore[no-untyped-def]
    path = write("r.yaml", "version: 1\ninclude:\n  - there.yaml\n  - missing.yaml\n")
    write("there.yaml", "model: {id: builtin:tiny-random}\n")
    [diag] = _load_error(path).diagnostics
    assert (diag.code, diag.location.line) == ("include-not-found", 4)  # type: ignore[union-attr]
    assert "missing.yaml" in diag.message


def test_diagnostic_in_a_fragment_points_at_the_fragment(write) -> None:  # type: ignore[no-untyped-def]
    leaf = write(
        "frags/leaf.yaml",
        "vectors:\n  noise:\n    kind: random\n    norm: -1.0\n",
    )
    mid = write("frags/mid.yaml", "include: leaf.yaml\nmodel: {id: builtin:tiny-random}\n")
    path = write(
        "r.yaml",
        "version: 1\nname: frag-error\ninclude: frags/mid.yaml\n"
        "interventions: [{vector: noise, layers: 1}]\n"
        "run: {mode: trace, prompts: [hi]}\n",
    )
    [error] = validate_file(path).errors

    assert error.code == "out-of-range"
    assert error.pointer == "/vectors/noise/norm"
    assert _same(error.location.file, leaf)  # type: ignore[union-attr]
    assert (error.location.line, error.location.column) == (4, 11)  # type: ignore[union-attr]
    assert [Path(f).resolve() for f in error.include_chain] == [path.resolve(), mid.resolve()]


def test_syntax_error_in_a_fragment_points_at_the_fragment(write) -> None:  # type: ignore[no-untyped-def]
    frag = write("frag.yaml", "model:\n  id: [unclosed\n")
    path = write("r.yaml", "version: 1\ninclude: frag.yaml\n")
    [diag] = _load_error(path).diagnostics
    assert diag.code == "yaml-syntax"
    assert _same(diag.location.file, frag)  # type: ignore[union-attr]


def test_trust_remote_code_from_a_fragment_is_refused(write) -> None:  # type: ignore[no-untyped-def]
    write("frag.yaml", "model:\n  id: builtin:tiny-random\n  trust_remote_code: true\n")
    path = write(
        "r.yaml", MINIMAL.replace("model: {id: builtin:tiny-random}", "include: frag.yaml")
    )
    [error] = validate_file(path).errors
    assert (error.code, error.location.line) == ("remote-code-not-explicit", 3)  # type: ignore[union-attr]

    # set in the recipe itself, it is allowed
    path.write_text(path.read_text() + "model: {trust_remote_code: true}\n")
    assert validate_file(path).errors == []


def test_include_outside_the_repo_root_is_refused(write) -> None:  # type: ignore[no-untyped-def]
    write("outside.yaml", "model: {id: builtin:tiny-random}\n")
    write("inner/.git/HEAD", "ref: refs/heads/main\n")  # inner/ is a repository of its own
    path = write("inner/r.yaml", "version: 1\nname: escape\ninclude: ../outside.yaml\n")

    [diag] = _load_error(path).diagnostics
    assert (diag.code, diag.location.line) == ("path-outside-root", 3)  # type: ignore[union-attr]

    doc = load_document(path, allow_outside_root=True)
    assert doc.data["model"] == {"id": "builtin:tiny-random"}


def test_include_through_a_symlink_outside_the_root_is_refused(write, repo_dir) -> None:  # type: ignore[no-untyped-def]
    write("outside.yaml", "model: {id: builtin:tiny-random}\n")
    write("inner/.git/HEAD", "ref: refs/heads/main\n")
    (repo_dir / "inner" / "link.yaml").symlink_to(repo_dir / "outside.yaml")
    path = write("inner/r.yaml", "version: 1\ninclude: link.yaml\n")
    [diag] = _load_error(path).diagnostics
    assert diag.code == "path-outside-root"


def test_absolute_include_outside_root_is_refused(write) -> None:  # type: ignore[no-untyped-def]
    path = write("r.yaml", "version: 1\ninclude: /etc/hostname\n")
    [diag] = _load_error(path).diagnostics
    assert diag.code == "path-outside-root"


def test_local_model_from_a_fragment_with_check_model(write) -> None:  # type: ignore[no-untyped-def]
    config = {"model_type": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 4}
    write("models/tiny/config.json", json.dumps(config))
    write("frags/model.yaml", "model: {id: ../models/tiny}\n")  # relative to frags/
    path = write(
        "r.yaml",
        "version: 1\nname: local\ninclude: frags/model.yaml\nrun: {mode: trace, prompts: [hi]}\n",
    )
    assert validate_file(path).errors == []
    assert validate_file(path, check_model=True).errors == []


# -- prompt files --------------------------------------------------------------------------------


def test_txt_prompts_one_per_line_blank_lines_skipped(write) -> None:  # type: ignore[no-untyped-def]
    path = write("p.txt", b"\xef\xbb\xbffirst\n\n   \nsecond one\r\n\tthird\n\n")
    assert file_format(path, None) == "lines"
    assert read_prompts(path, "lines") == ["first", "second one", "\tthird"]


def test_jsonl_objects_and_plain_strings(write) -> None:  # type: ignore[no-untyped-def]
    path = write(
        "p.jsonl",
        '{"text": "an object", "label": 1}\n\n"a plain string"\n{"text": "another"}\n',
    )
    assert file_format(path, None) == "jsonl"
    assert read_prompts(path, "jsonl") == ["an object", "a plain string", "another"]


def test_jsonl_custom_field(write) -> None:  # type: ignore[no-untyped-def]
    path = write("p.jsonl", '{"prompt": "p1", "text": "t1"}\n{"prompt": "p2"}\n')
    assert read_prompts(path, "jsonl", field="prompt") == ["p1", "p2"]
    with pytest.raises(PromptFileError) as info:
        read_prompts(path, "jsonl")
    assert info.value.line == 2


def test_prompt_limit_counts_prompts_not_lines(write) -> None:  # type: ignore[no-untyped-def]
    path = write("p.txt", "a\n\nb\n\n\nc\nd\n")
    assert read_prompts(path, "lines", limit=3) == ["a", "b", "c"]
    assert read_prompts(path, "lines", limit=10) == ["a", "b", "c", "d"]


def test_bad_jsonl_line_is_reported_with_its_number(write) -> None:  # type: ignore[no-untyped-def]
    path = write("p.jsonl", '"ok"\n\n{"text": broken}\n')
    with pytest.raises(PromptFileError) as info:
        read_prompts(path, "jsonl")
    assert info.value.line == 3
    assert "invalid JSON" in str(info.value)


def test_blank_prompt_file_holds_no_prompts(write) -> None:  # type: ignore[no-untyped-def]
    path = write("p.txt", "\n  \n")
    with pytest.raises(PromptFileError, match="no prompts"):
        read_prompts(path, "lines")


def test_prompt_files_in_a_recipe(write) -> None:  # type: ignore[no-untyped-def]
    write("data/p.jsonl", '{"text": "one"}\n"two"\n\n{"text": "three"}\n')
    write("data/bad.jsonl", '"fine"\n[1, 2]\n')
    path = write(
        "r.yaml",
        MINIMAL.replace('prompts: ["hello"]', "prompts: {file: data/p.jsonl, limit: 2}")
        + "report:\n  metrics:\n    - kind: perplexity\n      text: {file: data/bad.jsonl}\n",
    )
    [error] = validate_file(path).errors

    assert error.code == "prompt-file-invalid"
    assert error.pointer == "/report/metrics/0/text/file"
    assert error.location.line == 10  # type: ignore[union-attr]
    assert "line 2" in error.message


# -- numbers as YAML 1.2 writes them -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [("1e3", 1000.0), ("-2.5E-2", -0.025), (".5e1", 5.0), ("+3e0", 3.0), ("1.0e38", 1e38)],
)
def test_exponent_without_a_dot_is_a_number(write, text: str, value: float) -> None:  # type: ignore[no-untyped-def]
    parsed = _read(write("r.yaml", f"a: {text}\nb: '{text}'\n"))
    assert parsed.data["a"] == value and isinstance(parsed.data["a"], float)
    assert parsed.data["b"] == text  # quoted stays a string


@pytest.mark.parametrize("text", ["1e", "e3", "1e3x", "1e3.5", "1 e3"])
def test_near_numbers_stay_strings(write, text: str) -> None:  # type: ignore[no-untyped-def]
    assert _read(write("r.yaml", f"a: {text}\n")).data["a"] == text


def test_override_with_an_exponent_is_a_number() -> None:
    from recipe_engine.load.overrides import parse_override

    assert parse_override("interventions.0.strength=1e38") == (
        ["interventions", "0", "strength"],
        1e38,
    )


# -- found by fuzzing (tests/test_fuzz_recipes.py) -----------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "x: !!int abc",  # PyYAML's int constructor: ValueError
        "x: !!int ''",  # IndexError
        "x: !!float ''",
        "x: !!float abc",
        "x: !!bool maybe",  # KeyError
        "x: !!int 0b_",  # not an integer in YAML 1.2 (plain `0b_` is the string '0b_')
        "x: !!int 0x_",
        "x: !!bool yes",  # YAML 1.1's boolean, not YAML 1.2's
        "!!int zz: 1",  # the same, as a mapping key
        "x: 1" + "0" * 5000,  # past Python's 4300-digit limit for int()
        "? 1" + "0" * 5000 + "\n: x",  # as a key (explicit: plain keys stop at 1024 chars)
    ],
)
def test_unreadable_scalar_is_a_diagnostic_not_a_crash(write, line: str) -> None:  # type: ignore[no-untyped-def]
    path = write("r.yaml", f"version: 1\n{line}\n")
    [diag] = _load_error(path).diagnostics
    assert (diag.code, diag.location.line) == ("yaml-value", 2)  # type: ignore[union-attr]
    assert "\n" not in diag.message


def test_too_long_integer_says_so(write) -> None:  # type: ignore[no-untyped-def]
    [diag] = _load_error(write("r.yaml", "version: 1" + "0" * 5000 + "\n")).diagnostics
    assert diag.code == "yaml-value"
    assert "5001 digits" in diag.message


@pytest.mark.parametrize("levels", [12, 40])
def test_merge_key_bomb_is_refused_at_once(write, levels: int) -> None:  # type: ignore[no-untyped-def]
    # Each anchor merges the previous one ten times; all are defined inside one merge list, so
    # nothing is built before the merge is flattened: 10^levels pairs if expanded.
    sources = ["&m0 {k: 1}"] + [
        f"&m{i} {{<<: [" + ", ".join([f"*m{i - 1}"] * 10) + "]}" for i in range(1, levels)
    ]
    path = write("r.yaml", "version: 1\nx: {<<: [" + ", ".join(sources) + "]}\n")
    [diag] = _load_error(path).diagnostics
    assert diag.code in ("yaml-too-many-nodes", "yaml-too-deep")


def test_merge_bomb_of_empty_mappings_is_refused(write) -> None:  # type: ignore[no-untyped-def]
    # no pair at all, only 10^12 visits: the budget counts visits too
    sources = ["&m0 {}"] + [
        f"&m{i} {{<<: [" + ", ".join([f"*m{i - 1}"] * 10) + "]}" for i in range(1, 12)
    ]
    path = write("r.yaml", "x: {<<: [" + ", ".join(sources) + "]}\n")
    assert _load_error(path).diagnostics[0].code == "yaml-too-many-nodes"


def test_merge_within_the_budget_still_works(write) -> None:  # type: ignore[no-untyped-def]
    path = write("r.yaml", "a: &a {x: 1, y: 2}\nb: &b {<<: [*a, *a], z: 3}\nc: {<<: *b}\n")
    assert _read(path).data["c"] == {"x": 1, "y": 2, "z": 3}


@pytest.mark.parametrize(
    ("raw", "line", "column"),
    [
        (b"version: 1\nname: a\x01b\n", 2, 8),
        ("version: 1\ndescription: caf\u00e9\x7f\n".encode(), 2, 18),  # after a 2-byte char
        (b"version: 1\n" + b"# padding\n" * 1000 + b"x: a\x00b\n", 1002, 5),  # NUL past 8 KiB
    ],
)
def test_forbidden_character_is_located(write, raw: bytes, line: int, column: int) -> None:  # type: ignore[no-untyped-def]
    [diag] = _load_error(write("r.yaml", raw)).diagnostics
    assert diag.code == "yaml-syntax"
    assert (diag.location.line, diag.location.column) == (line, column)  # type: ignore[union-attr]
    assert "\n" not in diag.message  # PyYAML's own message spans two lines


@pytest.mark.parametrize(
    ("reference", "code"),
    [
        ('"a\\0b.yaml"', "include-not-found"),  # "\0": a NUL, ValueError in the OS layer
        ("x" * 300 + ".yaml", "include-not-found"),  # ENAMETOOLONG from is_file()
        ("loop.yaml", "include-not-found"),  # a symlink loop: RuntimeError from resolve()
    ],
)
def test_include_of_an_impossible_path(write, repo_dir, reference: str, code: str) -> None:  # type: ignore[no-untyped-def]
    (repo_dir / "loop.yaml").symlink_to("loop.yaml")
    path = write("r.yaml", MINIMAL + f"include: {reference}\n")
    [diag] = _load_error(path).diagnostics
    assert (diag.code, diag.location.line) == (code, 7)  # type: ignore[union-attr]
