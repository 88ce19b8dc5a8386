# The remediator operator image: `remediator run --config /etc/remediator/config.yaml`.
# Non-root (uid 10001), the runbooks and the shipped RL policy inside as package data.
#   docker build -t remediator:0.1.0 .                    # catalog proposer, rules/rl rankers
#   docker build --build-arg EXTRAS=llm -t remediator .   # + the LLM proposer and semantic matching
# The chart mounts its runbooks ConfigMap over the installed package's data/runbooks, at
# /opt/remediator/lib/python${PYTHON}/site-packages/remediator/data/runbooks (values.yaml runbooks.mountPath).
ARG PYTHON=3.11

FROM python:${PYTHON}-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/remediator
# torch first and pinned, the CPU wheel: an unpinned resolve pulls a multi-GB CUDA build.
RUN /opt/remediator/bin/pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
WORKDIR /src
COPY pyproject.toml README.md ./
COPY runbooks/ runbooks/
COPY remediator/ remediator/
COPY simulator/ simulator/
ARG EXTRAS=""
RUN /opt/remediator/bin/pip install ".${EXTRAS:+[$EXTRAS]}"
# Fail the build, not the pod, when the runbooks or the shipped policy did not make it into the package.
RUN cd / && /opt/remediator/bin/python -c "from remediator.catalog import load_catalog; from remediator.rank.registry import make_ranker; assert load_catalog().runbooks; make_ranker('rl')"

FROM python:${PYTHON}-slim
RUN groupadd --gid 10001 remediator \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin remediator
COPY --from=build /opt/remediator /opt/remediator
ENV PATH=/opt/remediator/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["remediator"]
CMD ["run", "--config", "/etc/remediator/config.yaml"]
