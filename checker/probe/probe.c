/*
 * minibox-check's probe: a small static program that reports, as one JSON
 * object on stdout, what a process inside a container can observe.
 *
 * It is built by checker/build.rs with `cc -static -O2` and embedded in
 * minibox-check, which writes it to /probe in each fresh rootfs. It needs
 * nothing from the rootfs: no libc, no shell, no /proc (what it cannot
 * read it reports as null).
 *
 *   probe report HOSTDEV:HOSTINO [-- ARGS...]   observe, print, exit 0
 *   probe hold   HOSTDEV:HOSTINO [-- ARGS...]   observe, print, wait for SIGTERM
 *   probe hog    MIB                            touch MIB MiB of memory
 *   probe fork   N                              fork up to N children
 *
 * HOSTDEV:HOSTINO is st_dev:st_ino of the host's "/" as the checker sees
 * it: the chroot escape below reports whether it reached that directory.
 *
 * Everything here is bounded: fixed buffers, a fixed number of entries per
 * list, a fixed allocation, a fixed number of forks, and an alarm so a
 * forgotten probe cannot outlive its checker by more than a few minutes.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_LIST 256
#define MAX_FILE 65536

/* ---- JSON output ------------------------------------------------------ */

static int first_field = 1;

static void out(const char *s) { fputs(s, stdout); }

/* A JSON string. Bytes outside printable ASCII become \u00XX, so the output
 * is always valid JSON (non-UTF-8 bytes read as Latin-1); argv, where the
 * exact bytes matter, is also given in hex. */
static void json_str_n(const char *s, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            putchar('\\');
            putchar(c);
        } else if (c < 0x20 || c >= 0x7f) {
            printf("\\u%04x", c);
        } else {
            putchar(c);
        }
    }
    putchar('"');
}

static void json_str(const char *s)
{
    if (s == NULL)
        out("null");
    else
        json_str_n(s, strlen(s));
}

static void key(const char *k)
{
    if (!first_field)
        putchar(',');
    first_field = 0;
    json_str(k);
    putchar(':');
}

static void begin_object(void)
{
    putchar('{');
    first_field = 1;
}

static void end_object(void)
{
    putchar('}');
    first_field = 0;
}

static void begin_array(void)
{
    putchar('[');
    first_field = 1;
}

static void end_array(void)
{
    putchar(']');
    first_field = 0;
}

static void item(void)
{
    if (!first_field)
        putchar(',');
    first_field = 0;
}

static void kv_str(const char *k, const char *v)
{
    key(k);
    json_str(v);
}

static void kv_int(const char *k, long long v)
{
    key(k);
    printf("%lld", v);
}

static void kv_bool(const char *k, int v)
{
    key(k);
    out(v ? "true" : "false");
}

static void kv_null(const char *k)
{
    key(k);
    out("null");
}

/* ---- small helpers ---------------------------------------------------- */

/* Read a whole (small) file into buf; returns its length or -1. */
static ssize_t read_file(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t used = 0;
    while (used + 1 < size) {
        ssize_t n = read(fd, buf + used, size - 1 - used);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            close(fd);
            return -1;
        }
        if (n == 0)
            break;
        used += (size_t)n;
    }
    close(fd);
    buf[used] = '\0';
    return (ssize_t)used;
}

/* The first line of a file, without its newline; NULL if unreadable. */
static const char *first_line(const char *path, char *buf, size_t size)
{
    if (read_file(path, buf, size) < 0)
        return NULL;
    buf[strcspn(buf, "\n")] = '\0';
    return buf;
}

static void kv_file_line(const char *k, const char *path)
{
    char buf[512];
    key(k);
    json_str(first_line(path, buf, sizeof buf));
}

