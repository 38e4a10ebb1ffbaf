// api_cxx.cc - weft.h compiles as C++17, its initializers and the scope's
// size and alignment are the same as in C, and a runtime runs from C++.
/* LABELS: unit */
#include <weft.h>

#include <cstdio>
#include <cstdlib>

static_assert(sizeof(weft_scope) == 64, "weft_scope is 64 bytes");
static_assert(alignof(weft_scope) == 16, "weft_scope is 16-aligned");
static_assert(sizeof(weft_key) == 4, "weft_key is one 32-bit id");

static weft_event ev = WEFT_EVENT_INIT;

static int child(void *arg)
{
    *static_cast<int *>(arg) = 42;
    weft_event_set(&ev);
    return 0;
}

static int root(void *arg)
{
    (void)arg;
    int v = 0;
    weft_nursery *n = nullptr;
    if (weft_nursery_open(&n))
        return -1;
    weft_spawn(n, child, &v); // the macro form, from C++
    if (weft_event_wait(&ev))
        return -1;
    weft_scope s;
    weft_scope_enter(&s, WEFT_FOREVER);
    bool c = weft_scope_exit(&s);
    int rc = weft_nursery_close(n);
    return (rc == 0 && v == 42 && !c) ? 0 : -1;
}

int main()
{
    weft_config cfg = {};
    cfg.workers = 2;
    if (weft_run(&cfg, root, nullptr) != 0) {
        std::fprintf(stderr, "api_cxx: run failed\n");
        return 1;
    }
    std::puts("api_cxx: ok");
    return 0;
}
