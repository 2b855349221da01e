"""brisk for Python, in one module of the standard library only.

Handlers: turn Python functions into the handler process of ``brisk worker --exec``::

    # handlers.py
    import brisk

    @brisk.handler("email.send")
    def send(payload):              # or send(payload, task) to get the brisk.Task too
        deliver(payload["to"])      # returning is done; raising is a failure, retried

    if __name__ == "__main__":
        brisk.run()

    $ brisk worker --broker redis://127.0.0.1:6379/0 --queue emails --exec "python3 handlers.py"

Raise ``brisk.Retry(delay=30)`` to run the task again later, ``brisk.Dead("why")`` to give
up at once; any other exception fails the attempt (retried with backoff until the task's
attempts are spent). ``print`` goes to the worker's standard error, never into the protocol.
What a handler returns (any JSON value) is the task's result, kept where the task or its
queue has a retention; ``task.progress(50, "halfway")`` reports progress while it runs.

Client: enqueue through the HTTP API of ``brisk dashboard``::

    brisk.enqueue("emails", "email.send", {"to": "ada@example.com"})
    brisk.enqueue("emails", "email.send", {...}, id="welcome-42", delay=10, max_attempts=5)
    brisk.enqueue_batch([("emails", "email.send", {...}), ...])   # all or none
    id = brisk.enqueue("reports", "report.build", {...}, retention=3600)
    brisk.Client().result(id)      # waits until it completed; returns the task with its result

The server is ``$BRISK_URL`` (default http://127.0.0.1:7070) with the bearer token
``$BRISK_DASHBOARD_TOKEN`` if set, or a ``brisk.Client(url, token=...)``.

The line protocol and the HTTP API are described in docs/worker-protocol.md and docs/api.md.
"""

import base64
import datetime
import inspect
import json
import os
import sys
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

__all__ = [
    "Task", "Retry", "Dead", "handler", "run", "serve",
    "Client", "BriskError", "Conflict", "enqueue", "enqueue_batch",
]

PROTOCOL = 1


# ---------------------------------------------------------------------------------------
# Handlers (brisk worker --exec)


class Retry(Exception):
    """Raise to run the task again: after ``delay`` seconds, or after the worker's backoff
    when ``delay`` is None. It counts as a failed attempt."""

    def __init__(self, message="", delay=None):
        super().__init__(message)
        if delay is not None:
            if isinstance(delay, datetime.timedelta):
                delay = delay.total_seconds()
            if delay < 0:
                raise ValueError("brisk.Retry: negative delay")
        self.delay = delay


class Dead(Exception):
    """Raise to fail the task without retrying it: it is dead at once (kept, inspectable,
    retryable from the dashboard or ``brisk retry``)."""


def _time(s):
    if s is None:
        return None
    # RFC 3339 with up to 9 fractional digits; datetime takes 6.
    s = s.replace("Z", "+00:00")
    if "." in s:
        head, rest = s.split(".", 1)
        digits = len(rest) - len(rest.lstrip("0123456789"))
        s = head + "." + rest[:min(digits, 6)].ljust(6, "0") + rest[digits:]
    return datetime.datetime.fromisoformat(s)


