import GhostrunKit
print(SyscallName.libraryVersion, CapabilityName.name(of: 21), ErrnoName.value(of: "EPERM") ?? -1)
