"""The Kafka jars `agora infra` runs, fetched once from Maven Central per version and pom, and
the Java that runs them (see `agora.infra.kafka` for where they are cached)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from agora.infra.errors import InfraError
from agora.infra.processes import exclusive, run_logged, say

__all__ = [
    "cache_dir",
    "cached_lib",
    "fetch_jars",
    "find_java",
    "java_major",
    "lib_dir",
    "pinned_version",
    "pom_digest",
    "pom_path",
]


def pom_path() -> Path:
    """`$AGORA_KAFKA_POM`, else `deploy/kafka/pom.xml` of the source tree this module is in."""
    configured = os.environ.get("AGORA_KAFKA_POM")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[3] / "deploy" / "kafka" / "pom.xml"


def pinned_version(pom: Path) -> str:
    """The `kafka.version` property of the pom."""
    try:
        tree = ET.parse(pom)
    except (OSError, ET.ParseError) as error:
        raise InfraError(f"cannot read the Kafka pom {pom}: {error}") from None
    found = tree.getroot().find(
        "{http://maven.apache.org/POM/4.0.0}properties/"
        "{http://maven.apache.org/POM/4.0.0}kafka.version"
    )
    if found is None or not (found.text or "").strip():
        raise InfraError(f"{pom} has no <kafka.version> property")
    return (found.text or "").strip()


def cache_dir(version: str) -> Path:
    """Where the jars of Kafka `version` are kept: `$AGORA_KAFKA_CACHE/kafka-<version>`, default
    `~/.cache/agora/kafka-<version>`."""
    base = os.environ.get("AGORA_KAFKA_CACHE") or str(Path.home() / ".cache" / "agora")
    return Path(base).expanduser().absolute() / f"kafka-{version}"


def pom_digest(pom: Path) -> str:
    """A digest of what the pom says (canonical XML without comments or layout whitespace), so
    that editing a comment does not fetch the jars again."""
    canonical = ET.canonicalize(from_file=str(pom), with_comments=False, strip_text=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def lib_dir(pom: Path) -> Path:
    """The jar folder for this pom: `<cache_dir>/<pom digest>/lib`. A changed pom gets a folder
    of its own, so that brokers still running on the old jars keep them."""
    return cache_dir(pinned_version(pom)) / pom_digest(pom) / "lib"


def cached_lib(pom: Path) -> Path | None:
    """The jar folder for this pom if a fetch of it completed (its `complete` file, written
    last, exists), else None."""
    lib = lib_dir(pom)
    return lib if (lib.parent / "complete").exists() else None


def fetch_jars(pom: Path, *, log: Path) -> Path:
    """The folder of every runtime jar of the pom, fetched with Maven unless already complete
    in the cache. Safe against an interrupted earlier fetch and against concurrent fetchers."""
    found = cached_lib(pom)
    if found is not None:
        return found
    version = pinned_version(pom)
    lib = lib_dir(pom)
    lib.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(lib.parent.parent / ".lock"):
        found = cached_lib(pom)  # another process may have fetched it meanwhile
        if found is not None:
            return found
        mvn = shutil.which("mvn")
        if mvn is None:
            raise InfraError("Maven (`mvn`) is not installed (Debian package `maven`)")
        marker, staging = lib.parent / "complete", lib.parent / "lib.partial"
        shutil.rmtree(staging, ignore_errors=True)
        say(
            f"fetching Apache Kafka {version} and its dependencies with Maven into {lib} "
            f"(once per version; log {log})"
        )
        started = time.monotonic()
        run_logged(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={staging}",
            ],
            log=log,
            what="mvn dependency:copy-dependencies (Kafka jars)",
            timeout=1800,
        )
        if not (staging / f"kafka_2.13-{version}.jar").exists():
            raise InfraError(f"Maven finished but {staging} has no kafka_2.13-{version}.jar")
        shutil.rmtree(lib, ignore_errors=True)
        staging.rename(lib)
        marker.write_text(f"{version}\n")
        say(f"fetched {len(list(lib.glob('*.jar')))} jars in {time.monotonic() - started:.0f} s")
    return lib


def find_java() -> str | None:
    """`$JAVA_HOME/bin/java`, else `java` on PATH, else None."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def java_major(java: str) -> int:
    """The major version of a `java` binary (17 for "17.0.15")."""
    result = subprocess.run(
        [java, "-version"], check=False, capture_output=True, text=True, timeout=60
    )
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr + result.stdout)
    if match is None:
        raise InfraError(f"cannot tell the version of {java}: {result.stderr.strip()}")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major
