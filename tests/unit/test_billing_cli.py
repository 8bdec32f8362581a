"""The billing and purge subcommands' arguments and output."""

from __future__ import annotations

import io
import json

import pytest

from sprechzimmer.billing_cli import write_report
from sprechzimmer.cli import build_parser
from sprechzimmer.store.billing import month_bounds, month_of, months_between

ROW = {
    "month": "2026-11",
    "therapist": "dr-a",
    "sessions": 2,
    "billable_seconds": 3000,
    "billable_minutes": 50.0,
    "interruptions": 1,
}


def test_billing_arguments():
    """`billing --month` takes a YYYY-MM month, a therapist and a format."""
    args = build_parser().parse_args(
        ["billing", "--month", "2026-11", "--therapist", "dr-a", "--format", "json"]
    )
    assert (args.month, args.therapist, args.format) == ("2026-11", "dr-a", "json")
    assert build_parser().parse_args(["billing", "--month", "2026-01"]).format == "csv"


@pytest.mark.parametrize("month", ["2026-13", "2026-1", "Nov 2026", ""])
def test_billing_refuses_a_malformed_month(month, capsys):
    """A month that is not YYYY-MM is a usage error."""
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["billing", "--month", month])
    assert exit_.value.code == 2
    assert "YYYY-MM" in capsys.readouterr().err


def test_purge_takes_no_arguments():
    """`purge` exists and runs with the settings alone."""
    assert callable(build_parser().parse_args(["purge"]).run)


def test_csv_has_a_header_and_one_line_per_row():
    """CSV output starts with the column names."""
    out = io.StringIO()
    write_report([ROW], "csv", out)
    assert out.getvalue().splitlines() == [
        "month,therapist,sessions,billable_seconds,billable_minutes,interruptions",
        "2026-11,dr-a,2,3000,50.0,1",
    ]


def test_json_is_a_list_of_rows():
    """JSON output is a list of objects with the same fields."""
    out = io.StringIO()
    write_report([ROW], "json", out)
    assert json.loads(out.getvalue()) == [ROW]


def test_months_are_utc_and_follow_each_other():
    """Month bounds are UTC milliseconds; December is followed by January."""
    lo, hi = month_bounds("2026-12")
    assert (month_of(lo), month_of(hi - 1), month_of(hi)) == (
        "2026-12",
        "2026-12",
        "2027-01",
    )
    assert lo == 1_796_083_200_000
    assert months_between(lo - 1, hi) == ["2026-11", "2026-12", "2027-01"]
