/*
 * trace.c - the scheduler trace (WEFT_TRACE).
 */
#include "internal.h"

void weft__trace_stuck(weft__worker *w, uint64_t task_id, int64_t stuck_ns)
{
    (void)w;
    (void)task_id;
    (void)stuck_ns;
}
