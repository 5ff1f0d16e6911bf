// The one target daxshare compiles against glibc's GNU extensions: every
// Linux-only call goes through a dxs_ function here (or in fsync_range.c, the
// io_uring one), so Swift needs neither dlsym nor hard-coded syscall numbers
// or constants.
#define _GNU_SOURCE
#include "CLinux.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>  // RENAME_NOREPLACE
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>  // UTIME_NOW, UTIME_OMIT
#include <sys/syscall.h>
#include <unistd.h>

// Linux 6.19's delegations (include/uapi/linux/fcntl.h); Debian 12's headers predate them.
// The kernel numbers them F_LINUX_SPECIFIC_BASE + 15 and + 16, and F_SETLEASE is that base
// + 0 (glibc's <fcntl.h> has F_SETLEASE but not the base).
#ifndef F_GETDELEG
#define F_GETDELEG (F_SETLEASE + 15)
#define F_SETDELEG (F_SETLEASE + 16)
struct delegation {
    uint32_t d_flags;  // must be 0
    uint16_t d_type;   // F_RDLCK, F_WRLCK, F_UNLCK
    uint16_t __pad;    // must be 0
};
#endif

const int dxs_O_PATH = O_PATH;
const int dxs_MAP_SHARED_VALIDATE = MAP_SHARED_VALIDATE;
const int dxs_MAP_SYNC = MAP_SYNC;
const unsigned int dxs_RENAME_NOREPLACE = RENAME_NOREPLACE;
const int dxs_SEEK_HOLE = SEEK_HOLE;
const long dxs_UTIME_NOW = UTIME_NOW;
const long dxs_UTIME_OMIT = UTIME_OMIT;

int dxs_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve) {
    struct open_how how = {.flags = flags, .mode = mode, .resolve = resolve};
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

int dxs_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags) {
    return renameat2(olddirfd, oldpath, newdirfd, newpath, flags);
}

int dxs_fallocate(int fd, int mode, int64_t offset, int64_t length) {
    return fallocate(fd, mode, (off_t)offset, (off_t)length);
}

int dxs_syncfs(int fd) { return syncfs(fd); }

pid_t dxs_gettid(void) { return gettid(); }

int dxs_fcntl_setsig(int fd, int signal) { return fcntl(fd, F_SETSIG, signal); }

int dxs_fcntl_setown_thread(int fd, pid_t tid) {
    struct f_owner_ex owner = {.type = F_OWNER_TID, .pid = tid};
    return fcntl(fd, F_SETOWN_EX, &owner);
}

int dxs_fcntl_setlease(int fd, int type) { return fcntl(fd, F_SETLEASE, type); }

int dxs_fcntl_getlease(int fd) { return fcntl(fd, F_GETLEASE); }

int dxs_fcntl_setdeleg(int fd, int type) {
    struct delegation deleg = {.d_flags = 0, .d_type = (uint16_t)type, .__pad = 0};
    return fcntl(fd, F_SETDELEG, &deleg);
}

int dxs_fcntl_getdeleg(int fd) {
    struct delegation deleg = {0};
    if (fcntl(fd, F_GETDELEG, &deleg) == -1) return -1;
    return deleg.d_type;
}

static volatile int dxs_signal_pipe_fd = -1;

static void dxs_signal_to_pipe_handler(int signal) {
    int saved = errno;
    unsigned char byte = (unsigned char)signal;
    (void)!write(dxs_signal_pipe_fd, &byte, 1);  // a full pipe already has one pending
    errno = saved;
}

int dxs_signal_to_pipe(int signal, int fd) {
    dxs_signal_pipe_fd = fd;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = dxs_signal_to_pipe_handler;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    return sigaction(signal, &action, NULL);
}

int dxs_set_thread_name(const char *name) {
    char cut[16];
    strncpy(cut, name, sizeof cut - 1);
    cut[sizeof cut - 1] = 0;
    return pthread_setname_np(pthread_self(), cut);
}
