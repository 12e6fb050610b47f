# auxtune: the REST service (`auxtune serve`) and its workers (`auxtune worker`) in one image.
#
#   CPU (default):  docker build -t auxtune .
#   GPU workers:    docker build -t auxtune:cuda \
#                     --build-arg BASE_IMAGE=nvidia/cuda:12.4.1-runtime-ubuntu22.04 \
#                     --build-arg TORCH_SPEC="torch==2.13.0" .
#
# TORCH_SPEC is what `pip install` gets for torch, installed first and pinned: an unpinned torch would pull
# whatever the resolver likes. The default takes the CPU-only wheel from PyTorch's CPU index (small image).
# `torch==2.13.0` from PyPI is the CUDA 12 build (it brings its CUDA libraries as nvidia-* wheels); to pick
# another CUDA, use PyTorch's index for it: TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cuXYZ".
# Keep the version equal to constraints.txt: the project is then installed under that constraint.
# See docs/deploy.md (what was verified, what was not: no image is built in this repository's CI).

ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ARG TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DEBIAN_FRONTEND=noninteractive

# python:3.11-slim has Python 3.11; a CUDA (Ubuntu 22.04) base gets it from the distribution.
RUN if ! command -v python3.11 >/dev/null 2>&1; then \
        apt-get update \
        && apt-get install -y --no-install-recommends python3.11 python3.11-venv ca-certificates \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY constraints.txt ./
# 1. torch, pinned, alone: its layer stays cached while the project's code changes.
RUN pip install --upgrade pip && pip install ${TORCH_SPEC}
# 2. the project, under the same constraints (torch stays the one installed above).
COPY pyproject.toml README.md ./
COPY tuner ./tuner
COPY storage ./storage
COPY api ./api
RUN pip install -c constraints.txt . \
    && python -c "import api.main, storage, tuner.cli, torch; print('torch', torch.__version__)"

# Not root: the service and workers run as `auxtune` (uid 10001, numeric so that runAsNonRoot can check it);
# /data holds the default SQLite store and the uploaded datasets: mount a volume there to keep them.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin auxtune \
    && mkdir -p /data/datasets && chown -R auxtune:auxtune /data
USER 10001:10001
WORKDIR /data
ENV AUXTUNE_DATA_DIR=/data/datasets

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"

# The API plus one embedded worker on the SQLite file /data/auxtune.db; the first admin token is printed once
# in the log (or set AUXTUNE_ADMIN_TOKEN). docker-compose.yml runs the API and workers apart on PostgreSQL.
CMD ["auxtune", "serve", "--host", "0.0.0.0", "--port", "8000"]
