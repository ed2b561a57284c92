"""Verify a password once, not on every request: MLflow's auth store, remembering.

MLflow's basic-auth checks the password of every request against the user's stored hash
(werkzeug scrypt: about 0.1-0.3 s of CPU on a 2-core machine), and several times a
request: the request itself, the admin check and the permission check each authenticate
again, and each reads the user's row. `RememberingStore`, installed by
`remember_verified_passwords` in place of MLflow's auth store, is MLflow's store but:

- it remembers, per worker, for VERIFIED_LIFETIME_S, which (user, stored hash, password)
  it has verified. Every request still reads the user's current row; an entry counts only
  for the stored hash it was verified against. A password changed or a user deleted
  through any worker or replica, the UI, `reset-admin-password` or SQL changes or removes
  that row, so the old password is refused on the next request, everywhere.
- entries are HMAC-SHA256 digests under a key each worker draws at random and never writes
  anywhere; the password itself is never kept. Failures are never remembered: each wrong
  password costs the full scrypt check, as before. The stored hashes are MLflow's.
- within one request, a user's row is read once (Flask's per-request `g`), not once per
  check; a change of that user in the same request drops it.

README "Access control" explains the lifetime and what memory access would reveal.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable

from cachetools import TTLCache
from flask import g, has_request_context
from mlflow.exceptions import MlflowException
from mlflow.server.auth.entities import User
from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore
from werkzeug.security import check_password_hash

log = logging.getLogger(__name__)

# Why this long, not longer nor shorter: README "Access control".
VERIFIED_LIFETIME_S = 300
# Far above the users active at once; past it the oldest entries go (a re-check, no harm).
CAPACITY = 4096


class VerifiedPasswords:
    """Which (user, stored hash, password) this process has verified, as keyed digests."""

    def __init__(
        self,
        lifetime_s: float = VERIFIED_LIFETIME_S,
        capacity: int = CAPACITY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lifetime_s = lifetime_s
        self._key = secrets.token_bytes(32)
        self._verified: TTLCache[bytes, bool] = TTLCache(capacity, lifetime_s, timer=clock)
        self._lock = threading.Lock()  # TTLCache is not thread-safe; Flask runs in threads

    def _digest(self, username: str, stored_hash: str, password: str) -> bytes:
        """HMAC of the three, each length-prefixed so no two triples share an encoding."""
        mac = hmac.new(self._key, digestmod="sha256")
        for part in (username, stored_hash, password):
            data = part.encode("utf-8", "surrogatepass")
            mac.update(len(data).to_bytes(4, "big") + data)
        return mac.digest()

    def check(self, username: str, stored_hash: str, password: str) -> bool:
        """Whether password matches stored_hash: from memory if verified lately, else scrypt."""
        digest = self._digest(username, stored_hash, password)
        with self._lock:
            if self._verified.get(digest):
                return True
        # Outside the lock: checks of different credentials run side by side.
        if not check_password_hash(stored_hash, password):
            return False  # never remembered: each wrong guess pays the full check
        with self._lock:
            self._verified[digest] = True
        return True

    def __len__(self) -> int:
        with self._lock:
            return len(self._verified)


def this_request_users() -> dict[str, User] | None:
    """The users read during this Flask request (by name), or None outside one."""
    if not has_request_context():
        return None
    if not hasattr(g, "mlstack_users"):
        g.mlstack_users = {}
    return g.mlstack_users


class RememberingStore(SqlAlchemyStore):
    """MLflow's auth store, verifying each password once per worker and lifetime."""

    def __init__(self, verified: VerifiedPasswords | None = None) -> None:
        super().__init__()
        self.verified = VerifiedPasswords() if verified is None else verified

    def get_user(self, username: str) -> User:
        """MLflow's get_user; read once per request."""
        users = this_request_users()
        if users is not None and username in users:
            return users[username]
        user = super().get_user(username)
        if users is not None:
            users[username] = user
        return user

    def authenticate_user(self, username: str, password: str, *, use_primary: bool = False) -> bool:
        """MLflow's answer (the password matches the user's stored hash), remembered."""
        try:
            if use_primary:  # MLflow's start-up checks, with a read replica configured
                with self.ManagedSessionMaker(read_only=False) as session:
                    user = self._get_user(session, username).to_mlflow_entity()
            else:
                user = self.get_user(username)
        except MlflowException:
            return False  # no such user: refused without a hash check, as MLflow does
        if not user.password_hash or password is None:
            return False
        return self.verified.check(username, user.password_hash, password)

    def update_user(
        self, username: str, password: str | None = None, is_admin: bool | None = None
    ) -> User:
        """MLflow's update_user; this request reads the user anew afterwards."""
        updated = super().update_user(username, password=password, is_admin=is_admin)
        self._forget_in_this_request(username)
        return updated

    def delete_user(self, username: str) -> None:
        """MLflow's delete_user; this request no longer finds the user afterwards."""
        super().delete_user(username)
        self._forget_in_this_request(username)

    @staticmethod
    def _forget_in_this_request(username: str) -> None:
        users = this_request_users()
        if users is not None:
            users.pop(username, None)


def remember_verified_passwords(verified: VerifiedPasswords | None = None) -> RememberingStore:
    """Put a RememberingStore in place of MLflow's auth store, before its app is built.

    MLflow's basic-auth module calls its module-level `store` for every check (Flask and
    FastAPI routes alike, and a password change's current-password check); its create_app
    opens that store on the auth database.
    """
    from mlflow.server import auth as basic_auth

    store = RememberingStore(verified)
    basic_auth.store = store
    log.info(
        "verified passwords are remembered for %.0f s per worker, against their stored hash",
        store.verified.lifetime_s,
    )
    return store
