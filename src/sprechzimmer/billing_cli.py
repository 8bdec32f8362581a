"""The ``billing`` and ``purge`` subcommands of ``sprechzimmer``."""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from typing import TextIO

from .config import Settings

_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
CSV_COLUMNS = (
    "month",
    "therapist",
    "sessions",
    "billable_seconds",
    "billable_minutes",
    "interruptions",
)


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``billing`` and ``purge`` on the command's subparsers."""
    billing = commands.add_parser(
        "billing", help="billable time per therapist for one month"
    )
    billing.add_argument("--month", required=True, type=_month, help="YYYY-MM (UTC)")
    billing.add_argument("--therapist", help="only this therapist (username)")
    billing.add_argument("--format", choices=("csv", "json"), default="csv")
    billing.set_defaults(run=cmd_billing)

    purge = commands.add_parser(
        "purge", help="delete what is past its retention (also runs daily)"
    )
    purge.set_defaults(run=cmd_purge)


def cmd_billing(settings: Settings, args: argparse.Namespace) -> int:
    from .store.billing import billing_report
    from .store.db import Database

    db = Database(settings.sqlalchemy_url)
    db.migrate()
    rows = billing_report(
        db, args.month, settings.billing_grace_seconds, therapist=args.therapist
    )
    db.dispose()
    write_report([row.as_dict() for row in rows], args.format, sys.stdout)
    return 0


def cmd_purge(settings: Settings, args: argparse.Namespace) -> int:
    from .store.db import Database
    from .store.purge import purge

    db = Database(settings.sqlalchemy_url)
    db.migrate()
    result = purge(db, settings)
    db.dispose()
    for table, count in result.deleted.items():
        print(f"{table}\t{count} deleted")
    return 0


def write_report(rows: list[dict[str, object]], fmt: str, out: TextIO) -> None:
    """Print report rows as CSV (with a header) or as a JSON list."""
    if fmt == "json":
        json.dump(rows, out, indent=2)
        out.write("\n")
        return
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def _month(value: str) -> str:
    if not _MONTH.match(value):
        raise argparse.ArgumentTypeError("expected YYYY-MM, e.g. 2026-11")
    return value
