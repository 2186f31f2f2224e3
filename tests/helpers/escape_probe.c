/*
 * escape_probe: the first step of a known container escape, run inside a
 * container by tests/tests/escapes.rs. Every probe stops at the point that
 * proves the way out is open and does no harm: it opens for writing without
 * writing, reads only a device the test made, mounts and unmounts again,
 * and hands the kernel arguments it rejects after its permission check.
 *
 * Prints one line: "ok[ DETAIL]" when the step worked (the escape is open),
 * or the errno's name when the kernel refused it.
 *
 *   escape_probe open-write PATH          open(PATH, O_WRONLY), no write
 *   escape_probe open-read PATH           open(PATH, O_RDONLY) and read 1 byte
 *   escape_probe remount-rw PATH          mount(NULL, PATH, NULL, MS_REMOUNT), then back to ro
 *   escape_probe mount FSTYPE DIR [DATA]  mount(FSTYPE, DIR, FSTYPE, 0, DATA), then umount
 *   escape_probe release-agent DIR        mount a v1 cgroup hierarchy, open release_agent O_WRONLY
 *   escape_probe block MAJOR MINOR        mknod a block device and read its first 16 bytes
 *   escape_probe handle DIR               open_by_handle_at(inode 2 of DIR's filesystem): its root
 *   escape_probe module                   init_module() with 16 zero bytes
 *   escape_probe add-key                  add_key("user", …) to the process keyring
 *   escape_probe euid                     print the effective uid (installed setuid-root by a test)
 *   escape_probe runtime-binary FILE      CVE-2019-5736: wait for the interpreter of a
 *                                         `#!/proc/self/exe` script to appear, open its
 *                                         /proc/PID/exe, reopen that O_WRONLY|O_TRUNC;
 *                                         write the outcome to FILE
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static int refused(void)
{
    printf("%s\n", strerrorname_np(errno) ? strerrorname_np(errno) : "E?");
    return 0;
}

static int open_write(const char *path)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return refused();
    close(fd);
    printf("ok\n");
    return 0;
}

static int open_read(const char *path)
{
    char byte;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return refused();
    ssize_t n = read(fd, &byte, 1);
    close(fd);
    printf(n > 0 ? "ok readable\n" : "ok empty\n");
    return 0;
}

static int remount_rw(const char *path)
{
    if (mount(NULL, path, NULL, MS_REMOUNT, NULL) < 0)
        return refused();
    mount(NULL, path, NULL, MS_REMOUNT | MS_RDONLY, NULL);
    printf("ok\n");
    return 0;
}

static int mount_fs(const char *fstype, const char *dir, const char *data)
{
    if (mount(fstype, dir, fstype, 0, data) < 0)
        return refused();
    umount2(dir, MNT_DETACH);
    printf("ok\n");
    return 0;
}

static int release_agent(const char *dir)
{
    /* A named v1 hierarchy of our own: its root has a release_agent, the
     * file the 2022 escapes (CVE-2022-0492) wrote a host command into. */
    if (mount("cgroup", dir, "cgroup", 0, "none,name=minibox-probe") < 0)
        return refused();
    char path[4096];
    snprintf(path, sizeof path, "%s/release_agent", dir);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    int saved = errno;
    umount2(dir, MNT_DETACH);
    if (fd < 0) {
        errno = saved;
        return refused();
    }
    close(fd);
    printf("ok\n");
    return 0;
}

static int block(const char *major, const char *minor)
{
    const char *node = "/tmp/escape-probe-block";
    unlink(node);
    if (mknod(node, S_IFBLK | 0600, makedev(atoi(major), atoi(minor))) < 0)
        return refused();
    int fd = open(node, O_RDONLY | O_CLOEXEC);
    int saved = errno;
    unlink(node);
    if (fd < 0) {
        errno = saved;
        return refused();
    }
    char buf[17] = {0};
    ssize_t n = read(fd, buf, 16);
    close(fd);
    if (n < 0)
        return refused();
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] < 32 || buf[i] > 126)
            buf[i] = '.';
    printf("ok %s\n", buf);
    return 0;
}

