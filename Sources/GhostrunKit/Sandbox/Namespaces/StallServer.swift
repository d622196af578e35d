import CGhostrun
import Foundation

/// `sandbox.stall`: endpoints served inside a network namespace of their own (only lo, up), which the run's child
/// joins; every connection is accepted and never answered. The namespace has no interface but lo, so nothing can
/// leave the machine. Stopping closes every socket and ends the thread; the namespace goes with its last process.
public final class StallServer: @unchecked Sendable {
    // @unchecked: `state` is written by start and stop only, which the runner calls on one thread, in order.
    private var state = ghostrun_stall()
    public let endpoints: [StallEndpoint]

    /// The namespace descriptor the child joins (setns).
    public var namespaceDescriptor: Int32 { state.namespace_fd }

    public init(endpoints: [StallEndpoint]) throws {
        self.endpoints = endpoints
        let addresses = endpoints.map { endpoint -> UInt32 in
            let o = endpoint.octets.map(UInt32.init)
            return ((o[0] << 24) | (o[1] << 16) | (o[2] << 8) | o[3]).bigEndian
        }
        let ports = endpoints.map { $0.port.bigEndian }
        var step = [CChar](repeating: 0, count: Int(GHOSTRUN_STEP_LEN))
        state.stop_fd = -1
        state.namespace_fd = -1
        let status = ghostrun_stall_start(addresses, ports, Int32(endpoints.count), &state, &step)
        if status != 0 { throw HarnessError.spawn(step: String(cString: step), errno: status) }
    }

    /// Connections accepted so far.
    public var accepted: Int { Int(state.accepted) }

    public func stop() { ghostrun_stall_stop(&state) }

    deinit { ghostrun_stall_stop(&state) }
}
