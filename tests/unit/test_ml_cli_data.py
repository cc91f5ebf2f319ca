"""``tradedesk train`` on a file of another shape: one clear line on stderr, exit code 2, no traceback,
and nothing trained or registered."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ml.datasets import UCI_REQUIRED, DataShapeError, check_data, load_credit

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def other_csv(tmp_path: Path) -> Path:
    p = tmp_path / "other.csv"
    p.write_text("customer,amount,late\nA,100,0\nB,250,1\n")
    return p


def test_check_data_names_missing_columns_and_layout(other_csv: Path) -> None:
    with pytest.raises(DataShapeError) as exc:
        check_data("payment_default", other_csv)
    msg = str(exc.value)
    assert "\n" not in msg and str(other_csv) in msg
    assert "missing columns LIMIT_BAL, PAY_0" in msg and "default.payment.next.month" in msg
    assert "expected the UCI 'default of credit card clients' layout" in msg
    with pytest.raises(DataShapeError, match="missing columns"):
        load_credit(other_csv)  # the loader refuses the same way


def test_check_data_names_only_what_is_missing(tmp_path: Path) -> None:
    p = tmp_path / "almost.csv"
    cols = [c for c in UCI_REQUIRED if c not in ("PAY_AMT6", "LIMIT_BAL")]
    p.write_text(",".join(cols) + "\n" + ",".join("0" for _ in cols) + "\n")
    with pytest.raises(DataShapeError, match=r"missing columns LIMIT_BAL, PAY_AMT6; expected"):
        check_data("credit_limit", p)


def test_check_data_agmarknet_layout(other_csv: Path) -> None:
    with pytest.raises(DataShapeError, match="no Agmarknet header in the first 20 lines"):
        check_data("order_anomaly", other_csv)
    check_data("order_anomaly")  # the shipped files pass
    check_data("payment_default")  # the shipped UCI file passes


def test_cli_train_other_shape_exits_2_with_one_line(other_csv: Path, tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TRADEDESK_DATA_DIR=str(tmp_path / "data"))
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "train", "payment_default", "--data", str(other_csv)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("tradedesk train payment_default: ")
    assert "missing columns LIMIT_BAL" in lines[0] and "expected the UCI" in lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not (tmp_path / "data").exists()  # no registry or MLflow store was created


def test_cli_train_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.cli_models import main

    assert main(["train", "credit_limit", "--data", str(tmp_path / "nope.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No such file or directory" in err
