"""`steer validate` end to end, in a subprocess: formats, exit codes, torch-free."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import MINIMAL, RECIPES, REPO
from tests.helpers import run_steer

BAD = MINIMAL.replace("name: minimal", "name: minimal\nbogus: 1")


def test_validate_examples_dir_exits_zero() -> None:
    done = run_steer("validate", str(RECIPES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 invalid" in done.stdout


def test_validate_never_imports_torch_or_nnsight() -> None:
    code = (
        "import sys\n"
        "from recipe_engine.cli.main import main\n"
        f"rc = main(['validate', '--check-model', {str(RECIPES)!r}])\n"
        "heavy = sorted(m for m in ('torch', 'nnsight', 'transformers', 'safetensors', 'numpy')"
        " if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
        "sys.exit(rc)\n"
    )
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "HEAVY []" in done.stdout


def test_text_format_points_at_line_and_column(write) -> None:  # type: ignore[no-untyped-def]
    path = write("bad.yaml", BAD)
    done = run_steer("validate", str(path))
    assert done.returncode == 1
    assert f"{path}:3:1: /bogus: unknown key 'bogus'" in done.stdout
    assert "[unknown-key]" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_json_format_is_stable(write) -> None:  # type: ignore[no-untyped-def]
    path = write("bad.yaml", BAD)
    done = run_steer("validate", "--format", "json", str(path))
    assert done.returncode == 1
    payload = json.loads(done.stdout)
    assert payload["version"] == 1
    assert payload["summary"] == {"errors": 1, "files": 1, "invalid": 1, "valid": 0, "warnings": 0}
    (entry,) = payload["files"]
    (diag,) = entry["diagnostics"]
    assert diag == {
        "code": "unknown-key",
        "severity": "error",
        "message": diag["message"],
        "pointer": "/bogus",
        "file": str(path),
        "line": 3,
        "column": 1,
        "include_chain": [],
    }


def test_github_format_emits_annotations(write) -> None:  # type: ignore[no-untyped-def]
    path = write("bad.yaml", BAD)
    done = run_steer("validate", "--format", "github", str(path))
    assert done.returncode == 1
    assert done.stdout.startswith(f"::error file={path},line=3,col=1,title=unknown-key::/bogus: ")


def test_all_errors_at_once(write) -> None:  # type: ignore[no-untyped-def]
    text = MINIMAL.replace("name: minimal", "name: minimal\nfoo: 1\nbar: 2")
    text = text.replace("mode: trace", "mode: tracing")
    done = run_steer("validate", "--format", "json", str(write("bad.yaml", text)))
    found = {d["code"] for d in json.loads(done.stdout)["files"][0]["diagnostics"]}
    assert found == {"unknown-key", "invalid-choice"}


def test_usage_errors_exit_two(tmp_path: Path) -> None:
    assert run_steer("validate", str(tmp_path / "missing.yaml")).returncode == 2
    assert run_steer("validate", str(tmp_path)).returncode == 2  # no recipes in an empty dir
    assert run_steer("validate", "--format", "xml", str(RECIPES)).returncode == 2
    assert run_steer().returncode == 2


def test_uncached_hub_model_is_an_environment_failure(write, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write("hub.yaml", MINIMAL.replace("builtin:tiny-random", "some-org/not-cached-model"))
    import os
    import shutil
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "empty-cache"), "NO_COLOR": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "recipe_engine", "validate", "--check-model", str(path)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 3, done.stdout
    assert "[model-not-cached]" in done.stdout
    # the command the installed huggingface_hub ships (`hf`; 1.0 has no huggingface-cli)
    assert "`hf download some-org/not-cached-model`" in done.stdout
    assert shutil.which("hf", path=str(Path(sys.executable).parent)) is not None
    # without --check-model the recipe itself is fine
    assert run_steer("validate", str(path)).returncode == 0


def test_cached_hub_model_config_is_checked(write, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cache = tmp_path / "hub"
    snap = cache / "models--org--tiny" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (cache / "models--org--tiny" / "refs").mkdir()
    (cache / "models--org--tiny" / "refs" / "main").write_text("abc123")
    (snap / "config.json").write_text(
        json.dumps(
            {
                "model_type": "llama",
                "num_hidden_layers": 2,
                "hidden_size": 32,
                "num_attention_heads": 4,
            }
        )
    )
    text = MINIMAL.replace("builtin:tiny-random", "org/tiny") + (
        "vectors:\n  r: {kind: random}\ninterventions:\n  - {vector: r, layers: [1, 5]}\n"
    )
    path = write("hub.yaml", text)
    import os
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_CACHE": str(cache), "NO_COLOR": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "recipe_engine", "validate", "--check-model", str(path)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 1
    assert (
        ":10:" in done.stdout and "/interventions/0/layers/1: layer 5 out of range" in done.stdout
    )


def test_strict_turns_warnings_into_failures(write) -> None:  # type: ignore[no-untyped-def]
    path = write("warn.yaml", MINIMAL + "vectors:\n  unused: {kind: random}\n")
    assert run_steer("validate", str(path)).returncode == 0
    assert run_steer("validate", "--strict", str(path)).returncode == 1


def test_no_message_or_doc_suggests_huggingface_cli() -> None:
    """huggingface_hub 1.0 removed `huggingface-cli`; `hf` is the command it ships."""
    from recipe_engine.model_config import download_command

    assert download_command("org/m") == "hf download org/m"
    assert download_command("org/m", "v1") == "hf download org/m --revision v1"
    this = Path(__file__).resolve()
    texts = [REPO / "README.md", *(REPO / "recipe_engine").rglob("*.py"), *REPO.glob("docs/**/*")]
    texts += [p for p in (REPO / "tests").rglob("*.py") if p.resolve() != this]
    stale = [p for p in texts if p.is_file() and b"huggingface-cli download" in p.read_bytes()]
    assert stale == []
