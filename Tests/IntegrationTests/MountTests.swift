import Foundation
import Testing

/// A `daxshare mount` of a real daxshared export, mounted as a user mounts it (background
/// mode) on a fresh directory, and unmounted with `daxshare umount`.
final class MountedExport: @unchecked Sendable {
    static let cli = ServerProcess.binDir + "/daxshare"
    let server: ServerProcess
    let directory: String
    private(set) var mounted = false

    init(name: String, port: UInt16, options: [String] = []) throws {
        server = try ServerProcess(name: "mount-\(name)", port: port)
        directory = NSTemporaryDirectory() + "daxshare-mnt-\(name)-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let m = try run(Self.cli, ["mount", try server.url, directory, "-o", (["secret-file=\(server.secretFile)"] + options).joined(separator: ",")])
        guard m.status == 0 else { throw TestbedError.missing("a mount: daxshare mount exited \(m.status): \(m.err)") }
        mounted = true
    }

    /// Runs `script` with bash in the mount point, bounded by `timeout` seconds.
    @discardableResult
    func sh(_ script: String, timeout: Int = 300) throws -> (status: Int32, out: String, err: String) {
        try run("/usr/bin/timeout", ["\(timeout)", "/bin/bash", "-c", "set -euo pipefail; cd '\(directory)'\n" + script])
    }

    func unmount() throws {
        guard mounted else { return }
        let u = try run(Self.cli, ["umount", directory])
        #expect(u.status == 0, "umount: \(u.err)")
        mounted = false
    }

    /// Unmounts if still mounted, stops the server; the server must stop cleanly.
    func finish() {
        try? unmount()
        #expect(server.stop() == 0, "server log:\n\(server.log)")
    }

    deinit {
        if mounted { _ = try? run("/bin/fusermount3", ["-u", "-z", directory]) }
    }
}

/// Programs nobody here wrote, run on a daxshare mount in the testbed VM: they check the
/// file system's POSIX surface and its data in ways our own code cannot.
@Suite(.serialized) struct MountTests {
    @Test func cpAndCmpOfA256MiBFile() throws {
        let m = try MountedExport(name: "cp", port: 5901)
        defer { m.finish() }
        let local = try randomTestFile(256 << 20, prefix: "mount-cp")
        defer { try? FileManager.default.removeItem(atPath: local) }
        let r = try m.sh("cp '\(local)' big.bin && cmp '\(local)' big.bin && stat -c %s big.bin")
        #expect(r.status == 0, "cp/cmp: \(r.err)")
        #expect(r.out.trimmingCharacters(in: .whitespacesAndNewlines) == "\(256 << 20)")
        // On the server's pmem, byte for byte.
        #expect(try sha256Hex(ofFile: m.server.exportDir + "/big.bin") == sha256Hex(ofFile: local))
        // The bytes went one-sided: through layouts, (almost) nothing written two-sided. (Committed
        // by RDMA FLUSH, which the server never sees, or by LAYOUTCOMMIT: either way no WRITE.)
        let stats = try run(MountedExport.cli, ["stat", "--server", "--json", "--secret-file", m.server.secretFile, try m.server.url])
        #expect(stats.status == 0, "stat --server: \(stats.err)")
        let counters = (try JSONSerialization.jsonObject(with: Data(stats.out.utf8)) as? [String: Any]) ?? [:]
        #expect(((counters["bytes_layout_granted"] as? Int) ?? 0) >= 256 << 20, "counters: \(stats.out)")
        #expect(((counters["bytes_written_two_sided"] as? Int) ?? -1) < 1 << 20, "counters: \(stats.out)")
    }

    @Test func fioVerifiesSequentialAndRandomReadWrite() throws {
        let m = try MountedExport(name: "fio", port: 5902)
        defer { m.finish() }
        let common = "--direct=1 --ioengine=libaio --verify=crc32c --verify_fatal=1 --do_verify=1 --group_reporting"
        for (name, job) in [("seq", "--rw=write --bs=1m --size=32m --iodepth=4"),
                            ("rand", "--rw=randwrite --bs=4k --size=4m --iodepth=8"),
                            ("seqrw", "--rw=rw --bs=256k --size=16m --iodepth=2")] {
            let r = try m.sh("fio --name=\(name) --filename=\(name).dat \(job) \(common) --output-format=terse --terse-version=3")
            #expect(r.status == 0, "fio \(name): \(r.out) \(r.err)")
            // terse v3: field 5 is the error code.
            #expect(r.out.split(separator: ";").dropFirst(4).first == "0", "fio \(name): \(r.out)")
        }
        // A buffered (page cache) reader sees what the direct writer wrote.
        let r = try m.sh("fio --name=check --filename=seq.dat --rw=read --bs=1m --size=32m --verify=crc32c --verify_only=1 --output-format=terse")
        #expect(r.status == 0, "fio verify_only: \(r.out) \(r.err)")
    }

