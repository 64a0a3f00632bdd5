"""`schemagate operator`: run the SchemaMigration controller (kopf, standalone: one replica, no peering)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os


def add_arguments(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--namespace", "-n", action="append", default=[], metavar="NS",
                       help="watch this namespace (repeatable)")
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch every namespace (the default)")
    parser.add_argument("--liveness", metavar="URL", help="serve a liveness probe, e.g. http://0.0.0.0:8080/healthz")
    parser.add_argument("--job-image", default=os.environ.get("SCHEMAGATE_JOB_IMAGE", "schemagate:dev"),
                        help="runner image for migration Jobs without spec.job.image (env SCHEMAGATE_JOB_IMAGE)")
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
    handlers.CONFIG = handlers.Config(namespaces=list(args.namespace), resync_seconds=args.resync_seconds,
                                      options=Options(job_image=args.job_image))
    try:
        kopf.run(standalone=True, namespaces=list(args.namespace), clusterwide=not args.namespace,
                 liveness_endpoint=args.liveness)
    except KeyboardInterrupt:
        pass
    return 0
