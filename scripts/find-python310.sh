#!/usr/bin/env bash
# Print the path of a Python 3.10 interpreter, or explain how to get one and fail.
# lava-nc 0.10.0 (the last release) supports only Python 3.10.
set -u
is310() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; }
for cand in "${PYTHON310:-}" python3.10; do
  [ -n "$cand" ] || continue
  p=$(command -v "$cand" 2>/dev/null) || continue
  if is310 "$p"; then echo "$p"; exit 0; fi
done
roots=()
command -v pyenv >/dev/null 2>&1 && roots+=("$(pyenv root)")
roots+=("$HOME/.pyenv")
for root in "${roots[@]}"; do
  for p in $(ls -d "$root"/versions/3.10*/bin/python 2>/dev/null | sort -rV); do
    if is310 "$p"; then echo "$p"; exit 0; fi
  done
done
for p in /usr/bin/python3.10 /usr/local/bin/python3.10; do
  if [ -x "$p" ] && is310 "$p"; then echo "$p"; exit 0; fi
done
echo "error: snncompile needs Python 3.10 (lava-nc 0.10.0 supports only 3.10) and none was found." >&2
echo "       Install one (e.g. 'pyenv install 3.10' or your distribution's python3.10 package)," >&2
echo "       or point PYTHON310=/path/to/python3.10 at it, then run 'make setup' again." >&2
exit 1
