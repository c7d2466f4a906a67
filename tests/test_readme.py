"""The README cannot rot: its quick-start commands, script names and data snippet are checked here."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def _code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_readme_opens_with_setup_main_job_and_tests() -> None:
    commands = [line.split("#")[0].strip() for line in _code_blocks("bash")[0].strip().splitlines()]
    assert len(commands) == 3
    assert commands[0].startswith("pip install torch==2.13.0")
    assert commands[1].startswith("python scripts/train_vqvae.py --motion_file")
    assert commands[2] == "python -m pytest -q"
    assert "python3 -m pytest -q" in (REPO / ".ci" / "run").read_text(), "CI runs the README's test command"


@pytest.mark.parametrize("script", sorted(set(re.findall(r"scripts/(\w+)\.py", README))))
def test_every_script_in_the_readme_exists_and_parses_help(script: str, capsys) -> None:
    assert (REPO / "scripts" / f"{script}.py").is_file()
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        module = importlib.import_module(script)
        command = sys.modules[module.main.__module__]  # a shim's main lives in motion_vqvae/commands/
        if "argparse" in Path(command.__file__).read_text():
            with pytest.raises(SystemExit) as exit_info:
                module.main(["--help"])
            assert exit_info.value.code == 0
            assert "usage" in capsys.readouterr().out
    finally:
        sys.path.remove(str(REPO / "scripts"))


def test_ci_runs_the_readme_main_job_in_a_copy_without_shared() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert 're.findall(r"```bash' in ci and "splitlines()[1]" in ci, "CI reads the main job from README.md"
    assert "test ! -e ../shared" in ci and "--time-budget" in ci


@pytest.mark.parametrize("index", range(len(_code_blocks("python"))))
def test_every_python_snippet_runs(index: int, example_workdir: Path, monkeypatch) -> None:
    snippet = _code_blocks("python")[index]
    if "../shared" in snippet and not (example_workdir.parent / "shared").exists():
        pytest.skip("the snippet reads ../shared, which is absent")
    monkeypatch.chdir(example_workdir)
    namespace: dict = {"__name__": "readme"}
    exec(compile(snippet, f"README.md python block {index}", "exec"), namespace)  # noqa: S102 - our README
    if "load_motions(" in snippet:
        assert namespace["clips"] and all(c.root_quat.shape[1] == 4 for c in namespace["clips"])


def test_readme_installs_the_robot_runtime_without_torch() -> None:
    line = next(line for line in README.splitlines() if line.endswith("# robot runtime (no torch)"))
    path = line.split("#")[0].split()[-1]
    assert line.startswith("pip install ") and (REPO / path / "pyproject.toml").is_file()
    project = (REPO / path / "pyproject.toml").read_text()
    dependencies = re.search(r"^dependencies = \[(.*?)\]", project, flags=re.M | re.S).group(1)
    assert "numpy" in dependencies and "torch" not in dependencies
    assert f"install -q {path}" in (REPO / ".ci" / "run").read_text(), "CI installs what the README says"


def test_readme_is_a_quickstart_linking_every_guide() -> None:
    assert len(README.splitlines()) <= 150, "README.md is a quickstart: move details into docs/"
    for guide in sorted((REPO / "docs").glob("*.md")):
        assert f"(docs/{guide.name})" in README, f"README.md does not link docs/{guide.name}"
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README)
    assert images and all((REPO / image).is_file() for image in images), images


def test_readme_commands_beyond_the_quickstart_are_run_by_the_guides() -> None:
    """README's other bash lines are run where tests/test_docs.py runs them: verbatim in a docs/ block."""
    guides = "\n".join(
        m["code"]
        for path in (REPO / "docs").glob("*.md")
        for m in re.finditer(r"^```bash\n(?P<code>.*?)^```", path.read_text(), flags=re.M | re.S)
    )
    for block in _code_blocks("bash")[1:]:
        for line in block.strip().splitlines():
            command = line.split("  #")[0].strip()
            assert command in guides, f"README.md runs {command!r}, which no docs/*.md bash block runs"


def test_wandb_is_an_optional_extra() -> None:
    project = (REPO / "pyproject.toml").read_text()
    dependencies = re.search(r"^dependencies = \[(.*?)\]", project, flags=re.M | re.S).group(1)
    assert "wandb" not in dependencies, "pip install -e . must not pull in wandb"
    assert re.search(r'^wandb = \["wandb', project, flags=re.M), "the .[wandb] extra is missing"
