import Foundation

/// The `--json FILE` run file.
public enum JSONReport {
    /// Pretty and with sorted keys so run files diff cleanly between CI runs; slashes unescaped because
    /// results are full of paths.
    public static func encode(_ file: RunFile) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        var data = try encoder.encode(file)
        data.append(UInt8(ascii: "\n"))
        return data
    }

    /// Reads a run file back, e.g. to render JUnit or Markdown from an earlier run. Run files of ghostrun 0.3
    /// and before wrote some evidence keys in camelCase; they are read under their snake_case names.
    public static func decode(_ data: Data) throws -> RunFile {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(RunFile.self, from: renamingLegacyEvidenceKeys(data))
    }

    /// Evidence keys ghostrun 0.3 and before wrote in camelCase, by their snake_case names. Keys that name a
    /// `/proc/PID/status` field (`CapEff`, `NoNewPrivs`, `Seccomp_filters`, `Threads`, ...) keep the kernel's
    /// spelling, as the contract writes them, and are not in this table.
    public static let legacyEvidenceKeys: [String: String] = [
        "timeMs": "time_ms", "syscallNumber": "syscall_number", "extraPaths": "extra_paths",
        "frozenSeen": "frozen_seen", "pidsMaxHits": "pids_max_hits", "oomKills": "oom_kills",
    ]

    /// `data` with the legacy keys renamed inside each result's `evidence`; unchanged when there are none (or it
    /// is not a run file, which the decoder then reports).
    static func renamingLegacyEvidenceKeys(_ data: Data) -> Data {
        guard let text = String(data: data, encoding: .utf8),
            legacyEvidenceKeys.keys.contains(where: { text.contains("\"\($0)\"") }),
            var file = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
            let results = file["results"] as? [Any]
        else { return data }
        func rename(_ value: Any) -> Any {
            if let object = value as? [String: Any] {
                var renamed: [String: Any] = [:]
                for (key, inner) in object {
                    let newKey = legacyEvidenceKeys[key] ?? key
                    // A file that has both spellings keeps the snake_case value.
                    if newKey != key, object[newKey] != nil { continue }
                    renamed[newKey] = rename(inner)
                }
                return renamed
            }
            if let array = value as? [Any] { return array.map(rename) }
            return value
        }
        file["results"] = results.map { result -> Any in
            guard var result = result as? [String: Any], let evidence = result["evidence"] else { return result }
            result["evidence"] = rename(evidence)
            return result
        }
        return (try? JSONSerialization.data(withJSONObject: file)) ?? data
    }
}
