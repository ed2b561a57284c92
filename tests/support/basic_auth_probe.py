"""MLflow's basic-auth app in this process, as app.py builds it, counting scrypt checks.

    python basic_auth_probe.py AUTH_DATABASE_URI USER PASSWORD

Run by tests/tracking/test_credentials.py in a process of its own: MLflow's auth
module reads its configuration when imported and hooks into the global Flask app.
Prints one JSON line: the answers of MLflow's Flask app (its test client) and how many
full password checks they cost, and the same for its FastAPI path's authentication.
"""

import base64
import json
import os
import sys
import tempfile

database, user, password = sys.argv[1:4]
new_password = password + "-changed"
directory = tempfile.mkdtemp()
config = os.path.join(directory, "basic_auth.ini")
with open(config, "w") as handle:
    handle.write(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = {database}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
os.environ.update(
    MLFLOW_AUTH_CONFIG_PATH=config,
    MLFLOW_FLASK_SERVER_SECRET_KEY="probe-secret-key",
    _MLFLOW_AUTH_ADMIN_BOOTSTRAPPED="true",  # as the entrypoint sets it for its workers
)

from mlflow.server import auth as basic_auth  # noqa: E402
from sqlalchemy import event  # noqa: E402
from werkzeug.security import check_password_hash  # noqa: E402

from mlstack.tracking import credentials  # noqa: E402

checks: list[int] = []


def counted(stored_hash: str, given: str) -> bool:
    checks.append(1)
    return check_password_hash(stored_hash, given)


credentials.check_password_hash = counted
credentials.remember_verified_passwords()  # as app.py does, before MLflow builds its app
flask_app = basic_auth.create_app()
client = flask_app.test_client()
user_rows: list[str] = []


def record(connection, cursor, statement, *args) -> None:
    if "FROM users" in statement:
        user_rows.append(statement)


event.listen(basic_auth.store.engine, "before_cursor_execute", record)


def status(login_password: str) -> int:
    token = base64.b64encode(f"{user}:{login_password}".encode()).decode()
    headers = {"Authorization": f"Basic {token}"}
    return client.get("/api/2.0/mlflow/users/current", headers=headers).status_code


statuses = {
    "right": [status(password) for _ in range(5)],
}
rows_per_request = len(user_rows) / 5
statuses |= {
    "wrong": [status(f"wrong-{i}") for i in range(3)],
}
token = base64.b64encode(f"{user}:{password}".encode()).decode()
changed = client.patch(
    "/api/2.0/mlflow/users/update-password",
    json={"username": user, "password": new_password, "current_password": password},
    headers={"Authorization": f"Basic {token}"},
)
assert changed.status_code == 200, changed.get_data(as_text=True)
statuses["changed"] = [status(password), status(new_password)]
flask_checks = len(checks)
checks.clear()
# The FastAPI middleware's path (native routes): MLflow's _authenticate_cached.
fastapi = {
    "right": bool(basic_auth._authenticate_cached("admin", "admin-password-1")),
    "again": bool(basic_auth._authenticate_cached("admin", "admin-password-1")),
    "wrong": bool(basic_auth._authenticate_cached("admin", "admin-password-2")),
}
fastapi_checks = len(checks)
print(
    json.dumps(
        {
            "statuses": statuses,
            "scrypt_checks": flask_checks,
            "user_rows_read_per_request": rows_per_request,
            "fastapi_path": {**fastapi, "scrypt_checks": fastapi_checks},
        }
    )
)
