"""Memory probes for the benchmarks: RssAnon now, and its peak over a block of code."""

import resource
import threading
import time


def rss_anon_mib() -> float:
    """Anonymous resident memory (heap, TF buffers; not file-backed memmap pages), MiB."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("RssAnon:"))
    return int(line.split()[1]) / 1024


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (anonymous + file-backed), MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PeakAnon(threading.Thread):
    """`with PeakAnon() as p: ...` then p.growth: peak RssAnon minus RssAnon at entry, MiB.

    Samples every millisecond, so a short-lived copy of a large array shows.
    """

    def __init__(self):
        super().__init__(daemon=True)
        self.running = False

    def __enter__(self) -> "PeakAnon":
        self.before = self.peak = rss_anon_mib()
        self.running = True
        self.start()
        return self

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, rss_anon_mib())
            time.sleep(0.001)

    def __exit__(self, *exc) -> None:
        self.running = False
        self.join()
        self.peak = max(self.peak, rss_anon_mib())
        self.growth = self.peak - self.before
