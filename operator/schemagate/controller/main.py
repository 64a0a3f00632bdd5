"""`schemagate operator`: run the SchemaMigration controller (kopf standalone; with --leader-elect, any number
of replicas of which the Lease's holder acts: controller/leader.py)."""

from __future__ import annotations

import argparse
import logging
import os

from schemagate import logs
from schemagate.controller import leader
from schemagate.controller.allow import DEFAULT_BACKUP_CLAIM_LABEL, parse_label


def _list_flag(parser: argparse.ArgumentParser, flag: str, *, env: str, metavar: str, help: str) -> None:
    """A repeatable flag whose default is the comma-separated list in environment variable `env`."""
    default = [v.strip() for v in os.environ.get(env, "").split(",") if v.strip()]
    parser.add_argument(flag, action="append", default=default, metavar=metavar,
                        help=f"{help} (repeatable; env {env}, comma-separated)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--namespace", "-n", action="append", default=[], metavar="NS",
                       help="watch this namespace (repeatable)")
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch every namespace (the default)")
    _list_flag(parser, "--act-namespace", env="SCHEMAGATE_ACT_NAMESPACES", metavar="NS",
               help="with --all-namespaces: act (create Jobs, read Secrets, gate pods) only here, report "
                    "NamespaceNotAllowed elsewhere")
    parser.add_argument("--liveness", metavar="URL", help="serve a liveness probe, e.g. http://0.0.0.0:8080/healthz")
    parser.add_argument("--job-image", default=os.environ.get("SCHEMAGATE_JOB_IMAGE", "schemagate:dev"),
                        help="runner image for migration Jobs without spec.job.image (env SCHEMAGATE_JOB_IMAGE)")
    _list_flag(parser, "--allow-image", env="SCHEMAGATE_ALLOWED_IMAGES", metavar="REF",
               help="an image (exact reference) spec.job.image or spec.source.image may name besides --job-image")
    parser.add_argument("--job-service-account", default=os.environ.get("SCHEMAGATE_JOB_SERVICE_ACCOUNT") or None,
                        metavar="NAME", help="ServiceAccount of Jobs whose spec names none, always allowed "
                                             "(env SCHEMAGATE_JOB_SERVICE_ACCOUNT; unset: the namespace's default)")
    _list_flag(parser, "--allow-service-account", env="SCHEMAGATE_ALLOWED_SERVICE_ACCOUNTS", metavar="NAME",
               help="another ServiceAccount spec.job.serviceAccountName may name")
    parser.add_argument("--backup-claim-label", metavar="KEY=VALUE",
                        default=os.environ.get("SCHEMAGATE_BACKUP_CLAIM_LABEL") or DEFAULT_BACKUP_CLAIM_LABEL,
                        help="label a PersistentVolumeClaim needs to be a backup target (env "
                             "SCHEMAGATE_BACKUP_CLAIM_LABEL; default %(default)s)")
    _list_flag(parser, "--allow-database-host", env="SCHEMAGATE_ALLOWED_DATABASE_HOSTS", metavar="HOST",
               help="a database host (exact, or *.suffix) the operator may dial; none given: any")
    parser.add_argument("--resync-seconds", type=float,
                        default=os.environ.get("SCHEMAGATE_RESYNC_SECONDS", "30"),
                        help="re-check every SchemaMigration this often (env SCHEMAGATE_RESYNC_SECONDS); one "
                             "at rest costs a ConfigMap version read, unless --full-resync-seconds is due")
    parser.add_argument("--full-resync-seconds", type=float,
                        default=os.environ.get("SCHEMAGATE_FULL_RESYNC_SECONDS", "600"),
                        help="a SchemaMigration at rest (Ready, no Job, no pod held) whose object and ConfigMaps "
                             "did not change has its Secret and database read again this often "
                             "(env SCHEMAGATE_FULL_RESYNC_SECONDS; default %(default)s)")
    # Defaults from the environment stay strings: argparse converts them only when the flag is not given, and
    # says which flag is wrong (a Service named schemagate-metrics once put tcp://IP:PORT in this variable).
    parser.add_argument("--metrics-port", type=int, default=os.environ.get("SCHEMAGATE_METRICS_PORT", "8081"),
                        metavar="PORT", help="serve Prometheus metrics on http://0.0.0.0:PORT/metrics; 0: off "
                                             "(env SCHEMAGATE_METRICS_PORT; default %(default)s)")
    parser.add_argument("--log-format", choices=logs.FORMATS, default=os.environ.get("SCHEMAGATE_LOG_FORMAT", "text"),
                        help="text (for people) or json (one object a line; env SCHEMAGATE_LOG_FORMAT)")
    election = parser.add_argument_group("leader election (run several replicas; only the leader acts)")
    election.add_argument("--leader-elect", action="store_true",
                          default=os.environ.get("SCHEMAGATE_LEADER_ELECT", "").lower() in ("1", "true", "yes"),
                          help="hold a coordination.k8s.io Lease before acting (env SCHEMAGATE_LEADER_ELECT)")
    election.add_argument("--leader-election-namespace", default=os.environ.get("POD_NAMESPACE") or None,
                          metavar="NS", help="namespace of the leader Lease (env POD_NAMESPACE)")
    election.add_argument("--leader-election-lease", default=leader.DEFAULT_LEASE_NAME, metavar="NAME",
                          help="name of the leader Lease (default %(default)s)")
    defaults = leader.Timing()
    election.add_argument("--lease-duration", type=float, default=defaults.lease_duration, metavar="SECONDS",
                          help="a standby takes over once the Lease stood unrenewed this long (default %(default)g)")
    election.add_argument("--renew-deadline", type=float, default=defaults.renew_deadline, metavar="SECONDS",
                          help="the leader stops acting when it could not renew for this long (default %(default)g)")
    election.add_argument("--retry-period", type=float, default=defaults.retry_period, metavar="SECONDS",
                          help="how often the Lease is looked at and renewed (default %(default)g)")
    parser.add_argument("--verbose", "-v", action="store_true")


