import DaxshareServer
import Foundation
import Glibc
import Logging
import SystemPackage
import Testing

/// A scratch tree for file-system tests:
///
///     <root>/outside/secret          a file no client may reach
///     <root>/export/                 the exported directory
///
/// removed by `remove()`.
struct ExportFixture {
    let root: String
    var exportPath: String { root + "/export" }
    var outsidePath: String { root + "/outside" }

    /// Under `base`: /tmp by default, or one of `fileSystemsUnderTest`.
    init(under base: String = "/tmp") {
        var template = Array("\(base)/daxshare-fs-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        root = String(platformString: template)
        try! FileManager.default.createDirectory(atPath: exportPath, withIntermediateDirectories: true)
        try! FileManager.default.createDirectory(atPath: outsidePath, withIntermediateDirectories: true)
        try! Data("top secret".utf8).write(to: URL(fileURLWithPath: outsidePath + "/secret"))
    }

    func export(readOnly: Bool = false) throws -> Export {
        try Export(name: "share", root: FilePath(exportPath), readOnly: readOnly, logger: quietLogger)
    }

    /// Creates a file inside the export with the given contents.
    func put(_ path: String, _ contents: String = "") {
        let full = exportPath + "/" + path
        try! FileManager.default.createDirectory(
            atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try! Data(contents.utf8).write(to: URL(fileURLWithPath: full))
    }

    func mkdir(_ path: String) {
        try! FileManager.default.createDirectory(atPath: exportPath + "/" + path, withIntermediateDirectories: true)
    }

    func symlink(_ path: String, to target: String) {
        precondition(Glibc.symlink(target, exportPath + "/" + path) == 0)
    }

    func contents(_ path: String) -> String? {
        guard let data = FileManager.default.contents(atPath: exportPath + "/" + path) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: exportPath + "/" + path) }

    func remove() { try? FileManager.default.removeItem(atPath: root) }
}

/// Where file-I/O tests run: /tmp, and in the testbed VM also the fsdax mount
/// (`$DAXSHARE_PMEM`, ext4 -o dax), where the mapping is MAP_SYNC and pread/pwrite
/// take the kernel's DAX path.
let fileSystemsUnderTest: [String] = ["/tmp"] + (ProcessInfo.processInfo.environment["DAXSHARE_PMEM"].map { [$0] } ?? [])

let quietLogger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

/// The code of the `FileSystemError` thrown by `body`, or nil if none was.
func failure<T>(_ body: () throws -> T) -> FileSystemError.Code? {
    do {
        _ = try body()
        return nil
    } catch let error as FileSystemError {
        return error.code
    } catch {
        Issue.record("unexpected error \(error)")
        return nil
    }
}

extension OpenFile {
    func write(_ text: String, at offset: Int, writeThrough: Bool = false) throws {
        try Array(text.utf8).withUnsafeBytes { try write($0, at: offset, writeThrough: writeThrough) }
    }

    func read(at offset: Int, count: Int) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0xAA, count: count)
        let result = try buffer.withUnsafeMutableBytes { try read(at: offset, into: $0) }
        return Array(buffer[0..<result.count])
    }

    func readString(at offset: Int, count: Int) throws -> String {
        String(decoding: try read(at: offset, count: count), as: UTF8.self)
    }
}

let readWrite = FileOpenOptions(write: true)
let createNew = FileOpenOptions(write: true, create: true)

/// A new file `name` (created read-write) in a fresh export under `base`; the caller closes the
/// file and removes the fixture.
func newFile(_ name: String = "f", under base: String) throws -> (ExportFixture, OpenFile) {
    let fixture = ExportFixture(under: base)
    do {
        return (fixture, try FileTable(logger: quietLogger).open(name, in: try fixture.export(), options: createNew))
    } catch {
        fixture.remove()
        throw error
    }
}

extension ExportFixture {
    /// `lstat` of a path inside the export (the object itself, never a symlink's target).
    func lstatus(_ path: String) -> stat {
        var st = stat()
        let rc = lstat(path.isEmpty ? exportPath : exportPath + "/" + path, &st)
        precondition(rc == 0, "lstat(\(path)): errno \(errno)")
        return st
    }
}

/// Nanoseconds since the epoch of a `timespec`.
func nanoseconds(_ t: timespec) -> Int64 { Int64(t.tv_sec) * 1_000_000_000 + Int64(t.tv_nsec) }

/// The process umask, read without changing it (`Umask:` in /proc/self/status; tests run in
/// parallel, and setting it to read it would race with theirs).
let processUmask: mode_t = {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    let line = status.split(separator: "\n").first { $0.hasPrefix("Umask:") }
    return line.flatMap { mode_t($0.dropFirst(6).trimmingCharacters(in: .whitespaces), radix: 8) } ?? 0o022
}()
