/* SPDX-License-Identifier: Apache-2.0 */
/* Built static and copied into the test image: tries to create an AF_VSOCK socket (never
 * connects or binds one) and prints what happened. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
        int fd = socket(AF_VSOCK, SOCK_STREAM, 0);
        if (fd < 0) {
                printf("socket(AF_VSOCK): %s\n", strerror(errno));
                return 1;
        }
        close(fd);
        printf("socket(AF_VSOCK): created\n");
        return 0;
}
