import Foundation
import XCTest

@testable import GhostrunKit

/// `sandbox.mounts` and `sandbox.network` as real namespaces: what the child sees, what stays writable, and that
/// the host's mount table is untouched.
final class NamespaceIntegrationTests: XCTestCase {
    let runner = ScenarioRunner()
    var hostDirectory = ""

    override func setUpWithError() throws {
        try requireRoot()
        hostDirectory = "/var/tmp/ghostrun-ns-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: hostDirectory + "/dir", withIntermediateDirectories: true)
        try "host-secret\n".write(toFile: hostDirectory + "/dir/secret", atomically: true, encoding: .utf8)
        try "host-file\n".write(toFile: hostDirectory + "/file", atomically: true, encoding: .utf8)
    }

    override func tearDown() {
        if !hostDirectory.isEmpty { try? FileManager.default.removeItem(atPath: hostDirectory) }
    }

    /// Runs a shell script under the given `sandbox:` block (indented YAML lines) with the toolchain's go on hand.
    private func shell(_ script: String, sandbox: String, extra: String = "") throws -> RunResult {
        let go = try TestToolchains.require(TestToolchains.all.first, "any go")
        let escaped = script.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        let yaml = "name: ns\nrun: [/bin/sh, -c, \"\(escaped)\"]\nsandbox:\n\(sandbox)\n\(extra)"
        let result = runner.run(try scenario(yaml), toolchain: go)
        XCTAssertNotEqual(result.outcome, .harnessError, result.summary)
        return result
    }

    /// The host's mounts that name a ghostrun path: a run must add none. Other programs' mounts may come and go
    /// while the test runs, so the whole table is not compared.
    private func mountTable() -> Set<String> { ghostrunOwnMounts() }

