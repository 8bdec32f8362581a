"""The ``sprechzimmer`` command."""

from __future__ import annotations

import argparse
import getpass
import secrets
import sys
from collections.abc import Callable

from . import billing_cli, logs
from .config import Settings
from .relay import coturn_config
from .relay.regions import RelayConfigError

Command = Callable[[Settings, argparse.Namespace], int]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    settings = Settings()
    logs.setup(settings.log_level)
    try:
        return args.run(settings, args)
    except RelayConfigError as error:
        # A relay outside the region stops the start with a message, not a trace.
        print(f"sprechzimmer: {error}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sprechzimmer", description="End-to-end encrypted therapy video calls."
    )
    commands = parser.add_subparsers(title="commands")

    serve = commands.add_parser("serve", help="run the server")
    _listen_options(serve)
    serve.set_defaults(run=cmd_serve)

    demo = commands.add_parser(
        "demo", help="run the server with a demo therapist (SQLite by default)"
    )
    _listen_options(demo)
    demo.set_defaults(run=cmd_demo)

    therapist = commands.add_parser("therapist", help="manage therapist accounts")
    actions = therapist.add_subparsers(title="actions", required=True)
    add = actions.add_parser("add", help="add a therapist (the name is the code)")
    add.add_argument("name")
    add.add_argument("--password-stdin", action="store_true")
    add.set_defaults(run=cmd_therapist_add)
    password = actions.add_parser("password", help="set a new password")
    password.add_argument("name")
    password.add_argument("--password-stdin", action="store_true")
    password.set_defaults(run=cmd_therapist_password)
    listing = actions.add_parser("list", help="list therapists")
    listing.set_defaults(run=cmd_therapist_list)

    client = commands.add_parser(
        "client", help="requests of a client: export or erase their data"
    )
    client_actions = client.add_subparsers(title="actions", required=True)
    for name, run, text in (
        ("export", cmd_client_export, "print everything stored, as JSON"),
        ("erase", cmd_client_erase, "delete their sessions, links and events"),
    ):
        action = client_actions.add_parser(name, help=text)
        action.add_argument("--therapist", required=True, help="therapist code")
        action.add_argument("--client-id", required=True)
        action.set_defaults(run=run)

    migrate = commands.add_parser("migrate", help="bring the database schema up")
    migrate.set_defaults(run=cmd_migrate)

    coturn = commands.add_parser(
        "coturn-config", help="print a hardened turnserver.conf for coturn"
    )
    coturn_config.add_arguments(coturn)
    coturn.set_defaults(run=coturn_config.coturn_config_command)

    billing_cli.add_commands(commands)
    return parser


def _listen_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)


# -- commands ---------------------------------------------------------------


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from .server import run

    run(settings, args.host, args.port)
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from .server import run
    from .store import accounts

    if settings.public_base_url == Settings.model_fields["public_base_url"].default:
        settings.public_base_url = f"http://{args.host}:{args.port}"
    db = _database(settings)
    password = secrets.token_urlsafe(9)
    with db.session() as session:
        if not accounts.set_password(session, "demo", password):
            accounts.add_therapist(session, "demo", password)
    db.dispose()
    print(
        "\nSprechzimmer demo\n"
        f"  open      {settings.public_base_url}/login\n"
        "  therapist demo\n"
        f"  password  {password}\n"
        "  (a new password on every start; Ctrl-C stops the server)\n",
        flush=True,
    )
    run(settings, args.host, args.port)
    return 0


def cmd_therapist_add(settings: Settings, args: argparse.Namespace) -> int:
    from .store import accounts

    password = _read_password(args.password_stdin)
    db = _database(settings)
    try:
        with db.session() as session:
            accounts.add_therapist(session, args.name, password)
    except accounts.AccountExists:
        print(f"therapist {args.name!r} exists already", file=sys.stderr)
        return 1
    print(f"therapist {args.name!r} added")
    return 0


def cmd_therapist_password(settings: Settings, args: argparse.Namespace) -> int:
    from .store import accounts

    password = _read_password(args.password_stdin)
    db = _database(settings)
    with db.session() as session:
        found = accounts.set_password(session, args.name, password)
    if not found:
        print(f"no therapist {args.name!r}", file=sys.stderr)
        return 1
    print(f"password of {args.name!r} changed; their logins were closed")
    return 0


def cmd_therapist_list(settings: Settings, args: argparse.Namespace) -> int:
    from .store import accounts

    db = _database(settings)
    with db.session() as session:
        for therapist in accounts.list_therapists(session):
            state = "active" if therapist.active else "disabled"
            print(f"{therapist.username}\t{state}\t{therapist.created_at:%Y-%m-%d}")
    return 0


def cmd_client_export(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from .store.subjects import export_client

    db = _database(settings)
    with db.session() as session:
        data = export_client(session, args.therapist, args.client_id)
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
    print()
    return 0


def cmd_client_erase(settings: Settings, args: argparse.Namespace) -> int:
    from .store.subjects import erase_client

    db = _database(settings)
    with db.session() as session:
        count = erase_client(session, args.therapist, args.client_id)
    print(f"erased {count} session(s) with their links and events")
    return 0


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    _database(settings).dispose()
    return 0


def _database(settings: Settings):
    """The configured database, migrated to the newest schema."""
    from .store.db import Database

    db = Database(settings.sqlalchemy_url)
    db.migrate()
    return db


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise SystemExit("the passwords differ")
    if len(password) < 8:
        raise SystemExit("a password needs at least 8 characters")
    return password


if __name__ == "__main__":
    raise SystemExit(main())
