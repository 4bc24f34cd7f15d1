"""lua_blocks.py FILE OUTDIR [SECTION...] -- writes each ```lua block of the
markdown FILE that requires "tide" to OUTDIR/example_N.lua, taking only the
blocks under the given "## SECTION" headings (every block when none is
given), and prints how many it wrote. Used by the smoke tests that run the
examples of the docs (not a test itself)."""
import re
import sys

path, out, wanted = sys.argv[1], sys.argv[2], sys.argv[3:]
sections = re.split(r"^## ", open(path).read(), flags=re.M)
n = 0
for sec in sections:
    if wanted and sec.split("\n", 1)[0].strip() not in wanted:
        continue
    for block in re.findall(r"```lua\n(.*?)```", sec, re.S):
        if 'require "tide"' in block:
            n += 1
            with open(f"{out}/example_{n}.lua", "w") as f:
                f.write(block)
print(n)
