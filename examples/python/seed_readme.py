# mp_throttle's README example (shared/seeds/mp_throttle-README.md), unchanged but for its import
# line: mpthrottle is a drop-in for mp_throttle. Four Pool workers share 4 per second for 5 s; it
# prints Total: 20 (21 when the slot at exactly 5 s lands before stop()).
#
#     PYTHONPATH=build/default/python python3 examples/python/seed_readme.py
#
# As the seed's, the program runs its code at module level, so it needs the fork start method
# (Linux's default before Python 3.14); under spawn or forkserver a program guards it with
# `if __name__ == "__main__":` (see examples/python/crawler.py).
import multiprocessing
import mpthrottle as mp_throttle
import time

def work(tank):
    while not tank.kill_flag.is_set():
        # Block until 'fuel' is available.
        tank.await_fuel()
        # do something
    return

# Limit the processes to 4 per 1 second, by providing 4 'fuel' per second.
throttle = mp_throttle.Throttle(4,1)
workerpool = multiprocessing.Pool(processes=4, initializer=work, initargs=(throttle,))
throttle.start()
time.sleep(5)
# Stops the processes and return stats:
runtime, total_processes, mean_frequency, mean_processes_per_second = throttle.stop()
print("Runtime: {}".format(runtime))
print("Total: {}".format(total_processes))
print("Mean frequency: {}".format(mean_frequency))
print("Processes per second: {}".format(mean_processes_per_second))
