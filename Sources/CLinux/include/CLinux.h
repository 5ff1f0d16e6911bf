// The Linux-only calls and constants daxshare needs that Swift's Glibc module
// leaves out. Declarations only; shim.c defines _GNU_SOURCE and includes the
// real headers. This header must not: _GNU_SOURCE here would change glibc's
// declarations for every module that imports it (it clashes with the other
// C modules' view of the same headers).
#ifndef DAXSHARE_CLINUX_H
#define DAXSHARE_CLINUX_H

#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <linux/falloc.h>
#include <linux/openat2.h>  // struct open_how, RESOLVE_*

// Constants behind _GNU_SOURCE (or absent from Debian 12's headers), with
// their values taken from the real headers in shim.c.
extern const int dxs_O_PATH;
extern const int dxs_MAP_SHARED_VALIDATE;
extern const int dxs_MAP_SYNC;
extern const unsigned int dxs_RENAME_NOREPLACE;
/// lseek(2)'s whence for the next hole at or after an offset.
extern const int dxs_SEEK_HOLE;
/// `timespec.tv_nsec` values for futimens/utimensat.
extern const long dxs_UTIME_NOW;
extern const long dxs_UTIME_OMIT;

/// openat2(2) (no glibc wrapper): -1 and errno on failure.
int dxs_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve);
/// renameat2(2).
int dxs_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags);
/// fallocate(2).
int dxs_fallocate(int fd, int mode, int64_t offset, int64_t length);
/// syncfs(2): commits the file system `fd` is on (what an attribute change by name needs
/// to be durable when the object cannot be opened for an fsync of its own).
int dxs_syncfs(int fd);
/// fsync(2), or fdatasync(2) when `datasync`, of `[offset, offset + length)` only (io_uring's
/// IORING_OP_FSYNC, one ring per calling thread): writes back that range's dirty pages and
/// commits the inode's metadata. Returns 0, or -errno: -ENOSYS or -EPERM where io_uring is
/// missing or refused.
int dxs_fsync_range(int fd, uint64_t offset, uint32_t length, int datasync);
/// gettid(2).
pid_t dxs_gettid(void);
/// pthread_setname_np(pthread_self(), name), cut to the kernel's 15 bytes: the name that
/// /proc/PID/task/TID/comm, top -H and perf show for the calling thread.
int dxs_set_thread_name(const char *name);

/// Installs (sigaction, SA_RESTART) a handler for `signal` that writes the signal's number as
/// one byte to `fd` (a non-blocking pipe's write end) and does nothing else: the self-pipe
/// trick, so that a thread reading the pipe handles the signal, whichever thread took it.
int dxs_signal_to_pipe(int signal, int fd);

/// fcntl(fd, F_SETSIG, signal).
int dxs_fcntl_setsig(int fd, int signal);
/// fcntl(fd, F_SETOWN_EX, {F_OWNER_TID, tid}).
int dxs_fcntl_setown_thread(int fd, pid_t tid);
/// fcntl(fd, F_SETLEASE, type); type is F_RDLCK, F_WRLCK or F_UNLCK.
int dxs_fcntl_setlease(int fd, int type);
/// fcntl(fd, F_GETLEASE): the lease type, or -1 and errno.
int dxs_fcntl_getlease(int fd);
/// fcntl(fd, F_SETDELEG, &{.d_type = type}) (Linux 6.19); EINVAL on older kernels.
int dxs_fcntl_setdeleg(int fd, int type);
/// fcntl(fd, F_GETDELEG, &delegation): the delegation type, or -1 and errno
/// (EINVAL on kernels before 6.19).
int dxs_fcntl_getdeleg(int fd);

#endif
