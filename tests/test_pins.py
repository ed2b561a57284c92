"""Pins and the release, read as files (no Docker): one version per dependency, locks that are
current, and the VERSION file as the only place the release is written."""

from __future__ import annotations

import re
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ("inference", "tracking-server", "training")

# Every requirements and lock file the product installs from. Deliberately outside:
# examples/*/requirements.txt and tests/support/reference_script/ (a user's script's own
# environment: MLflow 2.x/3.x clients, installed over the image's at job time, as SageMaker
# does), tests/support/mlflow2/ (the MLflow 2.6 server and 2.12 client of the upgrade test)
# and tests/support/sdk2/ (the SageMaker SDK v2 venv users' v2 programs run in).
PIN_FILES = sorted(
    [
        ROOT / "requirements-dev.txt",
        ROOT / "requirements-aws.txt",
        *ROOT.glob("images/*/requirements*.txt"),
        *ROOT.glob("images/*/requirements*.lock"),
        ROOT / "images" / "constraints.txt",
    ]
)


def pins(path: Path) -> dict[str, str]:
    """`name==version` lines of a requirements or lock file, by canonical name (extras dropped)."""
    text = re.sub(r"\\\n", " ", path.read_text())  # a lock's hashes continue the line
    found: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        requirement = Requirement(line.split(" --hash", 1)[0].strip())
        specifiers = list(requirement.specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", (
            f"{path.relative_to(ROOT)}: pin {requirement.name} with ==, not {requirement.specifier}"
        )
        found[canonicalize_name(requirement.name)] = specifiers[0].version
    return found


def test_the_pin_files_are_found() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in PIN_FILES}
    for image in IMAGES:
        assert f"images/{image}/requirements.txt" in names
        assert f"images/{image}/requirements.lock" in names
    assert {"requirements-dev.txt", "requirements-aws.txt"} <= names


def test_one_version_per_dependency_across_every_pin_and_lock_file() -> None:
    versions: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in PIN_FILES:
        for name, version in pins(path).items():
            versions[name][version].append(path.relative_to(ROOT).as_posix())
    conflicts = {name: dict(found) for name, found in versions.items() if len(found) > 1}
    assert not conflicts, f"one version per dependency (then run make lock): {conflicts}"


@pytest.mark.parametrize(
    "source",
    [f"images/{image}/requirements.txt" for image in IMAGES]
    + ["images/training/requirements-build.txt", "tests/support/sdk2/requirements.txt"],
)
def test_each_lock_is_current_with_its_pins(source: str) -> None:
    """The lock pins what requirements.txt pins, at the same versions, and names as its direct
    requirements exactly requirements.txt's: a pin added, changed or removed needs `make lock`."""
    lock = ROOT / source.replace(".txt", ".lock")
    assert lock.exists(), f"{lock.relative_to(ROOT)} is missing: run make lock"
    direct, locked = pins(ROOT / source), pins(lock)
    stale = {name: version for name, version in direct.items() if locked.get(name) != version}
    assert not stale, f"{lock.relative_to(ROOT)} lacks {stale}: run make lock"
    marked = set()
    for entry in re.split(r"\n(?=\S)", lock.read_text()):
        if re.search(rf"#\s+(via\s+)?-r {re.escape(source)}\b", entry):
            marked.add(canonicalize_name(Requirement(entry.split()[0]).name))
    assert marked == set(direct), f"{lock.relative_to(ROOT)} is stale: run make lock"


@pytest.mark.parametrize("image", IMAGES)
def test_each_lock_entry_carries_hashes(image: str) -> None:
    lock = (ROOT / "images" / image / "requirements.lock").read_text()
    entries = [entry for entry in re.split(r"\n(?=\S)", lock) if not entry.startswith("#")]
    assert entries
    assert all("--hash=sha256:" in entry for entry in entries)


