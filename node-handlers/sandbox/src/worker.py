# flowmesh Python sandbox worker: runs one call, then exits.
#
# Started ahead of time (a warm pool) in the engine's jail (namespaces, a
# seccomp filter, a tmpfs working directory) with an empty environment. It
# waits for one request line on stdin, limits itself, installs an audit hook
# that cannot be removed, runs the code and writes one answer line. The
# kernel's jail is the boundary; the hook is an inner layer, and reads only
# what it captured before the code ran.
import ast
import json
import os
import resource
import signal
import sys
import threading
import traceback

LOG_LINES, LOG_LINE = 200, 2000


def answer(out, message):
    out.write(json.dumps(message) + "\n")
    out.flush()
    os._exit(0)


def vm_size():
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    # A jail without /proc (some container runtimes): the interpreter's
    # usual size at this point, generously.
    return 64 << 20


def limit(request):
    wall = request["wall_ms"] / 1000.0
    cpu = max(1, int(wall + 0.999))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    base = vm_size()
    memory = base + request["memory_bytes"]
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    # Pipes and terminals hold kernel memory outside RLIMIT_AS.
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    resource.setrlimit(resource.RLIMIT_FSIZE, (request["file_bytes"], request["file_bytes"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # A write past the file-size limit fails (EFBIG) instead of killing.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def install_hook(workdir, denials):
    """Installs the audit hook. Everything it reads is a local of this call,
    captured before the code runs: the code can rebind module globals,
    builtins and attributes of modules, not these."""
    stdlib = tuple(
        os.path.realpath(p) + os.sep
        for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.__file__)}
    )
    workdir = os.path.realpath(workdir) + os.sep
    denied_modules = frozenset({"ctypes", "_ctypes", "cffi", "_posixsubprocess", "multiprocessing", "_multiprocessing"})
    process_events = frozenset({
        "os.system", "os.posix_spawn", "os.fork", "os.forkpty", "subprocess.Popen", "pty.spawn",
        "os.kill", "os.killpg", "os.startfile",
    })
    native_events = frozenset({"ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata", "ctypes.call_function", "ctypes.addressof"})
    network_events = frozenset({
        "socket.__new__", "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg",
        "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
    })
    path_events = frozenset({"os.listdir", "os.scandir", "os.chdir", "os.remove", "os.rename", "os.rmdir", "os.mkdir"})
    reading_events = frozenset({"os.listdir", "os.scandir"})
    other_events = frozenset({
        "sys.addaudithook", "os.putenv", "os.unsetenv",
        # Reaching this hook's objects (through the collector) or rewriting
        # a function's code would switch it off.
        "gc.get_objects", "gc.get_referrers", "gc.get_referents",
    })
    rewritable = frozenset({"__code__", "__globals__", "__closure__", "__defaults__", "__kwdefaults__"})
    writing_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT
    realpath, fsdecode, sep = os.path.realpath, os.fsdecode, os.sep
    is_a, as_str, anything = isinstance, str, any
    append = denials.append

    class Denied(PermissionError):
        """Something the sandbox forbids."""

    def deny(what):
        append(what)
        raise Denied("denied by the sandbox: " + what)

    def allowed_path(path, writing):
        if is_a(path, int):
            return True
        try:
            real = realpath(fsdecode(path))
        except Exception:
            return False
        if (real + sep).startswith(workdir):
            return True
        return not writing and real.startswith(stdlib)

    def hook(event, args):
        if event in process_events or event.startswith("os.exec") or event.startswith("os.spawn"):
            deny("starting processes (" + event + ")")
        elif event in native_events:
            deny("native code (" + event + ")")
        elif event == "import" and args[0].split(".")[0] in denied_modules:
            deny("the module " + args[0])
        elif event in network_events:
            deny("network access (" + event + ")")
        elif event == "open":
            path, mode = args[0], args[1] or "r"
            writing = is_a(mode, as_str) and anything(c in mode for c in "wax+")
            if is_a(args[2], int) and args[2] & writing_flags:
                writing = True
            if not allowed_path(path, writing):
                deny("the file " + fsdecode(path) if not is_a(path, int) else "a file")
        elif event in path_events:
            if args and not allowed_path(args[0] if args[0] is not None else ".", event not in reading_events):
                deny("the path " + as_str(args[0]))
        elif event in other_events:
            deny(event)
        elif event == "object.__setattr__" and len(args) > 1 and args[1] in rewritable:
            deny("changing a function's " + as_str(args[1]))

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


def read_request():
    """The request line, read from the descriptor itself: nothing is left
    in a buffer for the code to see."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(0, 65536)
        if not chunk:
            os._exit(1)
        data += chunk
    return json.loads(data)


def watch_engine():
    """Ends this process when the engine closes its stdin: the engine died
    or gave up on the call (a PID namespace hides the engine's pid, so the
    parent cannot be watched). Started before the limits: a thread counts
    against RLIMIT_NPROC. Code that sabotages it still meets RLIMIT_CPU,
    and bubblewrap's end when the engine kills it."""
    read, leave = os.read, os._exit

    def watch():
        try:
            while read(0, 1):
                pass
        finally:
            leave(1)

    threading.Thread(target=watch, name="engine-watch", daemon=True).start()


def main():
    # Python itself may set LC_CTYPE (locale coercion); the code sees nothing.
    os.environ.clear()
    out = os.fdopen(os.dup(1), "w")
    # Started: the interpreter and this worker's modules are loaded.
    out.write("ready\n")
    out.flush()
    request = read_request()
    watch_engine()
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
    denials = []
    install_hook(os.getcwd(), denials)
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
            kind, message = "denied", "a file passed the size limit of %d bytes" % request["file_bytes"]
        elif isinstance(e, OSError) and e.errno == 28:
            kind, message = "denied", "the working directory is full: the code may write %d bytes in all" % request["workdir_bytes"]
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
