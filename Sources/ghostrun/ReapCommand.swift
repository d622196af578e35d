import ArgumentParser
import Foundation
import GhostrunKit

/// The watchdog's entry point: started by `run`, it is exec'd once its ghostrun is gone.
struct Reap: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "__reap", shouldDisplay: false)

    @Argument var owner: Int32

    func run() throws {
        Cleanup.sweep(owner: owner)
    }
}

extension CommandLine {
    /// This program's path, for the reaper to exec.
    static var executablePath: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? arguments[0]
    }
}
