#!/usr/bin/env python3
"""ai-sessions toolbox: Claude Code's file tools (Read, Write, Edit, Glob, Grep), run by the
engine as the `claude` user via `docker exec -i SANDBOX python3 /opt/ai-sessions/toolbox.py`,
so the container confines every file access. Standard library only.

stdin: {"tool": ..., "input": {...}, "max_output_bytes": 30000}   (one JSON object)
stdout: {"ok": true, "content": ...} or {"ok": false, "error": ...}; exit 0 unless it crashes.
"""
import bisect
import json
import os
import re
import sys

WORKSPACE = os.environ.get("AI_SESSIONS_WORKSPACE", "/workspace")
DEFAULT_MAX_OUTPUT = 30000
READ_DEFAULT_LIMIT = 2000
MAX_LINE_CHARS = 2000
GLOB_MAX_RESULTS = 1000
GREP_MAX_FILE_BYTES = 64 * 1024 * 1024
SNIFF_BYTES = 8192
SKIP_DIRS = {".git"}
GREP_MODES = ("files_with_matches", "content", "count")
JSON_TYPES = {dict: "an object", list: "an array", str: "a string", int: "an integer",
              float: "a number", bool: "a boolean", type(None): "null"}

class ToolError(Exception):
    """A problem reported to the model as {"ok": false, "error": ...}."""

_REQUIRED = object()

def field(obj, name, kind, default=_REQUIRED):
    value = obj.get(name)
    if value is None:
        if default is _REQUIRED:
            raise ToolError(f"missing required field '{name}'")
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ToolError(f"field '{name}' must be {JSON_TYPES[kind]}, "
                        f"got {JSON_TYPES.get(type(value), type(value).__name__)}")
    return value

def count_field(obj, name, default, minimum=0):
    value = field(obj, name, int, default)
    if value < minimum:
        raise ToolError(f"field '{name}' must be >= {minimum}, got {value}")
    return value

def resolve(path):
    if not path or "\0" in path:
        raise ToolError("path must be non-empty and must not contain NUL characters")
    return os.path.normpath(os.path.join(WORKSPACE, path))

def require_file(path):
    if not os.path.exists(path):
        raise ToolError(f"File does not exist: {path}")
    if os.path.isdir(path):
        raise ToolError(f"{path} is a directory, not a file (use Glob, or ls via Bash, to list it)")

def is_binary(chunk):
    return b"\0" in chunk[:SNIFF_BYTES]

def clip_line(line):
    return line if len(line) <= MAX_LINE_CHARS else line[:MAX_LINE_CHARS] + " [line truncated]"

def decode_line(raw):
    raw = raw[:-1] if raw.endswith(b"\n") else raw
    raw = raw[:-1] if raw.endswith(b"\r") else raw
    return raw.decode("utf-8", "replace")

def mtime(path):
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0

GLOB_TOKENS = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}

def glob_to_regex(pattern):
    """Translate a glob (*, ?, [..], **, {a,b}) into a compiled regex over '/'-separated paths."""
    out, braces = [], 0
    for tok in re.findall(r"\*\*/?|\*|\?|\[[^\]]+\]|[{},]|[^*?\[{},]+|.", pattern):
        if tok in GLOB_TOKENS:
            out.append(GLOB_TOKENS[tok])
        elif len(tok) > 2 and tok[0] == "[":
            body = tok[1:-1].replace("\\", "\\\\")
            out.append("[" + ("^" + body[1:] if body[0] == "!" else body) + "]")
        elif tok == "{" or (tok in ",}" and braces):
            braces += {"{": 1, ",": 0, "}": -1}[tok]
            out.append({"{": "(?:", ",": "|", "}": ")"}[tok])
        else:
            out.append(re.escape(tok))
    if braces:
        raise ToolError(f"invalid glob pattern {pattern!r}: unclosed '{{'")
    try:
        return re.compile("".join(out))
    except re.error as e:
        raise ToolError(f"invalid glob pattern {pattern!r}: {e}")

def split_literal_prefix(pattern):
    """'src/lib/**/*.ts' -> ('src/lib', '**/*.ts'): walk only below the literal part."""
    parts = pattern.split("/")
    k = 0
    while k < len(parts) - 1 and not re.search(r"[*?\[{]", parts[k]):
        k += 1
    return "/".join(parts[:k]) or ("/" if pattern.startswith("/") else ""), "/".join(parts[k:])

def walk_files(base, max_depth=None):
    """Yield (relative path, full path) for files under base, skipping .git; sorted."""
    for root, dirs, files in os.walk(base):
        rel_root = os.path.relpath(root, base)
        depth = 0 if rel_root == "." else rel_root.count(os.sep) + 1
        dirs[:] = [] if max_depth is not None and depth >= max_depth else \
            sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in sorted(files):
            rel = name if rel_root == "." else os.path.join(rel_root, name)
            yield rel, os.path.join(root, name)

