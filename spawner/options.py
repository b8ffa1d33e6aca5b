"""The options of a notebook (the guide's ノートブック管理 table), checked in one place.

Both spawners (KubeSpawner-based and local) and the kqi service's notebook API use
`parse_options`, so a bad option gets the same clear message wherever it comes from and
nothing starts.

`plan` is what the kqi service resolved for the notebook (dataset files, the model's
clone URL and commit, the folders of mounted trainings and inferences, the persistent
output folder). The service signs the whole options of each start with the time and a
nonce (issue_plan); the spawners start nothing else, and each signed start once
(PlanLedger): the service's checks (tenant quota, node capacity) cannot be skipped by
starting servers through the hub's API.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import asdict, dataclass, field

VERSION = re.compile(r"^[0-9]+(\.[0-9]+){0,3}((a|b|rc)[0-9]+)?(\.post[0-9]+)?(\.dev[0-9]+)?$")
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,28}[a-z0-9])?$")
PARTITION = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
MAX_LIFETIME_HOURS = 24 * 365


def plan_key(secret_key: str) -> bytes:
    """The HMAC key of notebook options, derived from the kqi service's secret key (which the
    hub's profile reads too): only the service can sign options that carry a plan."""
    return hashlib.sha256(b"kqi-notebook-plan\0" + secret_key.encode()).digest()


def _signed_part(options: dict) -> dict:
    return {k: v for k, v in options.items() if k != "planSignature"}


def _message(user: str, server: str, options: dict) -> bytes:
    return json.dumps([user, server, _signed_part(options)], sort_keys=True, separators=(",", ":")).encode()


def sign_plan(key: bytes, user: str, server: str, options: dict) -> str:
    """The signature (user_options["planSignature"]) of a named server's whole user options:
    the plan and the options the service checked against the tenant (quota, lifetime rule)."""
    return hmac.new(key, _message(user, server, options), hashlib.sha256).hexdigest()


def verify_plan(key: bytes | None, user: str, server: str, options: dict) -> bool:
    signature = options.get("planSignature")
    if not key or not isinstance(signature, str):
        return False
    return hmac.compare_digest(sign_plan(key, user, server, options), signature)


#: the fields of user options that make the service's plan a one-time ticket
TICKET_FIELDS = ("planIssuedAt", "planNonce", "planSignature")

NOT_PLANNED = ("only the kqi service makes plans: a server starts only from options the kqi service checked"
               " and signed for this user and server. Start notebooks in the KQI UI (/services/kqi/) or with"
               " its notebook API (POST /notebook/run)")


def issue_plan(key: bytes, user: str, server: str, options: dict, now: float | None = None) -> dict:
    """The options as a one-time ticket of the kqi service for the server `user`/`server`: the time it
    was issued and a random nonce are signed with the rest, so a spawner takes them once and only
    for a short while (PlanLedger)."""
    ticket = {k: v for k, v in options.items() if k not in TICKET_FIELDS}
    ticket["planIssuedAt"] = round(time.time() if now is None else now, 3)
    ticket["planNonce"] = secrets.token_urlsafe(18)
    ticket["planSignature"] = sign_plan(key, user, server, ticket)
    return ticket