static int handle(const char *dir)
{
    /* CVE-2014-3519 ("shocker"): a file handle names an inode on a
     * filesystem without a path, so no mount namespace or pivot_root can
     * hide it. Inode 2 is the root directory of ext2/3/4. */
    struct {
        struct file_handle fh;
        unsigned int ino, gen;
    } h = {.fh = {.handle_bytes = 8, .handle_type = 1}, .ino = 2, .gen = 0};
    int mount_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (mount_fd < 0)
        return refused();
    int fd = open_by_handle_at(mount_fd, &h.fh, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return refused();
    DIR *d = fdopendir(fd);
    int entries = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        entries++;
    printf("ok the filesystem's root, %d entries\n", entries);
    return 0;
}

static int module(void)
{
    char image[16] = {0};
    if (syscall(SYS_init_module, image, sizeof image, "") == 0) {
        printf("ok\n");
        return 0;
    }
    if (errno == EPERM || errno == ENOSYS)
        return refused();
    /* ENOEXEC and friends: the loader read our bytes, so the permission
     * check (CAP_SYS_MODULE, and the seccomp filter) let us through. */
    printf("ok past the permission check, then %s\n", strerrorname_np(errno));
    return 0;
}

static int add_key(void)
{
    /* KEY_SPEC_PROCESS_KEYRING (-2): gone when this process exits. The
     * kernel's keyrings are not namespaced: docker's profile denies them. */
    if (syscall(SYS_add_key, "user", "minibox-probe", "x", 1, -2) < 0)
        return refused();
    printf("ok\n");
    return 0;
}

/*
 * The runtime's binary, reached through /proc/PID/exe of a process that
 * runs it inside the container (the test makes one appear with `exec` of a
 * `#!/proc/self/exe` script and keeps it alive). O_PATH needs no right on
 * the file; the reopen through /proc/self/fd is where the kernel decides.
 * O_TRUNC makes the mount's read-only flag count before the text-busy
 * check: EROFS when the runtime is sealed, ETXTBSY ("the way is open: a
 * writer gets in the moment the runtime stops") when it is not. The file
 * is a throwaway copy the test made; it is only ever truncated if the
 * kernel lets the whole escape through.
 */
static int runtime_binary(const char *verdict_path)
{
    struct stat self;
    char verdict[128] = "no process of another binary appeared within 60 s\n";
    if (stat("/proc/self/exe", &self) < 0)
        return refused();
    time_t deadline = time(NULL) + 60;
    while (time(NULL) < deadline) {
        DIR *proc = opendir("/proc");
        struct dirent *entry;
        int found = 0;
        while (proc && (entry = readdir(proc))) {
            int pid = atoi(entry->d_name);
            if (pid <= 0 || pid == getpid())
                continue;
            /* The interpreter of `#!/proc/self/exe` has that as argv[0];
             * its cmdline is readable even where its exe is not. */
            char path[64], cmdline[32] = "";
            snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
            int cmd = open(path, O_RDONLY | O_CLOEXEC);
            if (cmd < 0)
                continue;
            ssize_t got = read(cmd, cmdline, sizeof cmdline - 1);
            close(cmd);
            if (got <= 0 || strcmp(cmdline, "/proc/self/exe") != 0)
                continue;
            snprintf(path, sizeof path, "/proc/%d/exe", pid);
            int fd = open(path, O_PATH | O_CLOEXEC);
            if (fd < 0) {
                /* Not ours to open: non-dumpable for us. */
                snprintf(verdict, sizeof verdict, "%s\n", strerrorname_np(errno));
                found = 1;
                break;
            }
            struct stat exe;
            if (fstat(fd, &exe) < 0 || (exe.st_dev == self.st_dev && exe.st_ino == self.st_ino)) {
                close(fd);
                continue;
            }
            snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
            int writable = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
            if (writable >= 0) {
                snprintf(verdict, sizeof verdict, "ok truncated\n");
                close(writable);
            } else if (errno == ETXTBSY) {
                snprintf(verdict, sizeof verdict, "ok ETXTBSY\n");
            } else {
                snprintf(verdict, sizeof verdict, "%s\n", strerrorname_np(errno));
            }
            close(fd);
            found = 1;
            break;
        }
        if (proc)
            closedir(proc);
        if (found)
            break;
        usleep(1000);
    }
    /* A FIFO the test reads: opening it waits for the test. */
    FILE *out = fopen(verdict_path, "w");
    if (!out)
        return refused();
    fputs(verdict, out);
    fclose(out);
    printf("%s", verdict);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "runtime-binary"))
        return runtime_binary(argv[2]);
    if (argc >= 3 && !strcmp(argv[1], "open-write"))
        return open_write(argv[2]);
    if (argc >= 3 && !strcmp(argv[1], "open-read"))
        return open_read(argv[2]);
    if (argc >= 3 && !strcmp(argv[1], "remount-rw"))
        return remount_rw(argv[2]);
    if (argc >= 4 && !strcmp(argv[1], "mount"))
        return mount_fs(argv[2], argv[3], argc >= 5 ? argv[4] : NULL);
    if (argc >= 3 && !strcmp(argv[1], "release-agent"))
        return release_agent(argv[2]);
    if (argc >= 4 && !strcmp(argv[1], "block"))
        return block(argv[2], argv[3]);
    if (argc >= 3 && !strcmp(argv[1], "handle"))
        return handle(argv[2]);
    if (argc >= 2 && !strcmp(argv[1], "module"))
        return module();
    if (argc >= 2 && !strcmp(argv[1], "add-key"))
        return add_key();
    if (argc >= 2 && !strcmp(argv[1], "euid")) {
        printf("euid %d\n", (int)geteuid());
        return 0;
    }
    fprintf(stderr, "usage: escape_probe PROBE ARGS (see the source)\n");
    return 2;
}
