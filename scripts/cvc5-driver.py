#!/usr/bin/env python3
"""A `cvc5` executable over the PyPI `cvc5==1.3.1` wheel, for cedar-gate's policy analysis.

The wheel ships the cvc5 solver library and its Python API but no command-line
binary, while `cedar-policy-symcc` (behind `cedar-gate diff`, `access` and
`validate --prove`) runs a `cvc5` executable and speaks SMT-LIB 2 with it over
stdin / stdout. This driver is that executable: it reads commands from stdin, runs
each with cvc5's own parser (`InputParser` + `SymbolManager`), prints every result
and flushes, so the caller can read answers one by one.

`(reset)` is handled by starting a fresh solver and symbol manager (the parser's
symbol table lives in the symbol manager). Commands that print nothing are parsed in
one batch with the next one that answers. Accepted options: `--lang smt` (the only
language), `--tlimit=MS` and `--tlimit-per=MS` (time limit per check, in ms),
`--version`. Install: `make solver`, which copies it to `.venv/bin/cvc5`; see
docs/policy-review.md for other ways to get a cvc5 1.3.1.
"""

import sys

try:
    import cvc5
except ImportError:
    sys.stderr.write(
        "cvc5-driver: the Python module `cvc5` is missing; install it with "
        "`pip install cvc5==1.3.1` into the Python that runs this script\n"
    )
    sys.exit(2)

LANG = cvc5.InputLanguage.SMT_LIB_2_6


def parse_args(argv):
    tlimit = None
    it = iter(argv)
    for arg in it:
        if arg == "--version":
            print("This is cvc5 version %s (Python driver for cedar-gate)" % getattr(cvc5, "__version__", "?"))
            sys.exit(0)
        if arg == "--lang":
            lang = next(it, "")
            if lang not in ("smt", "smt2", "smtlib2.6", "smt2.6"):
                sys.stderr.write("cvc5-driver: only --lang smt is supported, got %r\n" % lang)
                sys.exit(2)
        elif arg.startswith("--lang="):
            pass
        elif arg.startswith("--tlimit=") or arg.startswith("--tlimit-per="):
            tlimit = arg.split("=", 1)[1]
        elif arg in ("-q", "--quiet", "--incremental"):
            pass
        else:
            sys.stderr.write("cvc5-driver: unsupported option %r\n" % arg)
            sys.exit(2)
    return tlimit


class Session:
    """One solver and symbol manager; replaced on `(reset)`."""

    def __init__(self, tlimit):
        self.tlimit = tlimit
        self.fresh()

    def fresh(self):
        tm = cvc5.TermManager()
        self.solver = cvc5.Solver(tm)
        if self.tlimit:
            self.solver.setOption("tlimit-per", self.tlimit)
        self.sm = cvc5.SymbolManager(tm)

    def run(self, text):
        parser = cvc5.InputParser(self.solver, self.sm)
        parser.setStringInput(LANG, text, "stdin")
        while True:
            cmd = parser.nextCommand()
            if cmd.isNull():
                return True
            if cmd.getCommandName() == "reset":
                # A batch ends at a command that answers, `(reset)` included, so
                # nothing follows it here.
                self.fresh()
                return True
            if cmd.getCommandName() == "exit":
                return False
            out = cmd.invoke(self.solver, self.sm)
            if out:
                sys.stdout.write(out if out.endswith("\n") else out + "\n")
                sys.stdout.flush()


def commands(stream):
    """Yields the text of each complete top-level S-expression read from `stream`."""
    buf = []
    depth = 0
    in_str = in_sym = False
    for line in stream:
        i = 0
        n = len(line)
        while i < n:
            c = line[i]
            if in_str:
                if c == '"':
                    if i + 1 < n and line[i + 1] == '"':
                        i += 1
                    else:
                        in_str = False
            elif in_sym:
                if c == "|":
                    in_sym = False
            elif c == ";":
                line = line[:i] + "\n"
                n = len(line)
                break
            elif c == '"':
                in_str = True
            elif c == "|":
                in_sym = True
            elif c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
                if depth == 0:
                    buf.append(line[: i + 1])
                    yield "".join(buf)
                    buf = []
                    line = line[i + 1 :]
                    n = len(line)
                    i = 0
                    continue
            i += 1
        if line.strip():
            buf.append(line)
    if "".join(buf).strip():
        yield "".join(buf)


# Commands that print nothing (without `:print-success`): they are parsed together
# with the next command that answers, one parser for the batch. A parser per
# command cost about as much as solving in a `cedar-gate diff`.
SILENT = frozenset(
    (
        "assert",
        "declare-const",
        "declare-datatype",
        "declare-datatypes",
        "declare-fun",
        "declare-sort",
        "define-fun",
        "define-sort",
        "set-info",
        "set-logic",
    )
)


def command_name(text):
    body = text.lstrip()
    if not body.startswith("("):
        return ""
    parts = body[1:].split(None, 1)
    return parts[0].rstrip(")") if parts else ""


def main():
    session = Session(parse_args(sys.argv[1:]))
    batch = []
    # With `:print-success` every command answers: no batching.
    print_success = False
    for text in commands(sys.stdin):
        batch.append(text)
        name = command_name(text)
        if name == "set-option" and "print-success" in text:
            print_success = "true" in text
        elif not print_success and (name in SILENT or name == "set-option"):
            continue
        try:
            if not session.run("".join(batch)):
                return 0
        except Exception as e:  # an SMT-LIB error, reported the way cvc5 does
            msg = str(e).replace('"', "'").replace("\n", " ")
            sys.stdout.write('(error "%s")\n' % msg)
            sys.stdout.flush()
        batch = []
    if batch:
        try:
            session.run("".join(batch))
        except Exception as e:
            msg = str(e).replace('"', "'").replace("\n", " ")
            sys.stdout.write('(error "%s")\n' % msg)
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