/* The lines of a file as a JSON array of strings (null if unreadable). */
static void kv_file_lines(const char *k, const char *path)
{
    static char buf[MAX_FILE];
    key(k);
    if (read_file(path, buf, sizeof buf) < 0) {
        out("null");
        return;
    }
    begin_array();
    int count = 0;
    for (char *line = strtok(buf, "\n"); line && count < MAX_LIST; line = strtok(NULL, "\n")) {
        item();
        json_str(line);
        count++;
    }
    end_array();
}

static void kv_errno(const char *k, int err)
{
    key(k);
    if (err == 0)
        out("null");
    else
        json_str(strerrorname_np(err) ? strerrorname_np(err) : "unknown");
}

/* ---- observations ----------------------------------------------------- */

static void report_argv(int argc, char **argv)
{
    key("argv_hex");
    begin_array();
    for (int i = 0; i < argc; i++) {
        item();
        putchar('"');
        for (const unsigned char *p = (const unsigned char *)argv[i]; *p; p++)
            printf("%02x", *p);
        putchar('"');
    }
    end_array();
}

static int is_number(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

/* Every process /proc shows: pid and comm (from /proc/PID/stat). */
static void report_processes(void)
{
    key("processes");
    DIR *dir = opendir("/proc");
    if (dir == NULL) {
        out("null");
        return;
    }
    begin_array();
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (!is_number(entry->d_name))
            continue;
        if (count++ >= MAX_LIST)
            continue;
        char path[300], stat[1024], comm[64] = "";
        snprintf(path, sizeof path, "/proc/%s/stat", entry->d_name);
        if (read_file(path, stat, sizeof stat) > 0) {
            char *open_paren = strchr(stat, '(');
            char *close_paren = strrchr(stat, ')');
            if (open_paren && close_paren && close_paren > open_paren) {
                size_t n = (size_t)(close_paren - open_paren - 1);
                if (n >= sizeof comm)
                    n = sizeof comm - 1;
                memcpy(comm, open_paren + 1, n);
                comm[n] = '\0';
            }
        }
        item();
        begin_object();
        kv_int("pid", atoll(entry->d_name));
        kv_str("comm", comm);
        end_object();
    }
    closedir(dir);
    end_array();
    kv_int("process_count", count);
}

/* The pid /proc/self names: the caller's pid in /proc's own PID namespace. */
static void report_proc_self(void)
{
    char target[64];
    ssize_t n = readlink("/proc/self", target, sizeof target - 1);
    if (n < 0) {
        kv_null("proc_self_pid");
        return;
    }
    target[n] = '\0';
    kv_int("proc_self_pid", atoll(target));
}

static void report_namespaces(void)
{
    static const char *const names[] = {"cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"};
    key("ns");
    begin_object();
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[64];
        struct stat st;
        snprintf(path, sizeof path, "/proc/self/ns/%s", names[i]);
        /* stat follows the magic link to the namespace: st_ino is its inode. */
        if (stat(path, &st) == 0)
            kv_int(names[i], (long long)st.st_ino);
        else
            kv_null(names[i]);
    }
    end_object();
}

/* /proc/self/mountinfo, one object per mount. */
static void report_mounts(void)
{
    static char buf[MAX_FILE * 4];
    key("mounts");
    if (read_file("/proc/self/mountinfo", buf, sizeof buf) < 0) {
        out("null");
        return;
    }
    begin_array();
    int count = 0;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line && count < MAX_LIST;
         line = strtok_r(NULL, "\n", &save), count++) {
        /* id parent major:minor root mount_point options [tags...] - fstype source super */
        char *fields[32];
        int nf = 0;
        char *fsave = NULL;
        for (char *f = strtok_r(line, " ", &fsave); f && nf < 32; f = strtok_r(NULL, " ", &fsave))
            fields[nf++] = f;
        int dash = -1;
        for (int i = 6; i < nf; i++)
            if (strcmp(fields[i], "-") == 0) {
                dash = i;
                break;
            }
        if (nf < 6 || dash < 0 || dash + 3 > nf)
            continue;
        item();
        begin_object();
        kv_int("id", atoll(fields[0]));
        kv_int("parent", atoll(fields[1]));
        kv_str("dev", fields[2]);
        kv_str("root", fields[3]);
        kv_str("mount_point", fields[4]);
        kv_str("options", fields[5]);
        key("tags");
        begin_array();
        for (int i = 6; i < dash; i++) {
            item();
            json_str(fields[i]);
        }
        end_array();
        kv_str("fstype", fields[dash + 1]);
        kv_str("source", fields[dash + 2]);
        kv_str("super_options", dash + 3 < nf ? fields[dash + 3] : "");
        end_object();
    }
    end_array();
}

