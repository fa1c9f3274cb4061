"""URLs with their passwords hidden, for everything grutune shows or writes.

A storage URL (``--storage``, ``GRUTUNE_STORAGE``) or a tracking URI (``--mlflow``) may
carry a password. The real URL is only ever given to the database driver; messages,
logs, ``config.json``, ``compare.json`` and the recorded command line get the URL as
``hide_password`` renders it: SQLAlchemy's own rendering, the password as ``***``.

>>> hide_password("postgresql://tuner:secret@db.example.org/grutune")
'postgresql://tuner:***@db.example.org/grutune'
>>> hide_password("journal:runs/demo/study.journal")
'journal:runs/demo/study.journal'
>>> hidden_argv(["grutune", "tune", "--storage=mysql://u:pw@h/d", "data.csv"])
['grutune', 'tune', '--storage=mysql://u:***@h/d', 'data.csv']
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote, quote_plus

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

HIDDEN = "***"  # what SQLAlchemy renders in place of a hidden password
_QUERY_SECRETS = ("password", "passwd", "sslpassword")  # driver options that are passwords


def parse_url(text: str) -> URL | None:
    """SQLAlchemy's URL object for ``text``; None for what is no ``scheme://`` URL
    (``journal:FILE``, a file name)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(text)
    except (ArgumentError, ValueError, TypeError):
        return None


def _secret_keys(url: URL) -> list[str]:
    return [k for k in url.query if k.lower() in _QUERY_SECRETS]


def secrets_of(text: str) -> list[str]:
    """The passwords ``text`` carries as a URL (in its password field or as a password
    query option), as given; empty for a URL without one or for no URL."""
    url = parse_url(text)
    if url is None:
        return []
    found = [url.password] if url.password else []
    for key in _secret_keys(url):
        value = url.query[key]
        found += [v for v in ((value,) if isinstance(value, str) else value) if v]
    return found


def hide_password(text: str | None) -> str | None:
    """``text`` with its URL password(s) shown as ``***``; unchanged when it has none
    (so a URL without a password is shown exactly as written) or is no URL.

    >>> hide_password("postgresql://db/grutune?password=secret")
    'postgresql://db/grutune?password=***'
    """
    if not text or not secrets_of(text):
        return text
    url = parse_url(text)
    assert url is not None  # secrets_of found some
    keys = _secret_keys(url)
    if keys:
        url = url.update_query_dict({k: HIDDEN for k in keys})
    # a query value is rendered URL-encoded: show the hidden one as the password is
    return url.render_as_string(hide_password=True).replace(quote(HIDDEN, safe=""), HIDDEN)


def password_hidden(text: str | None) -> bool:
    """Does ``text`` show a URL whose password ``hide_password`` hid (so the URL cannot
    be used to connect)?

    >>> password_hidden("mysql://u:***@h/d"), password_hidden("mysql://u@h/d")
    (True, False)
    """
    url = parse_url(text) if text else None
    if url is None:
        return False
    return url.password == HIDDEN or any(url.query[k] == HIDDEN for k in _secret_keys(url))


def same_database(a: str, b: str) -> bool:
    """Do URLs ``a`` and ``b`` name the same database, whatever their passwords (hidden,
    given or left to the driver's own files) and drivers?

    >>> same_database("postgresql://u:***@h/d", "postgresql+psycopg2://u:pw@h/d")
    True
    >>> same_database("postgresql://u:***@h/d", "postgresql://u:pw@other/d")
    False
    """
    def place(text: str) -> tuple | None:
        url = parse_url(text)
        if url is None:
            return None
        query = url.difference_update_query(_secret_keys(url)).query
        return (url.get_backend_name(), url.username, url.host, url.port, url.database,
                sorted(query.items()))

    return place(a) is not None and place(a) == place(b)


def hidden_argv(argv: list[str]) -> list[str]:
    """A command line with every URL password hidden (``--opt URL`` and ``--opt=URL``)."""
    shown = []
    for arg in argv:
        option, eq, value = arg.partition("=")
        if arg.startswith("-") and eq:
            shown.append(f"{option}={hide_password(value)}")
        else:
            shown.append(hide_password(arg) or arg)
    return shown


def scrub(message: str, url: str | None) -> str:
    """``message`` (a driver's error, say) with ``url``'s passwords, as given and as
    URL-encoded, replaced by ``***``: no error text ever repeats a password."""
    for secret in secrets_of(url or ""):
        for form in {secret, quote_plus(secret), quote_plus(secret).replace("+", "%20")}:
            message = message.replace(form, HIDDEN)
    return message
