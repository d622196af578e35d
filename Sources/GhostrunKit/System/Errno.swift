import Glibc

/// An error number a system call returned, as a value.
///
/// `description` is the one place in ghostrun that asks libc for the text of an errno (`strerror`); every message
/// that names a failing call goes through it.
public struct Errno: Error, RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: Int32

    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// The calling thread's `errno` right now: read it immediately after the failing call.
    public static var current: Errno { Errno(rawValue: Glibc.errno) }

    /// From the `-errno` convention of the C target's helpers and of raw syscalls (a negative return value).
    public init(negated value: some BinaryInteger) { self.init(rawValue: -Int32(truncatingIfNeeded: value)) }

    /// The libc text, e.g. "Permission denied".
    public var description: String { String(cString: strerror(rawValue)) }

    /// The symbolic name (`EACCES`), when libc knows it.
    public var name: String? { ErrnoName.name(of: rawValue) }

    public static let interrupted = Errno(rawValue: EINTR)
    public static let wouldBlock = Errno(rawValue: EAGAIN)
    public static let noSuchFile = Errno(rawValue: ENOENT)
    public static let exists = Errno(rawValue: EEXIST)
    public static let busy = Errno(rawValue: EBUSY)
    public static let permissionDenied = Errno(rawValue: EACCES)
    public static let notPermitted = Errno(rawValue: EPERM)
    public static let noBufferSpace = Errno(rawValue: ENOBUFS)
    public static let brokenPipe = Errno(rawValue: EPIPE)
    public static let argumentListTooLong = Errno(rawValue: E2BIG)

    /// Lets `switch error { case .busy: ... }` and `error == .busy` read naturally.
    public static func ~= (pattern: Errno, value: Errno) -> Bool { pattern == value }
}
