/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Paths every Stockade binary agrees on unless configured otherwise. */
#define STOCKADE_CONFIG_DEFAULT "/etc/stockade/stockaded.json"
#define STOCKADE_CONTROL_DEFAULT "unix:/run/stockade/control.sock"
#define STOCKADE_RUNC_DEFAULT "/usr/bin/runc"
#define STOCKADE_RUN_DIR_DEFAULT "/run/stockade"
/* stockade-runc where none is beside the agent's executable. */
#define STOCKADE_RUNTIME_DEFAULT "/usr/local/bin/stockade-runc"
