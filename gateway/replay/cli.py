"""``tradedesk replay``: drive real Agmarknet market data through the HTTP API as ordinary clients.

Reads the files (:mod:`persistence.agmarknet`), plans parties and orders (:mod:`gateway.replay.plan`),
creates the parties and their API keys through the admin API (an admin key from ``--api-key-file``;
``tradedesk serve`` writes it), sends the orders day by day (:mod:`gateway.replay.run`) and prints the
summary (:mod:`gateway.replay.summary`).

Exit codes: 0 done; 2 bad input (a file in an unknown layout, a missing column, an unreadable file,
no admin key): one line on stderr, no traceback; 1 the server refused or could not be reached.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

PROG = "tradedesk replay"


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    """What one replay does: files (empty = the shipped cotton file), server, limits, output."""

    files: tuple[Path, ...] = ()
    gateway: str = "http://127.0.0.1:8000"
    api_key_file: Path | None = None
    limit: int | None = None
    seed: int = 7
    batch: int = 200
    concurrency: int = 32
    commodity: str | None = None
    json: bool = False
    progress: bool = True
    season: bool = True


def default_key_file() -> Path:
    """``<TRADEDESK_DATA_DIR>/admin.key``: where ``tradedesk serve`` writes the admin key."""
    from actors.settings import Settings

    return Path(Settings().data_dir) / "admin.key"


def _fail(msg: str, code: int) -> int:
    """Print ``msg`` as one line on stderr; returns ``code``."""
    print(f"{PROG}: {' '.join(msg.split())}", file=sys.stderr)
    return code


def execute(opts: ReplayOptions) -> int:
    """Run one replay; returns the exit code (0 done, 2 bad input, 1 server error). Prints the summary."""
    import asyncio
    import json
    import time

    from gateway.replay.behaviour import load_behaviours
    from gateway.replay.locations import Locator, load_cities
    from gateway.replay.plan import DEFAULT_FILES, build_plan, load_rows
    from gateway.replay.quality import load_hvi
    from gateway.replay.run import SeasonSetup, run_replay
    from gateway.replay.summary import print_season, print_summary, summarize, summarize_season
    from persistence.agmarknet import AgmarknetFormatError

    files = list(opts.files) or list(DEFAULT_FILES)
    try:
        rows, reports = load_rows(files, opts.limit, commodity=opts.commodity)
    except AgmarknetFormatError as exc:
        return _fail(str(exc), 2)
    except OSError as exc:
        return _fail(f"cannot read {exc.filename}: {exc.strerror}", 2)
    key_file = opts.api_key_file or default_key_file()
    try:
        admin = key_file.read_text(encoding="utf-8").strip()
    except OSError:
        return _fail(
            f"no admin API key at {key_file} (start `tradedesk serve` first, or pass --api-key-file)", 2
        )
    t0 = time.perf_counter()
    hvi = load_hvi()
    plan = build_plan(rows, Locator.load(), load_cities(), hvi, seed=opts.seed)
    plan.files = reports
    setup = SeasonSetup(hvi, load_behaviours(), opts.seed) if opts.season else None
    try:
        stats, season = asyncio.run(
            run_replay(
                plan,
                opts.gateway,
                admin,
                batch_max=opts.batch,
                concurrency=opts.concurrency,
                progress=opts.progress and not opts.json,
                season=setup,
            )
        )
    except RuntimeError as exc:
        return _fail(str(exc), 1)
    except OSError as exc:
        return _fail(f"cannot reach {opts.gateway}: {exc}", 1)
    summary = summarize(plan, stats, time.perf_counter() - t0)
    if season is not None:
        summary["season"] = summarize_season(season)
    if opts.json:
        print(json.dumps(summary))
    else:
        print_summary(summary)
        if season is not None:
            print_season(summary["season"])
    return 0


# option declarations shared with ``tradedesk run`` (one place for their names, defaults and help)
Limit = Annotated[int | None, typer.Option(help="replay only the first N rows in date order")]
Seed = Annotated[int, typer.Option(help="seed of the reproducible quality/buyer draws")]
Batch = Annotated[int, typer.Option(help="orders per batch request (per party)")]
Concurrency = Annotated[int, typer.Option(help="HTTP requests in flight")]
Commodity = Annotated[
    str | None,
    typer.Option(
        help="commodity of files without a Commodity column (a state's single-commodity report, e.g. cotton)"
    ),
]
NoProgress = Annotated[bool, typer.Option("--no-progress", help="no progress bar")]
NoSeason = Annotated[
    bool,
    typer.Option(
        "--no-season",
        help="stop after the orders: no deliveries, invoices, payments (the season after the match)",
    ),
]
Files = Annotated[
    list[Path] | None,
    typer.Argument(help="Agmarknet CSV files (default: the real cotton file)", show_default=False),
]


def replay(
    files: Files = None,
    gateway: Annotated[str, typer.Option(help="gateway base URL")] = "http://127.0.0.1:8000",
    api_key_file: Annotated[
        Path | None,
        typer.Option(help="file holding an admin API key (default: <data dir>/admin.key, written by serve)"),
    ] = None,
    limit: Limit = None,
    seed: Seed = 7,
    batch: Batch = 200,
    concurrency: Concurrency = 32,
    commodity: Commodity = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the summary as one JSON object")] = False,
    no_progress: NoProgress = False,
    no_season: NoSeason = False,
) -> None:
    """Replay Agmarknet files through the HTTP API as ordinary clients, then the season after the match."""
    opts = ReplayOptions(
        tuple(files or ()),
        gateway,
        api_key_file,
        limit,
        seed,
        batch,
        concurrency,
        commodity,
        json_out,
        not no_progress,
        not no_season,
    )
    raise typer.Exit(execute(opts))
