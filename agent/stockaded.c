/* SPDX-License-Identifier: Apache-2.0 */
/* stockaded: the Stockade agent. */
#include <ev.h>
#include <getopt.h>

#include "agent.h"
#include "log.h"

static void help(void) {
        printf("usage: stockaded [--foreground] [--config FILE] [--state-dir DIR] [--control ADDR ...] [--debug]\n"
               "  --config FILE     configuration file (default " AGENT_CONFIG_DEFAULT ")\n"
               "  --state-dir DIR   state directory (overrides the configuration)\n"
               "  --control ADDR    control address, unix:/path or vsock:CID:PORT; repeatable\n"
               "                    (overrides the configuration)\n"
               "  --foreground      stay in the foreground (stockaded never forks; kept for\n"
               "                    compatibility with service scripts)\n"
               "  --debug           log debug messages\n");
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "foreground", no_argument, NULL, 'f' },
                { "config", required_argument, NULL, 'c' },
                { "state-dir", required_argument, NULL, 's' },
                { "control", required_argument, NULL, 'C' },
                { "debug", no_argument, NULL, 'd' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        AgentArgs args = { .config_path = AGENT_CONFIG_DEFAULT };
        int c;
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'f': break;
                case 'c': args.config_path = optarg; break;
                case 's': args.state_dir = optarg; break;
                case 'C':
                        if (args.n_control >= AGENT_LIST_MAX) {
                                fprintf(stderr, "stockaded: at most %d --control addresses\n", AGENT_LIST_MAX);
                                return 2;
                        }
                        args.control[args.n_control++] = optarg;
                        break;
                case 'd': log_set_max_level(LOG_DEBUG); break;
                case 'h': help(); return 0;
                default: return 2;
                }
        if (optind != argc) {
                fprintf(stderr, "stockaded: unexpected argument '%s' (see --help)\n", argv[optind]);
                return 2;
        }

        log_open();
        struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO | EVFLAG_SIGNALFD);
        if (!loop) {
                log_error("Cannot create the event loop");
                return 1;
        }

        _cleanup_(agent_freep) Agent *agent = NULL;
        if (agent_new(loop, &args, &agent) < 0)
                return 1;
        return agent_run(agent) < 0 ? 1 : 0;
}
