"""A throwaway MariaDB (or MySQL) server for tests: ``mariadb-install-db`` into a
temporary directory, the server on 127.0.0.1 and a free port, stopped and removed at the
end. Nothing is installed here: without the server binaries (Debian: ``apt-get install
mariadb-server``) the tests that need one skip with that reason.

As root (CI) the server runs as the ``mysql`` system user (``--user``) on a directory it
owns, as ``tests/pg.py`` runs PostgreSQL as ``postgres``. The URL it yields is written as the
README writes it (``mysql://``, no driver) for a user that has ``password``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import URL

from .pg import free_port

_SERVERS = ("mariadbd", "mysqld")
_INSTALLERS = ("mariadb-install-db", "mysql_install_db")
_SEARCH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])


def mysql_bins() -> tuple[Path, Path] | None:
    """The server and the data-directory installer, or None when not both are found."""
    server = next((p for p in (shutil.which(n, path=_SEARCH) for n in _SERVERS) if p), None)
    install = next((p for p in (shutil.which(n, path=_SEARCH) for n in _INSTALLERS) if p), None)
    return (Path(server), Path(install)) if server and install else None


def _connect_root(socket_path: Path, deadline: float):  # -> pymysql Connection
    """A root connection over the server's socket, once it accepts one."""
    import pymysql

    while True:
        try:
            return pymysql.connect(unix_socket=str(socket_path), user="root", password="")
        except pymysql.err.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@contextlib.contextmanager
def mysql(database: str = "grutune", password: str = "tuner-pw") -> Iterator[str]:
    """Start a server; yields a SQLAlchemy ``mysql://`` URL for ``database`` on it, as the
    user ``tuner`` identified by ``password``."""
    bins = mysql_bins()
    if bins is None:
        raise RuntimeError("MariaDB server binaries not found (apt-get install mariadb-server)")
    server, install = bins
    root = Path(tempfile.mkdtemp(prefix="grutune-my-"))
    as_root = os.geteuid() == 0
    user = ["--user=mysql"] if as_root else []
    if as_root:
        shutil.chown(root, "mysql", "mysql")
    data, sock, port = root / "data", root / "mysqld.sock", free_port()
    # --no-defaults: the machine's /etc/mysql settings (a datadir, a bind address) stay out
    subprocess.run([str(install), "--no-defaults", *user, f"--datadir={data}",
                    "--auth-root-authentication-method=normal", "--skip-test-db"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    proc = subprocess.Popen(
        [str(server), "--no-defaults", *user, f"--datadir={data}", f"--socket={sock}",
         f"--port={port}", "--bind-address=127.0.0.1", f"--pid-file={root / 'mysqld.pid'}",
         f"--log-error={root / 'server.log'}", "--skip-name-resolve",
         "--innodb-flush-log-at-trx-commit=0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        try:
            con = _connect_root(sock, time.monotonic() + 60)
        except Exception:
            log = root / "server.log"
            raise RuntimeError("MariaDB did not start: " + (
                log.read_text(errors="replace")[-2000:] if log.exists() else "no log")) from None
        with con, con.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{database}`")
            cur.execute("CREATE USER 'tuner'@'%%' IDENTIFIED BY %s", (password,))
            cur.execute(f"GRANT ALL ON `{database}`.* TO 'tuner'@'%'")
        yield URL.create("mysql", username="tuner", password=password, host="127.0.0.1",
                         port=port, database=database).render_as_string(hide_password=False)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)
