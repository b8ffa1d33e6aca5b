"""The official kamonohashi-cli (`kqi`) against a real KQI Hub: account and tenant commands."""
from __future__ import annotations

import json
import os
import re



def tenant_ids(output: str) -> dict[str, int]:
    """Parse `kqi tenant list` (a table: id name display_name storage_path)."""
    rows = {}
    for line in output.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit():
            rows[parts[1]] = int(parts[0])
    return rows


def test_login_get_and_switch_tenant(platform, cli_home):
    team = platform.create_tenant()
    name, password = platform.create_user(tenants=["sandbox", team["name"]])

    out = platform.cli(cli_home, "account", "login", "-s", platform.service_url, "-u", name, "-p", password).stdout
    assert f"user name: {name}" in out
    assert "tenant: Sandbox" in out  # the tenant's display name, as `account get` (and KAMONOHASHI's login)
    config = json.load(open(os.path.join(cli_home, ".kqi", "config.json")))
    assert config["server"] == platform.service_url
    first_token = config["token"]

    out = platform.cli(cli_home, "account", "get").stdout
    assert re.search(r"selected tenant: 1 Sandbox", out)
    assert f"{team['id']} {team['displayName']}" in out

    out = platform.cli(cli_home, "account", "switch-tenant", str(team["id"])).stdout
    assert f"selected tenant: {team['id']} {team['displayName']}" in out
    out = platform.cli(cli_home, "account", "get").stdout
    assert f"selected tenant: {team['id']} {team['displayName']}" in out
    # the first token still acts in the first tenant: the tenant travels with the token
    r = platform.api("GET", "/account", first_token)
    assert r.json()["selectedTenant"]["name"] == "sandbox"


def test_login_to_chosen_tenant_and_wrong_password(platform, cli_home):
    team = platform.create_tenant()
    name, password = platform.create_user(tenants=[team["name"]])
    out = platform.cli(cli_home, "account", "login", "-s", platform.service_url, "-u", name, "-p", password,
                       "-t", str(team["id"])).stdout
    assert f"tenant: {team['displayName']}" in out

    bad = platform.cli(cli_home, "account", "login", "-s", platform.service_url, "-u", name, "-p", "wrong-pass",
                       check=False)
    assert bad.returncode != 0
    assert "401" in bad.stdout + bad.stderr
    assert "user name or the password is wrong" in bad.stdout + bad.stderr


def test_tenant_commands(platform, cli_home):
    platform.cli(cli_home, "account", "login", "-s", platform.service_url, "-u", "admin", "-p",
                 platform.admin_password)
    out = platform.cli(cli_home, "tenant", "create", "-n", "cli-team", "-dn", "CLI Team", "-gid", "1", "-rid", "1",
                       "-sid", "1").stdout
    created = int(re.search(r"created (\d+)", out).group(1))
    ids = tenant_ids(platform.cli(cli_home, "tenant", "list").stdout)
    assert ids["cli-team"] == created
    # the tenant is a hub group with its roles
    group = platform.hub("GET", "/groups/cli-team")
    assert group.status_code == 200
    roles = platform.hub("GET", "/kqi/tenants/cli-team").json()
    assert roles["name"] == "cli-team"

    out = platform.cli(cli_home, "tenant", "get", str(created)).stdout
    assert "display_name: CLI Team" in out
    assert "storage_path: tenants/cli-team" in out

    platform.cli(cli_home, "tenant", "update", str(created), "-dn", "CLI Team 2", "-gid", "1", "-rid", "1",
                 "-sid", "1")
    assert "display_name: CLI Team 2" in platform.cli(cli_home, "tenant", "get", str(created)).stdout

    out = platform.cli(cli_home, "tenant", "delete", str(created)).stdout
    assert f"deleted {created}" in out
    assert "cli-team" not in tenant_ids(platform.cli(cli_home, "tenant", "list").stdout)
    assert platform.hub("GET", "/groups/cli-team").status_code == 404

    missing = platform.cli(cli_home, "tenant", "get", str(created), check=False)
    assert missing.returncode != 0 and "404" in missing.stdout + missing.stderr


def test_tenant_user_cannot_use_tenant_commands(platform, cli_home):
    name, password = platform.create_user(tenants=["sandbox"])
    platform.cli(cli_home, "account", "login", "-s", platform.service_url, "-u", name, "-p", password)
    result = platform.cli(cli_home, "tenant", "list", check=False)
    assert result.returncode != 0
    assert "403" in result.stdout + result.stderr
