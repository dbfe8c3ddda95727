"""Builds the real agentlog binary and runs it as a process for the
integration tests (as internal/proctest does for the Go tests)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


class Binary:
    """The agentlog command, built once by ``go build``."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="agentlog-py-bin")
        self.path = os.path.join(self.dir, "agentlog")
        out = subprocess.run(["go", "build", "-o", self.path, "./cmd/agentlog"], cwd=REPO, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"go build ./cmd/agentlog: {out.stderr}")

    def cli(self, *args: str) -> str:
        """Runs the CLI and returns its stdout; a non-zero exit raises."""
        out = subprocess.run([self.path, *args], capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"agentlog {' '.join(args)}: exit {out.returncode}: {out.stderr}")
        return out.stdout

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class Server:
    """An agentlog serve process on a data directory."""

    def __init__(self, binary: Binary, data: str, listen: str = "127.0.0.1:0") -> None:
        self.binary, self.data = binary, data
        self.proc = subprocess.Popen(
            [binary.path, "serve", "--data", data, "--listen", listen, "--anomaly=false", "--log-level", "warn"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # blocks until the server is ready (or exits)
        if not line.startswith("agentlog listening on "):
            self.kill()
            raise RuntimeError(f"agentlog serve did not start: {line!r}")
        self.url = line.split()[3]
        self.addr = self.url.split("://", 1)[1]

    def kill(self) -> None:
        """SIGKILL, and wait for the process to be gone."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()

    def restart(self) -> "Server":
        """Kills the server and starts it again on the same address and data."""
        self.kill()
        return Server(self.binary, self.data, self.addr)

    @property
    def admin_token_file(self) -> str:
        return os.path.join(self.data, "admin.token")

    def read(self, name: str) -> str:
        return Path(self.data, name).read_text()
