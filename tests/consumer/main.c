/* A consumer of an installed weft: built by tests/install_test.sh with
 * pkg-config and with find_package(weft). Also compiled as C++17
 * (-fsyntax-only) to check that weft.h is valid C++. Prints "ok". */
#include <weft.h>

#include <stdio.h>

#define NCHILDREN 100

static int child(void *arg)
{
    long *count = (long *)arg;
    __atomic_fetch_add(count, 1, __ATOMIC_RELAXED);
    return weft_yield();
}

static int root(void *arg)
{
    weft_nursery *n = NULL;
    int rc = weft_nursery_open(&n);
    if (rc < 0)
        return rc;
    for (int i = 0; i < NCHILDREN; i++) {
        rc = weft_spawn(n, child, arg);
        if (rc < 0) {
            weft_nursery_cancel(n);
            break;
        }
    }
    int crc = weft_nursery_close(n);
    return rc < 0 ? rc : crc;
}

int main(void)
{
    long count = 0;
    int rc = weft_run(NULL, root, &count);
    if (rc != 0 || count != NCHILDREN) {
        fprintf(stderr, "consumer: weft_run = %d, %ld of %d children ran\n", rc, count, NCHILDREN);
        return 1;
    }
    printf("ok\n");
    return 0;
}
