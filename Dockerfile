# The operator image; the same image runs the migration Jobs (`schemagate migrate ...`).
#
# BASE is any Debian-based image with Python 3.11 and its venv module. Users build on the public
# python:3.11-slim-bookworm; our tests build this same file on a Debian bookworm made locally with
# debootstrap (devenv/images.py), since nothing can be pulled there. Bookworm, not trixie: its
# postgresql-client is 15, the pg_dump that spec.backup runs (pg_dump dumps servers up to its own
# major version; for a newer server build FROM a base with a matching postgresql-client).
# Pinned by digest so a rebuild gets the same base (update it with the tag; this digest could not be
# checked against the registry from the machine that wrote it, which has none).
ARG BASE=python:3.11.10-slim-bookworm@sha256:5148c0e4bbb64271bca1d3322360ebf4bfb7564507ae32dd639322e4952a6b16

FROM ${BASE} AS build
# A build on a network that re-signs TLS passes its CA bundle here (PIP_CERT); empty means pip's own.
ARG PIP_CERT=
WORKDIR /src
RUN python3 -m venv /opt/schemagate
# Every dependency from the lock files, each checked against its hash; then our package alone.
COPY requirements/ ./requirements/
RUN PIP_CERT="${PIP_CERT}" /opt/schemagate/bin/pip install --no-cache-dir --disable-pip-version-check \
      --require-hashes -r requirements/build.lock \
 && PIP_CERT="${PIP_CERT}" /opt/schemagate/bin/pip install --no-cache-dir --disable-pip-version-check \
      --require-hashes --only-binary :all: -r requirements/runtime.lock
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN PIP_CERT="${PIP_CERT}" /opt/schemagate/bin/pip install --no-cache-dir --disable-pip-version-check \
      --no-deps --no-build-isolation . \
 && /opt/schemagate/bin/pip freeze --all > /opt/schemagate/requirements.installed.txt

FROM ${BASE}
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PATH=/opt/schemagate/bin:/usr/local/bin:/usr/bin:/bin
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client \
 && rm -rf /var/lib/apt/lists/* \
 && dpkg-query -W -f '${Package}=${Version}\n' > /opt/packages.installed.txt
# A numeric UID, so `runAsNonRoot: true` (Pod Security "restricted") can verify it, with passwd and group
# entries written directly: useradd --system refuses UIDs above SYS_UID_MAX and made no group.
RUN echo 'schemagate:x:65532:65532:schemagate:/nonexistent:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'schemagate:x:65532:' >> /etc/group
COPY --from=build /opt/schemagate /opt/schemagate
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["schemagate"]
CMD ["--help"]
