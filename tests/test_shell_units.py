"""The web shell's pure parts and the pseudo-terminal under it, without a hub, podman or a cluster."""
from __future__ import annotations

import asyncio
import json

from kqi_services.api.shell import parse_message, same_origin
from kqi_services.jobs.shell import (RESIZE, SHELL_COMMAND, PtyShell, clamp_size, kube_exec_call, podman_exec_args,
                                     resize_message)


def test_kube_exec_call_is_an_interactive_tty_exec_of_the_job_container():
    call = kube_exec_call("training-7-abcde", "kqi", "main")
    assert call == {"name": "training-7-abcde", "namespace": "kqi", "container": "main",
                    "command": SHELL_COMMAND, "stdin": True, "stdout": True, "stderr": False, "tty": True,
                    "_preload_content": False}
    # the arguments are the ones CoreV1Api.connect_get_namespaced_pod_exec takes
    import inspect

    from kubernetes_asyncio.client import CoreV1Api

    params = inspect.signature(CoreV1Api.connect_get_namespaced_pod_exec_with_http_info).parameters
    source = inspect.getsource(CoreV1Api.connect_get_namespaced_pod_exec_with_http_info)
    assert {"name", "namespace"} <= set(params)
    for key in ("container", "command", "stdin", "stdout", "stderr", "tty", "_preload_content"):
        assert f"'{key}'" in source, key
    assert call["command"] is not SHELL_COMMAND  # a copy: the caller cannot change the default


def test_resize_goes_on_channel_4_as_width_and_height():
    msg = resize_message(40, 120)
    assert msg[0] == RESIZE == 4
    assert json.loads(msg[1:]) == {"Width": 120, "Height": 40}
    assert json.loads(resize_message(0, 99999)[1:]) == {"Width": 1000, "Height": 1}


def test_podman_exec_is_root_with_a_tty():
    args = podman_exec_args("podman", "kqi-x-training-3")
    assert args[:2] == ["podman", "exec"]
    assert "--interactive" in args and "--tty" in args
    assert args[args.index("--user") + 1] == "0:0"
    assert args[args.index("kqi-x-training-3") + 1:] == SHELL_COMMAND


def test_sizes_and_messages():
    assert clamp_size("30", "100") == (30, 100)
    assert clamp_size("x", None) == (24, 80)
    assert parse_message('["stdin", "ls\\r"]') == ("stdin", ["ls\r"])
    assert parse_message('["set_size", 10, 20]') == ("set_size", [10, 20])
    assert parse_message("not json") is None and parse_message("{}") is None and parse_message("[1]") is None


def test_same_origin():
    assert same_origin(None, "hub.example:8000")
    assert same_origin("http://hub.example:8000", "hub.example:8000")
    assert same_origin("https://HUB.example:8000", "hub.example:8000")
    assert not same_origin("http://evil.example", "hub.example:8000")
    assert not same_origin("http://hub.example:8001", "hub.example:8000")
    assert not same_origin("null", "hub.example:8000")


def test_pty_shell_carries_input_output_and_resize():
    async def run():
        shell = PtyShell(["/bin/sh"], {"PATH": "/usr/bin:/bin", "TERM": "xterm", "PS1": "$ "}, 24, 80)
        out = b""

        async def until(text: bytes):
            nonlocal out
            while text not in out:
                data = await asyncio.wait_for(shell.read(), 10)
                assert data is not None, out
                out += data

        shell.write(b"echo hi-$((1+1))\n")
        await until(b"hi-2")
        shell.resize(33, 101)
        shell.write(b"stty size\n")
        await until(b"33 101")
        shell.write(b"exit\n")
        while await asyncio.wait_for(shell.read(), 10) is not None:
            pass
        await shell.close()

    asyncio.run(run())


def test_end_command_ends_the_marked_processes_only():
    import os
    import subprocess
    import time

    from kqi_services.jobs.shell import end_command, new_marker, shell_command

    marker, other = new_marker(), new_marker()
    mine = subprocess.Popen(shell_command(marker)[:2] + [f"{shell_command(marker)[2].split(';')[0]}; export"
                                                          f" KQI_SHELL_SESSION; sleep 60 & sleep 60"])
    theirs = subprocess.Popen(["/bin/sh", "-c", f"KQI_SHELL_SESSION={other}; export KQI_SHELL_SESSION; sleep 60"])
    try:
        time.sleep(0.3)
        subprocess.run(end_command(marker), check=True, timeout=10)
        assert mine.wait(5) is not None
        assert theirs.poll() is None
    finally:
        theirs.kill()
        mine.kill()
    import pytest

    with pytest.raises(ValueError):
        end_command("x; rm -rf /")
    assert os.path.exists("/proc/self/environ")
