"""The container's entry point: `docker run IMAGE train`, and nothing else."""

from __future__ import annotations

import pytest

from mlstack.training.entrypoint import main


@pytest.mark.parametrize("argv", [[], ["serve"], ["train", "extra"]])
def test_entrypoint_wants_train(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "docker run IMAGE train" in capsys.readouterr().err
