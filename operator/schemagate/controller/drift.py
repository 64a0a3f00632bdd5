"""Drift (pure): an applied migration whose file changed, and accepting its new content from Kubernetes.

`kubectl annotate smig/NAME schemagate.io/accept-checksum=<version>:<sha256>` runs one Job,
`schemagate migrate accept-checksum <version>`, which records the file's current checksum. The sha256 in
the annotation must be the file's content now, so an approval for one edit never accepts a later one.
"""

from __future__ import annotations

import hashlib
import re

from schemagate.api import reasons
from schemagate.api.v1alpha1 import ACCEPT_CHECKSUM_ANNOTATION
from schemagate.controller import decide as p

_VALUE = re.compile(r"^\s*([0-9]+)\s*:\s*([0-9a-fA-F]{64})\s*$")


def edited(i: p.Inputs) -> list[p.MigrationFile]:
    return p.edited_after_applied(i.migrations or (), i.db)


def hint(name: str, m: p.MigrationFile) -> str:
    return f"kubectl annotate smig/{name} {ACCEPT_CHECKSUM_ANNOTATION}={m.version}:{m.sha256} --overwrite"


def accept_job(i: p.Inputs, version: int, sha256: str) -> str:
    token = hashlib.sha256(f"accept|{version}|{sha256}".encode()).hexdigest()[:7]
    return p.job_name(i.name, i.generation, "c" + token)


def resolve(i: p.Inputs, refused: p.Refuse, annotation: str | None) -> p.Action:
    """What to do about a ChecksumMismatch: explain how to accept it, or run (or report) the accept Job."""
    changed = edited(i)
    if not changed:
        return refused
    first = changed[0]
    more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
    told = (f"{first.name} (version {first.version}) changed after it was applied{more}: restore the file, or "
            f"accept its new content: {hint(i.name, first)}")
    if not annotation:
        return p.Refuse(reasons.CHECKSUM_MISMATCH, told, refused.target)
    match = _VALUE.match(annotation)
    if match is None:
        return p.Refuse(reasons.CHECKSUM_MISMATCH, f"annotation {ACCEPT_CHECKSUM_ANNOTATION}={annotation[:80]!r} is "
                                                   f"not <version>:<sha256>; nothing accepted. {told}", refused.target)
    version, sha = int(match.group(1)), match.group(2).lower()
    target = next((m for m in changed if m.version == version), None)
    if target is None:
        return p.Refuse(reasons.CHECKSUM_MISMATCH, f"annotation {ACCEPT_CHECKSUM_ANNOTATION} names version {version}, "
                                                   f"which has no checksum mismatch; nothing accepted. {told}",
                        refused.target)
    if sha != target.sha256:
        return p.Refuse(reasons.CHECKSUM_MISMATCH,
                        f"annotation {ACCEPT_CHECKSUM_ANNOTATION} accepts {sha[:12]}… for {target.name}, but the file "
                        f"is now {target.sha256[:12]}…; nothing accepted: {hint(i.name, target)}", refused.target)
    name = accept_job(i, version, sha)
    jobs = {j.name: j for j in i.jobs}
    mine = jobs.get(name)
    prior = next((r for r in i.runs if r.job == name), None)
    if mine is not None and mine.phase == "Running":
        return p.WaitForJob(name, refused.target, None)
    if mine is not None and mine.phase == "Failed":
        reason, message = p.describe_failure(None, mine.result, mine.message, name)
        return p.Refuse(reason, message, refused.target, None, name)
    if prior is not None and prior.outcome == "Failed":
        return p.Refuse(prior.reason or reasons.JOB_FAILED, prior.message or f"Job {name} failed", refused.target,
                        None, name)
    if (mine is not None and mine.phase == "Succeeded") or (prior is not None and prior.outcome == "Succeeded"):
        return p.Refuse(reasons.VERIFICATION_FAILED, f"Job {name} accepted {target.name} but the database still "
                                                     f"records another checksum for it", refused.target, None, name)
    other = next((j for j in i.jobs if j.phase == "Running"), None)
    if other is not None:
        return p.WaitForJob(other.name, refused.target, None)
    if i.lease.holder and not i.lease.expired and i.lease.holder != p.lease_holder(i.namespace, name):
        return p.WaitForLease(i.lease.holder, name, refused.target, None)
    return p.StartJob(name, name.rsplit("-", 1)[-1], version, None, "accept-checksum")
