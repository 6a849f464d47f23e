/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The broker's hands: what runs in a helper process to perform one vetted call that the
 * agent's side (broker.c) read and let through, as the caller would have made it. The
 * helper joins the caller's namespaces, root and directory, takes its credentials, resolves
 * the paths once to fds, asks broker-policy.c about what they turned out to be, and acts
 * through those fds only on BROKER_ACTION_PERFORM. It answers once on its socket
 * (helper.h): 0 or -errno, a reason, and detail 1 when the rules refused. Libc only: it
 * also runs in stockade-helper, the executable the agent keeps for this. */

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include "broker-policy.h"
#include "macros.h"

#define BROKER_FSTYPE_MAX 64
#define BROKER_DATA_MAX 4096
#define BROKER_GROUPS_MAX 256
#define BROKER_DEVICE_MAX 32
#define BROKER_EMULATION_DIR_MAX 16

/* The calling thread's credentials: ids and capabilities as its user namespace has them,
 * groups as the agent's (the helper takes them before it joins the caller's). */
typedef struct BrokerCredentials {
        uid_t uid[4]; /* real, effective, saved, file system */
        gid_t gid[4];
        gid_t groups[BROKER_GROUPS_MAX];
        uint32_t n_groups;
        uint64_t cap_inh, cap_prm, cap_eff;
} BrokerCredentials;

/* The fds of a job, opened by the agent from the caller's /proc entries. */
typedef enum BrokerJobFd {
        BROKER_FD_PIDFD,     /* the calling thread (-EBADF in a kept helper's later jobs) */
        BROKER_FD_ROOT,      /* its root (-EBADF in a kept helper's later jobs) */
        BROKER_FD_CWD,       /* its working directory */
        BROKER_FD_DIR,       /* mknodat: its dirfd, or -EBADF */
        BROKER_FD_MOUNTINFO, /* mount, umount2: its mountinfo, or -EBADF */
        BROKER_FD_PIDNS,     /* a new proc: its pid namespace, or -EBADF */
        BROKER_FD_PROC,      /* a mount naming a path under /proc/: its /proc/PID directory, or -EBADF */
        BROKER_FD_EMULATION, /* a new proc or sysfs: the /proc emulation's mount (its root), or -EBADF */
        BROKER_FD_NOTIFY,    /* the container's seccomp notify fd, to answer the call on */
        _BROKER_FD_MAX,
} BrokerJobFd;

/* One call to perform: plain data, so that it can be sent to another process as it is. */
typedef struct BrokerJob {
        BrokerSyscall syscall;
        pid_t pid; /* the caller, in the agent's pid namespace */
        uint64_t id; /* the call's seccomp notification */
        uint32_t base; /* the container's uid 0 */
        unsigned long flags; /* mount: mount flags; umount2: flags */
        mode_t mode;         /* mknod(at) */
        BrokerCredentials creds;
        int fds[_BROKER_FD_MAX];
        bool has_source, has_fstype, has_data;
        char device[BROKER_DEVICE_MAX]; /* mknod(at): the VM's node to bind */
        char emulation_dir[BROKER_EMULATION_DIR_MAX]; /* with BROKER_FD_EMULATION: the container's directory there */
        char target[PATH_MAX], source[PATH_MAX], fstype[BROKER_FSTYPE_MAX], data[BROKER_DATA_MAX + 1];
} BrokerJob;

/* What the agent sends the helper parent (stockade-helper, fd 3: a SOCK_SEQPACKET socket)
 * in one message: a job with its fds in SCM_RIGHTS (the socket to answer on, the rules'
 * memfd, then those of job.fds that fd_mask names, in order). The parent forks a helper per
 * job and sends on the job's socket the helper's pidfd (detail BROKER_DETAIL_STARTED), so
 * that the agent can kill it, or an error (-EAGAIN) when it cannot start one; the helper
 * then answers on the same socket. With keep, the helper it forks is a kept one. */
typedef struct BrokerMessage {
        uint32_t fd_mask;
        bool keep;
        BrokerJob job;
} BrokerMessage;
/* HelperReply.detail */
#define BROKER_DETAIL_DENIED 1  /* refused by the rules */
#define BROKER_DETAIL_STARTED 2 /* from the parent, with the helper's pidfd */
#define BROKER_DETAIL_ANSWERED 4 /* with DENIED or not: the helper answered the call itself */
#define BROKER_DETAIL_KEPT 8 /* a new kept helper's first answer, with the agent's end of its channel */
#define BROKER_MESSAGE_FDS_MAX (2 + _BROKER_FD_MAX)
/* The helper parent's fd to the agent. */
#define BROKER_HELPER_FD 3

/* A kept helper performs the calls of one caller's kind in turn, without a fork each: those
 * of callers in the same namespaces (user, mount, network, IPC, UTS, cgroup), with the same
 * root and the same credentials (the agent keys them so), since it enters these once and so
 * acts with exactly the rights each caller has. Only calls that need nothing opened in the
 * agent's namespaces first: mounts and unmounts not of a new proc or sysfs and naming
 * nothing under /proc/, no device node. A mount's table comes as a memfd the agent filled
 * (cgroup roots as the agent's cgroup namespace shows them); an unmount's, which looks at
 * no root, is read by the kept helper. The helper parent forks one where the agent asks
 * (BrokerMessage.keep); its first answer gives the agent its channel (BROKER_DETAIL_KEPT),
 * on which the agent then sends it jobs as BrokerMessages, one at a time, without the
 * caller's pidfd and root, which it joined with the first. */
bool broker_job_keepable(const BrokerJob *q);
/* In a new kept helper, with q its first job: closes all fds but socket, channel, offer and
 * q's, and enters q's caller as broker_actor_run() does; exits after answering on failure.
 * offer (the agent's end of channel) goes with the first answer of a job that succeeds. */
void broker_actor_keep(int socket, const BrokerJob *q, int channel, int offer);
/* In a kept helper: performs q (of a caller keyed as the first) and answers on socket; on
 * failure it exits after the answer, as broker_actor_run() does. q's fds stay open. */
void broker_actor_serve(int socket, const BrokerJob *q, const BrokerRules *rules);

/* The rules as the agent hands them to helpers, in a sealed memfd: each masked path with its
 * NUL, an empty string, then the mountinfo text of the container's initial mounts. */
int broker_rules_encode(const char *const *masked, size_t n_masked, const char *mountinfo, int *ret_fd);
/* Reads them back from fd (with_initial: parses the initial mounts too) into ret, whose
 * strings live in *ret_blob and *ret_initial. */
int broker_rules_decode(int fd, bool with_initial, BrokerRules *ret, char **ret_blob, MountTable *ret_initial);

/* In a new helper process: performs job with rules, answers the call on job's notify fd and
 * the agent on socket; closes every other fd first. */
_noreturn_ void broker_actor_run(int socket, const BrokerJob *job, const BrokerRules *rules);
