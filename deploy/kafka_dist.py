"""The Apache Kafka broker jars, resolved from Maven Central by ``deploy/kafka/pom.xml``.

The jars land in a cache directory keyed by the pom's content, so changing the pinned version
fetches a fresh set and an interrupted download is never mistaken for a complete one.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from abstream.errors import LocalKafkaError

__all__ = ["KafkaDist", "java_major_version", "kafka_resource"]

_MIN_JAVA = 17


def kafka_resource(name: str) -> Path:
    return Path(str(resources.files("deploy") / "kafka" / name))


def java_major_version(java: str) -> int:
    """The major version of a ``java`` binary (``17`` for ``openjdk version "17.0.15"``)."""
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        raise LocalKafkaError(f"could not read the Java version from `{java} -version`: {out.strip()!r}")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


class KafkaDist:
    """A Kafka broker distribution in ``cache_dir``: fetched once, then reused."""

    def __init__(self, cache_dir: Path, *, pom: Path | None = None) -> None:
        self.pom = pom or kafka_resource("pom.xml")
        digest = hashlib.sha256(self.pom.read_bytes()).hexdigest()[:12]
        self.home = cache_dir / "kafka" / f"{self.version}-{digest}"

    @property
    def version(self) -> str:
        match = re.search(r"<kafka.version>([^<]+)</kafka.version>", self.pom.read_text())
        if not match:
            raise LocalKafkaError(f"{self.pom}: no <kafka.version> property")
        return match.group(1)

    @property
    def libs(self) -> Path:
        return self.home / "libs"

    @property
    def log4j_config(self) -> Path:
        return kafka_resource("log4j2.properties")

    @property
    def is_fetched(self) -> bool:
        return (self.home / ".complete").exists()

    def java(self) -> str:
        """The ``java`` to run the broker with; fails clearly when missing or older than 17."""
        java = shutil.which("java")
        if java is None:
            raise LocalKafkaError(
                "`java` was not found on PATH. Kafka needs Java 17 or newer: "
                "install it (e.g. `apt-get install openjdk-17-jre-headless`) and try again."
            )
        if (major := java_major_version(java)) < _MIN_JAVA:
            raise LocalKafkaError(f"{java} is Java {major}; Kafka {self.version} needs Java {_MIN_JAVA}+.")
        return java

    def fetch(self, on_artifact: Callable[[str], None] | None = None) -> Path:
        """Resolve the jars with Maven unless already complete; returns the libs directory.

        ``on_artifact`` is called with each artifact Maven downloads (for a progress display).
        """
        if self.is_fetched:
            return self.libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise LocalKafkaError(
                "`mvn` (Apache Maven) was not found on PATH; it resolves the Kafka broker from Maven "
                "Central. Install it (e.g. `apt-get install maven`) and try again."
            )
        self.java()
        staging = self.home.with_name(self.home.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        command = [
            mvn, "-B", "-f", str(self.pom), "dependency:copy-dependencies",
            f"-DoutputDirectory={staging / 'libs'}",
        ]  # fmt: skip
        self._run_maven(command, on_artifact)
        shutil.rmtree(self.home, ignore_errors=True)
        staging.rename(self.home)
        (self.home / ".complete").write_text(self.version + "\n")
        return self.libs

    @staticmethod
    def _run_maven(command: list[str], on_artifact: Callable[[str], None] | None) -> None:
        tail: list[str] = []
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                tail = [*tail[-39:], line.rstrip()]
                if on_artifact and (match := re.search(r"Downloaded from \S+: (\S+)", line)):
                    on_artifact(match.group(1).rsplit("/", 1)[-1])
        if proc.returncode != 0:
            raise LocalKafkaError(
                f"Maven could not resolve the Kafka broker (exit {proc.returncode}): " + " ".join(command),
                log_tail="\n".join(tail),
            )
