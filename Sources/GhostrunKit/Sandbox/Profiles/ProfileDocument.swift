import Foundation

/// A seccomp profile file as written: Docker's JSON (moby's `profiles/seccomp` format, with `archMap`,
/// `includes`/`excludes`) or an OCI `linux.seccomp` object, checked key by key. Every syscall entry keeps its JSON
/// path (`syscalls[3]`), so a resolved rule can say which entry of which file made it.
public struct SeccompProfileDocument: Sendable, Equatable {
    /// How the profile is named in origins and messages: the built-in name, or the file path as given.
    public var label: String
    /// The file it was read from; nil for a built-in.
    public var file: String?
    public var defaultAction: ProfileAction
    public var architectures: [String]
    public var archMap: [ArchitectureEntry]
    public var flags: [String]
    public var entries: [ProfileEntry]

    public struct ArchitectureEntry: Sendable, Equatable {
        public var architecture: String
        public var subArchitectures: [String]
    }
}

/// A profile action as written (`SCMP_ACT_ERRNO` with its `errnoRet`).
public struct ProfileAction: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, CaseIterable {
        case allow = "SCMP_ACT_ALLOW"
        case errno = "SCMP_ACT_ERRNO"
        case trap = "SCMP_ACT_TRAP"
        case kill = "SCMP_ACT_KILL"
        case killThread = "SCMP_ACT_KILL_THREAD"
        case killProcess = "SCMP_ACT_KILL_PROCESS"
        case log = "SCMP_ACT_LOG"
        case trace = "SCMP_ACT_TRACE"
        case notify = "SCMP_ACT_NOTIFY"
    }
    public var kind: Kind
    /// `errnoRet` (or `defaultErrnoRet`); nil when not given, which runc reads as EPERM.
    public var errnoRet: Int32?

    public init(kind: Kind, errnoRet: Int32? = nil) {
        self.kind = kind
        self.errnoRet = errnoRet
    }

    public var description: String {
        guard let errnoRet, kind == .errno || kind == .trace else { return kind.rawValue }
        return "\(kind.rawValue)(\(ErrnoName.name(of: errnoRet) ?? String(errnoRet)))"
    }

    /// What the kernel does, as runc sets it up: KILL is KILL_THREAD, ERRNO and TRACE without `errnoRet` use
    /// EPERM, and TRACE with no tracer attached fails the call with ENOSYS (seccomp(2)); ghostrun attaches none.
    public var seccompAction: SeccompAction {
        switch kind {
        case .allow: return .allow
        case .errno: return .errno(errnoRet ?? 1)
        case .trap: return .trap
        case .kill, .killThread: return .killThread
        case .killProcess: return .killProcess
        case .log: return .log
        case .trace: return .errno(38)
        case .notify: return .errno(38)  // refused when the profile is read; never compiled
        }
    }

    /// runc's `isAllowAction`: with such a default, runc adds no ENOSYS stub.
    public var isPermissive: Bool { kind == .allow || kind == .log || kind == .trace }
}

/// One entry of `syscalls`, with the conditions under which moby includes it.
public struct ProfileEntry: Sendable, Equatable {
    /// `syscalls[3]`.
    public var path: String
    public var names: [String]
    public var action: ProfileAction
    public var args: [ProfileArgument]
    public var includes: ProfileFilter?
    public var excludes: ProfileFilter?
    public var comment: String?
}

public struct ProfileArgument: Sendable, Equatable {
    public enum Op: String, Sendable, CaseIterable {
        case ne = "SCMP_CMP_NE"
        case lt = "SCMP_CMP_LT"
        case le = "SCMP_CMP_LE"
        case eq = "SCMP_CMP_EQ"
        case ge = "SCMP_CMP_GE"
        case gt = "SCMP_CMP_GT"
        case maskedEq = "SCMP_CMP_MASKED_EQ"
    }
    public var index: UInt32
    public var value: UInt64
    /// For SCMP_CMP_MASKED_EQ, the datum: the call matches when `(arg & value) == valueTwo`.
    public var valueTwo: UInt64
    public var op: Op

    /// The scenario model's condition (`mask` is `value` for masked_eq, as libseccomp's datum_a).
    public var condition: SeccompArgCondition {
        switch op {
        case .maskedEq: return SeccompArgCondition(index: index, op: .masked_eq, value: valueTwo, mask: value)
        case .ne: return SeccompArgCondition(index: index, op: .ne, value: value)
        case .lt: return SeccompArgCondition(index: index, op: .lt, value: value)
        case .le: return SeccompArgCondition(index: index, op: .le, value: value)
        case .eq: return SeccompArgCondition(index: index, op: .eq, value: value)
        case .ge: return SeccompArgCondition(index: index, op: .ge, value: value)
        case .gt: return SeccompArgCondition(index: index, op: .gt, value: value)
        }
    }
}