    /// `-o readers=1,max_write=131072`: one thread reads /dev/fuse, and the kernel sends each
    /// 1 MiB O_DIRECT write as eight 128 KiB requests at once; fio's data still verifies.
    @Test func oneReaderAndSmallWritesVerify() throws {
        let m = try MountedExport(name: "readers", port: 5925, options: ["readers=1", "max_write=131072"])
        defer { m.finish() }
        let r = try m.sh("fio --name=w --filename=w.dat --rw=write --bs=1m --size=16m --iodepth=4 --direct=1 "
            + "--ioengine=libaio --verify=crc32c --verify_fatal=1 --do_verify=1 --output-format=terse --terse-version=3")
        #expect(r.status == 0, "fio: \(r.out) \(r.err)")
        #expect(r.out.split(separator: ";").dropFirst(4).first == "0", "fio: \(r.out)")
    }

    @Test func sqliteDatabaseIsReadableByTheServersOwnSqlite() throws {
        let m = try MountedExport(name: "sqlite", port: 5903)
        defer { m.finish() }
        let r = try m.sh("""
            sqlite3 db.sqlite "create table t(id integer primary key, name text, value real);"
            for batch in $(seq 0 9); do
              { echo "begin;"
                for i in $(seq 1 1000); do echo "insert into t(name, value) values('row-$batch-$i', $i.5);"; done
                echo "commit;"; } | sqlite3 db.sqlite
            done
            sqlite3 db.sqlite "pragma integrity_check; select count(*) from t;"
            """, timeout: 600)
        #expect(r.status == 0, "sqlite3: \(r.err)")
        #expect(r.out.split(separator: "\n") == ["ok", "10000"], "sqlite3: \(r.out)")
        try m.unmount()
        // After the unmount, the server host's own sqlite3 reads the file on pmem.
        let local = try run("/usr/bin/sqlite3", [m.server.exportDir + "/db.sqlite",
                                                 "pragma integrity_check; select count(*), sum(value) from t;"])
        #expect(local.status == 0, "local sqlite3: \(local.err)")
        #expect(local.out.split(separator: "\n") == ["ok", "10000|5010000.0"], "local sqlite3: \(local.out)")
    }

    @Test func gitInitCommitAndFsck() throws {
        let m = try MountedExport(name: "git", port: 5904)
        defer { m.finish() }
        let r = try m.sh("""
            export HOME=$(mktemp -d) GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@e GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@e
            git init -q repo && cd repo
            mkdir -p src/a && seq 1 5000 > src/a/numbers && echo hello > README
            git add . && git commit -q -m first
            echo more >> README && git mv src/a src/b && git commit -q -am second
            git fsck --full --strict
            git log --oneline | wc -l
            """)
        #expect(r.status == 0, "git: \(r.out) \(r.err)")
        #expect(r.out.trimmingCharacters(in: .whitespacesAndNewlines).hasSuffix("2"), "git: \(r.out)")
        let log = try run("/usr/bin/git", ["-C", m.server.exportDir + "/repo", "log", "--format=%s"])
        #expect(log.out == "second\nfirst\n", "server-side git log: \(log.out) \(log.err)")
    }

