"""Tests of brisk.py: the protocol in-process, and the client and handler runner against a
real `brisk dashboard` and a real `brisk worker --exec` on a SQLite broker.

Run from the repository root: python3 -m unittest discover -s python -v
The brisk command is $BRISK_BIN, or built with `go build` into a temporary directory.
"""

import datetime
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import brisk  # noqa: E402

_tmp = None
_bin = None


def setUpModule():
    global _tmp, _bin
    _tmp = tempfile.mkdtemp(prefix="brisk-py-test-")
    _bin = os.environ.get("BRISK_BIN")
    if not _bin:
        if shutil.which("go") is None:
            if os.environ.get("CI"):
                raise RuntimeError("neither $BRISK_BIN nor go to build brisk")
            raise unittest.SkipTest("SKIPPED: neither $BRISK_BIN nor go to build brisk")
        _bin = os.path.join(_tmp, "brisk")
        subprocess.run(["go", "build", "-o", _bin, "./cmd/brisk"], cwd=os.path.dirname(HERE), check=True)


def tearDownModule():
    shutil.rmtree(_tmp, ignore_errors=True)


def wait_for(what, cond, limit=30.0):
    deadline = time.monotonic() + limit
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("not within %ss: %s" % (limit, what))
        time.sleep(0.05)


class Servers(unittest.TestCase):
    """A fresh SQLite broker with a `brisk dashboard` on a free port."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=_tmp)
        self.broker = "sqlite://" + os.path.join(self.dir, "b.db")
        self.procs = []
        # brisk dashboard opens an existing store only: create it, without leaving a queue.
        for action in (["set", "--sla", "0"], ["delete"]):
            subprocess.run([_bin, "queue"] + action + ["--broker", self.broker, "setup"], check=True,
                           stdout=subprocess.DEVNULL)
        dash = self.spawn([_bin, "dashboard", "--broker", self.broker, "--listen", "127.0.0.1:0"],
                          stdout=subprocess.PIPE)
        line = dash.stdout.readline().decode()  # "brisk dashboard on http://ADDR/ (...)"
        self.assertIn("http://", line)
        self.url = line.split("http://", 1)[1].split("/", 1)[0]
        self.client = brisk.Client("http://" + self.url)

    def spawn(self, args, **kw):
        kw.setdefault("stderr", subprocess.PIPE)
        p = subprocess.Popen(args, **kw)
        self.procs.append(p)
        return p

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            for f in (p.stdout, p.stderr):
                if f:
                    f.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def queue(self, name):
        for q in self.client.queues():
            if q["name"] == name:
                return q
        return None


class ProtocolTest(unittest.TestCase):
    """The runner's side of the line protocol, in-process."""

    def serve(self, handlers, *tasks):
        lines = "".join(json.dumps(t) + "\n" for t in tasks)
        out = io.StringIO()
        err = io.StringIO()
        old = sys.stderr
        sys.stderr = err
        try:
            brisk.serve(handlers, io.StringIO(lines), out)
        finally:
            sys.stderr = old
        return [json.loads(l) for l in out.getvalue().splitlines()]

    def test_outcomes(self):
        seen = {}
        reg = {}

        @brisk.handler("ok", registry=reg)
        def ok(payload, task):
            seen["task"] = task
            seen["payload"] = payload

        @brisk.handler("later", registry=reg)
        def later(payload):
            raise brisk.Retry("busy", delay=datetime.timedelta(seconds=2.5))

        @brisk.handler("backoff", registry=reg)
        def backoff(payload):
            raise brisk.Retry()

        @brisk.handler("dead", registry=reg)
        def dead(payload):
            raise brisk.Dead("no such user")

        @brisk.handler("fail", registry=reg)
        def fail(payload):
            raise KeyError("x")

        t = {"id": "1", "type": "ok", "queue": "q", "payload": {"a": [1]}, "attempt": 2, "max_attempts": 5,
             "enqueued_at": "2030-01-02T03:04:05.123456789Z", "ready_at": "2030-01-02T03:04:06Z",
             "deadline": None, "last_error": "before", "headers": {"traceparent": "00-1-2-01"}}
        out = self.serve(reg, t, dict(t, id="2", type="later"), dict(t, id="3", type="backoff"),
                         dict(t, id="4", type="dead"), dict(t, id="5", type="fail"), dict(t, id="6", type="nope"),
                         dict(t, id="7", payload=None, payload_base64="AAE="))
        self.assertEqual(out, [
            {"id": "1", "status": "ok"},
            {"id": "2", "status": "retry", "error": "busy", "delay_seconds": 2.5},
            {"id": "3", "status": "retry", "error": "retry requested"},
            {"id": "4", "status": "dead", "error": "no such user"},
            {"id": "5", "status": "fail", "error": "KeyError: 'x'"},
            {"id": "6", "status": "fail", "error": "no handler for type nope"},
            {"id": "7", "status": "ok"},
        ])
        task = seen["task"]
        self.assertEqual((task.id, task.queue, task.attempt, task.max_attempts, task.last_error), ("7", "q", 2, 5, "before"))
        self.assertEqual(seen["payload"], b"\x00\x01")
        self.assertEqual(task.enqueued_at, datetime.datetime(2030, 1, 2, 3, 4, 5, 123456, datetime.timezone.utc))
        self.assertIsNone(task.deadline)
        self.assertEqual(task.headers, {"traceparent": "00-1-2-01"})

    def test_result_and_progress(self):
        reg = {}

        @brisk.handler("sum", registry=reg)
        def total(payload, task):
            task.progress(50, "halfway")
            return {"sum": sum(payload)}

        @brisk.handler("odd", registry=reg)
        def odd(payload):
            return {1, 2}  # not JSON: the task is done, its result left out

        out = self.serve(reg, {"id": "1", "type": "sum", "payload": [1, 2, 3]}, {"id": "2", "type": "odd"})
        self.assertEqual(out, [
            {"id": "1", "progress": {"percent": 50.0, "message": "halfway"}},
            {"id": "1", "status": "ok", "result": {"sum": 6}},
            {"id": "2", "status": "ok"},
        ])

    def test_catch_all_and_duplicates(self):
        reg = {}
        brisk.handler("*", registry=reg)(lambda p: None)
        self.assertEqual(self.serve(reg, {"id": "a", "type": "anything"}), [{"id": "a", "status": "ok"}])
        with self.assertRaises(ValueError):
            brisk.handler("*", registry=reg)(lambda p: None)

    def test_run_keeps_stdout_for_the_protocol(self):
        script = textwrap.dedent("""
            import os, sys
            import brisk
            @brisk.handler("t")
            def t(payload):
                print("print from the handler")
                os.write(1, b"raw write to fd 1\\n")
            brisk.run()
        """)
        p = subprocess.run([sys.executable, "-c", script], input=b'{"id":"x","type":"t"}\n',
                           capture_output=True, env=dict(os.environ, PYTHONPATH=HERE), timeout=30)
        self.assertEqual(p.stdout, b'{"id":"x","status":"ok"}\n')
        self.assertIn(b"print from the handler", p.stderr)
        self.assertIn(b"raw write to fd 1", p.stderr)


