import XCTest

@testable import GhostrunKit

/// The stall hang's evidence from recorded `/proc/net/tcp{,6}` text: which descriptor is connected where.
final class SocketTableTests: XCTestCase {
    let tcp = """
          sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
           0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1590 1 0000000006b56755 100 0 0 10 0
           1: 0100007F:B6F6 0100007F:1FA3 01 00000000:00000000 00:00000000 00000000     0        0 48213 1 0000000000000000 20 4 30 10 -1
           2: 0100007F:1FA3 0100007F:B6F6 01 00000000:00000000 00:00000000 00000000     0        0 48214 1 0000000000000000 20 4 30 10 -1
           3: garbage
        """
    let tcp6 = """
          sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
           0: 00000000000000000000000001000000:D431 00000000000000000000000001000000:0050 02 00000000:00000000 01:00000064 00000000     0        0 777 1 0000000000000000 100 0 0 10 0
           1: 0000000000000000FFFF00000100007F:9C40 0000000000000000FFFF00000100007F:1FA3 08 00000000:00000000 00:00000000 00000000     0        0 778 1 0000000000000000 20 4 30 10 -1
        """

    func testParsesAddressesStatesAndInodes() {
        let rows = SocketTable.parse(tcp)
        XCTAssertEqual(rows.count, 3, "the malformed row is skipped")
        XCTAssertEqual(rows[0], .init(local: "0.0.0.0:2024", remote: "0.0.0.0:0", state: "LISTEN", inode: 1590))
        XCTAssertEqual(rows[1], .init(local: "127.0.0.1:46838", remote: "127.0.0.1:8099", state: "ESTABLISHED",
                                      inode: 48213))
        let rows6 = SocketTable.parse(tcp6)
        XCTAssertEqual(rows6[0].local, "[0:0:0:0:0:0:0:1]:54321")
        XCTAssertEqual(rows6[0].remote, "[0:0:0:0:0:0:0:1]:80")
        XCTAssertEqual(rows6[0].state, "SYN_SENT")
        XCTAssertEqual(rows6[1].remote, "127.0.0.1:8099", "an IPv4-mapped address reads as IPv4")
        XCTAssertEqual(rows6[1].state, "CLOSE_WAIT")
    }

    func testMatchesDescriptorsMarksStalledEndpointsAndLeavesListenersOut() {
        let rows = SocketTable.parse(tcp) + SocketTable.parse(tcp6)
        let matched = SocketTable.match(
            sockets: [(fd: 3, inode: 1590), (fd: 10, inode: 48213), (fd: 11, inode: 777), (fd: 12, inode: 999)],
            rows: rows, stalled: ["127.0.0.1:8099"])
        XCTAssertEqual(matched, [
            HangConnection(fd: 10, local: "127.0.0.1:46838", remote: "127.0.0.1:8099", state: "ESTABLISHED",
                           stalledEndpoint: true),
            HangConnection(fd: 11, local: "[0:0:0:0:0:0:0:1]:54321", remote: "[0:0:0:0:0:0:0:1]:80",
                           state: "SYN_SENT", stalledEndpoint: false),
        ])
    }

    /// The blocked hang's headline names the connection; `expect.summary` checks it.
    func testBlockedHangNamesTheStalledConnectionAndSummaryIsChecked() throws {
        var snapshot = HangSnapshot(pid: 42, comm: "go", state: "S", wchan: "futex_do_wait", syscall: nil, stack: nil)
        snapshot.connections = [HangConnection(fd: 10, local: "127.0.0.1:46838", remote: "127.0.0.1:8099",
                                               state: "ESTABLISHED", stalledEndpoint: true)]
        var observation = RunObservation(termination: .killedByHarness(reason: .noProgress), durationMs: 5000, stdout: "", stderr: "")
        observation.hangSnapshots = [snapshot]
        let classification = Classifier.classify(observation)
        XCTAssertEqual(classification.summary,
                       "hang (blocked) after no progress: go waits on 127.0.0.1:8099 (stalled endpoint, ESTABLISHED)")
        var expectation = Expectation()
        expectation.summary = "waits on 127\\.0\\.0\\.1:8099 \\(stalled"
        XCTAssertEqual(ExpectationCheck.evaluate(expectation, classification: classification, observation: observation)
            .passed, true)
        expectation.summary = "waits on 127\\.0\\.0\\.1:9000"
        let failed = ExpectationCheck.evaluate(expectation, classification: classification, observation: observation)
        XCTAssertEqual(failed.passed, false)
        XCTAssertTrue(failed.failures.first?.hasPrefix("summary:") ?? false, "\(failed.failures)")
    }
}
