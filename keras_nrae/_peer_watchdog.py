"""Kill a worker whose cluster has not formed in time, naming the peers it cannot reach.

Run as a script (standard library only, so it starts in milliseconds):
    python _peer_watchdog.py PARENT_PID TIMEOUT_S
It waits until its stdin closes (the parent has its strategy, or died), or
TIMEOUT_S passes; then it writes to stderr which tasks of TF_CONFIG refuse a
TCP connection and kills PARENT_PID with SIGKILL: the parent is blocked inside
TensorFlow's C++ runtime, holding the GIL, where no Python thread or signal
handler of its own can run.
"""

import json
import os
import select
import signal
import socket
import sys
from typing import List


def unreachable_peers(tf_config: dict) -> List[str]:
    """"/job:J/task:I (host:port)" of each other task of tf_config that refuses a TCP connection now."""
    me = tf_config.get("task", {})
    unreachable = []
    for job, addresses in tf_config.get("cluster", {}).items():
        for index, address in enumerate(addresses):
            if (job, index) == (me.get("type"), me.get("index")):
                continue
            host, port = address.rsplit(":", 1)
            try:
                socket.create_connection((host, int(port)), timeout=2).close()
            except OSError:
                unreachable.append(f"/job:{job}/task:{index} ({address})")
    return unreachable


def main() -> None:
    parent, timeout_s = int(sys.argv[1]), float(sys.argv[2])
    if select.select([sys.stdin], [], [], timeout_s)[0]:
        return  # stdin closed: the cluster formed, or the parent is gone
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    peers = unreachable_peers(tf_config)
    problem = (
        f"cannot reach {', '.join(peers)}" if peers
        else "all peers accept connections, but the cluster did not form"
    )
    task = tf_config.get("task", {})
    sys.stderr.write(
        f"keras_nrae.distribute: worker /job:{task.get('type')}/task:{task.get('index')} "
        f"gave up after {timeout_s:g} s waiting for the other workers of TF_CONFIG: "
        f"{problem}. Start every worker, or check the addresses and firewall.\n"
    )
    sys.stderr.flush()
    os.kill(parent, signal.SIGKILL)


if __name__ == "__main__":
    main()
