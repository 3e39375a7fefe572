"""Every shell command README.md and the pages under docs/ show runs, or is listed as long in
the one list (docs/how-it-is-built.md, "What the tests run of these pages").

The commands are read from the documents at test time, so a command someone edits is the
command that runs:
  * fenced blocks without a language whose first line is a command (`minirnn ...`,
    `python ...`, or `$ ...` lines followed by the output the document shows for them);
  * inline code spans that are a whole command (`minirnn train hihell`, possibly wrapped
    over two lines).
A command is skipped when it is in the list "Long: not run in CI" (between the markers
<!-- not-run-in-ci --> and <!-- /not-run-in-ci -->; an entry ending in " ..." covers every
command that starts with it), or when it is a pattern with a placeholder in capitals
(`python parity/make_refs.py --cell NAME`).

Each command runs in its own temporary directory (benchmarks/, docs/, examples/ and parity/
linked in, for the commands that read them), through bash, with the environment's `python`
and `minirnn` first on PATH; two at a time (the CI machine has two cores); a command shown by
several documents runs once. Checked for each: exit code 0; every file it is told to write
(-o, --out, --render, --heatmap, --json, --plot) exists and is not empty; the output its
document shows for it (a `$` block's lines, in order, "..." skipped; the backticked results
of its row in a table of that document) appears in its output.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PROGRAMS = ("minirnn", "python", "python3")
OUTPUT_FLAGS = ("-o", "--out", "--render", "--heatmap", "--json", "--plot")
LINKED = ("benchmarks", "docs", "examples", "parity")   # read by commands as repository paths
TIMEOUT_S = 240
# what each kind of command prints when it worked, beyond its exit code
SAYS = {
    "minirnn parity": re.compile(r"\b(\d+)/\1 passed\b"),
    "minirnn gradcheck": re.compile(r"\bPASS"),
    "python benchmarks/targets.py": re.compile(r"target\(s\) missed"),
}


@dataclass(frozen=True)
class Command:
    text: str              # the command line, whitespace normalised
    line: int              # where its document shows it (1-based)
    shown: tuple = ()      # output lines the document shows for it ("$" blocks)
    doc: str = ""          # the document, relative to the repository


def _strip_comment(line):
    """Drop a trailing `# comment` that lies outside quotes."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def _program(command):
    """The program a command line starts with, past any VAR=value prefixes."""
    for word in command.split():
        if "=" not in word:
            return word
    return ""


def _is_command(text):
    """A program and at least one argument: `minirnn step`, not a bare `python`."""
    words = text.split()
    return _program(text) in PROGRAMS and words[-1] != _program(text)


def _long_region(lines):
    """(first, last) line indices of a document's not-run list, or None."""
    try:
        start = next(i for i, s in enumerate(lines) if "<!-- not-run-in-ci -->" in s)
        end = next(i for i, s in enumerate(lines) if "<!-- /not-run-in-ci -->" in s)
    except StopIteration:
        return None
    return start, end


def readme_commands(text, doc=""):
    """Every command a document shows, in order of appearance (repeats once, at the first)."""
    lines = text.splitlines()
    region = _long_region(lines)
    found, prose = [], []
    in_fence, fence, info = False, [], ""
    for no, line in enumerate(lines, 1):
        if line.startswith("```"):
            if in_fence:
                found.extend(_fence_commands(fence, info, doc))
                in_fence = False
            else:
                in_fence, fence, info = True, [], line[3:].strip()
            prose.append("")                                 # keep line numbers
            continue
        if in_fence:
            fence.append((no, line))
            prose.append("")
        elif region and region[0] <= no - 1 <= region[1]:
            prose.append("")                                 # the list names, it does not show
        else:
            prose.append(line)
    body = "\n".join(prose)
    for m in re.finditer(r"`([^`]+)`", body):
        span = " ".join(m.group(1).split())
        if _is_command(span):
            found.append(Command(span, body.count("\n", 0, m.start()) + 1, doc=doc))
    seen, unique = set(), []
    for c in sorted(found, key=lambda c: c.line):
        if c.text not in seen:
            seen.add(c.text)
            unique.append(c)
    return unique


