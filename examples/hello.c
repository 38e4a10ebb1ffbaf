/* hello.c - spawn a few tasks in a nursery and wait for them.
 *
 * Every task belongs to a nursery; weft_nursery_close returns only when all
 * of its children have finished, so `results` is complete afterwards.
 */
#include <weft.h>

#include <stdio.h>

enum { N = 8 };

static int square(void *arg)
{
    int *slot = arg;
    weft_sleep(1000000); /* 1 ms: parks this task, not the thread */
    *slot = *slot * *slot;
    return 0;
}

static int main_task(void *arg)
{
    (void)arg;
    int results[N];
    weft_nursery *n;
    int rc = weft_nursery_open(&n);
    if (rc)
        return rc;
    for (int i = 0; i < N; i++) {
        results[i] = i;
        if ((rc = weft_spawn(n, square, &results[i])) != 0)
            break;
    }
    int rc2 = weft_nursery_close(n); /* waits for every child */
    if (rc || rc2)
        return rc ? rc : rc2;
    for (int i = 0; i < N; i++)
        printf("%d squared is %d\n", i, results[i]);
    printf("hello from task %llu on worker %d\n", (unsigned long long)weft_task_id(),
           weft_worker_id());
    return 0;
}

int main(void)
{
    int rc = weft_run(NULL, main_task, NULL);
    if (rc) {
        fprintf(stderr, "hello: weft_run failed: %d\n", rc);
        return 1;
    }
    return 0;
}
