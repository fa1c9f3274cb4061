"""Storage URLs as the README writes them, and their passwords: ``postgresql://`` and
``mysql://`` open with the installed driver, a missing one names its extra, and a
password given in a URL (``--storage`` or ``GRUTUNE_STORAGE``) appears in no message, log,
run-directory file or MLflow record; a run whose URL is kept without it resumes when the
URL is given again. Real servers: PostgreSQL (``tests/pg.py``) and MariaDB
(``tests/mysql.py``), each skipped with its reason when not installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, quote_plus

import optuna
import pytest
from typer.testing import CliRunner

from grutune.cli import app
from grutune.config import StudyConfig
from grutune.exceptions import ConfigError
from grutune.tuning import study as study_mod
from grutune.tuning.study import (
    check_storage_given,
    make_storage,
    recorded_storage,
    with_driver,
)
from grutune.urls import hidden_argv, hide_password, password_hidden, scrub

from .mysql import mysql, mysql_bins
from .pg import free_port, pg_bin, postgres

SECRET = "S3cr3tPw"  # the distinctive part: no leak of any piece of the password hides
PASSWORD = f"{SECRET}-p@ss/w:rd%"  # characters a URL must encode
PG_URL = "postgresql://tuner:{}@db.example.org/grutune"
needs_postgres = pytest.mark.skipif(pg_bin() is None, reason="PostgreSQL not installed "
                                    "(Debian: apt-get install postgresql)")
needs_mysql = pytest.mark.skipif(mysql_bins() is None, reason="MariaDB server not installed "
                                 "(Debian: apt-get install mariadb-server)")


def _url(template: str = PG_URL, password: str = PASSWORD) -> str:
    return template.format(quote(password, safe=""))


# --- hiding ------------------------------------------------------------------------------

def test_hide_password_hides_every_password_and_changes_nothing_else():
    assert hide_password(_url()) == "postgresql://tuner:***@db.example.org/grutune"
    assert hide_password("mysql+pymysql://u:pw@h:3306/d?charset=utf8mb4") == \
        "mysql+pymysql://u:***@h:3306/d?charset=utf8mb4"
    assert hide_password("postgresql://u@h/d?password=pw&sslmode=require") == \
        "postgresql://u@h/d?password=***&sslmode=require"
    for unchanged in ("postgresql://tuner@db/grutune", "sqlite:///runs/x/study.db",
                      "journal:runs/x/study.journal", "file:///home/me/mlruns", "reviews.csv",
                      "", None):
        assert hide_password(unchanged) == unchanged
    assert password_hidden(hide_password(_url()))
    assert not password_hidden(_url()) and not password_hidden(None)


def test_hidden_argv_and_scrub():
    argv = ["grutune", "tune", "data.csv", "--storage", _url(), f"--mlflow=http://u:{SECRET}@h"]
    shown = hidden_argv(argv)
    assert shown[:4] == argv[:4] and SECRET not in " ".join(shown)
    assert shown[4] == hide_password(_url()) and shown[5] == "--mlflow=http://u:***@h"
    text = f"failed for {PASSWORD} and {quote_plus(PASSWORD)}"
    assert SECRET not in scrub(text, _url())


def test_study_config_shows_and_records_urls_without_passwords():
    cfg = StudyConfig(storage=_url(), mlflow=f"http://me:{SECRET}@mlflow.example.org")
    assert cfg.storage == _url()  # the real URL stays for the driver
    assert SECRET not in repr(cfg) and SECRET not in str(cfg)
    assert SECRET not in json.dumps(cfg.public_dict())
    assert cfg.public_dict()["storage"] == hide_password(_url())


# --- drivers -----------------------------------------------------------------------------

@pytest.mark.parametrize(("installed", "url", "expected"), [
    ({"psycopg", "psycopg2"}, "postgresql://u:pw@h/d", "postgresql+psycopg://u:pw@h/d"),
    ({"psycopg2"}, "postgresql://u:pw@h/d", "postgresql+psycopg2://u:pw@h/d"),
    ({"pymysql", "MySQLdb"}, "mysql://u:pw@h:3306/d", "mysql+pymysql://u:pw@h:3306/d"),
    ({"MySQLdb"}, "mysql://u@h/d", "mysql+mysqldb://u@h/d"),
    (set(), "postgresql+psycopg2://u:pw@h/d", "postgresql+psycopg2://u:pw@h/d"),
    (set(), "sqlite:///x.db", "sqlite:///x.db"),
])
def test_with_driver_picks_the_installed_driver(monkeypatch, installed, url, expected):
    monkeypatch.setattr(study_mod, "_importable", lambda module: module in installed)
    assert with_driver(url) == expected


def test_with_driver_keeps_an_encoded_password():
    real = with_driver(_url())
    assert real.startswith("postgresql+psycopg://")
    from sqlalchemy.engine import make_url

    assert make_url(real).password == PASSWORD


@pytest.mark.parametrize(("url", "extra"), [(PG_URL, "postgres"),
                                            ("mysql://tuner:{}@db/grutune", "mysql")])
def test_a_missing_driver_names_its_extra(monkeypatch, url, extra):
    monkeypatch.setattr(study_mod, "_importable", lambda module: False)
    with pytest.raises(ConfigError) as err:
        make_storage(_url(url))
    message = str(err.value)
    assert f"pip install 'grutune[{extra}]'" in message
    assert hide_password(_url(url)) in message and SECRET not in message


@pytest.mark.parametrize("template", ["postgresql://tuner:{}@127.0.0.1:{}/grutune",
                                      "mysql://tuner:{}@127.0.0.1:{}/grutune",
                                      "redis://tuner:{}@127.0.0.1:{}/0"])
def test_storage_errors_never_show_the_password(template):
    """A server that is not there, and a scheme that is unknown: one line, hidden."""
    url = template.format(quote(PASSWORD, safe=""), free_port())
    with pytest.raises(ConfigError) as err:
        make_storage(url)
    message = str(err.value)
    assert message.startswith("--storage") and "\n" not in message
    assert SECRET not in message and "***" in message


# --- reading a run back -------------------------------------------------------------------

def test_a_hidden_recorded_url_needs_the_url_again(tmp_path):
    config = {"study": {"storage": hide_password(_url()), "study_name": "s"}}
    with pytest.raises(ConfigError, match="GRUTUNE_STORAGE") as err:
        recorded_storage(tmp_path, config)
    assert hide_password(_url()) in str(err.value)
    assert recorded_storage(tmp_path, config, _url()) == _url()
    # the same database, its password left to ~/.pgpass and another driver: accepted
    elsewhere = "postgresql+psycopg2://tuner@db.example.org/grutune"
    assert recorded_storage(tmp_path, config, elsewhere) == elsewhere
    other = "postgresql://tuner:pw@elsewhere.example.org/grutune"
    with pytest.raises(ConfigError, match="is not the storage"):
        recorded_storage(tmp_path, config, other)
    # a run directory's own file: --storage / GRUTUNE_STORAGE are not needed nor used
    assert recorded_storage(tmp_path, {"study": {"storage": None}}, other) == ""


def test_resuming_a_foreign_storage_needs_it_given(tmp_path):
    check_storage_given(tmp_path, None, None)
    check_storage_given(tmp_path, f"sqlite:///{(tmp_path / 'study.db').as_posix()}", None)
    check_storage_given(tmp_path, f"journal:{(tmp_path / 'study.journal').as_posix()}", None)
    check_storage_given(tmp_path, hide_password(_url()), _url())
    with pytest.raises(ConfigError, match="give that storage again") as err:
        check_storage_given(tmp_path, hide_password(_url()), None)
    assert "GRUTUNE_STORAGE" in str(err.value)


def test_report_of_a_run_without_its_password_says_what_to_give(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(
        {"study": {"storage": hide_password(_url()), "study_name": "s"}}))
    result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert line.startswith("error: ") and "\n" not in line
    assert "--storage" in line and "GRUTUNE_STORAGE" in line and SECRET not in line


# --- real servers -------------------------------------------------------------------------

TINY = ["--sample", "300", "--folds", "1", "--repeats", "1", "--no-baseline", "--no-refit",
        "--max-epochs", "1", "--ensemble", "1", "--workers", "1", "--budget", "10m"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "GRUTUNE_STORAGE"}
    # no terminal: nothing wraps a line, so no password could hide across two
    return {**env, "PYTHONUNBUFFERED": "1", "COLUMNS": "10000", **extra}


def _grutune(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grutune", *args], capture_output=True,
                          text=True, env=env or _env(), timeout=900)


def _leaks(texts: list[str], folders: list[Path]) -> list[str]:
    """Where the password shows: which outputs, which files (any byte of any file)."""
    secret = SECRET.encode()
    found = [f"output {i}" for i, text in enumerate(texts) if SECRET in text]
    for folder in folders:
        found += [str(p) for p in sorted(folder.rglob("*"))
                  if p.is_file() and secret in p.read_bytes()]
    return found


@pytest.mark.realdata
@needs_postgres
def test_postgres_password_is_in_no_output_log_or_run_file(tmp_path):
    """The README's recipe as written (``postgresql://user:password@host/db``): tune with
    ``--storage`` (and -v, every log record, and --mlflow), resume with
    ``GRUTUNE_STORAGE``; refusals without the URL; report. Then every file of the run
    directory (config.json, tune.log, metrics.json, report.html, the bundle, ...), of the
    MLflow store, and every output: no trace of the password."""
    run, mlruns = tmp_path / "run", tmp_path / "mlruns"
    outputs: list[str] = []

    def keep(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
        outputs.extend([result.stdout, result.stderr])
        return result

    with postgres(password=PASSWORD) as url:
        assert url.startswith("postgresql://tuner:") and SECRET in url
        first = keep(_grutune("tune", *TINY, "--trials", "1", "--run-dir", str(run),
                              "--study", "secret", "--storage", url, "-v",
                              "--mlflow", mlruns.as_uri()))
        assert first.returncode == 0, first.stderr[-3000:]
        # -v logged the study config, the storage URL in it (hidden)
        assert f"storage='{hide_password(url)}'" in first.stderr
        config = json.loads((run / "config.json").read_text())
        assert config["study"]["storage"] == hide_password(url)
        assert hide_password(url) in config["command"]

        # the same command without the URL: refused, and says how to give it
        again = keep(_grutune("tune", *TINY, "--trials", "2", "--run-dir", str(run),
                              "--study", "secret"))
        assert again.returncode == 2
        assert "GRUTUNE_STORAGE" in again.stderr and hide_password(url) in again.stderr

        resumed = keep(_grutune("tune", *TINY, "--trials", "2", "--run-dir", str(run),
                                "--study", "secret", env=_env(GRUTUNE_STORAGE=url)))
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        trials = optuna.load_study(study_name="secret", storage=make_storage(url)).trials
        assert len(trials) == 2

        refused = keep(_grutune("report", str(run)))
        assert refused.returncode == 2 and "GRUTUNE_STORAGE" in refused.stderr
        report = keep(_grutune("report", str(run), env=_env(GRUTUNE_STORAGE=url)))
        assert report.returncode == 0, report.stderr
        assert "2 complete" in (run / "report.html").read_text()  # it opened the study
    assert (run / "tune.log").is_file() and mlruns.is_dir()
    assert _leaks(outputs, [run, mlruns]) == []


@pytest.mark.realdata
@needs_mysql
def test_mysql_url_as_written_runs_a_study(tmp_path):
    """``mysql://user:password@host:port/db`` on a real MariaDB, through the driver of
    ``grutune[mysql]``; the password is in no output or run file."""
    run = tmp_path / "run"
    with mysql(password=PASSWORD) as url:
        assert url.startswith("mysql://tuner:")
        result = _grutune("tune", *TINY, "--trials", "1", "--run-dir", str(run), "--study",
                          "my", env=_env(GRUTUNE_STORAGE=url))
        assert result.returncode == 0, result.stderr[-3000:]
        study = optuna.load_study(study_name="my", storage=make_storage(url))
        assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE]
        assert json.loads((run / "config.json").read_text())["study"]["storage"] == \
            hide_password(url)
    assert _leaks([result.stdout, result.stderr], [run]) == []
