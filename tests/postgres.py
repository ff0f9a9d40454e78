"""A throw-away PostgreSQL cluster from Debian's packages, on loopback, for the tests that need one.

Set GENSTUDIO_TEST_POSTGRES_URL to use an existing server instead. Without either, those tests skip.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def postgres_server() -> Iterator[str | None]:
    """Yield a SQLAlchemy URL of an empty database, or None when PostgreSQL is not available."""
    if os.environ.get("GENSTUDIO_TEST_POSTGRES_URL"):
        yield os.environ["GENSTUDIO_TEST_POSTGRES_URL"]
        return
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if not initdb or not pg_ctl:
        yield None
        return
    base = Path(tempfile.mkdtemp(prefix="genstudio-pg-"))
    data = base / "data"
    port = _free_port()
    # PostgreSQL refuses to run as root: run it as the 'postgres' user the package created.
    prefix: list[str] = []
    if os.geteuid() == 0:
        if not shutil.which("runuser"):
            yield None
            return
        shutil.chown(base, "postgres")
        base.chmod(0o755)
        prefix = ["runuser", "-u", "postgres", "--"]
    try:
        subprocess.run([*prefix, initdb, "-D", str(data), "-A", "trust", "-U", "genstudio", "--no-sync"],
                       check=True, capture_output=True, timeout=120)
        opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off"
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w", "start"],
                       check=True, capture_output=True, timeout=120)
    except (subprocess.SubprocessError, OSError):
        shutil.rmtree(base, ignore_errors=True)
        yield None
        return
    try:
        url = f"postgresql://genstudio@127.0.0.1:{port}/postgres"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield url
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)