static void kv_stat(const char *k, const char *path)
{
    struct stat st;
    key(k);
    if (stat(path, &st) != 0) {
        out("null");
        return;
    }
    begin_object();
    kv_int("dev", (long long)st.st_dev);
    kv_int("ino", (long long)st.st_ino);
    end_object();
}

/* The classic chroot escape, in a child so this process keeps its root:
 * chroot into a subdirectory while holding an fd on the current root,
 * fchdir back out through it, walk up with "..", chroot("."). Under
 * chroot(2) alone that lands on the host's "/"; after pivot_root and an
 * unmounted old root, ".." stops at the container's root. The child
 * exits 0 if it reached the host's root, 1 if not, 2 if chroot was
 * refused, 3 on any other failure. */
static int escape_child(unsigned long long host_dev, unsigned long long host_ino)
{
    static const char *const dirs[] = {"/tmp", "/dev", "/proc", "/bin", "/etc", "/sys"};
    int root = open("/", O_RDONLY | O_DIRECTORY);
    if (root < 0)
        return 3;
    int entered = 0;
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0] && !entered; i++) {
        if (chroot(dirs[i]) == 0)
            entered = 1;
        else if (errno == EPERM)
            return 2;
    }
    if (!entered || fchdir(root) != 0)
        return 3;
    for (int i = 0; i < 256; i++)
        if (chdir("..") != 0)
            break;
    if (chroot(".") != 0)
        return errno == EPERM ? 2 : 3;
    struct stat st;
    if (stat("/", &st) != 0)
        return 3;
    return (unsigned long long)st.st_dev == host_dev && (unsigned long long)st.st_ino == host_ino ? 0 : 1;
}

static void report_escape(const char *host_root)
{
    unsigned long long host_dev = 0, host_ino = 0;
    key("escape");
    if (host_root == NULL || sscanf(host_root, "%llu:%llu", &host_dev, &host_ino) != 2) {
        out("null");
        return;
    }
    fflush(stdout);
    pid_t child = fork();
    if (child < 0) {
        begin_object();
        kv_str("result", "fork-failed");
        kv_errno("error", errno);
        end_object();
        return;
    }
    if (child == 0)
        _exit(escape_child(host_dev, host_ino));
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR)
        ;
    static const char *const results[] = {"reached-host-root", "contained", "chroot-refused", "error"};
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 3;
    begin_object();
    kv_str("result", results[code >= 0 && code <= 3 ? code : 3]);
    end_object();
}

/* /dev: each entry's name, type and (for devices) numbers. */
static void report_dev(void)
{
    key("dev");
    DIR *dir = opendir("/dev");
    if (dir == NULL) {
        out("null");
        return;
    }
    begin_array();
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL && count < MAX_LIST) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
            continue;
        char path[300];
        struct stat st;
        snprintf(path, sizeof path, "/dev/%s", entry->d_name);
        if (lstat(path, &st) != 0)
            continue;
        count++;
        const char *type = S_ISCHR(st.st_mode)   ? "c"
                           : S_ISBLK(st.st_mode) ? "b"
                           : S_ISDIR(st.st_mode) ? "d"
                           : S_ISLNK(st.st_mode) ? "l"
                                                 : "f";
        item();
        begin_object();
        kv_str("name", entry->d_name);
        kv_str("type", type);
        if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
            kv_int("major", major(st.st_rdev));
            kv_int("minor", minor(st.st_rdev));
        }
        end_object();
    }
    closedir(dir);
    end_array();
}

