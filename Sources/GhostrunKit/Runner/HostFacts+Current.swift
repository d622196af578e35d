import Foundation

extension HostFacts {
    /// This host, now.
    public static func current() -> HostFacts {
        var name = utsname()
        uname(&name)
        func field<T>(_ value: inout T) -> String {
            withUnsafeBytes(of: &value) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        }
        return HostFacts(
            kernel: field(&name.sysname) + " " + field(&name.release) + " " + field(&name.machine),
            libseccomp: SyscallName.libraryVersion, cgroup: CgroupHierarchies.discover().summary,
            ghostrunVersion: GhostrunVersion.current, hostname: field(&name.nodename))
    }
}
