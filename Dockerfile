# One Dockerfile, two targets:
#   app          — the API and the CPU worker: Python 3.11, the CPU build of torch 2.13.0.
#   vllm-worker  — a GPU worker built on the vLLM project's own image (VLLM_IMAGE), whose torch
#                  and vLLM are kept as they are; only ParityScope is added.
# docker-compose.yml builds both.

ARG VLLM_IMAGE=vllm/vllm-openai:v0.8.5

# What both targets install: the project's sources, copied from the build context once.
FROM scratch AS source
WORKDIR /opt/parityscope
COPY pyproject.toml constraints.txt README.md ./
COPY backend backend
COPY workers workers
COPY parityscope parityscope
COPY migrations migrations
COPY frontend frontend

FROM python:3.11-slim AS app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PARITYSCOPE_CHECKPOINT_DIR=/var/cache/parityscope/checkpoints
WORKDIR /opt/parityscope
COPY --from=source /opt/parityscope ./
# The CPU wheel index first, so the constrained torch==2.13.0 is the CPU build, not CUDA's.
RUN pip install --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple \
        -c constraints.txt '.[server,worker]'
RUN useradd --create-home parityscope && mkdir -p /var/cache/parityscope/checkpoints \
    && chown -R parityscope /var/cache/parityscope
USER parityscope
EXPOSE 8000
CMD ["parityscope", "serve", "--host", "0.0.0.0", "--port", "8000"]

FROM ${VLLM_IMAGE} AS vllm-worker
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PARITYSCOPE_CHECKPOINT_DIR=/var/cache/parityscope/checkpoints
WORKDIR /opt/parityscope
COPY --from=source /opt/parityscope ./
# No constraints here: the image's own torch (CUDA) and transformers satisfy the worker extra
# and must stay the versions vLLM was built against. The `worker` command belongs to the server's
# command line, hence the server extra beside the worker's.
RUN python3 -m pip install '.[server,worker]' && mkdir -p /var/cache/parityscope/checkpoints
# The vLLM image's entrypoint is its OpenAI server; a worker is a ParityScope client instead.
ENTRYPOINT ["parityscope"]
CMD ["worker", "--help"]
