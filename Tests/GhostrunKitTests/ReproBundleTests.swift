import Foundation
import XCTest

@testable import GhostrunKit

/// txtar reading and writing, and the checks an untrusted bundle goes through before anything is written.
final class ReproBundleTests: XCTestCase {
    func testFormatAndParseRoundTripWithCommentAndMissingFinalNewline() throws {
        let archive = Txtar(comment: "a comment\nsecond line", files: [
            .init(name: "a.yaml", content: "name: a\n"),
            .init(name: "dir/b.txt", content: "no final newline"),
            .init(name: "empty", content: ""),
        ])
        let text = try archive.format()
        XCTAssertEqual(text, "a comment\nsecond line\n-- a.yaml --\nname: a\n-- dir/b.txt --\nno final newline\n-- empty --\n")
        let parsed = try Txtar.parse(text, file: "x.txtar")
        XCTAssertEqual(parsed.comment, "a comment\nsecond line\n")
        XCTAssertEqual(parsed.files.map(\.name), ["a.yaml", "dir/b.txt", "empty"])
        XCTAssertEqual(parsed.files[1].content, "no final newline\n", "txtar ends every file with a newline")
        XCTAssertEqual(parsed.files[2].content, "")
    }

    func testMarkersNeedBothDashesAndAName() throws {
        let parsed = try Txtar.parse("-- a --\nx\n--b --\n-- --\n--  c  --\ny", file: "x.txtar")
        XCTAssertEqual(parsed.files.map(\.name), ["a", "c"])
        XCTAssertEqual(parsed.files[0].content, "x\n--b --\n-- --\n")
        XCTAssertEqual(parsed.files[1].content, "y\n")
    }

    func testDuplicateNamesAndMarkerLikeContentAreRefused() {
        XCTAssertThrowsError(try Txtar.parse("-- a --\n1\n-- b --\n-- a --\n2\n", file: "dup.txtar")) { error in
            XCTAssertEqual("\(error)", "dup.txtar:4: `a` appears again (first at line 1) (hint: each file may appear once in a bundle)")
        }
        XCTAssertThrowsError(try Txtar(comment: "", files: [.init(name: "f", content: "-- g --\n")]).format()) { error in
            XCTAssertTrue("\(error)".contains("reads as a txtar file marker"), "\(error)")
        }
    }

    func testExtractRefusesNamesThatLeaveTheDirectory() throws {
        let directory = NSTemporaryDirectory() + "ghostrun-bundle-test-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let manifest = Txtar.File(name: ReproBundle.manifestName, content: "s.yaml\n")
        for name in ["/etc/passwd", "../escape", "a/../../b", "a//b", "./a", ".ghostrun-bundle", "a\\b"] {
            let archive = Txtar(comment: "", files: [manifest, .init(name: "s.yaml", content: "x\n"),
                                                     .init(name: name, content: "x\n")])
            XCTAssertThrowsError(try ReproBundle.extract(archive, file: "evil.txtar", into: directory), name) { error in
                XCTAssertTrue("\(error)".hasPrefix("evil.txtar: "), "\(error)")
            }
        }
        XCTAssertThrowsError(try ReproBundle.extract(Txtar(comment: "", files: [.init(name: "s.yaml", content: "")]),
                                                     file: "plain.txtar", into: directory)) { error in
            XCTAssertTrue("\(error)".contains("not a bundle written by `ghostrun bundle`"), "\(error)")
        }
        let missing = Txtar(comment: "", files: [manifest])
        XCTAssertThrowsError(try ReproBundle.extract(missing, file: "m.txtar", into: directory)) { error in
            XCTAssertTrue("\(error)".contains("does not hold"), "\(error)")
        }
        // Nothing of the refused archives was written.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), [])
        XCTAssertFalse(FileManager.default.fileExists(atPath: NSTemporaryDirectory() + "escape"))
    }

    func testCommonDirectoryKeepsRelativeReferencesWorking() {
        XCTAssertEqual(ReproBundle.commonDirectory(["/r/scenarios/seed/a.yaml", "/r/scenarios/fixtures/hello/go.mod"]),
                       "/r/scenarios")
        XCTAssertEqual(ReproBundle.commonDirectory(["/a/x.yaml"]), "/a")
        XCTAssertEqual(ReproBundle.commonDirectory(["/a/x.yaml", "/b/y.yaml"]), "/")
    }
}
