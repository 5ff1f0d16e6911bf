import DaxshareWire
import Foundation
import Testing

/// One `.vec` file from Protocol/vectors (format: Protocol/vectors/README.md).
struct Vector: Sendable, CustomTestStringConvertible {
    /// A field as annotated in the file: where it is, how long, and its note.
    struct Field: Sendable {
        var offset: Int
        var length: Int
        var note: String
    }

    var name: String
    var codec: String
    var description: String
    var error: String?
    var bytes: [UInt8]
    var fields: [Field]

    var testDescription: String { name }
}

enum Vectors {
    /// Protocol/vectors, found from this file's path so the tests run from any directory.
    static let directory: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Protocol/vectors")

    static let valid: [Vector] = load(directory)
    static let invalid: [Vector] = load(directory.appendingPathComponent("invalid"))

    static func named(_ name: String) -> Vector {
        guard let v = valid.first(where: { $0.name == name }) else {
            Issue.record("missing vector \(name)")
            return Vector(name: name, codec: "", description: "", error: nil, bytes: [], fields: [])
        }
        return v
    }

    static func load(_ dir: URL) -> [Vector] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { $0.hasSuffix(".vec") }.sorted().compactMap { name in
            guard let text = try? String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8) else { return nil }
            return parse(name: String(name.dropLast(4)), text: text)
        }
    }

    static func parse(name: String, text: String) -> Vector {
        var v = Vector(name: name, codec: "", description: "", error: nil, bytes: [], fields: [])
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("#") {
                v.description += line.dropFirst().trimmingCharacters(in: .whitespaces)
            } else if line.hasPrefix("codec:") {
                v.codec = line.dropFirst(6).trimmingCharacters(in: .whitespaces)
            } else if line.hasPrefix("error:") {
                v.error = line.dropFirst(6).trimmingCharacters(in: .whitespaces)
            } else {
                let parts = line.split(separator: "|", maxSplits: 1)
                let hex = parts[0].split(separator: " ").compactMap { UInt8($0, radix: 16) }
                if parts.count == 2 {
                    v.fields.append(Vector.Field(offset: v.bytes.count, length: hex.count,
                                                 note: parts[1].trimmingCharacters(in: .whitespaces)))
                } else if var last = v.fields.popLast() {
                    last.length += hex.count
                    v.fields.append(last)
                }
                v.bytes += hex
            }
        }
        return v
    }
}

/// Decodes with the decoder a vector's codec names and re-encodes the result.
func decodeAndReencode(_ codec: String, _ bytes: [UInt8]) throws -> [UInt8] {
    switch codec {
    case "private-data": return try ConnectPrivateData.decode(bytes).encode()
    case "transport": return try TransportMessage.decode(bytes).encode()
    case "message": return try Message.decode(bytes).encode()
    default:
        Issue.record("no decoder for codec \(codec)")
        return []
    }
}

/// The WireError thrown by `body`, or nil (recording an issue) if it threw nothing or something else.
func wireError(_ body: () throws -> Void) -> WireError? {
    do {
        try body()
        return nil
    } catch let e as WireError {
        return e
    } catch {
        Issue.record("unexpected error \(error)")
        return nil
    }
}

func hexBytes(_ s: String) -> [UInt8] {
    s.split(separator: " ").compactMap { UInt8($0, radix: 16) }
}

/// A deterministic PRNG so mutation tests are reproducible.
struct XorShift: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E3779B97F4A7C15 : seed }
    mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }
}
