/* worker_pool.cpp - a pool of workers over weft.hpp.
 *
 * 100,000 jobs go through a channel to eight workers, and job 31337 fails
 * (it throws). The exception fails its worker, so the nursery is cancelled:
 * the other workers' recv and the feeder's send return -ECANCELED, everyone
 * returns, and close() rethrows the failure, which main reports.
 */
#include <weft.hpp>

#include <atomic>
#include <cstdio>
#include <stdexcept>
#include <string>

static long run_job(long job)
{
    if (job == 31337)
        throw std::runtime_error("job " + std::to_string(job) + " failed");
    return job % 7;
}

int main()
{
    const long njobs = 100000;
    std::atomic<long> done{0}, checksum{0};
    try {
        weft::run([&] {
            weft::channel<long> jobs(64); // declared first: outlives the workers
            weft::nursery n;
            for (int w = 0; w < 8; w++)
                n.spawn(
                    [&] {
                        long job;
                        while (jobs.recv(job) == 0) { // -EPIPE: closed and drained
                            checksum += run_job(job);
                            done++;
                        }
                    },
                    {"worker"});
            for (long job = 0; job < njobs; job++)
                if (jobs.send(job) != 0) // -ECANCELED once a job failed
                    break;
            jobs.close();
            n.close(); // waits for the workers, rethrows the first failure
        });
    } catch (const std::exception &e) {
        std::printf("stopped after %ld of %ld jobs: %s\n", done.load(), njobs, e.what());
        return done.load() < njobs ? 0 : 1;
    }
    std::printf("no job failed?\n");
    return 1;
}
