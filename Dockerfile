# syntax=docker/dockerfile:1
# One image per service, built from this one file:
#   docker build --build-arg SERVICE=scheduler --build-arg GRPC_PORT=7002 --build-arg HTTP_PORT=8002 \
#     --build-arg VERSION=$(git describe --tags --always) --build-arg COMMIT=$(git rev-parse --short HEAD) \
#     -t huifang/scheduler .
# (`make images` does it for the five services.) The result is a static,
# non-root, distroless image holding one binary, which is also its own
# health check (`/huifang --healthcheck` asks /readyz).

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
ARG SERVICE
ARG GRPC_PORT
ARG HTTP_PORT
RUN test -n "${SERVICE}" -a -n "${GRPC_PORT}" -a -n "${HTTP_PORT}" || \
    (echo "build with --build-arg SERVICE=<intake|scheduler|dispatch|feedback|analytics> --build-arg GRPC_PORT=700N --build-arg HTTP_PORT=800N (make images does)" >&2; exit 1)
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
# dispatch, feedback, analytics (each binary's default; GRPC_ADDR and
# HTTP_ADDR move them). The health check reads HTTP_ADDR, so it is set here.
ARG GRPC_PORT
ARG HTTP_PORT
ENV GRPC_ADDR=:${GRPC_PORT} HTTP_ADDR=:${HTTP_PORT}
LABEL org.opencontainers.image.title="huifang-${SERVICE}" \
      org.opencontainers.image.source="https://github.com/huifang/huifang" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}"
COPY --from=build /out/huifang /huifang
USER 65532:65532
EXPOSE ${GRPC_PORT} ${HTTP_PORT}
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 CMD ["/huifang", "--healthcheck"]
ENTRYPOINT ["/huifang"]
