/* SPDX-License-Identifier: Apache-2.0 */
#include <ctype.h>
#include <fnmatch.h>

#include "engine-commands.h"
#include "macros.h"

/* A route as the engine's router matches it, without the "/vX.Y" prefix: "{}" is one path
 * segment, "{*}" one or more characters that may include '/' (image names), a trailing
 * "**" anything at all. method NULL: every method. */
typedef struct Route {
        const char *method;
        const char *pattern;
        const char *commands;
} Route;

#define RUN "run|container run"
#define CREATE "create|container create"
#define SYSTEM_PRUNE "system prune"

/* The first route that matches decides, in the engine's own order where two could. */
static const Route routes[] = {
        { "GET",    "/_ping", "_ping" },
        { "HEAD",   "/_ping", "_ping" },
        { "GET",    "/version", "version" },
        { "GET",    "/info", "info|system info" },
        { "GET",    "/events", "events|system events" },
        { "GET",    "/system/df", "system df" },
        { "POST",   "/auth", "login" },

        { "GET",    "/containers/json", "ps|container ls|container list|container ps" },
        { "POST",   "/containers/create", CREATE "|" RUN },
        { "POST",   "/containers/prune", "container prune|" SYSTEM_PRUNE },
        { "GET",    "/containers/{}/json", "inspect|container inspect|" RUN "|exec|container exec|attach|container attach|start|container start|port|container port" },
        { "GET",    "/containers/{}/top", "top|container top" },
        { "GET",    "/containers/{}/logs", "logs|container logs" },
        { "GET",    "/containers/{}/changes", "diff|container diff" },
        { "GET",    "/containers/{}/export", "export|container export" },
        { "GET",    "/containers/{}/stats", "stats|container stats" },
        { "GET",    "/containers/{}/attach/ws", "attach|container attach" },
        { "GET",    "/containers/{}/archive", "cp|container cp" },
        { "HEAD",   "/containers/{}/archive", "cp|container cp" },
        { "PUT",    "/containers/{}/archive", "cp|container cp" },
        { "POST",   "/containers/{}/start", "start|container start|" RUN },
        { "POST",   "/containers/{}/stop", "stop|container stop" },
        { "POST",   "/containers/{}/restart", "restart|container restart" },
        { "POST",   "/containers/{}/kill", "kill|container kill" },
        { "POST",   "/containers/{}/pause", "pause|container pause" },
        { "POST",   "/containers/{}/unpause", "unpause|container unpause" },
        { "POST",   "/containers/{}/update", "update|container update" },
        { "POST",   "/containers/{}/rename", "rename|container rename" },
        { "POST",   "/containers/{}/wait", "wait|container wait|" RUN },
        { "POST",   "/containers/{}/resize", "attach|container attach|start|container start|" RUN },
        { "POST",   "/containers/{}/attach", "attach|container attach|start|container start|" RUN },
        { "POST",   "/containers/{}/exec", "exec|container exec" },
        { "DELETE", "/containers/{}", "rm|container rm" },
        { "POST",   "/commit", "commit|container commit" },

        { "POST",   "/exec/{}/start", "exec|container exec" },
        { "POST",   "/exec/{}/resize", "exec|container exec" },
        { "GET",    "/exec/{}/json", "exec|container exec" },

        { "GET",    "/images/json", "images|image ls|image list" },
        { "POST",   "/images/create", "pull|image pull|import|image import|" RUN "|" CREATE },
        { "GET",    "/images/search", "search" },
        { "GET",    "/images/get", "save|image save" },
        { "POST",   "/images/load", "load|image load" },
        { "POST",   "/images/prune", "image prune|" SYSTEM_PRUNE },
        { "GET",    "/images/{*}/get", "save|image save" },
        { "GET",    "/images/{*}/history", "history|image history" },
        { "GET",    "/images/{*}/json", "image inspect|inspect" },
        { "POST",   "/images/{*}/push", "push|image push" },
        { "POST",   "/images/{*}/tag", "tag|image tag" },
        { "DELETE", "/images/{*}", "rmi|image rm|image remove" },
        { "GET",    "/distribution/{*}/json", "pull|image pull|service create|service update" },
        { "POST",   "/build", "build|image build|builder build" },
        { "POST",   "/build/prune", "builder prune|" SYSTEM_PRUNE },
        { "POST",   "/build/cancel", "build|image build|builder build" },
        { "POST",   "/session", "build|image build|builder build" },
        { "POST",   "/grpc", "build|image build|builder build" },

        { "GET",    "/volumes", "volume ls|volume list" },
        { "POST",   "/volumes/create", "volume create" },
        { "POST",   "/volumes/prune", "volume prune|" SYSTEM_PRUNE },
        { "GET",    "/volumes/{*}", "volume inspect" },
        { "PUT",    "/volumes/{*}", "volume update" },
        { "DELETE", "/volumes/{*}", "volume rm|volume remove" },

        { "GET",    "/networks", "network ls|network list" },
        { "POST",   "/networks/create", "network create" },
        { "POST",   "/networks/prune", "network prune|" SYSTEM_PRUNE },
        { "GET",    "/networks/{}", "network inspect" },
        { "POST",   "/networks/{}/connect", "network connect" },
        { "POST",   "/networks/{}/disconnect", "network disconnect" },
        { "DELETE", "/networks/{}", "network rm|network remove" },

        { NULL,     "/plugins**", "plugin" },
        { NULL,     "/swarm**", "swarm" },
        { NULL,     "/nodes**", "node" },
        { NULL,     "/services**", "service" },
        { NULL,     "/tasks**", "service ps|stack ps" },
        { NULL,     "/secrets**", "secret" },
        { NULL,     "/configs**", "config" },
};

