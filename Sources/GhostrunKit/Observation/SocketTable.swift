import Foundation

/// One TCP connection a hung process holds: which descriptor, the addresses and the kernel's TCP state, and whether
/// the remote end is one of the scenario's stalled endpoints (`sandbox.stall`).
public struct HangConnection: Codable, Equatable, Sendable {
    public var fd: Int
    public var local: String
    public var remote: String
    public var state: String
    public var stalledEndpoint: Bool

    enum CodingKeys: String, CodingKey {
        case fd, local, remote, state, stalledEndpoint = "stalled_endpoint"
    }
}

/// Reads `/proc/PID/net/tcp` and `tcp6`, which show the TCP sockets of the network namespace PID is in (the run's
/// own, under `sandbox.network`), and matches them with the socket inodes of PID's descriptors.
public enum SocketTable {
    /// A row of `/proc/net/tcp{,6}`.
    public struct Row: Equatable, Sendable {
        public var local: String
        public var remote: String
        public var state: String
        public var inode: UInt64
    }

    /// The kernel's TCP states (include/net/tcp_states.h), as `ss` names them.
    static let states: [UInt8: String] = [
        1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT", 7: "CLOSE",
        8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING", 12: "NEW_SYN_RECV",
    ]

    /// Parses the text of `/proc/net/tcp` or `tcp6` (header line first; malformed rows are skipped).
    public static func parse(_ text: String) -> [Row] {
        text.split(separator: "\n").dropFirst().compactMap { line in
            // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 10, let local = address(fields[1]), let remote = address(fields[2]),
                let code = UInt8(fields[3], radix: 16), let inode = UInt64(fields[9])
            else { return nil }
            return Row(local: local, remote: remote, state: states[code] ?? "state \(code)", inode: inode)
        }
    }

    /// `0100007F:1FA3` → `127.0.0.1:8099`; IPv6 is four 32-bit words, each in host (little-endian) byte order.
    static func address<S: StringProtocol>(_ field: S) -> String? {
        let parts = field.split(separator: ":")
        guard parts.count == 2, let port = UInt16(parts[1], radix: 16) else { return nil }
        let hex = Array(parts[0])
        var bytes: [UInt8] = []
        for word in stride(from: 0, to: hex.count, by: 8) {
            guard word + 8 <= hex.count else { return nil }
            var wordBytes: [UInt8] = []
            for i in stride(from: word, to: word + 8, by: 2) {
                guard let byte = UInt8(String(hex[i..<i + 2]), radix: 16) else { return nil }
                wordBytes.append(byte)
            }
            bytes += wordBytes.reversed()
        }
        switch bytes.count {
        case 4:
            return bytes.map(String.init).joined(separator: ".") + ":\(port)"
        case 16:
            if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff {
                return bytes[12...].map(String.init).joined(separator: ".") + ":\(port)"  // IPv4-mapped
            }
            let groups = stride(from: 0, to: 16, by: 2).map {
                String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16)
            }
            return "[" + groups.joined(separator: ":") + "]:\(port)"
        default:
            return nil
        }
    }

    /// The socket inode of each descriptor of `pid` that is a socket.
    static func socketDescriptors(pid: Int32) -> [(fd: Int, inode: UInt64)] {
        let directory = "/proc/\(pid)/fd"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return entries.compactMap { name in
            guard let fd = Int(name),
                let target = try? FileManager.default.destinationOfSymbolicLink(atPath: directory + "/" + name),
                target.hasPrefix("socket:["), target.hasSuffix("]"),
                let inode = UInt64(target.dropFirst("socket:[".count).dropLast())
            else { return nil }
            return (fd, inode)
        }.sorted { $0.fd < $1.fd }
    }

    /// The TCP connections `pid` holds (listening sockets left out), marking those whose remote is a stalled
    /// endpoint.
    public static func connections(pid: Int32, stalled: Set<String>) -> [HangConnection] {
        let sockets = socketDescriptors(pid: pid)
        guard !sockets.isEmpty else { return [] }
        let rows = ["tcp", "tcp6"].flatMap { name in
            parse((try? String(contentsOfFile: "/proc/\(pid)/net/\(name)", encoding: .utf8)) ?? "")
        }
        return match(sockets: sockets, rows: rows, stalled: stalled)
    }

    static func match(sockets: [(fd: Int, inode: UInt64)], rows: [Row], stalled: Set<String>) -> [HangConnection] {
        sockets.compactMap { socket in
            guard let row = rows.first(where: { $0.inode == socket.inode && $0.inode != 0 }), row.state != "LISTEN"
            else { return nil }
            return HangConnection(fd: socket.fd, local: row.local, remote: row.remote, state: row.state,
                                  stalledEndpoint: stalled.contains(row.remote))
        }
    }
}
