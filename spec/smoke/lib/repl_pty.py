"""repl_pty.py TIDE [ARGS...] -- drives the tide REPL through a
pseudo-terminal as a user would: expressions, await at the prompt,
history (up arrow), Ctrl-C cancelling a running line and clearing a
half-typed one, a chunk over two lines, a line typed ahead while another
runs, Ctrl-D leaving with status 0. With -i SCRIPT, the script ran first
and set `greeting`. Used by spec/smoke/repl.sh (not a test itself)."""
import os, pty, sys, time, select
exe = sys.argv[1]
pid, fd = pty.fork()
if pid == 0:
    os.execv(exe, [exe] + sys.argv[2:])
out = b""
def read_until(pat, timeout=5):
    global out
    end = time.time() + timeout
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try: data = os.read(fd, 4096)
            except OSError: return False
            out += data
            if pat.encode() in out: return True
    return False
def send(s): os.write(fd, s.encode())
def prompt(timeout=5):
    """Waits for a new prompt: a key typed while a line still runs goes to
    the terminal's own line discipline (Ctrl-D there is an EOF nobody reads)."""
    global out
    end = time.time() + timeout
    while time.time() < end:
        if out.endswith(b"> "): return True   # the prompt waits, nothing after it
        read_until("\0", 0.1)
    return False
assert read_until("> "), out
if "-i" in sys.argv:
    send("greeting\r"); assert read_until("hello from the script"), out
    assert read_until("tick"), out   # a timer of the script runs on at the prompt
# Each line is typed once its prompt shows, as a person would; one is typed
# ahead on purpose (x), and must wait in the terminal for its turn.
send("1 + 1\r"); assert read_until("2\r\n"), out
assert prompt(), out
send("x = tide.sleep(0.1):await() or 'slept'\r"); send("x\r"); assert read_until("\rslept\r\n"), out
assert prompt(), out
send("\x1b[A\r")                             # up arrow: x again
end = time.time() + 5
while out.count(b"\rslept\r\n") < 2 and time.time() < end: read_until("\0", 0.1)
assert out.count(b"\rslept\r\n") >= 2, out
assert prompt(), out
send("tide.sleep(30):await()\r"); time.sleep(0.3); send("\x03"); assert read_until("interrupted"), out
assert prompt(), out
send("for i = 1,\r"); assert read_until(">> "), out
send("2 do print('loop', i) end\r"); assert read_until("loop\t2"), out
assert prompt(), out
send("half a line"); assert read_until("half a line"), out
send("\x03"); assert prompt(), out                  # Ctrl-C at the prompt drops the line
send("3 * 3\r"); assert read_until("9\r\n"), out
assert prompt(), out
send("\x04")
_, status = os.waitpid(pid, 0)
assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
print("repl ok")
