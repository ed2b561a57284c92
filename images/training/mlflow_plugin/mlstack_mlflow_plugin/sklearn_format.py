"""scikit-learn models saved with cloudpickle when the script names no format.

MLflow 3.x saves with skops when a call to `mlflow.sklearn.save_model` / `log_model` gives no
`serialization_format` (a `SERIALIZATION_FORMAT_SKOPS` default in the signature in some 3.x
releases; in 3.17 a `None` default that mlflow/sklearn/__init__.py
`_get_default_serialization_format` resolves at call time). skops then refuses a tree
model's own types (`sklearn.tree._tree.Tree`) unless the call lists them in
`skops_trusted_types`, so an unchanged `mlflow.sklearn.log_model(model, "model")`, written
for MLflow 2.x or SageMaker's scikit-learn containers, fails. In this image such a call gets
cloudpickle, the format MLflow 2.x clients and 3.17's own `mlflow.sklearn.autolog` write.
A call that names a `serialization_format`, or trusts types with `skops_trusted_types` (which
only skops reads), gets exactly what it asked for; clients whose default is cloudpickle
already (2.x) are left alone. The README's script-mode section gives the security reasoning.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from types import ModuleType
from typing import Any

from mlstack_mlflow_plugin import on_import

MODULE = "mlflow.sklearn"
FORMAT = "serialization_format"
TRUSTED = "skops_trusted_types"
CLOUDPICKLE = "cloudpickle"  # mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE, 2.x and 3.x
PATCHED = "__mlstack_cloudpickle_default__"


def with_cloudpickle_default(function: Callable[..., Any]) -> Callable[..., Any]:
    """function, saving with cloudpickle when a call names neither a format nor trusted types."""
    signature = inspect.signature(function)

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind_partial(*args, **kwargs)
        except TypeError:  # a bad call: MLflow's own error says what is wrong
            return function(*args, **kwargs)
        trusted = bound.arguments.get(TRUSTED, kwargs.get(TRUSTED))  # a named or a **kwargs one
        if bound.arguments.get(FORMAT) is None and trusted is None:
            bound.arguments[FORMAT] = CLOUDPICKLE
        return function(*bound.args, **bound.kwargs)

    setattr(call, PATCHED, True)
    return call


def patch(module: ModuleType) -> None:
    """Give mlflow.sklearn's save_model and log_model the cloudpickle default, where the
    installed MLflow's default is another (skops, or `None`: chosen at call time)."""
    for name in ("save_model", "log_model"):
        function = getattr(module, name, None)
        if function is None or getattr(function, PATCHED, False):
            continue
        parameter = inspect.signature(function).parameters.get(FORMAT)
        if parameter is not None and parameter.default != CLOUDPICKLE:
            setattr(module, name, with_cloudpickle_default(function))


def install() -> None:
    """Patch mlflow.sklearn now if it is imported, else as soon as it is (importing it costs
    a script that never saves a scikit-learn model)."""
    on_import.install(MODULE, patch)
