// Linux interfaces Swift's Glibc module leaves out: epoll, eventfd, signalfd
// and fallocate's modes. No _GNU_SOURCE here: it changes glibc's struct
// layouts (fd_set) and clashes with the other C modules; the GNU-only fcntl
// commands (F_SETLEASE, F_SETSIG) are defined on the Swift side.
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <linux/falloc.h>
#include <sys/xattr.h>
