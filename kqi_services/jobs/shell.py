"""A terminal into a running job's container: what the web shell talks to, whichever backend.

`JobBackend.open_shell(key, rows, cols)` gives a `Shell`: bytes in (`write`), bytes out
(`read`, None at the end), a terminal size (`resize`) and `close`. Locally it is
`podman exec -it <container> sh` under a pseudo-terminal (`PtyShell`, ptyprocess), so a
resize is a TIOCSWINSZ on the pty that podman carries into the container's terminal; on
Kubernetes it is the pods/exec API over a WebSocket (`KubeExecShell`, kubernetes_asyncio's
WsApiClient) with stdin, stdout and a tty, a resize on channel 4.

The command lines and the exec call are built by pure functions (`podman_exec_args`,
`kube_exec_call`), tested without podman or a cluster.
"""
from __future__ import annotations

import asyncio
import json
import os
from typing import Protocol

#: what runs in the container: bash when the image has it, else sh
SHELL_COMMAND = ["/bin/sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi"]
TERM = "xterm-256color"
#: the variable that marks the processes of one shell session in the container
MARKER_VARIABLE = "KQI_SHELL_SESSION"


def new_marker() -> str:
    import uuid

    return uuid.uuid4().hex


def shell_command(marker: str) -> list[str]:
    """The shell, its processes marked by `KQI_SHELL_SESSION=<marker>` in their environment.

    Neither podman nor every container runtime ends an exec'd process when its client goes
    away (the exec session keeps its terminal): `end_command` finds the marked processes
    and ends them when the socket closes.
    """
    if not marker.isalnum():
        raise ValueError("a marker is letters and digits")
    return ["/bin/sh", "-c", f"{MARKER_VARIABLE}={marker}; export {MARKER_VARIABLE}; {SHELL_COMMAND[2]}"]


def end_command(marker: str) -> list[str]:
    """A command run in the container that hangs up, then kills, every process of a shell session."""
    if not marker.isalnum():
        raise ValueError("a marker is letters and digits")
    script = ("for sig in HUP KILL; do for p in /proc/[0-9]*; do"
              f' case "$(cat $p/environ 2>/dev/null)" in *{MARKER_VARIABLE}={marker}*) kill -$sig "${{p#/proc/}}"'
              " 2>/dev/null;; esac; done; sleep 0.3; done")
    return ["/bin/sh", "-c", script]

# the Kubernetes exec WebSocket's channels (v4.channel.k8s.io)
STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4


class Shell(Protocol):
    async def read(self) -> bytes | None: ...  # output of the terminal; None once it ended
    def write(self, data: bytes) -> None: ...  # keystrokes
    def resize(self, rows: int, cols: int) -> None: ...
    async def close(self) -> None: ...


def clamp_size(rows, cols) -> tuple[int, int]:
    """A terminal size a pty accepts (1..1000 each); bad values give 24x80."""
    try:
        rows, cols = int(rows), int(cols)
    except (TypeError, ValueError):
        return 24, 80
    return max(1, min(rows, 1000)), max(1, min(cols, 1000))


# ----------------------------------------------------------------------------- podman
def podman_exec_args(podman: str, container: str, command: list[str] = SHELL_COMMAND) -> list[str]:
    """`podman exec` of an interactive root shell in the container (pure)."""
    return [podman, "exec", "--interactive", "--tty", "--user", "0:0", "--env", f"TERM={TERM}",
            "--workdir", "/kqi", container, *command]