/* Limits the container can read about itself, wherever its cgroup file
 * system is mounted (v2 at /sys/fs/cgroup, v1 per controller). */
static void report_visible_limits(void)
{
    key("visible_limits");
    begin_object();
    kv_file_line("memory_max", "/sys/fs/cgroup/memory.max");
    kv_file_line("memory_limit_in_bytes", "/sys/fs/cgroup/memory/memory.limit_in_bytes");
    kv_file_line("pids_max", "/sys/fs/cgroup/pids.max");
    kv_file_line("pids_max_v1", "/sys/fs/cgroup/pids/pids.max");
    end_object();
}

static void report_status(void)
{
    static const char *const wanted[] = {"Uid", "Gid", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "NSpid"};
    static char buf[MAX_FILE];
    key("status");
    if (read_file("/proc/self/status", buf, sizeof buf) < 0) {
        out("null");
        return;
    }
    begin_object();
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *colon = strchr(line, ':');
        if (colon == NULL)
            continue;
        *colon = '\0';
        for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++) {
            if (strcmp(line, wanted[i]) == 0) {
                char *value = colon + 1;
                value += strspn(value, " \t");
                kv_str(line, value);
            }
        }
    }
    end_object();
}

/* Interfaces with their flags and IPv4 addresses, /sys/class/net, and the
 * IPv4 default route from /proc/net/route. */
