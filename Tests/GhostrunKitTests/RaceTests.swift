import Foundation
import XCTest

@testable import GhostrunKit

/// Shared state between ghostrun's threads and the C target (issue 19's reading): each case runs the real thread
/// against the reader it raced with.
final class RaceTests: XCTestCase {
    private func threads(named name: String) -> Int {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.filter { ProcFiles.read("/proc/self/task/\($0)/comm")?.hasPrefix(name) == true }.count
    }

    /// Each KernelAuditLog started a reader thread that never stopped; `close()` ends it and closes the sources.
    func testAnAuditLogsReaderThreadEndsWhenItIsClosed() throws {
        try requireRoot()
        let before = threads(named: "ghostrun-audit")
        let log = KernelAuditLog(netlink: false)
        try requireHost(log.isAvailable, log.unavailableReason ?? "no audit source")
        XCTAssertTrue(eventually { self.threads(named: "ghostrun-audit") == before + 1 }, "the reader started")
        let subscription = log.subscribe()
        log.close()
        XCTAssertTrue(eventually { self.threads(named: "ghostrun-audit") == before }, "the reader thread survived close")
        log.close()  // idempotent
        XCTAssertEqual(subscription.drain(), [])
        subscription.cancel()
    }

    /// The stall server's C thread increments `accepted` for the server's life; Swift read it through a pointer
    /// into a class property (an inout pointer used after the call). Now the state has a fixed address and the
    /// count is read atomically while connections arrive on another thread.
    func testTheStallCounterIsReadWhileTheServerAcceptsConnections() throws {
        try requireRoot()
        let port = UInt16.random(in: 20_000...40_000)
        let server = try StallServer(endpoints: [StallEndpoint("127.0.0.1:\(port)")!])
        defer { server.stop() }
        XCTAssertEqual(threads(named: "ghostrun-stall"), 1, "the serving thread is named")
        let connections = 64
        let namespace = server.namespaceDescriptor
        // A client in the server's namespace (where 127.0.0.1:port listens), connecting while this thread reads.
        let client = Process()
        client.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
        client.arguments = [
            "--net=/proc/\(getpid())/fd/\(namespace)", "python3", "-c",
            """
            import socket, time
            held = []
            for _ in range(\(connections)):
                s = socket.create_connection(("127.0.0.1", \(port)))
                held.append(s)
                time.sleep(0.002)
            """,
        ]
        try client.run()
        var last = 0
        var readings = 0
        while client.isRunning {
            let now = server.accepted
            XCTAssertGreaterThanOrEqual(now, last, "the count went backwards")
            last = now
            readings += 1
        }
        client.waitUntilExit()
        XCTAssertEqual(client.terminationStatus, 0, "the client could not connect")
        XCTAssertTrue(eventually { server.accepted == connections }, "accepted \(server.accepted) of \(connections)")
        XCTAssertGreaterThan(readings, 0)
        server.stop()
        XCTAssertEqual(threads(named: "ghostrun-stall"), 0, "stop joins the serving thread")
    }

    /// `Interruption` is the one flag for a stopping ghostrun (RegexSearch had a second, never reset): a new
    /// session starts uninterrupted, and a set flag stops a pattern search at once.
    func testOneInterruptionFlagResetBySessions() {
        Interruption.request()
        XCTAssertTrue(Interruption.isRequested)
        let long = String(repeating: "a", count: 200_000)
        if case .success(let found) = RegexSearch.matches("(a|aa)*b", in: long, budget: .seconds(30)) {
            XCTAssertFalse(found)
        }
        let session = RunSession()
        let handlers = session.handleSignals([])
        defer { handlers.cancel() }
        XCTAssertFalse(Interruption.isRequested, "a new session starts uninterrupted")
    }
}
