-- pipeline.lua — a shell pipeline built with tide.process: the equivalent
-- of   printf 'apple\nbanana\napple\n...' | sort | uniq -c | sort -rn
-- Lua pumps the bytes between the first two processes (awaiting each
-- write: a slow reader slows the writer), the others are joined directly
-- (a process's stdout given as the next one's stdin). Each exit status is
-- checked.
-- Usage: tide examples/pipeline.lua [WORD...]   (default: a few fruits)
local tide = require "tide"

local words = #arg > 0 and { table.unpack(arg) } or
  { "apple", "banana", "apple", "cherry", "banana", "apple" }

-- Copies `from` to `to`, then closes `to` so the reader sees the end.
local function pump(from, to)
  while true do
    local data = from:read():await()
    if data == nil then break end
    to:write(data):await()
  end
  to:close():await()
end

local printf = tide.process.spawn{ "printf", args = { "%s\\n", table.unpack(words) }, stdout = "pipe" }
local sort = tide.process.spawn{ "sort", stdin = "pipe", stdout = "pipe" }
local uniq = tide.process.spawn{ "uniq", "-c", stdin = sort.stdout, stdout = "pipe" }
sort.stdout:close()                   -- uniq has it now
local rank = tide.process.spawn{ "sort", "-rn", stdin = uniq.stdout, stdout = "pipe" }
uniq.stdout:close()

local copier = tide.spawn(pump, printf.stdout, sort.stdin)
local output = rank.stdout:read_all():await()
copier:await()

for name, p in pairs{ printf = printf, sort = sort, uniq = uniq, ["sort -rn"] = rank } do
  local code, signal = p:wait():await()
  if code ~= 0 then error(("%s failed: %s"):format(name, signal or code)) end
end
for line in output:gmatch("[^\n]+") do
  local count, word = line:match("^%s*(%d+)%s+(.+)$")
  print(("%-10s %d"):format(word, tonumber(count)))
end
