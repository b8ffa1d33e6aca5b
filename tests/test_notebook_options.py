"""Unit tests of the notebook options (spawner/options.py): the one checker of the guide's
ノートブック管理 fields that the kqi service, KqiLocalSpawner and KqiKubeSpawner all use, the
signature that lets only the kqi service hand a spawner a plan, and the spawners' hook that
turns bad options into the hub's HTTP 400 before anything starts.
"""
from __future__ import annotations

import asyncio
import math
import time

import pytest
from jupyterhub import orm
from tornado import web

from kqi_spawner.options import (MAX_LIFETIME_HOURS, NOT_PLANNED, NotebookOptions, OptionsError, PlanLedger,
                                 issue_plan, parse_options, plan_key, sign_plan, verify_plan)


def errors_of(raw: dict, **kwargs) -> dict[str, str]:
    with pytest.raises(OptionsError) as info:
        parse_options(raw, **kwargs)
    return info.value.errors


# ------------------------------------------------------------------------------ good options
def test_defaults():
    o = parse_options({})
    assert (o.name, o.cpu, o.memory, o.gpu) == ("notebook", 1.0, 1.0, 0)
    assert o.lifetime_enabled is True and o.lifetime_hours == 8.0 and o.lifetime_seconds == 8 * 3600
    assert o.jupyterlab_version is None and o.image is None and o.dataset_id is None
    assert o.local_dataset is False and o.training_ids == [] and o.inference_ids == []
    assert o.git is None and o.startup_command is None and o.env == {} and o.partition is None
    assert o.memo is None and o.notebook_id is None and o.plan == {}


def test_every_field_of_the_guide():
    o = parse_options({
        "name": "my-notebook-1", "cpu": 2.5, "memory": 4, "gpu": 2, "lifetimeEnabled": True, "lifetimeHours": 3.5,
        "jupyterlabVersion": " 1.0.4 ", "image": "registry.example.com/team/lab:2.2.0", "datasetId": 7,
        "datasetMethod": "copy", "trainingIds": [3, "4"], "inferenceIds": [9],
        "git": {"gitId": 1, "owner": "team", "repository": "model", "branch": "main", "commitId": None,
                "extra": "dropped"},
        "startupCommand": "pip install -r requirements.txt", "env": {"MY_VAR": "x", "EMPTY": None, "N": 3},
        "partition": "gpu-a100", "memo": "a memo", "notebookId": 12, "plan": {"pairs": []},
    })
    assert (o.name, o.cpu, o.memory, o.gpu) == ("my-notebook-1", 2.5, 4.0, 2)
    assert o.lifetime_hours == 3.5 and o.lifetime_seconds == 3.5 * 3600
    assert o.jupyterlab_version == "1.0.4"
    assert o.image == "registry.example.com/team/lab:2.2.0"
    assert o.dataset_id == 7 and o.local_dataset is True
    assert o.training_ids == [3, 4] and o.inference_ids == [9]
    assert o.git == {"gitId": 1, "owner": "team", "repository": "model", "branch": "main", "commitId": None}
    assert o.startup_command == "pip install -r requirements.txt"
    assert o.env == {"MY_VAR": "x", "EMPTY": "", "N": "3"}
    assert o.partition == "gpu-a100" and o.memo == "a memo" and o.notebook_id == 12 and o.plan == {"pairs": []}
    assert NotebookOptions(**o.to_dict()) == o  # what the spawners keep in their state


def test_kamonohashi_names_are_understood():
    o = parse_options({"parentIds": [5], "gitModel": {"owner": "o", "repository": "r"}, "entryPoint": "echo hi",
                       "options": {"A": "1"}, "localDataSet": True, "dataSetId": None})
    assert o.training_ids == [5] and o.git["repository"] == "r" and o.startup_command == "echo hi"
    assert o.env == {"A": "1"} and o.local_dataset is True


