/* Performs each syscall given as NR[,ARG...] and prints "NR RESULT ERRNO" per line. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

int main(int argc, char **argv) {
    char line[128];
    for (int i = 1; i < argc; i++) {
        long a[7] = {0};
        int n = 0;
        for (char *p = argv[i]; n < 7 && p && *p;) {
            a[n++] = strtol(p, &p, 0);
            if (*p == ',') p++;
        }
        errno = 0;
        long r = syscall(a[0], a[1], a[2], a[3], a[4], a[5], a[6]);
        int e = r < 0 ? errno : 0;
        int len = snprintf(line, sizeof line, "%ld %ld %d\n", a[0], r < 0 ? -1L : (r > 0 ? 1L : 0L), e);
        if (write(1, line, len) < 0) return 3;
    }
    return 0;
}
