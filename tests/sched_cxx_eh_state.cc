// sched_cxx_eh_state.cc - the C++ runtime's per-thread exception state
// travels with the task (weft switches __cxa_get_globals with it):
//  - a task that parks inside a catch block, maybe resuming on another
//    worker, still has its own exception: `throw;` rethrows it and
//    std::current_exception() is it;
//  - a destructor that parks during unwinding sees
//    std::uncaught_exceptions() == 1 wherever it resumes, and the count is
//    0 again after the catch, on every worker and on the thread that ran
//    weft_run.
// Conservation: every task checks its own exception exactly once.
/* LABELS: unit */
#include "test.h"

#include <exception>
#include <stdexcept>

namespace
{

struct tagged : std::runtime_error {
    long id;
    explicit tagged(long i) : std::runtime_error("tagged"), id(i) {}
};

std::atomic<long> rethrown_ok{0}, dtor_ok{0}, after_ok{0};

long tasks;

int parks_in_catch(void *arg)
{
    long id = (long)(intptr_t)arg;
    try {
        throw tagged(id);
    } catch (const tagged &) {
        // Park (others throw and catch meanwhile, on this worker and others).
        CHECK_OK(weft_yield());
        CHECK_OK(weft_sleep(1000 * (id % 7)));
        std::exception_ptr p = std::current_exception();
        CHECK(p != nullptr);
        try {
            throw; // must be this task's exception
        } catch (const tagged &again) {
            CHECK_EQ(again.id, id);
            rethrown_ok++;
        }
    }
    CHECK_EQ(std::uncaught_exceptions(), 0);
    CHECK(std::current_exception() == nullptr);
    return 0;
}

struct parks_in_dtor {
    ~parks_in_dtor()
    {
        CHECK_EQ(std::uncaught_exceptions(), 1);
        CHECK_OK(weft_sleep(1000));
        CHECK_OK(weft_yield());
        CHECK_EQ(std::uncaught_exceptions(), 1);
        dtor_ok++;
    }
};

int unwinds_through_park(void *)
{
    try {
        parks_in_dtor d;
        throw std::runtime_error("unwinding");
    } catch (const std::runtime_error &) {
    }
    CHECK_EQ(std::uncaught_exceptions(), 0);
    after_ok++;
    return 0;
}

int root(void *)
{
    weft_nursery *n;
    CHECK_OK(weft_nursery_open(&n));
    for (long i = 0; i < tasks; i++) {
        CHECK_OK(weft_spawn(n, parks_in_catch, (void *)(intptr_t)i));
        CHECK_OK(weft_spawn(n, unwinds_through_park, nullptr));
    }
    CHECK_OK(weft_nursery_close(n));
    // Whatever ran on this task's threads, the count is its own again.
    CHECK_EQ(std::uncaught_exceptions(), 0);
    return 0;
}

} // namespace

int main()
{
    test_watchdog(50);
    tasks = test_scale(200);
    for (unsigned w = 1; w <= 3; w += 2) {
        rethrown_ok = dtor_ok = after_ok = 0;
        CHECK_OK(test_run(w, root, nullptr));
        CHECK_EQ(rethrown_ok.load(), tasks);
        CHECK_EQ(dtor_ok.load(), tasks);
        CHECK_EQ(after_ok.load(), tasks);
        CHECK_EQ(std::uncaught_exceptions(), 0);
    }
    std::printf("sched_cxx_eh_state: ok (%ld tasks, 1 and 3 workers)\n", tasks);
    return 0;
}
