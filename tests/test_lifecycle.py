"""Starting, stopping and restarting the embedded platform."""
from __future__ import annotations

import os
import signal
import time

import requests

from .platform import new_platform, remove_tree


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read().decode(errors="replace")
        except OSError:
            continue
        if text in cmdline or text in environ:
            found.append(int(pid))
    return found


def test_ctrl_c_stops_everything_and_state_survives_a_restart(tmp_path):
    plat = new_platform(str(tmp_path))
    plat.start()
    try:
        token = plat.admin_token()
        team = plat.create_tenant("lifecycle-team", token=token)
        # hub, proxy and service all run and carry the data directory in their environment
        assert len(_processes_mentioning(plat.data_dir)) >= 3

        # Ctrl-C in a terminal sends SIGINT to the whole foreground process group
        os.killpg(plat.process.pid, signal.SIGINT)
        plat.process.wait(timeout=30)
        deadline = time.monotonic() + 15
        while _processes_mentioning(plat.data_dir) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _processes_mentioning(plat.data_dir) == []
        try:
            requests.get(plat.api_url + "/version", timeout=2)
            reachable = True
        except requests.RequestException:
            reachable = False
        assert not reachable

        # a second start reuses the data directory: same tenants, same admin password, no new one printed
        plat.env.pop("KQI_ADMIN_PASSWORD")
        plat.start()
        token = plat.admin_token()
        names = [t["name"] for t in plat.api("GET", "/admin/tenants", token).json()]
        assert names.count("sandbox") == 1 and "lifecycle-team" in names
        assert plat.api("GET", f"/admin/tenants/{team['id']}", token).status_code == 200
        assert "the administrator is 'admin' with the password" not in open(plat.log_path).read()
    finally:
        plat.stop()
        remove_tree(str(tmp_path))


def test_first_start_prints_a_generated_password(tmp_path):
    plat = new_platform(str(tmp_path))
    plat.env.pop("KQI_ADMIN_PASSWORD")
    plat.admin_password = None
    log_path = os.path.join(plat.data_dir, "platform.log")
    plat.log_path = log_path
    import subprocess

    from .platform import VENV_BIN

    proc = subprocess.Popen([os.path.join(VENV_BIN, "kqi-hub"), "--port", str(plat.port), "--data-dir",
                             plat.data_dir], env=plat.env, stdout=open(log_path, "wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    plat.process = proc
    try:
        deadline = time.monotonic() + 30
        password = None
        while time.monotonic() < deadline and password is None:
            for line in open(log_path, errors="replace"):
                if "the administrator is 'admin' with the password" in line:
                    password = line.rsplit(" ", 1)[1].strip()
            time.sleep(0.2)
        assert password
        plat.admin_password = password
        while time.monotonic() < deadline + 30 and not plat._first_tenant_ready():
            time.sleep(0.3)
        assert plat.login("admin", password)
    finally:
        plat.stop()
        remove_tree(str(tmp_path))
