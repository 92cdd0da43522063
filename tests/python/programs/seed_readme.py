"""The seed's (mp_throttle's) README program, with only the import changed, under a start method.

    seed_readme.py START_METHOD [SECONDS]
"""
import multiprocessing
import sys
import time

import mpthrottle as mp_throttle


def work(tank):
    while not tank.kill_flag.is_set():
        # Block until 'fuel' is available.
        tank.await_fuel()
        # do something
    return


if __name__ == "__main__":
    multiprocessing.set_start_method(sys.argv[1])
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 5
    # Limit the processes to 4 per 1 second, by providing 4 'fuel' per second.
    throttle = mp_throttle.Throttle(4, 1)
    workerpool = multiprocessing.Pool(processes=4, initializer=work, initargs=(throttle,))
    throttle.start()
    time.sleep(seconds)
    # Stops the processes and return stats:
    runtime, total_processes, mean_frequency, mean_processes_per_second = throttle.stop()
    print("Runtime: {}".format(runtime))
    print("Total: {}".format(total_processes))
    print("Mean frequency: {}".format(mean_frequency))
    print("Processes per second: {}".format(mean_processes_per_second))
