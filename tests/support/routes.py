"""Every route of the tracking server's apps, enumerated from the apps themselves.

The program runs inside a running tracking-server container (its MLflow, its settings:
the environment the entrypoint gave the server, read from /proc/1/environ) and prints
the FastAPI app's routes and the Flask app's URL rules as JSON.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from testcontainers.core.container import DockerContainer

PROGRAM = r"""
import importlib, json, os
with open("/proc/1/environ") as handle:
    os.environ.update(
        item.split("=", 1) for item in handle.read().split("\0") if "=" in item
    )
from mlstack.tracking.app import create_app
from mlflow.server import app as flask_app
fastapi_app = create_app()
routes = []
while not hasattr(fastapi_app, "routes"):  # mlstack's own middleware in front (readiness)
    path = getattr(importlib.import_module("mlstack.tracking.readiness"), "READY_PATH", None)
    if path:
        routes.append({"app": "mlstack", "path": path, "methods": ["GET"]})
    fastapi_app = fastapi_app.app
for route in fastapi_app.routes:
    methods = getattr(route, "methods", None)
    if methods:
        routes.append({"app": "fastapi", "path": route.path, "methods": sorted(methods)})
for rule in flask_app.url_map.iter_rules():
    routes.append({"app": "flask", "path": rule.rule, "methods": sorted(rule.methods)})
print(json.dumps(routes))
"""

PARAMETER = re.compile(r"<(?:[\w]+:)?(\w+)>|\{(\w+)(?::\w+)?\}")
SKIPPED_METHODS = {"HEAD", "OPTIONS"}


@dataclass(frozen=True)
class Route:
    app: str
    template: str
    method: str

    def path(self, values: dict[str, str]) -> str:
        """The template with each parameter filled from values (by name), else "x"."""
        return PARAMETER.sub(lambda m: values.get(m.group(1) or m.group(2), "x"), self.template)


def enumerate_routes(container: DockerContainer) -> list[Route]:
    """Every (app, path template, method) the server's apps define, HEAD/OPTIONS aside."""
    code, output = container.exec(["python", "-c", PROGRAM])
    text = output.decode(errors="replace")
    assert code == 0, text
    listed = json.loads(text.strip().splitlines()[-1])
    routes = {
        Route(entry["app"], entry["path"], method)
        for entry in listed
        for method in entry["methods"]
        if method not in SKIPPED_METHODS
    }
    return sorted(routes, key=lambda r: (r.template, r.method, r.app))
