import DaxshareClient
#if canImport(Glibc)
import Glibc
#endif

/// Terminal output that is not the command's data: errors, progress, digests of data sent to
/// stdout. Written straight to file descriptor 2, unbuffered, so it interleaves correctly.
enum Console {
    static func error(_ line: String) {
        writeStderr(line.hasSuffix("\n") ? line : line + "\n")
    }

    static func writeStderr(_ text: String) {
        var bytes = Array(text.utf8)
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + done, $0.count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                return
            }
            done += n
        }
        bytes.removeAll()
    }

    static var stderrIsTerminal: Bool { isatty(2) != 0 }

    static func environment(_ name: String) -> String? {
        guard let v = getenv(name) else { return nil }
        return String(cString: v)
    }

    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// The last component of a local path ("" for "/" or "").
    static func basename(_ path: String) -> String {
        path.split(separator: "/").last.map(String.init) ?? ""
    }
}
