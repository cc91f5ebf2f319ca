"""The command line: ``replay`` data-shape errors and ``serve`` setting errors are one line, exit code 2."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from gateway.cli import app

BOTH_REPORT = Path(__file__).parent / "data" / "maharashtra_cotton_both_price_and_arrival.csv"


def _replay(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(app, ["replay", *args])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res.exit_code, res.stdout, res.stderr


def test_missing_columns_are_one_line_exit_2(tmp_path: Path) -> None:
    f = tmp_path / "prices.csv"
    f.write_text(
        "State,District,Market,Commodity,Variety,Modal Price,Arrival Date\n"
        "Gujarat,Rajkot,Rajkot APMC,Cotton,Other,7200,01-12-2025\n",
        encoding="utf-8",
    )
    code, out, err = _replay(str(f), "--api-key-file", str(tmp_path / "none.key"))
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"tradedesk replay: {f}: lacks columns Min Price, Max Price, Arrival Quantity")
    assert "(found: State, District, Market, Commodity, Variety, Modal Price, Arrival Date)" in lines[0]
    assert "expected an Agmarknet price-and-arrivals CSV" in lines[0]
    assert "Traceback" not in err


def test_single_commodity_report_needs_commodity(tmp_path: Path) -> None:
    code, _, err = _replay(str(BOTH_REPORT), "--api-key-file", str(tmp_path / "none.key"))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "lacks columns Commodity" in err and "--commodity NAME" in err


def test_single_commodity_report_is_read_with_commodity(tmp_path: Path) -> None:
    # the file is read; the replay then stops at the next check (no admin key), proving the read passed
    key = tmp_path / "none.key"
    code, _, err = _replay(str(BOTH_REPORT), "--commodity", "cotton", "--api-key-file", str(key))
    assert code == 2
    assert err.strip() == (
        f"tradedesk replay: no admin API key at {key} (start `tradedesk serve` first, or pass --api-key-file)"
    )


def test_unreadable_file_is_one_line_exit_2(tmp_path: Path) -> None:
    code, _, err = _replay(str(tmp_path / "absent.csv"))
    assert code == 2
    assert (
        err.strip() == f"tradedesk replay: cannot read {tmp_path / 'absent.csv'}: No such file or directory"
    )


def test_help_lists_every_command() -> None:
    res = CliRunner().invoke(app, ["--help"])
    assert res.exit_code == 0
    for name in ("serve", "run", "replay", "shards", "bench", "train", "models"):
        assert f" {name} " in res.stdout
    res = CliRunner().invoke(app, ["bench", "--help"])
    for name in ("core", "shard", "risk", "gateway"):
        assert f" {name} " in res.stdout


def test_serve_bad_setting_is_one_line_exit_2() -> None:
    res = CliRunner().invoke(app, ["serve"], env={"TRADEDESK_PORT": "eighty"})
    assert res.exit_code == 2 and isinstance(res.exception, SystemExit)
    assert res.stderr.strip() == (
        "tradedesk: bad setting (TRADEDESK_* environment or flag): port: Input should be a valid integer, "
        "unable to parse string as an integer"
    )


def test_quickstart_server_defaults_and_overrides() -> None:
    from gateway.quickstart import QUICKSTART_SHARD_HOSTING, server_env

    env, notes = server_env({"PATH": "/bin"})
    assert env == {
        "PATH": "/bin",
        "TRADEDESK_CIRCUIT_BREAKER": "false",
        "TRADEDESK_SHARD_HOSTING": '{"*": "commodity"}',
    }
    assert QUICKSTART_SHARD_HOSTING == '{"*": "commodity"}'
    assert [n.split(" (")[0] for n in notes] == [
        "circuit breaker off for this replay",
        "shards of a commodity share one host process",
    ]
    mine = {"TRADEDESK_CIRCUIT_BREAKER": "true", "TRADEDESK_SHARD_HOSTING": '{"*": "process"}'}
    env, notes = server_env(mine)
    assert env == mine and notes == []  # the user's settings win and nothing is claimed
