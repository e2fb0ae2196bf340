"""``auditlog``: serve, and administer keys and users, on the store ``--store``/``--data`` name.

Every option of ``serve`` is a setting (see ``auditlog.config``): it may also come from an
``AUDITLOG_*`` environment variable or a TOML file named by ``--config``.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import re
import sys
from collections.abc import Sequence
from typing import Any

from auditlog import __version__, config
from auditlog.errors import AuditlogError, ConfigError, NotFound
from auditlog.model import times
from auditlog.model.credentials import (
    SCOPES,
    ApiKey,
    User,
    check_tenant,
    check_username,
    parse_scopes,
)
from auditlog.model.retention import Hold, Retention, check_reason, parse_duration
from auditlog.service import selfaudit
from auditlog.service.auth import ApiKeys
from auditlog.service.passwords import Passwords
from auditlog.service.users import Users, no_such_user
from auditlog.storage.base import Store
from auditlog.storage.factory import open_store

_STORE_SETTINGS = ("store", "data")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def operator_actor() -> dict[str, str]:
    """The local operator running an admin command: the actor of its self-audit records.

    The operating system's user name (``cli:<user>``); ``cli:unknown`` when the system
    cannot tell (no passwd entry, no ``USER``/``LOGNAME``).
    """
    try:
        user = getpass.getuser()
    except (OSError, KeyError, ImportError):
        user = ""
    user = _CONTROL.sub("", user)[:128] or "unknown"
    return {"id": f"cli:{user}", "type": "operator"}


def _key_data(key: ApiKey) -> dict[str, Any]:
    """What a key's self-audit record says of it: never the secret nor its hash."""
    return {"key_id": key.key_id, "name": key.name, "scopes": list(key.scopes)}


def _user_data(user: User) -> dict[str, Any]:
    """What a user's self-audit record says of it: never the password nor its hash."""
    return {"username": user.username, "scopes": list(user.scopes)}


