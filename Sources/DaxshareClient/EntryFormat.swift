import DaxshareWire

/// How the CLI shows files: an `ls -l`–like long listing and a `stat`-like block for people,
/// JSON for programs. Pure functions of the attributes, so the formats are unit-tested.
///
/// Times are shown in UTC. There is no owner or group column: the protocol does not carry them.
public enum EntryFormat {
    /// `-rw-r--r--`: the type letter and permission bits, with setuid/setgid/sticky as ls shows them.
    public static func permissions(_ type: FileType, mode: UInt32) -> String {
        let typeChar: Character = switch type {
        case .regular: "-"
        case .directory: "d"
        case .symlink: "l"
        case .other: "?"
        }
        var chars: [Character] = [typeChar]
        let bits: [(UInt32, Character)] = [(0o400, "r"), (0o200, "w"), (0o100, "x"),
                                           (0o040, "r"), (0o020, "w"), (0o010, "x"),
                                           (0o004, "r"), (0o002, "w"), (0o001, "x")]
        for (bit, c) in bits { chars.append(mode & bit != 0 ? c : "-") }
        func special(_ index: Int, _ flag: UInt32, set: Character, setNoExec: Character) {
            if mode & flag != 0 { chars[index] = chars[index] == "-" ? setNoExec : set }
        }
        special(3, 0o4000, set: "s", setNoExec: "S")
        special(6, 0o2000, set: "s", setNoExec: "S")
        special(9, 0o1000, set: "t", setNoExec: "T")
        return String(chars)
    }

    /// Mode bits as four octal digits: `0644`.
    public static func octalMode(_ mode: UInt32) -> String {
        let s = String(mode & 0o7777, radix: 8)
        return String(repeating: "0", count: max(0, 4 - s.count)) + s
    }

    public static func typeName(_ type: FileType) -> String {
        switch type {
        case .regular: "regular"
        case .directory: "directory"
        case .symlink: "symlink"
        case .other: "other"
        }
    }