class Task:
    """One delivery of a task: ``id``, ``type``, ``queue``, ``payload`` (the decoded JSON
    value, or ``bytes`` when the payload is not JSON), ``attempt`` (1 on the first run),
    ``max_attempts``, ``enqueued_at``, ``ready_at`` and ``deadline`` (aware datetimes or
    None), ``last_error`` (of the previous attempt, or "") and ``headers`` (the task's string
    metadata, a dict). ``progress(percent, message)`` reports how far the handler has come."""

    __slots__ = ("id", "type", "queue", "payload", "attempt", "max_attempts", "last_error", "headers", "_raw", "_out")

    def __init__(self, d):
        self.id = d["id"]
        self.type = d.get("type", "")
        self.queue = d.get("queue", "")
        if d.get("payload_base64") is not None:
            self.payload = base64.b64decode(d["payload_base64"])
        else:
            self.payload = d.get("payload")
        self.attempt = d.get("attempt", 0)
        self.max_attempts = d.get("max_attempts", 0)
        self.last_error = d.get("last_error", "")
        self.headers = d.get("headers") or {}
        self._raw = d
        self._out = None

    def progress(self, percent, message=""):
        """Reports how far the task has come: ``percent`` from 0 to 100 and a short message
        (at most 200 bytes), shown by ``brisk tasks``, the API and the dashboard while the
        task runs. Each report is one line to the worker; report a few times a second at
        most. Outside ``brisk worker --exec`` it does nothing."""
        if self._out is None:
            return
        line = {"id": self.id, "progress": {"percent": float(percent), "message": str(message)}}
        self._out.write(json.dumps(line, separators=(",", ":")) + "\n")
        self._out.flush()

    # The times are parsed when asked for: most handlers never look at them.
    enqueued_at = property(lambda self: _time(self._raw.get("enqueued_at")))
    ready_at = property(lambda self: _time(self._raw.get("ready_at")))
    deadline = property(lambda self: _time(self._raw.get("deadline")))

    def __repr__(self):
        return "brisk.Task(id=%r, type=%r, queue=%r, attempt=%d)" % (self.id, self.type, self.queue, self.attempt)


_handlers = {}


def handler(type_name=None, registry=None):
    """Decorator: register the function as the handler of tasks of ``type_name`` (default:
    the function's name). The function is called with the payload, and with the Task as
    well when it takes a second positional parameter. ``"*"`` registers a handler for every
    type that has none of its own."""

    def register(fn):
        name = type_name or fn.__name__
        reg = _handlers if registry is None else registry
        if name in reg:
            raise ValueError("brisk: two handlers for task type %r" % name)
        reg[name] = fn
        return fn

    if callable(type_name):  # used bare: @brisk.handler
        fn, type_name = type_name, None
        return register(fn)
    return register


_wants = {}


def _wants_task(fn):
    """Whether fn takes the Task after the payload (cached: signatures cost microseconds)."""
    w = _wants.get(fn)
    if w is None:
        w = _wants[fn] = _takes_two(fn)
    return w


def _takes_two(fn):
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in positional)


def _error_text(exc):
    msg = str(exc)
    return "%s: %s" % (type(exc).__name__, msg) if msg else type(exc).__name__


def handle(line, handlers=None, out=None):
    """Runs the handler for one protocol line (a JSON task) and returns the outcome (a
    dict). Exceptions of the handler become outcomes; their tracebacks go to stderr. What
    the handler returns, when it is not None and encodes as JSON, is the outcome's result
    (one that does not encode is reported on stderr and left out). Progress reports go to
    ``out`` (none when it is None)."""
    reg = _handlers if handlers is None else handlers
    d = json.loads(line)
    task = Task(d)
    task._out = out
    fn = reg.get(task.type) or reg.get("*")
    if fn is None:
        return {"id": task.id, "status": "fail", "error": "no handler for type %s" % task.type}
    try:
        if _wants_task(fn):
            value = fn(task.payload, task)
        else:
            value = fn(task.payload)
    except Retry as e:
        out = {"id": task.id, "status": "retry", "error": str(e) or "retry requested"}
        if e.delay is not None:
            out["delay_seconds"] = e.delay
        return out
    except Dead as e:
        return {"id": task.id, "status": "dead", "error": str(e) or "dead"}
    except Exception as e:  # noqa: BLE001 - every failure of a handler is an outcome
        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()
        return {"id": task.id, "status": "fail", "error": _error_text(e)}
    out = {"id": task.id, "status": "ok"}
    if value is not None:
        try:
            json.dumps(value)
            out["result"] = value
        except (TypeError, ValueError) as e:
            sys.stderr.write("brisk: the result of task %s is not JSON, not kept: %s\n" % (task.id, e))
            sys.stderr.flush()
    return out


