/* SPDX-License-Identifier: Apache-2.0 */
#include <stdbool.h>

#include "broker-policy.h"
#include "seccomp-profile.h"

#define AF_VSOCK_NUMBER 40

/* The only ABI a container may use. A second ABI would need every rule restated for it
 * (on i386 socket() also arrives through socketcall, whose arguments seccomp cannot see);
 * an architecture left out of the list gets libseccomp's bad-architecture action. */
#if defined(__x86_64__)
#define NATIVE_ARCH "SCMP_ARCH_X86_64"
#elif defined(__aarch64__)
#define NATIVE_ARCH "SCMP_ARCH_AARCH64"
#else
#error "Stockade's seccomp profile knows the x86-64 and arm64 ABIs only"
#endif

typedef enum SyscallKind {
        SYSCALL_UNNAMED,  /* refused: the profile's default action */
        SYSCALL_ALLOWED,  /* where the engine allows it */
        SYSCALL_VETTED,   /* trapped for the agent where the engine allows it */
        SYSCALL_EPERM,    /* refused here, quietly */
        SYSCALL_REPORTED, /* refused with Entry.error by the agent, which reports it */
} SyscallKind;

/* What a container may call where the engine allows it: Docker's default profile and
 * what Docker adds for capabilities, less what is refused below. socket() leaves out
 * AF_VSOCK. */
static const char *const allowed_syscalls[] = {
        "accept", "accept4", "access", "adjtimex", "alarm", "arch_prctl", "bind", "brk", "capget",
        "capset", "chdir", "chmod", "chown", "chroot", "clock_adjtime", "clock_getres",
        "clock_gettime", "clock_nanosleep", "clone", "clone3", "close", "close_range", "connect",
        "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1",
        "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old",
        "eventfd", "eventfd2", "execve", "execveat", "exit", "exit_group", "faccessat", "faccessat2",
        "fadvise64", "fallocate", "fanotify_init", "fanotify_mark", "fchdir", "fchmod", "fchmodat",
        "fchown", "fchownat", "fcntl", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork",
        "fremovexattr", "fsetxattr", "fstat", "fstatfs", "fsync", "ftruncate", "futex", "futex_waitv",
        "futimesat", "get_mempolicy", "get_robust_list", "get_thread_area", "getcpu", "getcwd",
        "getdents", "getdents64", "getegid", "geteuid", "getgid", "getgroups", "getitimer",
        "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom",
        "getresgid", "getresuid", "getrlimit", "getrusage", "getsid", "getsockname", "getsockopt",
        "gettid", "gettimeofday", "getuid", "getxattr", "inotify_add_watch", "inotify_init",
        "inotify_init1", "inotify_rm_watch", "io_cancel", "io_destroy", "io_getevents",
        "io_pgetevents", "io_setup", "io_submit", "ioctl", "ioprio_get", "ioprio_set", "kcmp", "kill",
        "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self", "lchown",
        "lgetxattr", "link", "linkat", "listen", "listxattr", "llistxattr", "lremovexattr", "lseek",
        "lsetxattr", "lstat", "madvise", "mbind", "membarrier", "memfd_create", "memfd_secret",
        "mincore", "mkdir", "mkdirat", "mlock", "mlock2", "mlockall", "mmap", "modify_ldt",
        "mprotect", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedsend",
        "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock",
        "munlockall", "munmap", "name_to_handle_at", "nanosleep", "newfstatat", "open", "openat",
        "openat2", "pause", "perf_event_open", "personality", "pidfd_getfd", "pidfd_open",
        "pidfd_send_signal", "pipe", "pipe2", "poll", "ppoll", "prctl", "pread64", "preadv",
        "preadv2", "prlimit64", "process_madvise", "process_mrelease", "process_vm_readv",
        "process_vm_writev", "pselect6", "ptrace", "pwrite64", "pwritev", "pwritev2", "quotactl",
        "quotactl_fd", "read", "readahead", "readlink", "readlinkat", "readv", "reboot", "recvfrom",
        "recvmmsg", "recvmsg", "remap_file_pages", "removexattr", "rename", "renameat", "renameat2",
        "restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask",
        "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_tgsigqueueinfo",
        "sched_get_priority_max", "sched_get_priority_min", "sched_getaffinity", "sched_getattr",
        "sched_getparam", "sched_getscheduler", "sched_rr_get_interval", "sched_setaffinity",
        "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select",
        "semctl", "semget", "semop", "semtimedop", "sendfile", "sendmmsg", "sendmsg", "sendto",
        "set_mempolicy", "set_mempolicy_home_node", "set_robust_list", "set_thread_area",
        "set_tid_address", "setdomainname", "setfsgid", "setfsuid", "setgid", "setgroups",
        "sethostname", "setitimer", "setns", "setpgid", "setpriority", "setregid", "setresgid",
        "setresuid", "setreuid", "setrlimit", "setsid", "setsockopt", "setuid", "setxattr", "shmat",
        "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4", "socket",
        "socketpair", "splice", "stat", "statfs", "statx", "symlink", "symlinkat", "sync",
        "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create",
        "timer_delete", "timer_getoverrun", "timer_gettime", "timer_settime", "timerfd_create",
        "timerfd_gettime", "timerfd_settime", "times", "tkill", "truncate", "umask", "uname",
        "unlink", "unlinkat", "unshare", "utime", "utimensat", "utimes", "vfork", "vhangup",
        "vmsplice", "wait4", "waitid", "write", "writev",
};
/* The agent vets these (see broker.h). pivot_root too: made the root, a mask would show
 * what it hid; a runc inside the container (Docker in Docker) needs it. */
