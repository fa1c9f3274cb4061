"""A throwaway PostgreSQL server for tests: initdb into a temporary directory, pg_ctl on
127.0.0.1 and a free port, stopped and removed at the end.

PostgreSQL refuses to run as root; as root (CI) the server runs as the ``postgres``
system user on a directory it owns.

The URL it yields is written as the README writes it (``postgresql://``, no driver), so
the tests go through grutune's driver choice. With ``password``, connections over TCP
need it (scram-sha-256) and the URL names a role ``tuner`` that has it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import URL


def pg_bin() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian keeps it off PATH)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                   else 0)
    if found:
        return found[-1].parent
    ctl = shutil.which("pg_ctl")
    return Path(ctl).parent if ctl else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def postgres(database: str = "grutune", password: str | None = None) -> Iterator[str]:
    """Start a server; yields a SQLAlchemy URL for ``database`` on it (the role ``tuner``
    with ``password`` when one is given, else ``postgres`` without one)."""
    bin_dir = pg_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="grutune-pg-"))
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    if as_root:
        shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", free_port()

    def run(*cmd: str) -> None:
        subprocess.run([*prefix, *cmd], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)

    host_auth = "scram-sha-256" if password is not None else "trust"
    run(str(bin_dir / "initdb"), "-D", str(data), "--auth-local=trust",
        f"--auth-host={host_auth}", "-U", "postgres", "--no-sync")
    run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w",
        "-o", f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off -c max_connections=400", "start")
    try:
        local = ("-h", str(root), "-p", str(port), "-U", "postgres")  # the socket: trusted
        user = "postgres"
        if password is not None:
            user = "tuner"
            quoted = password.replace("'", "''")
            run(str(bin_dir / "psql"), *local, "-d", "postgres", "-v", "ON_ERROR_STOP=1",
                "-c", f"CREATE ROLE {user} LOGIN PASSWORD '{quoted}'")
        run(str(bin_dir / "createdb"), *local, "-O", user, database)
        yield URL.create("postgresql", username=user, password=password, host="127.0.0.1",
                         port=port, database=database).render_as_string(hide_password=False)
    finally:
        subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w",
                        "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(root, ignore_errors=True)
