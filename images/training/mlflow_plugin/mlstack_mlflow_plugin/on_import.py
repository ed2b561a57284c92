"""Patch an MLflow module right after it is first imported (not before: importing it may
cost a script that never uses it), or at once when it already is."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

Patch = Callable[[ModuleType], None]


class PatchOnImport(importlib.abc.MetaPathFinder):
    """Runs `patch` on module `name` as soon as its import has executed it."""

    def __init__(self, name: str, patch: Patch) -> None:
        self.name = name
        self.patch = patch

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.name:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        loader = spec.loader if spec is not None else None
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        execute = loader.exec_module
        patch = self.patch

        def exec_module(module: ModuleType) -> None:
            execute(module)
            patch(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]  # this spec's loader
        return spec


def install(name: str, patch: Patch) -> None:
    """Patch module `name` now if it is imported, else as soon as it is (once)."""
    module = sys.modules.get(name)
    if module is not None:
        patch(module)
    elif not any(
        isinstance(finder, PatchOnImport) and finder.name == name for finder in sys.meta_path
    ):
        sys.meta_path.insert(0, PatchOnImport(name, patch))
