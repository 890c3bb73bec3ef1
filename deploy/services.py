"""Background abstream processes (a jobs worker, the sink) started by a command that then returns.

Each service records its pid and command line in ``<directory>/<name>.pid.json`` and logs to
``<directory>/<name>.log``. ``stop`` signals exactly that pid, after checking that the process still
runs the recorded command line (a recycled pid is never signalled).

    sink = Service("sink", directory, [sys.executable, "-m", "abstream", "sink", "run"], env=env)
    sink.start()
    ...
    sink.stop()
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["Service"]

_children: dict[int, subprocess.Popen[bytes]] = {}  # started here: reaped on stop


class Service:
    def __init__(
        self, name: str, directory: Path, command: Sequence[str], *, env: Mapping[str, str] | None = None
    ) -> None:
        self.name = name
        self.directory = directory
        self.command = list(command)
        self.env = dict(env) if env is not None else None

    @property
    def state_file(self) -> Path:
        return self.directory / f"{self.name}.pid.json"

    @property
    def log_file(self) -> Path:
        return self.directory / f"{self.name}.log"

    def pid(self) -> int | None:
        """The recorded pid, if that process still runs the recorded command."""
        try:
            recorded = json.loads(self.state_file.read_text())
            cmdline = Path(f"/proc/{recorded['pid']}/cmdline").read_bytes().split(b"\0")[:-1]
        except (OSError, ValueError, KeyError):
            return None
        return int(recorded["pid"]) if [c.decode() for c in cmdline] == recorded["command"] else None

    def start(self) -> int:
        """Start the process in its own session (it outlives this one); returns its pid."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        _children[proc.pid] = proc
        self.state_file.write_text(json.dumps({"pid": proc.pid, "command": self.command}))
        return proc.pid

    def exited(self) -> int | None:
        """The exit code if this process (started here) has ended, else None."""
        proc = next((p for p in _children.values() if p.args == self.command), None)
        return None if proc is None else proc.poll()

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM, then SIGKILL after ``timeout``; False when it was not running."""
        return self._end(signal.SIGTERM, timeout)

    def kill(self) -> bool:
        """SIGKILL at once, as a crash would end it (fault tests); False when it was not running."""
        return self._end(signal.SIGKILL, 10.0)

    def _end(self, sig: signal.Signals, timeout: float) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, sig)
        if not self._gone(pid, timeout):
            os.kill(pid, signal.SIGKILL)
            self._gone(pid, 10.0)
        if (child := _children.pop(pid, None)) is not None:
            child.wait()
        self.state_file.unlink(missing_ok=True)
        return True

    def _gone(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            child = _children.get(pid)
            if (child.poll() is not None) if child is not None else self.pid() != pid:
                return True
            time.sleep(0.1)
        return False

    def tail(self, lines: int = 30) -> str:
        if not self.log_file.exists():
            return ""
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
