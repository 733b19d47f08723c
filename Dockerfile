# The runner image: the adapter app with the in-process backend, serving the models of the
# aiModels.json mounted at /config, with weights from the host's model folder at /models.
#
#   CPU:  docker build -t modal-ai-runner .
#   GPU:  docker build -t modal-ai-runner:cuda \
#           --build-arg BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 \
#           --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1

# The CUDA base images carry no Python; the python images carry no apt lists to clean.
RUN if ! command -v python3 >/dev/null; then \
        apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# torch first, from the index of the wanted build, so the package's pin is already met.
RUN pip install "torch==2.13.0" --index-url "${TORCH_INDEX_URL}"

WORKDIR /app
COPY pyproject.toml README.md ./
COPY adapter ./adapter
COPY contract ./contract
COPY functions ./functions
COPY pricing ./pricing
RUN pip install .

# Weights are mounted, never downloaded: the runner's own MODEL_DIR layout (a Hugging Face cache).
ENV MODEL_DIR=/models HF_HUB_OFFLINE=1 ADAPTER_DEMO_DIR=/models/demo
VOLUME ["/models"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s \
    CMD python3 -c "import json, sys, urllib.request; \
sys.exit(json.load(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4))['status'] == 'ERROR')"
# `python -m adapter` is `uvicorn adapter.main:app` plus the drain deadline and header timeout of
# the settings. `docker stop` kills after 10 s: the drain (plus 3 s for the backend to close)
# fits in it. Give it longer with `docker run --stop-timeout 30 -e ADAPTER_SHUTDOWN_DRAIN_S=25`.
ENV ADAPTER_SHUTDOWN_DRAIN_S=6
CMD ["python", "-m", "adapter", "--host", "0.0.0.0", "--port", "8000"]
