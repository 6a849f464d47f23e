/* SPDX-License-Identifier: Apache-2.0 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The bytes as stockaded.json, comments and all. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *text = malloc(size + 1), *why = NULL;
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = '\0';
        _cleanup_(agent_config_freep) AgentConfig *config = NULL;
        (void) agent_config_parse(text, &config, &why);
        return 0;
}