class ClientTest(Servers):
    """brisk.Client against a real brisk dashboard."""

    def test_enqueue_and_options(self):
        at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
        tid = self.client.enqueue("emails", "email.send", {"to": "ada@example.com"}, id="welcome-1",
                                  process_at=at, max_attempts=3, timeout=2.5)
        self.assertEqual(tid, "welcome-1")
        t = self.client.task("welcome-1")
        self.assertEqual((t["state"], t["max_attempts"], t["timeout_seconds"], t["payload"]),
                         ("scheduled", 3, 2.5, {"to": "ada@example.com"}))
        with self.assertRaises(brisk.Conflict) as cm:
            self.client.enqueue("emails", "email.send", {}, id="welcome-1")
        self.assertEqual((cm.exception.status, cm.exception.id), (409, "welcome-1"))
        plain = self.client.enqueue("emails", "email.send", delay=60)
        self.assertEqual(self.client.task(plain)["state"], "scheduled")
        self.assertEqual(self.queue("emails")["scheduled"], 2)

    def test_batch_is_all_or_nothing(self):
        ids = self.client.enqueue_batch([("a", "t", {"i": 1}), {"queue": "b", "type": "t", "id": "b-1", "max_attempts": 2}])
        self.assertEqual(len(ids), 2)
        self.assertEqual(ids[1], "b-1")
        with self.assertRaises(brisk.Conflict) as cm:
            self.client.enqueue_batch([("a", "t", {"i": 2}), {"queue": "b", "type": "t", "id": "b-1"}])
        self.assertEqual(cm.exception.ids, ["b-1"])
        with self.assertRaises(brisk.BriskError) as cm:
            self.client.enqueue_batch([("a", "t", None), ("a", "", None)])
        self.assertEqual(cm.exception.status, 400)
        self.assertEqual((self.queue("a")["pending"], self.queue("b")["pending"]), (1, 1))

    def test_sla_and_errors(self):
        q = self.client.set_sla("reports", 90)
        self.assertEqual((q["name"], q["sla_seconds"]), ("reports", 90))
        self.assertIsNone(self.client.set_sla("reports", None)["sla_seconds"])
        with self.assertRaises(brisk.BriskError) as cm:
            self.client.enqueue("bad queue name!", "t")
        self.assertEqual(cm.exception.status, 400)
        with self.assertRaises(brisk.BriskError) as cm:
            self.client.task("nope")
        self.assertEqual(cm.exception.status, 404)
        with self.assertRaises(ValueError):
            self.client.enqueue("q", "t", process_at=datetime.datetime(2030, 1, 1))  # naive
        down = brisk.Client("http://127.0.0.1:1", timeout=2)
        with self.assertRaises(brisk.BriskError) as cm:
            down.queues()
        self.assertEqual(cm.exception.status, 0)

    def test_module_level_enqueue_uses_env(self):
        old = os.environ.get("BRISK_URL")
        os.environ["BRISK_URL"] = "http://" + self.url
        brisk._default = None
        try:
            tid = brisk.enqueue("envq", "t", [1, 2])
            self.assertEqual(brisk.enqueue_batch([("envq", "t", None)])[0] != tid, True)
        finally:
            brisk._default = None
            if old is None:
                del os.environ["BRISK_URL"]
            else:
                os.environ["BRISK_URL"] = old
        self.assertEqual(self.queue("envq")["pending"], 2)


