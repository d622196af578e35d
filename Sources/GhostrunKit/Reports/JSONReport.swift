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

    /// Reads a run file back, e.g. to render JUnit or Markdown from an earlier run.
    public static func decode(_ data: Data) throws -> RunFile {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(RunFile.self, from: data)
    }
}