def _add_settings(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    by_name = {s.name: s for s in config.SETTINGS}
    for name in names:
        setting = by_name[name]
        kwargs: dict[str, Any] = {
            "dest": name,
            "default": None,
            "help": f"{setting.help} [{setting.env}]",
        }
        if setting.type is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["metavar"] = name.upper()
        parser.add_argument(setting.flag, **kwargs)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="auditlog", description="A durable, tamper-evident audit log service."
    )
    parser.add_argument("--version", action="version", version=f"auditlog {__version__}")
    parser.add_argument("--config", help="TOML file of settings [AUDITLOG_CONFIG]")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP service")
    _add_settings(serve, [s.name for s in config.SETTINGS])

    keys = commands.add_parser("keys", help="manage API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = key_commands.add_parser(
        "create", help="make an API key; prints the key alone on the last line"
    )
    create.add_argument("--tenant", required=True, help="the tenant whose log the key acts on")
    create.add_argument("--scopes", required=True, help=f"comma-separated, of: {', '.join(SCOPES)}")
    create.add_argument("--name", help="a name for the key (the default source of its events)")
    _add_settings(create, _STORE_SETTINGS)
    listing = key_commands.add_parser(
        "list", help="one line per key: id, name, tenant, scopes, state"
    )
    listing.add_argument("--tenant", help="only this tenant's keys")
    _add_settings(listing, _STORE_SETTINGS)
    revoke = key_commands.add_parser(
        "revoke", help="revoke a key; refused from the next request on"
    )
    revoke.add_argument("key_id", metavar="ID")
    _add_settings(revoke, _STORE_SETTINGS)

    users = commands.add_parser("users", help="manage people's logins")
    user_commands = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    add = user_commands.add_parser(
        "add",
        help="make a login for a person; the password is read from standard input (one line) "
        "or, at a terminal, prompted for twice; never from an argument",
    )
    add.add_argument("username", metavar="USERNAME", help="the login name, unique in every tenant")
    add.add_argument("--tenant", required=True, help="the tenant whose log the user acts on")
    add.add_argument("--scopes", required=True, help=f"comma-separated, of: {', '.join(SCOPES)}")
    _add_settings(add, _STORE_SETTINGS)
    user_list = user_commands.add_parser(
        "list", help="one line per login: username, tenant, scopes, created; never the password"
    )
    user_list.add_argument("--tenant", help="only this tenant's users")
    _add_settings(user_list, _STORE_SETTINGS)
    remove = user_commands.add_parser(
        "remove", help="remove a login; its tokens are refused from the next request on"
    )
    remove.add_argument("username", metavar="NAME")
    _add_settings(remove, _STORE_SETTINGS)
    passwd = user_commands.add_parser(
        "passwd",
        help="give a login a new password, read as for add; the tokens of the old one are "
        "refused from the next request on",
    )
    passwd.add_argument("username", metavar="NAME")
    _add_settings(passwd, _STORE_SETTINGS)

    retention = commands.add_parser("retention", help="each tenant's retention policy")
    retention_commands = retention.add_subparsers(
        dest="retention_command", required=True, metavar="ACTION"
    )
    keep = retention_commands.add_parser(
        "set",
        help="set how long a tenant's events are kept after they were received "
        "(recorded in its log)",
    )
    keep.add_argument("--tenant", required=True, help="the tenant whose policy this is")
    keep.add_argument(
        "--keep",
        required=True,
        metavar="DURATION",
        help="a number and a unit (s, m, h, d), as 400d or 12h; none keeps everything",
    )
    _add_settings(keep, _STORE_SETTINGS)
    show = retention_commands.add_parser(
        "show",
        help="one line per tenant with a policy or a hold: tenant, keep, when and by whom it "
        "was set, and the legal hold",
    )
    show.add_argument("--tenant", help="only this tenant (shown even without a policy)")
    _add_settings(show, _STORE_SETTINGS)

    hold = commands.add_parser(
        "hold", help="legal holds: nothing of a tenant is pruned while one is set"
    )
    hold_commands = hold.add_subparsers(dest="hold_command", required=True, metavar="ACTION")
    hold_set = hold_commands.add_parser(
        "set", help="set a legal hold on a tenant (recorded in its log)"
    )
    hold_set.add_argument("--tenant", required=True, help="the tenant to hold")
    hold_set.add_argument("--reason", required=True, help="why, as the record will show it")
    _add_settings(hold_set, _STORE_SETTINGS)
    release = hold_commands.add_parser(
        "release", help="release a tenant's legal hold (recorded in its log)"
    )
    release.add_argument("--tenant", required=True, help="the tenant to release")
    _add_settings(release, _STORE_SETTINGS)

    from auditlog.cli import prune

    pruning = commands.add_parser(
        "prune",
        help="prune now what each tenant's retention allows and an archive covers (the "
        "service also does it every prune_interval_seconds)",
    )
    prune.add_arguments(pruning)
    _add_settings(pruning, _STORE_SETTINGS)

    migrate = commands.add_parser(
        "migrate",
        help="create the store's schema or bring it up to date (serve also does this at "
        "start; safe while other processes use the store)",
    )
    _add_settings(migrate, _STORE_SETTINGS)

    verify = commands.add_parser(
        "verify",
        help="check every tenant's log against its signed checkpoints (or, with --url, one "
        "log through its API); exit 0 when intact, 1 naming the first bad seq",
    )
    from auditlog.cli.verify import add_arguments

    add_arguments(verify)
    _add_settings(verify, [*_STORE_SETTINGS, "log_origin", "log_signing_key_file"])

    from auditlog.cli import receipt

    receipt.add_proof_arguments(
        commands.add_parser(
            "proof",
            help="fetch an event's offline receipt (two C2SP tlog-proofs up to the witnessed "
            "tenants checkpoint); auditlog verify --receipt checks it",
        )
    )

    from auditlog.cli import archive

    archiving = commands.add_parser(
        "archive",
        help="write a checked archive of a tenant's log through a seq or time; or, with "
        "query, print an archive's events",
    )
    archive.add_arguments(archiving)
    _add_settings(archiving, [*_STORE_SETTINGS, "log_origin", "log_signing_key_file"])

    from auditlog.cli import export, tail

    export.add_arguments(
        commands.add_parser(
            "export",
            help="write the events matching FILTERs through the API, as NDJSON or CSV; "
            "resumes by itself after a broken connection",
        )
    )
    tail.add_arguments(
        commands.add_parser(
            "tail", help="print events through the API as they are committed, until interrupted"
        )
    )
    from auditlog.cli import witness

    witness.add_arguments(
        commands.add_parser("witness", help="run a C2SP tlog-witness, or make its key")
    )
    return parser


