/// One entry of `sandbox.mounts`, applied in order in the run's private mount namespace.
public struct MountEntry: Sendable {
    /// What the entry puts at `path`.
    public enum Kind: Sendable, Equatable {
        /// Only flags: the tree at `path` keeps its contents.
        case flags
        /// A fresh tmpfs of this many bytes.
        case tmpfs(size: UInt64)
        /// Masked as Docker masks paths: an empty read-only tmpfs over a directory, /dev/null over a file.
        case hide
        /// The tree at `source` (absolute, or under `$WORK`), recursively.
        case bind(source: String)
    }

    /// Absolute, or `$WORK` / `$WORK/...` (expanded by the plan).
    public var path: String
    public var kind: Kind
    public var readonly = false
    public var noexec = false
    public var nosuid = false
    public var nodev = false
    public var location: SourceLocation?

    public init(path: String, kind: Kind) {
        self.path = path
        self.kind = kind
    }
}

/// `sandbox.network`: a private network namespace for the run.
public enum NetworkMode: String, Sendable, CaseIterable {
    /// No interface up: every connection fails (ENETUNREACH), nothing leaves the namespace.
    case none
    /// Only `lo`, up: local servers work, nothing routes out.
    case loopback
}

/// `sandbox.landlock`: a Landlock ruleset over the file system.
public struct LandlockRequest: Sendable {
    /// Trees that may be written (and read); `$WORK` is always among them.
    public var write: [String] = []
    /// Trees that may be read or executed; nil: reading is not restricted.
    public var read: [String]?
    public var location: SourceLocation?
    public init() {}
}

/// One `sandbox.stall` endpoint: an IPv4 loopback address and a port, served inside the run's namespace.
public struct StallEndpoint: Sendable, Equatable, CustomStringConvertible {
    /// The four octets of the address.
    public var octets: [UInt8]
    public var port: UInt16
    public var description: String { octets.map(String.init).joined(separator: ".") + ":\(port)" }

    /// `127.0.0.1:8099`; nil unless the address is in 127.0.0.0/8 and the port in 1...65535.
    public init?(_ text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let port = UInt16(parts[1]), port > 0 else { return nil }
        let octets = parts[0].split(separator: ".", omittingEmptySubsequences: false).compactMap { UInt8($0) }
        guard octets.count == 4, octets[0] == 127 else { return nil }
        self.octets = octets
        self.port = port
    }
}
