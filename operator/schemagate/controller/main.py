"""`schemagate operator`: run the SchemaMigration controller (kopf, standalone: one replica, no peering)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

from schemagate.controller.allow import DEFAULT_BACKUP_CLAIM_LABEL, parse_label


def _env_list(name: str) -> list[str]:
    return [v.strip() for v in os.environ.get(name, "").split(",") if v.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--namespace", "-n", action="append", default=[], metavar="NS",
                       help="watch this namespace (repeatable)")
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch every namespace (the default)")
    parser.add_argument("--act-namespace", action="append", default=_env_list("SCHEMAGATE_ACT_NAMESPACES"),
                        metavar="NS", help="with --all-namespaces: act (create Jobs, read Secrets, gate pods) only "
                                           "here, report NamespaceNotAllowed elsewhere (repeatable; env "
                                           "SCHEMAGATE_ACT_NAMESPACES, comma-separated)")
    parser.add_argument("--liveness", metavar="URL", help="serve a liveness probe, e.g. http://0.0.0.0:8080/healthz")
    parser.add_argument("--job-image", default=os.environ.get("SCHEMAGATE_JOB_IMAGE", "schemagate:dev"),
                        help="runner image for migration Jobs without spec.job.image (env SCHEMAGATE_JOB_IMAGE)")
    parser.add_argument("--allow-image", action="append", default=_env_list("SCHEMAGATE_ALLOWED_IMAGES"),
                        metavar="REF", help="an image (exact reference) spec.job.image or spec.source.image may "
                                            "name besides --job-image (repeatable; env SCHEMAGATE_ALLOWED_IMAGES, "
                                            "comma-separated)")
    parser.add_argument("--job-service-account", default=os.environ.get("SCHEMAGATE_JOB_SERVICE_ACCOUNT") or None,
                        metavar="NAME", help="ServiceAccount of Jobs whose spec names none, always allowed "
                                             "(env SCHEMAGATE_JOB_SERVICE_ACCOUNT; unset: the namespace's default)")
    parser.add_argument("--allow-service-account", action="append",
                        default=_env_list("SCHEMAGATE_ALLOWED_SERVICE_ACCOUNTS"), metavar="NAME",
                        help="another ServiceAccount spec.job.serviceAccountName may name (repeatable; env "
                             "SCHEMAGATE_ALLOWED_SERVICE_ACCOUNTS, comma-separated)")
    parser.add_argument("--backup-claim-label", metavar="KEY=VALUE",
                        default=os.environ.get("SCHEMAGATE_BACKUP_CLAIM_LABEL") or DEFAULT_BACKUP_CLAIM_LABEL,
                        help="label a PersistentVolumeClaim needs to be a backup target (env "
                             "SCHEMAGATE_BACKUP_CLAIM_LABEL; default %(default)s)")
    parser.add_argument("--allow-database-host", action="append",
                        default=_env_list("SCHEMAGATE_ALLOWED_DATABASE_HOSTS"), metavar="HOST",
                        help="a database host (exact, or *.suffix) the operator may dial; repeatable; none given: "
                             "any (env SCHEMAGATE_ALLOWED_DATABASE_HOSTS, comma-separated)")
    parser.add_argument("--resync-seconds", type=float,
                        default=float(os.environ.get("SCHEMAGATE_RESYNC_SECONDS", "30")),
                        help="re-check every SchemaMigration this often (env SCHEMAGATE_RESYNC_SECONDS)")
    parser.add_argument("--verbose", "-v", action="store_true")


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # aiohttp.access: kopf's health endpoint logs every request at INFO, i.e. each probe of each pod.
    for noisy in ("kubernetes.client.rest", "urllib3", "kopf.objects", "kopf.activities.startup", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run(args: argparse.Namespace) -> int:
    import kopf

    from schemagate.controller import handlers
    from schemagate.controller.reconcile import Options

    configure_logging(args.verbose)
    parse_label(args.backup_claim_label)  # a bad flag stops the start, not every backup later
    options = Options(job_image=args.job_image, allowed_images=tuple(args.allow_image),
                      allowed_service_accounts=tuple(args.allow_service_account),
                      job_service_account=args.job_service_account, backup_claim_label=args.backup_claim_label,
                      allowed_database_hosts=tuple(args.allow_database_host),
                      act_namespaces=tuple(args.act_namespace) if not args.namespace else ())
    handlers.CONFIG = handlers.Config(namespaces=list(args.namespace), resync_seconds=args.resync_seconds,
                                      options=options)
    try:
        kopf.run(standalone=True, namespaces=list(args.namespace), clusterwide=not args.namespace,
                 liveness_endpoint=args.liveness)
    except KeyboardInterrupt:
        pass
    return 0
