"""What the installer allows migration Jobs to run (pure): images, ServiceAccounts, backup claims.

Whoever may create a SchemaMigration must not gain, through the operator, what they could not do by
creating a Pod themselves: run any image, as any ServiceAccount of the namespace, with any volume. So
the Job only ever runs what the *installer* allowed (chart values → operator flags); anything else
stops the SchemaMigration as Stalled with a reason of its own, before anything is created.

The chart's ValidatingAdmissionPolicy refuses the same images and ServiceAccounts at admission; this
check is the one that holds when the policy is absent (an older cluster, a policy removed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from schemagate.api import reasons
from schemagate.api import v1alpha1 as api

IMAGE_NOT_ALLOWED = reasons.IMAGE_NOT_ALLOWED
SERVICE_ACCOUNT_NOT_ALLOWED = reasons.SERVICE_ACCOUNT_NOT_ALLOWED
CLAIM_NOT_ALLOWED = reasons.BACKUP_CLAIM_NOT_ALLOWED
DATABASE_NOT_ALLOWED = reasons.DATABASE_NOT_ALLOWED

DEFAULT_BACKUP_CLAIM_LABEL = f"{api.GROUP}/backup=true"
NAMESPACE_DEFAULT_SA = "default"


@dataclass(frozen=True)
class Allowlist:
    """The installer's choices. `job_image` (the operator's --job-image) is always allowed as the runner;
    `job_service_account` is what a Job without spec.job.serviceAccountName runs as (None: the namespace's
    `default`, which is then allowed: it is what any Pod of the namespace gets)."""

    job_image: str
    images: tuple[str, ...] = ()
    service_accounts: tuple[str, ...] = ()
    job_service_account: str | None = None
    backup_claim_label: str = DEFAULT_BACKUP_CLAIM_LABEL

    def allowed_images(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.job_image, *self.images)))

    def allowed_service_accounts(self) -> tuple[str, ...]:
        first = self.job_service_account or NAMESPACE_DEFAULT_SA
        return tuple(dict.fromkeys((first, *self.service_accounts)))

    def service_account(self, spec: api.SchemaMigrationSpec) -> str | None:
        """The ServiceAccount the Job's pod runs as (None: the namespace's default)."""
        return spec.job.service_account_name or self.job_service_account


@dataclass(frozen=True)
class Refusal:
    reason: str
    message: str


def _listed(values: tuple[str, ...]) -> str:
    return ", ".join(values) if values else "none"


def image_allowed(image: str, allowed: tuple[str, ...]) -> bool:
    """Exact references only: a tag or a prefix would let whoever can push to that repository choose
    what runs with the Job's token."""
    return image in allowed


def check(spec: api.SchemaMigrationSpec, allow: Allowlist) -> Refusal | None:
    """The first thing in `spec` the installer did not allow, or None."""
    images = allow.allowed_images()
    job_image = spec.job.image
    if job_image and not image_allowed(job_image, images):
        return Refusal(IMAGE_NOT_ALLOWED,
                       f"spec.job.image {job_image!r} is not an allowed runner image; allowed: {_listed(images)}. "
                       f"An admin allows images with the schemagate chart's jobs.allowedImages "
                       f"(operator flag --allow-image); nothing was created")
    if spec.source.image is not None and not image_allowed(spec.source.image.image, images):
        return Refusal(IMAGE_NOT_ALLOWED,
                       f"spec.source.image.image {spec.source.image.image!r} is not an allowed image (its init "
                       f"container runs a shell with the Job's identity); allowed: {_listed(images)}. An admin "
                       f"allows images with the schemagate chart's jobs.allowedImages (operator flag "
                       f"--allow-image); nothing was created")
    account = allow.service_account(spec) or NAMESPACE_DEFAULT_SA
    accounts = allow.allowed_service_accounts()
    if account not in accounts:
        return Refusal(SERVICE_ACCOUNT_NOT_ALLOWED,
                       f"spec.job.serviceAccountName {account!r} is not an allowed ServiceAccount for migration "
                       f"Jobs; allowed: {_listed(accounts)}. An admin allows ServiceAccounts with the schemagate "
                       f"chart's jobs.allowedServiceAccounts (operator flag --allow-service-account); nothing was "
                       f"created")
    return None


def parse_label(selector: str) -> tuple[str, str]:
    """`key=value` → (key, value). Raises ValueError naming the flag's expected form."""
    key, sep, value = selector.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"backup claim label {selector!r} must be key=value, e.g. {DEFAULT_BACKUP_CLAIM_LABEL}")
    return key.strip(), value.strip()


def check_claim(namespace: str, claim: str, labels: Mapping[str, str] | None, allow: Allowlist) -> Refusal | None:
    """A backup claim is written to (and re-owned by fsGroup): only one its owner labelled for backups."""
    key, value = parse_label(allow.backup_claim_label)
    if (labels or {}).get(key) == value:
        return None
    return Refusal(CLAIM_NOT_ALLOWED,
                   f"PersistentVolumeClaim {namespace}/{claim} (spec.backup.claimName) is not labelled "
                   f"{key}={value}: migration Jobs write only to claims labelled for backups. Whoever owns the "
                   f"claim allows it with: kubectl -n {namespace} label pvc {claim} {key}={value} (the label is "
                   f"the schemagate chart's jobs.backupClaimLabel); nothing was created")


def _host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    host = host.strip().lower().strip("[]")
    for entry in (a.strip().lower() for a in allowed):
        if host == entry or (entry.startswith("*.") and host.endswith(entry[1:]) and len(host) > len(entry) - 1):
            return True
    return False


def check_database(where: str, conninfo: Mapping[str, str], allowed: tuple[str, ...]) -> Refusal | None:
    """Every address libpq would dial for `conninfo` (each of host and hostaddr, comma-separated; none:
    localhost) must be in `allowed` (exact, or `*.suffix`); an empty `allowed` allows any. Checked before
    anything connects, so a Secret cannot turn the operator into a port scanner of the cluster."""
    if not allowed:
        return None
    hosts = [h for key in ("host", "hostaddr") for h in str(conninfo.get(key) or "").split(",") if h.strip()]
    for host in hosts or ["localhost"]:
        if not _host_allowed(host, allowed):
            return Refusal(DATABASE_NOT_ALLOWED,
                           f"{where} names database host {host!r}, which is not an allowed database host; "
                           f"allowed: {_listed(allowed)}. An admin allows hosts with the schemagate chart's "
                           f"databases.allowedHosts (operator flag --allow-database-host); nothing was dialled")
    return None
