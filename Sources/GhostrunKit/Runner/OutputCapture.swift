import CGhostrun
import Foundation
import Synchronization

/// Reads a pipe on its own thread so the target never blocks on a full pipe, keeping at most `limit` bytes
/// (the head is dropped first: the end of stderr is where Go puts its diagnostics).
final class OutputCapture: Sendable {
    private struct State {
        var buffer = Data()
        var total = 0
        var finished = false
    }

    private let state = Mutex(State())
    private let limit: Int
    private let readFd: Int32
    /// The pipe's write end, handed to the child.
    let writeFd: Int32
    private let done = DispatchSemaphore(value: 0)
    /// Sees every chunk as it is read, on the reader's thread (the go test event parser).
    private let onChunk: (@Sendable (ArraySlice<UInt8>) -> Void)?

    init(limit: Int = 4 << 20, onChunk: (@Sendable (ArraySlice<UInt8>) -> Void)? = nil) throws {
        self.onChunk = onChunk
        var fds: [Int32] = [0, 0]
        try nothingOrErrno { ghostrun_pipe_cloexec(&fds) }.orThrow(
            step: "output capture", syscall: "pipe2", "spawn step pipe failed")
        readFd = fds[0]
        writeFd = fds[1]
        self.limit = limit
    }

    func start() {
        let thread = Thread { [self] in
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                // Any error but EINTR (retried in the chokepoint) ends the capture like end of file.
                guard case .success(let n) = chunk.withUnsafeMutableBytes({ System.read(readFd, into: $0) }), n > 0
                else { break }
                onChunk?(chunk[0..<n])
                state.withLock { state in
                    state.buffer.append(contentsOf: chunk[0..<n])
                    state.total += n
                    // Data.removeFirst only moves the start index and keeps every dropped byte allocated (measured:
                    // 200 MB through a 256 KiB limit kept 200 MB), so the buffer is copied down to its last `limit`
                    // bytes once it holds twice that.
                    if state.buffer.count > 2 * limit { state.buffer = Data(state.buffer.suffix(limit)) }
                }
            }
            System.close(readFd)
            state.withLock { $0.finished = true }
            done.signal()
        }
        thread.name = "ghostrun-output"
        thread.start()
    }

    /// Closes ghostrun's copy of the write end once the child has it.
    func closeWriteEnd() { System.close(writeFd) }

    /// Bytes read so far (including any dropped from the head).
    var byteCount: Int { state.withLock { $0.total } }

    var text: String { state.withLock { String(decoding: $0.buffer.suffix(limit), as: UTF8.self) } }

    /// Text after the first `offset` bytes read (used to cut out the SIGQUIT goroutine dump).
    func text(since offset: Int) -> String {
        state.withLock { state in
            let dropped = state.total - state.buffer.count
            let start = max(0, offset - dropped)
            guard start < state.buffer.count else { return "" }
            return String(decoding: state.buffer[state.buffer.startIndex.advanced(by: start)...], as: UTF8.self)
        }
    }

    /// Waits until every writer closed the pipe, at most `timeout` seconds.
    @discardableResult
    func waitForEnd(timeout: TimeInterval) -> Bool {
        if state.withLock({ $0.finished }) { return true }
        if done.wait(timeout: .now() + timeout) == .success {
            done.signal()  // later callers see the end too
            return true
        }
        return false
    }
}
