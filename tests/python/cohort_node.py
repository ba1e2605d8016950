"""A real `cohort run` process for the Python tests: started from a config
file, waited for until it says it is ready, its endpoint read off its
output, the rest of its output drained (a full pipe would stall it), and
stopped. Shared by the tests in this folder."""
import subprocess
import threading
import time


def start_node(cohort, config_file, limit_s=20):
    """(process, first listen endpoint) of a node ready to serve; raises when it does not start in time."""
    proc = subprocess.Popen([cohort, "run", "--config", config_file], stdout=subprocess.PIPE, text=True)
    endpoint, deadline = None, time.time() + limit_s
    while time.time() < deadline:
        line = proc.stdout.readline()
        if line == "":
            break  # it exited
        if "http listening on " in line:
            # The HTTP front's real address (a config may ask for port 0): proc.http_port.
            proc.http_port = int(line.rsplit(":", 1)[1].strip().rstrip("/"))
        elif "listening on " in line and endpoint is None:
            endpoint = line.split("listening on ")[1].strip()
        if line.startswith("cohort: ready"):
            threading.Thread(target=lambda: [None for _ in iter(proc.stdout.readline, "")], daemon=True).start()
            return proc, endpoint
    proc.kill()
    raise RuntimeError("the node of %s did not start" % config_file)


def stop_node(proc):
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