    func testReadOnlyRootKeepsWorkAndHomeWritableAndLeavesTheHostAlone() throws {
        let before = mountTable()
        let probe = "/ghostrun-ro-probe-\(getpid())"
        let result = try shell(
            "touch \(probe) 2>&1; echo root-rc=$?; touch $WORK/w && echo work-writable; "
                + "touch $HOME/h && echo home-writable; touch $GOCACHE/c && echo cache-writable",
            sandbox: "  mounts:\n    - {path: /, readonly: true}")
        XCTAssertTrue(result.stdoutTail.contains("Read-only file system"), result.stdoutTail)
        XCTAssertTrue(result.stdoutTail.contains("root-rc=1"), result.stdoutTail)
        for word in ["work-writable", "home-writable", "cache-writable"] {
            XCTAssertTrue(result.stdoutTail.contains(word), "\(word) missing: \(result.stdoutTail)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: probe))
        XCTAssertEqual(mountTable().subtracting(before), [], "a run left a mount on the host")
    }

    func testNoexecTmpfsOverTmpHidesTheHostsTmpButNotWork() throws {
        let marker = "/tmp/ghostrun-ns-marker-\(getpid())"
        FileManager.default.createFile(atPath: marker, contents: Data("x".utf8))
        defer { unlink(marker) }
        let before = mountTable()
        let result = try shell(
            "cp /bin/true /tmp/t && /tmp/t; echo exec-rc=$?; test -e \(marker) && echo marker-visible; "
                + "touch $WORK/w && echo work-writable; cp /bin/true $WORK/t && $WORK/t && echo work-exec",
            sandbox: "  mounts:\n    - {path: /tmp, tmpfs: 16MiB, noexec: true}")
        XCTAssertTrue(result.stdoutTail.contains("exec-rc=126"), result.stdoutTail)
        XCTAssertFalse(result.stdoutTail.contains("marker-visible"), result.stdoutTail)
        XCTAssertTrue(result.stdoutTail.contains("work-writable"), result.stdoutTail)
        XCTAssertTrue(result.stdoutTail.contains("work-exec"), result.stdoutTail)
        XCTAssertEqual(mountTable().subtracting(before), [], "a run left a mount on the host")
    }

    func testHideMasksAFileAndADirectoryAsDockerDoes() throws {
        let result = try shell(
            "cat \(hostDirectory)/file; echo file-done; ls -A \(hostDirectory)/dir; echo dir-done; "
                + "touch \(hostDirectory)/dir/new 2>&1; echo write-rc=$?",
            sandbox: "  mounts:\n    - {path: \(hostDirectory)/file, hide: true}\n"
                + "    - {path: \(hostDirectory)/dir, hide: true}")
        XCTAssertFalse(result.stdoutTail.contains("host-file"), result.stdoutTail)
        XCTAssertFalse(result.stdoutTail.contains("secret"), result.stdoutTail)
        XCTAssertTrue(result.stdoutTail.contains("file-done\ndir-done"), result.stdoutTail)
        XCTAssertTrue(result.stdoutTail.contains("write-rc=1"), result.stdoutTail)
        // The host still sees its own files.
        XCTAssertEqual(try String(contentsOfFile: hostDirectory + "/file", encoding: .utf8), "host-file\n")
    }

    func testReadOnlyBindOfAWorkDirectoryAndAnEntryNamingWork() throws {
        let result = try shell(
            "cat \(hostDirectory)/dir/a.txt; touch \(hostDirectory)/dir/b 2>&1; echo bind-write-rc=$?; "
                + "touch $WORK/src/c 2>&1; echo work-src-rc=$?; touch $WORK/d && echo work-writable",
            sandbox: "  mounts:\n    - {path: \(hostDirectory)/dir, bind: $WORK/src, readonly: true}\n"
                + "    - {path: $WORK/src, readonly: true}",
            extra: "files:\n  src/a.txt: from-work\n")
        XCTAssertTrue(result.stdoutTail.contains("from-work"), result.stdoutTail)
        XCTAssertTrue(result.stdoutTail.contains("bind-write-rc=1"), result.stdoutTail)
        // An entry naming $WORK applies after $WORK is restored, so it is the one restriction $WORK can get.
        XCTAssertTrue(result.stdoutTail.contains("work-src-rc=1"), result.stdoutTail)
        XCTAssertTrue(result.stdoutTail.contains("work-writable"), result.stdoutTail)
        XCTAssertFalse(FileManager.default.fileExists(atPath: hostDirectory + "/dir/b"))
    }

    private let socketProbe = """
        import socket
        try:
            s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
            c = socket.create_connection(s.getsockname(), timeout=2); print("loopback-ok")
        except OSError as e:
            print("loopback-error", e.errno)
        try:
            socket.create_connection(("192.0.2.1", 80), timeout=2); print("outside-ok")
        except OSError as e:
            print("outside-error", e.errno)
        print(sorted(l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:]))
        """

    func testNetworkNoneHasNoInterfaceUpAndLoopbackHasOnlyLo() throws {
        let files = "files:\n  probe.py: |\n" + socketProbe.split(separator: "\n").map { "    " + $0 }
            .joined(separator: "\n") + "\n"
        let none = try shell("/usr/bin/python3 probe.py", sandbox: "  network: none", extra: files)
        XCTAssertTrue(none.stdoutTail.contains("loopback-error 101"), none.stdoutTail)  // ENETUNREACH: lo down
        XCTAssertTrue(none.stdoutTail.contains("outside-error 101"), none.stdoutTail)  // ENETUNREACH
        XCTAssertTrue(none.stdoutTail.contains("['lo']"), none.stdoutTail)
        let loopback = try shell("/usr/bin/python3 probe.py", sandbox: "  network: loopback", extra: files)
        XCTAssertTrue(loopback.stdoutTail.contains("loopback-ok"), loopback.stdoutTail)
        XCTAssertTrue(loopback.stdoutTail.contains("outside-error 101"), loopback.stdoutTail)
        XCTAssertTrue(loopback.stdoutTail.contains("['lo']"), loopback.stdoutTail)
    }

    func testLandlockOnlyWorkWritableAndOptionalReadTrees() throws {
        try requireHost((try? Landlock.abi().get()) != nil, "the kernel offers no Landlock")
        let write = try shell(
            "touch \(hostDirectory)/x 2>&1; echo host-rc=$?; touch $WORK/y && echo work-writable; "
                + "mkdir $HOME/d && echo home-writable; cat \(hostDirectory)/file",
            sandbox: "  landlock:\n    write: [$WORK]")
        XCTAssertTrue(write.stdoutTail.contains("Permission denied"), write.stdoutTail)
        XCTAssertTrue(write.stdoutTail.contains("host-rc=1"), write.stdoutTail)
        XCTAssertTrue(write.stdoutTail.contains("work-writable"), write.stdoutTail)
        XCTAssertTrue(write.stdoutTail.contains("home-writable"), write.stdoutTail)
        XCTAssertTrue(write.stdoutTail.contains("host-file"), "reading stays unrestricted: \(write.stdoutTail)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: hostDirectory + "/x"))

        let read = try shell(
            "cat \(hostDirectory)/file 2>&1; echo read-rc=$?; cat \(hostDirectory)/dir/secret",
            sandbox: "  landlock:\n    write: [$WORK]\n    read: [/usr, /etc, \(hostDirectory)/dir]")
        XCTAssertTrue(read.stdoutTail.contains("read-rc=1"), read.stdoutTail)
        XCTAssertFalse(read.stdoutTail.contains("host-file"), read.stdoutTail)
        XCTAssertTrue(read.stdoutTail.contains("host-secret"), read.stdoutTail)
    }

    private func threads() -> Int {
        // The stall server's threads by name: other threads (the shared audit reader started by a first run,
        // Dispatch's workers) come and go on their own.
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.filter { ProcFiles.read("/proc/self/task/\($0)/comm")?.hasPrefix("ghostrun-stall") == true }.count
    }

    private func networkNamespaceDescriptors() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).compactMap {
            try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + $0)
        }.filter { $0.hasPrefix("net:[") }
    }