def tool_read(inp):
    path = resolve(field(inp, "file_path", str))
    offset = max(count_field(inp, "offset", 1), 1)
    limit = count_field(inp, "limit", READ_DEFAULT_LIMIT, minimum=1)
    require_file(path)
    with open(path, "rb") as f:
        if is_binary(f.read(SNIFF_BYTES)):
            raise ToolError(f"{path} is a binary file (it contains NUL bytes); it cannot be shown as text")
        f.seek(0)
        shown, total = [], 0
        for total, raw in enumerate(f, 1):
            if offset <= total < offset + limit:
                shown.append(f"{total:>6}\t{clip_line(decode_line(raw))}")
    if total == 0:
        return f"(The file {path} exists but is empty.)"
    if not shown:
        return f"(The file {path} has {total} lines; offset {offset} is past its end.)"
    last = offset + len(shown) - 1
    if last < total:
        shown.append(f"[showing lines {offset}-{last} of {total}; use offset/limit to read more]")
    return "\n".join(shown)

def write_bytes(path, text):
    data = text.encode("utf-8")
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    except FileExistsError:
        raise ToolError(f"cannot create {path}: one of its parent paths is a file, not a directory")
    with open(path, "wb") as f:
        f.write(data)
    return len(data)

def tool_write(inp):
    path = resolve(field(inp, "file_path", str))
    content = field(inp, "content", str)
    if os.path.isdir(path):
        raise ToolError(f"{path} is a directory, not a file")
    existed = os.path.exists(path)
    size = write_bytes(path, content)
    return f"{'Overwrote' if existed else 'Created'} {path} ({size} bytes)"

def tool_edit(inp):
    path = resolve(field(inp, "file_path", str))
    old, new = field(inp, "old_string", str), field(inp, "new_string", str)
    replace_all = field(inp, "replace_all", bool, False)
    if old == new:
        raise ToolError("old_string and new_string are identical; there is nothing to change")
    if old == "" and not os.path.exists(path):  # Claude Code: empty old_string creates the file
        return f"Created {path} ({write_bytes(path, new)} bytes)"
    require_file(path)
    with open(path, "rb") as f:
        data = f.read()
    if is_binary(data):
        raise ToolError(f"{path} is a binary file; Edit only changes text files")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ToolError(f"{path} is not valid UTF-8 text; Edit cannot change it safely")
    if old == "":
        raise ToolError(f"old_string is empty but {path} already exists; give the text to replace")
    count = text.count(old)
    if count == 0:
        raise ToolError(f"old_string was not found in {path} (it must match exactly, "
                        "including whitespace and indentation)")
    if count > 1 and not replace_all:
        raise ToolError(f"old_string occurs {count} times in {path}; add surrounding context to "
                        "make it unique, or set replace_all to true to replace every occurrence")
    write_bytes(path, text.replace(old, new, -1 if replace_all else 1))
    n = count if replace_all else 1
    return f"Edited {path}: {n} replacement{'s' if n != 1 else ''}"

def tool_glob(inp):
    pattern = field(inp, "pattern", str)
    root = resolve(field(inp, "path", str, WORKSPACE))
    if not pattern:
        raise ToolError("pattern must not be empty")
    if not os.path.isdir(root):
        raise ToolError(f"Directory does not exist: {root}")
    prefix, rest = split_literal_prefix(pattern)
    base = os.path.normpath(os.path.join(root, prefix))
    rx = glob_to_regex(rest)
    max_depth = None if "**" in rest else rest.count("/")
    found = [full for rel, full in walk_files(base, max_depth) if rx.fullmatch(rel)]
    if not found:
        return "No files found"
    found.sort(key=mtime, reverse=True)
    note = ""
    if len(found) > GLOB_MAX_RESULTS:
        note = f"\n[{len(found)} files matched; showing the {GLOB_MAX_RESULTS} newest. Use a narrower pattern or path]"
    return "\n".join(found[:GLOB_MAX_RESULTS]) + note

def grep_candidates(target, file_glob):
    if os.path.isfile(target):
        return [target]
    if not os.path.isdir(target):
        raise ToolError(f"Path does not exist: {target}")
    rx = glob_to_regex(file_glob) if file_glob else None
    return [full for rel, full in walk_files(target)
            if rx is None or rx.fullmatch(rel if "/" in file_glob else os.path.basename(rel))]

def matching_lines(rx, text, multiline):
    lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    if text.endswith("\n"):
        lines.pop()
    if not multiline:
        return lines, [i for i, line in enumerate(lines) if rx.search(line)]
    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    hits = set()
    for m in rx.finditer(text):
        first = bisect.bisect_right(starts, m.start()) - 1
        last = bisect.bisect_right(starts, max(m.end() - 1, m.start())) - 1
        hits.update(i for i in range(first, last + 1) if i < len(lines))
    return lines, sorted(hits)

