"""``edgeinspect fleet|deploy|jobs|devices``: the fleet jobs service and the commands that feed it.

    edgeinspect fleet serve                          run the jobs service (EI_ settings, see cloud/README.md)
    edgeinspect fleet groups add line-3 edge-1 edge-2
    edgeinspect fleet groups list|remove ...
    edgeinspect deploy --model defect-cls --version 7 --target line-3 [--role shadow]
                       [--waves 2 --abort-threshold 50] --registry URL --fleet-db URL
    edgeinspect set-threshold --model defect-cls [--version 7] --image 0.3 [--pixel 0.5] | --clear
                       --target line-3 [--reason '...']   a line's thresholds over the package's
    edgeinspect jobs list|show JOB|cancel JOB [--force]
    edgeinspect jobs create --document remove.json --target line-3 --job-id remove-7
    edgeinspect devices list [--group line-3] | add edge-9 --group line-3

Every command takes ``--fleet-db`` (default ``$EI_FLEET_DB``, else an SQLite file in the user's data
folder) and ``--json``. The CLI only writes the database; ``fleet serve`` notices new jobs and cancels
and tells the devices over MQTT.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from edgeinspect.core.errors import ConfigError
from edgeinspect.core.thresholds import ThresholdError, parse_threshold_text

from edgeinspect_cloud.commands.cli_errors import reports_errors
from edgeinspect_cloud.commands.registry import add_registry_arguments, open_registry
from edgeinspect_cloud.fleet import FleetError, FleetStore, Rollout
from edgeinspect_cloud.fleet.deploy import (
    approved_version,
    deploy_document,
    new_job_id,
    threshold_document,
)
from edgeinspect_cloud.fleet.records import parse_wave_pct
from edgeinspect_cloud.fleet.settings import FLEET_DB_ENV, FleetSettings, default_fleet_db
from edgeinspect_cloud.fleet.views import devices_table, job_details, jobs_table
from edgeinspect_cloud.registry import current_user


def register(subparsers: Any) -> None:
    """Add ``fleet``, ``deploy``, ``jobs`` and ``devices``."""
    _register_fleet(subparsers)
    _register_deploy(subparsers)
    _register_set_threshold(subparsers)
    _register_jobs(subparsers)
    _register_devices(subparsers)


def _common(parser: argparse.ArgumentParser, *, json_flag: bool = True) -> None:
    parser.add_argument(
        "--fleet-db",
        default=os.environ.get(FLEET_DB_ENV),
        help=f"sqlite:///path/fleet.db or postgresql://user@host/db (default ${FLEET_DB_ENV}, "
        "else ~/.local/share/edgeinspect/fleet.db)",
    )
    if json_flag:
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _open(args: argparse.Namespace) -> FleetStore:
    return FleetStore.open(args.fleet_db or default_fleet_db())


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


# ---- fleet -----------------------------------------------------------------------------------


def _register_fleet(subparsers: Any) -> None:
    parser = subparsers.add_parser("fleet", help="the fleet jobs service and thing groups")
    sub = parser.add_subparsers(dest="fleet_command", metavar="ACTION", required=True)
    serve = sub.add_parser("serve", help="run the jobs service for devices on a plain MQTT broker")
    serve.add_argument("--fleet-db", help=f"overrides ${FLEET_DB_ENV}")
    serve.add_argument("--mqtt-url", help="overrides $EI_MQTT_URL")
    serve.add_argument("--jobs-prefix", help="overrides $EI_JOBS_PREFIX (the devices' jobs topic prefix)")
    serve.add_argument("--check-config", action="store_true", help="validate the settings, print them, exit")
    serve.set_defaults(handler=_serve)

    groups = sub.add_parser("groups", help="thing groups (a factory line): add, remove, list")
    gsub = groups.add_subparsers(dest="groups_command", metavar="ACTION", required=True)
    for action, verb in (("add", "add things to a group (created if new)"), ("remove", "take things out")):
        cmd = gsub.add_parser(action, help=verb)
        cmd.add_argument("group", help="thing group, e.g. line-3")
        cmd.add_argument("things", nargs="+", metavar="THING", help="thing names")
        _common(cmd, json_flag=False)
        cmd.set_defaults(handler=_groups_add if action == "add" else _groups_remove)
    listing = gsub.add_parser("list", help="every group and its things")
    _common(listing)
    listing.set_defaults(handler=_groups_list)


def _serve(args: argparse.Namespace) -> int:
    from edgeinspect_cloud.fleet.service import serve

    overrides = {
        key: value
        for key, value in (
            ("fleet_db", args.fleet_db),
            ("mqtt_url", args.mqtt_url),
            ("jobs_prefix", args.jobs_prefix),
        )
        if value
    }
    try:
        settings = FleetSettings.load(**overrides)
    except ConfigError as exc:
        print(f"edgeinspect fleet serve: {exc}", file=sys.stderr)
        return 2
    if args.check_config:
        print(json.dumps(settings.model_dump(mode="json"), indent=2, default=str, sort_keys=True))
        return 0
    return serve(settings)


@reports_errors
def _groups_add(args: argparse.Namespace) -> int:
    with _open(args) as store:
        added = store.devices.add_to_group(args.group, args.things)
    print(f"{args.group}: added {', '.join(added) if added else 'nothing (all were members)'}")
    return 0


@reports_errors
def _groups_remove(args: argparse.Namespace) -> int:
    with _open(args) as store:
        removed = store.devices.remove_from_group(args.group, args.things)
    print(f"{args.group}: removed {', '.join(removed) if removed else 'nothing (none were members)'}")
    return 0


@reports_errors
def _groups_list(args: argparse.Namespace) -> int:
    with _open(args) as store:
        groups = store.devices.groups()
    if args.json:
        _print_json(groups)
    elif not groups:
        print("no thing groups", file=sys.stderr)
    else:
        for group, things in groups.items():
            print(f"{group}: {', '.join(things)}")
    return 0


# ---- deploy ----------------------------------------------------------------------------------


def _register_deploy(subparsers: Any) -> None:
    parser = subparsers.add_parser("deploy", help="deploy an Approved model version to things or groups")
    parser.add_argument("--model", required=True, help="model group in the registry, e.g. defect-cls")
    parser.add_argument("--version", required=True, type=int, help="version number (must be Approved)")
    parser.add_argument(
        "--target", required=True, action="append", dest="targets", metavar="TARGET",
        help="thing group or thing (group:NAME / thing:NAME to be explicit); repeat for several",
    )  # fmt: skip
    parser.add_argument(
        "--role", choices=("primary", "shadow"), default="primary", help="how devices serve it"
    )
    parser.add_argument("--alias", help="alias the devices move to this version (default: the model's)")
    _rollout_args(parser)
    parser.add_argument(
        "--no-rollback", action="store_true", help="rollback_on_failure false in the document"
    )
    parser.add_argument("--job-id", help="job id (default deploy-MODEL-VERSION-TIME-RANDOM)")
    parser.add_argument("--description", default="", help="kept with the job")
    add_registry_arguments(parser, required=True)
    _common(parser)
    parser.set_defaults(handler=_deploy)


def _rollout_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--waves", type=int, default=1, help="release to the things in this many batches")
    parser.add_argument(
        "--abort-threshold", type=float, metavar="PCT",
        help="stop the rollout when more than PCT%% of a wave's executions fail",
    )  # fmt: skip
    parser.add_argument(
        "--wave-pct", metavar="P1,P2,...",
        help="cumulative share of the things reached by each wave, e.g. 1,10,50,100 (instead of --waves)",
    )  # fmt: skip


def _rollout(args: argparse.Namespace) -> Rollout:
    wave_pct = parse_wave_pct(args.wave_pct) if args.wave_pct else ()
    return Rollout(args.waves, args.abort_threshold, wave_pct)


@reports_errors
def _deploy(args: argparse.Namespace) -> int:
    rollout = _rollout(args)
    mv = approved_version(open_registry(args), args.model, args.version)
    document = deploy_document(mv, args.role, alias=args.alias, rollback_on_failure=not args.no_rollback)
    job_id = args.job_id or new_job_id(args.model, args.version)
    with _open(args) as store:
        job = store.jobs.create_job(
            job_id, document, args.targets, rollout, description=args.description, created_by=current_user()
        )
        executions = store.jobs.executions(job.job_id)
    if args.json:
        _print_json({**job.to_json(), "executions": [e.to_json() for e in executions]})
    else:
        print(f"job {job.job_id}: {args.model}:{args.version} ({args.role}) to {len(executions)} thing(s) "
              f"in {job.rollout.waves} wave(s)")  # fmt: skip
        print(f"follow it with: edgeinspect jobs show {job.job_id}")
    return 0


# ---- set-threshold ---------------------------------------------------------------------------

MANIFEST_WORD = "manifest"
"""``--image manifest``: back to the package's own threshold."""
_UNSET: Any = object()
"""--image/--pixel not given (``None`` means "the package's")."""


