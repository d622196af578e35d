import Glibc

// The chokepoint every system call in the files that use it goes through, after swift-system's
// `valueOrErrno(retryOnInterrupt:)`: -1 becomes a typed `Errno` read right after the call, and EINTR (a signal
// arrived, e.g. SIGCHLD from a run or SIGINT from the user) is retried where the caller asks for it.

/// Calls `call` until it does not fail with EINTR (unless `retryOnInterrupt` is false); -1 becomes the `Errno`.
@inline(__always)
func valueOrErrno<Value: FixedWidthInteger>(
    retryOnInterrupt: Bool = true, _ call: () -> Value
) -> Result<Value, Errno> {
    while true {
        let value = call()
        guard value == -1 else { return .success(value) }
        let error = Errno.current
        if retryOnInterrupt && error == .interrupted { continue }
        return .failure(error)
    }
}

/// `valueOrErrno` for calls whose only result is success.
@inline(__always)
func nothingOrErrno<Value: FixedWidthInteger>(
    retryOnInterrupt: Bool = true, _ call: () -> Value
) -> Result<Void, Errno> {
    valueOrErrno(retryOnInterrupt: retryOnInterrupt, call).map { _ in () }
}

/// For the C target's helpers and raw syscalls that return `-errno` instead of setting `errno`.
@inline(__always)
func valueOrNegatedErrno<Value: FixedWidthInteger>(_ value: Value) -> Result<Value, Errno> {
    value < 0 ? .failure(Errno(negated: value)) : .success(value)
}

extension Result where Failure == Errno {
    /// The value, or a `HarnessError` naming the step, the call and the path that failed.
    func orThrow(step: String, syscall: String, path: String? = nil, _ message: String, hint: String? = nil) throws
        -> Success
    {
        switch self {
        case .success(let value): return value
        case .failure(let error):
            throw HarnessError(step: step, syscall: syscall, path: path, errno: error, message, hint: hint)
        }
    }
}

/// Thin typed wrappers for the calls ghostrun makes most; each goes through the chokepoint.
enum System {
    /// open(2) with O_CLOEXEC added.
    static func open(_ path: String, _ flags: Int32, mode: mode_t = 0) -> Result<Int32, Errno> {
        valueOrErrno { Glibc.open(path, flags | O_CLOEXEC, mode) }
    }

    /// read(2) into `buffer`; 0 at end of file.
    static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) -> Result<Int, Errno> {
        valueOrErrno { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    /// write(2) of all of `bytes` (a short write of a cgroup control file is an error, reported as EIO).
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Result<Void, Errno> {
        let written = bytes.withUnsafeBytes { raw in valueOrErrno { Glibc.write(fd, raw.baseAddress, raw.count) } }
        return written.flatMap { $0 == bytes.count ? .success(()) : .failure(Errno(rawValue: EIO)) }
    }

    static func mkdir(_ path: String, _ mode: mode_t = 0o755) -> Result<Void, Errno> {
        nothingOrErrno { Glibc.mkdir(path, mode) }
    }

    static func rmdir(_ path: String) -> Result<Void, Errno> {
        nothingOrErrno { Glibc.rmdir(path) }
    }

    /// close(2) is never retried: on Linux the descriptor is released even when close reports EINTR, and a
    /// retry could close a descriptor another thread was just given.
    @discardableResult
    static func close(_ fd: Int32) -> Result<Void, Errno> {
        nothingOrErrno(retryOnInterrupt: false) { Glibc.close(fd) }
    }
}
