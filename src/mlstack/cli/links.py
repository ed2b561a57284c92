"""Links the user can open. Training jobs reach the tracking server at an address of their
own network (http://tracking-server:5000 on the local stack, a container address in SageMaker
local mode), and MLflow's client in them prints its `View run ... at:` links with it; the
commands print those lines with the address this machine uses instead."""

from __future__ import annotations

from typing import Any, TextIO


def public(line: str, inside: str, outside: str) -> str:
    """line with the tracking server's in-network address replaced by this machine's."""
    return line.replace(inside.rstrip("/"), outside.rstrip("/")) if inside else line


def run_url(tracking_uri: str, run: Any) -> str:
    """The MLflow UI's page of a run (its RunInfo), at tracking_uri."""
    return f"{tracking_uri.rstrip('/')}/#/experiments/{run.experiment_id}/runs/{run.run_id}"


class PublicLinks:
    """A text stream writing to another with the in-network address replaced (what the
    SageMaker SDK streams its containers' logs to)."""

    def __init__(self, target: TextIO, inside: str, outside: str) -> None:
        self.target, self.inside, self.outside = target, inside, outside

    def write(self, text: str) -> int:
        return self.target.write(public(text, self.inside, self.outside))

    def flush(self) -> None:
        self.target.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)
