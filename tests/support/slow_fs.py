#!/usr/bin/env python3
"""A slow disk for isolation tests: a FUSE passthrough of ROOT at MOUNT whose
fsync (and fdatasync) waits DELAY_MS first, the way a saturated or failing
device does. Runs in the foreground until unmounted (fusermount3 -u MOUNT).

    slow_fs.py ROOT MOUNT DELAY_MS
"""
import errno
import os
import sys
import time

from fusepy import FUSE, FuseOSError, Operations  # Debian: python3-fusepy


class SlowFsync(Operations):
    def __init__(self, root, delay_s):
        self.root = os.path.realpath(root)
        self.delay_s = delay_s

    def _p(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def __call__(self, op, path, *args):
        try:
            return super().__call__(op, self._p(path), *args)
        except OSError as e:
            raise FuseOSError(e.errno or errno.EIO)

    def access(self, path, mode):
        if not os.access(path, mode):
            raise FuseOSError(errno.EACCES)

    chmod = os.chmod
    chown = os.chown

    def create(self, path, mode, fi=None):
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)

    def flush(self, path, fh):
        return 0

    def fsync(self, path, datasync, fh):
        time.sleep(self.delay_s)
        return os.fdatasync(fh) if datasync else os.fsync(fh)

    def fsyncdir(self, path, datasync, fh):
        time.sleep(self.delay_s)
        return 0

    def getattr(self, path, fh=None):
        st = os.lstat(path)
        return {k: getattr(st, k) for k in ("st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime",
                                            "st_nlink", "st_size", "st_uid")}

    getxattr = None
    link = None
    listxattr = None
    mkdir = os.mkdir
    mknod = os.mknod
    open = os.open

    def read(self, path, size, offset, fh):
        return os.pread(fh, size, offset)

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(path)

    readlink = os.readlink

    def release(self, path, fh):
        return os.close(fh)

    def rename(self, old, new):
        return os.rename(old, self._p(new))

    rmdir = os.rmdir

    def statfs(self, path):
        sv = os.statvfs(path)
        return {k: getattr(sv, k) for k in ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail",
                                            "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")}

    def symlink(self, target, source):
        return os.symlink(source, target)

    def truncate(self, path, length, fh=None):
        with open(path, "r+") as f:
            f.truncate(length)

    unlink = os.unlink
    utimens = os.utime

    def write(self, path, data, offset, fh):
        return os.pwrite(fh, data, offset)


if __name__ == "__main__":
    root, mount, delay_ms = sys.argv[1], sys.argv[2], int(sys.argv[3])
    FUSE(SlowFsync(root, delay_ms / 1000.0), mount, foreground=True, nothreads=False, allow_other=False)