def serve(handlers=None, infile=None, outfile=None):
    """Reads tasks from ``infile`` one JSON line at a time and writes each outcome to
    ``outfile``, until ``infile`` ends. ``run`` calls it on the process's standard streams."""
    infile = sys.stdin if infile is None else infile
    for line in infile:
        if not line.strip():
            continue
        outfile.write(json.dumps(handle(line, handlers, outfile), separators=(",", ":")) + "\n")
        outfile.flush()


def run(handlers=None):
    """Serves the handlers registered with ``@handler`` (or the dict ``handlers``, type name
    to function) as a ``brisk worker --exec`` child until standard input ends. Standard
    output is kept for the protocol: ``print`` and anything else written to it (file
    descriptor 1 included) go to standard error."""
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)  # stray output of the handlers (and of C code) goes to stderr
    sys.stdout = sys.stderr
    try:
        serve(handlers, sys.stdin, proto)
    except KeyboardInterrupt:  # Ctrl-C at a terminal: the worker stops the children
        pass


# ---------------------------------------------------------------------------------------
# Client (the HTTP API of brisk dashboard)


class BriskError(Exception):
    """An error answered by the API: ``status`` (the HTTP status, 0 when the server could
    not be reached) and the message."""

    def __init__(self, status, message, body=None):
        super().__init__("brisk: %s (HTTP %d)" % (message, status) if status else "brisk: " + message)
        self.status = status
        self.message = message
        self.body = body or {}


class Conflict(BriskError):
    """409: a task with the given id is stored already (``id``, or ``ids`` for a batch).
    Nothing was stored by the request."""

    @property
    def id(self):
        return self.body.get("id")

    @property
    def ids(self):
        return self.body.get("ids") or ([self.body["id"]] if self.body.get("id") else [])


def _seconds(v, name):
    if v is None:
        return None
    if isinstance(v, datetime.timedelta):
        v = v.total_seconds()
    if v < 0:
        raise ValueError("brisk: %s is negative" % name)
    return v