def _fence_commands(fence, info, doc=""):
    if info or not fence:                       # a language tag: code, not shell commands
        return []
    if any(line.startswith("$ ") for _, line in fence):
        out, current = [], None
        for no, line in fence:
            if line.startswith("$ "):
                current = [no, _strip_comment(line[2:]), []]
                out.append(current)
            elif current is not None:
                current[2].append(line.rstrip())
        return [Command(" ".join(c.split()), no, tuple(shown), doc) for no, c, shown in out]
    first = next((line for _, line in fence if line.strip()), "")
    if not _is_command(first.strip()):
        return []                               # printed output (an environment header, ...)
    return [Command(" ".join(_strip_comment(line).split()), no, doc=doc) for no, line in fence
            if _strip_comment(line).strip()]


def long_entries(text):
    """The commands (or prefixes, ending in " ...") listed as "Long: not run in CI"."""
    lines = text.splitlines()
    region = _long_region(lines)
    if region is None:
        return []
    chunk = "\n".join(lines[region[0]:region[1] + 1])
    return [" ".join(s.split()) for s in re.findall(r"`([^`]+)`", chunk)
            if _is_command(" ".join(s.split()))]


def is_listed(command, entries):
    for e in entries:
        if e.endswith(" ..."):
            prefix = e[:-4]
            if command == prefix or command.startswith(prefix + " "):
                return True
        elif command == e:
            return True
    return False


def is_pattern(command):
    """A placeholder in capitals (NAME, N, PATH) makes a command a pattern."""
    try:
        words = shlex.split(command)
    except ValueError:
        return False
    return any(re.fullmatch(r"[A-Z][A-Z_]*", w) for w in words)


def output_paths(command):
    """The files a command is told to write, from its own flags."""
    paths = []
    for part in command.split("&&"):
        try:
            words = shlex.split(part.split("|")[-1])
        except ValueError:
            continue
        paths += [words[i + 1] for i, w in enumerate(words[:-1]) if w in OUTPUT_FLAGS]
    return paths


def table_results(text, command):
    """Backticked values in the result cell of a table row (of one document) whose command is
    `command`."""
    values = []
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        for k, cell in enumerate(cells[:-1]):
            if cell == f"`{command}`":
                values += re.findall(r"`([^`]+)`", cells[-1])
    return values


def needs_torch(command):
    return command.startswith("minirnn parity") and "--frozen" not in command


TEXTS = {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in DOCUMENTS}


def _all_commands():
    """Every document's commands; one shown by several documents counts at its first."""
    seen, out = set(), []
    for doc, text in TEXTS.items():
        for c in readme_commands(text, doc):
            if c.text not in seen:
                seen.add(c.text)
                out.append(c)
    return out


COMMANDS = _all_commands()
LONG = [e for text in TEXTS.values() for e in long_entries(text)]
RUN = [c for c in COMMANDS if not is_listed(c.text, LONG) and not is_pattern(c.text)]


