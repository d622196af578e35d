import CGhostrun
import Foundation

/// `sandbox.stall`: endpoints served inside a network namespace of their own (only lo, up), which the run's child
/// joins; every connection is accepted and never answered. The namespace has no interface but lo, so nothing can
/// leave the machine. Stopping closes every socket and ends the thread; the namespace goes with its last process.
public final class StallServer: @unchecked Sendable {
    // @unchecked: the C state lives at a fixed address for the server's life (the serving thread keeps a pointer
    // to its `accepted` counter and increments it atomically; Swift reads it through `ghostrun_stall_accepted`).
    // Its other fields are written by start and stop only, which the runner calls on one thread, in order.
    private let state: UnsafeMutablePointer<ghostrun_stall>
    public let endpoints: [StallEndpoint]

    /// The namespace descriptor the child joins (setns).
    public var namespaceDescriptor: Int32 { state.pointee.namespace_fd }

    public init(endpoints: [StallEndpoint]) throws {
        self.endpoints = endpoints
        let addresses = endpoints.map { endpoint -> UInt32 in
            let o = endpoint.octets.map(UInt32.init)
            return ((o[0] << 24) | (o[1] << 16) | (o[2] << 8) | o[3]).bigEndian
        }
        let ports = endpoints.map { $0.port.bigEndian }
        var step = [CChar](repeating: 0, count: Int(GHOSTRUN_STEP_LEN))
        let pointer = UnsafeMutablePointer<ghostrun_stall>.allocate(capacity: 1)
        pointer.initialize(to: ghostrun_stall())
        pointer.pointee.stop_fd = -1
        pointer.pointee.namespace_fd = -1
        let status = ghostrun_stall_start(addresses, ports, Int32(endpoints.count), pointer, &step)
        if status != 0 {
            // ghostrun_stall_start stopped the thread and closed what it opened before failing.
            pointer.deallocate()
            throw HarnessError.spawn(step: String(cString: step), errno: status)
        }
        state = pointer
    }

    /// Connections accepted so far (while the server runs, too).
    public var accepted: Int { Int(ghostrun_stall_accepted(state)) }

    public func stop() { ghostrun_stall_stop(state) }

    deinit {
        ghostrun_stall_stop(state)
        state.deallocate()
    }
}
