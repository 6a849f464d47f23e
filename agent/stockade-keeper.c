/* SPDX-License-Identifier: Apache-2.0 */
/* stockade-keeper: runs the agent where systemd does not, and keeps what the agent cannot
 * re-create across its restarts. It speaks the part of systemd's protocol the agent uses:
 * the agent's sd_notify datagrams on $NOTIFY_SOCKET ("FDSTORE=1" + "FDNAME=" with the fds
 * in SCM_RIGHTS, "FDSTOREREMOVE=1" + "FDNAME=", "READY=1"), and on each start the kept fds
 * passed as systemd passes them ($LISTEN_FDS from fd 3, $LISTEN_FDNAMES, $LISTEN_PID).
 * A kept fd that hangs up (a notify fd no process uses any more) is dropped, as systemd
 * does. When the agent exits it is started again after --restart-sec; SIGTERM and SIGINT
 * are passed to the agent, and the keeper ends with it. libc only. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define NAME_MAX_LEN 255
#define MESSAGE_MAX 4096
#define FDS_PER_MESSAGE 16

typedef struct Kept {
        int fd;
        char name[NAME_MAX_LEN + 1];
} Kept;

static Kept *kept;
static size_t n_kept, kept_max = 16384;
static pid_t agent;

static void drop(size_t i) {
        close(kept[i].fd);
        kept[i] = kept[--n_kept];
}

static void forget(const char *name) {
        for (size_t i = n_kept; i-- > 0;)
                if (strcmp(kept[i].name, name) == 0)
                        drop(i);
}

/* Printable ASCII without ':' (the separator of $LISTEN_FDNAMES), as systemd takes them. */
static bool name_valid(const char *name) {
        size_t n = strlen(name);
        for (const char *p = name; *p; p++)
                if (*p < ' ' || *p > '~' || *p == ':')
                        return false;
        return n > 0 && n <= NAME_MAX_LEN;
}

/* One datagram: lines of KEY=VALUE and maybe fds; only the agent's own are heeded. */
static void receive(int sock) {
        char data[MESSAGE_MAX + 1];
        union {
                struct cmsghdr h;
                char bytes[CMSG_SPACE(sizeof(int) * FDS_PER_MESSAGE) + CMSG_SPACE(sizeof(struct ucred))];
        } control;
        struct iovec iov = { .iov_base = data, .iov_len = MESSAGE_MAX };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control, .msg_controllen = sizeof(control) };
        ssize_t n = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0)
                return;
        data[n] = '\0';
        int fds[FDS_PER_MESSAGE];
        size_t n_fds = 0;
        pid_t sender = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                        for (size_t i = 0; i < count; i++) {
                                int fd;
                                memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                                if (n_fds < FDS_PER_MESSAGE)
                                        fds[n_fds++] = fd;
                                else
                                        close(fd);
                        }
                } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
                        struct ucred cred;
                        memcpy(&cred, CMSG_DATA(c), sizeof(cred));
                        sender = cred.pid;
                }
        }
        bool store = false, remove = false, truncated = msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC);
        const char *name = NULL;
        for (char *line = data, *next; !truncated && sender == agent && line && *line; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = '\0';
                if (strcmp(line, "FDSTORE=1") == 0)
                        store = true;
                else if (strcmp(line, "FDSTOREREMOVE=1") == 0)
                        remove = true;
                else if (strncmp(line, "FDNAME=", 7) == 0)
                        name = line + 7;
                else if (strcmp(line, "READY=1") == 0)
                        fprintf(stderr, "stockade-keeper: agent %d is ready\n", (int) agent);
        }
        if (name && !name_valid(name))
                name = NULL;
        if (remove && name)
                forget(name);
        for (size_t i = 0; i < n_fds; i++) {
                if (store && name && n_kept < kept_max) {
                        kept[n_kept].fd = fds[i];
                        snprintf(kept[n_kept].name, sizeof(kept[n_kept].name), "%s", name);
                        n_kept++;
                } else {
                        if (store && name)
                                fprintf(stderr, "stockade-keeper: already keeping %zu fds, dropping '%s'\n", n_kept, name);
                        close(fds[i]);
                }
        }
}

/* The agent gets the kept fds at 3, 4, ... and their names. */
static pid_t start(char **argv, const char *socket_path) {
        pid_t pid = fork();
        if (pid != 0)
                return pid;
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        /* Out of the way of 3..3+n first, then into place (dup2 clears FD_CLOEXEC). */
        int base = 3 + (int) n_kept;
        for (size_t i = 0; i < n_kept; i++)
                if ((kept[i].fd = fcntl(kept[i].fd, F_DUPFD_CLOEXEC, base)) < 0)
                        _exit(127);
        char *names = calloc(n_kept + 1, NAME_MAX_LEN + 1), *end = names, pid_text[16], count[16];
        if (!names)
                _exit(127);
        for (size_t i = 0; i < n_kept; i++) {
                if (dup2(kept[i].fd, 3 + (int) i) < 0)
                        _exit(127);
                end += sprintf(end, "%s%s", i > 0 ? ":" : "", kept[i].name);
        }
        snprintf(pid_text, sizeof(pid_text), "%d", (int) getpid());
        snprintf(count, sizeof(count), "%zu", n_kept);
        unsetenv("LISTEN_PID");
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_FDNAMES");
        setenv("NOTIFY_SOCKET", socket_path, 1);
        if (n_kept > 0 && (setenv("LISTEN_PID", pid_text, 1) < 0 || setenv("LISTEN_FDS", count, 1) < 0 ||
                           setenv("LISTEN_FDNAMES", names, 1) < 0))
                _exit(127);
        execv(argv[0], argv);
        fprintf(stderr, "stockade-keeper: cannot run '%s': %m\n", argv[0]);
        _exit(127);
}