    func testStallEndpointAcceptsAndNeverAnswersInsideTheRunsNamespaceOnly() throws {
        let port = UInt16.random(in: 20000...40000)
        let probe = """
            import socket
            c = socket.create_connection(("127.0.0.1", \(port)), timeout=2); print("connected")
            c.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n"); c.settimeout(1.5)
            try:
                print("answered", c.recv(10))
            except socket.timeout:
                print("no-answer")
            """
        let files = "files:\n  probe.py: |\n" + probe.split(separator: "\n").map { "    " + $0 }
            .joined(separator: "\n") + "\n"
        let threadsBefore = threads()
        let descriptorsBefore = networkNamespaceDescriptors()
        let result = try shell("/usr/bin/python3 probe.py",
                               sandbox: "  network: loopback\n  stall: [\"127.0.0.1:\(port)\"]", extra: files)
        XCTAssertTrue(result.stdoutTail.contains("connected\nno-answer"), result.stdoutTail + result.stderrTail)
        // The endpoint exists only in the run's namespace: on the host nothing listens there.
        let host = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(host) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(host, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        XCTAssertEqual(connected, -1, "something listens on the host's 127.0.0.1:\(port)")
        // The server's thread and its namespace descriptor are gone with the run.
        XCTAssertTrue(eventually(2) { self.threads() <= threadsBefore }, "threads \(threadsBefore) → \(threads())")
        XCTAssertEqual(networkNamespaceDescriptors(), descriptorsBefore)
    }

    func testRunsInOwnMountAndNetworkNamespaces() throws {
        let host = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/mnt")
        let hostNet = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/net")
        let result = try shell("readlink /proc/self/ns/mnt /proc/self/ns/net",
                               sandbox: "  network: none\n  mounts:\n    - {path: /, readonly: true}")
        let lines = result.stdoutTail.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 2, result.stdoutTail)
        XCTAssertFalse(lines.contains(host), result.stdoutTail)
        XCTAssertFalse(lines.contains(hostNet), result.stdoutTail)
        // Attestation: every observed process names the namespaces it ran in, the ones the run reported itself.
        XCTAssertFalse(result.evidence.processes.isEmpty)
        for process in result.evidence.processes {
            XCTAssertEqual(process.mountNamespace, lines.first, "\(process.comm) \(process.pid)")
            XCTAssertEqual(process.networkNamespace, lines.last, "\(process.comm) \(process.pid)")
        }
    }
}

