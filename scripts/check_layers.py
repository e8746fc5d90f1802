#!/usr/bin/env python3
"""check_layers.py - every #include "..." under src/ must run down the layer
diagram of docs/design.md (section "Layers"), never up it or across it.

The diagram is the one source of truth: this script reads it from the
fenced block under "## Layers" in docs/design.md, so the document and the
check cannot disagree. Each line of that block that starts with "layer N"
names the modules of layer N (higher N = higher layer), as paths relative
to the repository root, before the description:

    layer 3  src/coll                   collectives ...
    layer 2  src/transport  src/topo    transports; topology ...
    layer 1  src/core+src/transport/tl.h   core ...

"a+b" is one module made of two paths (tl.h is core's contract with the
transports, though it lives beside them). A file belongs to the module of
the longest path that contains it.

Rules (each violation is reported as file:line with both modules and
layers; the exit status is 1 if there is any):
  1. A file may include files of its own module and of any lower layer.
  2. It may not include a file of a higher layer (up the diagram), nor of
     another module of its own layer (across it: modules side by side are
     independent).
  3. Every file under src/ belongs to some module of the diagram, and every
     "..." include resolves (against the including file's directory, then
     src/, then include/, as the build does).

Usage: check_layers.py [--root DIR]    check the tree at DIR (default: the
                                       repository this script is in)
       check_layers.py --self-test     prove that the check catches an
                                       upward, a sideways and an unresolved
                                       include in a scratch tree

Python 3 standard library only.
"""
import os
import re
import sys
import tempfile

SOURCE_EXT = (".c", ".h")
INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
LAYER_RE = re.compile(r"^layer\s+(\d+)\s+(.*)$")
PATH_RE = re.compile(r"^(src|tools|include)/[\w./+-]*$")


class Module:
    def __init__(self, name, layer, paths):
        self.name = name      # "src/core+src/transport/tl.h"
        self.layer = layer
        self.paths = paths    # ["src/core", "src/transport/tl.h"]

    def label(self):
        return "%s (layer %d)" % (self.name, self.layer)


def read_diagram(root):
    """The modules of the layer diagram in docs/design.md, or raise."""
    path = os.path.join(root, "docs", "design.md")
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    try:
        start = lines.index("## Layers")
    except ValueError:
        raise SystemExit("%s: no '## Layers' section" % path)
    modules = []
    in_block = False
    for n, line in enumerate(lines[start + 1:], start + 2):
        if line.startswith("## "):
            break
        if line.startswith("```"):
            if in_block:
                break
            in_block = True
            continue
        m = LAYER_RE.match(line) if in_block else None
        if m is None:
            continue
        layer = int(m.group(1))
        for token in m.group(2).split():
            if not PATH_RE.match(token):
                break  # the description starts here
            paths = [p.rstrip("/") for p in token.split("+")]
            modules.append(Module(token, layer, paths))
        if not any(mod.layer == layer for mod in modules):
            raise SystemExit("%s:%d: layer %d names no module" %
                             (path, n, layer))
    if not modules:
        raise SystemExit("%s: the Layers section has no 'layer N' lines in "
                         "its diagram" % path)
    return modules


def module_of(rel, modules):
    """The module whose longest path contains rel, or None."""
    best, best_len = None, -1
    for mod in modules:
        for p in mod.paths:
            if (rel == p or rel.startswith(p + "/")) and len(p) > best_len:
                best, best_len = mod, len(p)
    return best


def resolve(root, rel_file, target):
    """Repository-relative path of an include, or None."""
    here = os.path.dirname(rel_file)
    for base in (here, "src", "include"):
        cand = os.path.normpath(os.path.join(base, target))
        if os.path.isfile(os.path.join(root, cand)):
            return cand.replace(os.sep, "/")
    return None