HANDLER = textwrap.dedent("""
    import os
    import time
    import brisk

    OUT = os.environ["OUT"]

    def note(*words):
        with open(OUT, "a") as f:
            f.write(" ".join(str(w) for w in words) + "\\n")

    @brisk.handler("add")
    def add(payload, task):
        note("done", task.id, payload["a"] + payload["b"])

    @brisk.handler("flaky")
    def flaky(payload, task):
        if task.attempt == 1:
            raise RuntimeError("first attempt fails")
        note("done", task.id, task.attempt)

    @brisk.handler("crash")
    def crash(payload, task):
        if task.attempt == 1:
            os._exit(3)  # the child dies in the middle of the task
        note("done", task.id, task.attempt)

    @brisk.handler("refuse")
    def refuse(payload):
        raise brisk.Dead("invalid input")

    @brisk.handler("report")
    def report(payload, task):
        task.progress(40, "rendering")
        while not os.path.exists(OUT + ".go"):  # the test looks at the progress first
            time.sleep(0.01)
        return {"pages": payload["pages"]}

    if __name__ == "__main__":
        brisk.run()
""")


class WorkerTest(Servers):
    """Python handlers under a real brisk worker --exec, fed through the HTTP API."""

    def test_end_to_end(self):
        script = os.path.join(self.dir, "handlers.py")
        with open(script, "w") as f:
            f.write(HANDLER)
        out = os.path.join(self.dir, "out")
        env = dict(os.environ, PYTHONPATH=HERE, OUT=out)
        worker = self.spawn([_bin, "worker", "--broker", self.broker, "--queue", "py", "--concurrency", "2",
                             "--exec", "%s %s" % (sys.executable, script)], env=env)
        ids = self.client.enqueue_batch([("py", "add", {"a": i, "b": 1}) for i in range(20)])
        flaky = self.client.enqueue("py", "flaky")
        crash = self.client.enqueue("py", "crash")
        refuse = self.client.enqueue("py", "refuse", {"x": 1})

        def finished():
            q = self.queue("py")
            return q and q["pending"] + q["scheduled"] + q["running"] == 0 and q["dead"] == 1

        wait_for("the queue drained", finished)
        with open(out) as f:
            done = [line.split() for line in f]
        results = {w[1]: w[2] for w in done}
        self.assertEqual(len(done), 22, done)  # each task done once
        for i, tid in enumerate(ids):
            self.assertEqual(results[tid], str(i + 1))
        self.assertEqual((results[flaky], results[crash]), ("2", "2"))
        dead = self.client.tasks("py", "dead")
        self.assertEqual([(t["id"], t["last_error"]) for t in dead], [(refuse, "skip retry: invalid input")])
        workers = self.client.workers()
        self.assertEqual([w["queues"] for w in workers], [["py"]])
        # A result and progress, kept for the queue's retention.
        self.assertEqual(self.client.set_retention("py", 3600)["retention_seconds"], 3600)
        rid = self.client.enqueue("py", "report", {"pages": 4})
        running = wait_for("the progress shows", lambda: (lambda t: t if t["progress"] else None)(self.client.task(rid)))
        self.assertEqual((running["state"], running["progress"]["percent"], running["progress"]["message"]),
                         ("running", 40, "rendering"))
        open(out + ".go", "w").close()
        done = self.client.result(rid, timeout=30)
        self.assertEqual((done["state"], done["result"]), ("completed", {"pages": 4}))
        self.assertEqual([t["id"] for t in self.client.tasks("py", "completed")], [rid])
        with self.assertRaises(brisk.BriskError):
            self.client.result(refuse)  # dead
        worker.terminate()
        self.assertEqual(worker.wait(timeout=30), 0)
        self.assertIn(b"exited while running the task", worker.stderr.read())


if __name__ == "__main__":
    unittest.main()