def test_spawn_form_values():
    """A spawn form gives lists of strings; check boxes are 'on'."""
    o = parse_options({"name": ["form-nb"], "cpu": ["2"], "memory": ["0.5"], "gpu": ["1"], "lifetimeEnabled": ["on"],
                       "lifetimeHours": ["2"], "jupyterlabVersion": ["4.2.5"], "datasetId": ["3"],
                       "trainingIds": ["1", "2"], "datasetMethod": ["symlink"]})
    assert (o.name, o.cpu, o.memory, o.gpu, o.lifetime_hours) == ("form-nb", 2.0, 0.5, 1, 2.0)
    assert o.dataset_id == 3 and o.training_ids == [1, 2] and o.local_dataset is False
    for off in ("off", "false", "0", "", False):
        assert parse_options({"lifetimeEnabled": off}, infinite_allowed=True).lifetime_enabled is False


@pytest.mark.parametrize("version", ["1.0.4", "4", "4.2", "4.2.5", "4.2.5.1", "4.0.0a1", "4.0.0b2", "4.0.0rc3",
                                     "3.6.8.post1", "4.3.0.dev0"])
def test_versions_that_are_versions(version):
    assert parse_options({"jupyterlabVersion": version}).jupyterlab_version == version


def test_defaults_from_the_spawner_config():
    o = parse_options({}, default_image="quay.io/jupyter/base-notebook:2025-01-01", default_jupyterlab="4.2.5")
    assert o.image == "quay.io/jupyter/base-notebook:2025-01-01" and o.jupyterlab_version == "4.2.5"
    o = parse_options({"image": "python:3.11", "jupyterlabVersion": "1.0.4"}, default_image="x:1",
                      default_jupyterlab="4.2.5")
    assert o.image == "python:3.11" and o.jupyterlab_version == "1.0.4"


def test_lifetime_off_only_where_allowed():
    o = parse_options({"lifetimeEnabled": False}, infinite_allowed=True)
    assert o.lifetime_enabled is False and o.lifetime_seconds is None
    errors = errors_of({"lifetimeEnabled": False}, infinite_allowed=False)
    assert errors == {"lifetimeEnabled": "this tenant does not allow notebooks without a lifetime"}
    # with a lifetime, the tenant setting does not matter
    assert parse_options({"lifetimeHours": 1}, infinite_allowed=False).lifetime_seconds == 3600


# ------------------------------------------------------------------------------ bad options
BAD = [
    ({"cpu": -1}, "cpu", "must be more than 0"),
    ({"cpu": 0}, "cpu", "must be more than 0"),
    ({"cpu": "two"}, "cpu", "must be a number"),
    ({"cpu": True}, "cpu", "must be a number"),
    ({"cpu": math.nan}, "cpu", "must be a finite number"),
    ({"cpu": "1e400"}, "cpu", "must be a finite number"),
    ({"cpu": [1, 2]}, "cpu", "must be a number"),
    ({"memory": 0}, "memory", "must be more than 0"),
    ({"memory": -0.5}, "memory", "must be more than 0"),
    ({"gpu": -1}, "gpu", "must be at least 0"),
    ({"gpu": 1.5}, "gpu", "must be a whole number"),
    ({"gpu": "one"}, "gpu", "must be a whole number"),
    ({"lifetimeHours": 0}, "lifetimeHours", "must be more than 0"),
    ({"lifetimeHours": -3}, "lifetimeHours", "must be more than 0"),
    ({"lifetimeHours": MAX_LIFETIME_HOURS + 1}, "lifetimeHours", f"must be at most {MAX_LIFETIME_HOURS}"),
    ({"jupyterlabVersion": "latest"}, "jupyterlabVersion", "is not a version such as 4.2.5"),
    ({"jupyterlabVersion": "4.x"}, "jupyterlabVersion", "is not a version"),
    ({"jupyterlabVersion": "4.2.5; rm -rf /"}, "jupyterlabVersion", "is not a version"),
    ({"jupyterlabVersion": ">=4"}, "jupyterlabVersion", "is not a version"),
    ({"jupyterlabVersion": 4.2}, "jupyterlabVersion", "is not a version"),
    ({"image": "python 3.11"}, "image", "must be an image reference"),
    ({"image": "x" * 513}, "image", "must be an image reference"),
    ({"image": ["a", "b"]}, "image", "must be an image reference"),
    ({"name": "My Notebook"}, "name", "lower-case letters"),
    ({"name": "-nb"}, "name", "lower-case letters"),
    ({"name": "a" * 31}, "name", "at most 30"),
    ({"datasetId": 0}, "datasetId", "must be at least 1"),
    ({"datasetId": "abc"}, "datasetId", "must be a whole number"),
    ({"datasetMethod": "hardlink"}, "datasetMethod", "is 'symlink' or 'copy'"),
    ({"trainingIds": ["a"]}, "trainingIds", "must be a list of ids"),
    ({"inferenceIds": [None]}, "inferenceIds", "must be a list of ids"),
    ({"git": {"owner": "team"}}, "git", "must be {gitId, owner, repository, branch, commitId}"),
    ({"git": "team/model"}, "git", "must be {gitId, owner, repository, branch, commitId}"),
    ({"startupCommand": ["ls", "-l"]}, "startupCommand", "must be a command line"),
    ({"env": {"A B": "1"}}, "env", "'A B' is not a valid environment variable name"),
    ({"env": {"1ABC": "1"}}, "env", "is not a valid environment variable name"),
    ({"env": ["A=1"]}, "env", "must be an object of names to values"),
    ({"partition": "gpu a100"}, "partition", "is a partition name"),
    ({"partition": 5}, "partition", "is a partition name"),
    ({"partition": "p" * 64}, "partition", "is a partition name"),
    ({"notebookId": -2}, "notebookId", "must be at least 1"),
    ({"plan": "mount everything"}, "plan", "must be an object"),
]


