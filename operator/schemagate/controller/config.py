"""What the operator was started with: its flags, as the reconciles and kopf handlers read them.

One module of its own so that the kopf handler modules (handlers, fleet_handlers, gate_handlers) and the
reconciles read one CONFIG without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from schemagate.controller import allow, leader


@dataclass(frozen=True)
class Options:
    job_image: str = "schemagate:dev"
    # What the installer allows beyond the runner image and the job ServiceAccount (controller/allow.py)
    allowed_images: tuple[str, ...] = ()
    allowed_service_accounts: tuple[str, ...] = ()
    job_service_account: str | None = None
    backup_claim_label: str = allow.DEFAULT_BACKUP_CLAIM_LABEL
    allowed_database_hosts: tuple[str, ...] = ()  # empty: any host a Secret names
    # Cluster-wide mode: the namespaces the operator acts in (its RBAC's RoleBindings); empty: every one
    act_namespaces: tuple[str, ...] = ()

    def allowlist(self) -> allow.Allowlist:
        return allow.Allowlist(self.job_image, self.allowed_images, self.allowed_service_accounts,
                               self.job_service_account, self.backup_claim_label)



@dataclass(frozen=True)
class Election:
    namespace: str
    lease: str
    timing: leader.Timing


@dataclass
class Config:
    """Set by main before kopf starts; read at startup."""

    namespaces: list[str] = field(default_factory=list)
    resync_seconds: float = 30.0
    full_resync_seconds: float = 600.0  # a settled object's Secret and database (controller/resync.py)
    options: Options = field(default_factory=Options)
    election: Election | None = None  # None: act at once (one replica)


CONFIG = Config()