static const char *const vetted_syscalls[] = { "mount", "umount2", "mknod", "mknodat", "pivot_root" };
/* Refused, and reported by the agent when it listens (broker_refusals): modules, kexec, bpf,
 * file handles that escape the mount namespace (EPERM), the kernel keyring, which is not
 * namespaced (ENOSYS: a runc inside the container, Docker in Docker, takes it as no keyrings
 * and goes on without a session keyring of its own; it fails on EPERM), the new mount API,
 * which would go around the vetting (ENOSYS: tools fall back to mount(2)). open_tree_attr
 * is named for a libseccomp that knows it; runc ignores names its libseccomp does not know,
 * and the number then gets ENOSYS as one above the highest named. Refused quietly: io_uring,
 * whose operations (IORING_OP_SOCKET, ...) seccomp never sees, and which programs probe. */
static const char *const eperm_syscalls[] = { "io_uring_setup", "io_uring_enter", "io_uring_register" };

/* A syscall name with an engine rule that names it, or with what Stockade makes of it. */
typedef struct Entry {
        const char *name;
        const cJSON *rule;  /* NULL: Stockade's entry, with kind */
        SyscallKind kind;
        int error;          /* SYSCALL_REPORTED */
        size_t order;       /* keeps the engine's rule order for a name */
} Entry;

typedef struct Narrowing {
        cJSON *rules;                 /* the new "syscalls" */
        cJSON *unconditional;         /* references to the unconditional ones of rules */
        const char *default_action;   /* the engine's */
        bool trap;                    /* the agent listens */
        bool trapped;                 /* some rule is SCMP_ACT_NOTIFY */
} Narrowing;

/* What runc treats as letting a call through (patchbpf's isAllowAction): a tracer may let
 * anything through. Every other action denies. */
static bool permits(const char *action) {
        return streq(action, "SCMP_ACT_ALLOW") || streq(action, "SCMP_ACT_LOG") || streq(action, "SCMP_ACT_TRACE");
}

/* Is this denying action kept as it is? SCMP_ACT_NOTIFY is not (the listener is Stockade's),
 * nor a missing or unknown action: they become SCMP_ACT_ERRNO. */
