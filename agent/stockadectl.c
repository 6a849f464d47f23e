/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>

int main(int argc, char *argv[]) {
        fprintf(stderr, "stockadectl: not yet implemented\n");
        return 2;
}