class PlanLedger:
    """What a hub process accepts as a server start: options the kqi service signed (issue_plan) for
    exactly this user, server and options, issued within `max_age` seconds (and not before the hub
    process started, so a restart forgets nothing that matters), each nonce once.

    `admit` returns None or the reason of the refusal (shown to the user)."""

    def __init__(self, max_age: float = 120.0, started_at: float | None = None, skew: float = 5.0):
        self.max_age, self.skew = max_age, skew
        self.started_at = time.time() if started_at is None else started_at
        self._used: dict[str, float] = {}  # nonce -> when it may be forgotten (its plan expired)

    def admit(self, key: bytes | None, user: str, server: str, options: dict, now: float | None = None) -> str | None:
        now = time.time() if now is None else now
        if not isinstance(options, dict) or not verify_plan(key, user, server, options):
            return NOT_PLANNED
        issued, nonce = options.get("planIssuedAt"), options.get("planNonce")
        if not isinstance(issued, (int, float)) or isinstance(issued, bool) or not isinstance(nonce, str) or not nonce:
            return NOT_PLANNED
        if now - issued > self.max_age or issued > now + self.skew or issued < self.started_at - self.skew:
            return (f"the kqi service's plan for this start has expired (a plan is good for {self.max_age:g} s"
                    " after it is made, in the hub that was running then): start the notebook again through"
                    " the kqi service (POST /notebook/run or /notebook/{id}/rerun)")
        for old in [n for n, until in self._used.items() if until < now]:
            del self._used[old]
        if nonce in self._used:
            return ("the kqi service's plan was already used: each plan starts a server once; start the"
                    " notebook again through the kqi service (POST /notebook/{id}/rerun)")
        self._used[nonce] = issued + self.max_age + self.skew
        return None


