#!/usr/bin/env python3
"""The terminal of an emulator session: `make run GUEST=linux`.

usage: console.py --log FILE [--name NAME] [--timeout S] [--emulator-log FILE]
                  -- COMMAND...

Listens on a free TCP port of 127.0.0.1 (the kernel picks it, so two sessions
never collide), then starts COMMAND in a process group of its own with the
port in the environment (MICROHV_CONSOLE_PORT) and in place of @PORT@ in its
arguments. The emulator's COM1 connects to that port (Bochs: com1 mode
socket-client; QEMU: -serial tcp:127.0.0.1:PORT). This program is the other
end of that serial line:

- What the guest sends is written to the terminal as it arrives, unbuffered,
  and to FILE (plain text). Until the guest's shell starts, carriage returns
  and the firmware's escape sequences are removed; from then on bytes pass
  through untouched, so the shell's line editing works.
- The terminal is in raw mode: each key goes to the guest as typed and only
  the guest echoes it (each typed line appears once).
- While the machine boots, a status line says which stage it is in and how
  long it has been running whenever the guest has been quiet for a few
  seconds.
- Ctrl-] ends the session at any time; Ctrl-C ends it until the guest's shell
  is up, and from then on goes to the guest (it interrupts the command
  running there). SIGINT, SIGTERM and SIGHUP end it too.
- However the session ends, the emulator's process group gets SIGHUP (Bochs'
  term display quits on it; timeout(1) passes it on), then SIGKILL; the
  emulator also gets SIGHUP should this program die (PR_SET_PDEATHSIG).

Exit status: 0 when the guest powered the machine off, 130 when the user
ended the session (128 + N for signal N), 124 on --timeout, 1 when the
emulator ended or failed without a power-off.
"""

import argparse
import ctypes
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import termios
import time
import tty

CTRL_C = 0x03
CTRL_RIGHT_BRACKET = 0x1D
QUIET_BEFORE_STATUS = 4.0  # seconds of guest silence before a status line
STATUS_EVERY = 5.0

# Escape sequences OVMF draws its screen with: CSI sequences, charset
# selection, and the two-byte ones.
ESCAPE = re.compile(rb"\x1b(?:\[[0-9;=?]*[A-Za-z]|[()][0-9A-Za-z]|[=>78cDEHM])")
ESCAPE_PREFIX = re.compile(rb"\x1b(?:\[[0-9;=?]*|[()])?\Z")

# Boot stages, recognised from the guest's lines: (pattern, stage named from
# then on). The last one to match names the current stage.
STAGES = [
    (re.compile(rb"^microhv \d+\.\d+"), "microhv: taking over the machine"),
    (re.compile(rb"^microhv: starting next stage"),
     "Linux kernel booting (quiet console: little shows until /init)"),
    (re.compile(rb"^linux-guest: uptime"), "Linux /init: checking Hyper-V and VMBus"),
    (re.compile(rb"^linux-guest: \d+ passed, \d+ failed"), "Linux /init: starting the shell"),
    (re.compile(rb"^microhv: returning to firmware"), "firmware (microhv did not start Linux: see above)"),
]
FIRST_STAGE = "firmware (OVMF) starting"
SHELL_STARTED = re.compile(rb"^linux-guest: NOTE .*starting a shell")
SHELL_ENDED = re.compile(rb"^linux-guest: shell ended \(([^)]*)\)")
POWERING_OFF = re.compile(rb"^linux-guest: powering off")


class SessionEnd(Exception):
    def __init__(self, status, reason):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def on_signal(signum, _frame):
    raise SessionEnd(128 + signum, f"stopped by {signal.Signals(signum).name}")