/// Bad `mounts`/`network` input: exit 2 with file, line, key and hint, before anything starts.
final class NamespaceScenarioErrorTests: XCTestCase {
    private func firstError(_ sandbox: String) -> ScenarioError? {
        let yaml = "name: bad\nrun: [go, version]\nsandbox:\n\(sandbox)\n"
        do {
            _ = try ScenarioLoader.parse(text: yaml, file: "/nonexistent/s.yaml")
            XCTFail("expected a scenario error for:\n\(sandbox)")
            return nil
        } catch {
            return error.scenarioErrors.first
        }
    }

    func testBadMountEntriesNameLineKeyAndHint() {
        let cases: [(String, String, String)] = [
            ("  mounts:\n    - {path: tmp, readonly: true}", "sandbox.mounts[0].path", "relative"),
            ("  mounts:\n    - {path: \"\", readonly: true}", "sandbox.mounts[0].path", "empty"),
            ("  mounts:\n    - {path: /, readonly: true}\n    - {path: /tmp, tmpfs: 1}", "sandbox.mounts[1].tmpfs",
             "out of range"),
            ("  mounts:\n    - {path: /tmp, tmpfs: 2TiB}", "sandbox.mounts[0].tmpfs", "out of range"),
            ("  mounts:\n    - {path: /mnt, bind: /nonexistent-ghostrun-source}", "sandbox.mounts[0].bind",
             "does not exist"),
            ("  mounts:\n    - {path: /nonexistent-ghostrun-target, readonly: true}", "sandbox.mounts[0].path",
             "does not exist"),
            ("  mounts:\n    - {path: /tmp, tmpfs: 1MiB, hide: true}", "sandbox.mounts[0]", "in one entry"),
            ("  mounts:\n    - {path: /tmp}", "sandbox.mounts[0]", "changes nothing"),
            ("  mounts:\n    - {path: /etc/../tmp, readonly: true}", "sandbox.mounts[0].path", ".."),
            ("  mounts:\n    - {path: /tmp, readonly: true, rw: true}", "sandbox.mounts[0].rw", "unknown key"),
            ("  network: host", "sandbox.network", "unknown network"),
            ("  stall: [\"127.0.0.1:8099\"]", "sandbox.stall", "network: loopback"),
            ("  network: none\n  stall: [\"127.0.0.1:8099\"]", "sandbox.stall", "network: loopback"),
            ("  network: loopback\n  stall: [\"10.0.0.1:80\"]", "sandbox.stall", "loopback ADDR:PORT"),
            ("  network: loopback\n  stall: [\"127.0.0.1:0\"]", "sandbox.stall", "loopback ADDR:PORT"),
            ("  landlock:\n    write: [/nonexistent-ghostrun-tree]", "sandbox.landlock.write[0]", "does not exist"),
            ("  landlock:\n    write: [src]", "sandbox.landlock.write[0]", "relative"),
            ("  landlock:\n    read: [\"\"]", "sandbox.landlock.read[0]", "empty"),
            ("  landlock:\n    exec: [/usr]", "sandbox.landlock.exec", "unknown key"),
        ]
        for (sandbox, key, words) in cases {
            guard let error = firstError(sandbox) else { continue }
            XCTAssertEqual(error.key, key, "\(sandbox): \(error)")
            XCTAssertNotNil(error.line, "\(sandbox): \(error)")
            XCTAssertNotNil(error.hint, "\(sandbox): \(error)")
            XCTAssertTrue(error.message.contains(words), "\(sandbox): \(error.message)")
        }
    }
}