    @Test func tarExtractMatchesTheOriginalTree() throws {
        let m = try MountedExport(name: "tar", port: 5905)
        defer { m.finish() }
        // A real tree with directories, modes and times: three of this repository's modules
        // (about 45 files; each file costs a create, a layout, a commit and a close).
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let tree = "Sources/DaxshareClient Sources/DaxshareMount Sources/CFuse"
        let r = try m.sh("""
            tar -C '\(repo)' -cf - \(tree) | tar -xf -
            for d in \(tree); do diff -r '\(repo)'/$d $d || exit 1; done
            # tar restored the times and modes: compare them too.
            cd '\(repo)' && find \(tree) -printf '%p %m %TY%Tm%Td%TH%TM\\n' | sort > /tmp/tar-orig.txt
            cd - >/dev/null && find \(tree) -printf '%p %m %TY%Tm%Td%TH%TM\\n' | sort > /tmp/tar-copy.txt
            diff /tmp/tar-orig.txt /tmp/tar-copy.txt
            """)
        #expect(r.status == 0, "tar/diff: \(r.out) \(r.err)")
    }

    @Test func posixSurface() throws {
        let m = try MountedExport(name: "posix", port: 5906)
        defer { m.finish() }
        let r = try m.sh("""
            echo one > f && echo two >> f && [ "$(cat f)" = "$(printf 'one\\ntwo')" ]
            ( set +e; set -o noclobber; echo x > f ) 2>/dev/null && exit 10 || true     # O_EXCL
            : > f && [ ! -s f ]                                                   # O_TRUNC
            truncate -s 1M f && [ "$(stat -c %s f)" = 1048576 ]
            exec 4<f; perl -e 'truncate("f", 2097152) or die "truncate: $!"'; exec 4<&-   # by path, f open read-only
            [ "$(stat -c %s f)" = 2097152 ]
            chmod 640 f && [ "$(stat -c %a f)" = 640 ]
            touch -d '2001-02-03 04:05:06' f && [ "$(stat -c %Y f)" = "$(date -d '2001-02-03 04:05:06' +%s)" ]
            mkdir -p d/e && mv f d/e/g && [ -f d/e/g ] && [ ! -e f ]
            echo keep > h && ! mv -n d/e/g h 2>/dev/null; [ "$(cat h)" = keep ]   # RENAME_NOREPLACE
            fallocate -l 8M big && [ "$(stat -c %s big)" = 8388608 ]
            fallocate -p -o 0 -l 4M big && [ "$(stat -c %s big)" = 8388608 ]
            rm h && rmdir d/e 2>/dev/null && exit 11 || true                     # not empty
            rm d/e/g && rmdir d/e d && [ ! -e d ]
            ( ln big hard 2>/dev/null && exit 12 ) || true                        # ENOTSUP
            ( ln -s big soft 2>/dev/null && exit 13 ) || true
            df -k . | tail -1
            ls -la
            """)
        #expect(r.status == 0, "posix (exit \(r.status)): \(r.out) \(r.err)")
    }

    /// A local writer on the server host recalls the mount's layouts; the mount sees its change.
    @Test func aLocalWritersChangeIsSeenThroughTheMount() throws {
        let m = try MountedExport(name: "coherence", port: 5907)
        defer { m.finish() }
        #expect(try m.sh("head -c 1M /dev/zero > f && cat f > /dev/null").status == 0)
        // Held open for reading through the mount, so the server holds a layout for it.
        let r = try m.sh("""
            exec 3<f
            dd if=/dev/zero of=/dev/null bs=64k count=4 <&3 2>/dev/null
            printf 'changed by the server host' | dd of='\(m.server.exportDir)/f' conv=notrunc 2>/dev/null
            printf 'tail' >> '\(m.server.exportDir)/f'
            head -c 26 f; echo
            # The size is seen within the attribute timeout (1 s): the recall dropped the cached
            # attributes, and the append came after it.
            for i in $(seq 1 100); do [ "$(stat -c %s f)" = \((1 << 20) + 4) ] && break; sleep 0.1; done
            stat -c %s f
            """)
        #expect(r.status == 0, "coherence: \(r.err)")
        #expect(r.out == "changed by the server host\n\((1 << 20) + 4)\n", "coherence: \(r.out)")
    }

