"""Finding the model: /opt/ml/model as a folder or a model.tar.gz, or MODEL_URI."""

from __future__ import annotations

import io
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mlstack.core.errors import StartupError
from mlstack.serving.config import Settings
from mlstack.serving.model_source import resolve_model_dir
from support.ports import free_port

from .models import tar_model


def resolve(model_dir: Path, cache: Path, model_uri: str | None = None) -> Path:
    """resolve_model_dir with the model folder at model_dir (SageMaker's /opt/ml/model)."""
    return resolve_model_dir(Settings(model_uri=model_uri), cache, str(model_dir))


def test_model_folder_is_used_in_place(forest_model_dir: Path, tmp_path: Path) -> None:
    assert resolve(forest_model_dir, tmp_path) == forest_model_dir


def test_model_one_folder_down(forest_model_dir: Path, tmp_path: Path) -> None:
    root = forest_model_dir.parent
    assert resolve(root, tmp_path / "cache") == forest_model_dir


def test_tarball_is_extracted_once(forest_model_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "opt_ml_model"
    root.mkdir()
    tar_model(forest_model_dir, root / "model.tar.gz")
    cache = tmp_path / "cache"
    with ThreadPoolExecutor(4) as pool:
        found = set(pool.map(lambda _: resolve(root, cache), range(4)))
    assert len(found) == 1
    model_dir = found.pop()
    assert (model_dir / "MLmodel").read_bytes() == (forest_model_dir / "MLmodel").read_bytes()
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 1


def test_tarball_with_a_top_folder(forest_model_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "opt_ml_model"
    root.mkdir()
    with tarfile.open(root / "model.tar.gz", "w:gz") as archive:
        archive.add(forest_model_dir, arcname="my-model")
    model_dir = resolve(root, tmp_path / "cache")
    assert model_dir.name == "my-model" and (model_dir / "MLmodel").is_file()


@pytest.mark.parametrize(
    ("name", "kind", "message"),
    [
        ("../escape.txt", tarfile.REGTYPE, "outside the model folder"),
        ("/etc/evil", tarfile.REGTYPE, "outside the model folder"),
        ("link", tarfile.SYMTYPE, "neither a file nor a folder"),
    ],
)
def test_unsafe_tarballs_are_refused(tmp_path: Path, name: str, kind: bytes, message: str) -> None:
    root = tmp_path / "opt_ml_model"
    root.mkdir()
    with tarfile.open(root / "model.tar.gz", "w:gz") as archive:
        member = tarfile.TarInfo(name)
        member.type = kind
        member.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
        archive.addfile(member, io.BytesIO(b"") if kind == tarfile.REGTYPE else None)
    with pytest.raises(StartupError, match=message):
        resolve(root, tmp_path / "cache")
    assert not (tmp_path / "escape.txt").exists()


def test_tarball_without_a_model(tmp_path: Path) -> None:
    root = tmp_path / "opt_ml_model"
    (root / "stuff").mkdir(parents=True)
    (root / "stuff" / "README").write_text("no model here")
    with tarfile.open(root / "model.tar.gz", "w:gz") as archive:
        archive.add(root / "stuff", arcname="stuff")
    with pytest.raises(StartupError, match="holds no MLflow model"):
        resolve(root, tmp_path / "cache")


def test_corrupt_tarball(tmp_path: Path) -> None:
    root = tmp_path / "opt_ml_model"
    root.mkdir()
    (root / "model.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(StartupError, match="cannot extract"):
        resolve(root, tmp_path / "cache")


def test_empty_or_missing_model_folder(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="does not exist: mount an MLflow model there"):
        resolve(tmp_path / "absent", tmp_path / "cache")
    with pytest.raises(StartupError, match=r"no MLflow model in .*set MODEL_URI"):
        resolve(tmp_path, tmp_path / "cache")


def test_model_uri_is_downloaded(forest_model_dir: Path, tmp_path: Path) -> None:
    model_dir = resolve(tmp_path / "unused", tmp_path / "cache", str(forest_model_dir))
    assert model_dir != forest_model_dir
    assert (model_dir / "MLmodel").read_bytes() == (forest_model_dir / "MLmodel").read_bytes()


def test_model_uri_that_cannot_be_downloaded(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"file://{tmp_path / 'mlruns'}")
    with pytest.raises(StartupError, match=r"cannot download MODEL_URI=models:/absent@champion"):
        resolve(tmp_path, tmp_path / "cache", "models:/absent@champion")


def test_the_tracking_uri_is_logged_without_its_credentials(
    tmp_path: Path, monkeypatch, caplog
) -> None:
    closed = free_port()  # nothing listens: the download fails fast
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://someone:s3cret-pass@127.0.0.1:{closed}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with caplog.at_level("INFO"), pytest.raises(StartupError) as raised:
        resolve(tmp_path, tmp_path / "cache", "models:/absent@champion")
    assert f"from http://***@127.0.0.1:{closed}" in caplog.text
    assert "s3cret-pass" not in caplog.text and "s3cret-pass" not in str(raised.value)


def test_a_model_download_is_bounded(tmp_path: Path, monkeypatch) -> None:
    """A server that takes the connection and never answers: MLflow's client would wait for
    minutes; the download gives up after INFERENCE_MODEL_FETCH_TIMEOUT, naming the server."""
    import socket
    import time

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        # So the abandoned download ends soon after the test, on its own.
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        settings = Settings(model_uri="models:/m@champion", tracking_uri=uri, model_fetch_timeout=1)
        started = time.monotonic()
        with pytest.raises(StartupError) as raised:
            resolve_model_dir(settings, tmp_path / "cache", str(tmp_path))
        assert time.monotonic() - started < 4
    assert str(raised.value) == (
        "cannot download MODEL_URI=models:/m@champion within 1 s (INFERENCE_MODEL_FETCH_TIMEOUT): "
        f"the tracking server at {uri} does not answer; check MLFLOW_TRACKING_URI and that "
        "this container reaches it"
    )


def test_an_mlmodel_that_is_not_yaml_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "MLmodel").write_text("flavors:\n  python_function: {loader_module: [x\n")
    with pytest.raises(StartupError) as raised:
        resolve(tmp_path, tmp_path / "cache")
    message = str(raised.value)
    assert message.startswith(f"{tmp_path / 'MLmodel'} is not valid YAML (")
    assert "at line 3, column 1" in message and message.endswith("save the model again with MLflow")
    assert "\n" not in message