static bool denial_kept(const char *action) {
        return streq(action, "SCMP_ACT_ERRNO") || streq(action, "SCMP_ACT_KILL") ||
               streq(action, "SCMP_ACT_KILL_PROCESS") || streq(action, "SCMP_ACT_KILL_THREAD") ||
               streq(action, "SCMP_ACT_TRAP");
}

static const char *action_of(const cJSON *rule) {
        return json_get_string(rule, "action") ?: "";
}

static bool has_args(const cJSON *rule) {
        return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(rule, "args")) > 0;
}

/* The rule's errnoRet, or -1 without one (runc then answers EPERM). */
static int errno_of(const cJSON *rule) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(rule, "errnoRet");
        return json_is_int(e, 0, 4095) ? (int) e->valuedouble : -1;
}

/* Names the syscall in the unconditional rule with this action and errno, made on first use.
 * Only Stockade's syscalls get here, so there are a few hundred such rules at most. */
static int add_unconditional(Narrowing *n, const char *name, const char *action, int errno_ret) {
        cJSON *ref, *rule = NULL;
        cJSON_ArrayForEach(ref, n->unconditional)
                if (errno_of(ref->child) == errno_ret && streq(action_of(ref->child), action)) {
                        rule = ref->child;
                        break;
                }
        if (!rule) {
                rule = cJSON_CreateObject();
                if (!rule || !cJSON_AddItemToArray(n->rules, rule) ||
                    !cJSON_AddItemToArray(n->unconditional, cJSON_CreateObjectReference(rule)) ||
                    !cJSON_AddArrayToObject(rule, "names") ||
                    !cJSON_AddStringToObject(rule, "action", action) ||
                    (errno_ret >= 0 && !cJSON_AddNumberToObject(rule, "errnoRet", errno_ret)))
                        return -ENOMEM;
        }
        n->trapped = n->trapped || streq(action, "SCMP_ACT_NOTIFY");
        cJSON *names = cJSON_GetObjectItemCaseSensitive(rule, "names");
        return cJSON_AddItemToArray(names, cJSON_CreateString(name)) ? 0 : -ENOMEM;
}

/* A denying rule of the engine's, kept with its action where that is kept. */
static int add_denial(Narrowing *n, const char *name, const cJSON *rule) {
        if (!denial_kept(action_of(rule)))
                return add_unconditional(n, name, "SCMP_ACT_ERRNO", -1);
        return add_unconditional(n, name, action_of(rule), errno_of(rule));
}

/* A copy of an engine rule for this name alone, with its arguments; action NULL keeps the
 * rule's. The rule's other names are not copied: a rule naming a syscall many times would
 * cost their square. */
static cJSON *add_copy(Narrowing *n, const char *name, const cJSON *rule, const char *action) {
        cJSON *copy = cJSON_CreateObject(), *names;
        if (!copy || !cJSON_AddItemToArray(n->rules, copy)) {
                cJSON_Delete(copy);
                return NULL;
        }
        const cJSON *item;
        cJSON_ArrayForEach(item, rule) {
                if (streq(item->string, "names") || (action && (streq(item->string, "errnoRet") || streq(item->string, "action"))))
                        continue;
                if (!cJSON_AddItemToObject(copy, item->string, cJSON_Duplicate(item, true)))
                        return NULL;
        }
        if (!(names = cJSON_AddArrayToObject(copy, "names")) || !cJSON_AddItemToArray(names, cJSON_CreateString(name)) ||
            (action && !cJSON_AddStringToObject(copy, "action", action)))
                return NULL;
        n->trapped = n->trapped || streq(action_of(copy), "SCMP_ACT_NOTIFY");
        return copy;
}

static cJSON *vsock_condition(const char *op) {
        cJSON *c = cJSON_CreateObject();
        if (c && (!cJSON_AddNumberToObject(c, "index", 0) || !cJSON_AddNumberToObject(c, "value", AF_VSOCK_NUMBER) ||
                  !cJSON_AddStringToObject(c, "op", op))) {
                cJSON_Delete(c);
                return NULL;
        }
        return c;
}

