"""startup.py — start-up time of commands: each is started RUNS times
(posix_spawn, output to /dev/null) after WARMUP unmeasured starts, and the
median wall time from spawn to exit is printed. Used by bench/run.sh when
hyperfine is not installed.

Usage: python3 startup.py RUNS WARMUP NAME=COMMAND...   (COMMAND split like a
shell would, e.g. "tide=build/tide -e ''")
Prints one line per command: "RESULT startup <median ms> ms <NAME>".
"""
import os
import shlex
import statistics
import sys
import time


def once(argv, devnull):
    t0 = time.perf_counter()
    pid = os.posix_spawnp(argv[0], argv, os.environ,
                          file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 1),
                                        (os.POSIX_SPAWN_DUP2, devnull, 2)])
    _, status = os.waitpid(pid, 0)
    elapsed = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"startup.py: {' '.join(argv)} failed")
    return elapsed


def main():
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    runs, warmup = int(sys.argv[1]), int(sys.argv[2])
    devnull = os.open(os.devnull, os.O_WRONLY)
    for spec in sys.argv[3:]:
        name, _, command = spec.partition("=")
        argv = shlex.split(command)
        for _ in range(warmup):
            once(argv, devnull)
        times = [once(argv, devnull) for _ in range(runs)]
        print(f"RESULT startup {statistics.median(times) * 1000:.3f} ms {name}")


if __name__ == "__main__":
    main()
