/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The broker's decisions, apart from everything that reads or acts: a request in (what the
 * caller asked, and once resolved in its view, which paths and mounts that names), a
 * verdict out. No fds, no system calls, no allocation: the rules are the tables in
 * broker-policy.c and the container's masked paths and initial mounts. broker.c asks
 * before it reads the caller's memory and once it has; the helper (broker-actor.c) asks
 * again once it has resolved the paths, and acts only on BROKER_ACTION_PERFORM. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mount-util.h"

#define BROKER_REASON_MAX 256
#define BROKER_MASKED_MAX 128

typedef enum BrokerSyscall {
        BROKER_SYSCALL_UNKNOWN,
        BROKER_SYSCALL_MOUNT,
        BROKER_SYSCALL_UMOUNT2,
        BROKER_SYSCALL_MKNOD,
        BROKER_SYSCALL_MKNODAT,
        BROKER_SYSCALL_PIVOT_ROOT,
        /* Refused, through the agent so that each leaves a trace (broker_refusals). */
        BROKER_SYSCALL_SOCKET, /* the profile traps AF_VSOCK only */
        BROKER_SYSCALL_ADD_KEY,
        BROKER_SYSCALL_REQUEST_KEY,
        BROKER_SYSCALL_KEYCTL,
        BROKER_SYSCALL_INIT_MODULE,
        BROKER_SYSCALL_FINIT_MODULE,
        BROKER_SYSCALL_DELETE_MODULE,
        BROKER_SYSCALL_KEXEC_LOAD,
        BROKER_SYSCALL_KEXEC_FILE_LOAD,
        BROKER_SYSCALL_BPF,
        BROKER_SYSCALL_OPEN_BY_HANDLE_AT,
        BROKER_SYSCALL_FSOPEN,
        BROKER_SYSCALL_FSCONFIG,
        BROKER_SYSCALL_FSMOUNT,
        BROKER_SYSCALL_FSPICK,
        BROKER_SYSCALL_MOVE_MOUNT,
        BROKER_SYSCALL_OPEN_TREE,
        BROKER_SYSCALL_MOUNT_SETATTR,
        BROKER_SYSCALL_OPEN_TREE_ATTR,
        _BROKER_SYSCALL_MAX,
} BrokerSyscall;

/* The system call's name ("mount", "keyctl", ...) or "unknown"; static. */
const char *broker_syscall_name(BrokerSyscall s);

/* The calls the container's seccomp profile refuses through the agent (SCMP_ACT_NOTIFY, or
 * SCMP_ACT_ERRNO without a listener), with the errno they get: modules, kexec, bpf, file
 * handles and socket(AF_VSOCK) EPERM, the keyring ENOSYS (a runc inside the container takes
 * it as no keyrings; EPERM makes it fail), the new mount API ENOSYS (tools then fall back to
 * mount(2), which is vetted). */
typedef struct BrokerRefusal {
        BrokerSyscall syscall;
        int error;
} BrokerRefusal;
extern const BrokerRefusal broker_refusals[];
extern const size_t broker_n_refusals;

/* What a mount(2) call does, from its flags, in the kernel's order (path_mount()). */
typedef enum BrokerMountOp {
        BROKER_MOUNT_REMOUNT_BIND,
        BROKER_MOUNT_REMOUNT,
        BROKER_MOUNT_BIND,
        BROKER_MOUNT_PROPAGATION,
        BROKER_MOUNT_MOVE,
        BROKER_MOUNT_NEW,
} BrokerMountOp;
BrokerMountOp broker_mount_op(unsigned long flags);
/* MOUNT_ATTR_* of the MS_* per-mount flags. */
unsigned broker_mount_attrs(unsigned long flags);
/* The super block flags (MS_RDONLY, MS_SYNCHRONOUS, MS_DIRSYNC, MS_LAZYTIME) named in
 * options ("ro,sync"), and all that a remount can change (mask). */
