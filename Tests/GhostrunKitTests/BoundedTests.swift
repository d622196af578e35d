import Foundation
import XCTest

@testable import GhostrunKit

final class BoundedTests: XCTestCase {
    func testBoundedOutputKeepsHeadAndLastBytesAcrossWraps() {
        var output = BoundedOutput(headLimit: 4, tailLimit: 10)
        for chunk in ["abc", "defghij", "klmnopqrstu", "vw"] {
            Array(chunk.utf8).withUnsafeBytes { output.append($0) }
        }
        XCTAssertEqual(output.total, 23)
        XCTAssertEqual(String(decoding: output.head, as: UTF8.self), "abcd")
        XCTAssertEqual(String(decoding: output.tail(), as: UTF8.self), "mnopqrstuvw".suffix(10).description)
        XCTAssertEqual(output.tailStart, 13)
        XCTAssertEqual(String(decoding: output.tail(skipping: 8), as: UTF8.self), "vw")
        XCTAssertEqual(output.tail(skipping: 10), [])
    }

    /// 200 000 denials of two kinds are 100 records each plus one closing record with the exact count.
    func testDenialLogAggregatesAfterFirstNWithExactCounts() {
        var log = DenialLog(perKey: 100)
        for i in 0..<200_000 {
            log.append(Denial(pid: 7, comm: "p", syscall: i % 2 == 0 ? "openat" : "getppid", action: "injected",
                              errno: "EIO", timeMs: i, source: "supervisor"))
        }
        let denials = log.denials
        XCTAssertEqual(denials.count, 202)
        XCTAssertEqual(log.total, 200_000)
        let closing = denials.filter { $0.repeated != nil }
        XCTAssertEqual(Set(closing.map(\.syscall)), ["openat", "getppid"])
        XCTAssertEqual(closing.map { $0.repeated! }, [99_900, 99_900])
        XCTAssertEqual(denials.count - closing.count + closing.reduce(0) { $0 + $1.repeated! }, 200_000)
        XCTAssertEqual(denials.map(\.timeMs), denials.map(\.timeMs).sorted())
    }

    /// `(x+x+)+y` over 5000 `x` backtracks for minutes in ICU; the search gives up at its budget.
    func testCatastrophicPatternStopsAtBudget() {
        let text = String(repeating: "x", count: 5000)
        let start = ContinuousClock.now
        let result = RegexSearch.matches("(x+x+)+y", in: text, budget: .milliseconds(500))
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(3))
        guard case .failure(let error) = result else { return XCTFail("expected a budget failure, got \(result)") }
        XCTAssertNotNil(error.budget)
        XCTAssertEqual(RegexSearch.matches("x+y?$", in: text), .success(true))
        XCTAssertEqual(RegexSearch.matches("^z", in: text), .success(false))
    }

    func testScenarioLimitsRejectAliasFloodsAndHugeFiles() {
        var text = "name: a\nrun: [go, version]\nx: &a [1]\ny:\n"
        for _ in 0..<2000 { text += "  - *a\n" }
        XCTAssertThrowsError(try ScenarioLoader.parse(text: text, file: "/tmp/a.yaml")) { error in
            XCTAssertTrue("\(error)".contains("alias"), "\(error)")
        }
        let huge = "name: a\nrun: [go, version]\n#" + String(repeating: "x", count: 2 << 20) + "\n"
        XCTAssertThrowsError(try ScenarioLoader.parse(text: huge, file: "/tmp/a.yaml")) { error in
            XCTAssertTrue("\(error)".contains("limit"), "\(error)")
        }
    }
}