/// `includes`/`excludes`: capabilities, architectures (moby's names: amd64, arm64, x86, ...) and a kernel release.
public struct ProfileFilter: Sendable, Equatable {
    public var caps: [String] = []
    public var arches: [String] = []
    public var minKernel: KernelRelease?
}

/// A kernel's major.minor, as moby compares `minKernel` (later parts and suffixes ignored).
public struct KernelRelease: Sendable, Equatable, Comparable, CustomStringConvertible {
    public var major: Int
    public var minor: Int
    public init(major: Int, minor: Int) {
        self.major = major
        self.minor = minor
    }
    /// "6.18.44-fc-v657" → 6.18.
    public init?(release: String) {
        let parts = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        guard parts.count == 2 else { return nil }
        self.init(major: parts[0], minor: parts[1])
    }
    public static var running: KernelRelease {
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return KernelRelease(release: release) ?? KernelRelease(major: 0, minor: 0)
    }
    public static func < (a: KernelRelease, b: KernelRelease) -> Bool { (a.major, a.minor) < (b.major, b.minor) }
    public var description: String { "\(major).\(minor)" }
}

/// A profile that cannot be applied: the file, the JSON path of the key, and what to do.
public struct ProfileError: Error, CustomStringConvertible, Equatable {
    public var profile: String
    /// `syscalls[3].action`; empty for the file as a whole.
    public var path: String
    public var message: String
    public var hint: String?

    public init(profile: String, path: String, message: String, hint: String? = nil) {
        self.profile = profile
        self.path = path
        self.message = message
        self.hint = hint
    }

    /// `PROFILE: PATH: MESSAGE (hint: ...)`.
    public var description: String {
        var text = profile
        if !path.isEmpty { text += ": \(path)" }
        text += ": \(message)"
        if let hint, !hint.isEmpty { text += " (hint: \(hint))" }
        return text
    }
}

/// A JSON value that keeps integers exact (a seccomp argument is 64 bits wide; a Double would round it).
indirect enum ProfileJSON: Decodable, Equatable {
    case null
    case bool(Bool)
    case integer(Int64)
    case unsigned(UInt64)
    case number(Double)
    case string(String)
    case array([ProfileJSON])
    case object([String: ProfileJSON])

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(UInt64.self) {
            self = .unsigned(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([ProfileJSON].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: ProfileJSON].self))
        }
    }

    var kindName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .integer, .unsigned, .number: return "a number"
        case .string: return "a string"
        case .array: return "a list"
        case .object: return "an object"
        }
    }
}

/// Reads profile JSON into `SeccompProfileDocument`, rejecting what moby or runc would reject and what would
/// silently weaken the policy (an unknown key, action, operator or architecture).
public enum SeccompProfileParser {
    static let topLevelKeys: Set<String> = [
        "defaultAction", "defaultErrnoRet", "defaultErrno", "architectures", "archMap", "syscalls", "flags",
        "listenerPath", "listenerMetadata",
    ]
    static let entryKeys: Set<String> = [
        "names", "name", "action", "errnoRet", "errno", "args", "comment", "includes", "excludes",
    ]
    /// libseccomp's architecture names (OCI `architectures`, `archMap`).
    public static let architectureNames: Set<String> = [
        "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
        "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64",
        "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390",
        "SCMP_ARCH_S390X", "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64", "SCMP_ARCH_LOONGARCH64",
        "SCMP_ARCH_M68K", "SCMP_ARCH_SH", "SCMP_ARCH_SHEB",
    ]
    /// moby's `arches` names in includes/excludes (libseccomp's native strings).
    public static let mobyArchNames: Set<String> = [
        "x86", "amd64", "x32", "arm", "arm64", "loong64", "loongarch64", "mips", "mips64", "mips64n32", "mipsel",
        "mipsel64", "mipsel64n32", "mips3l64n32", "mipsle", "ppc", "ppc64", "ppc64le", "riscv64", "s390", "s390x",
    ]
    public static let flagNames: Set<String> = [
        "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
    ]