class PtyShell:
    """A local program (podman exec) under a pseudo-terminal, read on the event loop."""

    def __init__(self, argv: list[str], env: dict, rows: int = 24, cols: int = 80, on_close=None):
        from ptyprocess import PtyProcess

        self.on_close = on_close  # a blocking function run (in a thread) once the shell closes

        self.loop = asyncio.get_running_loop()
        self.proc = PtyProcess.spawn(argv, env=env, dimensions=clamp_size(rows, cols))
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.closed = False
        os.set_blocking(self.proc.fd, False)
        self.loop.add_reader(self.proc.fd, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.proc.fd, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: the program ended and the pty closed
            data = b""
        if data:
            self.queue.put_nowait(data)
        else:
            self._ended()

    def _ended(self) -> None:
        if not self.closed:
            self.closed = True
            self.loop.remove_reader(self.proc.fd)
            self.queue.put_nowait(None)

    async def read(self) -> bytes | None:
        return await self.queue.get()

    def write(self, data: bytes) -> None:
        if self.closed:
            return
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.proc.fd, view)
            except BlockingIOError:
                continue
            except OSError:
                return
            view = view[n:]

    def resize(self, rows: int, cols: int) -> None:
        if not self.closed:
            self.proc.setwinsize(*clamp_size(rows, cols))  # TIOCSWINSZ: podman passes it on

    async def close(self) -> None:
        self._ended()
        loop = asyncio.get_running_loop()
        if self.proc.isalive():
            await loop.run_in_executor(None, self.proc.terminate, True)
        try:
            self.proc.close(force=True)
        except Exception:
            pass
        if self.on_close is not None:
            on_close, self.on_close = self.on_close, None
            await loop.run_in_executor(None, on_close)


# ----------------------------------------------------------------------------- kubernetes
def kube_exec_call(pod: str, namespace: str, container: str, command: list[str] = SHELL_COMMAND,
                   interactive: bool = True) -> dict:
    """Keyword arguments of CoreV1Api.connect_get_namespaced_pod_exec (pure): an interactive
    shell (a tty, stdin and stdout; with a tty Kubernetes merges stderr into stdout), or a
    command whose output is read whole (interactive=False)."""
    if not interactive:
        return {"name": pod, "namespace": namespace, "container": container, "command": list(command),
                "stdin": False, "stdout": True, "stderr": True, "tty": False}
    return {"name": pod, "namespace": namespace, "container": container, "command": list(command),
            "stdin": True, "stdout": True, "stderr": False, "tty": True, "_preload_content": False}


def resize_message(rows: int, cols: int) -> bytes:
    """The channel-4 message that resizes the exec's terminal."""
    rows, cols = clamp_size(rows, cols)
    return bytes([RESIZE]) + json.dumps({"Width": cols, "Height": rows}).encode()


class KubeExecShell:
    """The pods/exec WebSocket of a pod, on the caller's event loop (its own WsApiClient)."""

    def __init__(self, configuration, call: dict, rows: int = 24, cols: int = 80, end_call: dict | None = None):
        self.configuration, self.call, self.end_call = configuration, call, end_call
        self.size = clamp_size(rows, cols)
        self.ws = None
        self.api_client = None
        self.closed = False

    async def start(self) -> "KubeExecShell":
        from kubernetes_asyncio import client
        from kubernetes_asyncio.stream import WsApiClient

        self.api_client = WsApiClient(configuration=self.configuration)
        api = client.CoreV1Api(api_client=self.api_client)
        self.ws = await api.connect_get_namespaced_pod_exec(**self.call)
        if hasattr(self.ws, "__aenter__") and not hasattr(self.ws, "send_bytes"):
            self.ws = await self.ws.__aenter__()
        self.resize(*self.size)
        return self

    async def read(self) -> bytes | None:
        import aiohttp

        while not self.closed:
            msg = await self.ws.receive()
            if msg.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                data = msg.data if isinstance(msg.data, bytes) else msg.data.encode()
                if len(data) > 1 and data[0] in (STDOUT, STDERR):
                    return data[1:]
                if len(data) > 1 and data[0] == ERROR:
                    return None  # the command ended (its status)
                continue
            return None
        return None

    def write(self, data: bytes) -> None:
        if not self.closed and self.ws is not None:
            asyncio.ensure_future(self.ws.send_bytes(bytes([STDIN]) + data))

    def resize(self, rows: int, cols: int) -> None:
        if not self.closed and self.ws is not None:
            asyncio.ensure_future(self.ws.send_bytes(resize_message(rows, cols)))

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            if self.ws is not None:
                await self.ws.close()
            if self.end_call is not None and self.api_client is not None:
                from kubernetes_asyncio import client

                await client.CoreV1Api(api_client=self.api_client).connect_get_namespaced_pod_exec(**self.end_call)
        finally:
            if self.api_client is not None:
                await self.api_client.close()