class OptionsError(ValueError):
    """Bad notebook options; the message says what is wrong (shown to the user)."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


@dataclass
class NotebookOptions:
    name: str = "notebook"
    cpu: float = 1.0
    memory: float = 1.0  # GiB
    gpu: int = 0
    lifetime_enabled: bool = True
    lifetime_hours: float = 8.0
    jupyterlab_version: str | None = None
    image: str | None = None  # registry host/image:tag
    dataset_id: int | None = None
    local_dataset: bool = False  # copy instead of symlink
    training_ids: list[int] = field(default_factory=list)
    inference_ids: list[int] = field(default_factory=list)
    git: dict | None = None  # {gitId, owner, repository, branch, commitId}
    startup_command: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    partition: str | None = None
    memo: str | None = None
    notebook_id: int | None = None
    plan: dict = field(default_factory=dict)

    @property
    def lifetime_seconds(self) -> float | None:
        return self.lifetime_hours * 3600 if self.lifetime_enabled else None

    def to_dict(self) -> dict:
        return asdict(self)


def _number(value, name, errors, *, integer=False, minimum=None, exclusive_min=False):
    if value is None or value == "":
        return None
    try:
        number = int(value) if integer else float(value)
        if integer and isinstance(value, float) and not value.is_integer():
            raise ValueError
    except (TypeError, ValueError):
        errors[name] = "must be a whole number" if integer else "must be a number"
        return None
    if isinstance(value, bool):
        errors[name] = "must be a number"
        return None
    if number != number or number in (float("inf"), float("-inf")):
        errors[name] = "must be a finite number"
        return None
    if minimum is not None and (number <= minimum if exclusive_min else number < minimum):
        errors[name] = f"must be {'more than' if exclusive_min else 'at least'} {minimum}"
        return None
    return number


def _first(value):
    """Form posts give lists of strings; JSON gives values."""
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], (str, bytes)):
        value = value[0]
    return value.decode() if isinstance(value, bytes) else value


def _bool(value) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "on", "yes")


def _ids(value, name, errors) -> list[int]:
    if value in (None, "", []):
        return []
    if isinstance(value, (str, int)):
        value = [value]
    out = []
    for item in value:
        item = _first(item)
        try:
            out.append(int(str(item).strip()))
        except ValueError:
            errors[name] = "must be a list of ids"
            return []
    return out


def parse_options(raw: dict, *, infinite_allowed: bool = True, default_image: str | None = None,
                  default_jupyterlab: str | None = None) -> NotebookOptions:
    """Check raw user options (JSON or a spawn form); raises OptionsError with every problem."""
    if not isinstance(raw, dict):
        raise OptionsError({"options": "must be an object"})
    raw = {k: _first(v) for k, v in raw.items()}
    errors: dict[str, str] = {}
    o = NotebookOptions()
    name = raw.get("name") or "notebook"
    if not isinstance(name, str) or not NAME.match(name):
        errors["name"] = "lower-case letters, digits and '-', at most 30, not starting or ending with '-'"
    o.name = name
    o.cpu = _number(raw.get("cpu", 1), "cpu", errors, minimum=0, exclusive_min=True) or o.cpu
    o.memory = _number(raw.get("memory", 1), "memory", errors, minimum=0, exclusive_min=True) or o.memory
    gpu = _number(raw.get("gpu", 0), "gpu", errors, integer=True, minimum=0)
    o.gpu = int(gpu) if gpu is not None else 0
    o.lifetime_enabled = _bool(raw.get("lifetimeEnabled", raw.get("lifetime_enabled", True)))
    hours = _number(raw.get("lifetimeHours", raw.get("lifetime_hours", 8)), "lifetimeHours", errors, minimum=0,
                    exclusive_min=True)
    if hours is not None:
        if hours > MAX_LIFETIME_HOURS:
            errors["lifetimeHours"] = f"must be at most {MAX_LIFETIME_HOURS}"
        o.lifetime_hours = hours
    if not o.lifetime_enabled and not infinite_allowed:
        errors["lifetimeEnabled"] = "this tenant does not allow notebooks without a lifetime"
    version = raw.get("jupyterlabVersion", raw.get("jupyterlab_version")) or default_jupyterlab
    if version is not None and (not isinstance(version, str) or not VERSION.match(version.strip())):
        errors["jupyterlabVersion"] = f"{version!r} is not a version such as 4.2.5"
    o.jupyterlab_version = version.strip() if isinstance(version, str) else None
    image = raw.get("image") or default_image
    if image is not None and (not isinstance(image, str) or len(image) > 512 or any(c.isspace() for c in image)):
        errors["image"] = "must be an image reference such as registry/name:tag"
    o.image = image
    if raw.get("datasetId", raw.get("dataset_id")) not in (None, ""):
        dataset = _number(raw.get("datasetId", raw.get("dataset_id")), "datasetId", errors, integer=True, minimum=1)
        o.dataset_id = int(dataset) if dataset is not None else None
    method = raw.get("datasetMethod", raw.get("dataset_method", "symlink"))
    if method not in ("symlink", "copy"):
        errors["datasetMethod"] = "is 'symlink' or 'copy'"
    o.local_dataset = method == "copy" or _bool(raw.get("localDataSet", False))
    o.training_ids = _ids(raw.get("trainingIds", raw.get("parentIds")), "trainingIds", errors)
    o.inference_ids = _ids(raw.get("inferenceIds"), "inferenceIds", errors)
    git = raw.get("git", raw.get("gitModel"))
    if git not in (None, "", {}):
        if not isinstance(git, dict) or not git.get("owner") or not git.get("repository"):
            errors["git"] = "must be {gitId, owner, repository, branch, commitId}"
        else:
            o.git = {k: git.get(k) for k in ("gitId", "owner", "repository", "branch", "commitId")}
    startup = raw.get("startupCommand", raw.get("entryPoint"))
    if startup is not None and not isinstance(startup, str):
        errors["startupCommand"] = "must be a command line"
    o.startup_command = startup or None
    env = raw.get("env", raw.get("options")) or {}
    if not isinstance(env, dict):
        errors["env"] = "must be an object of names to values"
    else:
        for key, value in env.items():
            if not ENV_NAME.match(str(key)):
                errors["env"] = f"{key!r} is not a valid environment variable name"
            o.env[str(key)] = "" if value is None else str(value)
    partition = raw.get("partition")
    if partition not in (None, "") and (not isinstance(partition, str) or not PARTITION.match(partition)):
        # it becomes a node label value on Kubernetes
        errors["partition"] = "is a partition name: letters, digits, '-', '_' and '.', at most 63"
    o.partition = partition or None
    o.memo = raw.get("memo") or None
    if raw.get("notebookId") is not None:
        o.notebook_id = _number(raw.get("notebookId"), "notebookId", errors, integer=True, minimum=1)
        o.notebook_id = int(o.notebook_id) if o.notebook_id else None
    plan = raw.get("plan") or {}
    if not isinstance(plan, dict):
        errors["plan"] = "must be an object"
        plan = {}
    o.plan = plan
    if errors:
        raise OptionsError(errors)
    return o
