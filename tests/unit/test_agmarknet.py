"""Agmarknet reader: real file, commas in numbers, dd-mm-yyyy, other portal layouts read or refused."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from persistence.agmarknet import (
    AgmarknetFormatError,
    detect_date_format,
    in_date_order,
    parse_number,
    portal_commodity,
    read_file,
    read_text,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "agmarknet"
COTTON = DATA / "trinetra_cotton_2025-11_2026-01.csv"

HEADER = (
    "State,District,Market,Commodity Group,Commodity,Variety,Grade,Min Price,Max Price,Modal Price,"
    "Price Unit,Arrival Quantity,Arrival Unit,Arrival Date\n"
)


def test_parse_number_commas_and_blanks() -> None:
    assert parse_number("7,700.00") == 7700
    assert parse_number(" 1,23,456.5 ") is not None
    assert parse_number("") is None and parse_number("NA") is None and parse_number("-") is None


def test_real_cotton_file() -> None:
    rows, rep = read_file(COTTON)
    assert rep.layout == "trinetra" and rep.date_format == "%d-%m-%Y"
    assert rep.rows == len(rows) > 11_000
    first = rows[0]
    assert (first.state, first.district, first.market) == ("Andhra Pradesh", "Krishna", "Tiruvuru APMC")
    assert first.commodity == "cotton"
    assert first.modal_price == 7700  # Rs./Quintal == paise/kg
    assert first.arrivals_kg == 140_000  # 140 t
    assert first.day == date(2025, 11, 29)
    assert all(r.min_price <= r.modal_price <= r.max_price for r in rows)
    ordered = list(in_date_order(rows))
    assert all(a.day <= b.day for a, b in zip(ordered, ordered[1:], strict=False))


def test_chana_portal_name() -> None:
    assert portal_commodity("Bengal Gram Dal(Chana Dal)") == "chana"
    assert portal_commodity("Bengal Gram(Gram)(Whole)") == "chana"
    assert portal_commodity("Gram Raw(Chholia)") == "chana"
    assert portal_commodity("Soyabean") == "soybean"
    assert portal_commodity("Onion") is None


def test_rows_without_arrivals_or_price_are_skipped() -> None:
    pre = "Gujarat,Rajkot,Rajkot APMC,Fibre Crops,Cotton,Other,FAQ,"
    prices = '"7,000.00","7,500.00","7,200.00",Rs./Quintal,'
    text = (
        HEADER
        + pre
        + prices
        + "0.00,Metric Tonnes,01-12-2025\n"
        + pre
        + ",,,Rs./Quintal,3.00,Metric Tonnes,01-12-2025\n"
        + pre
        + prices
        + "2.50,Metric Tonnes,02-12-2025\n"
    )
    rows, rep = read_text(text)
    assert len(rows) == 1 and rows[0].arrivals_kg == 2500
    assert rep.skipped == {"no_arrivals": 1, "no_modal_price": 1}


def test_portal_report_layout_with_title_line_is_read() -> None:
    text = (
        '"Price and Arrivals of Cotton in Gujarat from 01 Dec 2025 to 03 Dec 2025"\n'
        "Sl no.,District Name,Market Name,Commodity,Variety,Grade,Min Price (Rs./Quintal),"
        "Max Price (Rs./Quintal),Modal Price (Rs./Quintal),Arrivals (Tonnes),Price Date\n"
        '1,Rajkot,Rajkot APMC,Cotton,Other,FAQ,"7,000","7,600","7,350",12.5,01 Dec 2025\n'
        '2,Amreli,Amreli APMC,Cotton,Other,FAQ,"6,900","7,400","7,100",8,03 Dec 2025\n'
    )
    rows, rep = read_text(text, "report.csv")
    assert rep.layout == "portal-report" and rep.date_format == "%d %b %Y"
    assert [r.state for r in rows] == ["Gujarat", "Gujarat"]
    assert rows[0].modal_price == 7350 and rows[0].arrivals_kg == 12_500
    assert rows[1].day == date(2025, 12, 3)


def test_ogd_api_layout_is_read() -> None:
    text = (
        "State,District,Market,Commodity,Variety,Grade,Arrival_Date,Min_x0020_Price,Max_x0020_Price,"
        "Modal_x0020_Price,Arrivals\n"
        "Maharashtra,Akola,Akola APMC,Cotton,Other,FAQ,05/12/2025,7000,7300,7150,4.2\n"
    )
    rows, rep = read_text(text)
    assert rep.layout == "ogd-api" and rep.date_format == "%d/%m/%Y"
    assert rows[0].day == date(2025, 12, 5) and rows[0].arrivals_kg == 4200


def test_layout_without_arrivals_is_refused_clearly() -> None:
    text = (
        "State,District,Market,Commodity,Variety,Grade,Arrival_Date,Min_x0020_Price,Max_x0020_Price,"
        "Modal_x0020_Price\n"
        "Maharashtra,Akola,Akola APMC,Cotton,Other,FAQ,05/12/2025,7000,7300,7150\n"
    )
    with pytest.raises(AgmarknetFormatError) as err:
        read_text(text)
    msg = str(err.value)
    assert "lacks columns Arrival Quantity / Arrivals (Tonnes) (found: State, District," in msg
    assert "expected an Agmarknet price-and-arrivals CSV" in msg and "\n" not in msg


def test_unknown_file_is_refused() -> None:
    with pytest.raises(AgmarknetFormatError, match="no Agmarknet header"):
        read_text("a,b,c\n1,2,3\n", "x.csv")


def test_unknown_date_format_is_refused() -> None:
    with pytest.raises(AgmarknetFormatError, match="no known format"):
        detect_date_format(["2025.12.01"])
    with pytest.raises(AgmarknetFormatError, match="dates such as"):
        read_text(
            HEADER
            + "Gujarat,Rajkot,Rajkot APMC,F,Cotton,Other,FAQ,1,2,1,Rs./Quintal,1,Metric Tonnes,Dec 1st\n"
        )


def test_report_without_state_anywhere_is_refused() -> None:
    text = (
        "Sl no.,District Name,Market Name,Commodity,Variety,Grade,Min Price (Rs./Quintal),"
        "Max Price (Rs./Quintal),Modal Price (Rs./Quintal),Arrivals (Tonnes),Price Date\n"
        "1,Rajkot,Rajkot APMC,Cotton,Other,FAQ,7000,7600,7350,12.5,01 Dec 2025\n"
    )
    with pytest.raises(AgmarknetFormatError, match="no State column"):
        read_text(text)


BOTH_REPORT = Path(__file__).parent / "data" / "maharashtra_cotton_both_price_and_arrival.csv"


def test_single_commodity_report_is_refused_without_a_commodity() -> None:
    with pytest.raises(AgmarknetFormatError) as err:
        read_file(BOTH_REPORT)
    msg = str(err.value)
    assert msg.startswith(
        f"{BOTH_REPORT}: lacks columns Commodity (found: Sl no., District Name, Market Name,"
    )
    assert "tradedesk replay --commodity NAME" in msg


def test_single_commodity_report_is_read_with_a_default_commodity() -> None:
    rows, rep = read_file(BOTH_REPORT, default_commodity="Cotton")
    assert rep.layout == "portal-report" and rep.date_format == "%d-%b-%Y" and rep.rows == 5
    assert {(r.state, r.commodity) for r in rows} == {("Maharashtra", "cotton")}
    first = rows[0]
    assert (first.district, first.market, first.variety, first.grade) == (
        "Akola",
        "Akola APMC",
        "Desi",
        "Local",
    )
    assert (first.modal_price, first.arrivals_kg, first.day, first.line) == (
        7789,
        244_000,
        date(2025, 12, 2),
        3,
    )
    assert rows[4].min_price == 7839 and rows[4].max_price == 8019 and rows[4].arrivals_kg == 44_600


def test_a_commodity_column_wins_over_the_default() -> None:
    text = HEADER + (
        'Gujarat,Rajkot,Rajkot APMC,Pulses,Bengal Gram Dal(Chana Dal),Other,FAQ,"7,000.00","7,500.00",'
        '"7,200.00",Rs./Quintal,2.50,Metric Tonnes,02-12-2025\n'
    )
    rows, _ = read_text(text, default_commodity="cotton")
    assert [r.commodity for r in rows] == ["chana"]


def test_unknown_default_commodity_is_refused() -> None:
    with pytest.raises(AgmarknetFormatError, match="unknown commodity 'onion'"):
        read_file(BOTH_REPORT, default_commodity="onion")
