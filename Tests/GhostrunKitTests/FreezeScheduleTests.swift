import XCTest

@testable import GhostrunKit

final class FreezeScheduleTests: XCTestCase {
    let start = ContinuousClock.now

    func at(_ milliseconds: Int) -> ContinuousClock.Instant { start + .milliseconds(milliseconds) }

    func testAfterZeroFreezesOnTheFirstCallBeforeAnySample() {
        var schedule = FreezeSchedule(steps: [FreezeStep(trigger: .after(.zero), hold: nil)], start: start)
        XCTAssertEqual(schedule.next(now: start, newProcessNames: []), .freeze)
        XCTAssertTrue(schedule.isHolding)
        XCTAssertNil(schedule.next(now: at(60_000), newProcessNames: []), "no hold: frozen until the timeout")
    }

    func testTimeBasedStepWaitsForItsDelayThenHoldsThenThaws() {
        var schedule = FreezeSchedule(steps: [FreezeStep(trigger: .after(.milliseconds(300)), hold: .seconds(2))],
                                      start: start)
        XCTAssertNil(schedule.next(now: at(299), newProcessNames: ["compile"]))
        XCTAssertFalse(schedule.isHolding)
        XCTAssertEqual(schedule.next(now: at(300), newProcessNames: []), .freeze)
        XCTAssertNil(schedule.next(now: at(2299), newProcessNames: []))
        XCTAssertEqual(schedule.next(now: at(2300), newProcessNames: []), .thaw)
        XCTAssertFalse(schedule.isHolding)
        XCTAssertNil(schedule.next(now: at(10_000), newProcessNames: []), "one step: done")
    }

    func testOnProcessStepFreezesWhenSuchAProcessAppears() {
        var schedule = FreezeSchedule(steps: [FreezeStep(trigger: .onProcess("compile"), hold: .zero)], start: start)
        XCTAssertNil(schedule.next(now: at(5000), newProcessNames: []))
        XCTAssertNil(schedule.next(now: at(5010), newProcessNames: ["go", "asm"]))
        XCTAssertEqual(schedule.next(now: at(5020), newProcessNames: ["go", "compile"]), .freeze)
        XCTAssertEqual(schedule.next(now: at(5020), newProcessNames: []), .thaw, "hold: 0 thaws on the next call")
    }

    func testEachStepIsArmedWhenThePreviousOneThawed() {
        var schedule = FreezeSchedule(
            steps: [FreezeStep(trigger: .after(.milliseconds(100)), hold: .milliseconds(100)),
                    FreezeStep(trigger: .after(.milliseconds(100)), hold: nil)],
            start: start)
        XCTAssertEqual(schedule.next(now: at(100), newProcessNames: []), .freeze)
        XCTAssertEqual(schedule.next(now: at(250), newProcessNames: []), .thaw)
        // The second step's 100 ms count from the thaw at 250, not from the start.
        XCTAssertNil(schedule.next(now: at(349), newProcessNames: []))
        XCTAssertEqual(schedule.next(now: at(350), newProcessNames: []), .freeze)
        XCTAssertTrue(schedule.isHolding)
        XCTAssertNil(schedule.next(now: at(99_999), newProcessNames: []))
    }
}
