-- tide.http.io: the reads the HTTP server and client share, on top of a
-- tide stream (docs/io.md).
--
-- Owns two things: a bounded read of "what is there, at most n bytes" (a
-- body framed by Content-Length must not eat the bytes that follow it),
-- and the reader that feeds h1.chunks from a stream. Both run inside a
-- task and raise the stream's errors (ETIMEDOUT, ECONNRESET, ...).

local type, error, pcall = type, error, pcall

local M = {}

--- Returns the next bytes of `sock`, at least one and at most `max`, or nil
-- at the end of the stream. Waits at most `timeout` seconds (nil: no
-- limit).
function M.read_some(sock, max, timeout)
  return sock:read({ max = max, timeout = timeout }):await()
end

--[[ Returns a reader for h1.chunks over `sock`. `time_left(arg)` gives the
seconds each read may wait (it may raise to stop the body). A line longer
than its limit reads as false (h1 answers 400 or 431); the end of the
stream inside a line or a chunk reads as nil (a truncated body). ]]
function M.chunk_reader(sock, time_left, arg)
  return {
    read_line = function(max)
      local p = sock:read_until("\n", { max = max > 1 and max - 1 or 1, timeout = time_left(arg) })
      local ok, line = pcall(p.await, p)
      if ok then
        if line == nil then return nil end
        return line .. "\n"
      end
      local code = type(line) == "table" and line.code
      if code == "ELINETOOLONG" then return false end
      if code == "EOF" then return nil end
      error(line, 0)
    end,
    read_exactly = function(n)
      local p = sock:read_exactly(n, time_left(arg))
      local ok, data = pcall(p.await, p)
      if ok then return data end
      if type(data) == "table" and data.code == "EOF" then return nil end
      error(data, 0)
    end,
  }
end

return M
