# flowmesh Python sandbox worker: runs one call, then exits.
#
# Started ahead of time (a warm pool) with an empty environment, in a
# private working directory, off the network, as an unprivileged user. It
# waits for one request line on stdin, limits itself, installs an audit hook
# that cannot be removed, runs the code and writes one answer line.
import ast
import json
import os
import resource
import signal
import sys
import threading
import time
import traceback

STDLIB = tuple(
    os.path.realpath(p) + os.sep
    for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.__file__)}
)
DENIED_MODULES = {"ctypes", "_ctypes", "cffi", "_posixsubprocess", "multiprocessing", "_multiprocessing"}
PROCESS_EVENTS = {
    "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
    "subprocess.Popen", "pty.spawn", "os.kill", "os.killpg", "os.startfile",
}
NATIVE_EVENTS = {"ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata", "ctypes.call_function", "ctypes.addressof"}
NETWORK_EVENTS = {
    "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg",
    "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
}
LOG_LINES, LOG_LINE = 200, 2000


class Denied(PermissionError):
    """Something the sandbox forbids."""


denials = []


def answer(out, message):
    out.write(json.dumps(message) + "\n")
    out.flush()
    os._exit(0)


def vm_size():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def limit(request):
    wall = request["wall_ms"] / 1000.0
    cpu = max(1, int(wall + 0.999))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    base = vm_size()
    memory = base + request["memory_bytes"]
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (request["file_bytes"], request["file_bytes"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # A write past the file-size limit fails (EFBIG) instead of killing.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def install_hook(workdir, network):
    workdir = os.path.realpath(workdir) + os.sep

    def deny(what):
        denials.append(what)
        raise Denied("denied by the sandbox: " + what)

    def allowed_path(path, writing):
        if isinstance(path, int):
            return True
        try:
            real = os.path.realpath(os.fsdecode(path))
        except Exception:
            return False
        if (real + os.sep).startswith(workdir):
            return True
        return not writing and real.startswith(STDLIB)

    def hook(event, args):
        if event in PROCESS_EVENTS or event.startswith("os.exec") or event.startswith("os.spawn"):
            deny("starting processes (" + event + ")")
        elif event in NATIVE_EVENTS:
            deny("native code (" + event + ")")
        elif event == "import" and args[0].split(".")[0] in DENIED_MODULES:
            deny("the module " + args[0])
        elif event in NETWORK_EVENTS and not network:
            deny("network access (" + event + ")")
        elif event == "open":
            path, mode = args[0], args[1] or "r"
            writing = isinstance(mode, str) and any(c in mode for c in "wax+")
            if isinstance(args[2], int) and args[2] & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                writing = True
            if not allowed_path(path, writing):
                deny("the file " + os.fsdecode(path) if not isinstance(path, int) else "a file")
        elif event in ("os.listdir", "os.scandir", "os.chdir", "os.remove", "os.rename", "os.rmdir", "os.mkdir"):
            if args and not allowed_path(args[0] if args[0] is not None else ".", event != "os.listdir" and event != "os.scandir"):
                deny("the path " + str(args[0]))
        elif event in ("sys.addaudithook", "os.putenv", "os.unsetenv"):
            deny(event)

    sys.addaudithook(hook)


class Capture:
    """What the code prints, kept as log lines within bounds."""

    def __init__(self, lines, prefix=""):
        self.lines, self.prefix, self.partial = lines, prefix, ""

    def write(self, text):
        self.partial += text
        while "\n" in self.partial:
            line, self.partial = self.partial.split("\n", 1)
            self.add(line)
        return len(text)

    def add(self, line):
        if len(self.lines) < LOG_LINES:
            self.lines.append(self.prefix + line[:LOG_LINE])
        elif len(self.lines) == LOG_LINES:
            self.lines.append("... (further lines dropped)")

    def flush(self):
        if self.partial:
            self.add(self.partial)
            self.partial = ""


def watch_parent():
    """Ends this process once the engine that started it is gone (killed or
    crashed), instead of running the code on to its CPU limit with nobody
    waiting for it. Started before the limits: a thread counts against
    RLIMIT_NPROC. Code that sabotages it still meets RLIMIT_CPU."""
    parent, getppid, sleep, leave = os.getppid(), os.getppid, time.sleep, os._exit

    def watch():
        while getppid() == parent:
            sleep(0.1)
        leave(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main():
    watch_parent()
    # Python itself may set LC_CTYPE (locale coercion); the code sees nothing.
    os.environ.clear()
    out = os.fdopen(os.dup(1), "w")
    # Started: the interpreter and this worker's modules are loaded.
    out.write("ready\n")
    out.flush()
    request = json.loads(sys.stdin.readline())
    source = request["source"]
    body = "".join("    " + line + "\n" for line in source.splitlines()) or "    pass\n"
    try:
        tree = ast.parse("def __flowmesh_main(input):\n" + body, "<code>")
        # Line numbers as the user wrote them, without the wrapping line.
        ast.increment_lineno(tree, -1)
        code = compile(tree, "<code>", "exec")
    except SyntaxError as e:
        line = (e.lineno or 1) - 1
        answer(out, {"ok": False, "class": "code", "message": "syntax error on line %d: %s" % (line, e.msg), "logs": []})
    payload = json.loads(request["input"])
    logs = []
    sys.stdout = Capture(logs)
    sys.stderr = Capture(logs, "stderr: ")
    limit(request)
    install_hook(os.getcwd(), request["network"])
    scope = {"__name__": "__flowmesh__", "__builtins__": __builtins__}
    try:
        exec(code, scope)
        result = scope["__flowmesh_main"](payload)
        text = json.dumps(result, allow_nan=False)
    except BaseException as e:  # noqa: BLE001 - every failure is classified below
        sys.stdout.flush()
        sys.stderr.flush()
        kind, message = "code", "%s: %s" % (type(e).__name__, e)
        if isinstance(e, MemoryError):
            kind, message = "memory", "the code ran out of memory"
        elif isinstance(e, RecursionError):
            kind, message = "memory", "the code passed its stack limit (recursion too deep)"
        elif isinstance(e, OSError) and e.errno == 27:
            kind, message = "denied", "a file passed the size limit"
        elif denials:
            kind, message = "denied", denials[0]
        elif isinstance(e, (TypeError, ValueError)) and "JSON" in str(e):
            message = "the output is not JSON: %s" % e
        tb = traceback.format_exception(type(e), e, e.__traceback__)
        lines = [l.rstrip() for part in tb for l in part.splitlines() if "<code>" in l or not l.startswith("  File")]
        answer(out, {"ok": False, "class": kind, "message": message, "logs": logs + lines[-20:]})
    sys.stdout.flush()
    sys.stderr.flush()
    if len(text) > request["output_bytes"]:
        answer(out, {"ok": False, "class": "output_too_large",
                     "message": "the output is %d bytes, more than the limit of %d" % (len(text), request["output_bytes"]),
                     "logs": logs})
    out.write('{"ok": true, "logs": ' + json.dumps(logs) + ', "output": ' + text + "}\n")
    out.flush()
    os._exit(0)


main()