def _run(command, workdir):
    workdir.mkdir(parents=True)
    for name in LINKED:
        (workdir / name).symlink_to(ROOT / name, target_is_directory=True)
    env = dict(os.environ, MPLBACKEND="Agg",
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    try:
        return subprocess.run(["bash", "-o", "pipefail", "-c", command.text], cwd=workdir,
                              env=env, capture_output=True, text=True, timeout=TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:          # its output is bytes even with text=True
        out = (e.stdout or b"").decode(errors="replace")
        return subprocess.CompletedProcess(e.cmd, -1, out, f"timed out after {TIMEOUT_S} s")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Every command to run, two at a time -> {command text: (CompletedProcess, workdir)}."""
    base = tmp_path_factory.mktemp("readme-commands")
    no_torch = importlib.util.find_spec("torch") is None
    todo = [c for c in RUN if not (needs_torch(c.text) and no_torch)]
    dirs = {c.text: base / f"cmd{k}" for k, c in enumerate(todo)}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {c.text: pool.submit(_run, c, dirs[c.text]) for c in todo}
        return {text: (f.result(), dirs[text]) for text, f in futures.items()}


@pytest.mark.parametrize("command", RUN, ids=[c.text[:60] for c in RUN])
def test_readme_command_runs(command, results):
    if needs_torch(command.text) and importlib.util.find_spec("torch") is None:
        pytest.skip("needs torch (pip install -e '.[torch]')")
    res, workdir = results[command.text]
    out = (res.stdout or "") + (res.stderr or "")
    where = f"{command.doc} line {command.line}: {command.text}\n--- output ---\n{out[-3000:]}"
    assert res.returncode == 0, f"exit code {res.returncode}\n{where}"
    for path in output_paths(command.text):
        p = workdir / path
        assert p.exists() and (p.is_dir() or p.stat().st_size > 0), f"{path} not written\n{where}"
    for prefix, pattern in SAYS.items():
        if command.text.startswith(prefix):
            assert pattern.search(out), f"expected {pattern.pattern!r} in the output\n{where}"
    shown = [s for s in command.shown if s.strip() and s.strip() != "..."]
    got, k = [line.rstrip() for line in res.stdout.splitlines()], 0
    for s in shown:                           # its lines, in order (others may lie between)
        while k < len(got) and got[k] != s:
            k += 1
        assert k < len(got), f"{command.doc} shows {s!r}; not found in order in the output\n{where}"
        k += 1
    for value in table_results(TEXTS[command.doc], command.text):
        assert value in out, f"{command.doc}'s table says {value!r}; not in the output\n{where}"


# ---- the extraction itself -----------------------------------------------------------------------
def test_every_long_entry_names_a_command():
    """The list holds only commands the documents show: a stale entry would hide nothing, or
    a typo would leave a long command to run in CI."""
    assert LONG, "no document has a <!-- not-run-in-ci --> list"
    lists = [doc for doc, text in TEXTS.items() if long_entries(text)]
    assert lists == ["docs/how-it-is-built.md"], f"one not-run list, in how-it-is-built: {lists}"
    for entry in LONG:
        assert any(is_listed(c.text, [entry]) for c in COMMANDS), \
            f"the not-run list names {entry!r}, which no document shows"


def test_the_fast_commands_are_run():
    """The commands the documents promise to work in seconds are among those run."""
    run = [c.text for c in RUN]
    for prefix in ("minirnn parity --frozen", "minirnn train hihell", "minirnn gradcheck",
                   "minirnn study gradflow", "minirnn explore --example char"):
        assert any(r.startswith(prefix) for r in run), (prefix, run)
    assert any("| minirnn step" in r and c.shown for r, c in zip(run, RUN)), run


_SAMPLE = """intro `minirnn train hihell` and `minirnn.trace(model)` and `python
benchmarks/x.py --a 1`

```
minirnn bench --quick     # a comment
python3 -m venv .venv && pip install -e ".[all]"
```

```
machine: not a command
```

```python
minirnn.trace(x)
```

```
$ printf 'q\\n' | minirnn step   # the # in quotes '#' stays
first line
...
last line
```

| tutorial | command | result |
|---|---|---|
| hihell | `minirnn train hihell` | prints `ihello` (exact) |

<!-- not-run-in-ci -->
- `minirnn bench ...`, `python3 -m venv .venv ...`
<!-- /not-run-in-ci -->
`python parity/make_refs.py --cell NAME`
"""


def test_extraction_on_a_sample():
    cmds = readme_commands(_SAMPLE)
    texts = [c.text for c in cmds]
    assert texts == ["minirnn train hihell", "python benchmarks/x.py --a 1",
                     "minirnn bench --quick", 'python3 -m venv .venv && pip install -e ".[all]"',
                     "printf 'q\\n' | minirnn step", "python parity/make_refs.py --cell NAME"]
    step = cmds[4]
    assert step.shown == ("first line", "...", "last line")
    entries = long_entries(_SAMPLE)
    assert entries == ["minirnn bench ...", "python3 -m venv .venv ..."]
    run = [c.text for c in cmds if not is_listed(c.text, entries) and not is_pattern(c.text)]
    assert run == ["minirnn train hihell", "python benchmarks/x.py --a 1",
                   "printf 'q\\n' | minirnn step"]
    assert table_results(_SAMPLE, "minirnn train hihell") == ["ihello"]
    assert output_paths("minirnn explore --example char -o e.html && minirnn x --out d") == \
        ["e.html", "d"]
    assert not is_listed("minirnn benchmark", ["minirnn bench ..."])