def die_with_parent():
    """In the child: SIGHUP when the console dies (the emulator must not outlive it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_PDEATHSIG = 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGHUP)


def fmt_elapsed(seconds):
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"


class Console:
    def __init__(self, args):
        self.args = args
        self.name = args.name
        self.start = time.monotonic()
        self.stdin_tty = os.isatty(0)
        self.stdout_tty = os.isatty(1)
        self.saved_tty = None
        self.log = open(args.log, "wb", buffering=0)
        self.trace_file = open(args.trace, "w", buffering=1) if args.trace else None
        self.child = None
        self.conn = None
        self.pending = b""  # an escape sequence cut at the end of a chunk
        self.line = b""  # the current line, as plain text
        self.last_line = b""
        self.stage = FIRST_STAGE
        self.shell = False  # the guest's shell is up: bytes pass through
        self.shell_status = None
        self.powering_off = False
        self.last_output = self.start
        self.last_status = 0.0
        self.status_shown = False
        self.at_line_start = True

    def trace(self, event):
        """One line per session event, seconds since the start."""
        if self.trace_file:
            self.trace_file.write(f"{time.monotonic() - self.start:8.3f} {event}\n")

    # ------------------------------------------------------------ terminal
    def out(self, data):
        if self.status_shown:
            data = b"\r\x1b[K" + data
            self.status_shown = False
        os.write(1, data)
        self.at_line_start = data.endswith(b"\n")

    def say(self, text):
        """A line of this program's own, on a line of its own."""
        prefix = b"" if self.at_line_start or self.status_shown else b"\n"
        self.out(prefix + f"{self.name}: {text}\n".encode())

    def raw_mode(self):
        """Keys go to the guest one by one, not echoed, no signals from
        Ctrl-C/Ctrl-Z/Ctrl-\\; output processing (\\n -> \\r\\n) stays on."""
        if not self.stdin_tty:
            return
        self.saved_tty = termios.tcgetattr(0)
        mode = termios.tcgetattr(0)
        mode[tty.IFLAG] &= ~(termios.BRKINT | termios.ICRNL | termios.INPCK
                             | termios.ISTRIP | termios.IXON)
        mode[tty.LFLAG] &= ~(termios.ECHO | termios.ICANON | termios.IEXTEN | termios.ISIG)
        mode[tty.CC][termios.VMIN] = 1
        mode[tty.CC][termios.VTIME] = 0
        termios.tcsetattr(0, termios.TCSAFLUSH, mode)

    def restore_terminal(self):
        if self.saved_tty is not None:
            termios.tcsetattr(0, termios.TCSAFLUSH, self.saved_tty)
            self.saved_tty = None

    # ------------------------------------------------------------ guest output
    def plain(self, data):
        """data without escape sequences and carriage returns (boot stage)."""
        data = self.pending + data
        self.pending = b""
        cut = ESCAPE_PREFIX.search(data[-16:])
        if cut:
            keep = len(data) - 16 + cut.start() if len(data) > 16 else cut.start()
            data, self.pending = data[:keep], data[keep:]
        return ESCAPE.sub(b"", data).replace(b"\r", b"")

    def guest_output(self, data):
        text = self.plain(data)
        self.log.write(text)
        shown = data if self.shell else text
        if shown:
            self.out(shown)
            self.last_output = time.monotonic()
        for byte_line in (self.line + text).split(b"\n")[:-1]:
            self.guest_line(byte_line)
        self.line = (self.line + text).rsplit(b"\n", 1)[-1][-4096:]

    def guest_line(self, line):
        if line.strip():
            self.last_line = line.strip()
        for pattern, stage in STAGES:
            if pattern.search(line) and stage != self.stage:
                self.stage = stage
                self.trace(f"stage: {stage}")
        if not self.shell and SHELL_STARTED.search(line):
            self.shell = True
            self.trace("shell started")
            self.say("the guest's shell is up. `exit` or `poweroff` powers the machine off and "
                     "ends the session; Ctrl-] leaves at once; Ctrl-C goes to the guest. "
                     f"Try: dmesg | grep -i vmbus. Serial log: {self.args.log}")
        match = SHELL_ENDED.search(line)
        if match:
            self.shell_status = match.group(1).decode(errors="replace")
        if POWERING_OFF.search(line):
            self.powering_off = True
            self.trace("guest: powering off")

    def status_line(self, now):
        """Shown while the guest is quiet, so the user sees it is alive."""
        if self.shell or now - self.last_output < QUIET_BEFORE_STATUS:
            return
        if now - self.last_status < STATUS_EVERY:
            return
        self.last_status = now
        last = self.last_line.decode(errors="replace")
        last = (last[:70] + "...") if len(last) > 73 else last
        text = f"{self.name}: [{fmt_elapsed(now - self.start)}] {self.stage}"
        if last:
            text += f"; last line: {last}"
        if self.stdout_tty:
            # One line, rewritten in place; the next guest output replaces it.
            if not self.at_line_start and not self.status_shown:
                os.write(1, b"\n")
            os.write(1, b"\r\x1b[K" + text.encode())
            self.status_shown = True
            self.at_line_start = False
        else:
            self.say(text[len(self.name) + 2:])

    # ------------------------------------------------------------ keyboard
    def keyboard(self, data):
        for byte in data:
            if byte == CTRL_RIGHT_BRACKET:
                raise SessionEnd(130, "left with Ctrl-]")
            if byte == CTRL_C and not self.shell:
                raise SessionEnd(130, "left with Ctrl-C while booting")
        if self.conn is not None:
            self.conn.sendall(data)

    # ------------------------------------------------------------ session
    def run(self):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        command = [a.replace("@PORT@", str(port)) for a in self.args.command]
        env = dict(os.environ, MICROHV_CONSOLE_PORT=str(port))
        emulator_out = open(self.args.emulator_log, "wb") if self.args.emulator_log else subprocess.DEVNULL
        self.raw_mode()
        self.trace(f"starting the emulator, port {port}")
        self.child = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL,
                                      stdout=emulator_out, stderr=subprocess.STDOUT,
                                      start_new_session=True, preexec_fn=die_with_parent)
        self.say(f"serial console on 127.0.0.1:{port}; Ctrl-] (or Ctrl-C while booting) "
                 f"ends the session; serial log: {self.args.log}")

        sel = selectors.DefaultSelector()
        sel.register(listener, selectors.EVENT_READ, "listener")
        try:
            sel.register(0, selectors.EVENT_READ, "keyboard")
        except (PermissionError, ValueError):  # a regular file or closed: no keyboard
            pass
        deadline = self.start + self.args.timeout
        while True:
            now = time.monotonic()
            if now > deadline:
                raise SessionEnd(124, f"timed out after {self.args.timeout} s")
            if self.child.poll() is not None and self.conn is None:
                raise SessionEnd(1, f"the emulator ended (status {self.child.returncode}) "
                                    "before it connected")
            for key, _ in sel.select(timeout=0.5):
                if key.data == "listener":
                    self.conn, _ = listener.accept()
                    self.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    sel.unregister(listener)
                    listener.close()
                    sel.register(self.conn, selectors.EVENT_READ, "guest")
                    self.trace("serial line connected")
                elif key.data == "guest":
                    data = self.conn.recv(65536)
                    if not data:
                        self.trace("serial line closed")
                        return self.emulator_ended()
                    self.guest_output(data)
                else:
                    data = os.read(0, 1024)
                    if not data:  # end of input: keep watching the guest
                        sel.unregister(0)
                    else:
                        self.keyboard(data)
            self.status_line(time.monotonic())

    def emulator_ended(self):
        try:
            self.child.wait(timeout=10)
            self.trace(f"emulator ended (status {self.child.returncode})")
        except subprocess.TimeoutExpired:
            pass
        if self.powering_off:
            status = "" if self.shell_status is None else f" (shell: {self.shell_status})"
            raise SessionEnd(0, f"the guest powered the machine off{status}")
        raise SessionEnd(1, f"the emulator ended (status {self.child.returncode}) without the guest "
                            f"saying it powers off (see {self.args.emulator_hint})")

    def stop_emulator(self):
        if self.child is None or self.child.poll() is not None:
            return
        for sig, grace in ((signal.SIGHUP, 5.0), (signal.SIGKILL, 5.0)):
            self.trace(f"stopping the emulator ({sig.name})")
            try:
                os.killpg(self.child.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.child.wait(timeout=grace)
                self.trace("emulator stopped")
                return
            except subprocess.TimeoutExpired:
                continue


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--log", required=True, help="serial log (plain text)")
    parser.add_argument("--name", default="console", help="prefix of this program's lines")
    parser.add_argument("--timeout", type=float, default=1800, help="session limit in seconds")
    parser.add_argument("--emulator-log", help="where the emulator's own output goes")
    parser.add_argument("--emulator-hint", default="the emulator's log",
                        help="where to look when the emulator fails")
    parser.add_argument("--trace", help="session events with their times (seconds)")
    parser.add_argument("command", nargs="+", help="the emulator command line")
    args = parser.parse_args()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    console = Console(args)
    end = SessionEnd(1, "ended unexpectedly")
    try:
        console.run()
    except SessionEnd as e:
        end = e
    finally:
        # Whatever happens from here on, the terminal and the emulator are
        # put right before this program goes.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        console.restore_terminal()
        console.stop_emulator()
    console.trace(f"session over: {end.reason}")
    elapsed = fmt_elapsed(time.monotonic() - console.start)
    console.say(f"session over after {elapsed}: {end.reason}; serial log: {args.log}")
    return end.status


if __name__ == "__main__":
    sys.exit(main())
