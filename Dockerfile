# syntax=docker/dockerfile:1
# One image per service, built from this one file:
#   docker build --build-arg SERVICE=scheduler --build-arg GRPC_PORT=7002 --build-arg HTTP_PORT=8002 \
#     --build-arg VERSION=$(git describe --tags --always) --build-arg COMMIT=$(git rev-parse --short HEAD) \
#     -t huifang/scheduler .
# (`make images` does it for the five services, and for the console, which
# serves HTTP only: --build-arg SERVICE=console --build-arg HTTP_PORT=8006,
# no GRPC_PORT.) The result is a static,
# non-root, distroless image holding one binary, which is also its own
# health check (`/huifang --healthcheck` asks /readyz).

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
ARG SERVICE
ARG GRPC_PORT
ARG HTTP_PORT
RUN test -n "${SERVICE}" -a -n "${HTTP_PORT}" -a \( -n "${GRPC_PORT}" -o "${SERVICE}" = console \) || \
    (echo "build with --build-arg SERVICE=<intake|scheduler|dispatch|feedback|analytics> --build-arg GRPC_PORT=700N --build-arg HTTP_PORT=800N, or SERVICE=console HTTP_PORT=8006 (make images does)" >&2; exit 1)
WORKDIR /src
# The service's module with the two local modules it replaces (pkg, proto);
# the workspace (go.work) is not used, so other modules need not be present.
ENV GOWORK=off CGO_ENABLED=0 GOFLAGS=-trimpath
COPY pkg/go.mod pkg/go.sum pkg/
COPY proto/go.mod proto/go.sum proto/
COPY services/${SERVICE}/go.mod services/${SERVICE}/go.sum services/${SERVICE}/
RUN --mount=type=cache,target=/go/pkg/mod cd services/${SERVICE} && go mod download
COPY pkg/ pkg/
COPY proto/ proto/
COPY services/${SERVICE}/ services/${SERVICE}/
ARG VERSION=dev
ARG COMMIT=none
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    cd services/${SERVICE} && \
    go build -ldflags "-s -w -X github.com/huifang/huifang/pkg/app.version=${VERSION} -X github.com/huifang/huifang/pkg/app.commit=${COMMIT}" \
      -o /out/huifang ./cmd/${SERVICE} && \
    /out/huifang --version

FROM gcr.io/distroless/static-debian12:nonroot
ARG SERVICE
ARG VERSION=dev
ARG COMMIT=none
# Ports: gRPC 7001–7005 and HTTP 8001–8005 in the order intake, scheduler,
# dispatch, feedback, analytics, and the console's HTTP 8006 (each binary's
# default; GRPC_ADDR and HTTP_ADDR move them). The health check reads
# HTTP_ADDR, so it is set here; the console has no gRPC port (GRPC_ADDR
# stays empty there, and EXPOSE names its HTTP port 8006 alone).
ARG GRPC_PORT
ARG HTTP_PORT
ENV GRPC_ADDR=${GRPC_PORT:+:}${GRPC_PORT} HTTP_ADDR=:${HTTP_PORT}
LABEL org.opencontainers.image.title="huifang-${SERVICE}" \
      org.opencontainers.image.source="https://github.com/huifang/huifang" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}"
COPY --from=build /out/huifang /huifang
USER 65532:65532
EXPOSE ${HTTP_PORT} ${GRPC_PORT:-8006}
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 CMD ["/huifang", "--healthcheck"]
ENTRYPOINT ["/huifang"]
