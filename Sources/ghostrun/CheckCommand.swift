import ArgumentParser
import Foundation
import GhostrunKit

/// `ghostrun check`: validate scenario files and show the matrix `run` would run, starting nothing.
struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate scenario files and print the scenario × toolchain matrix (skips with reasons); runs nothing.")

    @OptionGroup var selection: MatrixSelection

    func validate() throws {
        if selection.paths.isEmpty { throw ValidationError("give at least one scenario file or directory") }
    }

    func run() throws {
        // Bad input (a scenario file, a toolchain) exits 2 here, as `run` would.
        let entries = try selection.entries()
        if entries.isEmpty { throw fail("no scenario to run (check the paths and --filter)") }
        print(MatrixPreview.render(MatrixPreview.rows(entries)), terminator: "")
    }
}
