import CGhostrun
import Foundation
import Synchronization

/// Fixed-size memory for a captured stream: the first `headLimit` bytes and the last `tailLimit` bytes, whatever
/// the target writes. The tail is a ring buffer allocated once, so 6 GB of output costs the same memory as 6 MB
/// (a `Data` with `removeFirst` only moves its start index and kept every byte: 2 GB of stdout was 2.13 GB RSS).
struct BoundedOutput {
    let headLimit: Int
    let tailLimit: Int
    private(set) var head: [UInt8] = []
    private var ring: [UInt8]
    /// Where the next tail byte goes in `ring`.
    private var ringEnd = 0
    /// Bytes in `ring` (at most `tailLimit`).
    private var ringCount = 0
    /// Every byte appended, including those no longer held.
    private(set) var total = 0

    init(headLimit: Int, tailLimit: Int) {
        precondition(headLimit >= 0 && tailLimit > 0)
        self.headLimit = headLimit
        self.tailLimit = tailLimit
        ring = [UInt8](repeating: 0, count: tailLimit)
        head.reserveCapacity(headLimit)
    }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        total += bytes.count
        if head.count < headLimit {
            head.append(contentsOf: bytes.prefix(headLimit - head.count))
        }
        // Only the last `tailLimit` bytes of a large chunk can survive.
        let kept = bytes.count > tailLimit ? UnsafeRawBufferPointer(rebasing: bytes.suffix(tailLimit)) : bytes
        var offset = 0
        ring.withUnsafeMutableBytes { ring in
            while offset < kept.count {
                let n = min(kept.count - offset, tailLimit - ringEnd)
                ring.baseAddress!.advanced(by: ringEnd).copyMemory(
                    from: kept.baseAddress!.advanced(by: offset), byteCount: n)
                offset += n
                ringEnd = (ringEnd + n) % tailLimit
            }
        }
        ringCount = min(tailLimit, ringCount + kept.count)
    }

    /// The last bytes, oldest first, starting `skip` bytes into what the ring holds.
    func tail(skipping skip: Int = 0) -> [UInt8] {
        guard skip < ringCount else { return [] }
        let start = (ringEnd - ringCount + tailLimit) % tailLimit
        var out = [UInt8]()
        out.reserveCapacity(ringCount - skip)
        for i in skip..<ringCount { out.append(ring[(start + i) % tailLimit]) }
        return out
    }

    /// Bytes of the stream before the first byte the ring still holds.
    var tailStart: Int { total - ringCount }
}

/// Reads a pipe on its own thread so the target never blocks on a full pipe, keeping a fixed-size head and tail
/// (the end of stderr is where Go puts its diagnostics, so `text` is the tail).
final class OutputCapture: Sendable {
    private struct State {
        var output: BoundedOutput
        var finished = false
        /// Why the copy to `copyPath` stopped early (a full disk), nil while it holds every byte.
        var copyError: String?
    }

    private let state: Mutex<State>
    private let readFd: Int32
    /// The pipe's write end, handed to the child.
    let writeFd: Int32
    private let done = DispatchSemaphore(value: 0)
    /// Sees every chunk as it is read, on the reader's thread (the go test event parser).
    private let onChunk: (@Sendable (ArraySlice<UInt8>) -> Void)?

    /// `--keep-work`: every byte also goes to this file, written as it is read (never held in memory).
    let copyPath: String?
    private let copyFd: Int32

    init(limit: Int = 4 << 20, headLimit: Int = 64 << 10, copyTo copyPath: String? = nil,
         onChunk: (@Sendable (ArraySlice<UInt8>) -> Void)? = nil) throws
    {
        self.onChunk = onChunk
        self.copyPath = copyPath
        if let copyPath {
            copyFd = try System.open(copyPath, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode: 0o644)
                .orThrow(step: "output capture", syscall: "open", path: copyPath, "cannot create the output file")
        } else {
            copyFd = -1
        }
        var fds: [Int32] = [0, 0]
        try nothingOrErrno { ghostrun_pipe_cloexec(&fds) }.orThrow(
            step: "output capture", syscall: "pipe2", "spawn step pipe failed")
        readFd = fds[0]
        writeFd = fds[1]
        state = Mutex(State(output: BoundedOutput(headLimit: headLimit, tailLimit: limit)))
    }

    func start() {
        let thread = Thread { [self] in
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                // Any error but EINTR (retried in the chokepoint) ends the capture like end of file.
                guard case .success(let n) = chunk.withUnsafeMutableBytes({ System.read(readFd, into: $0) }), n > 0
                else { break }
                onChunk?(chunk[0..<n])
                if copyFd >= 0, state.withLock({ $0.copyError == nil }),
                    case .failure(let error) = System.writeAll(copyFd, Array(chunk[0..<n]))
                {
                    state.withLock { $0.copyError = "\(error)" }
                }
                chunk.withUnsafeBytes { bytes in
                    let read = UnsafeRawBufferPointer(rebasing: bytes[0..<n])
                    state.withLock { $0.output.append(read) }
                }
            }
            System.close(readFd)
            if copyFd >= 0 { System.close(copyFd) }
            state.withLock { $0.finished = true }
            done.signal()
        }
        thread.name = "ghostrun-output"
        thread.start()
    }

    /// Closes ghostrun's copy of the write end once the child has it.
    func closeWriteEnd() { System.close(writeFd) }

    /// Why the `--keep-work` copy is incomplete, nil when it holds every byte read.
    var copyError: String? { state.withLock { $0.copyError } }

    /// Bytes read so far (including any no longer held).
    var byteCount: Int { state.withLock { $0.output.total } }

    /// The last `limit` bytes read.
    var text: String { state.withLock { String(decoding: $0.output.tail(), as: UTF8.self) } }

    /// The first `headLimit` bytes read.
    var headText: String { state.withLock { String(decoding: $0.output.head, as: UTF8.self) } }

    /// Text after the first `offset` bytes read (used to cut out the SIGQUIT goroutine dump).
    func text(since offset: Int) -> String {
        state.withLock { state in
            let skip = max(0, offset - state.output.tailStart)
            return String(decoding: state.output.tail(skipping: skip), as: UTF8.self)
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
