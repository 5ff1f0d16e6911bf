import SystemPackage

/// An error from the pmem layer: a failed system call with its `Errno`, or a
/// request the layer refused before making one.
public enum PmemError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The named C call failed.
    case system(call: String, errno: Errno)
    /// A range reached outside the bytes that are mapped or allowed.
    case outOfBounds(offset: Int, length: Int, bound: Int)
    /// An offset that must be page aligned was not.
    case misaligned(offset: Int, alignment: Int)
    /// The mapping was already unmapped (or the file closed).
    case closed
    /// A store into a mapping of a file opened read-only.
    case notWritable
    /// A mapping cannot grow past the address space reserved for it;
    /// the caller has to map the file anew (at a new base address).
    case capacityExceeded(requested: Int, capacity: Int)

    /// The errno behind the error, when a system call failed.
    public var errno: Errno? {
        if case .system(_, let errno) = self { return errno }
        return nil
    }

    public var description: String {
        switch self {
        case .system(let call, let errno):
            return "\(call): \(errno) (errno \(errno.rawValue))"
        case .outOfBounds(let offset, let length, let bound):
            return "range \(offset)+\(length) is outside 0..<\(bound)"
        case .misaligned(let offset, let alignment):
            return "offset \(offset) is not a multiple of \(alignment)"
        case .closed:
            return "the mapping or file is closed"
        case .notWritable:
            return "the mapping is read-only"
        case .capacityExceeded(let requested, let capacity):
            return "\(requested) bytes exceed the mapping's reserved \(capacity) bytes"
        }
    }
}
