/* pool.c — the libuv C peer of tide_pool.lua: libuv's thread pool through
 * uv_queue_work.
 * Usage: pool [SEQ=20000] [BATCH=200000] [SPIN=536870912]
 *   pool_seq:     SEQ trivial jobs one at a time (each completion queues the
 *                 next): a full round trip loop -> worker -> loop per job
 *   pool_batch:   BATCH trivial jobs queued at once, until the last completed
 *   pool_speedup: SPIN iterations of an LCG as one job, then split into
 *                 one job per CPU queued at once; time(one) / time(split), each
 *                 the best of 3 runs
 * Wall time from uv_hrtime(). Prints "RESULT <figure> <value> <unit>". */
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

typedef struct {
  uv_work_t req;
  uint64_t spins;
  uint32_t result;
} job;

static uv_loop_t *loop;
static long remaining;
static job *jobs;

static void trivial_work(uv_work_t *req) { ((job *)req)->result++; }

static void seq_after(uv_work_t *req, int status) {
  (void)status;
  if (--remaining > 0) uv_queue_work(loop, req, trivial_work, seq_after);
}

static void batch_after(uv_work_t *req, int status) {
  (void)req; (void)status;
  remaining--;
}

static void spin_work(uv_work_t *req) {
  job *j = (job *)req;
  uint32_t x = (uint32_t)(uintptr_t)j;
  uint64_t i;
  for (i = 0; i < j->spins; i++) x = (x * 1103515245u + 12345u) & 0x7fffffffu;
  j->result = x;
}

static void spin_after(uv_work_t *req, int status) {
  (void)req; (void)status;
  remaining--;
}

static double seconds_since(uint64_t t0) { return (double)(uv_hrtime() - t0) / 1e9; }

/* Runs `parts` spin jobs of spins/parts iterations at once; returns seconds. */
static double spin(uint64_t spins, int parts) {
  uint64_t t0 = uv_hrtime();
  int i;
  remaining = parts;
  for (i = 0; i < parts; i++) {
    jobs[i].spins = spins / (uint64_t)parts;
    uv_queue_work(loop, &jobs[i].req, spin_work, spin_after);
  }
  uv_run(loop, UV_RUN_DEFAULT);
  return seconds_since(t0);
}

/* The shortest of three runs of spin(spins, parts). */
static double best_of_3(uint64_t spins, int parts) {
  double best = spin(spins, parts), t;
  int i;
  for (i = 0; i < 2; i++) if ((t = spin(spins, parts)) < best) best = t;
  return best;
}

int main(int argc, char **argv) {
  long nseq = argc > 1 ? atol(argv[1]) : 20000;
  long nbatch = argc > 2 ? atol(argv[2]) : 200000, i;
  uint64_t spins = argc > 3 ? strtoull(argv[3], NULL, 10) : (1ull << 29);
  int cpus = (int)uv_available_parallelism();
  uint64_t t0;
  double one, split;
  if (nseq <= 0 || nbatch <= 0 || spins == 0) { fprintf(stderr, "usage: pool [SEQ] [BATCH] [SPIN]\n"); return 2; }
  loop = uv_default_loop();
  jobs = calloc((size_t)(nbatch > cpus ? nbatch : cpus), sizeof(job));
  if (jobs == NULL) return 1;

  /* warm the pool up: its threads start on the first job */
  remaining = 1;
  uv_queue_work(loop, &jobs[0].req, trivial_work, batch_after);
  uv_run(loop, UV_RUN_DEFAULT);

  remaining = nseq;
  t0 = uv_hrtime();
  uv_queue_work(loop, &jobs[0].req, trivial_work, seq_after);
  uv_run(loop, UV_RUN_DEFAULT);
  printf("RESULT pool_seq %.0f ops/s\n", (double)nseq / seconds_since(t0));

  remaining = nbatch;
  t0 = uv_hrtime();
  for (i = 0; i < nbatch; i++) uv_queue_work(loop, &jobs[i].req, trivial_work, batch_after);
  uv_run(loop, UV_RUN_DEFAULT);
  printf("RESULT pool_batch %.0f ops/s\n", (double)nbatch / seconds_since(t0));

  /* best of 3 each: the least disturbed by other tenants of the machine */
  one = best_of_3(spins, 1);
  split = best_of_3(spins, cpus);
  printf("RESULT pool_speedup %.2f x (%d cpus, %.3f s one job, %.3f s split)\n", one / split, cpus, one, split);
  free(jobs);
  return 0;
}
