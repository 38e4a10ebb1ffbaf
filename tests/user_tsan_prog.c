/* Built by tests/user_tsan.sh with -fsanitize=thread against the
 * uninstrumented Release library: each happens-before edge weft promises
 * (API.md) is exercised with plain (non-atomic) user data on both sides,
 * on 2 workers and from a plain thread. TSan must report nothing.
 * With the argument "race": two tasks on one worker touch the same data
 * with no weft edge between them, merely running one after the other;
 * TSan must report that race (weft switches its fibers without
 * synchronising them). */
#include <weft.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    long payload[8];
} box;

static box spawn_box, event_box, sem_box, wg_box, child_box[4];
static long counter;
static weft_mutex mu = WEFT_MUTEX_INIT;
static weft_event ev = WEFT_EVENT_INIT;
static weft_sem sem = WEFT_SEM_INIT;
static weft_waitgroup wg = WEFT_WAITGROUP_INIT;
static weft_chan *ch;

static int reads_spawn_box(void *arg)
{
    (void)arg;
    return spawn_box.payload[3] == 42 ? 0 : -EIO;
}

static int counts(void *arg)
{
    (void)arg;
    for (int i = 0; i < 2000; i++) {
        weft_mutex_lock(&mu);
        counter++;
        weft_mutex_unlock(&mu);
        if (i % 100 == 0)
            weft_yield();
    }
    return 0;
}

static int receiver(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++) {
        box *b;
        if (weft_chan_recv(ch, &b))
            return -EIO;
        if (b->payload[0] != i)
            return -EIO;
        free(b);
    }
    return 0;
}

static int waits_event(void *arg)
{
    (void)arg;
    if (weft_event_wait(&ev))
        return -EIO;
    return event_box.payload[1] == 7 ? 0 : -EIO;
}

static int waits_sem(void *arg)
{
    (void)arg;
    if (weft_sem_acquire(&sem))
        return -EIO;
    return sem_box.payload[2] == 9 ? 0 : -EIO;
}

static int writes_child(void *arg)
{
    box *b = arg;
    weft_sleep(1000);
    b->payload[5] = 11;
    return 0;
}

static int wg_worker(void *arg)
{
    (void)arg;
    wg_box.payload[4] = 13;
    weft_waitgroup_done(&wg);
    return 0;
}

static void *plain_thread(void *arg)
{
    (void)arg;
    sem_box.payload[2] = 9;
    weft_sem_release(&sem);
    return NULL;
}

static int root(void *arg)
{
    (void)arg;
    weft_nursery *n;
    if (weft_nursery_open(&n) || weft_chan_open(&ch, sizeof(box *), 4))
        return -ENOMEM;
    spawn_box.payload[3] = 42;
    weft_spawn(n, reads_spawn_box, NULL);
    for (int i = 0; i < 4; i++)
        weft_spawn(n, counts, NULL);
    weft_spawn(n, receiver, NULL);
    weft_spawn(n, waits_event, NULL);
    weft_spawn(n, waits_sem, NULL);
    weft_waitgroup_add(&wg, 1);
    weft_spawn(n, wg_worker, NULL);
    for (int i = 0; i < 100; i++) {
        box *b = malloc(sizeof *b);
        b->payload[0] = i;
        if (weft_chan_send(ch, &b))
            return -EIO;
    }
    weft_sleep(1000 * 1000);
    event_box.payload[1] = 7;
    weft_event_set(&ev);
    pthread_t th;
    pthread_create(&th, NULL, plain_thread, NULL);
    if (weft_waitgroup_wait(&wg) || wg_box.payload[4] != 13)
        return -EIO;
    weft_nursery *m;
    weft_nursery_open(&m);
    for (int i = 0; i < 4; i++)
        weft_spawn(m, writes_child, &child_box[i]);
    if (weft_nursery_close(m))
        return -EIO;
    for (int i = 0; i < 4; i++)
        if (child_box[i].payload[5] != 11)
            return -EIO;
    int rc = weft_nursery_close(n);
    pthread_join(th, NULL);
    weft_chan_free(ch);
    return rc;
}

static long racy;

static int race_a(void *arg)
{
    (void)arg;
    racy = 1;
    weft_yield();
    return 0;
}

static int race_b(void *arg)
{
    (void)arg;
    weft_yield();
    return racy == 1 ? 0 : -EIO; /* reads what race_a wrote, unordered */
}

static int race_root(void *arg)
{
    (void)arg;
    weft_nursery *n;
    if (weft_nursery_open(&n))
        return -ENOMEM;
    weft_spawn(n, race_a, NULL);
    weft_spawn(n, race_b, NULL);
    return weft_nursery_close(n);
}

int main(int argc, char **argv)
{
    weft_config cfg = {0};
    if (argc > 1 && strcmp(argv[1], "race") == 0) {
        cfg.workers = 1;
        return weft_run(&cfg, race_root, NULL) ? 1 : 0;
    }
    cfg.workers = 2;
    int rc = weft_run(&cfg, root, NULL);
    if (rc || counter != 8000) {
        fprintf(stderr, "user_tsan_prog: rc %d, counter %ld\n", rc, counter);
        return 1;
    }
    puts("user_tsan_prog: ok");
    return 0;
}