@pytest.mark.parametrize("raw,field,message", BAD, ids=[f"{b[1]}-{i}" for i, b in enumerate(BAD)])
def test_bad_options_are_refused_with_a_clear_message(raw, field, message):
    errors = errors_of(raw)
    assert set(errors) == {field}, errors
    assert message in errors[field]
    assert str(OptionsError(errors)).startswith(f"{field}: ")


def test_every_problem_is_reported_at_once():
    errors = errors_of({"cpu": -1, "memory": "lots", "gpu": 0.5, "jupyterlabVersion": "new", "lifetimeEnabled": "no"},
                       infinite_allowed=False)
    assert set(errors) == {"cpu", "memory", "gpu", "jupyterlabVersion", "lifetimeEnabled"}
    message = str(OptionsError(errors))
    assert "cpu: must be more than 0" in message and "jupyterlabVersion: 'new' is not a version" in message


def test_options_must_be_an_object():
    assert errors_of(["cpu", 1]) == {"options": "must be an object"}


# ------------------------------------------------------------------------------ signed plans
def test_only_the_service_signs_plans():
    key = plan_key("the-service-secret-key")
    options = {"cpu": 1, "plan": {"outputDir": "/store/t/NotebookContainerOutputFiles/3"}, "notebookId": 3}
    options["planSignature"] = sign_plan(key, "alice", "kqi-3", options)
    assert verify_plan(key, "alice", "kqi-3", options)
    # the JSON the hub passes on is the same options
    assert verify_plan(key, "alice", "kqi-3", {k: options[k] for k in reversed(list(options))})
    assert not verify_plan(key, "bob", "kqi-3", options)  # another user
    assert not verify_plan(key, "alice", "kqi-4", options)  # another server
    assert not verify_plan(key, "alice", "kqi-3", {**options, "cpu": 64})  # changed options
    assert not verify_plan(key, "alice", "kqi-3", {**options, "plan": {"outputDir": "/etc"}})
    assert not verify_plan(plan_key("another-key-of-16+"), "alice", "kqi-3", options)
    assert not verify_plan(None, "alice", "kqi-3", options)
    assert not verify_plan(key, "alice", "kqi-3", {k: v for k, v in options.items() if k != "planSignature"})
    assert not verify_plan(key, "alice", "kqi-3", {**options, "planSignature": 5})


