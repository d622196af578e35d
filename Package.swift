// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "ghostrun",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "ghostrun", targets: ["ghostrun"]),
        .library(name: "GhostrunKit", targets: ["GhostrunKit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        .systemLibrary(name: "CSeccomp", pkgConfig: "libseccomp", providers: [.apt(["libseccomp-dev"])]),
        .systemLibrary(name: "CCap", pkgConfig: "libcap", providers: [.apt(["libcap-dev"])]),
        .systemLibrary(name: "CLibBPF", pkgConfig: "libbpf", providers: [.apt(["libbpf-dev"])]),
        // The BPF loader. bpf/ holds the BPF program itself, compiled by scripts/build-bpf.sh (clang -target bpf)
        // into generated/ghostrun_bpf.skel.h before `swift build`; SwiftPM must not compile it for the host.
        .target(
            name: "CGhostrunBPF",
            dependencies: ["CLibBPF"],
            exclude: ["bpf"],
            cSettings: [.define("_GNU_SOURCE")]
        ),
        .target(
            name: "CGhostrun",
            cSettings: [.define("_GNU_SOURCE")]
        ),
        .target(
            name: "GhostrunKit",
            dependencies: [
                "CGhostrun", "CGhostrunBPF", "CSeccomp", "CCap",
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .executableTarget(
            name: "ghostrun",
            dependencies: [
                "GhostrunKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .testTarget(
            name: "GhostrunKitTests",
            dependencies: ["GhostrunKit", "CGhostrun", "CGhostrunBPF"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .testTarget(
            name: "GhostrunCLITests",
            dependencies: ["GhostrunKit"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