def content_lines(path, lines, hits, before, after, numbers):
    hit_set, out, prev = set(hits), [], None
    shown = sorted({j for i in hits for j in range(max(i - before, 0), min(i + after, len(lines) - 1) + 1)})
    for i in shown:
        if prev is not None and i != prev + 1:
            out.append("--")
        sep = ":" if i in hit_set else "-"
        out.append(f"{path}{sep}{i + 1}{sep}{clip_line(lines[i])}" if numbers
                   else f"{path}{sep}{clip_line(lines[i])}")
        prev = i
    return out

def load_text(path, too_big):
    """A file's text for searching; None for binary, unreadable or oversized files."""
    try:
        if os.path.getsize(path) > GREP_MAX_FILE_BYTES:
            too_big.append(path)
            return None
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    return None if is_binary(data) else data.decode("utf-8", "replace")

def compile_regex(pattern, ignore_case, multiline):
    flags = (re.IGNORECASE if ignore_case else 0) | (re.DOTALL | re.MULTILINE if multiline else 0)
    try:
        return re.compile(pattern, flags)
    except re.error as e:
        raise ToolError(f"invalid regex {pattern!r}: {e}")

def grep_report(out, mode, head, too_big):
    note = f"\n[skipped {len(too_big)} files over {GREP_MAX_FILE_BYTES} bytes]" if too_big else ""
    if not out:
        return ("No files found" if mode == "files_with_matches" else "No matches found") + note
    if head and len(out) > head:
        note = f"\n[head_limit {head}: showing {head} of {len(out)} results]" + note
    return "\n".join(out[:head or None]) + note

def tool_grep(inp):
    target = resolve(field(inp, "path", str, WORKSPACE))
    file_glob = field(inp, "glob", str, None)
    mode = field(inp, "output_mode", str, "files_with_matches")
    if mode not in GREP_MODES:
        raise ToolError(f"field 'output_mode' must be one of {', '.join(GREP_MODES)}; got {mode!r}")
    multiline = field(inp, "multiline", bool, False)
    rx = compile_regex(field(inp, "pattern", str), field(inp, "-i", bool, False), multiline)
    context = count_field(inp, "-C", 0)
    before, after = count_field(inp, "-B", context), count_field(inp, "-A", context)
    numbers, head = field(inp, "-n", bool, True), count_field(inp, "head_limit", 0)
    out, matched, too_big = [], [], []
    for path in grep_candidates(target, file_glob):
        text = load_text(path, too_big)
        lines, hits = matching_lines(rx, text, multiline) if text else ([], [])
        if not hits:
            continue
        matched.append(path)
        if mode == "count":
            out.append(f"{path}:{len(hits)}")
        elif mode == "content":
            if out and (before or after):
                out.append("--")
            out.extend(content_lines(path, lines, hits, before, after, numbers))
    if mode == "files_with_matches":
        out = sorted(matched, key=mtime, reverse=True)
    return grep_report(out, mode, head, too_big)

TOOLS = {"Read": tool_read, "Write": tool_write, "Edit": tool_edit, "Glob": tool_glob, "Grep": tool_grep}

def truncate(text, limit):
    data = text.encode("utf-8", "replace")  # "replace": lone surrogates from odd file names
    if len(data) <= limit:
        return data.decode("utf-8")
    shown = data[:max(limit - 100, 0)].decode("utf-8", "ignore")  # drops a split last character
    return shown + f"\n[output truncated: {len(shown.encode('utf-8'))} of {len(data)} bytes shown]"

def handle(raw):
    try:
        request = json.loads(raw)
    except ValueError as e:
        raise ToolError(f"malformed JSON request: {e}")
    if not isinstance(request, dict):
        raise ToolError("the request must be a JSON object")
    tool = field(request, "tool", str)
    if tool not in TOOLS:
        raise ToolError(f"unknown tool {tool!r}; expected one of {', '.join(TOOLS)}")
    tool_input = field(request, "input", dict)
    limit = count_field(request, "max_output_bytes", DEFAULT_MAX_OUTPUT, minimum=1)
    return truncate(TOOLS[tool](tool_input), limit)

def main():
    try:
        reply = {"ok": True, "content": handle(sys.stdin.buffer.read())}
    except ToolError as e:
        reply = {"ok": False, "error": str(e)}
    except OSError as e:  # permission denied, read-only file system, not a directory, ...
        reply = {"ok": False, "error": f"{e.strerror}: {e.filename}" if e.filename else str(e)}
    except ValueError as e:  # e.g. text with lone surrogates that cannot be encoded as UTF-8
        reply = {"ok": False, "error": f"invalid input: {e}"}
    sys.stdout.write(json.dumps(reply) + "\n")


if __name__ == "__main__":
    main()