@pytest.mark.parametrize("image", IMAGES)
def test_each_image_installs_its_lock_hash_checked(image: str) -> None:
    dockerfile = (ROOT / "images" / image / "Dockerfile").read_text()
    installs = [
        line for line in re.sub(r"\\\n", " ", dockerfile).splitlines() if "pip install" in line
    ]
    assert any("--require-hashes" in line and "requirements.lock" in line for line in installs)
    for line in installs:
        if "-r " in line:
            assert "--require-hashes" in line and "--no-deps" in line, line
            assert "requirements.txt" not in line, line


def test_the_build_context_holds_only_what_the_images_copy() -> None:
    """The images build from the repository's root: its .dockerignore leaves out everything
    but the package, the images' pins and VERSION, and caches inside those."""
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ignored[ignored.index("*") + 1 :][:1] == ["!VERSION"]
    assert {"!src/mlstack", "**/__pycache__", "**/.pytest_cache", "**/tests"} <= set(ignored)


@pytest.mark.parametrize("image", IMAGES)
def test_code_comes_after_the_venv(image: str) -> None:
    """A code change rebuilds only the layers after the locked venv: the package is copied in
    the final stage, after the venv, and nothing copied before the venv is the package."""
    lines = (ROOT / "images" / image / "Dockerfile").read_text().splitlines()
    venv = next(i for i, line in enumerate(lines) if line.startswith("COPY --from=build /opt/venv"))
    code = [i for i, line in enumerate(lines) if line.startswith("COPY src/mlstack")]
    # The tracking server's build stage replays MLflow's migrations with one standalone file,
    # after its venv install.
    replay = "COPY src/mlstack/tracking/schema_history.py /tmp/schema_history.py"
    assert code and min(i for i in code if lines[i] != replay) > venv


@pytest.mark.parametrize("image", IMAGES)
def test_version_arg_has_no_default_and_comes_after_the_heavy_layers(image: str) -> None:
    """A version bump must not rebuild (nor `make push` re-push) the venv: in the final stage,
    ARG VERSION follows the venv and every RUN, and the Dockerfile holds no version of its own."""
    lines = (ROOT / "images" / image / "Dockerfile").read_text().splitlines()
    final = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM ")) :]
    args = [i for i, line in enumerate(final) if line.startswith("ARG VERSION")]
    assert [final[i] for i in args] == ["ARG VERSION"]
    heavy = [
        i
        for i, line in enumerate(final)
        if line.startswith("COPY --from=build /opt/venv") or line.startswith("COPY src/mlstack")
    ]
    assert heavy and max(heavy) < args[0]
    runs_after = [line for line in final[args[0] :] if line.startswith("RUN ")]
    assert all(len(line) < 80 for line in runs_after), runs_after  # small layers only


def tracked_files() -> list[str]:
    """Files under version control: the suite runs in a git checkout (CI's is a clone)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.fail(f"git ls-files failed ({error}): run the tests in a git checkout")
    return listed.splitlines()


# Files where the release's digits stand for something else, each with the reason.
NOT_THE_RELEASE = {
    "VERSION": "the one place",
    # The training image's MLflow plugin is its own distribution with its own version.
    "images/training/mlflow_plugin/pyproject.toml": "the plugin's own version",
}


def test_the_release_is_written_only_in_the_version_file() -> None:
    release = (ROOT / "VERSION").read_text().strip()
    assert re.fullmatch(r"\d+\.\d+\.\d+", release), f"VERSION holds {release!r}, not X.Y.Z"
    pattern = re.compile(rf"(?<![\w.]){re.escape(release)}(?![\w.])")
    found = []
    for name in tracked_files():
        path = ROOT / name
        if name in NOT_THE_RELEASE or not path.is_file() or path.suffix == ".lock":
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        found += [
            f"{name}:{number}"
            for number, line in enumerate(text.splitlines(), 1)
            if pattern.search(line) and "==" not in line
        ]
    assert not found, f"read the release from the VERSION file instead: {found}"