static void report_network(void)
{
    key("net");
    begin_object();

    key("interfaces");
    struct ifaddrs *list = NULL;
    if (getifaddrs(&list) != 0) {
        out("null");
    } else {
        begin_array();
        /* One object per name: getifaddrs lists a name once per address family. */
        char seen[64][IF_NAMESIZE];
        int nseen = 0;
        for (struct ifaddrs *a = list; a; a = a->ifa_next) {
            int known = 0;
            for (int i = 0; i < nseen; i++)
                if (strcmp(seen[i], a->ifa_name) == 0)
                    known = 1;
            if (known || nseen >= 64)
                continue;
            snprintf(seen[nseen++], IF_NAMESIZE, "%s", a->ifa_name);
            item();
            begin_object();
            kv_str("name", a->ifa_name);
            kv_bool("up", (a->ifa_flags & IFF_UP) != 0);
            key("ipv4");
            begin_array();
            for (struct ifaddrs *b = list; b; b = b->ifa_next) {
                if (strcmp(b->ifa_name, a->ifa_name) != 0 || b->ifa_addr == NULL ||
                    b->ifa_addr->sa_family != AF_INET)
                    continue;
                char addr[INET_ADDRSTRLEN] = "";
                inet_ntop(AF_INET, &((struct sockaddr_in *)b->ifa_addr)->sin_addr, addr, sizeof addr);
                int prefix = 0;
                if (b->ifa_netmask)
                    prefix = __builtin_popcount(((struct sockaddr_in *)b->ifa_netmask)->sin_addr.s_addr);
                char text[64];
                snprintf(text, sizeof text, "%s/%d", addr, prefix);
                item();
                json_str(text);
            }
            end_array();
            end_object();
        }
        end_array();
        freeifaddrs(list);
    }

    key("sys_class_net");
    DIR *dir = opendir("/sys/class/net");
    if (dir == NULL) {
        out("null");
    } else {
        begin_array();
        struct dirent *entry;
        int count = 0;
        while ((entry = readdir(dir)) != NULL && count < MAX_LIST) {
            if (entry->d_name[0] == '.')
                continue;
            count++;
            item();
            json_str(entry->d_name);
        }
        closedir(dir);
        end_array();
    }

    key("default_route");
    static char routes[MAX_FILE];
    if (read_file("/proc/net/route", routes, sizeof routes) < 0) {
        out("null");
    } else {
        int found = 0;
        char *save = NULL;
        /* Iface Destination Gateway Flags ... (hex, network byte order) */
        for (char *line = strtok_r(routes, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            char iface[IF_NAMESIZE + 1];
            unsigned int dest, gateway;
            if (sscanf(line, "%16s %x %x", iface, &dest, &gateway) != 3 || dest != 0)
                continue;
            struct in_addr gw = {.s_addr = gateway};
            char text[INET_ADDRSTRLEN] = "";
            inet_ntop(AF_INET, &gw, text, sizeof text);
            begin_object();
            kv_str("iface", iface);
            kv_str("gateway", text);
            end_object();
            found = 1;
            break;
        }
        if (!found)
            out("null");
    }
    end_object();
}

/* The marker the checker wrote at the root of its rootfs copy: proof that
 * "/" is that copy (or a layer over it). Only then does the probe write at
 * "/", so a runtime that left the probe in the host's root is never
 * written to. */
static int report_root_identity(void)
{
    char token[256];
    const char *value = first_line("/.minibox-check-token", token, sizeof token);
    kv_str("token", value);
    kv_stat("root", "/");
    kv_stat("root_dotdot", "/..");
    if (value == NULL || strncmp(value, "minibox-check-", 14) != 0) {
        kv_null("root_write");
        return 0;
    }
    key("root_write");
    int fd = open("/.minibox-check-wrote", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    begin_object();
    if (fd >= 0) {
        kv_bool("ok", write(fd, "probe\n", 6) == 6);
        close(fd);
        kv_null("error");
    } else {
        kv_bool("ok", 0);
        kv_errno("error", errno);
    }
    end_object();
    return 1;
}

/* The volumes the checker asks for: /vol/rw (read-write) and /vol/ro
 * (read-only), each holding a token file the checker wrote. */
static void report_volume(const char *k, const char *dir)
{
    char path[128], token[256];
    key(k);
    snprintf(path, sizeof path, "%s/token", dir);
    const char *value = first_line(path, token, sizeof token);
    if (value == NULL) {
        out("null");
        return;
    }
    begin_object();
    kv_str("token", value);
    snprintf(path, sizeof path, "%s/from-container", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        int ok = write(fd, "written by the probe\n", 21) == 21;
        close(fd);
        kv_bool("write_ok", ok);
        kv_null("write_error");
    } else {
        kv_bool("write_ok", 0);
        kv_errno("write_error", errno);
    }
    end_object();
}

/* Whether each path exists: the paths docker masks (a mount over each
 * that exists) and those it makes read-only. What a kernel lacks cannot
 * be masked, and is not missed. */
static void kv_paths_exist(const char *k, const char *const *paths, size_t n)
{
    key(k);
    begin_object();
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        kv_bool(paths[i], lstat(paths[i], &st) == 0);
    }
    end_object();
}

static void report_protected_paths(void)
{
    static const char *const masked[] = {
        "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
        "/sys/firmware", "/sys/devices/virtual/powercap",
    };
    static const char *const read_only[] = {
        "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
    };
    kv_paths_exist("masked_paths", masked, sizeof masked / sizeof masked[0]);
    kv_paths_exist("read_only_paths", read_only, sizeof read_only / sizeof read_only[0]);
}

static void report(int argc, char **argv)
{
    const char *host_root = argc > 2 ? argv[2] : NULL;
    begin_object();
    kv_int("probe", 1);
    kv_str("mode", argv[1]);
    kv_int("pid", getpid());
    kv_int("ppid", getppid());
    report_argv(argc, argv);
    struct utsname uts;
    kv_str("hostname", uname(&uts) == 0 ? uts.nodename : NULL);
    report_proc_self();
    report_processes();
    report_namespaces();
    report_mounts();
    report_root_identity();
    report_escape(host_root);
    report_dev();
    kv_file_lines("cgroup", "/proc/self/cgroup");
    report_visible_limits();
    report_status();
    report_protected_paths();
    /* Every line: a rootless map has several. */
    kv_file_lines("uid_map", "/proc/self/uid_map");
    kv_file_lines("gid_map", "/proc/self/gid_map");
    kv_file_line("setgroups", "/proc/self/setgroups");
    report_network();
    key("volumes");
    begin_object();
    report_volume("rw", "/vol/rw");
    report_volume("ro", "/vol/ro");
    end_object();
    end_object();
    putchar('\n');
    fflush(stdout);
}

/* ---- limits ----------------------------------------------------------- */

/* Touch MIB MiB, one MiB at a time, saying how far it got every 4 MiB.
 * Under a working memory limit the kernel kills it before "done". */
static int hog(long mib)
{
    const size_t chunk = 1 << 20;
    for (long i = 1; i <= mib; i++) {
        char *p = mmap(NULL, chunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            printf("{\"probe\":1,\"mode\":\"hog\",\"allocated_mib\":%ld,\"done\":false,\"error\":", i - 1);
            json_str(strerrorname_np(errno) ? strerrorname_np(errno) : "unknown");
            out("}\n");
            fflush(stdout);
            return 1;
        }
        memset(p, 0x5a, chunk);
        if (i % 4 == 0 || i == mib) {
            printf("{\"probe\":1,\"mode\":\"hog\",\"allocated_mib\":%ld,\"done\":%s}\n", i, i == mib ? "true" : "false");
            fflush(stdout);
        }
    }
    return 0;
}

/* Fork up to N children that wait on a pipe; count how many the kernel
 * allowed, then release and reap them all. */
static int fork_many(long wanted)
{
    int gate[2];
    if (pipe2(gate, O_CLOEXEC) != 0)
        return 1;
    long forked = 0;
    int error = 0;
    for (; forked < wanted; forked++) {
        pid_t child = fork();
        if (child < 0) {
            error = errno;
            break;
        }
        if (child == 0) {
            char c;
            close(gate[1]);
            while (read(gate[0], &c, 1) < 0 && errno == EINTR)
                ;
            _exit(0);
        }
    }
    close(gate[1]);
    while (wait(NULL) > 0 || errno == EINTR)
        ;
    begin_object();
    kv_int("probe", 1);
    kv_str("mode", "fork");
    kv_int("wanted", wanted);
    kv_int("forked", forked);
    kv_errno("error", error);
    end_object();
    putchar('\n');
    fflush(stdout);
    return 0;
}

static void on_term(int sig)
{
    (void)sig;
    _exit(0);
}

int main(int argc, char **argv)
{
    /* A probe nobody stops ends by itself: the checker's own timeout is
     * shorter, this is the last resort. */
    alarm(300);
    if (argc < 2) {
        fputs("usage: probe report|hold HOSTDEV:HOSTINO [-- ARGS...] | hog MIB | fork N\n", stderr);
        return 2;
    }
    if (strcmp(argv[1], "report") == 0) {
        report(argc, argv);
        return 0;
    }
    if (strcmp(argv[1], "hold") == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_term;
        sigaction(SIGTERM, &sa, NULL);
        report(argc, argv);
        for (;;)
            pause();
    }
    if (strcmp(argv[1], "hog") == 0 && argc > 2) {
        long mib = strtol(argv[2], NULL, 10);
        return hog(mib > 0 && mib <= 4096 ? mib : 0);
    }
    if (strcmp(argv[1], "fork") == 0 && argc > 2) {
        long n = strtol(argv[2], NULL, 10);
        return fork_many(n > 0 && n <= 1024 ? n : 0);
    }
    fprintf(stderr, "probe: unknown mode %s\n", argv[1]);
    return 2;
}
