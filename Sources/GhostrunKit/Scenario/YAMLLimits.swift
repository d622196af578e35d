import Foundation
import Yams

/// Limits on a scenario file before and after YAML parsing, so a stranger's file cannot make ghostrun spend minutes
/// or gigabytes (100 000 aliases took 43 s and 276 MB; nested aliases — "billion laughs" — grow exponentially).
///
/// Yams 6.2.2 has no limit of its own: `compose` resolves an alias to the anchored node, which is cheap, but every
/// later walk of the tree visits each alias's copy again. So the text is checked first (size, alias count, an
/// approximate count: a `*name` that starts a plain scalar such as `ls *foo` counts too, which only matters past
/// the limit), and the composed tree is then walked once with a node budget before anything reads it.
public enum YAMLLimits {
    /// Largest scenario file read, in bytes.
    public static let maxBytes = 1 << 20
    /// Most alias references (`*name`) in one file.
    public static let maxAliases = 1000
    /// Most nodes the document may expand to, aliases expanded.
    public static let maxNodes = 100_000

    static func checkText(_ text: String, file: String) throws {
        let size = text.utf8.count
        if size > maxBytes {
            throw ScenarioError(
                file: file, line: nil, key: nil,
                message: "the file is \(size) bytes, more than the limit of \(maxBytes)",
                hint: "a scenario is a short description; put large data in a fixture directory")
        }
        var aliases = 0
        var previous: UInt8 = 10
        var line = 1
        for byte in text.utf8 {
            if byte == 10 { line += 1 }
            // An alias starts a node: after a line start, blank, or flow indicator.
            if byte == UInt8(ascii: "*"), [10, 32, 9, UInt8(ascii: "["), UInt8(ascii: "{"), UInt8(ascii: ",")]
                .contains(previous)
            {
                aliases += 1
                if aliases > maxAliases {
                    throw ScenarioError(
                        file: file, line: line, key: nil,
                        message: "more than \(maxAliases) YAML aliases (*name)",
                        hint: "write the values out; aliases are limited so a file cannot expand without bound")
                }
            }
            previous = byte
        }
    }

    static func checkExpansion(_ root: Node, file: String) throws {
        var budget = maxNodes
        var stack: [Node] = [root]
        while let node = stack.popLast() {
            budget -= 1
            if budget < 0 {
                throw ScenarioError(
                    file: file, line: nil, key: nil,
                    message: "the document expands to more than \(maxNodes) YAML nodes (nested aliases?)",
                    hint: "write the values out; aliases are limited so a file cannot expand without bound")
            }
            switch node {
            case .scalar, .alias: break
            case .mapping(let mapping):
                for (key, value) in mapping {
                    stack.append(key)
                    stack.append(value)
                }
            case .sequence(let sequence): stack.append(contentsOf: sequence)
            }
        }
    }
}
