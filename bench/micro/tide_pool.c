/* tide_pool.c — tide's thread pool from C (tide_work_submit, no promise),
 * the "C submit" column of the pool section: the same figures as pool.c
 * (libuv's uv_queue_work) on tide's own pool. Linked with libtide.a.
 * Usage: tide_pool [SEQ=20000] [BATCH=200000] [SPIN=536870912]
 *   pool_seq:     SEQ trivial jobs one at a time (each after function
 *                 submits the next)
 *   pool_batch:   BATCH trivial jobs submitted at once, until the last after
 *   pool_speedup: SPIN iterations of an LCG as one job, then split into one
 *                 job per worker submitted at once; time(one) / time(split),
 *                 each the best of 3 runs
 * The pool has one worker per CPU (tide's default). Wall time from
 * uv_hrtime(). Prints "RESULT <figure> <value> <unit>". */
#include <stdio.h>
#include <stdlib.h>
#include "tide.h"

typedef struct {
  tide_work req;
  uint64_t spins;
  uint32_t result;
} job;

static tide_rt *rt;
static long remaining;
static job *jobs;

static void trivial_work(tide_work *req, tide_worker *w) { (void)w; ((job *)req)->result++; }

static void seq_after(tide_work *req, int status) {
  (void)status;
  if (--remaining > 0) tide_work_submit(rt, req, NULL, trivial_work, seq_after);
}

static void count_after(tide_work *req, int status) {
  (void)req; (void)status;
  remaining--;
}

static void spin_work(tide_work *req, tide_worker *w) {
  job *j = (job *)req;
  uint32_t x = (uint32_t)(uintptr_t)j;
  uint64_t i;
  (void)w;
  for (i = 0; i < j->spins; i++) x = (x * 1103515245u + 12345u) & 0x7fffffffu;
  j->result = x;
}

static double seconds_since(uint64_t t0) { return (double)(uv_hrtime() - t0) / 1e9; }

static void run_until_done(void) {
  while (remaining > 0) tide_rt_run(rt, TIDE_RUN_ONCE);
}

static double spin(uint64_t spins, int parts) {
  uint64_t t0 = uv_hrtime();
  int i;
  remaining = parts;
  for (i = 0; i < parts; i++) {
    jobs[i].spins = spins / (uint64_t)parts;
    tide_work_submit(rt, &jobs[i].req, NULL, spin_work, count_after);
  }
  run_until_done();
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
  uint64_t t0;
  int workers, err;
  double one, split;
  if (nseq <= 0 || nbatch <= 0 || spins == 0) { fprintf(stderr, "usage: tide_pool [SEQ] [BATCH] [SPIN]\n"); return 2; }
  if ((err = tide_rt_new(NULL, &rt)) != 0) { fprintf(stderr, "tide_rt_new: %s\n", uv_strerror(err)); return 1; }
  workers = tide_pool_size(rt);
  jobs = calloc((size_t)(nbatch > workers ? nbatch : workers), sizeof(job));
  if (jobs == NULL) return 1;

  /* warm the pool up: its workers start on the first submit */
  remaining = 1;
  if ((err = tide_work_submit(rt, &jobs[0].req, NULL, trivial_work, count_after)) != 0) {
    fprintf(stderr, "tide_work_submit: %s\n", uv_strerror(err));
    return 1;
  }
  run_until_done();

  remaining = nseq;
  t0 = uv_hrtime();
  tide_work_submit(rt, &jobs[0].req, NULL, trivial_work, seq_after);
  run_until_done();
  printf("RESULT pool_seq %.0f ops/s\n", (double)nseq / seconds_since(t0));

  remaining = nbatch;
  t0 = uv_hrtime();
  for (i = 0; i < nbatch; i++) tide_work_submit(rt, &jobs[i].req, NULL, trivial_work, count_after);
  run_until_done();
  printf("RESULT pool_batch %.0f ops/s\n", (double)nbatch / seconds_since(t0));

  /* best of 3 each: the least disturbed by other tenants of the machine */
  one = best_of_3(spins, 1);
  split = best_of_3(spins, workers);
  printf("RESULT pool_speedup %.2f x (%d workers, %.3f s one job, %.3f s split)\n", one / split, workers, one, split);
  tide_rt_free(rt);
  free(jobs);
  return 0;
}
