import CGhostrun
import Foundation

/// Reads a pipe on its own thread so the target never blocks on a full pipe, keeping at most `limit` bytes
/// (the head is dropped first: the end of stderr is where Go puts its diagnostics).
final class OutputCapture: @unchecked Sendable {
    private let lock = NSLock()
    private var buffer = Data()
    private var total = 0
    private var finished = false
    private let limit: Int
    private let readFd: Int32
    /// The pipe's write end, handed to the child.
    let writeFd: Int32
    private let done = DispatchSemaphore(value: 0)

    init(limit: Int = 4 << 20) throws {
        var fds: [Int32] = [0, 0]
        guard ghostrun_pipe_cloexec(&fds) == 0 else {
            throw SpawnError(step: "pipe", errno: errno)
        }
        readFd = fds[0]
        writeFd = fds[1]
        self.limit = limit
    }

    func start() {
        let thread = Thread { [self] in
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = chunk.withUnsafeMutableBytes { read(readFd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                lock.lock()
                buffer.append(contentsOf: chunk[0..<n])
                total += n
                if buffer.count > limit { buffer.removeFirst(buffer.count - limit) }
                lock.unlock()
            }
            close(readFd)
            lock.lock()
            finished = true
            lock.unlock()
            done.signal()
        }
        thread.name = "ghostrun-output"
        thread.start()
    }

    /// Closes ghostrun's copy of the write end once the child has it.
    func closeWriteEnd() { close(writeFd) }

    /// Bytes read so far (including any dropped from the head).
    var byteCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return total
    }

    var text: String {
        lock.lock()
        defer { lock.unlock() }
        return String(decoding: buffer, as: UTF8.self)
    }

    /// Text after the first `offset` bytes read (used to cut out the SIGQUIT goroutine dump).
    func text(since offset: Int) -> String {
        lock.lock()
        defer { lock.unlock() }
        let dropped = total - buffer.count
        let start = max(0, offset - dropped)
        guard start < buffer.count else { return "" }
        return String(decoding: buffer[buffer.startIndex.advanced(by: start)...], as: UTF8.self)
    }

    /// Waits until every writer closed the pipe, at most `timeout` seconds.
    @discardableResult
    func waitForEnd(timeout: TimeInterval) -> Bool {
        lock.lock()
        let already = finished
        lock.unlock()
        if already { return true }
        if done.wait(timeout: .now() + timeout) == .success {
            done.signal()  // later callers see the end too
            return true
        }
        return false
    }
}