def _register_set_threshold(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "set-threshold",
        help="override a model's thresholds on things or groups (a set_threshold job, no new package)",
    )
    parser.add_argument("--model", required=True, help="model name as deployed, e.g. defect-cls")
    parser.add_argument("--version", help="only this version (default: every version of the model)")
    parser.add_argument(
        "--image", type=_threshold_arg, metavar="P", default=_UNSET,
        help=f"image threshold 0..1 (defect when score >= P); '{MANIFEST_WORD}': the package's again",
    )  # fmt: skip
    parser.add_argument(
        "--pixel", type=_threshold_arg, metavar="P", default=_UNSET,
        help=f"pixel threshold 0..1 (segmenters); '{MANIFEST_WORD}': the package's again",
    )  # fmt: skip
    parser.add_argument("--clear", action="store_true", help="both back to the package's thresholds")
    parser.add_argument(
        "--target", required=True, action="append", dest="targets", metavar="TARGET",
        help="thing group or thing (group:NAME / thing:NAME to be explicit); repeat for several",
    )  # fmt: skip
    parser.add_argument("--reason", default="", help="why (kept on the device and in the audit event)")
    parser.add_argument("--by", help="who asks (default: the login name); recorded on the device")
    parser.add_argument("--job-id", help="job id (default threshold-MODEL-VERSION-TIME-RANDOM)")
    _rollout_args(parser)
    _common(parser)
    parser.set_defaults(handler=_set_threshold)