def configure_logging(verbose: bool, fmt: str = "text") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logs.formatter(fmt))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    # aiohttp.access: kopf's health endpoint logs every request at INFO, i.e. each probe of each pod.
    for noisy in ("kubernetes.client.rest", "urllib3", "kopf.objects", "kopf.activities.startup", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run(args: argparse.Namespace) -> int:
    import kopf

    from schemagate.controller import (
        config,
        handlers,  # noqa: F401  registers every kopf handler: without it kopf runs none
    )

    configure_logging(args.verbose, args.log_format)
    parse_label(args.backup_claim_label)  # a bad flag stops the start, not every backup later
    election: config.Election | None = None
    if args.leader_elect:
        if not args.leader_election_namespace:
            raise SystemExit("schemagate operator: --leader-elect needs --leader-election-namespace (or env "
                             "POD_NAMESPACE, which the chart sets from the pod's own namespace)")
        try:
            timing = leader.Timing(args.lease_duration, args.renew_deadline, args.retry_period)
        except ValueError as e:
            raise SystemExit(f"schemagate operator: {e}") from None
        election = config.Election(args.leader_election_namespace, args.leader_election_lease, timing)
    if args.metrics_port:
        from schemagate.controller import metrics

        metrics.serve(args.metrics_port)
    options = config.Options(job_image=args.job_image, allowed_images=tuple(args.allow_image),
                      allowed_service_accounts=tuple(args.allow_service_account),
                      job_service_account=args.job_service_account, backup_claim_label=args.backup_claim_label,
                      allowed_database_hosts=tuple(args.allow_database_host),
                      act_namespaces=tuple(args.act_namespace) if not args.namespace else ())
    config.CONFIG = config.Config(namespaces=list(args.namespace), resync_seconds=args.resync_seconds,
                                  full_resync_seconds=args.full_resync_seconds, options=options,
                                  election=election)
    try:
        kopf.run(standalone=True, namespaces=list(args.namespace), clusterwide=not args.namespace,
                 liveness_endpoint=args.liveness)
    except KeyboardInterrupt:
        pass
    return 0