static int listen_notify(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof(sa.sun_path)) {
                fprintf(stderr, "stockade-keeper: '%s' is too long for a socket path\n", path);
                return -1;
        }
        strcpy(sa.sun_path, path);
        int one = 1, fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        (void) unlink(path);
        mode_t old = umask(0077);
        int r = fd < 0 ? -1 : bind(fd, (struct sockaddr *) &sa, sizeof(sa));
        umask(old);
        if (r < 0 || setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0) {
                fprintf(stderr, "stockade-keeper: cannot listen on '%s': %m\n", path);
                return -1;
        }
        return fd;
}

static void help(void) {
        printf("usage: stockade-keeper [--socket PATH] [--restart-sec SEC] [--fd-max N] -- AGENT [ARG...]\n"
               "  --socket PATH      the agent's $NOTIFY_SOCKET (default /run/stockade/keeper.sock)\n"
               "  --restart-sec SEC  wait before starting the agent again (default 1; 0 to 60)\n"
               "  --fd-max N         keep at most N fds (default 16384)\n");
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "socket", required_argument, NULL, 's' },
                { "restart-sec", required_argument, NULL, 'r' },
                { "fd-max", required_argument, NULL, 'm' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *path = "/run/stockade/keeper.sock";
        double restart_sec = 1;
        char *end;
        int c;
        while ((c = getopt_long(argc, argv, "+", options, NULL)) >= 0)
                switch (c) {
                case 's': path = optarg; break;
                case 'r':
                        restart_sec = strtod(optarg, &end);
                        if (*end || !(restart_sec >= 0 && restart_sec <= 60)) {
                                fprintf(stderr, "stockade-keeper: --restart-sec must be a number of seconds from 0 to 60\n");
                                return 2;
                        }
                        break;
                case 'm':
                        kept_max = strtoul(optarg, &end, 10);
                        if (*end || kept_max < 1 || kept_max > 1000000) {
                                fprintf(stderr, "stockade-keeper: --fd-max must be from 1 to 1000000\n");
                                return 2;
                        }
                        break;
                case 'h': help(); return 0;
                default: return 2;
                }
        if (optind >= argc || argv[optind][0] != '/') {
                fprintf(stderr, "stockade-keeper: the agent to run must be given as an absolute path (see --help)\n");
                return 2;
        }
        char **agent_argv = argv + optind;

        struct rlimit limit;
        if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
                limit.rlim_cur = limit.rlim_max;
                (void) setrlimit(RLIMIT_NOFILE, &limit);
        }
        kept = calloc(kept_max, sizeof(Kept));
        struct pollfd *pfds = calloc(kept_max + 2, sizeof(struct pollfd));
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK), nfd = listen_notify(path);
        if (!kept || !pfds || sfd < 0 || nfd < 0)
                return 1;

        bool stopping = false;
        int status = 0;
        agent = start(agent_argv, path);
        while (agent > 0 || !stopping) {
                pfds[0] = (struct pollfd) { .fd = sfd, .events = POLLIN };
                pfds[1] = (struct pollfd) { .fd = nfd, .events = POLLIN };
                for (size_t i = 0; i < n_kept; i++)
                        pfds[2 + i] = (struct pollfd) { .fd = kept[i].fd }; /* hang-ups and errors only */
                /* Without an agent, the wait before the next start. */
                int r = poll(pfds, 2 + n_kept, agent > 0 ? -1 : (int) (restart_sec * 1000));
                if (r < 0 && errno != EINTR)
                        return 1;
                if (r == 0 && agent <= 0) {
                        agent = start(agent_argv, path);
                        if (agent < 0)
                                fprintf(stderr, "stockade-keeper: cannot start the agent: %m\n");
                        continue;
                }
                for (size_t i = n_kept; i-- > 0;)
                        if (pfds[2 + i].revents & (POLLHUP | POLLERR))
                                drop(i);
                if (pfds[1].revents & POLLIN)
                        receive(nfd);
                struct signalfd_siginfo si;
                while ((pfds[0].revents & POLLIN) && read(sfd, &si, sizeof(si)) == sizeof(si)) {
                        if (si.ssi_signo != SIGCHLD) {
                                stopping = stopping || si.ssi_signo != SIGHUP;
                                if (agent > 0)
                                        (void) kill(agent, (int) si.ssi_signo);
                                continue;
                        }
                        if (agent > 0 && waitpid(agent, &status, WNOHANG) == agent) {
                                if (!stopping)
                                        fprintf(stderr, "stockade-keeper: agent %d %s %d, starting it again\n", (int) agent,
                                                WIFSIGNALED(status) ? "killed by signal" : "exited with status",
                                                WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
                                agent = 0;
                        }
                        while (waitpid(-1, NULL, WNOHANG) > 0) /* anything else that ends up ours */
                                ;
                }
        }
        (void) unlink(path);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