def _settings(args: argparse.Namespace) -> config.Settings:
    flags = {s.name: getattr(args, s.name) for s in config.SETTINGS if hasattr(args, s.name)}
    return config.load(flags, config_file=args.config)


async def _with_store(settings: config.Settings, args: argparse.Namespace) -> int:
    store: Store = open_store(settings)
    await store.open()
    try:
        if args.command == "migrate":
            # Opening a store applies the migrations it lacks, under the store's own lock.
            print(f"auditlog: the schema of {_describe(settings.store_url)} is up to date")
            return 0
        if args.command == "users":
            return await _users(store, args)
        if args.command == "retention":
            return await _retention(store, args)
        if args.command == "hold":
            return await _hold(store, args)
        if args.command == "prune":
            from auditlog.cli import prune

            return await prune.run(store, args, operator_actor()) if _tenant(args) else 2
        return await _keys(store, args)
    finally:
        await store.close()


def _describe(url: str) -> str:
    """A store URL without a password, for messages."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        credentials, _, location = rest.rpartition("@")
        return f"{scheme}://{credentials.split(':')[0]}@{location}"
    return url


def _scopes(args: argparse.Namespace) -> tuple[str, ...] | None:
    """The ``--scopes`` of a command, or ``None`` once the problem is told on stderr."""
    try:
        return parse_scopes(args.scopes)
    except ValueError as exc:
        print(f"auditlog: --scopes: {exc}", file=sys.stderr)
        return None


async def _keys(store: Store, args: argparse.Namespace) -> int:
    api_keys = ApiKeys(store)
    if args.keys_command == "create":
        scopes = _scopes(args)
        if scopes is None:
            return 2
        try:
            key, token = await api_keys.create(args.tenant, scopes, args.name)
        except ValueError as exc:
            print(f"auditlog: {exc}", file=sys.stderr)
            return 2
        # Recorded before the key is shown: should the record fail, nobody holds the secret.
        await selfaudit.record_directly(
            store, key.tenant, selfaudit.KEY_CREATED, operator_actor(), _key_data(key)
        )
        print(
            f"created API key {key.key_id} ({key.name}) for tenant {key.tenant} with scopes {','.join(key.scopes)}"
        )
        print("the key is shown only this once:")
        print(token)
        return 0
    if args.keys_command == "list":
        for key in await store.list_api_keys(args.tenant):
            state = "active" if key.active else "revoked " + times.format_us(key.revoked_us or 0)
            print(f"{key.key_id}\t{key.name}\t{key.tenant}\t{','.join(key.scopes)}\t{state}")
        return 0
    if args.keys_command == "revoke":
        before = await store.get_api_key(args.key_id)
        if before is None:
            print(f"auditlog: no API key with id {args.key_id!r}", file=sys.stderr)
            return 1
        # The revocation comes first and holds whatever happens next; it is recorded once,
        # when it takes effect (revoking a revoked key changes nothing and records nothing).
        if await store.revoke_api_key(args.key_id, times.now_us()):
            await selfaudit.record_directly(
                store, before.tenant, selfaudit.KEY_REVOKED, operator_actor(), _key_data(before)
            )
        print(f"revoked API key {args.key_id}")
        return 0
    raise AssertionError(args.keys_command)


def read_password() -> str:
    """A new password (``users add``, ``users passwd``): at a terminal, prompted for twice
    without echo; otherwise the first line of standard input (without its line end)."""
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Password (again): ") != first:
            raise ValueError("the two passwords differ")
        return first
    return sys.stdin.readline().removesuffix("\n").removesuffix("\r")


async def _users(store: Store, args: argparse.Namespace) -> int:
    users = Users(store, Passwords())
    if args.users_command == "add":
        return await _add_user(store, users, args)
    if args.users_command == "list":
        return await _list_users(store, args)
    try:
        check_username(args.username)
    except ValueError as exc:
        print(f"auditlog: {exc}", file=sys.stderr)
        return 2
    if args.users_command == "remove":
        return await _remove_user(store, users, args.username)
    if args.users_command == "passwd":
        return await _change_password(store, users, args.username)
    raise AssertionError(args.users_command)


async def _add_user(store: Store, users: Users, args: argparse.Namespace) -> int:
    # Everything given as an argument is checked before the password is asked for.
    scopes = _scopes(args)
    if scopes is None:
        return 2
    try:
        check_username(args.username)
        check_tenant(args.tenant)
    except ValueError as exc:
        print(f"auditlog: {exc}", file=sys.stderr)
        return 2
    try:
        password = read_password()
        user = await users.add(args.username, args.tenant, scopes, password)
    except ValueError as exc:  # the messages never hold the password
        print(f"auditlog: {exc}", file=sys.stderr)
        return 2
    except EOFError:
        print("auditlog: no password given", file=sys.stderr)
        return 2
    # The user is made first and stays made if the record fails (the command exits 1 then).
    await selfaudit.record_directly(
        store, user.tenant, selfaudit.USER_CREATED, operator_actor(), _user_data(user)
    )
    print(
        f"created user {user.username} for tenant {user.tenant} with scopes {','.join(user.scopes)}"
    )
    return 0


async def _list_users(store: Store, args: argparse.Namespace) -> int:
    if args.tenant is not None:
        try:
            check_tenant(args.tenant)
        except ValueError as exc:
            print(f"auditlog: --tenant: {exc}", file=sys.stderr)
            return 2
    for user in await store.list_users(args.tenant):
        created = times.format_us(user.created_us)
        print(f"{user.username}\t{user.tenant}\t{','.join(user.scopes)}\t{created}")
    return 0


async def _remove_user(store: Store, users: Users, username: str) -> int:
    try:
        user = await users.remove(username)
    except NotFound as exc:
        print(f"auditlog: {exc}", file=sys.stderr)
        return 1
    # Removed first: the removal holds whatever happens to its record.
    await selfaudit.record_directly(
        store, user.tenant, selfaudit.USER_REMOVED, operator_actor(), _user_data(user)
    )
    print(f"removed user {user.username} of tenant {user.tenant}; its login tokens are refused")
    return 0


async def _change_password(store: Store, users: Users, username: str) -> int:
    # Nobody is asked for a password for a user that does not exist.
    if await store.get_user(username) is None:
        print(f"auditlog: {no_such_user(username)}", file=sys.stderr)
        return 1
    try:
        password = read_password()
        user = await users.change_password(username, password)
    except ValueError as exc:  # the messages never hold the password
        print(f"auditlog: {exc}", file=sys.stderr)
        return 2
    except EOFError:
        print("auditlog: no password given", file=sys.stderr)
        return 2
    except NotFound as exc:  # removed while the password was typed
        print(f"auditlog: {exc}", file=sys.stderr)
        return 1
    await selfaudit.record_directly(
        store, user.tenant, selfaudit.USER_PASSWORD_CHANGED, operator_actor(), _user_data(user)
    )
    print(
        f"changed the password of user {user.username} of tenant {user.tenant}; "
        "login tokens issued before are refused"
    )
    return 0


def _tenant(args: argparse.Namespace) -> bool:
    """Whether ``--tenant`` (if given) is a tenant name; if not, says so on stderr."""
    if args.tenant is None:
        return True
    try:
        check_tenant(args.tenant)
    except ValueError as exc:
        print(f"auditlog: --tenant: {exc}", file=sys.stderr)
        return False
    return True


def _hold_text(hold: Hold | None) -> str:
    if hold is None:
        return "no hold"
    return f"held since {times.format_us(hold.set_us)} by {hold.set_by}: {hold.reason}"


async def _retention(store: Store, args: argparse.Namespace) -> int:
    if not _tenant(args):
        return 2
    if args.retention_command == "show":
        policies = {r.tenant: r for r in await store.list_retention()}
        holds = {h.tenant: h for h in await store.list_holds()}
        tenants = [args.tenant] if args.tenant is not None else sorted({*policies, *holds})
        for tenant in tenants:
            policy = policies.get(tenant)
            if policy is None:
                keep, changed = "none", "never set"
            else:
                keep = policy.keep
                changed = f"set {times.format_us(policy.updated_us)} by {policy.updated_by}"
            print(f"{tenant}\tkeep {keep}\t{changed}\t{_hold_text(holds.get(tenant))}")
        return 0
    if args.retention_command == "set":
        try:
            keep_seconds = parse_duration(args.keep)
        except ValueError as exc:
            print(f"auditlog: --keep: {exc}", file=sys.stderr)
            return 2
        actor = operator_actor()
        before = await store.get_retention(args.tenant)
        policy = Retention(args.tenant, keep_seconds, times.now_us(), actor["id"])
        # Stored first: the policy holds whatever happens to its record (exit 1 then).
        await store.set_retention(policy)
        was = "none" if before is None else before.keep
        await selfaudit.record_directly(
            store,
            args.tenant,
            selfaudit.RETENTION_SET,
            actor,
            {"keep": policy.keep, "keep_seconds": keep_seconds, "previous": was},
        )
        print(f"retention of tenant {args.tenant}: keep {policy.keep} (was {was})")
        if keep_seconds is not None:
            print(
                "events older than that are pruned by the service's schedule or auditlog "
                "prune, once an archive (auditlog archive) covers them"
            )
        return 0
    raise AssertionError(args.retention_command)


async def _hold(store: Store, args: argparse.Namespace) -> int:
    if not _tenant(args):
        return 2
    actor = operator_actor()
    if args.hold_command == "set":
        try:
            reason = check_reason(args.reason)
        except ValueError as exc:
            print(f"auditlog: --reason: {exc}", file=sys.stderr)
            return 2
        hold = Hold(args.tenant, reason, actor["id"], times.now_us())
        standing = await store.set_hold(hold)
        if standing is not None:
            # The hold that stands is left as it is, and nothing is recorded.
            print(
                f"auditlog: tenant {args.tenant} is already {_hold_text(standing)}",
                file=sys.stderr,
            )
            return 1
        await selfaudit.record_directly(
            store, args.tenant, selfaudit.HOLD_SET, actor, {"reason": reason}
        )
        print(f"tenant {args.tenant} is {_hold_text(hold)}")
        return 0
    if args.hold_command == "release":
        released = await store.release_hold(args.tenant)
        if released is None:
            print(f"auditlog: tenant {args.tenant} has no legal hold", file=sys.stderr)
            return 1
        await selfaudit.record_directly(
            store,
            args.tenant,
            selfaudit.HOLD_RELEASED,
            actor,
            {
                "reason": released.reason,
                "set_by": released.set_by,
                "set_at": times.format_us(released.set_us),
            },
        )
        print(f"released the legal hold on tenant {args.tenant} (set for: {released.reason})")
        return 0
    raise AssertionError(args.hold_command)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in ("export", "tail"):  # clients of the API: no settings of their own
        from auditlog.cli import export, tail

        return export.run(args) if args.command == "export" else tail.run(args)
    if args.command == "witness":  # a process of its own: no settings of the service's
        from auditlog.cli import witness

        return witness.run(args)
    if args.command == "proof":  # a client of the API
        from auditlog.cli import receipt

        return receipt.fetch(args)
    try:
        if args.command == "archive":
            from auditlog.cli import archive

            return archive.run(args, lambda: _settings(args))
        settings = _settings(args)
        if args.command == "serve":
            from auditlog.cli.serve import serve

            return serve(settings)
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        if args.command == "verify":
            from auditlog.cli import verify

            return verify.run(settings, args)
        return asyncio.run(_with_store(settings, args))
    except ConfigError as exc:
        print(f"auditlog: {exc}", file=sys.stderr)
        return 2
    except AuditlogError as exc:
        print(f"auditlog: {exc}", file=sys.stderr)
        return 1