/* "/v1.41/containers/json" -> "/containers/json"; a path with no version stays as it is. */
static const char *strip_version(const char *path) {
        if (path[0] != '/' || path[1] != 'v')
                return path;
        const char *p = path + 2;
        while (isdigit((unsigned char) *p) || *p == '.')
                p++;
        return p > path + 2 && *p == '/' ? p : path;
}

static bool route_matches(const char *pattern, const char *path) {
        while (*pattern) {
                if (STARTSWITH(pattern, "**"))
                        return true;
                if (STARTSWITH(pattern, "{*}")) {
                        /* one or more characters, then the rest of the pattern: try every split */
                        size_t n = strlen(path);
                        for (size_t k = 1; k <= n; k++)
                                if (route_matches(pattern + 3, path + k))
                                        return true;
                        return false;
                }
                if (STARTSWITH(pattern, "{}")) {
                        size_t n = strcspn(path, "/");
                        if (n == 0)
                                return false;
                        pattern += 2;
                        path += n;
                        continue;
                }
                if (*pattern++ != *path++)
                        return false;
        }
        return *path == '\0';
}

const char *engine_request_commands(const char *method, const char *path) {
        const char *p = strip_version(path);
        for (size_t i = 0; i < ELEMENTSOF(routes); i++)
                if ((!routes[i].method || streq(routes[i].method, method)) && route_matches(routes[i].pattern, p))
                        return routes[i].commands;
        return NULL;
}

static bool any_matches(const CommandList *list, const char *commands, char ret_match[static 64]) {
        for (const char *c = commands; *c;) {
                size_t n = strcspn(c, "|");
                char name[64];
                snprintf(name, sizeof(name), "%.*s", (int) n, c);
                for (size_t i = 0; i < list->n_commands; i++)
                        if (fnmatch(list->commands[i], name, 0) == 0) {
                                strcpy(ret_match, name);
                                return true;
                        }
                c += n + (c[n] == '|');
        }
        return false;
}

bool engine_request_allowed(const CommandList *list, const char *method, const char *path, char ret_command[static 64]) {
        const char *commands = engine_request_commands(method, path);
        ret_command[0] = '\0';
        if (!commands)
                return false;
        /* The CLI pings before every command: that tells nothing and changes nothing. */
        if (streq(commands, "_ping"))
                return true;
        char match[64];
        bool hit = any_matches(list, commands, match);
        if (hit == list->allow)
                return true;
        /* The CLI's own name for what was refused. */
        snprintf(ret_command, 64, "%.*s", (int) strcspn(commands, "|"), commands);
        return false;
}

bool engine_request_hijacks(const char *method, const char *path) {
        const char *p = strip_version(path);
        return streq(method, "POST") && (route_matches("/containers/{}/attach", p) || route_matches("/exec/{}/start", p));
}