def _threshold_arg(text: str) -> float | None:
    if text.strip().lower() == MANIFEST_WORD:
        return None
    try:
        return parse_threshold_text(text)
    except ThresholdError as exc:
        raise argparse.ArgumentTypeError(f"{exc.message} (or '{MANIFEST_WORD}')") from None


@reports_errors
def _set_threshold(args: argparse.Namespace) -> int:
    given = {name: getattr(args, name) for name in ("image", "pixel") if getattr(args, name) is not _UNSET}
    if args.clear and given:
        raise FleetError("--clear sets both back to the package's", hint="drop --image/--pixel")
    changes: dict[str, float | None] = {"image": None, "pixel": None} if args.clear else given
    user = args.by or current_user()
    document = threshold_document(args.model, args.version, changes, requested_by=user, reason=args.reason)
    job_id = args.job_id or new_job_id(args.model, args.version or "all", kind="threshold")
    with _open(args) as store:
        job = store.jobs.create_job(
            job_id, document, args.targets, _rollout(args), description=args.reason, created_by=user
        )
        executions = store.jobs.executions(job.job_id)
    if args.json:
        _print_json({**job.to_json(), "executions": [e.to_json() for e in executions]})
    else:
        values = ", ".join(f"{k}={'manifest' if v is None else f'{v:g}'}" for k, v in changes.items())
        print(f"job {job.job_id}: {args.model}:{args.version or '*'} {values} on {len(executions)} thing(s)")
        print(f"follow it with: edgeinspect jobs show {job.job_id}")
    return 0


# ---- jobs ------------------------------------------------------------------------------------


