# mp_throttle's tutorial (shared/seeds/mp_throttle-tutorial.rst), unchanged but for its import
# line: the throttle and the Pool of "Throttle your processes", then the run of "Get the stats",
# which prints latest() and mean() every half second for 5 s, then the summary.
#
#     PYTHONPATH=build/default/python python3 examples/python/seed_tutorial.py
#
# Like the seed's, the code runs at module level, so it needs the fork start method (see
# examples/python/seed_readme.py).
import multiprocessing
import mpthrottle as mp_throttle
import time
throttle = mp_throttle.Throttle(4,1)

def work(tank):
    while not tank.kill_flag.is_set():
        # Block until 'fuel' is available.
        tank.await_fuel()
        # do something and repeat.
workerpool = multiprocessing.Pool(processes=4, initializer=work, initargs=(throttle,))

throttle.start()
for i in range(10):
    print(throttle.latest())
    print(throttle.mean())
    time.sleep(0.5)

runtime, total_processes, mean_time_between_processes, mean_processes_per_second = throttle.stop()
print("Runtime: {}".format(runtime))
print("Total: {}".format(total_processes))
print("Time between processes: {}".format(mean_time_between_processes))
print("Processes per second: {}".format(mean_processes_per_second))
