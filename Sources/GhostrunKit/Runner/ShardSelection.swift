import Foundation

/// Which shard of the matrix this process runs: `--shard I/N`, or the CI system's own job index.
public struct ShardSelection: Equatable, Sendable, CustomStringConvertible {
    /// 1-based.
    public var index: Int
    public var count: Int
    /// Where the selection came from, for messages (`--shard`, `CI_NODE_INDEX/CI_NODE_TOTAL`, ...).
    public var source: String

    public init(index: Int, count: Int, source: String) {
        self.index = index
        self.count = count
        self.source = source
    }

    public var description: String { "\(index)/\(count)" }

    /// `I/N` with 1 ≤ I ≤ N.
    public static func parse(_ text: String) -> (index: Int, count: Int)? {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]), n >= 1, i >= 1, i <= n else {
            return nil
        }
        return (i, n)
    }

    /// The shard to run, or nil for the whole matrix.
    ///
    /// `--shard` wins. Without it: GitLab's `parallel:` sets `CI_NODE_INDEX` (1-based) and `CI_NODE_TOTAL`;
    /// a Kubernetes indexed Job sets `JOB_COMPLETION_INDEX` (0-based) but not the count, which `--shard-count`
    /// gives (it may also override `CI_NODE_TOTAL`). A malformed variable is an error rather than "run
    /// everything": every job of the pipeline would then run the whole matrix and the merge would fail on
    /// duplicates, far from the cause.
    public static func resolve(shard: String?, shardCount: Int?, environment: [String: String]) throws
        -> ShardSelection?
    {
        if let shard {
            if shardCount != nil {
                throw ShardSelectionError("--shard-count goes with CI_NODE_INDEX or JOB_COMPLETION_INDEX, not --shard")
            }
            guard let (i, n) = parse(shard) else {
                throw ShardSelectionError("--shard takes I/N with 1 ≤ I ≤ N, e.g. 1/3 (got \(shard))")
            }
            return ShardSelection(index: i, count: n, source: "--shard")
        }
        if let shardCount, shardCount < 1 { throw ShardSelectionError("--shard-count must be at least 1") }
        if let nodeIndex = environment["CI_NODE_INDEX"], !nodeIndex.isEmpty {
            let totalText = environment["CI_NODE_TOTAL"]
            guard let count = shardCount ?? totalText.flatMap({ Int($0) }) else {
                throw ShardSelectionError(
                    "CI_NODE_INDEX=\(nodeIndex) is set but CI_NODE_TOTAL is \(totalText.map { "\"\($0)\"" } ?? "unset")"
                        + "; pass --shard-count N or --shard I/N")
            }
            let source = shardCount == nil ? "CI_NODE_INDEX/CI_NODE_TOTAL" : "CI_NODE_INDEX/--shard-count"
            guard let index = Int(nodeIndex), index >= 1, index <= count else {
                throw ShardSelectionError("CI_NODE_INDEX=\(nodeIndex) is not in 1...\(count) (\(source))")
            }
            return ShardSelection(index: index, count: count, source: source)
        }
        if let completion = environment["JOB_COMPLETION_INDEX"], !completion.isEmpty {
            guard let count = shardCount else {
                throw ShardSelectionError(
                    "JOB_COMPLETION_INDEX=\(completion) is set; pass --shard-count N (the Job's completions)")
            }
            guard let zeroBased = Int(completion), zeroBased >= 0, zeroBased < count else {
                throw ShardSelectionError("JOB_COMPLETION_INDEX=\(completion) is not in 0..<\(count) (--shard-count)")
            }
            return ShardSelection(index: zeroBased + 1, count: count, source: "JOB_COMPLETION_INDEX/--shard-count")
        }
        if shardCount != nil {
            throw ShardSelectionError("--shard-count needs CI_NODE_INDEX or JOB_COMPLETION_INDEX in the environment")
        }
        return nil
    }
}

public struct ShardSelectionError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