def _rfc3339(at):
    if isinstance(at, (int, float)):
        at = datetime.datetime.fromtimestamp(at, datetime.timezone.utc)
    if at.tzinfo is None:
        raise ValueError("brisk: process_at needs an aware datetime (or epoch seconds)")
    return at.astimezone(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def _task_body(queue, type, payload, id=None, delay=None, process_at=None, max_attempts=None, timeout=None,
               retention=None):
    body = {"type": type}
    if queue is not None:
        body["queue"] = queue
    if payload is not None:
        body["payload"] = payload
    if id is not None:
        body["id"] = id
    if delay is not None:
        body["delay_seconds"] = _seconds(delay, "delay")
    if process_at is not None:
        body["process_at"] = _rfc3339(process_at)
    if max_attempts is not None:
        body["max_attempts"] = max_attempts
    if timeout is not None:
        body["timeout_seconds"] = _seconds(timeout, "timeout")
    if retention is not None:
        body["retention_seconds"] = _seconds(retention, "retention")
    return body


class Client:
    """A client of the HTTP API of ``brisk dashboard`` at ``url`` (default ``$BRISK_URL``,
    else http://127.0.0.1:7070), sending ``token`` (default ``$BRISK_DASHBOARD_TOKEN``) as a
    bearer token. Thread-safe: each call is one request."""

    def __init__(self, url=None, token=None, timeout=10.0):
        self.url = (url or os.environ.get("BRISK_URL") or "http://127.0.0.1:7070").rstrip("/")
        self.token = token if token is not None else os.environ.get("BRISK_DASHBOARD_TOKEN")
        self.timeout = timeout

    def _call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                answer = json.loads(raw)
            except ValueError:
                answer = {"error": raw.decode("utf-8", "replace").strip() or e.reason}
            cls = Conflict if e.code == 409 else BriskError
            raise cls(e.code, answer.get("error", str(e.reason)), answer) from None
        except (urllib.error.URLError, OSError) as e:
            raise BriskError(0, "cannot reach %s: %s" % (self.url, getattr(e, "reason", e))) from None

    @staticmethod
    def _q(name):
        return urllib.parse.quote(name, safe="")

    def enqueue(self, queue, type, payload=None, *, id=None, delay=None, process_at=None,
                max_attempts=None, timeout=None, retention=None):
        """Enqueues one task and returns its id. ``payload`` is any JSON value; ``id`` makes
        the enqueue idempotent (Conflict while a task with that id is stored); ``delay``
        (seconds or timedelta) or ``process_at`` (aware datetime or epoch seconds) postpone
        it; ``max_attempts`` and ``timeout`` (seconds) bound its runs; ``retention``
        (seconds) keeps it that long once it has completed, with its result."""
        body = _task_body(None, type, payload, id, delay, process_at, max_attempts, timeout, retention)
        return self._call("POST", "/api/v1/queues/%s/tasks" % self._q(queue), body)["id"]

    def enqueue_batch(self, tasks):
        """Enqueues tasks atomically (all or none) and returns their ids in order. Each task
        is a dict with ``queue``, ``type`` and the keyword options of enqueue, or a tuple
        ``(queue, type, payload)``."""
        bodies = []
        for t in tasks:
            if isinstance(t, dict):
                t = dict(t)
                bodies.append(_task_body(t.pop("queue"), t.pop("type"), t.pop("payload", None), **t))
            else:
                bodies.append(_task_body(*t))
        return self._call("POST", "/api/v1/tasks/batch", {"tasks": bodies})["ids"]

    def queues(self):
        """Every queue's counts, latency and SLA (the objects of ``brisk queues --json``)."""
        return self._call("GET", "/api/v1/queues")

    def tasks(self, queue, state="pending", limit=100, offset=0):
        """Tasks of a queue in one state, oldest first."""
        q = urllib.parse.urlencode({"state": state, "limit": limit, "offset": offset})
        return self._call("GET", "/api/v1/queues/%s/tasks?%s" % (self._q(queue), q))

    def task(self, id):
        """One task by id (BriskError with status 404 when none is stored)."""
        return self._call("GET", "/api/v1/tasks/%s" % self._q(id))

    def result(self, id, timeout=None):
        """Waits until the task has ended and returns it (the object of ``task``, with its
        ``result``): completed, or raises BriskError when it ended dead or cancelled, when
        ``timeout`` seconds pass first, or when it is not stored (it completed without a
        retention, or never existed: status 404). Polls every 50 ms at first, then less
        often, up to every second."""
        deadline = None if timeout is None else time.monotonic() + timeout
        wait = 0.05
        while True:
            t = self.task(id)
            if t["state"] == "completed":
                return t
            if t["state"] in ("dead", "cancelled"):
                raise BriskError(0, "task %s ended %s: %s" % (id, t["state"], t.get("last_error", "")), t)
            if deadline is not None and time.monotonic() + wait > deadline:
                raise BriskError(0, "task %s still %s after %ss" % (id, t["state"], timeout), t)
            time.sleep(wait)
            wait = min(wait * 1.5, 1.0)

    def set_retention(self, queue, seconds):
        """Keeps the queue's completed and cancelled tasks that many seconds, with their
        results (None or 0 turns it off); returns the queue."""
        return self._call("PUT", "/api/v1/queues/%s" % self._q(queue),
                          {"retention_seconds": _seconds(seconds, "retention")})

    def set_sla(self, queue, seconds):
        """Declares the queue's SLA in seconds (None or 0 clears it); returns the queue."""
        return self._call("PUT", "/api/v1/queues/%s" % self._q(queue), {"sla_seconds": _seconds(seconds, "sla")})

    def workers(self):
        """Workers with a heartbeat in the last minute."""
        return self._call("GET", "/api/v1/workers")


_default = None


def _client():
    global _default
    if _default is None:
        _default = Client()
    return _default


def enqueue(queue, type, payload=None, **options):
    """``Client().enqueue`` on the default client ($BRISK_URL, $BRISK_DASHBOARD_TOKEN)."""
    return _client().enqueue(queue, type, payload, **options)


def enqueue_batch(tasks):
    """``Client().enqueue_batch`` on the default client."""
    return _client().enqueue_batch(tasks)