    /// Reads and checks a profile file.
    public static func load(file: String, label: String? = nil) throws -> SeccompProfileDocument {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: file))
        } catch {
            let reason = Errno(rawValue: errno == 0 ? ENOENT : errno).description
            throw ProfileError(
                profile: label ?? file, path: "", message: "cannot read the profile: \(reason)",
                hint: "a relative path is resolved against the scenario file's directory")
        }
        var document = try parse(data: data, label: label ?? file)
        document.file = file
        return document
    }

    public static func parse(data: Data, label: String) throws -> SeccompProfileDocument {
        let root: ProfileJSON
        do {
            root = try JSONDecoder().decode(ProfileJSON.self, from: data)
        } catch let DecodingError.dataCorrupted(context) {
            let detail = (context.underlyingError as NSError?)?.debugDescription ?? context.debugDescription
            throw ProfileError(profile: label, path: "", message: "not valid JSON: \(detail)")
        } catch {
            throw ProfileError(profile: label, path: "", message: "not valid JSON: \(error)")
        }
        return try Reader(label: label).document(root)
    }

    private struct Reader {
        let label: String

        func error(_ path: String, _ message: String, hint: String? = nil) -> ProfileError {
            ProfileError(profile: label, path: path, message: message, hint: hint)
        }

        func object(_ value: ProfileJSON, _ path: String, allowed: Set<String>) throws -> [String: ProfileJSON] {
            guard case .object(let fields) = value else {
                throw error(path.isEmpty ? "(top level)" : path, "expected an object, found \(value.kindName)")
            }
            for key in fields.keys.sorted() where !allowed.contains(key) {
                throw error(
                    join(path, key), "unknown key `\(key)`",
                    hint: suggestion(key, in: allowed) ?? "keys here: \(allowed.sorted().joined(separator: ", "))")
            }
            return fields
        }

        func string(_ value: ProfileJSON, _ path: String) throws -> String {
            guard case .string(let text) = value else {
                throw error(path, "expected a string, found \(value.kindName)")
            }
            return text
        }

        func strings(_ value: ProfileJSON?, _ path: String) throws -> [String] {
            guard let value else { return [] }
            if case .null = value { return [] }
            guard case .array(let items) = value else {
                throw error(path, "expected a list of strings, found \(value.kindName)")
            }
            return try items.enumerated().map { try string($0.element, "\(path)[\($0.offset)]") }
        }

        func unsigned(_ value: ProfileJSON, _ path: String, max: UInt64 = .max) throws -> UInt64 {
            let number: UInt64
            switch value {
            case .integer(let v) where v >= 0: number = UInt64(v)
            case .unsigned(let v): number = v
            default: throw error(path, "expected a non-negative integer, found \(value.kindName)")
            }
            guard number <= max else { throw error(path, "\(number) is out of range (at most \(max))") }
            return number
        }

        func document(_ root: ProfileJSON) throws -> SeccompProfileDocument {
            let fields = try object(root, "", allowed: SeccompProfileParser.topLevelKeys)
            if let listener = fields["listenerPath"], case .string(let text) = listener, !text.isEmpty {
                throw error(
                    "listenerPath", "a seccomp agent (SCMP_ACT_NOTIFY) is not supported",
                    hint: "ghostrun decides every call itself; remove listenerPath and the NOTIFY rules")
            }
            guard let actionValue = fields["defaultAction"] else {
                throw error(
                    "defaultAction", "the profile has no defaultAction",
                    hint: "moby would run such a profile unconfined; give e.g. \"SCMP_ACT_ERRNO\"")
            }
            var defaultAction = try action(actionValue, "defaultAction")
            if defaultAction.kind == .notify {
                throw error("defaultAction", "SCMP_ACT_NOTIFY cannot be the default action (runc refuses it too)")
            }
            defaultAction.errnoRet = try errnoRet(fields, "defaultErrnoRet", "defaultErrno", "", for: defaultAction)
            let architectures = try strings(fields["architectures"], "architectures")
            for (index, name) in architectures.enumerated() { try checkArchitecture(name, "architectures[\(index)]") }
            var archMap: [SeccompProfileDocument.ArchitectureEntry] = []
            if let value = fields["archMap"], value != .null {
                guard case .array(let items) = value else {
                    throw error("archMap", "expected a list, found \(value.kindName)")
                }
                for (index, item) in items.enumerated() {
                    let path = "archMap[\(index)]"
                    let entry = try object(item, path, allowed: ["architecture", "subArchitectures"])
                    guard let archValue = entry["architecture"] else {
                        throw error(join(path, "architecture"), "missing")
                    }
                    let arch = try string(archValue, join(path, "architecture"))
                    try checkArchitecture(arch, join(path, "architecture"))
                    let subs = try strings(entry["subArchitectures"], join(path, "subArchitectures"))
                    for (subIndex, sub) in subs.enumerated() {
                        try checkArchitecture(sub, "\(path).subArchitectures[\(subIndex)]")
                    }
                    archMap.append(.init(architecture: arch, subArchitectures: subs))
                }
            }
            if !architectures.isEmpty && !archMap.isEmpty {
                throw error(
                    "archMap", "both `architectures` and `archMap` are given",
                    hint: "moby refuses this; keep one of them")
            }
            let flags = try strings(fields["flags"], "flags")
            for (index, flag) in flags.enumerated() where !SeccompProfileParser.flagNames.contains(flag) {
                throw error(
                    "flags[\(index)]", "unknown flag `\(flag)`",
                    hint: suggestion(flag, in: SeccompProfileParser.flagNames)
                        ?? SeccompProfileParser.flagNames.sorted().joined(separator: ", "))
            }
            var entries: [ProfileEntry] = []
            if let value = fields["syscalls"], value != .null {
                guard case .array(let items) = value else {
                    throw error("syscalls", "expected a list, found \(value.kindName)")
                }
                for (index, item) in items.enumerated() {
                    entries.append(try entry(item, "syscalls[\(index)]"))
                }
            }
            return SeccompProfileDocument(
                label: label, file: nil, defaultAction: defaultAction, architectures: architectures,
                archMap: archMap, flags: flags, entries: entries)
        }

        func checkArchitecture(_ name: String, _ path: String) throws {
            guard SeccompProfileParser.architectureNames.contains(name) else {
                throw error(
                    path, "unknown architecture `\(name)`",
                    hint: suggestion(name, in: SeccompProfileParser.architectureNames) ?? "e.g. SCMP_ARCH_X86_64")
            }
        }

        func action(_ value: ProfileJSON, _ path: String) throws -> ProfileAction {
            let text = try string(value, path)
            guard let kind = ProfileAction.Kind(rawValue: text) else {
                throw error(
                    path, "unknown action `\(text)`",
                    hint: suggestion(text, in: Set(ProfileAction.Kind.allCases.map(\.rawValue)))
                        ?? ProfileAction.Kind.allCases.map(\.rawValue).joined(separator: ", "))
            }
            return ProfileAction(kind: kind)
        }

        /// `errnoRet` (a number) and containers-common's `errno` (a name) must agree; either applies only to
        /// ERRNO and TRACE, where it is the value returned.
        func errnoRet(
            _ fields: [String: ProfileJSON], _ numberKey: String, _ nameKey: String, _ path: String,
            for action: ProfileAction
        ) throws -> Int32? {
            var result: Int32?
            if let value = fields[numberKey], value != .null {
                result = Int32(try unsigned(value, join(path, numberKey), max: 4095))
            }
            if let value = fields[nameKey], value != .null {
                let name = try string(value, join(path, nameKey))
                guard let number = ErrnoName.value(of: name) else {
                    throw error(
                        join(path, nameKey), "unknown errno `\(name)`",
                        hint: suggestion(name, in: Set(ErrnoName.allNames)) ?? "a name such as EPERM")
                }
                if let result, result != number {
                    throw error(
                        join(path, nameKey), "`\(nameKey)` says \(name) but `\(numberKey)` says \(result)",
                        hint: "make them agree")
                }
                result = number
            }
            if result != nil && action.kind != .errno && action.kind != .trace {
                throw error(
                    join(path, numberKey), "an errno has no effect with \(action.kind.rawValue)",
                    hint: "use SCMP_ACT_ERRNO, or remove the errno")
            }
            return result
        }

        func entry(_ value: ProfileJSON, _ path: String) throws -> ProfileEntry {
            let fields = try object(value, path, allowed: SeccompProfileParser.entryKeys)
            var names = try strings(fields["names"], join(path, "names"))
            if let single = fields["name"], single != .null {
                let name = try string(single, join(path, "name"))
                if !names.isEmpty {
                    throw error(join(path, "name"), "both `name` and `names` are given", hint: "keep `names`")
                }
                names = [name]
            }
            for (index, name) in names.enumerated() where name.isEmpty {
                throw error("\(path).names[\(index)]", "an empty syscall name")
            }
            guard let actionValue = fields["action"] else {
                throw error(join(path, "action"), "missing", hint: "e.g. \"SCMP_ACT_ALLOW\"")
            }
            var entryAction = try action(actionValue, join(path, "action"))
            if entryAction.kind == .notify {
                throw error(
                    join(path, "action"), "SCMP_ACT_NOTIFY needs a seccomp agent, which ghostrun does not run",
                    hint: "replace it with the answer the agent would give, e.g. SCMP_ACT_ERRNO")
            }
            entryAction.errnoRet = try errnoRet(fields, "errnoRet", "errno", path, for: entryAction)
            var args: [ProfileArgument] = []
            if let argsValue = fields["args"], argsValue != .null {
                guard case .array(let items) = argsValue else {
                    throw error(join(path, "args"), "expected a list, found \(argsValue.kindName)")
                }
                for (index, item) in items.enumerated() {
                    args.append(try argument(item, "\(path).args[\(index)]"))
                }
            }
            let comment = try fields["comment"].map { try string($0, join(path, "comment")) }
            return ProfileEntry(
                path: path, names: names, action: entryAction, args: args,
                includes: try filter(fields["includes"], join(path, "includes")),
                excludes: try filter(fields["excludes"], join(path, "excludes")), comment: comment)
        }

        func argument(_ value: ProfileJSON, _ path: String) throws -> ProfileArgument {
            let fields = try object(value, path, allowed: ["index", "value", "valueTwo", "op"])
            guard let indexValue = fields["index"] else { throw error(join(path, "index"), "missing") }
            let index = try unsigned(indexValue, join(path, "index"), max: 5)
            guard let opValue = fields["op"] else { throw error(join(path, "op"), "missing") }
            let opText = try string(opValue, join(path, "op"))
            guard let op = ProfileArgument.Op(rawValue: opText) else {
                throw error(
                    join(path, "op"), "unknown operator `\(opText)`",
                    hint: suggestion(opText, in: Set(ProfileArgument.Op.allCases.map(\.rawValue)))
                        ?? ProfileArgument.Op.allCases.map(\.rawValue).joined(separator: ", "))
            }
            let argValue = try fields["value"].map { try unsigned($0, join(path, "value")) } ?? 0
            let valueTwo = try fields["valueTwo"].map { try unsigned($0, join(path, "valueTwo")) } ?? 0
            if valueTwo != 0 && op != .maskedEq {
                throw error(
                    join(path, "valueTwo"), "valueTwo only applies to SCMP_CMP_MASKED_EQ",
                    hint: "libseccomp ignores it with \(opText)")
            }
            return ProfileArgument(index: UInt32(index), value: argValue, valueTwo: valueTwo, op: op)
        }

        func filter(_ value: ProfileJSON?, _ path: String) throws -> ProfileFilter? {
            guard let value, value != .null else { return nil }
            let fields = try object(value, path, allowed: ["caps", "arches", "minKernel"])
            var result = ProfileFilter()
            result.caps = try strings(fields["caps"], join(path, "caps"))
            for (index, cap) in result.caps.enumerated() where CapabilityName.number(of: cap) == nil {
                throw error(
                    "\(path).caps[\(index)]", "unknown capability `\(cap)`",
                    hint: suggestion(cap, in: Set(CapabilityName.allNames)) ?? "e.g. CAP_SYS_ADMIN")
            }
            result.arches = try strings(fields["arches"], join(path, "arches"))
            for (index, arch) in result.arches.enumerated() where !SeccompProfileParser.mobyArchNames.contains(arch) {
                throw error(
                    "\(path).arches[\(index)]", "unknown architecture `\(arch)`",
                    hint: suggestion(arch, in: SeccompProfileParser.mobyArchNames)
                        ?? "moby's names: amd64, arm64, x86, x32, arm, s390x, ...")
            }
            if let kernelValue = fields["minKernel"], kernelValue != .null {
                let text = try string(kernelValue, join(path, "minKernel"))
                let parts = text.split(separator: ".", omittingEmptySubsequences: false)
                guard !text.isEmpty, parts.count == 2, let major = UInt8(parts[0]), let minor = UInt8(parts[1]),
                    major > 0 || minor > 0
                else {
                    throw error(
                        join(path, "minKernel"), "`\(text)` is not a kernel version",
                        hint: "\"<major>.<minor>\", e.g. \"4.8\"")
                }
                result.minKernel = KernelRelease(major: Int(major), minor: Int(minor))
            }
            return result
        }

        func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

        func suggestion(_ word: String, in candidates: Set<String>) -> String? {
            let close = closestNames(to: word, in: candidates.sorted())
            return close.isEmpty ? nil : "did you mean \(close.map { "`\($0)`" }.joined(separator: " or "))?"
        }
    }
}
