#!/usr/bin/env python3
"""Generate Sources/HerdwatchAudit/Generated/Tables.swift from the system headers.

Herdwatch interprets Linux audit records: it turns syscall numbers into names
for three architectures, errno numbers into names, record type numbers into the
names audit userspace prints, and knows the AUDIT_ARCH_* values that tag each
SYSCALL record.  All of those tables are derived here from the C headers that
Debian packages install; nothing is typed in by hand, so running this script
again on the same packages reproduces the same file byte for byte.

Required Debian packages (install with apt-get, after `apt-get update`):

    linux-libc-dev   asm/unistd_64.h, asm/unistd_32.h, asm-generic/unistd.h,
                     asm-generic/errno-base.h, asm-generic/errno.h,
                     linux/audit.h, linux/elf-em.h
    libaudit-dev     libaudit.h (user-space record types such as USER_CMD)
    cpp              the C preprocessor (comes with gcc; libc6-dev provides
                     the libc headers that libaudit.h includes)

    apt-get install -y linux-libc-dev libaudit-dev cpp libc6-dev

How each table is produced (every header goes through `cpp -dD`, so
conditionals, #undef and include guards are honoured exactly as a compiler
would, and every #define is seen with the file it came from):

  * x86_64 syscalls: asm/unistd_64.h (numbers >= 512, the x32 compat range,
    would be dropped; 6.1 headers have none).
  * i386 syscalls: asm/unistd_32.h.
  * aarch64 syscalls: asm-generic/unistd.h, evaluated the way arm64's uapi
    <asm/unistd.h> does for 64-bit user space: __BITS_PER_LONG is 64 (via a
    stand-in <asm/bitsperlong.h>, the host's x86 one is never read) and
    __ARCH_WANT_RENAMEAT, __ARCH_WANT_NEW_STAT, __ARCH_WANT_SET_GET_RLIMIT,
    __ARCH_WANT_SYS_CLONE3 and __ARCH_WANT_MEMFD_SECRET are defined.  Aliases
    such as __NR_fcntl -> __NR3264_fcntl -> 25 are resolved.
    __NR_syscalls and __NR_arch_specific_syscall are not syscalls and are left out.
  * errno names: asm-generic/errno.h (which includes errno-base.h).  Names
    defined as another name (EWOULDBLOCK = EAGAIN, EDEADLOCK = EDEADLK) are
    aliases; the name defined as a number is the one kept.
  * audit record types: every AUDIT_<NAME> from linux/audit.h and libaudit.h
    whose value is in the message-type range 1000...2999, except range markers
    (any name with a FIRST or LAST component, e.g. AUDIT_FIRST_USER_MSG,
    AUDIT_INTEGRITY_LAST_MSG).  Where names still share a number, a name
    defined as a number beats one defined as another macro, then the one
    defined first (linux/audit.h is read before libaudit.h) wins; the generated
    file lists any such collision.
  * AuditArch: AUDIT_ARCH_X86_64, AUDIT_ARCH_I386 and AUDIT_ARCH_AARCH64 from
    linux/audit.h, evaluated from their EM_* | __AUDIT_ARCH_* expressions.

Before writing, the script checks a set of well-known values (execve, connect,
EACCES, SYSCALL=1300, ...) and refuses to write anything if one is wrong.

Usage:  scripts/gen-tables.py [--output PATH] [--check]

  --output PATH  where to write (default: Sources/HerdwatchAudit/Generated/Tables.swift
                 relative to the package root, i.e. the parent of this script's folder)
  --check        do not write; exit 1 if the file on disk differs from what
                 would be generated
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass

INCLUDE = "/usr/include"
MULTIARCH_INCLUDE = "/usr/include/x86_64-linux-gnu"

UNISTD_64 = f"{MULTIARCH_INCLUDE}/asm/unistd_64.h"
UNISTD_32 = f"{MULTIARCH_INCLUDE}/asm/unistd_32.h"
UNISTD_GENERIC = f"{INCLUDE}/asm-generic/unistd.h"
ERRNO_BASE = f"{INCLUDE}/asm-generic/errno-base.h"
ERRNO = f"{INCLUDE}/asm-generic/errno.h"
LINUX_AUDIT = f"{INCLUDE}/linux/audit.h"
ELF_EM = f"{INCLUDE}/linux/elf-em.h"
LIBAUDIT = f"{INCLUDE}/libaudit.h"

HEADERS = [UNISTD_64, UNISTD_32, UNISTD_GENERIC, ERRNO_BASE, ERRNO, LINUX_AUDIT, ELF_EM, LIBAUDIT]
PACKAGES = ["linux-libc-dev", "libaudit-dev"]

# What arm64's uapi <asm/unistd.h> defines before including <asm-generic/unistd.h>.
AARCH64_WANTS = [
    "__ARCH_WANT_RENAMEAT",
    "__ARCH_WANT_NEW_STAT",
    "__ARCH_WANT_SET_GET_RLIMIT",
    "__ARCH_WANT_SYS_CLONE3",
    "__ARCH_WANT_MEMFD_SECRET",
]
# __NR_* macros that are table bookkeeping, not syscalls.
NOT_SYSCALLS = {"syscalls", "arch_specific_syscall"}
# x32 compat syscalls live at 512 and up; they never belong in the x86_64 table.
X32_FIRST = 512

RECORD_TYPE_MIN, RECORD_TYPE_MAX = 1000, 2999
RANGE_MARKER = re.compile(r"(^|_)(FIRST|LAST)(_|$)")
# Families of AUDIT_* constants that are not message types; none may end up in the table.
NON_MESSAGE_FAMILIES = ("ARCH_", "FILTER_", "MAX_", "BITMASK_", "COMPARE_", "STATUS_", "NLGRP_")

SWIFT_NAME = re.compile(r"^[A-Za-z0-9_]+$")
LINE_LIMIT = 118


# --------------------------------------------------------------------------------------------
# Preprocessing


@dataclass
class Define:
    name: str
    body: str
    file: str  # real path of the header that defined it
    order: int  # position in the preprocessor's output


def preprocess(source: str, extra_args: list[str]) -> dict[str, Define]:
    """Run `cpp -dD` over `source`; return the object-like macros in force at the end."""
    cpp = os.environ.get("CPP", "cpp")
    try:
        proc = subprocess.run(
            [cpp, "-dD", "-x", "c", *extra_args, "-"],
            input=source,
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        sys.exit(f"gen-tables: '{cpp}' not found; apt-get install -y cpp")
    if proc.returncode != 0:
        sys.exit(f"gen-tables: {cpp} failed:\n{proc.stderr}")

    linemarker = re.compile(r'^# \d+ "([^"]*)"')
    define = re.compile(r"^#define ([A-Za-z_]\w*)(\(?)(.*)$")
    undef = re.compile(r"^#undef ([A-Za-z_]\w*)")
    macros: dict[str, Define] = {}
    current = ""
    for order, line in enumerate(proc.stdout.splitlines()):
        if m := linemarker.match(line):
            current = m.group(1)
            if current.startswith("/"):
                current = os.path.realpath(current)
        elif m := define.match(line):
            name, paren, body = m.groups()
            if paren:  # function-like macro: never a constant
                macros.pop(name, None)
                continue
            macros[name] = Define(name, body.strip(), current, order)
        elif m := undef.match(line):
            macros.pop(m.group(1), None)
    return macros


# --------------------------------------------------------------------------------------------
# Evaluating macro bodies as C integer constant expressions

TOKEN = re.compile(
    r"\s*(?:(?P<num>0[xX][0-9a-fA-F]+|\d+)[uUlL]*|(?P<id>[A-Za-z_]\w*)|(?P<op><<|>>|[()|&^~+\-*/%]))"
)
ALLOWED_NODES = (
    ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant,
    ast.BitOr, ast.BitAnd, ast.BitXor, ast.LShift, ast.RShift,
    ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod, ast.Invert, ast.USub, ast.UAdd,
)


class Evaluator:
    """Evaluates object-like macros to integers, following references to other macros."""

    def __init__(self, macros: dict[str, Define]):
        self.macros = macros
        self.cache: dict[str, int | None] = {}

    def value(self, name: str, _stack: tuple[str, ...] = ()) -> int | None:
        if name in self.cache:
            return self.cache[name]
        if name in _stack or name not in self.macros:
            return None
        result = self._eval(self.macros[name].body, _stack + (name,))
        self.cache[name] = result
        return result

    def is_alias(self, name: str) -> bool:
        """True when the macro is defined as another macro rather than as a number."""
        return re.fullmatch(r"\(?\s*[A-Za-z_]\w*\s*\)?", self.macros[name].body) is not None

    def _eval(self, body: str, stack: tuple[str, ...]) -> int | None:
        body = re.sub(r"/\*.*?\*/", " ", body).strip()
        if not body:
            return None
        pieces: list[str] = []
        pos = 0
        while pos < len(body):
            m = TOKEN.match(body, pos)
            if not m:
                if body[pos:].strip() == "":
                    break
                return None  # casts to named types, strings, ... : not an integer constant
            pos = m.end()
            if m.group("num"):
                text = m.group("num")
                if len(text) > 1 and text[0] == "0" and text[1] not in "xX":
                    pieces.append(str(int(text, 8)))
                else:
                    pieces.append(str(int(text, 0)))
            elif m.group("id"):
                v = self.value(m.group("id"), stack)
                if v is None:
                    return None
                pieces.append(f"({v})")
            else:
                op = m.group("op")
                pieces.append("//" if op == "/" else op)
        try:
            tree = ast.parse(" ".join(pieces), mode="eval")
        except SyntaxError:
            return None
        if not all(isinstance(node, ALLOWED_NODES + (ast.operator, ast.unaryop)) for node in ast.walk(tree)):
            return None
        if not all(isinstance(n.value, int) for n in ast.walk(tree) if isinstance(n, ast.Constant)):
            return None
        try:
            return int(eval(compile(tree, "<macro>", "eval"), {"__builtins__": {}}, {}))
        except (ArithmeticError, ValueError):
            return None


# --------------------------------------------------------------------------------------------
# Tables


@dataclass
class NumberedTable:
    names: list[str]  # index = number, "" where unused
    count: int
    collisions: list[str]
    dropped: list[str]


def syscall_table(macros: dict[str, Define], origin: str, max_nr: int | None = None) -> NumberedTable:
    ev = Evaluator(macros)
    by_number: dict[int, list[tuple[bool, int, str]]] = {}
    dropped: list[str] = []
    for name, d in macros.items():
        if not name.startswith("__NR_") or d.file != os.path.realpath(origin):
            continue
        short = name[len("__NR_"):]
        if short in NOT_SYSCALLS:
            continue
        nr = ev.value(name)
        if nr is None:
            sys.exit(f"gen-tables: cannot evaluate {name} = {d.body!r} in {origin}")
        if nr < 0:
            sys.exit(f"gen-tables: negative syscall number {name} = {nr}")
        if max_nr is not None and nr >= max_nr:
            dropped.append(f"{short}={nr}")
            continue
        by_number.setdefault(nr, []).append((ev.is_alias(name), d.order, short))
    return build_numbered(by_number, dropped)


def build_numbered(by_number: dict[int, list[tuple[bool, int, str]]], dropped: list[str]) -> NumberedTable:
    size = max(by_number) + 1 if by_number else 0
    names = [""] * size
    collisions = []
    for nr in sorted(by_number):
        candidates = sorted(by_number[nr])  # literal before alias, then first defined
        names[nr] = candidates[0][2]
        if len(candidates) > 1:
            others = ", ".join(c[2] for c in candidates[1:])
            collisions.append(f"{nr}: kept {candidates[0][2]}, dropped {others}")
    for n in names:
        if n and not SWIFT_NAME.match(n):
            sys.exit(f"gen-tables: unexpected characters in name {n!r}")
    return NumberedTable(names, len(by_number), collisions, dropped)


def errno_table(macros: dict[str, Define]) -> NumberedTable:
    ev = Evaluator(macros)
    by_number: dict[int, list[tuple[bool, int, str]]] = {}
    for name, d in macros.items():
        if d.file not in map(os.path.realpath, (ERRNO_BASE, ERRNO)) or not re.fullmatch(r"E[A-Z0-9]+", name):
            continue
        nr = ev.value(name)
        if nr is None:
            sys.exit(f"gen-tables: cannot evaluate {name} = {d.body!r}")
        by_number.setdefault(nr, []).append((ev.is_alias(name), d.order, name))
    return build_numbered(by_number, [])


@dataclass
class RecordTypes:
    entries: list[tuple[int, str]]
    markers: list[str]
    collisions: list[str]


def record_types(macros: dict[str, Define]) -> RecordTypes:
    ev = Evaluator(macros)
    by_number: dict[int, list[tuple[bool, int, str]]] = {}
    markers: list[tuple[int, str]] = []
    for name, d in macros.items():
        if d.file not in map(os.path.realpath, (LINUX_AUDIT, LIBAUDIT)) or not name.startswith("AUDIT_"):
            continue
        value = ev.value(name)
        if value is None or not RECORD_TYPE_MIN <= value <= RECORD_TYPE_MAX:
            continue
        short = name[len("AUDIT_"):]
        if RANGE_MARKER.search(short):
            markers.append((value, short))
            continue
        if short.startswith(NON_MESSAGE_FAMILIES):
            sys.exit(f"gen-tables: {name} = {value} looks like a non-message constant in the record range")
        by_number.setdefault(value, []).append((ev.is_alias(name), d.order, short))
    entries = []
    collisions = []
    for nr in sorted(by_number):
        candidates = sorted(by_number[nr])
        entries.append((nr, candidates[0][2]))
        if len(candidates) > 1:
            others = ", ".join(c[2] for c in candidates[1:])
            collisions.append(f"{nr}: kept {candidates[0][2]}, dropped {others}")
    return RecordTypes(entries, [f"{n}={v}" for v, n in sorted(markers)], collisions)


def audit_arches(macros: dict[str, Define]) -> dict[str, int]:
    ev = Evaluator(macros)
    out = {}
    for swift_name, macro in (("x86_64", "AUDIT_ARCH_X86_64"), ("i386", "AUDIT_ARCH_I386"),
                              ("aarch64", "AUDIT_ARCH_AARCH64")):
        if macros.get(macro) is None or macros[macro].file != os.path.realpath(LINUX_AUDIT):
            sys.exit(f"gen-tables: {macro} not defined by {LINUX_AUDIT}")
        value = ev.value(macro)
        if value is None or not 0 <= value <= 0xFFFFFFFF:
            sys.exit(f"gen-tables: cannot evaluate {macro} = {macros[macro].body!r}")
        out[swift_name] = value
    return out


# --------------------------------------------------------------------------------------------
# Sanity checks (only checks: the data itself comes from the headers)


def sanity(x86_64: NumberedTable, i386: NumberedTable, aarch64: NumberedTable, errno: NumberedTable,
           records: RecordTypes, arches: dict[str, int]) -> None:
    problems = []

    def expect(label: str, actual, wanted) -> None:
        if actual != wanted:
            problems.append(f"{label}: got {actual!r}, expected {wanted!r}")

    def nr(table: NumberedTable, name: str) -> int | None:
        return table.names.index(name) if name in table.names else None

    for name, want in (("execve", 59), ("connect", 42), ("open", 2), ("read", 0)):
        expect(f"x86_64 {name}", nr(x86_64, name), want)
    expect("x86_64 max", len(x86_64.names) < X32_FIRST, True)
    for name, want in (("execve", 11), ("socketcall", 102)):
        expect(f"i386 {name}", nr(i386, name), want)
    for name, want in (("openat", 56), ("execve", 221), ("connect", 203), ("clone", 220), ("fcntl", 25),
                       ("newfstatat", 79), ("fstat", 80)):
        expect(f"aarch64 {name}", nr(aarch64, name), want)
    for name in ("open", "fork", "fcntl64", "mmap2"):
        expect(f"aarch64 has {name}", name in aarch64.names, False)
    for number, name in ((1, "EPERM"), (11, "EAGAIN"), (13, "EACCES"), (35, "EDEADLK"), (111, "ECONNREFUSED")):
        expect(f"errno {number}", errno.names[number] if number < len(errno.names) else None, name)
    rec = dict(records.entries)
    for number, name in ((1300, "SYSCALL"), (1302, "PATH"), (1309, "EXECVE"), (1327, "PROCTITLE"),
                         (1320, "EOE"), (1112, "USER_LOGIN"), (1305, "CONFIG_CHANGE"), (1400, "AVC"),
                         (1006, "LOGIN"), (1200, "DAEMON_START"), (1123, "USER_CMD"), (1306, "SOCKADDR"),
                         (1307, "CWD")):
        expect(f"record {number}", rec.get(number), name)
    expect("arch x86_64", arches["x86_64"], 0xC000003E)
    expect("arch i386", arches["i386"], 0x40000003)
    expect("arch aarch64", arches["aarch64"], 0xC00000B7)
    if problems:
        sys.exit("gen-tables: sanity checks failed, nothing written:\n  " + "\n  ".join(problems))


# --------------------------------------------------------------------------------------------
# Swift output


def package_versions() -> list[str]:
    out = []
    for pkg in PACKAGES:
        proc = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True)
        if proc.returncode != 0 or not proc.stdout.strip():
            sys.exit(f"gen-tables: package {pkg} is not installed; apt-get install -y {' '.join(PACKAGES)}")
        out.append(f"{pkg} {proc.stdout.strip()}")
    return out


def string_array(names: list[str], indent: str) -> list[str]:
    """Entries grouped by ten, each group led by a `// N` comment.

    A group that does not fit on one line under LINE_LIMIT is split evenly (5 + 5, ...).
    """
    lines = []
    for start in range(0, len(names), 10):
        lines.append(f"{indent}// {start}")
        group = [f'"{name}",' for name in names[start:start + 10]]
        for per_line in (10, 5, 4, 3, 2, 1):
            rows = [indent + " ".join(group[i:i + per_line]) for i in range(0, len(group), per_line)]
            if per_line == 1 or all(len(row) <= LINE_LIMIT for row in rows):
                lines.extend(rows)
                break
    return lines


def tuple_array(entries: list[tuple[int, str]], indent: str) -> list[str]:
    """Entries wrapped under LINE_LIMIT, with a `// N` comment at each new hundred."""
    lines = []
    line = indent
    block = None
    for number, name in entries:
        if number // 100 != block:
            if line != indent:
                lines.append(line)
                line = indent
            block = number // 100
            lines.append(f"{indent}// {block * 100}")
        item = f'({number}, "{name}"),'
        if line != indent and len(line) + 1 + len(item) > LINE_LIMIT:
            lines.append(line)
            line = indent
        line = line + (" " if line != indent else "") + item
    if line != indent:
        lines.append(line)
    return lines


def comment_block(title: str, items: list[str], indent: str = "") -> list[str]:
    if not items:
        return [f"{indent}// {title}: none."]
    lines = [f"{indent}// {title}:"]
    line = f"{indent}//  "
    for item in items:
        piece = item + ";"
        if len(line) + 1 + len(piece) > LINE_LIMIT:
            lines.append(line)
            line = f"{indent}//  "
        line += " " + piece
    lines.append(line)
    return lines


def render(x86_64: NumberedTable, i386: NumberedTable, aarch64: NumberedTable, errno: NumberedTable,
           records: RecordTypes, arches: dict[str, int], versions: list[str]) -> str:
    out: list[str] = []
    out.append("// Generated by scripts/gen-tables.py from")
    for header in HEADERS:
        out.append(f"//   {header}")
    out.append(f"// as installed by {', '.join(versions)}. Do not edit.")
    out.append("//")
    out.append("// aarch64 is asm-generic/unistd.h evaluated as arm64's 64-bit uapi does: __BITS_PER_LONG 64,")
    out.append(f"// {', '.join(AARCH64_WANTS[:3])},")
    out.append(f"// {', '.join(AARCH64_WANTS[3:])} defined.")
    out.append("")
    out.append("enum SyscallTable {")
    for label, table, header in (("x86_64", x86_64, UNISTD_64), ("i386", i386, UNISTD_32),
                                 ("aarch64", aarch64, UNISTD_GENERIC)):
        if label != "x86_64":
            out.append("")
        if label == "x86_64":
            out.append('    /// Index = syscall number; "" where the number is unused.')
        out.append(f"    // {table.count} syscalls from {header}, numbers 0...{len(table.names) - 1}.")
        if table.collisions:
            out.extend(comment_block("Numbers with several names", table.collisions, "    "))
        if table.dropped:
            out.extend(comment_block(f"Left out (x32 range, >= {X32_FIRST})", table.dropped, "    "))
        out.append(f"    static let {label}: [String] = [")
        out.extend(string_array(table.names, "        "))
        out.append("    ]")
    out.append("}")
    out.append("")
    out.append("enum ErrnoTable {")
    out.append(f'    /// Index = errno number; "" where unused. names[13] == "{errno.names[13]}".')
    out.append(f"    // {errno.count} names from asm-generic/errno-base.h and errno.h; aliases left out.")
    out.extend(comment_block("Aliases left out", errno.collisions, "    "))
    out.append("    static let names: [String] = [")
    out.extend(string_array(errno.names, "        "))
    out.append("    ]")
    out.append("}")
    out.append("")
    out.append("enum RecordTypeTable {")
    out.append("    /// (number, name) pairs sorted by number.")
    out.append(f"    // {len(records.entries)} record types ({RECORD_TYPE_MIN}...{RECORD_TYPE_MAX}) "
               "from linux/audit.h and libaudit.h, AUDIT_ prefix removed.")
    out.extend(comment_block("Range markers left out", records.markers, "    "))
    out.extend(comment_block("Numbers with several names", records.collisions, "    "))
    out.append("    static let entries: [(UInt16, String)] = [")
    out.extend(tuple_array(records.entries, "        "))
    out.append("    ]")
    out.append("}")
    out.append("")
    out.append("enum AuditArch {")
    out.append("    // AUDIT_ARCH_* from linux/audit.h: EM_* (linux/elf-em.h) | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE.")
    for label in ("x86_64", "i386", "aarch64"):
        out.append(f"    static let {label}: UInt32 = 0x{arches[label]:08x}")
    out.append("}")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------


def main() -> int:
    root = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=os.path.join(root, "Sources/HerdwatchAudit/Generated/Tables.swift"))
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()

    missing = [h for h in HEADERS if not os.path.exists(h)]
    if missing:
        sys.exit(f"gen-tables: missing headers {missing}; apt-get install -y {' '.join(PACKAGES)}")
    versions = package_versions()

    # Syscalls and errno use only kernel uapi headers: no libc, no host <asm/*> except where named.
    kernel_only = ["-undef", "-nostdinc", "-I", INCLUDE]
    x86_64 = syscall_table(preprocess(f'#include "{UNISTD_64}"\n', kernel_only), UNISTD_64, X32_FIRST)
    i386 = syscall_table(preprocess(f'#include "{UNISTD_32}"\n', kernel_only), UNISTD_32)

    with tempfile.TemporaryDirectory(prefix="gen-tables-") as tmp:
        os.makedirs(os.path.join(tmp, "asm"))
        with open(os.path.join(tmp, "asm", "bitsperlong.h"), "w") as f:
            # What arm64's uapi <asm/bitsperlong.h> does.
            f.write("#define __BITS_PER_LONG 64\n#include <asm-generic/bitsperlong.h>\n")
        wants = "".join(f"#define {w}\n" for w in AARCH64_WANTS)
        aarch64 = syscall_table(
            preprocess(wants + "#include <asm-generic/unistd.h>\n", ["-undef", "-nostdinc", "-I", tmp, "-I", INCLUDE]),
            UNISTD_GENERIC,
        )

    errno = errno_table(preprocess("#include <asm-generic/errno.h>\n", kernel_only))

    # libaudit.h needs libc headers, so this one uses the normal include path.
    audit_macros = preprocess("#include <linux/audit.h>\n#include <libaudit.h>\n", [])
    records = record_types(audit_macros)
    arches = audit_arches(audit_macros)

    sanity(x86_64, i386, aarch64, errno, records, arches)
    text = render(x86_64, i386, aarch64, errno, records, arches, versions)

    if args.check:
        try:
            with open(args.output) as f:
                current = f.read()
        except FileNotFoundError:
            current = None
        if current != text:
            print(f"gen-tables: {args.output} is out of date; run scripts/gen-tables.py", file=sys.stderr)
            return 1
        return 0

    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        f.write(text)
    print(
        f"gen-tables: wrote {args.output}: x86_64 {x86_64.count}, i386 {i386.count}, aarch64 {aarch64.count} "
        f"syscalls; {errno.count} errno names; {len(records.entries)} record types",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
