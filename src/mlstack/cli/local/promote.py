"""`mlstack local promote`: alias `champion` the registered version of MODEL_NAME whose run
has the lowest objective, and say why the champion moved or stayed.

The champion moves only for a strictly lower objective: a version that ties it leaves it
where it is (a re-run of the same search does not churn the alias, and what is served stays).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlstack.cli.local.jobs import JobError
from mlstack.cli.local.loop import require_tracking_server
from mlstack.cli.tuning import OBJECTIVE

if TYPE_CHECKING:
    from mlstack.cli.local.loop import Loop

ALIAS = "champion"


def scores(tracking, model_name: str) -> dict[int, float]:
    """version -> the objective its run logged, for the versions whose run has one."""
    versions = tracking.search_model_versions(f"name='{model_name}'")
    if not versions:
        raise JobError(f"model {model_name} has no versions: run `make local-hpo` first")
    found = {}
    for version in versions:
        metrics = tracking.get_run(version.run_id).data.metrics if version.run_id else {}
        if OBJECTIVE in metrics:
            found[int(version.version)] = metrics[OBJECTIVE]
    if not found:
        raise JobError(
            f"no version of {model_name} has a run with {OBJECTIVE}: "
            "register one from `make local-hpo`"
        )
    return found


def not_found(error: Exception) -> bool:
    """Whether MLflow says the model or its alias does not exist (the registry answers an
    unknown alias with INVALID_PARAMETER_VALUE, an unknown model with RESOURCE_DOES_NOT_EXIST)."""
    code = getattr(error, "error_code", "")
    return code == "RESOURCE_DOES_NOT_EXIST" or (
        code == "INVALID_PARAMETER_VALUE" and "not found" in str(error)
    )


def current_champion(tracking, model_name: str) -> int | None:
    """The version the alias points at, or None when there is none yet."""
    from mlflow.exceptions import MlflowException

    try:
        return int(tracking.get_model_version_by_alias(model_name, ALIAS).version)
    except MlflowException as error:
        if not_found(error):
            return None
        raise


def decide(scored: dict[int, float], champion: int | None) -> tuple[int, str]:
    """(the version to alias, why) from the versions' objectives and the current champion."""
    best_value = min(scored.values())
    best = min(version for version, value in scored.items() if value == best_value)
    among = "the only version" if len(scored) == 1 else f"the lowest of {len(scored)} versions"
    lowest = f"{OBJECTIVE} {best_value:.3f}, {among}"
    if champion is None:
        return best, f"-> version {best} ({lowest})"
    if champion not in scored:
        return best, f"-> version {best} ({lowest}; version {champion} had no {OBJECTIVE})"
    held = scored[champion]
    if held > best_value:
        return best, (
            f"-> version {best} ({OBJECTIVE} {best_value:.3f}, lower than version "
            f"{champion}'s {held:.3f})"
        )
    ties = sorted(v for v, value in scored.items() if value == held and v != champion)
    why = (
        f"version {', '.join(map(str, ties))} {'ties' if len(ties) == 1 else 'tie'} it, and "
        f"the champion moves only for a lower {OBJECTIVE}"
        if ties
        else f"no other version has a lower {OBJECTIVE}"
    )
    return champion, f"stays version {champion} ({OBJECTIVE} {held:.3f}): {why}"


def promote(loop: Loop) -> None:
    """Alias `champion` the best version, unless the current champion is as good; say why."""
    from mlflow import MlflowClient

    require_tracking_server(loop)
    model_name = loop.settings.model_name
    tracking = MlflowClient(tracking_uri=loop.tracking_uri)
    scored = scores(tracking, model_name)
    champion = current_champion(tracking, model_name)
    chosen, why = decide(scored, champion)
    if chosen != champion:
        tracking.set_registered_model_alias(model_name, ALIAS, str(chosen))
    print(f"{model_name}@{ALIAS} {why}")