/* Does a rule that permits socket() leave AF_VSOCK out (1; 0: no), once a condition is
 * added where that is possible? runc ANDs a rule's conditions, unless an argument index
 * repeats: then each condition is a rule of its own. */
static int socket_rule_leaves_out_vsock(cJSON *rule) {
        cJSON *args = cJSON_GetObjectItemCaseSensitive(rule, "args"), *arg;
        int seen = 0, on_family = 0, other_family = 0, total = 0;
        bool repeats = false;
        cJSON_ArrayForEach(arg, args) {
                const cJSON *index = cJSON_GetObjectItemCaseSensitive(arg, "index");
                if (!json_is_int(index, 0, 5))
                        return 0;
                int bit = 1 << (int) index->valuedouble;
                repeats = repeats || (seen & bit);
                seen |= bit;
                total++;
                if (bit == 1) {
                        on_family++;
                        const cJSON *value = cJSON_GetObjectItemCaseSensitive(arg, "value");
                        other_family += streq(json_get_string(arg, "op") ?: "", "SCMP_CMP_EQ") &&
                                        cJSON_IsNumber(value) && value->valuedouble != AF_VSOCK_NUMBER;
                }
        }
        if (repeats)
                return other_family == total;
        if (on_family > 0)
                return other_family > 0;
        if (!args)
                args = cJSON_AddArrayToObject(rule, "args");
        return args && cJSON_AddItemToArray(args, vsock_condition("SCMP_CMP_NE")) ? 1 : -ENOMEM;
}

/* A refusal: through the agent where it listens. */
static int add_refusal(Narrowing *n, const char *name, int error) {
        return n->trap ? add_unconditional(n, name, "SCMP_ACT_NOTIFY", -1) : add_unconditional(n, name, "SCMP_ACT_ERRNO", error);
}

/* socket() for the families other than AF_VSOCK (op SCMP_CMP_NE), or for AF_VSOCK (SCMP_CMP_EQ). */
static int add_socket_rule(Narrowing *n, const char *action, const char *op, int errno_ret) {
        const char *name = "socket";
        cJSON *rule = cJSON_CreateObject(), *args;
        if (!rule || !cJSON_AddItemToArray(n->rules, rule) ||
            !cJSON_AddItemToObject(rule, "names", cJSON_CreateStringArray(&name, 1)) ||
            !cJSON_AddStringToObject(rule, "action", action) ||
            (errno_ret >= 0 && !cJSON_AddNumberToObject(rule, "errnoRet", errno_ret)) ||
            !(args = cJSON_AddArrayToObject(rule, "args")) || !cJSON_AddItemToArray(args, vsock_condition(op)))
                return -ENOMEM;
        n->trapped = n->trapped || streq(action, "SCMP_ACT_NOTIFY");
        return 0;
}

/* The engine's conditional rules for a syscall Stockade allows: permitting ones are
 * trapped for the agent, or for socket() made to leave AF_VSOCK out (or dropped). */
static int add_conditional(Narrowing *n, const Entry *group, size_t count, SyscallKind kind) {
        for (size_t i = 0; i < count; i++) {
                const cJSON *rule = group[i].rule;
                /* A rule naming the syscall again is copied once (a rule's entries are adjacent). */
                if (!rule || !has_args(rule) || (i > 0 && group[i - 1].rule == rule))
                        continue;
                bool permitting = permits(action_of(rule));
                const char *action = !permitting && !denial_kept(action_of(rule)) ? "SCMP_ACT_ERRNO" :
                                     permitting && kind == SYSCALL_VETTED && n->trap   ? "SCMP_ACT_NOTIFY" :
                                                                                          NULL;
                cJSON *copy = add_copy(n, group[i].name, rule, action);
                if (!copy)
                        return -ENOMEM;
                if (permitting && streq(group[i].name, "socket")) {
                        int r = socket_rule_leaves_out_vsock(copy);
                        if (r < 0)
                                return r;
                        if (r == 0)
                                cJSON_Delete(cJSON_DetachItemViaPointer(n->rules, copy));
                }
        }
        return 0;
}

