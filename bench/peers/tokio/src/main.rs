//! weftpeers-tokio: the Tokio baselines ("peers") for the weft benchmarks.
//!
//!     weftpeers-tokio -bench NAME [-workers N] [-rt current|multi] [-drivers all|none] [-quick]
//!     weftpeers-tokio -bench list
//!     weftpeers-tokio -bench echo_serve [-workers N]
//!
//! The same harness as the Go peer (bench/peers/go/main.go): one untimed
//! warm-up run, then repetitions until at least 1 s (0.2 s with -quick) of
//! measured time has accumulated (at least one, at most MAX_REPS; with
//! -quick, a warm-up that alone took longer than 0.2 s is the only sample),
//! and the MEDIAN printed as exactly one line on stdout:
//!
//!     BENCH <NAME> <value> <unit>
//!
//! Per-repetition statistics go to stderr.
//!
//! Runtime: -workers N (default 2) worker threads. -rt picks the scheduler:
//! the default is `current` (tokio's current_thread runtime: every task on
//! one thread, the one-worker runtime a Tokio user would pick) for N = 1 and
//! `multi` (the work-stealing multi_thread runtime, worker_threads(N)) for
//! N >= 2. Both are built with enable_all(), as #[tokio::main] does, so the
//! I/O and timer drivers are there and polled as in a server (-drivers none
//! leaves them out: the scheduler alone; it matters for yield, since
//! yield_now defers its wake-up until the scheduler next polls the driver,
//! an epoll_wait(0) per round of the two yielders). The whole
//! measurement loop runs in one spawned task, i.e. on a worker thread, as
//! weft's bench_in_task and Go's main goroutine do (not in block_on on the
//! main thread, which a multi_thread runtime does not count as a worker).
//!
//! Workloads (each the same work as the Go peer of the same row):
//!   spawn_join  1,000,000 tasks, each writing its index into its slot of a
//!               vector allocated before the clock starts; joined by awaiting
//!               every JoinHandle (Tokio's join; the handles' vector is
//!               reserved before the clock starts). Unit ns/task.
//!   yield       two tasks each calling tokio::task::yield_now() 500,000
//!               times, one worker (-workers is ignored, as the Go peer
//!               forces GOMAXPROCS=1). Unit ns/yield = total / 1,000,000.
//!   pingpong    two tasks bounce an integer 200,000 round trips over two
//!               tokio::sync::mpsc::channel(1). Tokio has no rendezvous
//!               channel; with strict alternation a capacity-1 channel does
//!               the same hand-offs as an unbuffered one (the send finds the
//!               slot empty, wakes the partner parked in recv, and the sender
//!               then parks in its own recv: one wake and one park per side
//!               per round trip, as Go's unbuffered channels do). A channel
//!               that lives across rounds, like Go's, rather than a oneshot
//!               allocated per round. Unit ns/roundtrip.
//!   skynet      github.com/atemerev/skynet: 1,000,000 leaves, 10-ary; each
//!               inner node makes an mpsc::channel(1) (the closest to Go's
//!               unbuffered channel: senders beyond the one buffered slot
//!               wait for the parent's receive), spawns 10 children that
//!               send their sum on it, and sends its own sum to its parent.
//!               The root is spawned too, as in Go. Root sum must be
//!               499999500000. Unit ms.
//!
//! Server (not a measurement: bench/loadgen drives it and measures it from
//! outside, as it does weft's and Go's echo servers):
//!   echo_serve  TcpListener on 127.0.0.1:0, prints "PORT <n>", then a task
//!               per connection (tokio::spawn) doing read + write_all of
//!               what it read with a 64 KiB buffer (TCP_NODELAY, as weft's
//!               server and Go's net set it), until killed. multi_thread
//!               runtime, worker_threads(N) (default 2), enable_all(); the
//!               accept loop runs in a spawned task, on a worker.
//!
//! Only tokio is used (rt, rt-multi-thread, sync, net, time, io-util), built from
//! Debian's crate sources (see Cargo.toml), with Rust's default allocator
//! (glibc malloc), as a Tokio program gets unless it picks another one. For
//! spawn_join that is a large part of the cost: the worker threads' malloc
//! arenas are trimmed after each repetition frees its 1M tasks and grown
//! again (mprotect, page faults) by the next one;
//! GLIBC_TUNABLES=glibc.malloc.trim_threshold=4000000000 roughly halves it.

use std::io::Write;
use std::process::exit;
use std::time::{Duration, Instant};

use tokio::runtime::{Builder, Runtime};
use tokio::sync::mpsc;

const SPAWN_TASKS: usize = 1_000_000;
const YIELDS_PER_TASK: u64 = 500_000;
const PINGPONG_N: u64 = 200_000;
const SKYNET_SIZE: u64 = 1_000_000;
const SKYNET_SUM: u64 = 499_999_500_000;
const MAX_REPS: usize = 1000;

