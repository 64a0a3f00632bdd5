# The operator image; the same image runs the migration Jobs (`schemagate migrate ...`).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
# pg_dump for spec.backup (migrate --backup-file). Debian's client: it dumps servers up to its own major
# version; for a newer server build FROM an image with a matching postgresql-client.
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /install /usr/local
# Numeric UID so `runAsNonRoot: true` (Pod Security "restricted") can verify it without a passwd lookup.
RUN useradd --system --uid 65532 --no-create-home --shell /usr/sbin/nologin schemagate
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["schemagate"]
CMD ["--help"]