class _User:
    def __init__(self, name):
        self.name = name


def _spawner(user="alice", server="kqi-3", **config):
    from kqi_spawner.local import KqiLocalSpawner

    spawner = KqiLocalSpawner(**config)
    spawner.user = _User(user)  # the hub's user and server record: only their names are read here
    spawner.orm_spawner = orm.Spawner(name=server)
    return spawner


def _apply(spawner, options):
    return asyncio.run(spawner._run_apply_user_options(options))


SECRET = "the-service-secret-key"


def _ticket(options, user="alice", server="kqi-3", now=None, secret=SECRET):
    """Options as the kqi service hands them to the hub (domain/notebooks.py)."""
    return issue_plan(plan_key(secret), user, server, options, now=now)


def test_the_spawners_hook_refuses_bad_options_with_http_400():
    """JupyterHub calls apply_user_options before start(): bad options end the spawn request."""
    spawner = _spawner(plan_secret=SECRET)
    for options in ({"cpu": -1, "jupyterlabVersion": "latest"}, _ticket({"cpu": -1, "jupyterlabVersion": "latest"})):
        with pytest.raises(web.HTTPError) as info:
            _apply(spawner, options)
        assert info.value.status_code == 400
        assert "cpu: must be more than 0" in info.value.log_message
        assert "jupyterlabVersion: 'latest' is not a version" in info.value.log_message
    _apply(spawner, _ticket({"cpu": 2, "lifetimeHours": 1}))
    assert spawner.kqi_options.cpu == 2.0 and spawner.kqi_options.lifetime_seconds == 3600
    # without a plan of a tenant that allows it, no lifetime-less notebook
    with pytest.raises(web.HTTPError) as info:
        _apply(spawner, _ticket({"lifetimeEnabled": False}))
    assert "does not allow notebooks without a lifetime" in info.value.log_message


def test_the_spawner_takes_a_plan_only_with_the_services_signature():
    spawner = _spawner(plan_secret=SECRET)
    options = {"lifetimeEnabled": False, "plan": {"infiniteAllowed": True, "outputDir": "/srv/out/3"}}
    with pytest.raises(web.HTTPError) as info:
        _apply(spawner, options)
    assert info.value.status_code == 400 and "only the kqi service makes plans" in info.value.log_message
    signed = _ticket(options)
    # a spawner without the secret takes no plan at all
    with pytest.raises(web.HTTPError):
        _apply(_spawner(), signed)
    _apply(spawner, signed)
    assert spawner.kqi_options.lifetime_enabled is False and spawner.kqi_options.plan["outputDir"] == "/srv/out/3"


@pytest.mark.parametrize("server", ["kqi-3", ""], ids=["named", "default"])
def test_a_start_without_the_services_plan_is_refused(server):
    """What issue 12 found: a user's own hub token started a server over the tenant quota with plain
    options. Plain options start nothing now, named server or default server."""
    spawner = _spawner(plan_secret=SECRET, server=server)
    with pytest.raises(web.HTTPError) as info:
        _apply(spawner, {"cpu": 4, "memory": 8, "lifetimeHours": 8760})
    assert info.value.status_code == 400
    assert "only the kqi service makes plans" in info.value.log_message
    assert "POST /notebook/run" in info.value.log_message
    where = "alice/kqi-3" if server else "the default server of alice"
    assert f"The server {where} cannot start" in info.value.log_message
    with pytest.raises(web.HTTPError):
        _apply(spawner, {})  # no options at all (the hub's POST /users/alice/server without a body)