struct Workload {
    name: &'static str,
    unit: &'static str,
    div: f64,               // operations per repetition (1 for whole-run units)
    workers: Option<usize>, // forced worker count (overrides -workers)
}

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "spawn_join",
        unit: "ns/task",
        div: SPAWN_TASKS as f64,
        workers: None,
    },
    Workload {
        name: "yield",
        unit: "ns/yield",
        div: (2 * YIELDS_PER_TASK) as f64,
        workers: Some(1),
    },
    Workload {
        name: "pingpong",
        unit: "ns/roundtrip",
        div: PINGPONG_N as f64,
        workers: None,
    },
    Workload {
        name: "skynet",
        unit: "ms",
        div: 1.0,
        workers: None,
    },
];

async fn run(name: &'static str) -> Duration {
    match name {
        "spawn_join" => spawn_join().await,
        "yield" => yield_pair().await,
        "pingpong" => pingpong().await,
        "skynet" => skynet_root().await,
        _ => unreachable!(),
    }
}

// ---- spawn_join -------------------------------------------------------------

/// A pointer into the slots vector, handed to the tasks (each writes only its
/// own slot, and the vector is read only after every task was joined).
#[derive(Clone, Copy)]
struct Slots(*mut usize);
unsafe impl Send for Slots {}

impl Slots {
    fn write(self, i: usize) {
        unsafe { *self.0.add(i) = i }
    }
}

async fn spawn_join() -> Duration {
    let mut slots = vec![usize::MAX; SPAWN_TASKS];
    let p = Slots(slots.as_mut_ptr());
    let mut handles = Vec::with_capacity(SPAWN_TASKS);
    let start = Instant::now();
    for i in 0..SPAWN_TASKS {
        handles.push(tokio::spawn(async move { p.write(i) }));
    }
    for h in handles {
        h.await.expect("spawn_join: task failed");
    }
    let d = start.elapsed();
    for (i, &v) in slots.iter().enumerate() {
        assert_eq!(v, i, "spawn_join: slot not written");
    }
    d
}

// ---- yield --------------------------------------------------------------------

async fn yielder() {
    for _ in 0..YIELDS_PER_TASK {
        tokio::task::yield_now().await;
    }
}

async fn yield_pair() -> Duration {
    let start = Instant::now();
    let a = tokio::spawn(yielder());
    let b = tokio::spawn(yielder());
    a.await.expect("yield: task failed");
    b.await.expect("yield: task failed");
    start.elapsed()
}

// ---- pingpong -----------------------------------------------------------------

async fn pingpong() -> Duration {
    let (ping_tx, mut ping_rx) = mpsc::channel::<u64>(1);
    let (pong_tx, mut pong_rx) = mpsc::channel::<u64>(1);
    let partner = tokio::spawn(async move {
        while let Some(v) = ping_rx.recv().await {
            if pong_tx.send(v + 1).await.is_err() {
                break;
            }
        }
        // pong_tx dropped here: closes pong
    });
    let start = Instant::now();
    let mut v = 0u64;
    for _ in 0..PINGPONG_N {
        ping_tx.send(v).await.expect("pingpong: send");
        v = pong_rx.recv().await.expect("pingpong: recv");
    }
    let d = start.elapsed();
    drop(ping_tx);
    partner.await.expect("pingpong: partner failed"); // wait for the partner to exit
    assert_eq!(v, PINGPONG_N, "pingpong: wrong count");
    d
}

// ---- skynet -------------------------------------------------------------------

// Spawning through a plain function keeps the async fn's type from containing
// itself (no boxing needed for the recursion).
fn spawn_skynet(c: mpsc::Sender<u64>, num: u64, size: u64, div: u64) {
    tokio::spawn(skynet(c, num, size, div));
}

async fn skynet(c: mpsc::Sender<u64>, num: u64, size: u64, div: u64) {
    if size == 1 {
        let _ = c.send(num).await;
        return;
    }
    let (tx, mut rx) = mpsc::channel::<u64>(1);
    for i in 0..div {
        spawn_skynet(tx.clone(), num + i * (size / div), size / div, div);
    }
    drop(tx);
    let mut sum = 0;
    for _ in 0..div {
        sum += rx.recv().await.expect("skynet: child vanished");
    }
    let _ = c.send(sum).await;
}

async fn skynet_root() -> Duration {
    let (tx, mut rx) = mpsc::channel::<u64>(1);
    let start = Instant::now();
    spawn_skynet(tx, 0, SKYNET_SIZE, 10);
    let sum = rx.recv().await.expect("skynet: root vanished");
    let d = start.elapsed();
    assert_eq!(sum, SKYNET_SUM, "skynet: wrong sum");
    d
}

// ---- echo_serve -------------------------------------------------------------

async fn echo_serve() -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ln = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("PORT {}", ln.local_addr()?.port());
    std::io::stdout().flush()?;
    loop {
        let (mut s, _) = ln.accept().await?;
        let _ = s.set_nodelay(true);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            loop {
                let n = match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if s.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// -bench echo_serve: serves until killed (exits 1 if the listener fails).
fn serve_echo(workers: usize) -> ! {
    let rt = Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("weftpeers-tokio: cannot build the runtime: {}", e);
            exit(1)
        });
    match rt.block_on(rt.spawn(echo_serve())) {
        Ok(Err(e)) => eprintln!("weftpeers-tokio: echo_serve: {}", e),
        Err(e) => eprintln!("weftpeers-tokio: echo_serve: {}", e),
        Ok(Ok(())) => {}
    }
    exit(1)
}