/* Decides one syscall from the engine's rules that name it and Stockade's entry. libseccomp
 * lets an unconditional rule win over every conditional one of the same syscall, whatever
 * the actions, so a syscall gets either one unconditional rule or conditional ones. */
static int narrow_syscall(Narrowing *n, const Entry *group, size_t count) {
        const char *name = group[0].name;
        const cJSON *denial = NULL, *permission = NULL;
        bool conditional = false;
        SyscallKind kind = SYSCALL_UNNAMED;
        int error = 0;
        for (size_t i = 0; i < count; i++) {
                const cJSON *rule = group[i].rule;
                if (!rule)
                        kind = group[i].kind, error = group[i].error;
                else if (has_args(rule))
                        conditional = true;
                else if (permits(action_of(rule)))
                        permission = permission ?: rule;
                else
                        denial = denial ?: rule;
        }
        if (denial)
                return add_denial(n, name, denial);
        if (kind == SYSCALL_EPERM)
                return add_unconditional(n, name, "SCMP_ACT_ERRNO", EPERM);
        if (kind == SYSCALL_REPORTED)
                return add_refusal(n, name, error);
        if (kind == SYSCALL_UNNAMED)
                return 0;

        int r = 0;
        if (permission || (!conditional && permits(n->default_action))) {
                const char *action = permission ? action_of(permission) : n->default_action;
                if (kind == SYSCALL_VETTED && n->trap)
                        r = add_unconditional(n, name, "SCMP_ACT_NOTIFY", -1);
                else if (streq(name, "socket"))
                        r = add_socket_rule(n, action, "SCMP_CMP_NE", -1);
                else
                        r = add_unconditional(n, name, action, -1);
        } else
                r = add_conditional(n, group, count, kind);
        /* AF_VSOCK gets EPERM whatever the default action (runc drops a rule equal to it). */
        if (r >= 0 && streq(name, "socket"))
                r = n->trap ? add_socket_rule(n, "SCMP_ACT_NOTIFY", "SCMP_CMP_EQ", -1)
                            : add_socket_rule(n, "SCMP_ACT_ERRNO", "SCMP_CMP_EQ", EPERM);
        return r;
}

static int compare_entries(const void *a, const void *b) {
        const Entry *x = a, *y = b;
        int c = strcmp(x->name, y->name);
        return c != 0 ? c : (x->order > y->order) - (x->order < y->order);
}

static size_t add_entries(Entry *entries, size_t n, const char *const *names, size_t count, SyscallKind kind,
                          int error) {
        for (size_t i = 0; i < count; i++, n++)
                entries[n] = (Entry) { .name = names[i], .kind = kind, .error = error, .order = n };
        return n;
}

