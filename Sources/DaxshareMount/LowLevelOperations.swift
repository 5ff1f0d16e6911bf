import CFuse
#if canImport(Glibc)
import Glibc
#endif

/// libfuse's low-level operation table: each C callback finds the `DaxshareFileSystem` in the
/// request's user data and hands the request on. Operations the protocol has no counterpart
/// for answer EOPNOTSUPP (links, symlinks, device nodes, extended attributes); POSIX locks and
/// flock are left to the kernel (local to this mount, as with `-o local_lock` on NFS).
extension FuseMount {
    static let operations: fuse_lowlevel_ops = {
        var ops = fuse_lowlevel_ops()
        ops.`init` = { userdata, conn in
            guard let conn else { return }
            let fs = Unmanaged<DaxshareFileSystem>.fromOpaque(userdata!).takeUnretainedValue()
            // Splice would read requests into pipes instead of the registered slots.
            conn.pointee.want &= ~UInt32(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE)
            // O_TRUNC arrives with the open (OPEN's TRUNCATE recalls other layouts first).
            if conn.pointee.capable & UInt32(FUSE_CAP_ATOMIC_O_TRUNC) != 0 { conn.pointee.want |= UInt32(FUSE_CAP_ATOMIC_O_TRUNC) }
            conn.pointee.want &= ~UInt32(FUSE_CAP_WRITEBACK_CACHE)
            if fs.options.cache == .cached, conn.pointee.capable & UInt32(FUSE_CAP_AUTO_INVAL_DATA) != 0 {
                conn.pointee.want |= UInt32(FUSE_CAP_AUTO_INVAL_DATA)
            }
            // A write request carries up to `max_write`: by default 1 MiB (FUSE_MAX_PAGES: 256
            // pages), the layout path's largest work request.
            conn.pointee.max_write = fs.options.maxWrite
            // libfuse insists that init() repeat a max_read mount option (else reads are bounded
            // by max_pages, 1 MiB, alone).
            if let option = fs.options.fuseOptions.last(where: { $0.hasPrefix("max_read=") }),
               let n = UInt32(option.dropFirst("max_read=".count)) {
                conn.pointee.max_read = n
            }
            conn.pointee.max_readahead = 1 << 20
            conn.pointee.max_background = 64
            conn.pointee.congestion_threshold = 48
        }
        ops.lookup = { req, parent, name in
            fs(req).lookup(Request(raw: req!), parent: parent, name: String(cString: name!))
        }
        ops.forget = { req, node, count in
            fs(req).forget(node, count)
            fuse_reply_none(req)
        }
        ops.getattr = { req, node, fi in fs(req).getattr(Request(raw: req!), node: node, fi) }
        ops.setattr = { req, node, attr, toSet, fi in
            fs(req).setattr(Request(raw: req!), node: node, attr!.pointee, toSet, fi)
        }
        ops.mkdir = { req, parent, name, mode in
            fs(req).mkdir(Request(raw: req!), parent: parent, name: String(cString: name!), mode: mode)
        }
        ops.unlink = { req, parent, name in
            fs(req).remove(Request(raw: req!), parent: parent, name: String(cString: name!), directory: false)
        }
        ops.rmdir = { req, parent, name in
            fs(req).remove(Request(raw: req!), parent: parent, name: String(cString: name!), directory: true)
        }
        ops.rename = { req, parent, name, newParent, newName, flags in
            fs(req).rename(Request(raw: req!), parent: parent, name: String(cString: name!),
                           newParent: newParent, newName: String(cString: newName!), flags: flags)
        }
        ops.open = { req, node, fi in fs(req).open(Request(raw: req!), node: node, fi!) }
        ops.create = { req, parent, name, mode, fi in
            fs(req).create(Request(raw: req!), parent: parent, name: String(cString: name!), mode: mode, fi!)
        }
        ops.read = { req, _, size, offset, fi in fs(req).read(Request(raw: req!), size: size, offset: offset, fi) }
        ops.write = { req, _, data, size, offset, fi in
            fs(req).write(Request(raw: req!), data: data!, size: size, offset: offset, fi)
        }
        ops.flush = { req, _, fi in fs(req).flush(Request(raw: req!), fi) }
        ops.fsync = { req, _, _, fi in fs(req).fsync(Request(raw: req!), fi) }
        ops.release = { req, _, fi in fs(req).release(Request(raw: req!), fi) }
        ops.fallocate = { req, _, mode, offset, length, fi in
            fs(req).fallocate(Request(raw: req!), mode: mode, offset: offset, length: length, fi)
        }
        ops.opendir = { req, node, fi in fs(req).opendir(Request(raw: req!), node: node, fi!) }
        ops.readdir = { req, _, size, offset, fi in
            fs(req).readdir(Request(raw: req!), size: size, offset: offset, plus: false, fi)
        }
        ops.readdirplus = { req, _, size, offset, fi in
            fs(req).readdir(Request(raw: req!), size: size, offset: offset, plus: true, fi)
        }
        ops.releasedir = { req, _, fi in fs(req).releasedir(Request(raw: req!), fi) }
        ops.fsyncdir = { req, _, _, _ in fuse_reply_err(req, 0) }  // every name change is durable at its reply
        ops.statfs = { req, _ in fs(req).statfs(Request(raw: req!)) }
        ops.link = { req, _, _, _ in fuse_reply_err(req, EOPNOTSUPP) }
        ops.symlink = { req, _, _, _ in fuse_reply_err(req, EOPNOTSUPP) }
        ops.readlink = { req, _ in fuse_reply_err(req, EOPNOTSUPP) }
        ops.mknod = { req, _, _, _, _ in fuse_reply_err(req, EOPNOTSUPP) }
        ops.setxattr = { req, _, _, _, _, _ in fuse_reply_err(req, EOPNOTSUPP) }
        ops.getxattr = { req, _, _, _ in fuse_reply_err(req, EOPNOTSUPP) }
        ops.listxattr = { req, _, _ in fuse_reply_err(req, EOPNOTSUPP) }
        ops.removexattr = { req, _, _ in fuse_reply_err(req, EOPNOTSUPP) }
        return ops
    }()
}

private func fs(_ req: fuse_req_t?) -> DaxshareFileSystem {
    Unmanaged<DaxshareFileSystem>.fromOpaque(fuse_req_userdata(req)!).takeUnretainedValue()
}