// ---- harness --------------------------------------------------------------------

/// About four significant digits without exponent notation (as the Go peer).
fn format(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.0}", v)
    } else if v >= 100.0 {
        format!("{:.1}", v)
    } else if v >= 10.0 {
        format!("{:.2}", v)
    } else {
        format!("{:.3}", v)
    }
}

/// The samples (in ns per operation) of one measurement.
async fn measure(w: &'static Workload, quick: bool) -> Vec<f64> {
    let budget = if quick {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(1)
    };
    let warm = run(w.name).await; // warm-up, not measured (but see -quick)
    let mut samples = Vec::new();
    let mut total = Duration::ZERO;
    if quick && warm >= budget {
        samples.push(warm.as_nanos() as f64 / w.div);
        total = warm;
    }
    while samples.len() < MAX_REPS && (samples.is_empty() || total < budget) {
        let d = run(w.name).await;
        total += d;
        samples.push(d.as_nanos() as f64 / w.div);
    }
    samples
}

fn usage(msg: &str) -> ! {
    eprintln!("weftpeers-tokio: {}", msg);
    eprintln!("usage: weftpeers-tokio -bench NAME|list [-workers N] [-rt current|multi] [-drivers all|none] [-quick]");
    exit(2)
}

fn main() {
    let mut bench: Option<String> = None;
    let mut workers: usize = 2;
    let mut rt_kind: Option<String> = None;
    let mut quick = false;
    let mut drivers = true;

    // Go-flag style: -name value, -name=value, and --name likewise.
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let flag = arg.trim_start_matches('-');
        if flag.len() == arg.len() {
            usage(&format!("unexpected argument '{}'", arg));
        }
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.to_string(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .unwrap_or_else(|| usage(&format!("-{} needs a value", name)))
        };
        match name.as_str() {
            "bench" => bench = Some(value()),
            "workers" => {
                workers = value()
                    .parse()
                    .unwrap_or_else(|_| usage("-workers must be a number"));
            }
            "rt" => rt_kind = Some(value()),
            "quick" => quick = true,
            "drivers" => match value().as_str() {
                "all" => drivers = true,
                "none" => drivers = false,
                _ => usage("-drivers must be all or none"),
            },
            "h" | "help" => usage("help"),
            _ => usage(&format!("unknown flag '{}'", arg)),
        }
    }
    let bench = bench.unwrap_or_else(|| usage("-bench is required"));
    if bench == "list" {
        for w in WORKLOADS {
            println!("{}", w.name);
        }
        println!("echo_serve");
        return;
    }
    if bench == "echo_serve" {
        if workers < 1 {
            usage("-workers must be >= 1");
        }
        serve_echo(workers);
    }
    let w: &'static Workload = WORKLOADS
        .iter()
        .find(|w| w.name == bench)
        .unwrap_or_else(|| usage(&format!("unknown benchmark '{}' (try -bench list)", bench)));
    if workers < 1 {
        usage("-workers must be >= 1");
    }
    let workers = w.workers.unwrap_or(workers);
    let rt_kind =
        rt_kind.unwrap_or_else(|| if workers == 1 { "current" } else { "multi" }.to_string());
    let mut builder = match rt_kind.as_str() {
        "current" if workers == 1 => Builder::new_current_thread(),
        "current" => usage("-rt current runs one worker (use -workers 1)"),
        "multi" => {
            let mut b = Builder::new_multi_thread();
            b.worker_threads(workers);
            b
        }
        _ => usage("-rt must be current or multi"),
    };
    if drivers {
        builder.enable_all();
    }
    let rt: Runtime = builder.build().unwrap_or_else(|e| {
        eprintln!("weftpeers-tokio: cannot build the runtime: {}", e);
        exit(1)
    });

    let mut samples = rt
        .block_on(rt.spawn(measure(w, quick)))
        .unwrap_or_else(|e| {
            eprintln!("weftpeers-tokio: {}: {}", w.name, e);
            exit(1)
        });
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = samples.len();
    let mut median = samples[n / 2];
    if n % 2 == 0 {
        median = (samples[n / 2 - 1] + samples[n / 2]) / 2.0;
    }
    let scale = if w.unit == "ms" { 1e-6 } else { 1.0 };
    eprintln!(
        "weftpeers-tokio: {} rt={} workers={} drivers={} reps={} min={:.4} median={:.4} max={:.4} {}",
        w.name,
        rt_kind,
        workers,
        if drivers { "all" } else { "none" },
        n,
        samples[0] * scale,
        median * scale,
        samples[n - 1] * scale,
        w.unit
    );
    println!("BENCH {} {} {}", w.name, format(median * scale), w.unit);
}