def test_a_plan_is_taken_once_and_for_exactly_its_options():
    signed = _ticket({"cpu": 1, "memory": 1, "notebookId": 3, "plan": {"outputDir": "/srv/out/3"}})
    _apply(_spawner(plan_secret=SECRET), signed)
    # replayed: the same spawner or another one of this hub process
    for spawner in (_spawner(plan_secret=SECRET), _spawner(plan_secret=SECRET)):
        with pytest.raises(web.HTTPError) as info:
            _apply(spawner, signed)
        assert info.value.status_code == 400 and "plan was already used" in info.value.log_message
    fresh = _ticket({"cpu": 1, "memory": 1})
    tampered = [{**fresh, "cpu": 64}, {**fresh, "planNonce": "another-nonce"},
                {**fresh, "planIssuedAt": fresh["planIssuedAt"] + 1}, {**fresh, "lifetimeHours": 8760},
                {k: v for k, v in fresh.items() if k != "planNonce"}]
    for options in tampered:
        with pytest.raises(web.HTTPError) as info:
            _apply(_spawner(plan_secret=SECRET), options)
        assert "only the kqi service makes plans" in info.value.log_message, options
    # signed for another server or user
    for spawner in (_spawner(plan_secret=SECRET, server="kqi-4"), _spawner(plan_secret=SECRET, user="bob")):
        with pytest.raises(web.HTTPError) as info:
            _apply(spawner, fresh)
        assert "only the kqi service makes plans" in info.value.log_message
    _apply(_spawner(plan_secret=SECRET), fresh)  # untouched, it still starts (once)


def test_an_old_plan_is_refused():
    spawner = _spawner(plan_secret=SECRET)
    old = _ticket({"cpu": 1}, now=time.time() - spawner.plan_max_age_seconds - 1)
    with pytest.raises(web.HTTPError) as info:
        _apply(spawner, old)
    assert "plan for this start has expired" in info.value.log_message
    future = _ticket({"cpu": 1}, now=time.time() + 600)
    with pytest.raises(web.HTTPError) as info:
        _apply(spawner, future)
    assert "plan for this start has expired" in info.value.log_message
    short = _spawner(plan_secret=SECRET, plan_max_age_seconds=5)
    with pytest.raises(web.HTTPError):
        _apply(short, _ticket({"cpu": 1}, now=time.time() - 6))
    _apply(short, _ticket({"cpu": 1}, now=time.time() - 2))


def test_the_plan_ledger():
    key = plan_key(SECRET)
    ledger = PlanLedger(max_age=60, started_at=1000.0, skew=5)
    ticket = issue_plan(key, "alice", "kqi-1", {"cpu": 1}, now=1010.0)
    assert ledger.admit(key, "alice", "kqi-1", ticket, now=1011.0) is None
    assert "already used" in ledger.admit(key, "alice", "kqi-1", ticket, now=1012.0)
    # a plan made before this hub process started (a hub restart forgets which plans were used)
    before = issue_plan(key, "alice", "kqi-1", {"cpu": 1}, now=990.0)
    assert "expired" in ledger.admit(key, "alice", "kqi-1", before, now=1011.0)
    late = issue_plan(key, "alice", "kqi-1", {"cpu": 1}, now=1020.0)
    assert "expired" in ledger.admit(key, "alice", "kqi-1", late, now=1081.0)
    assert ledger.admit(key, "alice", "kqi-1", late, now=1079.0) is None
    # used nonces are forgotten once their plans could not be taken anyway
    assert ledger._used and ledger.admit(key, "alice", "kqi-1", issue_plan(key, "alice", "kqi-1", {}, now=2000.0),
                                         now=2000.0) is None
    assert list(ledger._used.values()) == [2065.0]
    assert ledger.admit(None, "alice", "kqi-1", ticket) == NOT_PLANNED
    assert ledger.admit(key, "alice", "kqi-1", "not options") == NOT_PLANNED


def test_start_runs_only_after_the_hub_admitted_the_plan():
    """Whatever apply_user_options is configured to, start() needs this start's admitted plan, once."""
    spawner = _spawner(plan_secret=SECRET)
    spawner.user_options = _ticket({"cpu": 1})
    with pytest.raises(web.HTTPError, match="only the kqi service makes plans"):
        spawner.take_admission()
    _apply(spawner, spawner.user_options)
    spawner.take_admission()
    with pytest.raises(web.HTTPError, match="only the kqi service makes plans"):
        spawner.take_admission()