    /// A name safe to print on a terminal: control characters become `?` (as `ls -q` does),
    /// so a hostile file name cannot move the cursor or fake other lines.
    public static func displayName(_ name: String) -> String {
        var out = ""
        for scalar in name.unicodeScalars {
            if scalar.value < 0x20 || scalar.value == 0x7F || (0x80..<0xA0).contains(scalar.value) {
                out += "?"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// The long listing, one line per entry, with the link-count and size columns aligned:
    ///
    ///     drwxr-xr-x 12     4096 2024-05-01 12:00 data
    ///     -rw-r--r--  1 67108864 2024-05-01 12:03 big.bin
    public static func longListing(_ entries: [ListEntry]) -> [String] {
        let linkWidth = entries.map { String($0.attributes.nlink).count }.max() ?? 1
        let sizeWidth = entries.map { String($0.attributes.size).count }.max() ?? 1
        return entries.map { e in
            let a = e.attributes
            return permissions(a.type, mode: a.mode) + " " + leftPad(String(a.nlink), linkWidth) + " "
                + leftPad(String(a.size), sizeWidth) + " " + CivilTime(nanosecondsSinceEpoch: a.mtimeNs).listingText
                + " " + displayName(e.name)
        }
    }

    /// One JSON object for a file: `nameKey` is "name" for listing entries, "path" for stat.
    ///
    ///     {"name":"a","type":"regular","size":4096,"allocatedSize":4096,"mode":"0644",
    ///      "permissions":"-rw-r--r--","nlink":1,"fileIndex":12,"mtime":"2024-05-01T12:00:00.000000000Z",
    ///      "mtimeNs":1714564800000000000,"ctimeNs":1714564800000000000,"dax":true}
    public static func json(_ a: FileAttributes, nameKey: String = "name", name: String) -> JSONValue {
        .object([
            (nameKey, .string(name)),
            ("type", .string(typeName(a.type))),
            ("size", .uint(a.size)),
            ("allocatedSize", .uint(a.allocatedSize)),
            ("mode", .string(octalMode(a.mode))),
            ("permissions", .string(permissions(a.type, mode: a.mode))),
            ("nlink", .uint(UInt64(a.nlink))),
            ("fileIndex", .uint(a.fileIndex)),
            ("mtime", .string(CivilTime(nanosecondsSinceEpoch: a.mtimeNs).iso8601)),
            ("mtimeNs", .int(a.mtimeNs)),
            ("ctimeNs", .int(a.ctimeNs)),
            ("dax", .bool(a.flags.contains(.dax))),
        ])
    }

    /// The `stat` block for people.
    public static func statText(_ a: FileAttributes, path: String) -> String {
        let type = switch a.type {
        case .regular: "regular file"
        case .directory: "directory"
        case .symlink: "symbolic link"
        case .other: "other (device, FIFO or socket)"
        }
        return """
              Path: \(path.isEmpty ? "(export root)" : displayName(path))
              Type: \(type)
              Size: \(a.size) (\(ByteCount.format(a.size)))   Allocated: \(a.allocatedSize)
              Mode: \(octalMode(a.mode)) (\(permissions(a.type, mode: a.mode)))   Links: \(a.nlink)   Inode: \(a.fileIndex)
            Modify: \(CivilTime(nanosecondsSinceEpoch: a.mtimeNs).iso8601)
            Change: \(CivilTime(nanosecondsSinceEpoch: a.ctimeNs).iso8601)
               DAX: \(a.flags.contains(.dax) ? "yes" : "no")
            """
    }

    /// Server counters, `name value` one per line, names aligned.
    public static func counters(_ counters: [Counter]) -> [String] {
        let width = counters.map { $0.name.count }.max() ?? 0
        return counters.map { displayName($0.name) + String(repeating: " ", count: width - $0.name.count) + "  \($0.value)" }
    }

    /// Connected clients (SERVER_CLIENTS) as a table: one line per session, then one indented
    /// line per layout it holds.
    public static func clients(_ r: ServerClientsResponse) -> [String] {
        var lines = [
            "SESSION           ADDRESS                  IDENTITY      AGE  OPEN  LAYOUTS  READ      WRITTEN   GRANTED   COMMITTED"
        ]
        for c in r.clients {
            let identity = c.identity.isEmpty ? "-" : c.identity
            func pad(_ s: String, _ n: Int) -> String { s + String(repeating: " ", count: max(1, n - s.count)) }
            lines.append(
                pad(String(c.sessionId, radix: 16), 18) + pad(c.address, 25) + pad(identity, 12)
                    + leftPad("\(c.ageSeconds)s", 5) + leftPad("\(c.openFiles)", 6) + leftPad("\(c.layoutsHeld)", 9) + "  "
                    + pad(ByteCount.format(c.bytesReadTwoSided), 10) + pad(ByteCount.format(c.bytesWrittenTwoSided), 10)
                    + pad(ByteCount.format(c.bytesLayoutGranted), 10) + ByteCount.format(c.bytesCommittedOneSided))
            for l in c.layouts {
                lines.append("    \(l.readWrite ? "rw" : "r ") \(displayName(l.file)) [\(l.offset), \(l.offset &+ l.length))")
            }
            if c.layoutsHeld > c.layouts.count { lines.append("    ... and \(c.layoutsHeld - UInt32(c.layouts.count)) more") }
        }
        if r.total > r.clients.count { lines.append("(\(r.total - UInt32(r.clients.count)) more not listed)") }
        return lines
    }

    /// The same as one JSON object: `total` and `clients`, each with its `layouts`.
    public static func clientsJSON(_ r: ServerClientsResponse) -> JSONValue {
        .object([
            ("total", .uint(UInt64(r.total))),
            ("clients", .array(r.clients.map { c in
                .object([
                    ("session", .string(String(c.sessionId, radix: 16))), ("address", .string(c.address)),
                    ("identity", .string(c.identity)), ("ageSeconds", .uint(UInt64(c.ageSeconds))),
                    ("openFiles", .uint(UInt64(c.openFiles))), ("layoutsHeld", .uint(UInt64(c.layoutsHeld))),
                    ("bytesReadTwoSided", .uint(c.bytesReadTwoSided)), ("bytesWrittenTwoSided", .uint(c.bytesWrittenTwoSided)),
                    ("bytesLayoutGranted", .uint(c.bytesLayoutGranted)), ("bytesCommittedOneSided", .uint(c.bytesCommittedOneSided)),
                    ("layouts", .array(c.layouts.map { l in
                        .object([
                            ("file", .string(l.file)), ("offset", .uint(l.offset)), ("length", .uint(l.length)),
                            ("mode", .string(l.readWrite ? "rw" : "read")),
                        ])
                    })),
                ])
            })),
        ])
    }

    static func leftPad(_ s: String, _ width: Int) -> String {
        String(repeating: " ", count: max(0, width - s.count)) + s
    }
}
