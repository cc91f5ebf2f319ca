"""Where ``tradedesk serve`` and ``tradedesk run`` write their logs, and the lines that say so.

Under ``<data_dir>/logs/``:

- ``server.log``: tradedesk, uvicorn (start/stop, errors), Ray and every other logger;
- ``access.log``: uvicorn's access log, one line per HTTP request;
- ``postgres.log``: pgserver's initdb / pg_ctl output (the embedded server's own log stays in
  ``<data_dir>/pgdata/log``);
- ``serve.out``: with ``tradedesk run``, the server process's terminal output.

The terminal gets warnings and errors only, plus the few ``tradedesk:`` lines of :func:`where_lines`.
Output that does not go through Python logging (Ray's native workers and GCS, Ray Serve's stream
handlers, libraries that print) is written to the process's file descriptors 1 and 2: those are
pointed at ``server.log`` too, and the terminal lines go to a copy of the original stderr.
``--log-to-terminal`` (``--verbose``) leaves the descriptors alone and sends every log line to the
terminal as well, as before.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, TextIO

import typer

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# loggers that get a file of their own (and do not go to server.log)
_OWN_FILE = {"uvicorn.access": "access", "pgserver": "postgres"}


# the flag of ``tradedesk serve`` and ``tradedesk run`` that brings the logs back to the terminal
LogToTerminal = Annotated[
    bool,
    typer.Option(
        "--log-to-terminal",
        "--verbose",
        "-v",
        help="also print every log line (access log, pgserver output) here, not only in <data dir>/logs",
    ),
]


@dataclass(frozen=True, slots=True)
class LogFiles:
    """The log files under ``<data_dir>/logs``."""

    dir: Path
    server: Path
    access: Path
    postgres: Path
    serve_out: Path

    @classmethod
    def under(cls, data_dir: str | Path) -> LogFiles:
        """The log files of the data dir ``data_dir`` (the directory is not created here)."""
        d = Path(data_dir) / "logs"
        return cls(d, d / "server.log", d / "access.log", d / "postgres.log", d / "serve.out")


def _redirect_output(path: Path) -> TextIO:
    """Point file descriptors 1 and 2 at ``path`` (append); return a stream on the former stderr."""
    sys.stdout.flush()
    sys.stderr.flush()
    terminal = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    finally:
        os.close(fd)
    return terminal


def configure_logging(files: LogFiles, level: str = "info", to_terminal: bool = False) -> TextIO:
    """Send the process's logging to ``files`` (created); the terminal gets WARNING and above, or
    everything at ``level`` when ``to_terminal``. Returns the stream for lines meant for the
    terminal (the original stderr; without ``to_terminal`` fds 1 and 2 now write to ``server.log``).

    Raises:
        ValueError: ``level`` is not a logging level name.
        OSError: the log directory cannot be created.
    """
    lvl = logging.getLevelName(level.upper())
    if not isinstance(lvl, int):
        raise ValueError(f"unknown log level {level!r}")
    files.dir.mkdir(parents=True, exist_ok=True)
    terminal = sys.stderr if to_terminal else _redirect_output(files.server)
    fmt = logging.Formatter(_FORMAT)
    term = logging.StreamHandler(terminal)
    term.setFormatter(fmt)
    term.setLevel(lvl if to_terminal else logging.WARNING)

    def to_file(path: Path) -> logging.Handler:
        h = logging.FileHandler(path, encoding="utf-8")
        h.setFormatter(fmt)
        return h

    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.setLevel(lvl)
    root.addHandler(to_file(files.server))
    root.addHandler(term)
    for name, attr in _OWN_FILE.items():
        lg = logging.getLogger(name)
        lg.handlers = [to_file(getattr(files, attr)), term]
        lg.propagate = False
    return terminal


def where_lines(base: str, data_dir: str | Path, key_file: Path, files: LogFiles) -> list[str]:
    """The few lines that tell a newcomer where everything is (web console, API docs, admin key,
    data, logs)."""
    return [
        f"console     {base}/ui   (sign in with an API key: a trader's, or the admin key file's)",
        f"API docs    {base}/docs   (metrics {base}/metrics)",
        f"admin key   {key_file}   (mode 0600; the key itself is never printed)",
        f"data dir    {data_dir}",
        f"logs        {files.dir}/{{server,access,postgres}}.log   (--log-to-terminal shows them here)",
    ]
