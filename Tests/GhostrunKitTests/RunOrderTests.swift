import XCTest

@testable import GhostrunKit

final class RunOrderTests: XCTestCase {
    func testParsesEveryFormAndRefusesOthers() {
        XCTAssertEqual(RunOrder.parse("given"), .given)
        XCTAssertEqual(RunOrder.parse("reverse"), .reverse)
        XCTAssertEqual(RunOrder.parse("shuffle:42"), .shuffle(seed: 42))
        XCTAssertEqual(RunOrder.parse("shuffle", randomSeed: { 7 }), .shuffle(seed: 7))
        for bad in ["", "random", "shuffle:", "shuffle:-1", "shuffle:x", "Reverse"] {
            XCTAssertNil(RunOrder.parse(bad), bad)
        }
        XCTAssertEqual(RunOrder.shuffle(seed: 42).description, "shuffle:42")
    }

    func testReverseAndSeededShufflesArePermutationsAndRepeatable() {
        let items = Array(0..<50)
        XCTAssertEqual(RunOrder.given.apply(items), items)
        XCTAssertEqual(RunOrder.reverse.apply(items), Array(items.reversed()))
        let a = RunOrder.shuffle(seed: 1).apply(items)
        XCTAssertEqual(a, RunOrder.shuffle(seed: 1).apply(items), "the same seed gives the same order")
        XCTAssertNotEqual(a, items)
        XCTAssertNotEqual(a, RunOrder.shuffle(seed: 2).apply(items))
        XCTAssertEqual(a.sorted(), items, "a permutation: nothing lost, nothing repeated")
        XCTAssertEqual(RunOrder.shuffle(seed: 3).apply([9]), [9])
        XCTAssertEqual(RunOrder.shuffle(seed: 3).apply([Int]()), [])
    }
}
