# A static, non-root jitproxy image:
#
#   docker build -t ghcr.io/jitproxy/jitproxy:$(git describe --always) \
#     --build-arg VERSION=$(git describe --always) .
#
# The binary is built with CGO off (static, no libc), -trimpath, and runs as
# UID/GID 65532 in distroless/static, which holds CA certificates (for
# upstreams verified with the system roots: AWS, OIDC providers), tzdata and
# /etc/passwd, and no shell. The chart and the sidecar component run it with
# a read-only root filesystem; jitproxy writes only to its state_dir volume.
# Not built by `make test`: the build machines have no container runtime.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd ./cmd
COPY internal ./internal
COPY policies ./policies
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/jitproxy ./cmd/proxy

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/jitproxy /usr/local/bin/jitproxy
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/jitproxy"]
CMD ["serve"]