    /// A local truncate of the file fio is writing: the mount survives, fio ends, nothing hangs.
    @Test func aLocalTruncateDuringFio() throws {
        let m = try MountedExport(name: "truncate", port: 5908)
        defer { m.finish() }
        let r = try m.sh("""
            fio --name=w --filename=w.dat --rw=write --bs=64k --size=16m --direct=1 --ioengine=psync \
                --time_based --runtime=8 --output-format=terse > /tmp/fio-trunc.out 2>&1 &
            fio=$!
            for i in $(seq 1 50); do [ -s '\(m.server.exportDir)/w.dat' ] && break; sleep 0.1; done
            sleep 1
            # truncate(2) by path, as a local tool does (coreutils' truncate opens O_NONBLOCK and
            # gets EAGAIN while the layout is recalled).
            perl -e 'truncate($ARGV[0], 0) or die "truncate: $!"' '\(m.server.exportDir)/w.dat'
            set +e; wait $fio; echo "fio exit $?"; set -e
            cat /tmp/fio-trunc.out | cut -c1-300
            # The mount still serves.
            echo after > after.txt && [ "$(cat after.txt)" = after ] && ls > /dev/null && echo alive
            """, timeout: 120)
        #expect(r.status == 0, "truncate during fio: \(r.out) \(r.err)")
        #expect(r.out.contains("fio exit") && r.out.hasSuffix("alive\n"), "\(r.out)")
    }

    @Test func anFstabLineMounts() throws {
        let server = try ServerProcess(name: "mount-fstab", port: 5909)
        defer { #expect(server.stop() == 0) }
        let dir = NSTemporaryDirectory() + "daxshare-fstab-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let fstab = dir + ".fstab"
        // FUSE's convention for a program off root's PATH: PROGRAM#SOURCE with type fuse;
        // mount.fuse3 runs `PROGRAM SOURCE DIR -o OPTIONS`.
        try "\(MountedExport.cli)#\(try server.url)  \(dir)  fuse  secret-file=\(server.secretFile),_netdev,noatime  0 0\n"
            .write(toFile: fstab, atomically: true, encoding: .utf8)
        let r = try run("/usr/bin/timeout", ["60", "/bin/mount", "-T", fstab, dir])
        #expect(r.status == 0, "mount -T: \(r.out) \(r.err)")
        let mounts = try String(contentsOfFile: "/proc/mounts", encoding: .utf8)
        #expect(mounts.contains(" \(dir) fuse"), "\(mounts)")
        try "via fstab".write(toFile: dir + "/x", atomically: false, encoding: .utf8)
        #expect(try run(MountedExport.cli, ["umount", dir]).status == 0)
        #expect(try String(contentsOfFile: server.exportDir + "/x", encoding: .utf8) == "via fstab")
    }

    @Test func mountErrorsAreClear() throws {
        let server = try ServerProcess(name: "mount-errors", port: 5910)
        defer { #expect(server.stop() == 0) }
        let dir = NSTemporaryDirectory() + "daxshare-errors-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let wrongSecret = dir + ".wrong"
        FileManager.default.createFile(atPath: wrongSecret, contents: Data("not the right secret at all".utf8),
                                       attributes: [.posixPermissions: 0o600])
        let cases: [(args: [String], code: Int32, says: String)] = [
            (["daxshare:/nope", dir, "-o", "secret-file=\(server.secretFile)"], 1, "bad URL"),
            ([try server.url, dir, "-o", "secret-file=\(wrongSecret)"], 3, "authentication failed"),
            (["daxshare://\(try Testbed.address):5999/data", dir, "-o", "secret-file=\(server.secretFile)"], 4, "connection"),
            ([try server.url, dir + "/missing", "-o", "secret-file=\(server.secretFile)"], 1, "No such file"),
            ([try server.url, dir, "-o", "cache=sometimes,secret-file=\(server.secretFile)"], 1, "cache must be"),
        ]
        for c in cases {
            let r = try run("/usr/bin/timeout", ["60", MountedExport.cli, "mount"] + c.args)
            #expect(r.status == c.code, "\(c.args): exit \(r.status), \(r.err)")
            #expect(r.err.contains(c.says), "\(c.args): \(r.err)")
        }
        // No /dev/fuse (a mount namespace with an empty /dev): said before anything else.
        let r = try run("/usr/bin/unshare", ["-m", "/bin/bash", "-c",
            "mount -t tmpfs tmpfs /dev && exec '\(MountedExport.cli)' mount '\(try server.url)' '\(dir)' -o secret-file='\(server.secretFile)'"])
        #expect(r.status == 1 && r.err.contains("/dev/fuse does not exist"), "no /dev/fuse: \(r.status) \(r.err)")
        #expect(!(try String(contentsOfFile: "/proc/mounts", encoding: .utf8)).contains(dir))
    }
}
