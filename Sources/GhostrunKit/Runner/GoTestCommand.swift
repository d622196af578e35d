import Foundation

/// How a `go test` command's output will be read.
public enum GoTestOutputMode: Equatable, Sendable {
    /// test2json events; `added` when ghostrun inserted `-json` itself (so stdout shown to people is rebuilt
    /// as plain text, and `expect.stdout` still matches what plain `go test` prints).
    case json(added: Bool)
    /// Plain `go test` text (`-json=false`, or a command ghostrun does not rewrite).
    case plain
}

/// Recognises a `go test` argv and adds `-json` to it. Pure functions of the argv.
public enum GoTestCommand {
    /// Flags of `go test` and the build flags that take a value as the next argument (`-run X`), so that the
    /// value is never mistaken for a flag (`-run -json` runs tests named "-json").
    static let valueFlags: Set<String> = [
        "asmflags", "buildmode", "compiler", "gccgoflags", "gcflags", "installsuffix", "ldflags", "mod", "modfile",
        "overlay", "pgo", "pkgdir", "tags", "toolexec", "o", "p", "exec", "vet", "covermode", "coverpkg",
        "coverprofile", "bench", "benchtime", "blockprofile", "blockprofilerate", "count", "cpu", "cpuprofile",
        "fuzz", "fuzzminimizetime", "fuzztime", "list", "memprofile", "memprofilerate", "mutexprofile",
        "mutexprofilefraction", "outputdir", "parallel", "run", "skip", "timeout", "trace", "shuffle", "C",
        "coverdir", "json-output",
    ]

    /// The result of inspecting a go command line.
    public struct Rewrite: Equatable, Sendable {
        public var arguments: [String]
        public var mode: GoTestOutputMode
    }

    /// For `go [-C dir] test ...`: the argv with `-json` added right after `test` (before any flag or package,
    /// where the go command accepts it whatever follows), and how to read the output. Nil for any other command,
    /// and for `go test -c` (it compiles and runs nothing, so there is nothing to read).
    ///
    /// Left as written: a command that already has `-json` (or `-json=false`: the user wants plain text), and
    /// flags after `-args`, which belong to the test binary.
    public static func rewrite(_ arguments: [String]) -> Rewrite? {
        guard arguments.count >= 2, (arguments[0] as NSString).lastPathComponent == "go" else { return nil }
        var index = 1
        // `go -C dir test` (Go 1.20+): -C must come first.
        if arguments[index] == "-C" || arguments[index] == "--C" {
            index += 2
        } else if arguments[index].hasPrefix("-C=") || arguments[index].hasPrefix("--C=") {
            index += 1
        }
        guard index < arguments.count, arguments[index] == "test" else { return nil }
        let testIndex = index
        var json: Bool?
        var compileOnly = false
        var i = testIndex + 1
        while i < arguments.count {
            let argument = arguments[i]
            if argument == "-args" || argument == "--args" { break }
            guard argument.hasPrefix("-"), argument != "-", argument != "--" else {
                i += 1
                continue
            }
            let body = argument.drop(while: { $0 == "-" })
            let name = String(body.prefix(while: { $0 != "=" }))
            let value: String? = body.contains("=") ? String(body.drop(while: { $0 != "=" }).dropFirst()) : nil
            switch name {
            case "json": json = value.map(parseBool) ?? true
            case "c": compileOnly = value.map(parseBool) ?? true
            default:
                // A value flag written as `-run X` takes the next argument.
                if value == nil, valueFlags.contains(name) { i += 1 }
            }
            i += 1
        }
        if compileOnly { return nil }
        switch json {
        case true?: return Rewrite(arguments: arguments, mode: .json(added: false))
        case false?: return Rewrite(arguments: arguments, mode: .plain)
        case nil:
            var rewritten = arguments
            rewritten.insert("-json", at: testIndex + 1)
            return Rewrite(arguments: rewritten, mode: .json(added: true))
        }
    }

    /// Go's flag package accepts 1, t, T, TRUE, true, True as true; anything else here is read as false.
    static func parseBool(_ text: String) -> Bool {
        ["1", "t", "T", "TRUE", "true", "True"].contains(text)
    }
}