unsigned long broker_sb_flags(const char *options, unsigned long *ret_mask);

/* What runc makes read-only in every /proc (its readonlyPaths), relative to /proc. */
extern const char *const broker_proc_readonly[];
extern const size_t broker_n_proc_readonly;

/* The container's rules: its masked paths (absolute: the spec's maskedPaths) and the mounts
 * it started with. */
typedef struct BrokerRules {
        const char *const *masked;
        size_t n_masked;
        const MountTable *initial;
} BrokerRules;

typedef enum BrokerCheck {
        BROKER_CHECK_REGISTERS, /* the call's number and arguments, before any memory is read */
        BROKER_CHECK_ARGUMENTS, /* and the strings read from the caller's memory */
        BROKER_CHECK_MOUNT,     /* a mount with its target and source resolved in the caller's view */
        BROKER_CHECK_UMOUNT,    /* an umount2 with its target resolved */
        BROKER_CHECK_LAYER,     /* one overlay layer, resolved */
        BROKER_CHECK_PIVOT,     /* a pivot_root with its new root resolved */
} BrokerCheck;

typedef struct BrokerRequest {
        BrokerCheck check;
        BrokerSyscall syscall;
        uint64_t args[6];
        /* ARGUMENTS: as read (NULL where the pointer was NULL; pivot_root's new root is the
         * target, its put_old the source); flags normalized by the verdict
         * (BrokerDecision.flags). */
        const char *source, *target, *fstype;
        /* MOUNT, UMOUNT, LAYER, PIVOT: the caller's mount table, the path the target (a
         * layer, pivot_root's new root) resolved to and its mount (NULL: not in the table); MOUNT: the same of the source
         * for a bind or move. */
        const MountTable *table;
        const char *path, *source_path;
        const MountEntry *mount, *source_mount;
        unsigned long flags;    /* MOUNT: normalized mount flags */
        unsigned long fs_magic; /* LAYER: statfs() f_type of the layer */
        /* MOUNT, a bind or move: statfs() f_type of the source, and whether it is the
         * character device 1:3 (/dev/null). */
        unsigned long source_fs_magic;
        bool source_null;
} BrokerRequest;

typedef enum BrokerAction {
        BROKER_ACTION_CONTINUE, /* let the kernel run the call as it is */
        BROKER_ACTION_REFUSE,   /* answer with error */
        BROKER_ACTION_PERFORM,  /* go on: read the arguments, resolve, act */
} BrokerAction;

typedef struct BrokerDecision {
        BrokerAction action;
        int error;             /* REFUSE: -errno */
        bool denied;           /* REFUSE: by the rules (not: invalid arguments) */
        unsigned long flags;   /* ARGUMENTS: the mount flags or umount2 flags to act with */
        mode_t mode;           /* mknod(at): the mode to create */
        const char *device;    /* mknod(at) to emulate: the VM's node to bind; static */
        char reason[BROKER_REASON_MAX];
} BrokerDecision;

void broker_decide(const BrokerRules *rules, const BrokerRequest *q, BrokerDecision *ret);

/* The restrictions (MOUNT_ATTR_RDONLY, _NOSUID, _NODEV, _NOEXEC) mount e in table must keep:
 * those of the initial mounts it is or is a bind of (*ret_initial), read-only for a mask. */
unsigned broker_mount_restrictions(const BrokerRules *rules, const MountTable *table, const MountEntry *e,
                                   bool *ret_initial);
/* Whether e is a mask or read-only bind on a proc or sysfs: what hides the VM's files. */
bool broker_mount_is_mask(const BrokerRules *rules, const MountTable *table, const MountEntry *e);
bool broker_masked(const BrokerRules *rules, const char *path);
/* Whether checking the call needs the caller's mount table (a new mount other than an
 * overlay and a change of propagation do not). */
bool broker_needs_mount_table(BrokerSyscall s, unsigned long flags, const char *fstype);
const MountEntry *broker_table_find(const MountTable *t, int id);