def check(root):
    """All violations in the tree at root, as strings."""
    modules = read_diagram(root)
    errors = []
    for dirpath, dirnames, filenames in os.walk(os.path.join(root, "src")):
        dirnames.sort()
        for name in sorted(filenames):
            if not name.endswith(SOURCE_EXT):
                continue
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            mine = module_of(rel, modules)
            if mine is None:
                errors.append("%s: in no module of the layer diagram "
                              "(docs/design.md, Layers): add its directory"
                              % rel)
                continue
            with open(full, encoding="utf-8", errors="replace") as f:
                for lineno, line in enumerate(f, 1):
                    m = INCLUDE_RE.match(line)
                    if m is None:
                        continue
                    target = resolve(root, rel, m.group(1))
                    if target is None:
                        errors.append('%s:%d: #include "%s" resolves to no '
                                      "file (tried the file's directory, "
                                      "src/, include/)"
                                      % (rel, lineno, m.group(1)))
                        continue
                    theirs = module_of(target, modules)
                    if theirs is None:
                        errors.append("%s:%d: includes %s, which is in no "
                                      "module of the layer diagram"
                                      % (rel, lineno, target))
                    elif theirs is mine:
                        continue
                    elif theirs.layer > mine.layer:
                        errors.append("%s:%d: includes %s: %s may not "
                                      "include %s, which is above it"
                                      % (rel, lineno, target, mine.label(),
                                         theirs.label()))
                    elif theirs.layer == mine.layer:
                        errors.append("%s:%d: includes %s: %s may not "
                                      "include %s, beside it in the same "
                                      "layer"
                                      % (rel, lineno, target, mine.label(),
                                         theirs.label()))
    return errors


def self_test():
    """The check must fail on a tree with bad includes: prove it."""
    diagram = ("# t\n\n## Layers\n\n```\n"
               "layer 3  src/up                 top\n"
               "layer 2  src/a  src/b           side by side\n"
               "layer 1  src/core+src/a/tl.h    bottom\n"
               "layer 0  include/pub.h          public\n"
               "```\n\n## Next\n")
    files = {
        "docs/design.md": diagram,
        "include/pub.h": "",
        "src/core/c.h": '#include "pub.h"\n#include "../a/tl.h"\n',
        "src/a/tl.h": '#include "../core/c.h"\n',
        "src/a/a.c": '#include "tl.h"\n#include "core/c.h"\n'
                     '#include "../b/b.h"\n',
        "src/b/b.h": "",
        "src/up/u.c": '#include "../a/tl.h"\n#include "../b/b.h"\n',
        "src/core/bad.c": '#include "../up/u.h"\n#include "nowhere.h"\n',
        "src/up/u.h": "",
        "src/stray/s.c": "",
    }
    with tempfile.TemporaryDirectory() as tmp:
        for rel, text in files.items():
            full = os.path.join(tmp, rel)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w", encoding="utf-8") as f:
                f.write(text)
        errors = check(tmp)
    expect = [
        "src/a/a.c:3: includes src/b/b.h: src/a (layer 2) may not include "
        "src/b (layer 2), beside it in the same layer",
        "src/core/bad.c:1: includes src/up/u.h: src/core+src/a/tl.h "
        "(layer 1) may not include src/up (layer 3), which is above it",
        'src/core/bad.c:2: #include "nowhere.h" resolves to no file',
        "src/stray/s.c: in no module of the layer diagram",
    ]
    ok = len(errors) == len(expect)
    for want in expect:
        if not any(e.startswith(want) for e in errors):
            ok = False
            print("self-test: missing: %s" % want)
    for e in errors:
        print("self-test: reported: %s" % e)
    if not ok:
        print("self-test: FAILED (%d reported, %d expected)"
              % (len(errors), len(expect)))
        return 1
    print("self-test: the check reports upward, sideways, unresolved and "
          "unplaced files, and accepts the rest")
    return 0


def main(argv):
    if argv[1:] == ["--self-test"]:
        return self_test()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if len(argv) == 3 and argv[1] == "--root":
        root = argv[2]
    elif len(argv) != 1:
        print("usage: check_layers.py [--root DIR | --self-test]",
              file=sys.stderr)
        return 2
    errors = check(root)
    for e in errors:
        print(e)
    modules = read_diagram(root)
    if errors:
        print("check_layers: %d include(s) break the layer diagram of "
              "docs/design.md" % len(errors))
        return 1
    print("check_layers: every #include under src/ runs down the diagram "
          "(%d modules in %d layers)"
          % (len(modules), len({m.layer for m in modules})))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