def _register_jobs(subparsers: Any) -> None:
    parser = subparsers.add_parser("jobs", help="list, show or cancel deployment jobs")
    sub = parser.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="jobs, newest first")
    listing.add_argument("--status", choices=("IN_PROGRESS", "COMPLETED", "CANCELED"))
    listing.add_argument("--limit", type=int, default=50)
    _common(listing)
    listing.set_defaults(handler=_jobs_list)
    show = sub.add_parser("show", help="one job and each thing's execution")
    show.add_argument("job_id", metavar="JOB")
    _common(show)
    show.set_defaults(handler=_jobs_show)
    create = sub.add_parser("create", help="a job with any document (remove_model, the sample's new_model)")
    create.add_argument("--document", required=True, type=Path, help="JSON file with the job document")
    create.add_argument("--target", required=True, action="append", dest="targets", metavar="TARGET")
    create.add_argument("--job-id", required=True, help="job id (a-z A-Z 0-9 _ -, at most 64)")
    _rollout_args(create)
    create.add_argument("--description", default="", help="kept with the job")
    _common(create)
    create.set_defaults(handler=_jobs_create)
    cancel = sub.add_parser("cancel", help="cancel the executions not started yet (--force: all)")
    cancel.add_argument("job_id", metavar="JOB")
    cancel.add_argument("--reason", default="", help="kept with the job")
    cancel.add_argument("--force", action="store_true", help="also cancel executions already IN_PROGRESS")
    _common(cancel)
    cancel.set_defaults(handler=_jobs_cancel)


@reports_errors
def _jobs_list(args: argparse.Namespace) -> int:
    with _open(args) as store:
        jobs = [
            (job, store.jobs.executions(job.job_id)) for job in store.jobs.list_jobs(args.status, args.limit)
        ]
    if args.json:
        _print_json([{**job.to_json(), "executions": [e.to_json() for e in execs]} for job, execs in jobs])
    elif not jobs:
        print("no jobs", file=sys.stderr)
    else:
        print(jobs_table(jobs))
    return 0


def _show_job(args: argparse.Namespace, store: FleetStore, job_id: str) -> None:
    job = store.jobs.get_job(job_id)
    executions = store.jobs.executions(job_id)
    if args.json:
        _print_json({**job.to_json(), "executions": [e.to_json() for e in executions]})
    else:
        print(job_details(job, executions))


@reports_errors
def _jobs_show(args: argparse.Namespace) -> int:
    with _open(args) as store:
        _show_job(args, store, args.job_id)
    return 0


@reports_errors
def _jobs_create(args: argparse.Namespace) -> int:
    rollout = _rollout(args)
    try:
        document = json.loads(args.document.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FleetError(
            f"cannot read the job document {args.document}: {exc}", hint="give a JSON file"
        ) from exc
    if not isinstance(document, dict):
        raise FleetError(f"the job document in {args.document} is not a JSON object", hint="{...}")
    with _open(args) as store:
        store.jobs.create_job(
            args.job_id,
            document,
            args.targets,
            rollout,
            description=args.description,
            created_by=current_user(),
        )
        _show_job(args, store, args.job_id)
    return 0


@reports_errors
def _jobs_cancel(args: argparse.Namespace) -> int:
    with _open(args) as store:
        store.jobs.cancel_job(args.job_id, args.reason, force=args.force)
        _show_job(args, store, args.job_id)
    return 0


# ---- devices ---------------------------------------------------------------------------------


def _register_devices(subparsers: Any) -> None:
    parser = subparsers.add_parser("devices", help="the device registry: last seen, loaded models, groups")
    sub = parser.add_subparsers(dest="devices_command", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="every device, its groups, last seen and loaded models")
    listing.add_argument("--group", help="only the things of this group")
    _common(listing)
    listing.set_defaults(handler=_devices_list)
    add = sub.add_parser("add", help="register a thing (before it connects) and put it in groups")
    add.add_argument("thing", help="thing name")
    add.add_argument("--group", action="append", default=[], dest="groups", help="thing group; repeatable")
    _common(add, json_flag=False)
    add.set_defaults(handler=_devices_add)


@reports_errors
def _devices_list(args: argparse.Namespace) -> int:
    with _open(args) as store:
        devices = store.devices.devices(args.group)
    if args.json:
        _print_json([d.to_json() for d in devices])
    elif not devices:
        print("no devices", file=sys.stderr)
    else:
        print(devices_table(devices))
    return 0


@reports_errors
def _devices_add(args: argparse.Namespace) -> int:
    with _open(args) as store:
        new = store.devices.add_thing(args.thing)
        for group in args.groups:
            store.devices.add_to_group(group, [args.thing])
    groups = f" in {', '.join(args.groups)}" if args.groups else ""
    print(f"{args.thing}: {'registered' if new else 'known already'}{groups}")
    return 0
