import Foundation

/// The container runtimes' default profiles, shipped with ghostrun (profiles/*.json, upstream versions in
/// profiles/README.md): `docker-default` (moby's profiles/seccomp/default.json), `podman-default`
/// (containers-common's pkg/seccomp/seccomp.json), `containerd-default` (containerd's RuntimeDefault, the
/// Kubernetes default, converted from its Go code by scripts/containerd-profile-to-json.py).
public enum BuiltInProfiles {
    public static let names = ["docker-default", "podman-default", "containerd-default"]

    private static let lock = NSLock()
    nonisolated(unsafe) private static var cache: [String: SeccompProfileDocument] = [:]

    /// The upstream JSON as shipped.
    public static func json(named name: String) -> String? { BuiltInProfileData.json[name] }

    public static func document(named name: String) throws -> SeccompProfileDocument {
        guard let text = json(named: name) else {
            throw ProfileError(
                profile: name, path: "", message: "unknown built-in profile",
                hint: "built-ins are \(names.joined(separator: ", ")); a profile file is given by a path with / "
                    + "or ending in .json")
        }
        lock.lock()
        defer { lock.unlock() }
        if let cached = cache[name] { return cached }
        let document = try SeccompProfileParser.parse(data: Data(text.utf8), label: name)
        cache[name] = document
        return document
    }

    /// `docker-default` is a built-in's name; `./x.json`, `x.json` or `/etc/p.json` is a file.
    public static func isName(_ reference: String) -> Bool {
        !reference.contains("/") && !reference.lowercased().hasSuffix(".json")
    }

    /// A scenario's `profile:` (or `--seccomp-profile`): a built-in name, or a path relative to `directory`.
    public static func load(_ reference: String, relativeTo directory: String) throws -> SeccompProfileDocument {
        if isName(reference) { return try document(named: reference) }
        let path = reference.hasPrefix("/") ? reference : directory + "/" + reference
        let key = URL(fileURLWithPath: path).standardizedFileURL.path
        lock.lock()
        if let cached = cache[key] {
            lock.unlock()
            return cached
        }
        lock.unlock()
        let document = try SeccompProfileParser.load(file: key, label: reference.hasPrefix("/") ? key : reference)
        lock.lock()
        cache[key] = document
        lock.unlock()
        return document
    }
}

/// `capabilities.preset`: a runtime's default capability set to start from instead of all that ghostrun holds.
public enum CapabilityPreset: String, Sendable, CaseIterable {
    /// moby daemon/pkg/oci/caps/defaults.go: 14 capabilities.
    case dockerDefault = "docker-default"
    /// containers-common pkg/config/default.go DefaultCapabilities: 11 (no MKNOD, NET_RAW, AUDIT_WRITE).
    case podmanDefault = "podman-default"

    public var capabilityNames: [String] {
        switch self {
        case .dockerDefault:
            return [
                "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
                "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
                "CAP_AUDIT_WRITE",
            ]
        case .podmanDefault:
            return [
                "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_NET_BIND_SERVICE",
                "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT",
            ]
        }
    }

    public var capabilities: CapabilitySet {
        CapabilitySet(numbers: capabilityNames.compactMap { CapabilityName.number(of: $0) })
    }
}

extension Scenario {
    /// `ghostrun run --seccomp-profile`: the scenario under `document` unless it names a profile of its own. Its
    /// `rules:` stay on top of the profile, and its `default:`, if written, replaces the profile's defaultAction.
    public func underSeccompProfile(_ reference: String, document: SeccompProfileDocument) -> Scenario {
        guard sandbox.seccomp?.profileDocument == nil else { return self }
        var copy = self
        var policy = sandbox.seccomp ?? SeccompPolicy()
        policy.profile = reference
        policy.profileDocument = document
        copy.sandbox.seccomp = policy
        return copy
    }
}