/* Every syscall named by the engine or by Stockade, sorted by name. */
static int collect_entries(const cJSON *engine_rules, Entry **ret, size_t *ret_n) {
        size_t max = ELEMENTSOF(allowed_syscalls) + ELEMENTSOF(vetted_syscalls) + ELEMENTSOF(eperm_syscalls) +
                     broker_n_refusals, n = 0;
        const cJSON *rule, *name;
        cJSON_ArrayForEach(rule, engine_rules)
                max += (size_t) cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(rule, "names"));
        Entry *entries = calloc(max, sizeof(Entry));
        if (!entries)
                return -ENOMEM;
        n = add_entries(entries, n, allowed_syscalls, ELEMENTSOF(allowed_syscalls), SYSCALL_ALLOWED, 0);
        n = add_entries(entries, n, vetted_syscalls, ELEMENTSOF(vetted_syscalls), SYSCALL_VETTED, 0);
        n = add_entries(entries, n, eperm_syscalls, ELEMENTSOF(eperm_syscalls), SYSCALL_EPERM, 0);
        /* socket() is allowed: the AF_VSOCK rule follows from its name. */
        for (size_t i = 0; i < broker_n_refusals; i++)
                if (broker_refusals[i].syscall != BROKER_SYSCALL_SOCKET)
                        entries[n] = (Entry) { .name = broker_syscall_name(broker_refusals[i].syscall),
                                               .kind = SYSCALL_REPORTED, .error = broker_refusals[i].error, .order = n }, n++;
        cJSON_ArrayForEach(rule, engine_rules)
                cJSON_ArrayForEach(name, cJSON_GetObjectItemCaseSensitive(rule, "names"))
                        if (cJSON_IsString(name))
                                entries[n] = (Entry) { .name = name->valuestring, .rule = rule, .order = n }, n++;
        qsort(entries, n, sizeof(Entry), compare_entries);
        *ret = entries;
        *ret_n = n;
        return 0;
}

int seccomp_profile_narrow(cJSON *linux_obj, const char *listener_path, const char *metadata) {
        _cleanup_json_ cJSON *engine = cJSON_DetachItemFromObjectCaseSensitive(linux_obj, "seccomp");
        cJSON *seccomp = cJSON_AddObjectToObject(linux_obj, "seccomp");
        if (!seccomp)
                return -ENOMEM;
        /* Without a profile (--privileged) the engine allows everything. */
        const char *default_action = !cJSON_IsObject(engine) ? "SCMP_ACT_ALLOW" :
                                     json_get_string(engine, "defaultAction") ?: "SCMP_ACT_ERRNO";
        const cJSON *flags = cJSON_GetObjectItemCaseSensitive(engine, "flags");
        if (!denial_kept(default_action)) {
                if (!cJSON_AddStringToObject(seccomp, "defaultAction", "SCMP_ACT_ERRNO"))
                        return -ENOMEM;
        } else {
                const cJSON *ret = cJSON_GetObjectItemCaseSensitive(engine, "defaultErrnoRet");
                if (!cJSON_AddStringToObject(seccomp, "defaultAction", default_action) ||
                    (ret && !cJSON_AddItemToObject(seccomp, "defaultErrnoRet", cJSON_Duplicate(ret, true))))
                        return -ENOMEM;
        }
        const char *arches[] = { NATIVE_ARCH };
        if (!cJSON_AddItemToObject(seccomp, "architectures", cJSON_CreateStringArray(arches, 1)) ||
            (flags && !cJSON_AddItemToObject(seccomp, "flags", cJSON_Duplicate(flags, true))))
                return -ENOMEM;

        _cleanup_json_ cJSON *unconditional = cJSON_CreateArray();
        Narrowing n = {
                .rules = cJSON_AddArrayToObject(seccomp, "syscalls"),
                .unconditional = unconditional,
                .default_action = default_action,
                .trap = listener_path != NULL,
        };
        if (!n.rules || !unconditional)
                return -ENOMEM;
        _cleanup_free_ Entry *entries = NULL;
        size_t count;
        int r = collect_entries(cJSON_GetObjectItemCaseSensitive(engine, "syscalls"), &entries, &count);
        for (size_t i = 0, end; r >= 0 && i < count; i = end) {
                for (end = i + 1; end < count && streq(entries[end].name, entries[i].name); end++)
                        ;
                r = narrow_syscall(&n, entries + i, end - i);
        }
        if (r < 0)
                return r;
        /* The metadata ties the notify fd to the registered container. */
        if (n.trapped && (!cJSON_AddStringToObject(seccomp, "listenerPath", listener_path) ||
                          !cJSON_AddStringToObject(seccomp, "listenerMetadata", metadata)))
                return -ENOMEM;
        return 0;
}
