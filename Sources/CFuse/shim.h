// libfuse3's low-level API (fuse_lowlevel.h), at the 3.14 API Debian 12 ships.
#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <fcntl.h>
#include <linux/fs.h>

// The flags a FUSE rename carries (renameat2's), and fallocate's modes: under _GNU_SOURCE
// only in glibc's headers, so named here for Swift.
static const unsigned int dxf_rename_noreplace = RENAME_NOREPLACE;
static const unsigned int dxf_rename_exchange = RENAME_EXCHANGE;
static const int dxf_falloc_keep_size = 0x01;   // FALLOC_FL_KEEP_SIZE
static const int dxf_falloc_punch_hole = 0x02;  // FALLOC_FL_PUNCH_HOLE
