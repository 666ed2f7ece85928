#!/usr/bin/env python3
"""Lists the import loops among a Rust crate's files: file a imports file b when a names b's
module through a `crate::`, `super::` or child-module path (in `use` lines or inline), a
parent's `mod child;` alone being no import. A loop is a set of files each reachable from the
others; the pairs that import each other directly are listed too. Tests (`#[cfg(test)] mod
tests`) are left out. Exits 1 when there is a loop.

Usage: scripts/import-loops.py CRATE_SRC_DIR   (such as engine/src)"""
import os
import re
import sys


def module_files(root):
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            if name.endswith('.rs'):
                rel = os.path.relpath(os.path.join(folder, name), root)
                parts = rel[:-3].split(os.sep)
                if parts[-1] in ('lib', 'main', 'mod'):
                    parts = parts[:-1]
                files[tuple(parts)] = rel
    return files


def code_of(path):
    text = re.sub(r'//[^\n]*', '', open(path).read())
    tests = re.search(r'#\[cfg\(test\)\]\s*mod tests', text)
    return text[:tests.start()] if tests else text


def expand(prefix, tree):
    """`a::{b, c::{d, e as f}}` as the paths it names, each with the name it binds."""
    tree = tree.strip()
    brace = tree.find('{')
    if brace < 0:
        path, _, alias = tree.partition(' as ')
        segments = [s for s in path.strip().split('::') if s]
        return [(prefix + segments, alias.strip() or (segments[-1] if segments else ''))]
    head = [s for s in tree[:brace].split('::') if s]
    items, current, depth = [], '', 0
    for ch in tree[brace + 1:tree.rfind('}')]:
        depth += (ch == '{') - (ch == '}')
        if ch == ',' and depth == 0:
            items.append(current)
            current = ''
        else:
            current += ch
    items.append(current)
    return [path for item in items if item.strip() for path in expand(prefix + head, item)]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    root = sys.argv[1]
    files = module_files(root)
    codes = {module: code_of(os.path.join(root, rel)) for module, rel in files.items()}
    children = {
        module: set(re.findall(r'^\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+(\w+)\s*;', code, re.M))
        for module, code in codes.items()
    }

    def base(module, word):
        if word == 'crate':
            return []
        if word == 'super':
            return list(module[:-1])
        return list(module) + ([word] if word != 'self' else [])

    # What each file re-exports (`pub use`), so `crate::Name` leads to where Name lives.
    exports = {}
    for module, code in codes.items():
        for m in re.finditer(r'\bpub\s+use\s+(\w+)::(.*?);', code, re.S):
            if m.group(1) in ('crate', 'super', 'self') or m.group(1) in children[module]:
                for path, name in expand(base(module, m.group(1)), m.group(2)):
                    exports.setdefault(module, {})[name] = path

    def resolve(path, depth=0):
        for n in range(len(path), -1, -1):
            module = tuple(path[:n])
            if module in files:
                rest = path[n:]
                target = exports.get(module, {}).get(rest[0]) if rest else None
                if target and depth < 8:
                    return resolve(target + rest[1:], depth + 1)
                return module
        return None

    imports = {}
    for module, code in codes.items():
        targets = set()
        for m in re.finditer(r'\buse\s+(\w+)::(.*?);', code, re.S):
            word = m.group(1)
            if word in ('crate', 'super', 'self') or word in children[module]:
                for path, _ in expand(base(module, word), m.group(2)):
                    targets.add(resolve(path))
        for m in re.finditer(r'(?<![:\w])(crate|super|\w+)::((?:\w+::)*\w+)', code):
            word = m.group(1)
            if word in ('crate', 'super') or word in children[module]:
                targets.add(resolve(base(module, word) + m.group(2).split('::')))
        targets.discard(None)
        targets.discard(module)
        imports[module] = targets

    # Tarjan's strongly connected components.
    sys.setrecursionlimit(10000)
    index, low, stack, on_stack, loops = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in imports[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                loops.append(sorted(files[m] for m in component))

    for module in files:
        if module not in index:
            visit(module)
    pairs = sorted({tuple(sorted((files[a], files[b])))
                    for a in files for b in imports[a] if a in imports[b]})
    count = sum(len(t) for t in imports.values())
    print(f'{len(files)} files, {count} imports between them, {len(loops)} loops, '
          f'{len(pairs)} pairs importing each other')
    for component in loops:
        print(f'loop of {len(component)}: ' + ', '.join(component))
    for a, b in pairs:
        print(f'pair: {a} <-> {b}')
    sys.exit(1 if loops else 0)


main()
