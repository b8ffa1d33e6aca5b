"""Password records of the KQI authenticator, kept in the hub's own database.

Only salted scrypt hashes are stored. The table lives beside JupyterHub's tables
(same engine, its own declarative base) so that users and passwords belong to the
hub, not to the kqi service.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
from datetime import datetime, timezone

from sqlalchemy import Boolean, Column, DateTime, String, Unicode
from sqlalchemy.orm import declarative_base

Base = declarative_base()

# scrypt parameters: ~16 MiB of memory and ~50 ms per check on this kind of machine.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
MIN_PASSWORD_LENGTH = 8
USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class PasswordRecord(Base):
    __tablename__ = "kqi_user_passwords"

    username = Column(Unicode(255), primary_key=True)
    password_hash = Column(String(255), nullable=False)
    # True for open sign-ups. Otherwise a password only works once the hub knows the
    # user (an administrator added the name on the hub's admin page or through the API).
    is_authorized = Column(Boolean, nullable=False, default=False)
    created_at = Column(DateTime, nullable=False, default=lambda: datetime.now(timezone.utc))
    changed_at = Column(DateTime, nullable=False, default=lambda: datetime.now(timezone.utc))


class PasswordError(ValueError):
    """A password or user name that breaks the rules; the message is safe to show."""


def check_username(username: str) -> str:
    if not username or not USERNAME_PATTERN.match(username):
        raise PasswordError(
            "User names are 1-64 characters of lower-case letters, digits, '.', '_' and '-',"
            " starting with a letter or digit."
        )
    return username


def check_password_strength(password: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordError(f"Passwords need at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > 1024:
        raise PasswordError("Passwords may have at most 1024 characters.")


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if kind != "scrypt":
        return False
    candidate = hashlib.scrypt(
        password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p)
    )
    return hmac.compare_digest(candidate.hex(), digest)


class PasswordStore:
    """Reads and writes password records through a SQLAlchemy session."""

    def __init__(self, db):
        self.db = db

    @staticmethod
    def create_table(engine) -> None:
        Base.metadata.create_all(engine, tables=[PasswordRecord.__table__])

    def get(self, username: str) -> PasswordRecord | None:
        return self.db.get(PasswordRecord, username)

    def set_password(self, username: str, password: str, *, authorized: bool | None = None) -> PasswordRecord:
        check_username(username)
        check_password_strength(password)
        record = self.get(username)
        now = datetime.now(timezone.utc)
        if record is None:
            record = PasswordRecord(username=username, created_at=now, is_authorized=bool(authorized))
            self.db.add(record)
        elif authorized is not None:
            record.is_authorized = authorized
        record.password_hash = hash_password(password)
        record.changed_at = now
        self.db.commit()
        return record

    def check(self, username: str, password: str) -> PasswordRecord | None:
        """The record when the password matches, else None."""
        record = self.get(username)
        if record is None:
            # spend the same time as a real check so that names cannot be probed by timing
            verify_password(password or "", _DUMMY_HASH)
            return None
        return record if verify_password(password or "", record.password_hash) else None

    def delete(self, username: str) -> None:
        record = self.get(username)
        if record is not None:
            self.db.delete(record)
            self.db.commit()


_DUMMY_HASH = hash_password("not-a-real-password")


# ------------------------------------------------------------------ what a password change ends
def running_server_token_ids(db, user) -> set[int]:
    """Ids of the API tokens the hub gave `user`'s running (or starting) servers.

    They are the servers' own credentials (the notebook server checks its visitors with it and
    the hub deletes it when the server stops), not something the user signed in with: a
    password change leaves running notebooks working.
    """
    from jupyterhub import orm

    ids = set()
    for spawner in user.spawners.values():
        if spawner.active and spawner.api_token:
            found = orm.APIToken.find(db, spawner.api_token)
            if found is not None and found.user_id == user.orm_user.id:
                ids.add(found.id)
    return ids


def end_sessions(db, orm_user, keep_token_ids=()) -> int:
    """After a password change: every API token and OAuth access token of the user stops working
    (all but `keep_token_ids`), pending OAuth codes go, and every browser's hub sign-in cookie is
    void (a new cookie id). Returns how many tokens were revoked."""
    from jupyterhub import orm
    from jupyterhub.utils import new_token

    keep = set(keep_token_ids)
    revoked = 0
    for token in list(orm_user.api_tokens):
        if token.id not in keep:
            db.delete(token)
            revoked += 1
    db.query(orm.OAuthCode).filter(orm.OAuthCode.user_id == orm_user.id).delete(synchronize_session=False)
    orm_user.cookie_id = new_token()
    db.commit()
    return revoked
