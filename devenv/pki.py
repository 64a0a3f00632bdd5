"""Certificates and keys for a throw-away control plane, made with the openssl CLI.

The `cryptography` package is not among our dependencies' dependencies, and adding it only for test
certificates is not worth it; openssl is on every machine that has Python's ssl module. ECDSA P-256
keys: generated instantly, accepted by kube-apiserver for serving, client and service-account signing.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

# Names the clients use for the apiserver: the node's address (hostnet.NODE_IP) from this machine, the
# first IP of --service-cluster-ip-range (hostnet.KUBERNETES_SERVICE_IP) and the Service's names from pods.
APISERVER_SANS = (
    "DNS:localhost", "DNS:kubernetes", "DNS:kubernetes.default", "DNS:kubernetes.default.svc",
    "DNS:kubernetes.default.svc.cluster.local", "IP:127.0.0.1", "IP:10.244.0.1", "IP:10.96.0.1",
)


class PKIError(RuntimeError):
    """openssl failed; the message carries its stderr."""


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise PKIError(f"openssl {args[0]} failed: {proc.stderr.strip()}")


def _ec_key(path: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path),
             cwd=path.parent)
    path.chmod(0o600)


def make_ca(directory: Path, name: str = "schemagate-dev-ca") -> KeyPair:
    key, cert = directory / f"{name}.key", directory / f"{name}.crt"
    _ec_key(key)
    _openssl("req", "-x509", "-new", "-key", str(key), "-subj", f"/CN={name}", "-days", "3650",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
             "-out", str(cert), cwd=directory)
    return KeyPair(cert, key)


def issue(ca: KeyPair, directory: Path, name: str, subject: str, *, server: bool = False,
          sans: tuple[str, ...] = ()) -> KeyPair:
    """A leaf certificate signed by `ca`; `subject` like "/O=system:masters/CN=admin"."""
    key, csr, cert, ext = (directory / f"{name}.{s}" for s in ("key", "csr", "crt", "ext"))
    _ec_key(key)
    _openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr), cwd=directory)
    usage = "serverAuth" if server else "clientAuth"
    lines = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment",
             f"extendedKeyUsage={usage}"]
    if sans:
        lines.append("subjectAltName=" + ",".join(sans))
    ext.write_text("\n".join(lines) + "\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
             "-CAcreateserial", "-days", "3650", "-extfile", str(ext), "-out", str(cert), cwd=directory)
    csr.unlink()
    ext.unlink()
    return KeyPair(cert, key)


def make_signing_key(directory: Path, name: str = "sa-signer") -> KeyPair:
    """The service-account token signing key; `cert` holds the public key (apiserver verifies with it)."""
    key, pub = directory / f"{name}.key", directory / f"{name}.pub"
    _ec_key(key)
    _openssl("pkey", "-in", str(key), "-pubout", "-out", str(pub), cwd=directory)
    return KeyPair(pub, key)
