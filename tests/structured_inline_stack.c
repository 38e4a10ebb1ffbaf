/* A child always gets the stack it was promised, also when the parent's
 * close runs it inline (as part of the parent, without a queue trip): the
 * runtime's stack size, or weft_spawn_attr.stack_size. A parent that has
 * used 30 KiB of its 64 KiB closes over children that need 40 KiB (default
 * size) and 200 KiB (a 256 KiB attr), on one worker, where close runs them
 * inline; the same with 2 workers, where some are stolen. Conservation:
 * every child digs to its depth exactly once, and the parent's stack is
 * intact afterwards (its canary buffer unchanged).
 * LABELS: unit
 */
#include "test.h"

static atomic_long dug;

/* Uses about `bytes` of stack below the caller, touching every 256 bytes. */
__attribute__((noinline)) static long dig(long bytes)
{
    volatile char buf[1024];
    for (int i = 0; i < 1024; i += 256)
        buf[i] = (char)bytes;
    long r = bytes > 1024 ? dig(bytes - 1024) : 0;
    return r + 1 + (buf[0] != (char)bytes); /* keeps buf alive: 1 per frame */
}

static int child(void *arg)
{
    long bytes = (long)(intptr_t)arg;
    CHECK(dig(bytes) > 0);
    CHECK_OK(weft_yield()); /* and may park and move while deep in its parent */
    atomic_fetch_add(&dug, 1);
    return 0;
}

/* Sanitizer frames are larger (redzones): dig less under them. */
static long scaled(long bytes) { return test_sanitized() ? bytes / 3 : bytes; }

static int spawn_and_close(void)
{
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    for (int i = 0; i < 8; i++)
        CHECK_OK(weft_spawn(n, child, (void *)(intptr_t)scaled(40 * 1024)));
    weft_spawn_attr a;
    memset(&a, 0, sizeof a);
    a.stack_size = 256 * 1024;
    a.name = "big";
    for (int i = 0; i < 4; i++)
        CHECK_OK(weft_spawn_ex(n, child, (void *)(intptr_t)scaled(200 * 1024), &a));
    return weft_nursery_close(n);
}

/* Recurses about 30 KiB deep with a canary in each frame, then closes. */
__attribute__((noinline)) static int deep_parent(int level)
{
    volatile char canary[1024];
    memset((char *)canary, 0x5A, sizeof canary);
    int rc = level > 0 ? deep_parent(level - 1) : spawn_and_close();
    for (size_t i = 0; i < sizeof canary; i++)
        CHECK_EQ(canary[i], 0x5A);
    return rc;
}

static int root(void *arg)
{
    (void)arg;
    for (int round = 0; round < 20; round++)
        CHECK_OK(deep_parent(test_sanitized() ? 9 : 29));
    return 0;
}

int main(void)
{
    test_watchdog(50);
    for (unsigned w = 1; w <= 2; w++) {
        atomic_store(&dug, 0);
        CHECK_OK(test_run(w, root, NULL));
        CHECK_EQ(atomic_load(&dug), 20 * 12);
    }
    printf("structured_inline_stack: ok\n");
    return 0;
}
