import Foundation
import Synchronization

/// `--events FILE|-`: one JSON line per result as it finishes (the shape of a run file's `results[]` entry), like
/// `go test -json`, so tools and long CI logs can follow a run without waiting for the run file.
public final class EventStream: Sendable {
    /// The descriptor written to, behind the lock that keeps each line whole.
    private let descriptor: Mutex<Int32>
    private let ownsDescriptor: Bool

    /// `path` is a file (created or truncated) or `-` for standard output.
    public init(path: String) throws {
        if path == "-" {
            descriptor = Mutex(STDOUT_FILENO)
            ownsDescriptor = false
        } else {
            let fd = try System.open(path, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
                .orThrow(step: "events", syscall: "open", path: path, "cannot open the events file")
            descriptor = Mutex(fd)
            ownsDescriptor = true
        }
    }

    /// One result as a single line of compact JSON with sorted keys.
    public static func line(for result: RunResult) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(result)
        data.append(UInt8(ascii: "\n"))
        return data
    }

    /// Writes the result's line now; a write that fails (a closed pipe) is dropped, the run goes on.
    public func emit(_ result: RunResult) {
        guard let data = try? EventStream.line(for: result) else { return }
        descriptor.withLock { fd in
            if fd == STDOUT_FILENO { fflush(nil) }
            guard fd >= 0 else { return }
            _ = System.writeAll(fd, [UInt8](data))
        }
    }

    /// Closes the file (standard output stays open).
    public func close() {
        descriptor.withLock { fd in
            if ownsDescriptor, fd >= 0 { System.close(fd) }
            fd = -1
        }
    }
}
